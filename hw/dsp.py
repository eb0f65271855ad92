"""The pipelined multiplier behind every DSP block: operand registers, multiply, product
register.

Generated for simulation or any toolchain (``platform`` None) it is two flip-flop stages
around a ``*``, which synthesis maps onto a DSP block with fabric flip-flops on both sides.
Synthesized for ECP5 (:class:`SynthesisPlatform` with ``family="ecp5"``, which
:func:`systolic.sw.synth.synthesize` passes as Amaranth's ``platform``) it is one MULT18X18D
with its own input and output registers: nextpnr times the block's multiply at 3.93 ns,
and with fabric registers the routing into and out of the block adds 1.2-3.3 ns on each side,
which held every multiplier path at 112-127 MHz; registered inside the block, a path ends at
the block's pins (2.1 ns from a neighbouring flip-flop, measured). Yosys does not move
registers into ECP5 DSP blocks, hence the instance.
"""

from dataclasses import dataclass

from amaranth.hdl import ClockSignal, Const, Instance, Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DSP_WIDTH", "MULTIPLY_LATENCY", "SynthesisPlatform", "PipelinedMultiplier"]

#: Operand width of one DSP block's multiplier (ECP5 MULT18X18D; iCE40 SB_MAC16 takes 16).
DSP_WIDTH = 18
#: Cycles from a multiplier's operands to their product.
MULTIPLY_LATENCY = 2


@dataclass(frozen=True)
class SynthesisPlatform:
    """What the gateware knows of the FPGA it is synthesized for (Amaranth's ``platform``).

    ``family``: "ecp5" or "ice40". ``lut_width``: multipliers whose operands are both at
    most this wide are left to synthesis (it builds them from LUTs when the DSP blocks run
    out), the others become DSP primitives; 0 makes every multiplier a primitive.
    """

    family: str
    lut_width: int = 0


class PipelinedMultiplier(wiring.Component):
    """``p = a * b``, :data:`MULTIPLY_LATENCY` cycles after ``a`` and ``b``; free-running.

    The registers are datapath and have no reset (whoever uses the product knows from its
    own valid flags when it is meaningful), so the design's reset does not fan out to every
    multiplier. ``a_init`` and ``b_init`` are the operand registers' initial values. Nothing
    reads them, but distinct values keep synthesis from merging the operand registers of
    multipliers that share an operand (a register feeding several DSP blocks cannot sit
    next to all of them). The ECP5 block's registers start at zero instead.

    Members
    -------
    a : In(a_shape)
    b : In(b_shape)
        Operands, each at most :data:`DSP_WIDTH` bits.
    p : Out(shape of a * b)
        The registered product.
    """

    def __init__(self, a_shape, b_shape, *, a_init=0, b_init=0):
        a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        for name, shape in (("a", a_shape), ("b", b_shape)):
            if shape.width > DSP_WIDTH:
                raise ValueError(f"operand {name} must be at most {DSP_WIDTH} bits wide, not "
                                 f"{shape.width}")
        self.a_init, self.b_init = a_init, b_init
        product = (Const(0, a_shape) * Const(0, b_shape)).shape()
        super().__init__({"a": In(a_shape), "b": In(b_shape), "p": Out(product)})

    def elaborate(self, platform):
        m = Module()
        widest = max(len(self.a), len(self.b))
        if getattr(platform, "family", None) == "ecp5" and widest > platform.lut_width:
            self._mult18x18d(m)
            return m
        a = Signal(self.a.shape(), init=self.a_init, reset_less=True)
        b = Signal(self.b.shape(), init=self.b_init, reset_less=True)
        product = Signal(self.p.shape(), reset_less=True)
        m.d.sync += [a.eq(self.a), b.eq(self.b), product.eq(a * b)]
        m.d.comb += self.p.eq(product)
        return m

    def _mult18x18d(self, m):
        # Operands sign- or zero-extended to the block's 18 bits; SIGNEDA/B say which.
        a, b = Signal(DSP_WIDTH, name="dsp_a"), Signal(DSP_WIDTH, name="dsp_b")
        product = Signal(2 * DSP_WIDTH, name="dsp_p")
        m.d.comb += [a.eq(self.a), b.eq(self.b)]
        ports = {f"i_{name}{bit}": operand[bit] for name, operand in (("A", a), ("B", b))
                 for bit in range(DSP_WIDTH)}
        ports.update({f"o_P{bit}": product[bit] for bit in range(2 * DSP_WIDTH)})
        signed = self.a.shape().signed or self.b.shape().signed
        m.submodules.dsp = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
            p_RESETMODE="SYNC", p_GSR="DISABLED",
            i_SIGNEDA=int(self.a.shape().signed), i_SIGNEDB=int(self.b.shape().signed),
            i_SOURCEA=0, i_SOURCEB=0,
            i_CLK0=ClockSignal("sync"), i_CE0=1, i_RST0=0,
            **{f"i_C{bit}": 0 for bit in range(DSP_WIDTH)},
            **ports)
        m.d.comb += self.p.eq(product.as_signed() if signed else product)
