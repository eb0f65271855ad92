"""Bit-exact integer models of every hardware block (the golden reference).

Formats and algorithms: docs/numerics.md (the hardware/software contract).
"""

from .eltwise import ResidualParams, Scale, eltwise_mul, residual_add
from .fixed import (INT32_MASK_NEG_INF, QMAX, RowScale, bit_length, dyadic, floor_div, isqrt,
                    round_shift, saturate)
from .gelu import gelu
from .layernorm import layernorm, layernorm_params
from .matmul import Int32OverflowError, matmul_int8
from .norm import NormParams
from .requantize import RequantParams, requantize
from .rmsnorm import rmsnorm, rmsnorm_params
from .rope import rope
from .rowquant import quantize_rows
from .silu import silu
from .softmax import SoftmaxParams, softmax

__all__ = [
    "INT32_MASK_NEG_INF", "Int32OverflowError", "NormParams", "QMAX", "RequantParams",
    "ResidualParams", "RowScale", "Scale", "SoftmaxParams", "bit_length", "dyadic",
    "eltwise_mul", "floor_div", "gelu", "isqrt", "layernorm", "layernorm_params",
    "matmul_int8", "quantize_rows", "requantize", "residual_add", "rmsnorm", "rmsnorm_params",
    "rope", "round_shift", "saturate", "silu", "softmax",
]
