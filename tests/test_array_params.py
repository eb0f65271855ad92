"""Invalid array parameters are rejected with a ValueError naming the parameter."""

import pytest

from systolic.hw.array import SystolicArray
from systolic.hw.config import ArrayConfig


@pytest.mark.parametrize("kwargs, name", [
    (dict(rows=0, cols=4), "rows"),
    (dict(rows=-1, cols=4), "rows"),
    (dict(rows=65, cols=4), "rows"),
    (dict(rows=4, cols=0), "cols"),
    (dict(rows=4, cols=65), "cols"),
    (dict(rows="4", cols=4), "rows"),
    (dict(rows=True, cols=4), "rows"),
    (dict(rows=4, cols=4.0), "cols"),
    (dict(rows=4, cols=4, dataflow="rs"), "dataflow"),
    (dict(rows=4, cols=4, operand_width=16), "operand_width"),
    (dict(rows=4, cols=4, acc_width=48), "acc_width"),
])
def test_invalid_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SystolicArray(**kwargs)


def test_config_validates_on_construction():
    with pytest.raises(ValueError, match="cols must be in 1..64"):
        ArrayConfig(rows=4, cols=100)
    assert ArrayConfig(rows=64, cols=1, dataflow="os").rows == 64


@pytest.mark.parametrize("rows, cols", [(1, 1), (64, 1), (1, 64), (3, 5)])
def test_extreme_valid_shapes_construct(rows, cols):
    for dataflow in ("ws", "os"):
        array = SystolicArray(rows, cols, dataflow)
        assert (array.rows, array.cols) == (rows, cols)
