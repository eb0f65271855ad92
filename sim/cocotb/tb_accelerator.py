"""cocotb testbench for the whole accelerator (``systolic verilog --top accelerator``).

Host memory is cocotbext-axi's ``AxiRam`` on ``m_axi``; the registers are reached with its
``AxiLiteMaster`` on ``csr``. Each job is ``(memory, prog_addr, count)``: the memory image is
written into the RAM, the program started through the registers (``sim/host.py``, shared
with the Amaranth backend) and, at the interrupt, the final image, error and counters saved.
Jobs run back to back on one simulated accelerator, so on-chip state carries over.
"""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from systolic.hw.csr import register
from systolic.sim.cocotb.runner import load_jobs, save_results
from systolic.sim.host import collect_results, start_program

CLOCK_NS = 10


@cocotb.test()
async def run_programs(dut):
    jobs, max_cycles = load_jobs()
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    size = max(len(memory) for memory, _, _ in jobs)
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_"), dut.clk, dut.rst, size=size)
    csr = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "csr_"), dut.clk, dut.rst)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)

    async def write(name, value):
        await csr.write(register(name).offset, value.to_bytes(4, "little"))

    async def read(name):
        return int.from_bytes((await csr.read(register(name).offset, 4)).data, "little")

    results = []
    for memory, prog_addr, count in jobs:
        ram.write(0, bytes(size))
        ram.write(0, memory.tobytes())
        await start_program(write, prog_addr, count)
        if not dut.irq.value:
            timeout = Timer(max_cycles * CLOCK_NS, unit="ns")
            if await First(RisingEdge(dut.irq), timeout) is timeout:
                results.append(("hang", max_cycles))
                break
        error, error_pc, counters = await collect_results(read, write)
        results.append((ram.read(0, len(memory)), int(error), error_pc, counters))
    save_results(results)
