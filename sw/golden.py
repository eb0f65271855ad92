"""The "golden" backend: runs a quantized :class:`~.graph.Graph` with the bit-exact integer
models of :mod:`systolic.sw.numerics`. The accelerator must reproduce every tensor of
:func:`run` bit for bit; the float helpers at the end only measure accuracy."""

from dataclasses import dataclass, field

import numpy as np

from .graph import rope_tables
from .numerics import (eltwise_mul, gelu, layernorm, quantize_rows, requantize, residual_add,
                       rmsnorm, rope, silu, softmax)
from .numerics.fixed import as_int
from .numerics.matmul import Int32OverflowError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def matmul_exact(a, b):
    """Exact integer ``a @ b`` of int8/uint8 x int8 operands as int64 (float64 BLAS is exact
    here: every partial sum stays below 2**53); raises :class:`Int32OverflowError` when a
    result leaves the int32 accumulator. ``a`` is int8, or uint8 when it has no negative
    value (the array's unsigned 9-bit operand mode); ``b`` is int8."""
    a = np.asarray(a)
    unsigned = a.size > 0 and a.min() >= 0
    a = as_int("a (int8, or uint8 when non-negative)", a, 8, signed=not unsigned)
    b = as_int("b", b, 8)
    c = np.rint(np.asarray(a, np.float64) @ np.asarray(b, np.float64)).astype(np.int64)
    if c.size and (c.min() < INT32_MIN or c.max() > INT32_MAX):
        raise Int32OverflowError("matmul result leaves the int32 accumulator range")
    return c


def _head_groups(heads, kv_heads):
    if heads % kv_heads:
        raise ValueError(f"{heads} heads cannot share {kv_heads} KV heads")
    return heads // kv_heads


