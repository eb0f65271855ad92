"""Amaranth's built-in simulator: the zero-install backend (bare array and accelerator)."""

import numpy as np
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from systolic.hw.array import SystolicArray
from systolic.hw.config import HardwareConfig
from systolic.hw.csr import register

from . import SimulationHang
from .axi_models import AXI4LiteMaster, AXI4MemoryModel
from .functional import RunResult
from .host import collect_results, start_program
from .stimulus import ArrayStimulus


def simulate_array(schedule, *, out_stall=0.0, in_gap=0.0, seed=0, timeout=1000, vcd=None,
                   platform=None):
    """Run an :class:`~systolic.sw.array_schedule.ArraySchedule` on the array in Amaranth's
    simulator and return the :class:`~systolic.sim.stimulus.ArrayRun`.

    ``vcd`` names a file to dump the waveform to. ``platform``: the array as elaborated for
    it (a :class:`~systolic.hw.dsp.SynthesisPlatform`, e.g. with LUT-built multipliers).
    """
    dut = SystolicArray(schedule.rows, schedule.cols, schedule.dataflow)
    stimulus = ArrayStimulus(schedule, out_stall=out_stall, in_gap=in_gap, seed=seed,
                             timeout=timeout)
    ports = {name: getattr(dut, name) for name in stimulus.inputs}

    async def bench(ctx):
        while not stimulus.done:
            drive, out_ready = stimulus.drive()
            for name, (valid, payload) in drive.items():
                ctx.set(ports[name].valid, valid)
                ctx.set(ports[name].payload.as_value(), payload)
            ctx.set(dut.out.ready, out_ready)
            ready = {name: ctx.get(port.ready) for name, port in ports.items()}
            out_valid = ctx.get(dut.out.valid)
            payload = ctx.get(dut.out.payload.as_value()) if out_valid else 0
            stimulus.observe(ready, out_valid, payload)
            await ctx.tick()

    sim = Simulator(Fragment.get(dut, platform))
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return stimulus.result()


class AmaranthBackend:
    """The accelerator (``AcceleratorTop``) in Amaranth's simulator, with host memory
    behind its AXI4 master port (:class:`AXI4MemoryModel`) and the program started through
    its AXI4-Lite registers. One simulation lives as long as the backend, so the on-chip
    SRAMs keep their contents from one :meth:`run` to the next, as in hardware.

    ``max_cycles`` bounds one run; a program still running then raises
    :class:`~systolic.sim.SimulationHang`.
    """

    #: Cycles between checks of the interrupt line while waiting.
    POLL = 64

    def __init__(self, config: HardwareConfig, *, max_cycles=2_000_000, read_latency=8,
                 write_latency=8):
        from systolic.hw.accelerator import AcceleratorTop

        self.config, self.max_cycles = config, max_cycles
        self.dut = AcceleratorTop(config)
        self.host = AXI4MemoryModel(self.dut.m_axi, np.zeros(16, np.uint8),
                                    read_latency=read_latency, write_latency=write_latency)
        self.csr = AXI4LiteMaster(self.dut.csr)
        self.sim = Simulator(self.dut)
        self.sim.add_clock(1e-8)
        self.sim.add_process(self.host.process)
        # One resident testbench serves every run (a started simulation takes no new
        # testbenches); run() steps the simulator until its job is done.
        self._job = self._outcome = None
        self.sim.add_testbench(self._serve, background=True)

    async def _serve(self, ctx):
        async def write(name, value):
            await self.csr.write(ctx, register(name).offset, value)

        async def read(name):
            value, _ = await self.csr.read(ctx, register(name).offset)
            return value

        while True:
            if self._job is None:
                await ctx.tick()
                continue
            prog_addr, count = self._job
            try:
                await start_program(write, prog_addr, count)
                waited = 0
                while not ctx.get(self.dut.irq):
                    await ctx.tick().repeat(self.POLL)
                    waited += self.POLL
                    if waited > self.max_cycles:
                        raise SimulationHang(f"the accelerator did not finish within "
                                             f"{self.max_cycles} cycles")
                self._outcome = await collect_results(read, write)
            except SimulationHang as hang:
                self._outcome = hang
            self._job = None

    def run(self, memory, prog_addr, count):
        self.host.memory = np.array(memory, dtype=np.uint8, copy=True)
        self._job, self._outcome = (prog_addr, count), None
        while self._outcome is None:
            self.sim.advance()
        if isinstance(self._outcome, SimulationHang):
            raise self._outcome
        error, error_pc, counters = self._outcome
        return RunResult(self.host.memory, counters, error, error_pc, counters["cycles"])
