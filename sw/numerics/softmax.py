"""Integer softmax over rows of int32 attention logits with uint8 probabilities out.

Algorithm (base 2, table-driven, no float and no per-element divider):

1. optional additive mask (int32, saturating add) and causal mask decide the valid positions;
2. ``mx = max`` over valid logits, ``d = mx - x`` (33-bit, ``0 <= d < 2**32``);
3. ``u = round_shift(d * m * mant[r], s - exp[r])``: ``d`` scaled to log2 units with
   ``EXP_FRAC_BITS`` fractional bits (``u / 2**8 = d * scale * log2(e)``);
4. ``e = round_shift(EXP_TABLE[u & 255], u >> 8)`` (0 when ``u >> 8 >= 16``):
   ``e ~= 2**15 * 2**(-u / 256)``, 16 bits, ``e = 2**15`` at the maximum;
5. ``sum = sum(e)`` (``15 + ceil(log2(max_row)) + 1`` bits: 28 bits for 4096);
6. ``b = bit_length(sum)``; one reciprocal per row ``r = floor(2**(b+15) / sum)``
   (``2**15 < r <= 2**16``);
7. ``p = sat_u8(round_shift(e * r, b + 7))`` (``e * r <= 2**31``): probability ``p / 256``.
"""

from dataclasses import dataclass

import numpy as np

from systolic.hw.formats import (EXP_FRAC_BITS, EXP_ONE_BITS, EXP_TABLE, EXP_ZERO_FROM,
                                 INT32_MASK_NEG_INF, PROB_BITS, ROW_EXP_MAX)
# The longest row the golden model accepts (the hardware parameter max_row may be smaller).
from systolic.hw.formats import SOFTMAX_MAX_ROW as MAX_ROW

from .fixed import (as_int, bit_length, check_dyadic, dyadic, floor_div, round_shift,
                    saturate, scale_dyadic)


@dataclass(frozen=True)
class SoftmaxParams:
    """Integer parameters of :func:`softmax`.

    Members
    -------
    m : int
        Mantissa (``0 < m < 2**15``) of the static logit multiplier.
    s : int
        Its right shift (0..62; with a row scale the shift is ``s - row.exp``).
    """

    m: int
    s: int

    def __post_init__(self):
        m, s = check_dyadic("softmax multiplier", self.m, self.s)
        if m.ndim or m <= 0:
            raise ValueError("softmax multiplier must be a positive scalar")
        object.__setattr__(self, "m", int(m))
        object.__setattr__(self, "s", int(s))

    @classmethod
    def from_float(cls, logit_scale, row_source_bits=None):
        """Host side: ``logit_scale`` is the real (natural-log) logit per accumulator unit,
        e.g. ``S_q * S_k / sqrt(head_dim)`` (with a row scale on Q: ``S_src / 127 * S_k /
        sqrt(head_dim)``, the row mantissa being applied at run time)."""
        min_shift = 0 if row_source_bits is None else ROW_EXP_MAX[row_source_bits]
        m, s = dyadic(logit_scale * np.log2(np.e) * 2**EXP_FRAC_BITS, min_shift=min_shift)
        return cls(int(m), int(s))


def valid_positions(shape, q_index=None, mask=None):
    """Boolean (rows, cols) array of positions that take part in the softmax: all of them,
    minus ``j > q_index[r]`` (causal) and minus ``mask == INT32_MASK_NEG_INF``."""
    rows, cols = shape
    valid = np.ones(shape, dtype=bool)
    if q_index is not None:
        q_index = as_int("q_index", q_index, 32, ndim=1)
        if q_index.shape != (rows,):
            raise ValueError(f"q_index must have shape ({rows},), got {q_index.shape}")
        valid &= np.arange(cols)[None, :] <= q_index[:, None]
    if mask is not None:
        valid &= mask != INT32_MASK_NEG_INF
    return valid


def softmax(logits, params, row_scale=None, q_index=None, mask=None):
    """Golden integer softmax along the last axis.

    Parameters
    ----------
    logits : integer array (rows, cols), int32 values
        Raw ``Q K^T`` accumulators (any int32 value, extremes included).
    params : SoftmaxParams
        Static multiplier mapping accumulator units to ``2**-8`` log2 units.
    row_scale : RowScale or None
        Dynamic per-row scale of the int8 Q rows (consumed like in requantize).
    q_index : integer array (rows,) or None
        Causal mode: row ``r`` sees positions ``0..q_index[r]`` (e.g. ``offset + r`` in a
        prefill); positions after it contribute exactly zero.
    mask : integer array (rows, cols) or (cols,), int32 values, or None
        Additive padding mask in accumulator units, added with int32 saturation before the
        max. ``INT32_MASK_NEG_INF`` (-2**31) excludes a position exactly; 0 keeps it.

    Returns
    -------
    uint8 array (rows, cols): probabilities in units of 1/256 (1.0 saturates to 255).
    Rows with no valid position are all zero.
    """
    x = as_int("logits", logits, 32, ndim=2)
    rows, cols = x.shape
    if not 1 <= cols <= MAX_ROW:
        raise ValueError(f"row length must be in 1..{MAX_ROW}, got {cols}")
    if mask is not None:
        mask = np.broadcast_to(as_int("mask", mask, 32, ndim=(1, 2)), x.shape)
        x = saturate(x + mask, 32)
    valid = valid_positions(x.shape, q_index, mask)
    any_valid = valid.any(axis=1)
    mx = np.where(valid, x, np.iinfo(np.int64).min).max(axis=1)
    d = np.where(valid, mx[:, None] - x, 0)
    u = scale_dyadic(d, params.m, params.s, row_scale)
    frac = u & (2**EXP_FRAC_BITS - 1)
    ipart = np.minimum(u >> EXP_FRAC_BITS, EXP_ZERO_FROM)
    e = np.where(ipart >= EXP_ZERO_FROM, 0, round_shift(EXP_TABLE[frac], ipart))
    e = np.where(valid, e, 0)
    total = np.where(any_valid, e.sum(axis=1), 2**EXP_ONE_BITS)
    b = bit_length(total)
    recip = floor_div(np.left_shift(np.int64(1), b + EXP_ONE_BITS), total)
    p = round_shift(e * recip[:, None], (b + EXP_ONE_BITS - PROB_BITS)[:, None])
    p = np.where(any_valid[:, None], p, 0)
    return saturate(p, PROB_BITS, signed=False).astype(np.uint8)
