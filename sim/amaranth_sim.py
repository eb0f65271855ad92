"""Amaranth's built-in simulator: the zero-install backend."""

from amaranth.sim import Simulator

from systolic.hw.array import SystolicArray

from .stimulus import ArrayStimulus


def simulate_array(schedule, *, out_stall=0.0, in_gap=0.0, seed=0, timeout=1000, vcd=None):
    """Run an :class:`~systolic.sw.array_schedule.ArraySchedule` on the array in Amaranth's
    simulator and return the :class:`~systolic.sim.stimulus.ArrayRun`.

    ``vcd`` names a file to dump the waveform to.
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

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return stimulus.result()
