"""Rung 3: cocotb + Icarus on the generated Verilog, on the same vectors as rungs 1 and 2.

One simulator build per array shape and dataflow runs every K and a back-pressure job.
"""

import numpy as np
import pytest

from systolic.hw.array import os_cycles, ws_cycles
from systolic.sim.cocotb.runner import run_testbench
from systolic.sim.vectors import ARRAY_SHAPES, array_cases, matmul_case
from systolic.sw.array_schedule import schedule_matmul
from systolic.sw.numerics import matmul_int8


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("rows, cols", ARRAY_SHAPES)
def test_icarus_bit_exact(rows, cols, dataflow, tmp_path):
    cases = array_cases(rows, cols)
    jobs = [(schedule_matmul(a, b, rows, cols, dataflow), {}) for _, a, b in cases]
    a, b = matmul_case(7, 2 * rows + 1, 2 * rows + 3, cols + 1)
    jobs.append((schedule_matmul(a, b, rows, cols, dataflow),
                 dict(out_stall=0.5, in_gap=0.3, seed=rows * cols)))
    ua, ub = matmul_case(8, rows + 2, 2 * rows + 1, cols, a_unsigned=True)
    jobs.append((schedule_matmul(ua, ub, rows, cols, dataflow, a_unsigned=True), {}))
    runs = run_testbench("array", dict(rows=rows, cols=cols, dataflow=dataflow),
                         "systolic.sim.cocotb.tb_array", jobs, work_dir=tmp_path)
    cycles = ws_cycles if dataflow == "ws" else os_cycles
    for (k, a, b), (schedule, _), run in zip(cases, jobs, runs):
        assert np.array_equal(run.beats, schedule.expected), f"K={k}"
        assert np.array_equal(schedule.assemble(run.beats), matmul_int8(a, b)), f"K={k}"
        assert run.cycles == cycles(rows, cols, schedule.tiles, schedule.tile_length)
    stalled_schedule, stalled = jobs[-2][0], runs[-2]
    assert np.array_equal(stalled.beats, stalled_schedule.expected)
    assert np.array_equal(jobs[-1][0].assemble(runs[-1].beats),
                          matmul_int8(ua, ub, a_unsigned=True))
