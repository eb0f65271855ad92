"""Bit-exact integer models of every hardware block (the golden reference)."""

from .matmul import Int32OverflowError, matmul_int8

__all__ = ["Int32OverflowError", "matmul_int8"]
