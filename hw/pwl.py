"""Piecewise-linear activation unit (GELU and SiLU; golden model:
``systolic.sw.numerics.pwl.pwl_apply`` with the tables of ``gelu.py`` / ``silu.py``): one
circuit, built for either function or for both (chosen by an input, one ROM holding both
tables)."""

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .formats import (GELU_RANGE_LOG2, PWL_WIDTH, SEG_LOG2, SILU_RANGE_LOG2, TABLE_FRAC_BITS,
                      gelu_knots, silu_knots)
# The table builder under its former name here (PwlTable.build in the golden model).
from .formats import pwl_knots as tabulate  # noqa: F401
from .vector import (StreamingPipeline, beat_layout, check_lanes, check_subset, out_layout,
                     saturate)

__all__ = ["PiecewiseLinear", "Activation", "Gelu", "Silu", "PWL_FUNCS", "pwl_layout",
           "gelu_knots", "silu_knots", "TABLE_FRAC_BITS", "GELU_RANGE_LOG2",
           "SILU_RANGE_LOG2", "SEG_LOG2"]

#: The functions an :class:`Activation` can be built for, in the order of their tables.
PWL_FUNCS = ("gelu", "silu")
_FUNC_TABLES = {"gelu": (gelu_knots, GELU_RANGE_LOG2), "silu": (silu_knots, SILU_RANGE_LOG2)}


def pwl_layout(lanes):
    """Input beat of :class:`PiecewiseLinear`: one signed 16-bit ``x`` per lane."""
    return beat_layout(lanes, {"x": signed(PWL_WIDTH)})


def _signed_bits(values):
    return max(int(v).bit_length() for v in values) + 1


