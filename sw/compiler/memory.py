"""Host-memory layout: every tensor, weight, parameter block and KV cache of a compiled model
gets a 64-byte aligned buffer in one image (the accelerator-visible host memory).

Storage formats (chosen so that a block of rows is one contiguous run of on-chip lines):

* wide tensors (graph dtypes int16 and int32): int32 elements, rows padded to whole
  accumulator lines (``ceil(L / cols) * cols`` elements);
* byte tensors (int8, uint8): rows padded to whole scratchpad lines
  (``ceil(L / spad_line_bytes) * spad_line_bytes`` bytes);
* row scales: one 4-byte record word (``ROW_SCALE_WORD``) per row;
* weights (int8, K x N): panel-major (:func:`weight_panels`), so a weight panel is one long
  burst; parameter blocks: int32 accumulator lines.

A tensor with a leading head dimension (``(heads, seq, keys)``) stores head ``h`` row ``r`` as
row ``h * rows_per_head + r``.
"""

from dataclasses import dataclass

import numpy as np

from systolic.hw.config import HardwareConfig
from systolic.hw.isa import ROW_SCALE_WORD, pack_words, unpack_words

from ..numerics import RowScale
from .tiling import Operand

__all__ = ["HostTensor", "HostLayout", "DeviceMemory", "ALIGN", "weight_panels",
           "activation_tiles"]

#: Alignment of every buffer (bytes).
ALIGN = 64

_DTYPES = {"int32": np.int32, "int8": np.int8, "uint8": np.uint8, "record": np.int32}


@dataclass(frozen=True)
class HostTensor:
    """A buffer of ``rows`` rows of ``length`` elements, ``stride`` bytes apart.

    Members
    -------
    name : str
    address : int
        Byte address of row 0.
    rows, length : int
        Capacity in rows, elements per row.
    stride : int
        Bytes from one row to the next.
    storage : "int32", "int8", "uint8" or "record"
    rows_per_head : int
        Rows of one head (``rows`` for tensors without a head dimension).
    """

    name: str
    address: int
    rows: int
    length: int
    stride: int
    storage: str
    rows_per_head: int = 0

    @property
    def dtype(self):
        return np.dtype(_DTYPES[self.storage])

    @property
    def nbytes(self):
        return self.rows * self.stride

    def row(self, row, head=0):
        """Index of row ``row`` of head ``head``."""
        return head * (self.rows_per_head or self.rows) + row

    def operand(self, row=0, col=0, head=0):
        """The :class:`Operand` whose element (0, 0) is (``row``, ``col``) of ``head``."""
        return Operand(self.address + self.row(row, head) * self.stride
                       + col * self.dtype.itemsize, self.stride, self.name)