def _matmul(op, a, b):
    heads, kv_heads = op.attrs.get("heads", 1), op.attrs.get("kv_heads", 1)
    group = _head_groups(heads, kv_heads)
    if op.attrs.get("transpose_b"):  # scores: (seq, H*dh) x (keys, KVH*dh)^T -> (H, seq, keys)
        dh = a.shape[1] // heads
        return np.stack([matmul_exact(a[:, h * dh:(h + 1) * dh],
                                      b[:, (h // group) * dh:(h // group + 1) * dh].T)
                         for h in range(heads)])
    if a.ndim == 3:  # context: (H, seq, keys) x (keys, KVH*dh) -> (seq, H*dh)
        dh = b.shape[1] // kv_heads
        return np.concatenate([matmul_exact(a[h], b[:, (h // group) * dh:(h // group + 1) * dh])
                               for h in range(heads)], axis=1)
    return matmul_exact(a, b)


def _softmax(op, scores, row_scale, positions):
    heads, seq, keys = scores.shape
    q_index = positions if op.attrs.get("causal") else None
    return np.stack([softmax(scores[h], op.params[h], row_scale, q_index) for h in range(heads)])


def _embed(graph, op, ids, positions):
    total = 0
    for table, index in op.attrs["tables"]:
        rows = {"token": ids, "position": positions + op.attrs.get("position_offset", 0),
                "type0": np.zeros_like(ids)}[index]
        total = total + graph.weights[table][rows].astype(np.int64)
    return total


def evaluate(graph, op, args, ids, positions):
    """The outputs (a tuple) of ``op`` on its integer arguments ``args`` (in the order of
    ``op.inputs``; row scales as :class:`RowScale`), for the tokens ``ids`` at ``positions``."""
    kind, attrs = op.kind, op.attrs
    if kind == "embed":
        return (_embed(graph, op, ids, positions),)
    if kind == "layernorm":
        return (layernorm(args[0], op.params),)
    if kind == "rmsnorm":
        return (rmsnorm(args[0], op.params),)
    if kind == "rowquant":
        return quantize_rows(args[0], attrs["in_bits"])
    if kind == "matmul":
        return (_matmul(op, *args),)
    if kind == "requantize":
        return (requantize(args[0], op.params, *args[1:]),)
    if kind == "softmax":
        return (_softmax(op, args[0], args[1] if len(args) > 1 else None, positions),)
    if kind == "gelu":
        return (gelu(args[0], attrs["frac_bits"]),)
    if kind == "silu":
        return (silu(args[0], attrs["frac_bits"]),)
    if kind == "mul":
        return (eltwise_mul(args[0], args[1], op.params),)
    if kind == "add":
        return (residual_add(args[0], args[1], op.params),)
    if kind == "rope":
        cos, sin = rope_tables(positions, attrs["head_dim"], attrs["theta"])
        return (rope(args[0], cos, sin, attrs["heads"]),)
    raise ValueError(f"the golden backend has no op {kind!r}")


def attention_inputs(graph):
    """``(keys, values)``: the sets of tensors that attention reads as keys (``b`` of the
    ``transpose_b`` matmuls) and as values (``b`` of the matmuls of 3-D probabilities) — what
    a KV cache holds."""
    keys, values = set(), set()
    for op in graph.ops:
        if op.kind == "matmul" and op.inputs[1] in graph.tensors:
            if op.attrs.get("transpose_b"):
                keys.add(op.inputs[1])
            elif len(graph.tensors[op.inputs[0]].shape) == 3:
                values.add(op.inputs[1])
    return keys, values


@dataclass
class KVCache:
    """Integer keys and values (after quantization) of the ``length`` tokens run so far, per
    attention input tensor of a graph (see :func:`attention_inputs`)."""

    tensors: dict = field(default_factory=dict)
    length: int = 0


def run(graph, ids, start=None, cache=None):
    """Run ``graph`` on the token ids ``ids`` (1-D) at positions ``start ..``; returns the
    dict of every tensor (integer arrays, :class:`RowScale` for row scales).

    With a :class:`KVCache` (decoding), attention reads the cached keys and values of the
    ``cache.length`` earlier tokens followed by the new ones, and the cache is extended;
    ``start`` then defaults to (and must equal) ``cache.length``."""
    ids = as_int("ids", ids, 32, ndim=1)
    if ids.size == 0:
        raise ValueError("ids is empty")
    if cache is not None:
        start = cache.length if start is None else start
        if start != cache.length:
            raise ValueError(f"start {start} differs from the {cache.length} cached tokens")
        cached = set().union(*attention_inputs(graph))
    start = 0 if start is None else start
    positions = start + np.arange(len(ids))
    env = {"ids": ids}
    for op in graph.ops:
        args = [env[name] if name in env else graph.weights[name] for name in op.inputs]
        if cache is not None and op.kind == "matmul" and op.inputs[1] in cached:
            name = op.inputs[1]
            previous = cache.tensors.get(name, np.zeros((0, args[1].shape[1]), np.int64))
            args[1] = cache.tensors[name] = np.concatenate([previous, args[1]])
        env.update(zip(op.outputs, evaluate(graph, op, args, ids, positions)))
    if cache is not None:
        cache.length += len(ids)
    return env


def dequantize(graph, env, name):
    """Float value of tensor ``name`` of a :func:`run` result (static or per-row scale)."""
    info = graph.tensors[name]
    value = np.asarray(env[name], dtype=np.float64)
    value = value * np.asarray(info.scale, dtype=np.float64)
    if info.row_scale is not None:
        value = value * env[info.row_scale].real()[:, None]
    return value


def sentence_embedding(graph, hidden):
    """L2-normalized mean of the dequantized integer last hidden states ``hidden`` (seq,
    hidden) of an encoder graph: the float pooling the host does after the integer model."""
    pooled = dequantize(graph, {graph.outputs[0]: hidden}, graph.outputs[0]).mean(axis=0)
    return pooled / np.linalg.norm(pooled)


def encoder_embeddings(graph, model, texts):
    """L2-normalized mean-pooled sentence embeddings computed by the golden integer model
    (only the pooling of the dequantized last hidden states runs in float on the host)."""
    return np.stack([sentence_embedding(graph, run(graph, model.tokenize(text))[graph.outputs[0]])
                     for text in texts])


def decoder_logits(graph, ids):
    """Float logits (len(ids), vocab) of the causal prefix ``ids`` from the golden model."""
    return dequantize(graph, run(graph, ids), graph.outputs[0])
