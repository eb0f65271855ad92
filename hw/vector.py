"""Building blocks shared by the vector units: stream beat layouts, a free-running pipeline
with automatic alignment of values, a credit-checked output queue, pipelined dyadic
multiply / rounding shift / saturation, lane reductions, and the per-row iterative
divider and integer square root.

Streaming discipline of every unit: the datapath pipeline never stalls (no enable nets
across stages); its results enter an output FIFO, and a credit counter admits a beat into
the pipeline only while the FIFO is sure to have room for it. Back-pressure on ``o``
therefore stops ``i`` without losing data, and with ``o`` always ready the unit runs at
one beat per cycle.
"""

import zlib
from contextlib import contextmanager

from amaranth.hdl import (Cat, Const, Elaboratable, Module, Mux, Shape, Signal, Value,
                          signed, unsigned)
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .config import ACC_WIDTH, MAX_LANES
from .dsp import DSP_WIDTH, MULTIPLY_LATENCY, PipelinedMultiplier
from .formats import OUT_BITS
from .memory import StreamQueue

__all__ = [
    "OutBits", "out_bits_port", "kept_copy", "check_lanes", "check_max_row", "lanes_shape",
    "beat_layout",
    "out_layout", "MEMORY_DELAY_MIN_STAGES", "MEMORY_DELAY_MIN_WIDTH",
    "DELAY_LINE_MAX_STAGES", "DelayLine",
    "Pipeline", "OutputQueue", "StreamingPipeline", "output_stage", "MULTIPLY_FABRIC_STAGES",
    "signed_range", "fits_signed", "saturate", "saturate_next", "saturate_out", "multiply",
    "dyadic_scale", "round_shift", "lane_reduce", "Divider", "Isqrt", "RowBuffer", "RowReader", "row_reduce",
    "lane_magnitudes", "lane_valid", "maximum", "StateMachine",
]


class OutBits(enum.Enum, shape=unsigned(max(OUT_BITS).bit_length())):
    """Selectable signed output width of a unit (its value is the width in bits)."""
    INT8, INT16, INT32 = OUT_BITS


def out_bits_port():
    """The ``out_bits`` config input of a unit (resets to 32 bits)."""
    return In(OutBits, init=OutBits.INT32)


def check_lanes(lanes):
    if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= MAX_LANES:
        raise ValueError(f"lanes must be an integer in 1..{MAX_LANES}, not {lanes!r}")


def check_max_row(max_row, limit):
    if isinstance(max_row, bool) or not isinstance(max_row, int) or not 1 <= max_row <= limit:
        raise ValueError(f"max_row must be an integer in 1..{limit}, not {max_row!r}")


def check_subset(name, values, choices):
    """``values``, a non-empty set of distinct ``choices``, in the order of ``choices`` (a
    unit built for several functions)."""
    values = tuple(values)
    if not values or len(set(values)) != len(values) or not set(values) <= set(choices):
        raise ValueError(f"{name} must be distinct values of {choices}, not {values!r}")
    return tuple(choice for choice in choices if choice in values)


def kept_copy(m, value, name, *, reset_less=False):
    """A register of ``value`` (one cycle later) that synthesis keeps apart from registers
    equal to it (the ``keep`` attribute, which :mod:`systolic.sw.synth` hands on to the
    register's cell): a copy of a widely used setting for one group of its users, which
    the placer can put beside them rather than where the others are."""
    copy = Signal.like(value, name=name, reset_less=reset_less, attrs={"keep": 1})
    m.d.sync += copy.eq(value)
    return copy


def lanes_shape(lanes):
    """Shape of the ``count`` field: number of valid lanes, 1..lanes (at least one bit)."""
    return unsigned(max(1, lanes.bit_length()))


def beat_layout(lanes, lane_fields, row_fields=None):
    """Input beat: ``lanes`` per-lane records, per-row fields, ``count`` and ``last``.

    ``count`` is the number of valid lanes: ``lanes`` on every beat but the last of a row,
    1..lanes on the last; ``last`` marks the final beat of a row.
    """
    return data.StructLayout({
        "lanes": data.ArrayLayout(data.StructLayout(lane_fields), lanes),
        **(row_fields or {}),
        "count": lanes_shape(lanes),
        "last": 1,
    })


