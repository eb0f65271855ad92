"""Integer SiLU (llama SwiGLU gate) by a 512-segment piecewise-linear table."""

from systolic.hw.formats import SEG_LOG2, SILU_RANGE_LOG2, silu_knots

from .pwl import PwlTable, pwl_apply

#: SiLU table: [-16, 16) in segments of 1/16 (513 knots); chord error <= 2.5e-4.
SILU_TABLE = PwlTable(silu_knots(), SILU_RANGE_LOG2, SEG_LOG2)


def silu(x, frac_bits):
    """Golden SiLU of int16 fixed-point ``x`` (``frac_bits`` fraction bits, 4..15) to int16
    in the same format; see :func:`~.pwl.pwl_apply`. Above +16 the output is ``x``, below
    -16 it is 0 (|SiLU error| there < 2e-6)."""
    return pwl_apply(x, SILU_TABLE, frac_bits)
