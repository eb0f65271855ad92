"""Fixed-point primitives shared by every golden model: the one rounding rule, saturation,
dyadic multipliers, per-row scales and the exact integer helpers (bit length, square root,
division) that hardware implements with a priority encoder or a one-bit-per-step iteration.

All golden arithmetic runs in NumPy ``int64``; each function states the largest magnitude it
produces so that neither int64 nor the hardware widths in ``docs/numerics.md`` can overflow.
"""

from dataclasses import dataclass

import numpy as np

# The formats are the hardware/software contract, defined once in systolic.hw.formats and
# re-exported here for the golden models and their users.
from systolic.hw.formats import (  # noqa: F401
    INT32_MASK_NEG_INF, MANT_BITS, MANT_WIDTH, MAX_SHIFT, OUT_BITS, QMAX, ROW_EXP_MAX,
    ROW_EXP_WIDTH)

RANGES = {
    ("int", 8): (-(2**7), 2**7 - 1),
    ("int", 16): (-(2**15), 2**15 - 1),
    ("int", 32): (-(2**31), 2**31 - 1),
    ("uint", 8): (0, 2**8 - 1),
    ("uint", 16): (0, 2**16 - 1),
}


def int_range(bits, signed=True):
    """``(lo, hi)`` of a ``bits``-wide signed or unsigned integer."""
    key = ("int" if signed else "uint", bits)
    if key not in RANGES:
        raise ValueError(f"unsupported integer format {key[0]}{bits}")
    return RANGES[key]


def check_out_bits(out_bits):
    """Raise :class:`ValueError` unless ``out_bits`` is one of :data:`OUT_BITS`."""
    if isinstance(out_bits, bool) or out_bits not in OUT_BITS:
        raise ValueError(f"out_bits must be one of {OUT_BITS}, not {out_bits!r}")
    return out_bits


def as_int(name, x, bits, signed=True, ndim=None):
    """``x`` as an int64 array after checking dtype, range and (optionally) dimensionality.

    Raises :class:`TypeError` for a non-integer dtype and :class:`ValueError` naming
    ``name`` for values outside the ``bits``-wide range or a wrong number of dimensions.
    """
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
        raise TypeError(f"{name} must hold integers, got dtype {x.dtype}")
    if ndim is not None and x.ndim not in np.atleast_1d(ndim):
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {x.shape}")
    lo, hi = int_range(bits, signed)
    x = x.astype(np.int64)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"{name} has values outside {'' if signed else 'u'}int{bits} "
                         f"range {lo}..{hi}")
    return x


def saturate(x, bits, signed=True):
    """Clamp ``x`` to the ``bits``-wide integer range (hardware saturates, never wraps)."""
    lo, hi = int_range(bits, signed)
    return np.clip(np.asarray(x, dtype=np.int64), lo, hi)


