"""A pin-frugal wrapper for synthesizing a component on its own.

A core like the accelerator has hundreds of ports (two AXI buses) — more than an iCE40 UP5K
has pins — and unconnected ports would let synthesis delete the logic they drive. The
harness feeds every input of the core from one shift register clocked in from a single pin,
registers every output and folds them into one output pin with an XOR tree, so the whole
core survives synthesis, every path starts and ends at a flip-flop, and two pins suffice.
The harness's own flip-flops (:attr:`SynthHarness.harness_ffs`) are subtracted from reports.
"""

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Module, ResetSignal, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SynthHarness"]


class SynthHarness(wiring.Component):
    """Wraps ``core`` (a ``wiring.Component`` in the ``sync`` domain).

    Members
    -------
    clk : In(1)
        The clock of the harness and the core.
    serial_in : In(1)
        Shifted into the register that drives every core input (and the core's reset).
    serial_out : Out(1)
        XOR of all registered core outputs.
    """

    clk: In(1)
    serial_in: In(1)
    serial_out: Out(1)

    def __init__(self, core):
        self.core = core
        flat = list(core.signature.flatten(core))
        self._inputs = [Value.cast(value) for _, member, value in flat
                        if member.flow == wiring.In]
        self._outputs = [Value.cast(value) for _, member, value in flat
                         if member.flow == wiring.Out]
        self.input_bits = sum(len(v) for v in self._inputs) + 1  # + the core's reset
        self.output_bits = sum(len(v) for v in self._outputs)
        #: Flip-flops the harness adds around the core (input shift register, output
        #: register, and the XOR result register).
        self.harness_ffs = self.input_bits + self.output_bits + 1
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        # The harness runs reset-less in `io`; the core's `sync` shares its clock and takes
        # its reset from the chain, so the core's reset logic is not optimized away either.
        m.domains.io = ClockDomain("io", reset_less=True)
        m.domains.sync = ClockDomain("sync")
        m.submodules.core = self.core
        shift = Signal(self.input_bits)
        m.d.io += shift.eq(Cat(self.serial_in, shift[:-1]))
        offset = 0
        for value in self._inputs:
            m.d.comb += value.eq(shift[offset:offset + len(value)])
            offset += len(value)
        m.d.comb += [ClockSignal("io").eq(self.clk), ClockSignal("sync").eq(self.clk),
                     ResetSignal("sync").eq(shift[offset])]
        captured = Signal(self.output_bits)
        m.d.io += captured.eq(Cat(*self._outputs))
        folded = Signal()
        m.d.io += folded.eq(captured.xor())
        m.d.comb += self.serial_out.eq(folded)
        return m
