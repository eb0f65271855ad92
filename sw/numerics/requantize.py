"""Requantization of int32 matmul accumulators: per-channel dyadic multiplier, optional
per-row dynamic scale of the int8 input, bias in output units, saturation."""

from dataclasses import dataclass

import numpy as np

from .fixed import (ROW_EXP_MAX, as_int, check_dyadic, check_out_bits, dyadic, saturate,
                    scale_dyadic)


@dataclass(frozen=True)
class RequantParams:
    """Integer parameters of :func:`requantize` for an output of ``channels`` columns.

    Members
    -------
    m : int64 array (channels,) or scalar
        Signed mantissas, ``|m| < 2**15``.
    s : int64 array (channels,) or scalar
        Right shifts, 0..62; with a row scale the hardware shifts by ``s - row.exp``.
    bias : int64 array (channels,) or scalar
        Bias in *output* units (int32), added after rounding.
    out_bits : int
        8, 16 or 32: signed output width (saturating).
    """

    m: np.ndarray
    s: np.ndarray
    bias: np.ndarray
    out_bits: int = 8

    def __post_init__(self):
        check_out_bits(self.out_bits)
        m, s = check_dyadic("requantize multiplier", self.m, self.s)
        object.__setattr__(self, "m", m)
        object.__setattr__(self, "s", s)
        object.__setattr__(self, "bias", as_int("bias", self.bias, 32))

    @classmethod
    def from_float(cls, multiplier, bias=0.0, out_bits=8, row_source_bits=None):
        """Host side: ``multiplier`` (real output units per accumulator unit, per channel or
        scalar; with a row scale, per accumulator unit *times one int8 step of the row scale
        mantissa*, i.e. ``S_src / 127 * S_w / S_out``) and ``bias`` (real, in output units).

        ``row_source_bits`` (16 or 32) is the width of the wide tensor that produced the row
        scale of the matmul input; it reserves shift headroom for the row exponent.
        """
        min_shift = 0 if row_source_bits is None else ROW_EXP_MAX[row_source_bits]
        m, s = dyadic(multiplier, min_shift=min_shift)
        lo, hi = -(2**31), 2**31 - 1
        b = np.clip(np.round(np.asarray(bias, dtype=np.float64)), lo, hi).astype(np.int64)
        return cls(m, s, b, out_bits)


def requantize(acc, params, row_scale=None):
    """Golden requantizer.

    Parameters
    ----------
    acc : integer array, shape (rows, channels), int32 values
        Matmul accumulator.
    params : RequantParams
        Per-channel (or scalar) ``m``, ``s``, ``bias``; ``out_bits``.
    row_scale : RowScale or None
        Dynamic scale of the int8 input rows (from :func:`~.rowquant.quantize_rows`).

    Returns
    -------
    int64 array (rows, channels) with values in the signed ``out_bits`` range::

        y = sat_out(sat32(round_shift(acc * m[c] * mant[r], s[c] - exp[r])) + bias[c])

    (without ``row_scale``: ``mant = 1, exp = 0``). Widths: 32x30-bit product (``m * mant``
    fits 30 bits), 62-bit rounding adder, 63-bit shifter, saturation to int32, then a 33-bit
    bias add saturated to ``out_bits``.
    """
    acc = as_int("acc", acc, 32, ndim=2)
    scaled = scale_dyadic(acc, params.m, params.s, row_scale)
    return saturate(saturate(scaled, 32) + params.bias, params.out_bits)
