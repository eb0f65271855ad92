"""Integer RMSNorm (llama) over rows of a wide int32 activation."""

import numpy as np

# Fraction bits of the normalized value ``z = x / sqrt(sum(x**2))`` (``|z| <= 1``).
from systolic.hw.formats import RMSNORM_Z_FRAC_BITS as Z_FRAC_BITS

from .norm import NormParams, affine_out, check_rows, eps_term, normalize, prescale


def rmsnorm_params(gamma, eps, in_scale, out_scale, out_bits=16):
    """Host side: float ``gamma`` (channels,), ``eps``, the real value of one input unit
    ``in_scale`` and of one output unit ``out_scale``. ``sqrt(n)`` is folded into gamma."""
    gamma = np.asarray(gamma, dtype=np.float64)
    n = gamma.shape[-1]
    return NormParams.build(gamma * np.sqrt(n) * 2.0**-Z_FRAC_BITS / out_scale,
                            np.zeros(n), eps * n / in_scale**2, out_bits)


def rmsnorm(x, params):
    """Golden RMSNorm along the last axis.

    Parameters
    ----------
    x : integer array (rows, n), int32 values, static scale ``S_in``; ``1 <= n <= 16384``
    params : NormParams (from :func:`rmsnorm_params`)

    Returns
    -------
    int64 array (rows, n), signed ``params.out_bits`` values::

        xs = prescale(x)                                   # |xs| <= 2**15, shift k per row
        D  = sum(xs**2) + round_shift(eps_q, 2k)           # < 2**58
        z  = normalize(xs, D, 22)                          # x / sqrt(sum x**2) in Q22
        y  = sat_out(round_shift(z * gm[c], gs[c]) + beta[c])
    """
    x = check_rows(x, params)
    xs, k = prescale(x)
    denom = (xs * xs).sum(axis=1) + eps_term(params.eps_q, k)
    z = normalize(xs, denom, Z_FRAC_BITS)
    return affine_out(z, params)
