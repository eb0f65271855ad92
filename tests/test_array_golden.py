"""Rung 1: the golden matmul, and the array schedule that every simulation rung drives."""

import numpy as np
import pytest

from systolic.sim.vectors import ARRAY_SHAPES, array_cases, matmul_case
from systolic.sw.array_schedule import schedule_matmul
from systolic.sw.numerics import Int32OverflowError, matmul_int8


def reference_matmul(a, b):
    """Plain Python integer triple loop, independent of NumPy's integer matmul."""
    a, b = a.tolist(), b.tolist()
    return [[sum(a[i][p] * b[p][j] for p in range(len(b))) for j in range(len(b[0]))]
            for i in range(len(a))]


@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (3, 17, 5), (2, 257, 3), (7, 2, 1)])
def test_matmul_int8_matches_python_integers(m, k, n):
    a, b = matmul_case(m * k * n, m, k, n)
    c = matmul_int8(a, b)
    assert c.dtype == np.int32
    assert c.tolist() == reference_matmul(a, b)


def test_extremes_do_not_wrap():
    a = np.full((1, 4), -128, dtype=np.int8)
    b = np.full((4, 1), -128, dtype=np.int8)
    assert matmul_int8(a, b)[0, 0] == 4 * 16384


def test_int32_overflow_raises():
    k = 131073  # 131073 * 16384 > 2**31 - 1
    a = np.full((1, k), -128, dtype=np.int8)
    b = np.full((k, 1), -128, dtype=np.int8)
    with pytest.raises(Int32OverflowError):
        matmul_int8(a, b)


def test_bad_inputs():
    good = np.zeros((2, 3), dtype=np.int8)
    with pytest.raises(ValueError, match="inner dimensions"):
        matmul_int8(good, good)
    with pytest.raises(TypeError, match="dtype float"):
        matmul_int8(good.astype(np.float32), good.T)
    with pytest.raises(ValueError, match="outside int8"):
        matmul_int8(np.full((2, 3), 300), good.T)
    with pytest.raises(ValueError, match="2-D"):
        matmul_int8(np.zeros(3, dtype=np.int8), good)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("rows, cols", ARRAY_SHAPES)
def test_schedule_reassembles_to_golden(rows, cols, dataflow):
    """Result beats computed tile by tile reassemble into exactly the golden product, and
    the input beats hold the operands (zero padding only)."""
    for k, a, b in array_cases(rows, cols):
        schedule = schedule_matmul(a, b, rows, cols, dataflow)
        assert np.array_equal(schedule.assemble(schedule.expected), matmul_int8(a, b))
        if dataflow == "ws":
            # The first N tile streams all of A, K-slice by K-slice, zero-padded.
            k_tiles, m = -(-k // rows), a.shape[0]
            streamed = (schedule.act_beats[:k_tiles * m].reshape(k_tiles, m, rows)
                        .transpose(1, 0, 2).reshape(m, -1))
            assert np.array_equal(streamed[:, :k], a) and not streamed[:, k:].any()
            assert schedule.weight_beats.shape[1] == cols
        else:
            assert schedule.slice_a.shape[1] == rows and schedule.slice_b.shape[1] == cols
            assert schedule.slice_last.sum() == schedule.tiles


def test_schedule_rejects_empty_and_mismatched():
    a, b = matmul_case(0, 2, 3, 4)
    with pytest.raises(ValueError, match="inner dimensions"):
        schedule_matmul(a, a, 4, 4, "ws")
    with pytest.raises(ValueError, match="at least 1"):
        schedule_matmul(np.zeros((0, 3), np.int8), b, 4, 4, "ws")
    with pytest.raises(ValueError, match="dataflow"):
        schedule_matmul(a, b, 4, 4, "weight")
