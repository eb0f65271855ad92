"""A pin-frugal wrapper for synthesizing a component on its own.

A core like the accelerator has hundreds of ports (two AXI buses) — more than an iCE40 UP5K
has pins — and unconnected ports would let synthesis delete the logic they drive. The
harness feeds every input of the core from one shift register clocked in from a single pin,
registers every output and folds them into one output pin with a pipelined XOR tree (16
bits per registered level, so the harness is never the critical path), so the whole core
survives synthesis, every path starts and ends at a flip-flop, and two pins suffice.
Without ``capture`` the outputs go straight into the tree's first level (two LUT levels
after the core's outputs, a flip-flop per 16 of them instead of one each): for measuring
size where a flip-flop costs a logic cell of its own (iCE40) rather than clock speed.
The harness's own flip-flops (:attr:`SynthHarness.harness_ffs`) are subtracted from reports.
"""

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Module, ResetSignal, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SynthHarness"]

#: Bits XOR-folded into one per registered level of the output tree: two LUT4 levels.
FOLD = 16


def fold_widths(bits):
    """Widths of the registered levels that fold ``bits`` bits into one, ``FOLD`` to one."""
    widths = []
    while bits > 1:
        bits = -(-bits // FOLD)
        widths.append(bits)
    return widths


class SynthHarness(wiring.Component):
    """Wraps ``core`` (a ``wiring.Component`` in the ``sync`` domain); ``capture``: register
    every output before the XOR tree (see the module docstring).

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

    def __init__(self, core, *, capture=True):
        self.core = core
        flat = list(core.signature.flatten(core))
        self._inputs = [Value.cast(value) for _, member, value in flat
                        if member.flow == wiring.In]
        self._outputs = [Value.cast(value) for _, member, value in flat
                         if member.flow == wiring.Out]
        self.input_bits = sum(len(v) for v in self._inputs) + 1  # + the core's reset
        self.output_bits = sum(len(v) for v in self._outputs)
        # (A single output is registered either way: the pin must come from a flip-flop.)
        self.capture = capture or not fold_widths(self.output_bits)
        #: Flip-flops the harness adds around the core (input shift register, output
        #: register, and the levels of the XOR tree).
        self.harness_ffs = self.input_bits + self.output_bits * self.capture \
            + sum(fold_widths(self.output_bits))
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
        folded = Cat(*self._outputs)
        if self.capture:
            captured = Signal(self.output_bits)
            m.d.io += captured.eq(folded)
            folded = captured
        for width in fold_widths(self.output_bits):
            level = Signal(width)
            m.d.io += level.eq(Cat(folded[i:i + FOLD].xor() for i in range(0, len(folded), FOLD)))
            folded = level
        m.d.comb += self.serial_out.eq(folded)
        return m
