"""Integer rotary position embedding (a host op: RoPE stays on the host for now)."""

import numpy as np

from .fixed import as_int, round_shift, saturate


def rope(x, cos, sin, heads, frac_bits=14):
    """Golden host RoPE in the rotate-half layout of Hugging Face llama.

    Parameters
    ----------
    x : integer array (seq, heads * head_dim), int16 values (any static scale)
    cos, sin : integer arrays (seq, head_dim // 2), ``round(cos(angle) * 2**frac_bits)``
        for each token's position (:func:`systolic.sw.graph.rope_tables`)
    heads : number of heads in ``x``

    Returns
    -------
    int64 array like ``x``, int16 values in the same scale: per head, with halves ``x1, x2``,
    ``y1 = round_shift(x1*cos - x2*sin, 14)``, ``y2 = round_shift(x2*cos + x1*sin, 14)``,
    saturated to int16 (products < 2**30, sums < 2**31).
    """
    x = as_int("x", x, 16, ndim=2)
    seq, width = x.shape
    if width % (2 * heads):
        raise ValueError(f"width {width} is not heads={heads} times an even head_dim")
    half = width // heads // 2
    cos = as_int("cos", cos, 16, ndim=2)[:, None, :]
    sin = as_int("sin", sin, 16, ndim=2)[:, None, :]
    if cos.shape != (seq, 1, half) or sin.shape != cos.shape:
        raise ValueError(f"cos/sin must have shape ({seq}, {half})")
    xh = x.reshape(seq, heads, 2, half)
    x1, x2 = xh[:, :, 0], xh[:, :, 1]
    y1 = round_shift(x1 * cos - x2 * sin, frac_bits)
    y2 = round_shift(x2 * cos + x1 * sin, frac_bits)
    return saturate(np.stack([y1, y2], axis=2).reshape(seq, width), 16)
