"""Number formats and tables of the integer datapath: the hardware/software numeric contract.

Each constant and table of the vector units is defined here once, and both sides read it:
the gateware in ``hw/`` (port and datapath widths, ROM contents) and the bit-exact golden
models in ``sw/numerics/`` (which re-export these names where they have always been
importable, e.g. ``systolic.sw.numerics.softmax.EXP_TABLE``). ``docs/numerics.md`` states
the algorithms these formats belong to, with their widths and accuracy.
``tests/test_units_generation.py`` fails when one of these names is assigned again anywhere
else in ``hw/`` or ``sw/``.

This module imports nothing from the repository (``hw/`` never imports ``sw/``), only NumPy.
Tables are read-only int64 arrays.
"""

import math
from functools import cache

import numpy as np

__all__ = [
    "MANT_BITS", "MANT_WIDTH", "MAX_SHIFT", "SHIFT_WIDTH", "QMAX", "ROW_EXP_WIDTH",
    "ROW_EXP_MAX", "OUT_BITS", "INT32_MASK_NEG_INF", "RECIP_BITS",
    "EXP_FRAC_BITS", "EXP_ONE_BITS", "EXP_TABLE", "EXP_ZERO_FROM", "PROB_BITS",
    "SOFTMAX_MAX_ROW", "NORM_MAX_ROW", "PRESCALE_BITS", "INV_BITS", "EPS_MAX", "EPS_BITS",
    "SQRT_IN_BITS", "LAYERNORM_Z_FRAC_BITS", "RMSNORM_Z_FRAC_BITS", "PWL_WIDTH",
    "TABLE_FRAC_BITS", "GELU_RANGE_LOG2", "SILU_RANGE_LOG2", "SEG_LOG2", "erf",
    "gelu_reference", "silu_reference", "pwl_knots", "gelu_knots", "silu_knots",
]


def _read_only(table):
    table.setflags(write=False)
    return table


# Dyadic multipliers and per-row scales (golden: sw/numerics/fixed.py) -------------------

#: Magnitude bound of every dyadic mantissa: ``|m| < 2**MANT_BITS``. Host code normalizes
#: mantissas into ``[2**(MANT_BITS-1), 2**MANT_BITS)`` (15 significant bits, relative error
#: <= 2**-15, far below one int8 or int16 step) so hardware needs 16-bit signed multipliers.
MANT_BITS = 15
#: Width of a signed dyadic mantissa field and of an unsigned row-scale mantissa field.
MANT_WIDTH = MANT_BITS + 1
#: Largest right shift of any dyadic product (keeps ``x*m + 2**(s-1)`` below 2**63).
MAX_SHIFT = 62
#: Width of a dyadic right-shift field (0..MAX_SHIFT).
SHIFT_WIDTH = MAX_SHIFT.bit_length()
#: Largest int8 magnitude used by dynamic per-row quantization (symmetric range -127..127).
QMAX = 127
#: Width of the signed exponent of a row scale (``RowScale.exp``).
ROW_EXP_WIDTH = 8
#: Largest per-row exponent a row scale of an int16 / int32 source can carry (see
#: ``rowquant.row_scale_of_maxabs``); a consumer's static shift must be at least this large.
ROW_EXP_MAX = {16: 2, 32: 18}
#: Output widths of the units with a selectable signed output (requantize, eltwise, norms).
OUT_BITS = (8, 16, 32)
#: Additive-mask value that excludes a softmax position exactly (minus infinity).
INT32_MASK_NEG_INF = -(2**31)

# Per-row quantization (golden: sw/numerics/rowquant.py) ----------------------------------

#: Fractional bits of the per-row reciprocal ``R = floor(QMAX * 2**RECIP_BITS / mant)``.
RECIP_BITS = 29

# Softmax (golden: sw/numerics/softmax.py) -------------------------------------------------

#: Fractional bits of the base-2 exponent ``u`` (a 256-entry table of 2**(-k/256)).
EXP_FRAC_BITS = 8
#: Bits of the table entries / of ``e`` at the row maximum (``e <= 2**EXP_ONE_BITS``).
EXP_ONE_BITS = 15
#: ``EXP_TABLE[k] = round(2**15 * 2**(-k / 256))``, k = 0..255 (values 16468..32768).
EXP_TABLE = _read_only(np.round(2.0**EXP_ONE_BITS * np.exp2(-np.arange(2**EXP_FRAC_BITS)
                                                            / 2**EXP_FRAC_BITS)
                                ).astype(np.int64))
