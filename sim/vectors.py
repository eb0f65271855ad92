"""Deterministic random test vectors, shared by every verification rung and benchmarks."""

import numpy as np


def random_int8(rng, shape):
    """Uniform int8 values with both extremes (-128 and 127) present whenever there is room."""
    x = rng.integers(-128, 128, shape, dtype=np.int8)
    flat = x.reshape(-1)
    if flat.size >= 2:
        flat[rng.choice(flat.size, 2, replace=False)] = (-128, 127)
    elif flat.size == 1:
        flat[0] = -128
    return x


def matmul_case(seed, m, k, n, a_unsigned=False):
    """A random ``(a, b)`` int8 pair of shapes ``m x k`` and ``k x n`` (``a`` uint8 with 0
    and 255 present if ``a_unsigned``)."""
    rng = np.random.default_rng(seed)
    a, b = random_int8(rng, (m, k)), random_int8(rng, (k, n))
    if a_unsigned:  # shift the int8 extremes -128 and 127 to the uint8 extremes 0 and 255
        a = (a.astype(np.int16) + 128).astype(np.uint8)
    return a, b


#: Array shapes every rung covers: 1x1, skinny, non-square, square.
ARRAY_SHAPES = [(1, 1), (1, 4), (4, 1), (3, 5), (4, 4), (8, 8)]
#: Reduction lengths every rung covers (1 and 2 are shorter than any array; 257 is prime).
K_VALUES = [1, 2, 17, 64, 257]


def array_cases(rows, cols):
    """``(k, a, b)`` for every K in :data:`K_VALUES`, with M and N not multiples of the array."""
    return [(k, *matmul_case(1000 * rows + 10 * cols + k, rows + 1, k, cols + 2))
            for k in K_VALUES]
