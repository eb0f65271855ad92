"""Quantized-graph IR: the integer program that the golden interpreter (:mod:`.golden`) runs
and the compiler lowers to accelerator instructions.

A :class:`Graph` is a straight-line list of :class:`Op` over named tensors. Every op is one
hardware unit (or one host step) with integer parameters from :mod:`systolic.sw.numerics`;
there are no float computations at run time except the final dequantization of the outputs.

Tensors (:class:`TensorInfo`) have a dtype, a shape whose sequence dimensions are the symbols
``"seq"`` (tokens run now) and ``"keys"`` (tokens attended to; equal to ``"seq"`` in a
prefill), and a scale: the real value of one unit, static (a float, or one float per channel
of the last axis). A per-row quantized int8 tensor also names the ``rowscale`` tensor produced
with it (``row_scale``); its real value is ``q * scale * mant[r] * 2**exp[r] / 127`` with
``scale`` the static scale of the wide source. A ``rowscale`` tensor holds a
:class:`~.numerics.RowScale`.

Op kinds, inputs -> outputs (attributes in ``attrs``, unit parameters in ``params``):

============  ==============================  ===============================================
kind          inputs -> outputs               meaning
============  ==============================  ===============================================
embed         ids -> x                        host: sum of integer table rows ``attrs["tables"]``
                                              (names in ``Graph.weights``; a table indexed by
                                              ``"token"``, ``"position"`` or ``"type0"``)
layernorm     x -> y                          :func:`~.numerics.layernorm` (NormParams)
rmsnorm       x -> y                          :func:`~.numerics.rmsnorm` (NormParams)
rowquant      z -> q, rs                      :func:`~.numerics.quantize_rows`, ``in_bits``
matmul        a, b -> acc                     int8/uint8 x int8 -> int32, exact. ``b`` is a
                                              weight (K, N) or an activation; ``heads``,
                                              ``kv_heads``: per-head products (see below)
requantize    acc[, rs] -> y                  :func:`~.numerics.requantize` (RequantParams)
softmax       scores[, rs] -> p               :func:`~.numerics.softmax` per head (params: a
                                              list of SoftmaxParams), ``causal``
gelu / silu   x -> y                          int16 fixed point, ``frac_bits``
mul           a, b -> y                       :func:`~.numerics.eltwise_mul` (Scale or None)
add           a, b -> y                       :func:`~.numerics.residual_add` (ResidualParams)
rope          x -> y                          host: integer rotary embedding (``heads``,
                                              ``theta``; tables from :func:`rope_tables`)
============  ==============================  ===============================================

Per-head matmuls: with ``transpose_b`` (attention scores) ``a`` is (seq, heads*dh), ``b`` is
(keys, kv_heads*dh) and the result is (heads, seq, keys); head ``h`` uses column group
``h // (heads // kv_heads)`` of ``b``. Without it (context) ``a`` is (heads, seq, keys)
uint8 probabilities, ``b`` (keys, kv_heads*dh) and the result (seq, heads*dh), heads merged.
"""

from dataclasses import dataclass, field

import numpy as np

DTYPES = ("int8", "uint8", "int16", "int32", "rowscale", "ids")
OP_KINDS = ("embed", "layernorm", "rmsnorm", "rowquant", "matmul", "requantize", "softmax",
            "gelu", "silu", "mul", "add", "rope")
#: Ops that run on the host rather than on an accelerator unit.
HOST_OPS = ("embed", "rope")
#: Fraction bits of the integer RoPE tables (``round(cos * 2**14)``, int16).
ROPE_FRAC_BITS = 14


@dataclass
class TensorInfo:
    """A named tensor of the graph.

    Members
    -------
    name : str
    dtype : one of :data:`DTYPES`
    shape : tuple of ints and the symbols ``"seq"`` / ``"keys"``
    scale : float, or float array over the last axis (None for ids and row scales)
    row_scale : name of the ``rowscale`` tensor giving the per-row factor, or None
    """

    name: str
    dtype: str
    shape: tuple
    scale: object = None
    row_scale: str | None = None

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"tensor {self.name!r}: dtype must be one of {DTYPES}, "
                             f"not {self.dtype!r}")