#: Integer exponent from which ``e`` is 0 whatever the table entry (2**15 >> 16 rounds to 0).
EXP_ZERO_FROM = EXP_ONE_BITS + 1
#: Probability scale: ``p / 2**PROB_BITS``; 1.0 saturates to 255 (uint8 output).
PROB_BITS = 8
#: Longest softmax row (the hardware parameter ``max_row`` may be smaller; ``sum`` needs
#: ``16 + ceil(log2(max_row))`` bits).
SOFTMAX_MAX_ROW = 2**16

# LayerNorm and RMSNorm (golden: sw/numerics/norm.py, layernorm.py, rmsnorm.py) -----------

#: Longest normalized row (keeps every intermediate inside the widths of docs/numerics.md).
NORM_MAX_ROW = 2**14
#: Magnitude bits of the pre-scaled row: ``|xs| <= 2**15``.
PRESCALE_BITS = 15
#: Quotient bits of the reciprocal square root ``inv = floor(2**40 / sq)``.
INV_BITS = 40
#: Largest epsilon term (units of the squared input); keeps ``D + eps`` below 2**57.
EPS_MAX = 2**56
#: Width of the unsigned ``eps_q`` config input (0..EPS_MAX).
EPS_BITS = EPS_MAX.bit_length()
#: The denominator is normalized into ``[2**(SQRT_IN_BITS-2), 2**SQRT_IN_BITS)`` by even
#: shifts before the square root (whose result has ``SQRT_IN_BITS / 2`` bits).
SQRT_IN_BITS = 32
#: Fraction bits of the normalized value of LayerNorm ``z = (x - mean) / std``
#: (``|z| <= sqrt(n)``) and of RMSNorm ``z = x / sqrt(sum(x**2))`` (``|z| <= 1``).
LAYERNORM_Z_FRAC_BITS = 16
RMSNORM_Z_FRAC_BITS = 22

# Piecewise-linear activations (golden: sw/numerics/pwl.py, gelu.py, silu.py) --------------

#: Width of the signed fixed-point input and output of GELU and SiLU (fraction bits 4..15).
PWL_WIDTH = 16
#: Fractional bits of the table entries (``knots[k] = round(f(x_k) * 2**14)``).
TABLE_FRAC_BITS = 14
#: The GELU table covers ``[-2**3, 2**3)``, the SiLU table ``[-2**4, 2**4)``, both in
#: segments of ``2**-4``.
GELU_RANGE_LOG2 = 3
SILU_RANGE_LOG2 = 4
SEG_LOG2 = 4

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    """Exact ``erf`` element-wise (float64)."""
    return _erf(np.asarray(x, dtype=np.float64)).astype(np.float64)


def gelu_reference(x):
    """Float exact-erf GELU ``x * Phi(x)`` (as in BERT / MiniLM), float64."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def silu_reference(x):
    """Float SiLU ``x * sigmoid(x)`` (llama SwiGLU gate), overflow-free, float64."""
    x = np.asarray(x, dtype=np.float64)
    return x * 0.5 * (1.0 + np.tanh(0.5 * x))


def pwl_knots(func, range_log2, seg_log2=SEG_LOG2):
    """Knots of a piecewise-linear table: ``round(func(x_k) * 2**TABLE_FRAC_BITS)`` at
    ``x_k = -2**range_log2 + k * 2**-seg_log2``, ``k = 0..2 * 2**(range_log2 + seg_log2)``
    (int64 array). ``func`` is a vectorized float function."""
    n = 2 << (range_log2 + seg_log2)
    xk = -(2.0**range_log2) + np.arange(n + 1) / 2.0**seg_log2
    return np.round(func(xk) * 2.0**TABLE_FRAC_BITS).astype(np.int64)


@cache
def gelu_knots():
    """The GELU table (257 knots over [-8, 8]; chord error <= 4e-4), read-only."""
    return _read_only(pwl_knots(gelu_reference, GELU_RANGE_LOG2, SEG_LOG2))


@cache
def silu_knots():
    """The SiLU table (513 knots over [-16, 16]; chord error <= 2.5e-4), read-only."""
    return _read_only(pwl_knots(silu_reference, SILU_RANGE_LOG2, SEG_LOG2))
