"""Vector units as generated Verilog in cocotb + Icarus, on the same suites and stimulus
as the Amaranth simulations: one simulator build per unit runs its whole suite."""

import pytest

from systolic.sim.cocotb.runner import run_testbench
from systolic.sim.unit_stimulus import (ROW_TOPS, STREAMING_TOPS, check_run, suite_jobs,
                                        unit_suite)

#: Odd lane counts for half the units, four for the others (the shared units three or four,
#: the others as before they came).
SHARED_TOPS = {"pwl": 3, "eltwise": 3, "rescale": 4}
LANES = {top: 3 if i % 2 else 4
         for i, top in enumerate(t for t in STREAMING_TOPS + ROW_TOPS if t not in SHARED_TOPS)}
LANES.update(SHARED_TOPS)


@pytest.mark.parametrize("top", STREAMING_TOPS + ROW_TOPS)
def test_icarus_bit_exact(top, tmp_path):
    params, cases = unit_suite(top, LANES[top], seed=1)
    jobs = suite_jobs(cases, seed=7)
    runs = run_testbench(top, params, "systolic.sim.cocotb.tb_units", jobs,
                         work_dir=tmp_path)
    assert len(runs) == len(jobs)
    for (case, _), run in zip(jobs, runs):
        check_run(case, run)