class HostLayout:
    """Allocates 64-byte aligned buffers; :meth:`tensor` for the formats above."""

    def __init__(self, config: HardwareConfig, base=0):
        self.config = config
        self.size = base
        self.tensors = {}

    def allocate(self, nbytes):
        """The address of ``nbytes`` new bytes."""
        address = self.size
        self.size = -(-(address + nbytes) // ALIGN) * ALIGN
        return address

    def add(self, name, rows, length, storage, rows_per_head=0, stride=None):
        """A new buffer ``name`` in ``storage`` format (stride as the format requires)."""
        if name in self.tensors:
            raise ValueError(f"host buffer {name!r} is allocated twice")
        if stride is None:
            stride = row_stride(self.config, length, storage)
        tensor = HostTensor(name, self.allocate(rows * stride), rows, length, stride,
                            storage, rows_per_head)
        self.tensors[name] = tensor
        return tensor


def weight_panels(w, config, width=None):
    """A (K, N) int8 weight in panel-major order: panel ``j`` (columns ``j * width ..``,
    ``width`` = ``cols`` by default) is K scratchpad lines (``spad_line_bytes`` each, zero past
    the panel's columns), panels one after another — the lines a weight-stationary B slot
    holds, in load order. (An output-stationary A^T uses panels of ``rows`` columns.)"""
    k, n = w.shape
    cols, line = width or config.cols, config.spad_line_bytes
    panels = -(-n // cols)
    out = np.zeros((panels, k, line), dtype=w.dtype)
    padded = np.zeros((k, panels * cols), dtype=w.dtype)
    padded[:, :n] = w
    out[:, :, :cols] = padded.reshape(k, panels, cols).transpose(1, 0, 2)
    return out.reshape(panels * k, line)


def activation_tiles(a, config):
    """A weight-stationary A (M, K) in K-tile-major order: tile ``t`` (columns
    ``t * rows ..``) is M scratchpad lines (one per row, zero past K), tiles one after
    another — so the rows of a tile that a MATMUL streams load as one burst. Tile ``t``
    starts ``M * spad_line_bytes`` bytes after tile ``t - 1``."""
    m, k = a.shape
    rows, line = config.rows, config.spad_line_bytes
    tiles = -(-k // rows)
    padded = np.zeros((m, tiles * rows), dtype=a.dtype)
    padded[:, :k] = a
    out = np.zeros((tiles, m, line), dtype=a.dtype)
    out[:, :, :rows] = padded.reshape(m, tiles, rows).transpose(1, 0, 2)
    return out.reshape(tiles * m, line)


def row_stride(config, length, storage):
    """Bytes per row of a ``length``-element row in ``storage`` format."""
    if storage == "int32":
        return -(-length // config.cols) * config.acc_line_bytes
    if storage in ("int8", "uint8"):
        return -(-length // config.spad_line_bytes) * config.spad_line_bytes
    if storage == "record":
        return 4
    raise ValueError(f"unknown storage {storage!r}")


class DeviceMemory:
    """The host-memory image (uint8 NumPy array) with typed access to :class:`HostTensor`s."""

    def __init__(self, size):
        self.array = np.zeros(-(-size // ALIGN) * ALIGN, dtype=np.uint8)

    def grow(self, size):
        """Make the image at least ``size`` bytes (contents kept)."""
        if size > len(self.array):
            bigger = np.zeros(-(-size // ALIGN) * ALIGN, dtype=np.uint8)
            bigger[:len(self.array)] = self.array
            self.array = bigger

    def view(self, tensor: HostTensor, rows, first=0, head=0):
        """Writable ``(rows, length)`` view of rows ``first ..`` of ``head``."""
        if first + rows > (tensor.rows_per_head or tensor.rows):
            raise ValueError(f"rows {first}..{first + rows - 1} exceed the "
                             f"{tensor.rows_per_head or tensor.rows} rows of {tensor.name}")
        start = tensor.address + tensor.row(first, head) * tensor.stride
        raw = self.array[start:start + rows * tensor.stride]
        return raw.view(tensor.dtype).reshape(rows, -1)[:, :tensor.length]

    def read(self, tensor, rows, first=0, head=0):
        """Rows as int64 (row scales: a :class:`RowScale`)."""
        values = self.view(tensor, rows, first, head)
        if tensor.storage == "record":
            words = unpack_words(ROW_SCALE_WORD, values[:, 0])
            return RowScale(words["mant"], words["exp"])
        return values.astype(np.int64)

    def write(self, tensor, values, first=0, head=0):
        """Write rows (integer array, or a :class:`RowScale` for a record tensor)."""
        if tensor.storage == "record":
            values = pack_words(ROW_SCALE_WORD, mant=values.mant, exp=values.exp)[:, None]
        values = np.asarray(values)
        self.view(tensor, len(values), first, head)[...] = values.astype(np.int64).astype(
            tensor.dtype)

    def place(self, tensor, values):
        """Write a constant (weights, parameter lines) into ``tensor``'s buffer."""
        values = np.ascontiguousarray(values)
        raw = values.view(np.uint8).reshape(-1)
        if len(raw) > tensor.nbytes:
            raise ValueError(f"{tensor.name}: {len(raw)} bytes do not fit {tensor.nbytes}")
        self.array[tensor.address:tensor.address + len(raw)] = raw