def round_shift(x, s):
    """The single rounding rule: ``(x + 2**(s-1)) >> s`` (round half up, i.e. towards
    +inf on ties) with an arithmetic shift; ``s == 0`` returns ``x`` unchanged.

    ``x`` is int64 with ``|x| < 2**62`` and ``0 <= s <= 62`` (both broadcast), so the sum
    cannot overflow. Hardware: an adder of the width of ``x`` plus a barrel shifter.
    """
    x = np.asarray(x, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    if s.size and (s.min() < 0 or s.max() > MAX_SHIFT):
        raise ValueError(f"shift must be in 0..{MAX_SHIFT}, got {s.min()}..{s.max()}")
    half = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
    return (x + half) >> s


def bit_length(x):
    """Number of significant bits of non-negative int64 values (0 for 0); in hardware a
    count-leading-zeros: ``bit_length(x) = width - clz(x)``."""
    v = np.asarray(x, dtype=np.int64).copy()
    if v.size and v.min() < 0:
        raise ValueError("bit_length needs non-negative values")
    n = np.zeros(v.shape, dtype=np.int64)
    for step in (32, 16, 8, 4, 2, 1):
        big = v >= (np.int64(1) << step)
        n += np.where(big, step, 0)
        v = np.where(big, v >> step, v)
    return n + (v > 0)


def isqrt(x):
    """Exact ``floor(sqrt(x))`` of non-negative int64 values below 2**62 (hardware: the
    restoring square root, one result bit per step)."""
    x = np.asarray(x, dtype=np.int64)
    if x.size and (x.min() < 0 or x.max() >= 2**62):
        raise ValueError("isqrt needs values in 0..2**62-1")
    r = np.floor(np.sqrt(x.astype(np.float64))).astype(np.int64)
    for _ in range(3):  # the float estimate is within +-2 of the answer below 2**62
        r = np.where(r * r > x, r - 1, r)
        r = np.where((r + 1) * (r + 1) <= x, r + 1, r)
    return r


def floor_div(a, b):
    """Exact ``floor(a / b)`` for ``a >= 0`` and ``b > 0`` int64 (hardware: a restoring
    divider producing one quotient bit per step)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if (a.size and a.min() < 0) or (b.size and b.min() <= 0):
        raise ValueError("floor_div needs a >= 0 and b > 0")
    return a // b


def dyadic(real, min_shift=0):
    """Host side: integer mantissa ``m`` and right shift ``s`` with ``m * 2**-s ~= real``.

    ``real`` (float, any shape, any sign) is rounded to 15 significant bits:
    ``2**14 <= |m| < 2**15`` whenever ``min_shift <= s <= MAX_SHIFT`` allows it (tiny values
    get ``s = MAX_SHIFT`` and a smaller or zero ``m``; zero gives ``m = 0, s = min_shift``).
    ``min_shift`` reserves headroom for a per-row exponent subtracted from ``s`` at run time.
    Raises :class:`ValueError` when ``|real|`` is too large to fit with ``s >= min_shift``.
    Returns two int64 arrays shaped like ``real``.
    """
    real = np.asarray(real, dtype=np.float64)
    if not np.all(np.isfinite(real)):
        raise ValueError("dyadic multiplier must be finite")
    mag = np.abs(real)
    with np.errstate(divide="ignore"):
        exp = np.where(mag > 0, np.floor(np.log2(np.where(mag > 0, mag, 1.0))), 0)
    s = np.clip(MANT_BITS - 1 - exp.astype(np.int64), min_shift, MAX_SHIFT)
    m = np.round(real * np.exp2(s.astype(np.float64))).astype(np.int64)
    renorm = (np.abs(m) >= 2**MANT_BITS) & (s > min_shift)  # rounding carried into bit 15
    s = np.where(renorm, s - 1, s)
    m = np.where(renorm, np.round(real * np.exp2(s.astype(np.float64))).astype(np.int64), m)
    if m.size and np.abs(m).max() >= 2**MANT_BITS:
        raise ValueError(f"multiplier {mag.max():g} too large for a {MANT_BITS}-bit mantissa "
                         f"with shift >= {min_shift}")
    s = np.where(m == 0, min_shift, s)
    return m, s


def check_dyadic(name, m, s, shape=None):
    """Validate a dyadic multiplier pair and return it as int64 arrays."""
    m = as_int(f"{name} mantissa", m, MANT_WIDTH)
    s = as_int(f"{name} shift", s, 8, signed=False)
    if m.size and np.abs(m).max() >= 2**MANT_BITS:
        raise ValueError(f"{name} mantissa must satisfy |m| < 2**{MANT_BITS}")
    if s.size and s.max() > MAX_SHIFT:
        raise ValueError(f"{name} shift must be <= {MAX_SHIFT}")
    if shape is not None:
        try:
            np.broadcast_shapes(m.shape, s.shape, shape)
        except ValueError:
            raise ValueError(f"{name} of shape {m.shape}/{s.shape} does not broadcast to "
                             f"{shape}") from None
    return m, s


@dataclass(frozen=True)
class RowScale:
    """A dynamic per-row scale produced by :func:`~.rowquant.quantize_rows`.

    Members
    -------
    mant : int64 array, shape (rows,)
        0 (all-zero row) or a normalized mantissa in ``[2**14, 2**15)``.
    exp : int64 array, shape (rows,)
        Exponent in ``-14..ROW_EXP_MAX[source_bits]``.

    Meaning: one int8 step of row ``t`` equals ``mant[t] * 2**exp[t] / QMAX`` units of the
    wide source tensor, i.e. real value = ``q * S_src * mant * 2**exp / 127``. A consumer
    multiplies by ``mant`` and shifts by ``s - exp`` (``S_src / 127`` is folded into its
    static multiplier).
    """

    mant: np.ndarray
    exp: np.ndarray

    def __post_init__(self):
        mant = as_int("row scale mantissa", self.mant, MANT_WIDTH, signed=False, ndim=1)
        exp = as_int("row scale exponent", self.exp, ROW_EXP_WIDTH, ndim=1)
        if mant.shape != exp.shape:
            raise ValueError(f"row scale mantissa {mant.shape} and exponent {exp.shape} differ")
        if np.any((mant != 0) & ((mant < 2**(MANT_BITS - 1)) | (mant >= 2**MANT_BITS))):
            raise ValueError("row scale mantissa must be 0 or in [2**14, 2**15)")
        object.__setattr__(self, "mant", mant)
        object.__setattr__(self, "exp", exp)

    def __len__(self):
        return len(self.mant)

    def real(self):
        """Float value of one int8 step in source units (host/tests only)."""
        return self.mant * np.exp2(self.exp.astype(np.float64)) / QMAX


def scale_dyadic(x, m, s, row_scale=None):
    """``round_shift(x * m * row.mant, s - row.exp)``: a static dyadic multiplier (per
    channel, broadcast along the last axis) times an optional dynamic per-row scale
    (broadcast along the first axis of 2-D ``x``), with one rounding.

    Bounds: ``|x| <= 2**32``, ``|m| < 2**15`` and ``mant < 2**15`` give ``|x*m*mant| < 2**62``.
    The total shift ``s - exp`` must lie in ``0..62``; the compiler guarantees it by choosing
    ``s >= ROW_EXP_MAX[source bits]`` (:func:`dyadic` with ``min_shift``), and a violation
    raises :class:`ValueError` instead of computing a different value from hardware.
    """
    x = np.asarray(x, dtype=np.int64)
    if x.size and np.abs(x).max() > 2**32:
        raise ValueError("scale_dyadic input exceeds 33 bits")
    prod = x * np.asarray(m, dtype=np.int64)
    shift = np.asarray(s, dtype=np.int64)
    if row_scale is not None:
        if x.ndim != 2 or len(row_scale) != x.shape[0]:
            raise ValueError(f"row scale of {len(row_scale)} rows does not match input "
                             f"shape {x.shape}")
        prod = prod * row_scale.mant[:, None]
        shift = shift - row_scale.exp[:, None]
    return round_shift(prod, shift)
