"""Integer GELU (exact-erf GELU of BERT) by a 256-segment piecewise-linear table."""

from systolic.hw.formats import GELU_RANGE_LOG2, SEG_LOG2, gelu_knots

from .pwl import PwlTable, pwl_apply

#: GELU table: [-8, 8) in segments of 1/16 (257 knots); chord error <= 4e-4.
GELU_TABLE = PwlTable(gelu_knots(), GELU_RANGE_LOG2, SEG_LOG2)


def gelu(x, frac_bits):
    """Golden GELU of int16 fixed-point ``x`` (``frac_bits`` fraction bits, 4..15) to int16
    in the same format; see :func:`~.pwl.pwl_apply` for the exact arithmetic.
    Above +8 the output is ``x``, below -8 it is 0 (|GELU error| there < 1e-14)."""
    return pwl_apply(x, GELU_TABLE, frac_bits)
