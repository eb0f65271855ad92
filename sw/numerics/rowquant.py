"""Dynamic per-row (per-token) quantization of a wide activation to int8.

This is how per-row scales are *produced*. Any unit whose output feeds an int8 matmul
operand (LayerNorm/RMSNorm, GELU, SwiGLU product, attention context, Q) writes a wide row
(int16 or int32, static scale) and this stage turns it into int8 plus a :class:`RowScale`.
Hardware can fuse it as the output stage of the producing unit: a max-abs reduction while the
row streams into a row buffer, one reciprocal per row, then a second pass multiplying each
element. The scale is *consumed* by the per-row factor of :func:`~.requantize.requantize`
(or :func:`~.softmax.softmax`) after the matmul.
"""

import numpy as np

from systolic.hw.formats import MANT_BITS, QMAX, RECIP_BITS

from .fixed import RowScale, as_int, bit_length, floor_div, round_shift, saturate


def row_scale_of_maxabs(maxabs):
    """Exact row scale ``(mant, exp)`` with ``mant * 2**exp >= maxabs`` (relative excess
    below 2**-14) for int64 ``maxabs`` in ``0..2**31``.

    ``b = bit_length(maxabs)``; ``exp = b - 15``; ``mant = maxabs << -exp`` when ``exp <= 0``
    (exact) else ``ceil(maxabs / 2**exp)``; a mantissa that rounds up to 2**15 becomes 2**14
    with ``exp + 1``. ``maxabs == 0`` gives ``(0, 0)``. Hence ``exp <= 2`` for an int16 source
    and ``exp <= 18`` for int32 (:data:`~.fixed.ROW_EXP_MAX`).
    """
    maxabs = np.asarray(maxabs, dtype=np.int64)
    exp = bit_length(maxabs) - MANT_BITS
    up = np.left_shift(maxabs, np.maximum(-exp, 0))
    pos = np.maximum(exp, 0)
    down = (maxabs + np.left_shift(np.int64(1), pos) - 1) >> pos
    mant = np.where(exp <= 0, up, down)
    carry = mant == 2**MANT_BITS
    mant = np.where(carry, 2**(MANT_BITS - 1), mant)
    exp = np.where(carry, exp + 1, exp)
    zero = maxabs == 0
    return RowScale(np.where(zero, 0, mant), np.where(zero, 0, exp))


def quantize_rows(z, in_bits=16):
    """Quantize each row of a wide tensor to int8 with its own scale.

    Parameters
    ----------
    z : integer array, shape (rows, cols)
        Wide activation, signed ``in_bits`` (16 or 32) wide, with a static scale ``S_src``.
    in_bits : 16 or 32
        Width of ``z`` (decides the largest row exponent, see ``ROW_EXP_MAX``).

    Returns
    -------
    q : int8 array (rows, cols)
        ``q = sat8(round_shift(z * R, 29 + exp))`` with the per-row reciprocal
        ``R = floor(127 * 2**29 / mant)`` (``R < 2**22``; ``|z * R| < 2**53``), so
        ``q ~= z * 127 / (mant * 2**exp)`` lies in -127..127. A zero row gives zeros.
    scale : RowScale
        ``(mant, exp)`` of :func:`row_scale_of_maxabs` applied to ``max |z|`` of each row;
        real value of ``q`` is ``q * S_src * mant * 2**exp / 127``.

    Hardware widths: max-abs reduction 32 bits (33 for int32 ``-2**31``), reciprocal a
    22-bit quotient (one per row), per-element 32x22 multiply, 54-bit rounding adder.
    """
    if in_bits not in (16, 32):
        raise ValueError(f"in_bits must be 16 or 32, not {in_bits!r}")
    z = as_int("z", z, in_bits, ndim=2)
    maxabs = np.abs(z).max(axis=1) if z.shape[1] else np.zeros(z.shape[0], np.int64)
    scale = row_scale_of_maxabs(maxabs)
    nonzero = scale.mant > 0
    recip = floor_div(QMAX << RECIP_BITS, np.where(nonzero, scale.mant, 1))
    recip = np.where(nonzero, recip, 0)
    q = round_shift(z * recip[:, None], RECIP_BITS + scale.exp[:, None])
    return saturate(q, 8).astype(np.int8), scale
