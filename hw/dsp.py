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

Built from LUTs (:func:`lut_multiplier`), a multiplier whose operands come straight from
flip-flops (``split``) registers partial products, ``a`` times pieces of ``b``
(:data:`LUT_PIECES`), instead of its operands, and adds them into the product register:
the same product in the same cycle, with part of the multiply in the first cycle (which
otherwise holds only the operand registers' inputs) instead of all of it in the second.

Which multipliers are built from LUTs on ECP5 is :class:`SynthesisPlatform`'s ``lut_width``
and ``lut_dsps``: those with both operands at most ``lut_width`` bits wide, except the first
``lut_dsps`` of exactly that width in elaboration order, which keep DSP blocks, so that a
design short of DSP blocks still fills the ones it has (:func:`lut_multiplier`).
"""

from dataclasses import dataclass, field

from amaranth.hdl import ClockSignal, Const, Instance, Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DSP_WIDTH", "MULTIPLY_LATENCY", "SynthesisPlatform", "lut_candidate",
           "lut_multiplier", "PipelinedMultiplier"]

#: Operand width of one DSP block's multiplier (ECP5 MULT18X18D; iCE40 SB_MAC16 takes 16).
DSP_WIDTH = 18
#: Pieces a split LUT multiplier cuts ``b`` into (an 8-bit weight: 2, 3 and 3 bits). A PE's
#: 9x8 multiplier alone on the ECP5-85k: 124.8 MHz with registered operands, split 152.7
#: (2 pieces), 180-185 (3), 175.8 (4: adding the partial products becomes the longer stage).
LUT_PIECES = 3
#: Cycles from a multiplier's operands to their product.
MULTIPLY_LATENCY = 2


class _DSPAllocator:
    """The DSP blocks a :class:`SynthesisPlatform` has left for multipliers of exactly its
    ``lut_width``: granted in the order they are first asked for, and each multiplier's
    answer remembered, so that asking again (a PE asks before its multiplier elaborates)
    or elaborating the same design again gives the same answer."""

    def __init__(self, count):
        self.left, self.decided = count, {}

    def dsp(self, multiplier):
        if id(multiplier) not in self.decided:
            granted = self.left > 0
            self.left -= granted
            # The multiplier itself is kept so that its id is not reused by another object.
            self.decided[id(multiplier)] = (multiplier, granted)
        return self.decided[id(multiplier)][1]


@dataclass(frozen=True)
class SynthesisPlatform:
    """What the gateware knows of the FPGA it is synthesized for (Amaranth's ``platform``).

    ``family``: "ecp5" or "ice40". ``lut_width``: multipliers whose operands are both at
    most this wide are built from LUTs (:func:`lut_multiplier`), the others become DSP
    primitives; 0 makes every multiplier a primitive. ``lut_dsps``: the first this many
    multipliers with an operand exactly ``lut_width`` bits wide, in elaboration order, are
    DSP primitives all the same (the DSP blocks the wider ones leave free).

    The grant is first come, first served because a multiplier knows neither its place in
    the hierarchy nor how many of its width there are, while Amaranth elaborates submodules
    in a fixed order (depth first, in the order they were added): the same design for the
    same platform always gives the same multipliers DSP blocks, and never more than
    ``lut_dsps`` of them. Counting needs state, which this frozen platform carries in an
    allocator of its own (not compared): one platform per elaborated design, as
    :func:`systolic.sw.synth.synthesize` makes them; elaborating another design with it
    continues the count.
    """

    family: str
    lut_width: int = 0
    lut_dsps: int = 0
    _allocator: _DSPAllocator = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.lut_dsps < 0:
            raise ValueError(f"lut_dsps must be at least 0, not {self.lut_dsps}")
        object.__setattr__(self, "_allocator", _DSPAllocator(self.lut_dsps))


def lut_candidate(platform, a_shape, b_shape):
    """Whether a :class:`PipelinedMultiplier` of these operand shapes, elaborated for
    ``platform``, may be built from LUTs: on ECP5, both operands at most ``lut_width`` bits
    wide. All such multipliers are (:func:`lut_multiplier`) unless ``lut_dsps`` is set.
    Without a platform nothing is known."""
    widest = max(Shape.cast(a_shape).width, Shape.cast(b_shape).width)
    return getattr(platform, "family", None) == "ecp5" and widest <= platform.lut_width


def lut_multiplier(platform, multiplier):
    """Whether ``multiplier`` (a :class:`PipelinedMultiplier`), elaborated for ``platform``,
    is built from LUTs: a :func:`lut_candidate` that is not one of the first ``lut_dsps`` of
    width ``lut_width`` (:func:`systolic.sw.synth.synthesize` maps those and the wider ones
    to DSP blocks). Asking grants such a DSP block for good (:class:`SynthesisPlatform`)."""
    a_shape, b_shape = multiplier.a.shape(), multiplier.b.shape()
    if not lut_candidate(platform, a_shape, b_shape):
        return False
    widest = max(a_shape.width, b_shape.width)
    return not (widest == platform.lut_width and platform._allocator.dsp(multiplier))


class PipelinedMultiplier(wiring.Component):
    """``p = a * b``, :data:`MULTIPLY_LATENCY` cycles after ``a`` and ``b``; free-running.

    The registers are datapath and have no reset (whoever uses the product knows from its
    own valid flags when it is meaningful), so the design's reset does not fan out to every
    multiplier. ``a_init`` and ``b_init`` are the operand registers' initial values. Nothing
    reads them, but distinct values keep synthesis from merging the operand registers of
    multipliers that share an operand (a register feeding several DSP blocks cannot sit
    next to all of them). The ECP5 block's registers start at zero instead.

    ``split``: the operands come straight from flip-flops. If the multiplier is built from
    LUTs (:func:`lut_multiplier`), it then registers partial products instead of its
    operands (see the module docstring); the product is the same, in the same cycle.

    Members
    -------
    a : In(a_shape)
    b : In(b_shape)
        Operands, each at most :data:`DSP_WIDTH` bits.
    p : Out(shape of a * b)
        The registered product.
    """

    def __init__(self, a_shape, b_shape, *, a_init=0, b_init=0, split=False):
        a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        for name, shape in (("a", a_shape), ("b", b_shape)):
            if shape.width > DSP_WIDTH:
                raise ValueError(f"operand {name} must be at most {DSP_WIDTH} bits wide, not "
                                 f"{shape.width}")
        self.a_init, self.b_init, self.split = a_init, b_init, split
        product = (Const(0, a_shape) * Const(0, b_shape)).shape()
        super().__init__({"a": In(a_shape), "b": In(b_shape), "p": Out(product)})

    def elaborate(self, platform):
        m = Module()
        lut = lut_multiplier(platform, self)
        if getattr(platform, "family", None) == "ecp5" and not lut:
            self._mult18x18d(m)
        elif self.split and len(self.b) > 1 and lut:
            self._pieces(m)
        else:
            self._registered(m)
        return m

    def _registered(self, m):
        # Operand registers, a `*`, the product register: what synthesis maps onto a DSP
        # block or builds from LUTs.
        a = Signal(self.a.shape(), init=self.a_init, reset_less=True)
        b = Signal(self.b.shape(), init=self.b_init, reset_less=True)
        product = Signal(self.p.shape(), reset_less=True)
        m.d.sync += [a.eq(self.a), b.eq(self.b), product.eq(a * b)]
        m.d.comb += self.p.eq(product)

    def _pieces(self, m):
        # a * b = sum of a * piece << offset over b cut into LUT_PIECES pieces, the low ones
        # unsigned, the top one with b's signedness. The partial products are the first
        # stage's registers, their sum the second's.
        n = min(LUT_PIECES, len(self.b))
        edges = [len(self.b) * i // n for i in range(n + 1)]
        partials = []
        for i in range(n):
            piece = self.b[edges[i]:edges[i + 1]]
            if i == n - 1 and self.b.shape().signed:
                piece = piece.as_signed()
            partial = Signal((self.a * piece).shape(), name=f"partial{i}", reset_less=True)
            m.d.sync += partial.eq(self.a * piece)
            partials.append(partial << edges[i])
        product = Signal(self.p.shape(), reset_less=True)
        m.d.sync += product.eq(sum(partials[1:], partials[0]))
        m.d.comb += self.p.eq(product)

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
