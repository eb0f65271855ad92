"""Float building blocks of the reference forward passes, as small functions over NumPy arrays.

Conventions shared by every function here:

- Activations are 2-D ``(seq, features)``; per-head tensors are 3-D ``(heads, seq, head_dim)``.
- Linear weights are stored ``(in_features, out_features)``, so ``x @ w + b`` is the layer
  (the transpose of PyTorch's ``nn.Linear.weight``).
- Results keep the input's float dtype (the models run in float32).
- ``record(name, array)`` arguments receive intermediate activations under short names
  (``"up"``, ``"act"``, ...); the model forward passes prefix them into capture keys.
"""

import math

import numpy as np

_erf = np.frompyfunc(math.erf, 1, 1)


def no_record(name, array):
    """The default ``record`` callback: keep nothing."""


def linear(x, w, b=None):
    """``x @ w (+ b)`` with ``w`` stored ``(in_features, out_features)``."""
    y = x @ w
    return y if b is None else y + b


def layer_norm(x, weight, bias, eps):
    """LayerNorm over the last axis (biased variance, as PyTorch)."""
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(var + eps) * weight + bias


def rms_norm(x, weight, eps):
    """RMSNorm over the last axis: ``x / sqrt(mean(x^2) + eps) * weight``."""
    ms = (x * x).mean(axis=-1, keepdims=True)
    return x / np.sqrt(ms + eps) * weight


def gelu(x):
    """Exact GELU, ``x * Phi(x) = x/2 * (1 + erf(x / sqrt 2))``, with erf in float64."""
    x64 = np.asarray(x, dtype=np.float64)
    phi = 0.5 * (1.0 + _erf(x64 / math.sqrt(2.0)).astype(np.float64))
    return (x64 * phi).astype(np.result_type(x, np.float32))


def silu(x):
    """SiLU (swish), ``x * sigmoid(x)``, computed without overflow for large ``|x|``."""
    return x * (0.5 * (1.0 + np.tanh(0.5 * x)))


def softmax(x, axis=-1):
    """Numerically stable softmax; entries equal to ``-inf`` get probability 0."""
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def split_heads(x, n_heads):
    """``(seq, n_heads * head_dim)`` -> ``(n_heads, seq, head_dim)``."""
    seq, width = x.shape
    if width % n_heads:
        raise ValueError(f"width {width} is not a multiple of n_heads={n_heads}")
    return x.reshape(seq, n_heads, width // n_heads).transpose(1, 0, 2)


def merge_heads(x):
    """``(n_heads, seq, head_dim)`` -> ``(seq, n_heads * head_dim)``."""
    n_heads, seq, head_dim = x.shape
    return x.transpose(1, 0, 2).reshape(seq, n_heads * head_dim)


def rope_cos_sin(positions, head_dim, theta, dtype=np.float32):
    """Cosine and sine tables ``(len(positions), head_dim)`` of rotary embedding in the
    Hugging Face "rotate half" layout: frequency ``i`` drives dimensions ``i`` and
    ``i + head_dim/2``. Angles are computed in float64, then cast to ``dtype``."""
    if head_dim % 2:
        raise ValueError(f"head_dim must be even for RoPE, got {head_dim}")
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = np.outer(np.asarray(positions, dtype=np.float64), inv_freq)
    angles = np.concatenate([angles, angles], axis=-1)
    return np.cos(angles).astype(dtype), np.sin(angles).astype(dtype)


def rotate_half(x):
    """``[x1, x2] -> [-x2, x1]`` over the last axis (halves of the head dimension)."""
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def apply_rope(x, cos, sin):
    """Rotary position embedding of ``x (heads, seq, head_dim)`` with tables from
    :func:`rope_cos_sin` for the same positions."""
    return x * cos + rotate_half(x) * sin


def causal_mask(n_queries, n_keys, dtype=np.float32):
    """Additive mask ``(n_queries, n_keys)``: 0 where allowed, ``-inf`` for future keys.

    The queries are the last ``n_queries`` of the ``n_keys`` positions (earlier keys come
    from a KV cache), so query ``i`` sees keys ``0 .. n_keys - n_queries + i``.
    """
    if n_queries > n_keys:
        raise ValueError(f"n_queries={n_queries} exceeds n_keys={n_keys}")
    offset = n_keys - n_queries
    future = np.arange(n_keys)[None, :] > (np.arange(n_queries)[:, None] + offset)
    return np.where(future, -np.inf, 0.0).astype(dtype)


def attention(q, k, v, mask=None):
    """Scaled dot-product attention with grouped-query sharing.

    ``q`` is ``(heads, n_q, head_dim)``; ``k`` and ``v`` are ``(kv_heads, n_k, head_dim)``
    with ``heads`` a multiple of ``kv_heads`` (query head ``h`` uses KV head
    ``h // (heads // kv_heads)``, as Hugging Face's ``repeat_kv``). ``mask`` is added to
    the scores (broadcast over heads). Returns ``(scores, probs, context)``: the scaled,
    masked pre-softmax scores and the probabilities, both ``(heads, n_q, n_k)``, and the
    context ``(heads, n_q, head_dim)``.
    """
    heads, kv_heads = q.shape[0], k.shape[0]
    if heads % kv_heads:
        raise ValueError(f"{heads} query heads cannot share {kv_heads} KV heads")
    group = heads // kv_heads
    if group > 1:
        k = np.repeat(k, group, axis=0)
        v = np.repeat(v, group, axis=0)
    scores = (q @ k.transpose(0, 2, 1)) * np.asarray(1.0 / math.sqrt(q.shape[-1]), q.dtype)
    if mask is not None:
        scores = scores + mask
    probs = softmax(scores)
    return scores, probs, probs @ v


def gelu_ffn(x, w_up, b_up, w_down, b_down, record=no_record):
    """BERT feed-forward: ``gelu(x @ w_up + b_up) @ w_down + b_down``.

    Records ``"up"`` (pre-activation), ``"act"`` and ``"down"``.
    """
    up = linear(x, w_up, b_up)
    record("up", up)
    act = gelu(up)
    record("act", act)
    down = linear(act, w_down, b_down)
    record("down", down)
    return down


def swiglu_ffn(x, w_gate, w_up, w_down, record=no_record):
    """Llama feed-forward: ``(silu(x @ w_gate) * (x @ w_up)) @ w_down``.

    Records ``"gate"`` (pre-SiLU), ``"up"``, ``"act"`` (``silu(gate) * up``) and ``"down"``.
    """
    gate = linear(x, w_gate)
    record("gate", gate)
    up = linear(x, w_up)
    record("up", up)
    act = silu(gate) * up
    record("act", act)
    down = linear(act, w_down)
    record("down", down)
    return down


def recorder(capture, prefix):
    """A ``record`` callback that stores into ``capture[prefix + name]``, or
    :func:`no_record` when ``capture`` is None."""
    if capture is None:
        return no_record

    def record(name, array):
        capture[prefix + name] = array

    return record