@dataclass
class Op:
    """One integer operation.

    Members
    -------
    kind : one of :data:`OP_KINDS`
    inputs, outputs : tuples of tensor names
    params : the unit's integer parameter dataclass (or list of them), or None
    attrs : small integer / string attributes (``heads``, ``frac_bits``, ``causal`` ...)
    """

    kind: str
    inputs: tuple
    outputs: tuple
    params: object = None
    attrs: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in OP_KINDS:
            raise ValueError(f"op kind must be one of {OP_KINDS}, not {self.kind!r}")
        self.inputs, self.outputs = tuple(self.inputs), tuple(self.outputs)


@dataclass
class Graph:
    """A quantized model: tensors, ops in execution order, constant integer weights.

    Members
    -------
    name : str
    tensors : dict name -> TensorInfo
    ops : list of Op
    weights : dict name -> integer NumPy array (int8 matmul weights (K, N), host tables)
    inputs, outputs : lists of tensor names (the input is the ``ids`` tensor)
    meta : dict of model facts (architecture, sizes, eps, ...) for the host and the reports
    """

    name: str
    tensors: dict = field(default_factory=dict)
    ops: list = field(default_factory=list)
    weights: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def tensor(self, name, dtype, shape, scale=None, row_scale=None):
        """Declare a tensor (names are unique) and return its name."""
        if name in self.tensors or name in self.weights:
            raise ValueError(f"tensor {name!r} is declared twice")
        self.tensors[name] = TensorInfo(name, dtype, tuple(shape), scale, row_scale)
        return name

    def weight(self, name, array):
        """Add a constant integer array and return its name."""
        if name in self.tensors or name in self.weights:
            raise ValueError(f"weight {name!r} is declared twice")
        array = np.asarray(array)
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"weight {name!r} must be an integer array, got {array.dtype}")
        self.weights[name] = array
        return name

    def op(self, kind, inputs, outputs, params=None, **attrs):
        """Append an op; every input must already exist."""
        for name in inputs:
            if name not in self.tensors and name not in self.weights:
                raise ValueError(f"{kind} op reads unknown tensor {name!r}")
        for name in outputs:
            if name not in self.tensors:
                raise ValueError(f"{kind} op writes undeclared tensor {name!r}")
        self.ops.append(Op(kind, inputs, outputs, params, attrs))

    def validate(self):
        """Check that every tensor is written once before it is read and outputs exist."""
        written = set(self.inputs)
        for op in self.ops:
            for name in op.inputs:
                if name not in written and name not in self.weights:
                    raise ValueError(f"{op.kind} op reads {name!r} before it is written")
            for name in op.outputs:
                if name in written:
                    raise ValueError(f"tensor {name!r} is written twice")
                written.add(name)
        for name in self.outputs:
            if name not in written:
                raise ValueError(f"graph output {name!r} is never written")

    def summary(self):
        """Op counts by kind and the number of weight bytes (int8)."""
        counts = {}
        for op in self.ops:
            counts[op.kind] = counts.get(op.kind, 0) + 1
        weight_bytes = sum(w.size * w.itemsize for w in self.weights.values())
        return {"ops": counts, "weight_bytes": weight_bytes, "tensors": len(self.tensors)}


def rope_tables(positions, head_dim, theta):
    """Host integer RoPE tables ``(cos, sin)``, each (len(positions), head_dim // 2) int16 in
    Q14, rotate-half layout (frequency ``i`` drives dims ``i`` and ``i + head_dim/2``)."""
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = np.outer(np.asarray(positions, dtype=np.float64), inv_freq)
    one = 2**ROPE_FRAC_BITS
    return (np.round(np.cos(angles) * one).astype(np.int64),
            np.round(np.sin(angles) * one).astype(np.int64))