def out_layout(lanes, row_fields=None):
    """Output beat: ``data`` (``lanes`` signed 32-bit results), per-row fields, ``count``
    (copied from the matching input beat) and ``last``."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(ACC_WIDTH), lanes),
        **(row_fields or {}),
        "count": lanes_shape(lanes),
        "last": 1,
    })


def _shape_of(value):
    if isinstance(value, data.View):
        return value.shape()
    return Value.cast(value).shape()


#: Long delays of wide values go through distributed RAM instead of register chains: a
#: chain of N stages costs N flip-flops per bit, a :class:`DelayLine` one flip-flop per bit
#: behind the RAM plus the RAM, which ECP5 yosys maps to TRELLIS_DPR16X4 (16 words of 4
#: bits, 6 LUTs' worth of logic cells: 1.5 LUTs per bit) and a few address bits per line.
#: Yosys removes the RAM bits nobody reads, so a line of a wide record costs only the
#: fields read at its distance. From 6 stages on a line saves at least 5 flip-flops per
#: bit for 1.5 LUTs (slices hold as many LUTs as flip-flops); measured at 8x8 / 4 lanes on
#: the ECP5-85k (LUTs / FFs / MHz, before -> after): LayerNorm 7,523 / 10,793 / 134.0 ->
#: 8,420 / 6,089 / 138.3, RMSNorm 6,533 / 7,776 / 128.7 -> 6,967 / 4,702 / 138.4, Softmax
#: 6,239 / 4,453 / 132.3 -> 6,223 / 4,297 / 134.6.
MEMORY_DELAY_MIN_STAGES = 6
#: One RAM cell holds 4 bits: narrower values (and the resettable one-bit flags) keep
#: their register chain.
MEMORY_DELAY_MIN_WIDTH = 4
#: Longer delays are lines in series: a line of up to 17 stages fits one 16-word RAM
#: (words = stages - 1); a longer one needs two RAMs and a read multiplexer. LayerNorm's
#: 21-stage beta line as one 20-word line: 142 more LUTs, 123.4 MHz (125.9 at seed 2);
#: as lines of 11 and 10 stages: 138.3 MHz.
DELAY_LINE_MAX_STAGES = 17


class DelayLine(Elaboratable):
    """``o`` is ``i`` of exactly ``distance`` cycles earlier (free-running, no enable).

    A RAM of ``distance - 1`` words used as a circular buffer: every cycle the word at the
    free-running address (``0 .. distance - 2``, then 0 again) is read asynchronously into
    the register ``o`` (so no logic follows the RAM directly) and overwritten with ``i``;
    the word read was written ``distance - 1`` cycles earlier, and ``o`` adds the last
    cycle. The line has its own address counter: lines are independent of each other for
    placement. Like a register chain, the RAM and ``o`` start at zero and have no reset.
    """

    def __init__(self, shape, distance):
        if distance < 2:
            raise ValueError(f"a delay line needs a distance of at least 2, not {distance}")
        self.shape, self.distance = shape, distance
        self.i = Signal(shape, name="i")
        self.o = Signal(shape, name="o", reset_less=True)

    def elaborate(self, platform):
        m = Module()
        depth = self.distance - 1
        ram = Memory(shape=unsigned(Shape.cast(self.shape).width), depth=depth, init=[])
        m.submodules.ram = ram
        write, read = ram.write_port(), ram.read_port(domain="comb")
        address = Signal(range(depth), name="address", reset_less=True)
        m.d.sync += address.eq(Mux(address == depth - 1, 0, address + 1))
        m.d.comb += [
            write.en.eq(1),
            write.addr.eq(address),
            write.data.eq(Value.cast(self.i)),
            read.addr.eq(address),
        ]
        m.d.sync += Value.cast(self.o).eq(read.data)
        return m


class Pipeline:
    """A free-running pipeline whose values line up automatically.

    ``p[name] = expr`` defines a value at the current stage (a combinational expression of
    values of the same stage); ``p.step()`` moves to the next stage; ``p[name]`` read at a
    later stage returns the value delayed by as many registers as stages passed (the delay
    chains are shared between readers). Only values that are read later get registers.

    Helpers that take values and step the pipeline must store their arguments with
    ``p[key] = arg`` on entry and read them back with ``p[key]`` where they use them.

    Only one-bit values (``valid`` and the other flags that say what a beat is) have
    resettable delay registers; wider values are data, which matters only where a flag
    says so, and their registers have no reset: the reset then reaches a few hundred
    flip-flops instead of every one, and the data registers need no reset logic.

    A data value read at least :data:`MEMORY_DELAY_MIN_STAGES` stages after its
    definition and at least :data:`MEMORY_DELAY_MIN_WIDTH` bits wide is delayed by a
    :class:`DelayLine` (distributed RAM and one register) instead of a register chain;
    every distinct distance gets its own line from the defining stage (yosys removes the
    data bits of a line that no reader uses, so a wide record costs only the fields read
    at that distance).
    """

    def __init__(self, m, name):
        self.m, self.name, self.stage = m, name, 0
        # Delay registers live in their own module so that reading a value inside an
        # ``m.If`` of the unit never makes them conditional.
        self._registers = Module()
        m.submodules[f"{name}_registers"] = self._registers
        self._defined = {}
        self._delayed = {}
        self._parallels = 0
        self._operand_registers = 0  # see _operand_init
        self.delay_lines = {}      # (key, stage read) -> [DelayLine, ...] in series

    def __setitem__(self, key, value):
        if key in self._defined:
            raise KeyError(f"pipeline value {key!r} defined twice")
        self._defined[key] = (self.stage, value)

    def define(self, key, value, stage):
        """Define ``key`` at an explicit ``stage`` (e.g. a memory read result, which
        appears one stage after its address)."""
        if key in self._defined:
            raise KeyError(f"pipeline value {key!r} defined twice")
        self._defined[key] = (stage, value)

    def __getitem__(self, key):
        return self._at(key, self.stage)

    def _at(self, key, at):
        stage, value = self._defined[key]
        if stage > at:
            raise KeyError(f"pipeline value {key!r} of stage {stage} read at {at}")
        width = Shape.cast(_shape_of(value)).width
        if (at - stage >= MEMORY_DELAY_MIN_STAGES and width >= MEMORY_DELAY_MIN_WIDTH
                and (key, at) not in self._delayed):
            self._delayed[key, at] = self._delay_line(key, value, at - stage)
        if (key, at) in self._delayed:
            return self._delayed[key, at]
        for s in range(stage + 1, at + 1):
            if (key, s) not in self._delayed:
                shape = _shape_of(value)
                reg = Signal(shape, name=f"{self.name}_{key}_s{s}",
                             reset_less=Shape.cast(shape).width > 1)
                self._registers.d.sync += reg.eq(value)
                self._delayed[key, s] = reg
            value = self._delayed[key, s]
        return value

    def _delay_line(self, key, value, distance):
        """``value`` delayed by ``distance`` cycles through :class:`DelayLine` s in series,
        each at most :data:`DELAY_LINE_MAX_STAGES` long (one RAM deep, no read mux)."""
        count = -(-distance // DELAY_LINE_MAX_STAGES)
        lines = []
        for index in range(count):
            part = distance // count + (index < distance % count)
            line = DelayLine(_shape_of(value), part)
            self._registers.submodules[f"{self.name}_{key}_dl{distance}_{index}"] = line
            self._registers.d.comb += Value.cast(line.i).eq(Value.cast(value))
            value = line.o
            lines.append(line)
        self.delay_lines[key, self._defined[key][0] + distance] = lines
        return value

    def read(self, port, address, key):
        """Read memory ``port`` at ``address`` (current stage) into ``key``, which exists
        from two stages later: the synchronous read, then a register (block RAM outputs
        are slow, so no logic follows them directly)."""
        self.m.d.comb += port.addr.eq(address)
        self.define(f"{key}_port", port.data, self.stage + 1)
        self.define(key, self._at(f"{key}_port", self.stage + 2), self.stage + 2)

    def step(self, count=1):
        self.stage += count

    def parallel(self, build, items):
        """``[build(item) for item in items]`` with every path starting at the current
        stage (e.g. one per lane); the pipeline continues after the longest path, and the
        results of shorter paths are delayed to line up."""
        start, ends, keys = self.stage, [], []
        self._parallels += 1
        group = self._parallels
        for index, item in enumerate(items):
            self.stage = start
            keys.append(f"_parallel{group}_{index}")
            self[keys[-1]] = build(item)
            ends.append(self.stage)
        self.stage = max(ends, default=start)
        return [self[key] for key in keys]


class OutputQueue:
    """Output queue of ``depth`` beats in front of stream ``o`` plus credit counting.

    The unit sets ``issue`` when a beat enters its pipeline (only while ``can_issue``) and
    ``push``/``payload`` when the beat's result leaves the pipeline. The queue cannot
    overflow because at most ``depth`` beats are ever issued and not yet delivered.
    ``o.payload`` is zero while ``o.valid`` is low (:class:`StreamQueue`'s ``idle_zero``):
    the vector engine ORs its units' outputs together rather than selecting one.
    """

    def __init__(self, m, o, depth, name="queue"):
        queue = StreamQueue(o.payload.shape(), depth, idle_zero=True)
        m.submodules[name] = queue
        credits = Signal(range(depth + 1), init=depth, name=f"{name}_credits")
        self.issue = Signal(name=f"{name}_issue")
        self.can_issue = Signal(name=f"{name}_can_issue")
        self.push = queue.i.valid
        self.payload = queue.i.payload
        delivered = o.valid & o.ready
        m.d.sync += credits.eq(credits - self.issue + delivered)
        m.d.comb += [
            self.can_issue.eq(credits != 0),
            o.payload.eq(queue.o.payload),
            o.valid.eq(queue.o.valid),
            queue.o.ready.eq(o.ready),
        ]

    @staticmethod
    def depth_for(latency):
        """FIFO depth that sustains one beat per cycle behind a pipeline of ``latency``."""
        return latency + 3


class StreamingPipeline(Pipeline):
    """The skeleton of a streaming unit: beats accepted from ``i`` enter a free-running
    :class:`Pipeline` (stage 1 holds the registered beat as ``p["beat"]``) and
    :meth:`finish` pushes the result beat into an :class:`OutputQueue` in front of ``o``.
    """

    def __init__(self, m, i, o, name="pipe"):
        super().__init__(m, name)
        self.o = o
        self.issue = Signal(name=f"{name}_issue")
        self.can_issue = Signal(name=f"{name}_can_issue")
        m.d.comb += [i.ready.eq(self.can_issue), self.issue.eq(i.valid & self.can_issue)]
        self["valid"] = self.issue
        self["beat"] = i.payload
        self.step()

    def finish(self, results, **row_fields):
        """Push ``results`` (one value per lane) plus ``count``/``last`` of the beat and
        ``row_fields`` at the current stage; returns the number of pipeline stages."""
        beat = self["beat"]
        return output_stage(self, self.o, self.issue, self.can_issue, results, beat.count,
                            beat.last, **row_fields)


def output_stage(p, o, issue, can_issue, results, count, last, valid="valid", **row_fields):
    """Connect pipeline ``p`` to stream ``o`` through an :class:`OutputQueue` sized for its
    depth: ``issue`` (a beat entered stage 0) spends a credit, ``can_issue`` is driven;
    ``p[valid]`` at the current stage pushes ``results`` (one per lane), ``count``,
    ``last`` and ``row_fields``. Returns the pipeline depth."""
    # The queue's write data comes straight from registers.
    fields = {"count": count, "last": last, **row_fields}
    for lane, value in enumerate(results):
        p[f"out_data{lane}"] = value
    for key, value in fields.items():
        p[f"out_{key}"] = value
    p.step()
    queue = OutputQueue(p.m, o, OutputQueue.depth_for(p.stage), name=f"{p.name}_queue")
    p.m.d.comb += [
        queue.issue.eq(issue),
        can_issue.eq(queue.can_issue),
        queue.push.eq(p[valid]),
    ]
    for lane in range(len(results)):
        p.m.d.comb += queue.payload.data[lane].eq(p[f"out_data{lane}"])
    for key in fields:
        p.m.d.comb += queue.payload[key].eq(p[f"out_{key}"])
    return p.stage


def signed_range(bits):
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def fits_signed(value, bits):
    """``value`` lies in the signed ``bits``-wide range: its bits from ``bits - 1`` up are
    all equal (a LUT reduction, no carry chain)."""
    value = Value.cast(value)
    if len(value) <= bits:
        return Const(1, 1)
    high = value[bits - 1:]
    if not value.shape().signed:
        return high == 0
    return (high == 0) | (high == (1 << len(high)) - 1)


def saturate(value, bits, signed_result=True):
    """``value`` clamped to the signed ``bits``-wide range (or, with ``signed_result``
    False, to ``0..2**bits - 1`` for a non-negative ``value``), combinationally."""
    value = Value.cast(value)
    if signed_result:
        lo, hi = signed_range(bits)
        return Mux(fits_signed(value, bits), value[:bits].as_signed(),
                   Mux(value[-1] & value.shape().signed, lo, hi))
    if len(value) <= bits:
        return value
    return Mux(value[bits:] == 0, value[:bits], (1 << bits) - 1)


def _registered_clamps(p, value, widths, name):
    """``value`` (signed, of the current stage) clamped to the signed range of each of
    ``widths`` (at most 32 bits): the range checks are registered, and ``{bits: clamp}``
    is returned (combinational) one stage later."""
    value = Value.cast(value)
    p[f"{name}_value"] = value[:ACC_WIDTH].as_signed()
    p[f"{name}_negative"] = value[-1]
    for bits in widths:
        p[f"{name}_fits{bits}"] = fits_signed(value, bits)
    p.step()
    clamps = {}
    for bits in widths:
        lo, hi = signed_range(bits)
        clamps[bits] = Mux(p[f"{name}_fits{bits}"], p[f"{name}_value"],
                           Mux(p[f"{name}_negative"], lo, hi))
    return clamps


def saturate_next(p, value, bits, name):
    """:func:`saturate` of ``value`` (of the current stage) to ``bits`` (at most 32), one
    stage later: the range check of a wide value is registered (with the selection in the
    same cycle it was the slowest path of the requantize unit)."""
    return _registered_clamps(p, value, (bits,), name)[bits]


def saturate_out(p, value, out_bits, name):
    """``value`` (signed, of the current stage) clamped to the signed range selected by
    ``out_bits`` (an :class:`OutBits` signal): the range checks are registered, and the
    selection is returned (combinational) one stage later."""
    clamp = _registered_clamps(p, value, (8, 16, 32), name)
    return Mux(out_bits == OutBits.INT8, clamp[8],
               Mux(out_bits == OutBits.INT16, clamp[16], clamp[32]))


def _pieces(value):
    """``value`` cut into pieces for DSP blocks: unsigned 17-bit pieces and a signed top
    piece (each at most :data:`DSP_WIDTH` bits), with their shifts."""
    value = Value.cast(value)
    if len(value) <= DSP_WIDTH:
        return [(value, 0)]
    low = DSP_WIDTH - 1
    pieces = [(value[i:i + low], i) for i in range(0, len(value) - low, low)]
    top = len(pieces) * low
    high = value[top:]
    return pieces + [(high.as_signed() if value.shape().signed else high, top)]


def _operand_init(p, shape):
    """A reset value for the next operand register of pipeline ``p``: a count per pipeline,
    offset by a hash of the pipeline's name, modulo the register's range (see
    :class:`PipelinedMultiplier`: distinct values keep copies of an operand shared by the
    lanes, such as a row's reciprocal, apart). Yosys merges flip-flops bit by bit, so the
    bits whose reset values agree are still merged (about half of them)."""
    span = 2 ** (shape.width - 1) if shape.signed else 2 ** shape.width
    p._operand_registers += 1
    return (zlib.crc32(p.name.encode()) + p._operand_registers) % span


#: Stages of fabric registers :func:`multiply` puts around its DSP blocks (one each side).
MULTIPLY_FABRIC_STAGES = 2


def multiply(p, a, b, name):
    """``a * b`` of two values of the current stage as a register: every pair of operand
    pieces (at most 18 bits each, one DSP block) is a :class:`PipelinedMultiplier` of its
    own (operand registers next to its DSP block, or inside it on ECP5) giving a registered
    partial product, and the partial products are summed by a tree of registered adders,
    one level per stage.

    A stage of fabric registers on either side of the DSP blocks: the operand pieces
    (each multiplication's own, so that a lane's copy of an operand shared by the lanes
    sits by that lane's blocks) and the partial products. A unit's DSP blocks are spread
    along the die's rows of them, far from its logic; these registers let a net from the
    logic to a block, or back, take a cycle of its own."""
    def operand_register(piece, key):
        return kept_copy(p._registers, piece, f"{p.name}_{name}_{key}", reset_less=True)

    a_pieces = [(operand_register(x, f"a{i}"), shift) for i, (x, shift) in enumerate(_pieces(a))]
    b_pieces = [(operand_register(y, f"b{j}"), shift) for j, (y, shift) in enumerate(_pieces(b))]
    p.step()
    products = []
    for i, (x, x_shift) in enumerate(a_pieces):
        for j, (y, y_shift) in enumerate(b_pieces):
            x_shape, y_shape = Value.cast(x).shape(), Value.cast(y).shape()
            multiplier = PipelinedMultiplier(x_shape, y_shape, a_init=_operand_init(p, x_shape),
                                             b_init=_operand_init(p, y_shape))
            p._registers.submodules[f"{p.name}_{name}_mul{i}{j}"] = multiplier
            p._registers.d.comb += [multiplier.a.eq(x), multiplier.b.eq(y)]
            p.define(f"{name}_pp{i}{j}", multiplier.p, p.stage + MULTIPLY_LATENCY)
            products.append((f"{name}_pp{i}{j}", x_shift + y_shift))
    p.step(MULTIPLY_LATENCY + 1)  # (the products' fabric registers: the pipeline's own)
    total = lane_reduce(p, [p[key] << shift for key, shift in products],
                        lambda x, y: x + y, f"{name}_sum")
    # The sum of the shifted partial products is as wide as Amaranth sizes it (far wider
    # than the product); cut to the product's own width, exactly, so that synthesis drops
    # the bits above from the adders and from everything after them.
    shape = (Value.cast(a) * Value.cast(b)).shape()
    total = Value.cast(total)[:shape.width]
    return total.as_signed() if shape.signed else total


def dyadic_scale(p, x, mult, shift, name):
    """``round_shift(x * mult, shift)``: :func:`multiply`, then :func:`round_shift`."""
    p[f"{name}_shift"] = shift  # arguments are values of the entry stage
    product = multiply(p, x, mult, f"{name}_mul")
    return round_shift(p, product, p[f"{name}_shift"], f"{name}_rs")


def round_shift(p, x, s, name):
    """Golden ``round_shift(x, s) = (x + 2**(s-1)) >> s`` in two stages of barrel shifting
    and a short add, computed as ``(((x << 1) >> s) + 1) >> 1`` (equal for every ``s >= 0``
    and needs no wide rounding adder). ``s`` is unsigned. Returns the registered result
    three stages later."""
    x = Value.cast(x)
    if not x.shape().signed:
        x = Cat(x, Const(0, 1)).as_signed()
    twice = Cat(Const(0, 1), x).as_signed()
    s = Value.cast(s)
    coarse = Cat(Const(0, 3), s[3:]) if len(s) > 3 else Const(0, 1)
    p[f"{name}_coarse"] = twice >> coarse
    p[f"{name}_fine"] = s[:3]
    p.step()
    p[f"{name}_shifted"] = p[f"{name}_coarse"] >> p[f"{name}_fine"]
    p.step()
    p[f"{name}_rounded"] = (p[f"{name}_shifted"] + 1) >> 1
    p.step()
    return p[f"{name}_rounded"]


def lane_reduce(p, values, op, name):
    """Reduce a list of values with ``op`` as a balanced tree, one stage per level.
    Returns the result at the last level's stage (a single lane returns it unchanged)."""
    level = 0
    while len(values) > 1:
        pairs = [op(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            pairs.append(values[-1])
        keys = [f"{name}_l{level}_{i}" for i in range(len(pairs))]
        for key, value in zip(keys, pairs):
            p[key] = value
        p.step()
        values = [p[key] for key in keys]
        level += 1
    return values[0]


def iterations(m, start, busy, count):
    """Sequencing of an iterative unit that runs ``count`` steps after a ``start`` pulse:
    returns ``load``, high the cycle after ``start`` (the unit loads its operands), and
    drives ``busy`` from then until the last step. ``busy`` is an OR of two flip-flops
    (the step count's end is registered a step ahead), so a state machine that waits on
    it sees no counter compare in front of its decision."""
    load, running = Signal(), Signal()
    steps = Signal(range(count + 1))
    m.d.sync += load.eq(start)
    m.d.comb += busy.eq(load | running)
    with m.If(load):
        m.d.sync += [steps.eq(count), running.eq(count != 0)]
    with m.Elif(running):
        m.d.sync += [steps.eq(steps - 1), running.eq(steps != 1)]
    return load


class Divider(wiring.Component):
    """``floor(numerator / denominator)``: a restoring divider giving one quotient bit per
    cycle (``quot_bits + 1`` cycles per division: ``start`` is registered before it loads
    the operands, so no decoding in front of it drives the loads' wide fan-out).

    Precondition (the caller's): ``numerator >> quot_bits < denominator``, so the quotient
    fits ``quot_bits`` bits.

    Members
    -------
    start : In(1)
        Pulse; ``numerator`` and ``denominator`` are sampled in the cycle after it.
    numerator : In(num_width)
    denominator : In(den_width)
    busy : Out(1)
        High from the cycle after ``start`` until ``quotient`` is final.
    quotient : Out(quot_bits)
    """

    def __init__(self, num_width, den_width, quot_bits):
        if num_width <= quot_bits:
            raise ValueError("num_width must exceed quot_bits")
        self.quot_bits = quot_bits
        super().__init__({
            "start": In(1), "numerator": In(num_width), "denominator": In(den_width),
            "busy": Out(1), "quotient": Out(quot_bits),
        })

    def elaborate(self, platform):
        m = Module()
        q = self.quot_bits
        den_width = len(self.denominator)
        # Loaded before every division, so the datapath needs no reset.
        remainder = Signal(den_width + 1, reset_less=True)
        low_bits = Signal(q, reset_less=True)
        divisor = Signal(den_width, reset_less=True)
        trial = Cat(low_bits[-1], remainder[:den_width])
        fits = trial >= divisor
        quotient = Signal(q, reset_less=True)  # final when busy falls
        m.d.comb += self.quotient.eq(quotient)
        load = iterations(m, self.start, self.busy, q)
        with m.If(load):
            m.d.sync += [
                remainder.eq(self.numerator[q:]),
                low_bits.eq(self.numerator[:q]),
                divisor.eq(self.denominator),
            ]
        with m.Elif(self.busy):
            m.d.sync += [
                remainder.eq(Mux(fits, trial - divisor, trial)),
                low_bits.eq(low_bits << 1),
                quotient.eq(Cat(fits, quotient[:-1])),
            ]
        return m


class Isqrt(wiring.Component):
    """``floor(sqrt(value))`` of a ``2 * root_bits``-bit value: the restoring square root,
    one result bit per cycle (``root_bits + 1`` cycles: ``start`` is registered before it
    loads, as in :class:`Divider`).

    Members
    -------
    start : In(1)
        Pulse; ``value`` is sampled in the cycle after it.
    value : In(2 * root_bits)
    busy : Out(1)
        High from the cycle after ``start`` until ``root`` is final.
    root : Out(root_bits)
    """

    def __init__(self, root_bits):
        self.root_bits = root_bits
        super().__init__({"start": In(1), "value": In(2 * root_bits), "busy": Out(1),
                          "root": Out(root_bits)})

    def elaborate(self, platform):
        m = Module()
        n = self.root_bits
        remainder = Signal(n + 2, reset_less=True)  # loaded before every root
        pending = Signal(2 * n, reset_less=True)
        root = Signal(n, reset_less=True)
        m.d.comb += self.root.eq(root)
        shifted = Cat(pending[-2:], remainder[:n])
        trial = Cat(Const(1, 2), root)
        fits = shifted >= trial
        load = iterations(m, self.start, self.busy, n)
        with m.If(load):
            m.d.sync += [remainder.eq(0), pending.eq(self.value), root.eq(0)]
        with m.Elif(self.busy):
            m.d.sync += [
                remainder.eq(Mux(fits, shifted - trial, shifted)),
                pending.eq(pending << 2),
                root.eq(Cat(fits, root[:-1])),
            ]
        return m


class RowBuffer:
    """Double-buffered row storage of the row units (softmax, norms, row quantization).

    *Input side*: accepts beats from ``i`` while ``loading``; :attr:`pipe` is a
    :class:`Pipeline` whose stage 0 holds ``valid`` (beat accepted), ``beat`` (its payload),
    ``index`` (beat number in the row), ``slot`` (buffer half) and ``first``. The unit
    writes records with :meth:`write` at any stage, reduces what it needs, and calls
    :meth:`finish_input` at its last stage; the row then waits (``filled``) until the
    process side is free. Until the hand-off, ``i`` is not ready.

    *Process side*: ``handoff`` pulses when a filled row moves over; then ``proc_beats``,
    ``proc_length`` (elements) and ``proc_slot`` describe it and the unit captures its
    own reductions. :meth:`reader` makes the pass sequencer that reads the row back; the
    unit pulses ``release`` when it has issued the row's last output beat, and the other
    half may then be handed over while the input side fills the first again.

    A read never meets a write at one address: the process side reads a half only after its
    row's last write, and that half is written again only after ``release``. The memory
    says so to synthesis (``no_rw_check``), which otherwise emulates the read port's
    read-during-write behaviour in a block RAM with a register and a multiplexer as wide as
    a beat between the RAM and the reader's register.
    """

    def __init__(self, m, i, lanes, max_row, record, name="row"):
        self.m, self.lanes, self.name = m, lanes, name
        self.beats = -(-max_row // lanes)
        self.memory = Memory(shape=data.ArrayLayout(record, lanes), depth=2 * self.beats,
                             init=[], attrs={"no_rw_check": 1})
        m.submodules[f"{name}_mem"] = self.memory
        self.write_port = self.memory.write_port()
        self.read_port = self.memory.read_port()

        self.loading = Signal(init=1, name=f"{name}_loading")
        self.filled = Signal(name=f"{name}_filled")
        in_slot = Signal(name=f"{name}_in_slot")
        in_index = Signal(range(self.beats), name=f"{name}_in_index")
        in_length = Signal(range(max_row + 1), name=f"{name}_in_length")
        in_beats = Signal(range(self.beats + 1), name=f"{name}_in_beats")
        in_count = Signal(lanes_shape(lanes), name=f"{name}_in_count")
        self.busy = Signal(name=f"{name}_busy")
        self.handoff = Signal(name=f"{name}_handoff")
        self.release = Signal(name=f"{name}_release")
        self.proc_slot = Signal(name=f"{name}_proc_slot")
        self.proc_beats = Signal(range(self.beats + 1), name=f"{name}_proc_beats")
        self.proc_length = Signal(range(max_row + 1), name=f"{name}_proc_length")
        self.proc_count = Signal(lanes_shape(lanes), name=f"{name}_proc_count")

        take = i.valid & self.loading
        m.d.comb += i.ready.eq(self.loading)
        with m.If(take):
            m.d.sync += in_index.eq(in_index + 1)
            with m.If(i.payload.last):
                m.d.sync += [in_index.eq(0), self.loading.eq(0), in_beats.eq(in_index + 1),
                             in_count.eq(i.payload.count),
                             in_length.eq(in_index * lanes + i.payload.count)]
        m.d.comb += self.handoff.eq(self.filled & ~self.busy)
        with m.If(self.handoff):
            m.d.sync += [
                self.filled.eq(0), self.loading.eq(1), in_slot.eq(~in_slot),
                self.busy.eq(1), self.proc_slot.eq(in_slot),
                self.proc_length.eq(in_length), self.proc_beats.eq(in_beats),
                self.proc_count.eq(in_count),
            ]
        with m.Elif(self.release):
            m.d.sync += self.busy.eq(0)

        self.pipe = p = Pipeline(m, f"{name}_in")
        p["valid"] = take
        p["beat"] = i.payload
        p["index"] = in_index
        p["slot"] = in_slot
        p["first"] = in_index == 0

    def address(self, slot, index):
        return Mux(slot, index + self.beats, index)

    def write(self, records):
        """Write ``records`` (one per lane: a value or a dict of fields) of the beat at
        the pipeline's current stage."""
        p, port = self.pipe, self.write_port
        self.m.d.comb += [port.addr.eq(self.address(p["slot"], p["index"])),
                          port.en.eq(p["valid"])]
        for lane, record in enumerate(records):
            if isinstance(record, dict):  # field by field
                for key, value in record.items():
                    self.m.d.comb += port.data[lane][key].eq(value)
            else:
                self.m.d.comb += port.data[lane].eq(record)

    def finish_input(self):
        """Mark the row complete once its last beat reaches the current stage."""
        p = self.pipe
        with self.m.If(p["valid"] & p["beat"].last):
            self.m.d.sync += self.filled.eq(1)

    def reader(self, name="pass"):
        """A :class:`RowReader` over the process side's row."""
        return RowReader(self, name)


class RowReader:
    """Reads the process side's row of a :class:`RowBuffer` beat by beat.

    ``go`` (pulse) starts a pass; each cycle with ``enable`` high issues the next beat
    until the row's ``proc_beats`` beats are issued (``active`` meanwhile). :attr:`pipe`
    stage 0 holds ``valid``, ``index`` and ``last`` (last beat of the row) and ``count``
    (valid lanes of the beat); ``record`` (the lanes read back) exists from stage 2 on.
    The pipeline is left at stage 0 for the unit to add per-row values. The read port
    address is driven at stage 0 so other memories can be read with ``pipe["index"]``.
    """

    def __init__(self, buffer, name):
        m = buffer.m
        self.go = Signal(name=f"{name}_go")
        self.enable = Signal(name=f"{name}_enable")
        self.active = Signal(name=f"{name}_active")
        self.issue = Signal(name=f"{name}_issue")
        index = Signal(range(buffer.beats), name=f"{name}_index")
        last = index == buffer.proc_beats - 1
        m.d.comb += self.issue.eq(self.active & self.enable)
        with m.If(self.go):
            m.d.sync += [self.active.eq(1), index.eq(0)]
        with m.Elif(self.issue):
            m.d.sync += index.eq(index + 1)
            with m.If(last):
                m.d.sync += self.active.eq(0)
        lanes = buffer.lanes
        self.pipe = p = Pipeline(m, name)
        p["valid"] = self.issue
        p["index"] = index
        p["last"] = last
        p["count"] = Mux(last, buffer.proc_count, lanes)
        p.read(buffer.read_port, buffer.address(buffer.proc_slot, index), "record")


def row_reduce(p, values, op, name, shape, valid="valid", first="first"):
    """Reduce ``values`` (one per lane, current stage) with ``op`` over the lanes, then
    over the beats of a row into a register of ``shape``: the register restarts on a beat
    with ``p[first]`` and takes every ``p[valid]`` beat. Returns the register, which
    holds the whole row's result the cycle after the row's last beat passed."""
    for lane, value in enumerate(values):  # registered, so only op feeds the accumulator
        p[f"{name}_in{lane}"] = value
    p.step()
    beat_value = lane_reduce(p, [p[f"{name}_in{lane}"] for lane in range(len(values))], op,
                             name)
    total = Signal(shape, name=f"{p.name}_{name}_row", reset_less=True)  # set by a first beat
    restart, take = p[first], p[valid]
    with p.m.If(take):
        p.m.d.sync += total.eq(Mux(restart, beat_value, op(total, beat_value)))
    return total


def lane_magnitudes(count, values):
    """``|v|`` of each lane's signed value as unsigned (``-2**31`` gives ``2**31``), zero
    in lanes beyond ``count``."""
    return [Mux(lane_valid(count, lane), Mux(v < 0, -v, v), 0).as_unsigned()[:len(v)]
            for lane, v in enumerate(values)]


def lane_valid(count, lane):
    """Lane ``lane`` of a beat with ``count`` valid lanes holds data."""
    return count > lane


def maximum(a, b):
    return Mux(a > b, a, b)


class StateMachine:
    """A state register with one ``if``/``elif`` branch per state: what ``m.FSM()`` does,
    but its Verilog has no incomplete ``case`` statements (which Verilator's lint rejects).

    ``with fsm.state("NAME"):`` opens a state's branch (all branches back to back, first
    state is the reset state); ``fsm.goto("NAME")`` inside it selects the next state.
    """

    def __init__(self, m, states, name="state"):
        self.m, self.codes = m, {state: code for code, state in enumerate(states)}
        self.register = Signal(range(max(len(states), 2)), name=name)
        self._opened = False

    @contextmanager
    def state(self, name):
        condition = self.register == self.codes[name]
        branch = self.m.Elif(condition) if self._opened else self.m.If(condition)
        self._opened = True
        with branch:
            yield

    def goto(self, name):
        self.m.d.sync += self.register.eq(self.codes[name])
