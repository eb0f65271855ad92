"""Golden model of the systolic array's arithmetic: int8 x int8 -> int32."""

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class Int32OverflowError(ArithmeticError):
    """An exact result does not fit in the int32 accumulator."""


def check_int8(name, x, unsigned=False):
    """Raise unless ``x`` is a 2-D array of int8 values (uint8 if ``unsigned``): that dtype,
    or an integer dtype whose values all lie in its range. Returns it as int64."""
    x = np.asarray(x)
    kind, (low, high) = ("uint8", (0, 255)) if unsigned else ("int8", (-128, 127))
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{name} must hold {kind} integers, got dtype {x.dtype}")
    if x.dtype != np.dtype(kind) and x.size and (x.min() < low or x.max() > high):
        raise ValueError(f"{name} has values outside {kind} range {low}..{high}")
    return x.astype(np.int64)


def matmul_int8(a, b, a_unsigned=False):
    """Exact ``a @ b`` of int8 matrices (``a`` uint8 if ``a_unsigned``: the array's mode for
    softmax probabilities) as int32, computed in int64.

    Raises :class:`Int32OverflowError` when any exact sum leaves the int32 range (the
    hardware accumulator would wrap around).
    """
    a, b = check_int8("a", a, unsigned=a_unsigned), check_int8("b", b)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"inner dimensions differ: a is {a.shape}, b is {b.shape}")
    c = a @ b
    if c.size and (c.min() < INT32_MIN or c.max() > INT32_MAX):
        raise Int32OverflowError("matmul result leaves the int32 accumulator range")
    return c.astype(np.int32)
