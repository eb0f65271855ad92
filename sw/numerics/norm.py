"""Arithmetic shared by LayerNorm and RMSNorm: per-row pre-scaling to 16 bits, the integer
inverse square root, and the per-channel affine output stage."""

from dataclasses import dataclass

import numpy as np

from systolic.hw.formats import EPS_MAX, INV_BITS, PRESCALE_BITS, SQRT_IN_BITS
# The longest normalized row (keeps every intermediate inside the widths of docs/numerics.md).
from systolic.hw.formats import NORM_MAX_ROW as MAX_NORM_DIM

from .fixed import (as_int, bit_length, check_dyadic, check_out_bits, dyadic,
                    floor_div, isqrt, round_shift, saturate)


def check_rows(x, params):
    """Validate a (rows, channels) int32 input against per-channel ``params``."""
    x = as_int("x", x, 32, ndim=2)
    n = x.shape[1]
    if not 1 <= n <= MAX_NORM_DIM:
        raise ValueError(f"row length must be in 1..{MAX_NORM_DIM}, got {n}")
    if params.gm.shape not in ((), (n,)):
        raise ValueError(f"gamma has {params.gm.shape} entries for rows of {n}")
    return x


def prescale(x):
    """Per-row shift ``k = max(0, bit_length(max|x|) - 15)`` and ``xs = round_shift(x, k)``
    so that ``|xs| <= 2**15`` (norms are scale invariant; only eps sees ``k``)."""
    k = np.maximum(bit_length(np.abs(x).max(axis=1)) - PRESCALE_BITS, 0)
    return round_shift(x, k[:, None]), k


def eps_term(eps_q, k):
    """``round_shift(eps_q, 2k)``: the host constant ``eps_q`` (in squared input units)
    moved to the pre-scaled domain."""
    return round_shift(np.int64(eps_q), 2 * k)


def normalize(num, denom, frac_bits):
    """``z ~= num / sqrt(denom) * 2**frac_bits`` per row, exact integer procedure:

    ``b = bit_length(denom)``, ``j = floor((b - 31) / 2)``, ``Dn = denom >> 2j`` (or ``<<``
    for negative ``j``) in ``[2**30, 2**32)``; ``sq = isqrt(Dn)`` (16 bits);
    ``inv = floor(2**40 / sq)`` (25 bits, one division per row);
    ``z = round_shift(num * inv, 40 - frac_bits + j)``. ``denom == 0`` gives ``z = 0``.
    ``denom`` (rows,) < 2**58, ``num`` (rows, n) < 2**30 in magnitude.
    """
    denom = np.asarray(denom, dtype=np.int64)
    zero = denom == 0
    b = bit_length(denom)
    j = (b - (SQRT_IN_BITS - 1)) // 2
    dn = np.where(j >= 0, denom >> np.maximum(2 * j, 0), denom << np.maximum(-2 * j, 0))
    sq = isqrt(np.where(zero, 2**(SQRT_IN_BITS - 2), dn))
    inv = floor_div(np.int64(1) << INV_BITS, sq)
    z = round_shift(num * inv[:, None], (INV_BITS - frac_bits + np.where(zero, 0, j))[:, None])
    return np.where(zero[:, None], 0, z)


@dataclass(frozen=True)
class NormParams:
    """Integer parameters of :func:`~.layernorm.layernorm` / :func:`~.rmsnorm.rmsnorm`.

    Members
    -------
    gm, gs : int64 arrays (channels,)
        Signed dyadic gamma (``|gm| < 2**15``, shift 0..62) mapping the normalized value
        ``z`` (fixed point, unit's ``Z_FRAC_BITS``) to output units.
    beta : int64 array (channels,)
        Bias in output units (int32); zero for RMSNorm.
    eps_q : int
        ``round(eps * C / S_in**2)`` clamped to 0..2**56, ``C = n**2`` (LayerNorm) or ``n``
        (RMSNorm), ``S_in`` the real value of one input unit.
    out_bits : 8, 16 or 32
    """

    gm: np.ndarray
    gs: np.ndarray
    beta: np.ndarray
    eps_q: int
    out_bits: int = 16

    def __post_init__(self):
        check_out_bits(self.out_bits)
        gm, gs = check_dyadic("gamma", self.gm, self.gs)
        object.__setattr__(self, "gm", gm)
        object.__setattr__(self, "gs", gs)
        object.__setattr__(self, "beta", as_int("beta", self.beta, 32))
        if isinstance(self.eps_q, bool) or not isinstance(self.eps_q, (int, np.integer)) \
                or not 0 <= self.eps_q <= EPS_MAX:
            raise ValueError(f"eps_q must be an integer in 0..2**56, not {self.eps_q!r}")
        object.__setattr__(self, "eps_q", int(self.eps_q))

    @classmethod
    def build(cls, gamma_mult, beta_out, eps_q_real, out_bits):
        """Host side helper: real gamma multipliers, real bias in output units, real eps."""
        gm, gs = dyadic(gamma_mult)
        beta = np.clip(np.round(np.asarray(beta_out, dtype=np.float64)), -(2**31), 2**31 - 1)
        eps_q = int(min(round(float(eps_q_real)), EPS_MAX))
        return cls(gm, gs, beta.astype(np.int64), eps_q, out_bits)


def affine_out(z, params):
    """``sat_out(round_shift(z * gm[c], gs[c]) + beta[c])`` (38-bit product)."""
    return saturate(round_shift(z * params.gm, params.gs) + params.beta, params.out_bits)
