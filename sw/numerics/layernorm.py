"""Integer LayerNorm (BERT) over rows of a wide int32 activation."""

import numpy as np

# Fraction bits of the normalized value ``z = (x - mean) / std`` (``|z| <= sqrt(n)``).
from systolic.hw.formats import LAYERNORM_Z_FRAC_BITS as Z_FRAC_BITS

from .norm import NormParams, affine_out, check_rows, eps_term, normalize, prescale


def layernorm_params(gamma, beta, eps, in_scale, out_scale, out_bits=16):
    """Host side: float ``gamma``, ``beta`` (channels,), ``eps``, the real value of one
    input unit ``in_scale`` and of one output unit ``out_scale``."""
    gamma = np.asarray(gamma, dtype=np.float64)
    n = gamma.shape[-1]
    return NormParams.build(gamma * 2.0**-Z_FRAC_BITS / out_scale,
                            np.asarray(beta, dtype=np.float64) / out_scale,
                            eps * n * n / in_scale**2, out_bits)


def layernorm(x, params):
    """Golden LayerNorm along the last axis.

    Parameters
    ----------
    x : integer array (rows, n), int32 values, static scale ``S_in``; ``1 <= n <= 16384``
    params : NormParams (from :func:`layernorm_params`)

    Returns
    -------
    int64 array (rows, n), signed ``params.out_bits`` values::

        xs = prescale(x)                                   # |xs| <= 2**15, shift k per row
        S1 = sum(xs); S2 = sum(xs**2)                      # 29 / 44 bits for n = 2**14
        D  = n*S2 - S1**2 + round_shift(eps_q, 2k)         # >= 0, < 2**58
        z  = normalize(n*xs - S1, D, 16)                   # (x - mean) / std in Q16
        y  = sat_out(round_shift(z * gm[c], gs[c]) + beta[c])
    """
    x = check_rows(x, params)
    n = x.shape[1]
    xs, k = prescale(x)
    s1 = xs.sum(axis=1)
    s2 = (xs * xs).sum(axis=1)
    denom = n * s2 - s1 * s1 + eps_term(params.eps_q, k)
    z = normalize(n * xs - s1[:, None], denom, Z_FRAC_BITS)
    return affine_out(z, params)
