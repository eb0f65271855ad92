"""Hardware parameters and number formats: the single source of truth for hw/ and sw/."""

from dataclasses import dataclass

#: Width of matrix operands (signed int8).
OPERAND_WIDTH = 8
#: Width of products accumulated in the array and in the accumulator memory (signed int32).
ACC_WIDTH = 32
#: Largest array dimension the generator accepts.
MAX_ARRAY_DIM = 64
#: Dataflows the array generator implements.
DATAFLOWS = ("ws", "os")


def check_array_params(rows, cols, dataflow, operand_width=OPERAND_WIDTH, acc_width=ACC_WIDTH):
    """Raise :class:`ValueError` naming the first invalid array parameter."""
    for name, value in (("rows", rows), ("cols", cols)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer in 1..{MAX_ARRAY_DIM}, not {value!r}")
        if not 1 <= value <= MAX_ARRAY_DIM:
            raise ValueError(f"{name} must be in 1..{MAX_ARRAY_DIM}, not {value}")
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {', '.join(map(repr, DATAFLOWS))}, "
                         f"not {dataflow!r}")
    if operand_width != OPERAND_WIDTH:
        raise ValueError(f"operand_width must be {OPERAND_WIDTH} (int8 operands), "
                         f"not {operand_width!r}")
    if acc_width != ACC_WIDTH:
        raise ValueError(f"acc_width must be {ACC_WIDTH} (int32 accumulation), not {acc_width!r}")


@dataclass(frozen=True)
class ArrayConfig:
    """Shape and dataflow of the systolic array (validated on construction)."""

    rows: int = 4
    cols: int = 4
    dataflow: str = "ws"

    def __post_init__(self):
        check_array_params(self.rows, self.cols, self.dataflow)
