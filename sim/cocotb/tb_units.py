"""cocotb testbench for the vector units (``systolic verilog --top requantize`` etc.).

Runs every ``(UnitCase, options)`` job of the jobs file through the same
:class:`~systolic.sim.unit_stimulus.UnitStimulus` the Amaranth backend uses, setting the
case's config inputs first, and saves the :class:`~systolic.sim.unit_stimulus.UnitRun` of
each job.
"""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from systolic.sim.cocotb.runner import load_jobs, save_results
from systolic.sim.unit_stimulus import UnitStimulus


async def reset(dut):
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


async def run_case(dut, case, options):
    stimulus = UnitStimulus(case, **options)
    for name, value in case.config.items():
        getattr(dut, name).value = int(value)
    await RisingEdge(dut.clk)
    while not stimulus.done:
        valid, payload, out_ready = stimulus.drive()
        dut.i__valid.value = int(valid)
        dut.i__payload.value = payload
        dut.o__ready.value = int(out_ready)
        await ReadOnly()
        i_ready = bool(dut.i__ready.value)
        o_valid = bool(dut.o__valid.value)
        word = dut.o__payload.value.to_unsigned() if o_valid else 0
        stimulus.observe(i_ready, o_valid, word)
        await RisingEdge(dut.clk)
    dut.i__valid.value = 0
    return stimulus.result()


@cocotb.test()
async def unit_cases(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await reset(dut)
    save_results([await run_case(dut, case, options) for case, options in load_jobs()])