class PiecewiseLinear(wiring.Component):
    """``y = f(x)`` by linear interpolation in a ROM of ``2**(range_log2 + seg_log2 + 1)``
    segments, identity above the table range, zero below, saturated to int16; ``f`` one of
    the ``tables`` (``(knots, range_log2)`` each), chosen by the ``table`` input if there
    are several.

    With ``g = frac_bits - seg_log2`` and ``lo = -2**(range_log2 + frac_bits)``: inside
    ``lo <= x < -lo``, ``k = (x - lo) >> g``, ``r = (x - lo) mod 2**g`` and
    ``y = round_shift((knots[k] << g) + (knots[k+1] - knots[k]) * r, 14 - seg_log2)``.
    The ROM holds ``knots[k]`` and the slope ``knots[k+1] - knots[k]`` per segment (one
    read port per lane), the tables one after the other: table ``t``'s segments start at
    the sum ``base`` of the earlier tables' segment counts, and its offsets ``x - lo`` are
    taken from ``(base << g) - lo`` so that ``k`` is the ROM address (the range and the
    base come from registers: the tables share one adder, one ROM read and one multiplier
    per lane, and the pipeline of one table).

    Streaming: one beat per cycle, ``latency`` pipeline stages plus the output queue.

    Members
    -------
    i : In(stream.Signature(pwl_layout(lanes)))
        ``lanes[k].x``: int16 fixed point with ``frac_bits`` fraction bits; ``count``;
        ``last``.
    o : Out(stream.Signature(out_layout(lanes)))
        ``data[k]``: int16 result in the same format (sign-extended to 32 bits).
    frac_bits : In(4)
        Fraction bits of input and output, ``seg_log2..15``.
    table : In(range(len(tables)))
        Only with several tables: the index of the table the beats use.

    The config inputs (``frac_bits``, ``table``) go to registers only; hold them stable
    from the cycle before the first beat while beats are in flight (other values give
    unspecified results).
    """

    def __init__(self, lanes, tables, seg_log2=SEG_LOG2):
        check_lanes(lanes)
        if not 0 <= seg_log2 <= TABLE_FRAC_BITS:
            raise ValueError(f"seg_log2 must be in 0..{TABLE_FRAC_BITS}, not {seg_log2}")
        tables = tuple((tuple(int(k) for k in knots), range_log2) for knots, range_log2 in tables)
        if not tables:
            raise ValueError("a piecewise-linear unit needs a table")
        for knots, range_log2 in tables:
            segments = 2 << (range_log2 + seg_log2)
            if len(knots) != segments + 1:
                raise ValueError(f"knots must have {segments + 1} entries for range_log2="
                                 f"{range_log2} and seg_log2={seg_log2}, not {len(knots)}")
        self.lanes, self.tables, self.seg_log2 = lanes, tables, seg_log2
        ports = {
            "i": In(stream.Signature(pwl_layout(lanes))),
            "o": Out(stream.Signature(out_layout(lanes))),
            "frac_bits": In(4),
        }
        if len(tables) > 1:
            ports["table"] = In(range(len(tables)))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        shared = len(self.tables) > 1
        bases, entries = [], []  # the tables one after the other
        for knots, _ in self.tables:
            bases.append(len(entries))
            entries += [(a, b - a) for a, b in zip(knots, knots[1:])]
        segment = data.StructLayout({
            "base": signed(_signed_bits(k for knots, _ in self.tables for k in knots)),
            "slope": signed(_signed_bits(s for _, s in entries))})
        m.submodules.rom = rom = Memory(
            shape=segment, depth=len(entries),
            init=[{"base": b, "slope": s} for b, s in entries])
        p = StreamingPipeline(m, self.i, self.o, "pwl")

        def by_table(values):
            """The value of the table in use: a constant, or chosen by ``table``."""
            return Array(Const(v) for v in values)[self.table] if shared else values[0]

        range_log2 = by_table([r for _, r in self.tables])
        # Inside the range, x - lo < 2**(range_log2 + 16) at most; the offsets from the
        # bottom of the table in the ROM (base << g more) are below len(rom) << g.
        span_bits = max(r for _, r in self.tables) + PWL_WIDTH
        offset_bits = (len(entries) - 1).bit_length() + PWL_WIDTH - 1 - self.seg_log2
        # The shift and the range from frac_bits in registers: no shifter in front of the
        # first stage's adders. (Copies of inputs every cycle: no reset.)
        gap, half_span = Signal(4, reset_less=True), Signal(span_bits, reset_less=True)
        low = Signal(signed(span_bits + 1), reset_less=True)  # -half_span
        m.d.sync += [gap.eq(self.frac_bits - self.seg_log2),
                     half_span.eq(Const(1, span_bits) << (range_log2 + self.frac_bits)),
                     low.eq(-(Const(1, span_bits) << (range_log2 + self.frac_bits)))]
        p["gap"], p["half_span"], p["low"] = gap, half_span, low
        if shared:
            # x + start is the offset: start = (base << g) + half_span
            # = (base / 2**seg_log2 + 2**range_log2) << frac_bits (a table's base, a sum of
            # segment counts 2**(range_log2 + seg_log2 + 1), divides exactly), one constant
            # per table and a shifter, with no adder ahead of the register.
            start = Signal(offset_bits, reset_less=True)
            m.d.sync += start.eq(by_table([(base >> self.seg_log2) + (1 << r) for base, (_, r)
                                           in zip(bases, self.tables)]) << self.frac_bits)
            p["start"] = start

        def lane_path(lane):
            name = f"l{lane}"
            x = p["beat"].lanes[lane].x
            p[f"{name}_x"] = x
            offset = x + p["start" if shared else "half_span"]
            # offset < 0 and offset >= 2 * half_span, compared beside the adder.
            p[f"{name}_below"] = x < p["low"]
            p[f"{name}_above"] = x >= p["half_span"]
            inside = ~p[f"{name}_below"] & ~p[f"{name}_above"]
            p[f"{name}_offset"] = Mux(inside, offset, 0)[:offset_bits]
            p.step()
            # The segment in a register of its own: no shifter in front of the ROM address.
            p[f"{name}_segment"] = p[f"{name}_offset"] >> p["gap"]
            p[f"{name}_rem"] = (p[f"{name}_offset"] & ((Const(1, 16) << p["gap"]) - 1))[:15]
            p.step()
            p.read(rom.read_port(), p[f"{name}_segment"], f"{name}_entry")
            p.step(2)
            entry = p[f"{name}_entry"]
            p[f"{name}_scaled_base"] = entry.base << p["gap"]
            p[f"{name}_delta"] = entry.slope * p[f"{name}_rem"]
            p.step()
            p[f"{name}_interp"] = (p[f"{name}_scaled_base"] + p[f"{name}_delta"]
                                   + (1 << (TABLE_FRAC_BITS - self.seg_log2 - 1))
                                   ) >> (TABLE_FRAC_BITS - self.seg_log2)
            p.step()
            y = Mux(p[f"{name}_above"], p[f"{name}_x"],
                    Mux(p[f"{name}_below"], 0, p[f"{name}_interp"]))
            p[f"{name}_y"] = saturate(y, PWL_WIDTH)
            p.step()
            return p[f"{name}_y"]

        results = p.parallel(lane_path, range(self.lanes))
        self.latency = p.finish(results)
        return m


class Activation(PiecewiseLinear):
    """:class:`PiecewiseLinear` with the golden tables of ``funcs`` (of :data:`PWL_FUNCS`):
    GELU ([-8, 8), 256 segments) and/or SiLU ([-16, 16), 512 segments).

    Built for both, the unit has the ``table`` input (0 GELU, 1 SiLU) and one ROM of 768
    segments, GELU's then SiLU's; its adders are a bit wider, its pipeline the same.
    """

    def __init__(self, lanes=4, funcs=PWL_FUNCS):
        self.funcs = check_subset("funcs", funcs, PWL_FUNCS)
        super().__init__(lanes, [(knots(), range_log2) for knots, range_log2 in
                                 (_FUNC_TABLES[func] for func in self.funcs)])


class Gelu(Activation):
    """:class:`Activation` built for GELU alone (no ``table`` input)."""

    def __init__(self, lanes=4):
        super().__init__(lanes, ("gelu",))


class Silu(Activation):
    """:class:`Activation` built for SiLU alone (no ``table`` input)."""

    def __init__(self, lanes=4):
        super().__init__(lanes, ("silu",))
