"""Element-wise units: the SwiGLU product and the residual add."""

from dataclasses import dataclass

import numpy as np

from .fixed import as_int, check_dyadic, check_out_bits, dyadic, round_shift, saturate


@dataclass(frozen=True)
class Scale:
    """A static dyadic multiplier (scalar or per channel) and an output width.

    Members
    -------
    m : int64 array, ``|m| < 2**15``
    s : int64 array, 0..62
    out_bits : 8, 16 or 32
    """

    m: np.ndarray
    s: np.ndarray
    out_bits: int = 16

    def __post_init__(self):
        check_out_bits(self.out_bits)
        m, s = check_dyadic("multiplier", self.m, self.s)
        object.__setattr__(self, "m", m)
        object.__setattr__(self, "s", s)

    @classmethod
    def from_float(cls, multiplier, out_bits=16):
        """Host side: real output units per input unit."""
        return cls(*dyadic(multiplier), out_bits)


def eltwise_mul(a, b, scale=None):
    """Golden element-wise product (SwiGLU ``silu(gate) * up``).

    ``a`` and ``b``: integer arrays of equal shape with int16 values. Without ``scale`` the
    result is the exact product as int64 holding int31 values (``|a*b| <= 2**30``), ready for
    :func:`~.rowquant.quantize_rows` with ``in_bits=32``. With ``scale`` (:class:`Scale`):
    ``sat_out(round_shift(a * b * m, s))`` (46-bit product).
    """
    a = as_int("a", a, 16)
    b = as_int("b", b, 16)
    if a.shape != b.shape:
        raise ValueError(f"a {a.shape} and b {b.shape} must have the same shape")
    prod = a * b
    if scale is None:
        return prod
    return saturate(round_shift(prod * scale.m, scale.s), scale.out_bits)


@dataclass(frozen=True)
class ResidualParams:
    """Alignment of the two residual-add inputs to the output scale.

    Members
    -------
    a, b : Scale
        Multipliers of each input into output units (their ``out_bits`` are ignored).
    out_bits : 16 or 32
    """

    a: Scale
    b: Scale
    out_bits: int = 32

    def __post_init__(self):
        check_out_bits(self.out_bits)

    @classmethod
    def from_float(cls, mult_a, mult_b, out_bits=32):
        """Host side: real output units per unit of input ``a`` and of input ``b``."""
        return cls(Scale.from_float(mult_a), Scale.from_float(mult_b), out_bits)


def residual_add(a, b, params):
    """Golden residual add of two int32 tensors of equal shape with different scales::

        y = sat_out(round_shift(a * ma, sa) + round_shift(b * mb, sb))

    Each product is < 2**46; the sum is saturated (never wrapped) to ``params.out_bits``.
    Identity alignment is ``m = 2**14, s = 14`` (exact).
    """
    a = as_int("a", a, 32)
    b = as_int("b", b, 32)
    if a.shape != b.shape:
        raise ValueError(f"a {a.shape} and b {b.shape} must have the same shape")
    ya = round_shift(a * params.a.m, params.a.s)
    yb = round_shift(b * params.b.m, params.b.s)
    return saturate(ya + yb, params.out_bits)
