"""Piecewise-linear evaluation of a smooth activation from a small table (used by GELU and
SiLU): uniform segments of width ``2**-seg_log2`` over ``[-2**range_log2, 2**range_log2)``,
identity above the range and zero below it (both functions tend to x and 0)."""

from dataclasses import dataclass

import numpy as np

from systolic.hw.formats import PWL_WIDTH, SEG_LOG2, TABLE_FRAC_BITS, pwl_knots

from .fixed import as_int, round_shift, saturate


@dataclass(frozen=True)
class PwlTable:
    """Knots of a piecewise-linear function (a ROM in hardware).

    Members
    -------
    knots : int64 array (2 * 2**(range_log2 + seg_log2) + 1,)
        ``round(f(x_k) * 2**TABLE_FRAC_BITS)`` at ``x_k = -2**range_log2 + k * 2**-seg_log2``.
        Hardware stores ``knots[k]`` and ``knots[k+1] - knots[k]`` per segment.
    range_log2 : int
        The table covers ``[-2**range_log2, 2**range_log2)``.
    seg_log2 : int
        Segment width ``2**-seg_log2``.
    """

    knots: np.ndarray
    range_log2: int
    seg_log2: int

    @property
    def segments(self):
        return 2 << (self.range_log2 + self.seg_log2)

    @classmethod
    def build(cls, func, range_log2, seg_log2=SEG_LOG2):
        """Host side: tabulate the float function ``func`` (vectorized)."""
        return cls(pwl_knots(func, range_log2, seg_log2), range_log2, seg_log2)


def pwl_apply(x, table, frac_bits):
    """Golden piecewise-linear unit.

    Parameters
    ----------
    x : integer array (any shape), int16 values, fixed point with ``frac_bits`` fraction bits
    table : PwlTable
    frac_bits : int, ``table.seg_log2 <= frac_bits <= 15``
        Fraction bits of both input and output (value = ``x * 2**-frac_bits``).

    Returns
    -------
    int64 array, int16 values in the same format. With ``g = frac_bits - seg_log2``,
    ``lo = -2**(range_log2 + frac_bits)``: for ``lo <= x < -lo``, ``k = (x - lo) >> g``,
    ``r = (x - lo) & (2**g - 1)``,
    ``y = round_shift((knots[k] << g) + (knots[k+1] - knots[k]) * r, 14 - seg_log2)``;
    ``y = x`` above the range, ``y = 0`` below; saturated to int16. Intermediate magnitude
    ``< 2**31`` for tables whose values stay below ``2**(range_log2+1)``.
    """
    x = as_int("x", x, PWL_WIDTH)
    if isinstance(frac_bits, bool) or not isinstance(frac_bits, (int, np.integer)) or \
            not table.seg_log2 <= frac_bits < PWL_WIDTH:
        raise ValueError(f"frac_bits must be an integer in {table.seg_log2}..{PWL_WIDTH - 1}, "
                         f"not {frac_bits!r}")
    g = frac_bits - table.seg_log2
    lo = -(1 << (table.range_log2 + frac_bits))
    inside = (x >= lo) & (x < -lo)
    off = np.where(inside, x - lo, 0)
    k = off >> g
    r = off & ((1 << g) - 1)
    base = table.knots[k]
    slope = table.knots[k + 1] - base
    y = round_shift((base << g) + slope * r, TABLE_FRAC_BITS - table.seg_log2)
    y = np.where(inside, y, np.where(x >= -lo, x, 0))
    return saturate(y, PWL_WIDTH)
