"""How a matmul of any shape runs on the bare systolic array.

``schedule_matmul(a, b, rows, cols, dataflow)`` cuts ``a @ b`` into array tiles (zero-padding
the edges) and returns the exact beats each input stream takes, the exact result beats the
array must produce, and how to put the result beats back together. Every simulation rung
(Amaranth, cocotb) drives these beats, so all of them run the same vectors.

Tile order: weight-stationary walks N tiles, then K tiles within each (the results of
the K tiles of one N tile are summed by :meth:`ArraySchedule.assemble`, as the accumulator
memory does in the full accelerator). Output-stationary walks M tiles, then N tiles, each
streaming all of K.
"""

from dataclasses import dataclass

import numpy as np

from systolic.hw.config import check_array_params

from .numerics.matmul import check_int8, matmul_int8


def _pad(x, rows, cols):
    out = np.zeros((rows, cols), dtype=np.int64)
    out[: x.shape[0], : x.shape[1]] = x
    return out


def _ceil_div(a, b):
    return -(-a // b)


@dataclass
class ArraySchedule:
    """Input beats, expected output beats and the assembly of one matmul on the array.

    Weight-stationary: ``weight_beats`` (tiles*rows x cols), ``act_beats`` (tiles*m x rows)
    and ``act_last``. Output-stationary: ``slice_a`` (tiles*k x rows), ``slice_b``
    (tiles*k x cols) and ``slice_last``. Both: ``expected`` (one row per result beat, cols
    int32), ``tiles`` and ``tile_length`` (activation rows or K-slices per tile).
    """

    rows: int
    cols: int
    dataflow: str
    shape: tuple
    expected: np.ndarray
    tiles: int
    tile_length: int
    a_unsigned: bool = False
    weight_beats: np.ndarray = None
    act_beats: np.ndarray = None
    act_last: np.ndarray = None
    slice_a: np.ndarray = None
    slice_b: np.ndarray = None
    slice_last: np.ndarray = None

    @property
    def useful_macs(self):
        m, k, n = self.shape
        return m * k * n

    def assemble(self, beats):
        """The ``m x n`` int32 product from the array's result beats (in order)."""
        beats = np.asarray(beats, dtype=np.int64)
        if beats.shape != self.expected.shape:
            raise ValueError(f"expected {self.expected.shape[0]} result beats of {self.cols} "
                             f"lanes, got array of shape {beats.shape}")
        m, k, n = self.shape
        rows, cols = self.rows, self.cols
        k_tiles = _ceil_div(k, rows)
        if self.dataflow == "ws":
            n_tiles = _ceil_div(n, cols)
            per_tile = beats.reshape(n_tiles, k_tiles, m, cols).sum(axis=1)
            full = per_tile.transpose(1, 0, 2).reshape(m, n_tiles * cols)
        else:
            m_tiles, n_tiles = _ceil_div(m, rows), _ceil_div(n, cols)
            full = (beats.reshape(m_tiles, n_tiles, rows, cols)
                    .transpose(0, 2, 1, 3).reshape(m_tiles * rows, n_tiles * cols))
        return full[:m, :n].astype(np.int32)


def schedule_matmul(a, b, rows, cols, dataflow, a_unsigned=False):
    """Cut ``a @ b`` (int8, any shapes M x K and K x N; ``a`` uint8 if ``a_unsigned``) into
    beats for the array."""
    check_array_params(rows, cols, dataflow)
    a, b = check_int8("a", a, unsigned=a_unsigned), check_int8("b", b)
    matmul_int8(a, b, a_unsigned)  # shape check, and no int32 overflow in the final sums
    (m, k), n = a.shape, b.shape[1]
    if min(m, k, n) == 0:
        raise ValueError(f"matmul dimensions must be at least 1, got M={m} K={k} N={n}")
    schedule = (_schedule_ws if dataflow == "ws" else _schedule_os)(a, b, rows, cols)
    schedule.a_unsigned = a_unsigned
    return schedule


def _schedule_ws(a, b, rows, cols):
    (m, k), n = a.shape, b.shape[1]
    k_tiles, n_tiles = _ceil_div(k, rows), _ceil_div(n, cols)
    a_pad = _pad(a, m, k_tiles * rows)
    b_pad = _pad(b, k_tiles * rows, n_tiles * cols)
    weights, acts, expected = [], [], []
    for nt in range(n_tiles):
        for kt in range(k_tiles):
            tile = b_pad[kt * rows:(kt + 1) * rows, nt * cols:(nt + 1) * cols]
            a_slice = a_pad[:, kt * rows:(kt + 1) * rows]
            weights.append(tile)
            acts.append(a_slice)
            expected.append(a_slice @ tile)
    tiles = n_tiles * k_tiles
    last = np.zeros((tiles, m), dtype=bool)
    last[:, -1] = True
    return ArraySchedule(
        rows, cols, "ws", (m, k, n), np.concatenate(expected), tiles, m,
        weight_beats=np.concatenate(weights), act_beats=np.concatenate(acts),
        act_last=last.reshape(-1))


def _schedule_os(a, b, rows, cols):
    (m, k), n = a.shape, b.shape[1]
    m_tiles, n_tiles = _ceil_div(m, rows), _ceil_div(n, cols)
    a_pad = _pad(a, m_tiles * rows, k)
    b_pad = _pad(b, k, n_tiles * cols)
    slice_a, slice_b, expected = [], [], []
    for mt in range(m_tiles):
        for nt in range(n_tiles):
            a_tile = a_pad[mt * rows:(mt + 1) * rows]
            b_tile = b_pad[:, nt * cols:(nt + 1) * cols]
            slice_a.append(a_tile.T)
            slice_b.append(b_tile)
            expected.append(a_tile @ b_tile)
    tiles = m_tiles * n_tiles
    last = np.zeros((tiles, k), dtype=bool)
    last[:, -1] = True
    return ArraySchedule(
        rows, cols, "os", (m, k, n), np.concatenate(expected), tiles, k,
        slice_a=np.concatenate(slice_a), slice_b=np.concatenate(slice_b),
        slice_last=last.reshape(-1))
