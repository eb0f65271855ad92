"""cocotb testbench for the bare systolic array (``systolic verilog --top array``).

Runs every :class:`~systolic.sw.array_schedule.ArraySchedule` in the jobs file through the
same :class:`~systolic.sim.stimulus.ArrayStimulus` the Amaranth backend uses, driving the
streams cycle by cycle, and saves the :class:`~systolic.sim.stimulus.ArrayRun` of each.
"""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from systolic.sim.cocotb.runner import load_jobs, save_results
from systolic.sim.stimulus import ArrayStimulus


async def reset(dut):
    dut.rst.value = 1
    for name in ("weights", "acts", "slices"):
        if hasattr(dut, f"{name}__valid"):
            getattr(dut, f"{name}__valid").value = 0
    dut.out__ready.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


async def run_schedule(dut, schedule, options):
    stimulus = ArrayStimulus(schedule, **options)
    ports = {name: (getattr(dut, f"{name}__valid"), getattr(dut, f"{name}__payload"),
                    getattr(dut, f"{name}__ready")) for name in stimulus.inputs}
    await RisingEdge(dut.clk)
    while not stimulus.done:
        drive, out_ready = stimulus.drive()
        for name, (valid, payload) in drive.items():
            ports[name][0].value = int(valid)
            ports[name][1].value = payload
        dut.out__ready.value = int(out_ready)
        await ReadOnly()
        ready = {name: bool(ports[name][2].value) for name in ports}
        out_valid = bool(dut.out__valid.value)
        payload = dut.out__payload.value.to_unsigned() if out_valid else 0
        stimulus.observe(ready, out_valid, payload)
        await RisingEdge(dut.clk)
    for valid, _, _ in ports.values():
        valid.value = 0
    return stimulus.result()


@cocotb.test()
async def array_matmuls(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await reset(dut)
    save_results([await run_schedule(dut, schedule, options) for schedule, options in load_jobs()])
