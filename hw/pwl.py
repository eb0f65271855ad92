"""Piecewise-linear activation unit (GELU and SiLU share it; golden model:
``systolic.sw.numerics.pwl.pwl_apply`` with the tables of ``gelu.py`` / ``silu.py``)."""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .formats import (GELU_RANGE_LOG2, PWL_WIDTH, SEG_LOG2, SILU_RANGE_LOG2, TABLE_FRAC_BITS,
                      gelu_knots, silu_knots)
# The table builder under its former name here (PwlTable.build in the golden model).
from .formats import pwl_knots as tabulate  # noqa: F401
from .vector import StreamingPipeline, beat_layout, check_lanes, out_layout, saturate

__all__ = ["PiecewiseLinear", "Gelu", "Silu", "pwl_layout", "gelu_knots", "silu_knots",
           "TABLE_FRAC_BITS", "GELU_RANGE_LOG2", "SILU_RANGE_LOG2", "SEG_LOG2"]


def pwl_layout(lanes):
    """Input beat of :class:`PiecewiseLinear`: one signed 16-bit ``x`` per lane."""
    return beat_layout(lanes, {"x": signed(PWL_WIDTH)})


def _signed_bits(values):
    return max(int(v).bit_length() for v in values) + 1


class PiecewiseLinear(wiring.Component):
    """``y = f(x)`` by linear interpolation in a ROM of ``2**(range_log2 + seg_log2 + 1)``
    segments, identity above the table range, zero below, saturated to int16.

    With ``g = frac_bits - seg_log2`` and ``lo = -2**(range_log2 + frac_bits)``: inside
    ``lo <= x < -lo``, ``k = (x - lo) >> g``, ``r = (x - lo) mod 2**g`` and
    ``y = round_shift((knots[k] << g) + (knots[k+1] - knots[k]) * r, 14 - seg_log2)``.
    The ROM holds ``knots[k]`` and the slope ``knots[k+1] - knots[k]`` per segment (one
    read port per lane).

    Streaming: one beat per cycle, ``latency`` pipeline stages plus the output queue.

    Members
    -------
    i : In(stream.Signature(pwl_layout(lanes)))
        ``lanes[k].x``: int16 fixed point with ``frac_bits`` fraction bits; ``count``;
        ``last``.
    o : Out(stream.Signature(out_layout(lanes)))
        ``data[k]``: int16 result in the same format (sign-extended to 32 bits).
    frac_bits : In(4)
        Fraction bits of input and output, ``seg_log2..15``; hold stable from the cycle
        before the first beat while beats are in flight (other values give unspecified
        results).
    """

    def __init__(self, lanes, knots, range_log2, seg_log2=SEG_LOG2):
        check_lanes(lanes)
        segments = 2 << (range_log2 + seg_log2)
        if len(knots) != segments + 1:
            raise ValueError(f"knots must have {segments + 1} entries for range_log2="
                             f"{range_log2} and seg_log2={seg_log2}, not {len(knots)}")
        if not 0 <= seg_log2 <= TABLE_FRAC_BITS:
            raise ValueError(f"seg_log2 must be in 0..{TABLE_FRAC_BITS}, not {seg_log2}")
        self.lanes, self.range_log2, self.seg_log2 = lanes, range_log2, seg_log2
        self.knots = tuple(int(k) for k in knots)
        super().__init__({
            "i": In(stream.Signature(pwl_layout(lanes))),
            "o": Out(stream.Signature(out_layout(lanes))),
            "frac_bits": In(4),
        })

    def elaborate(self, platform):
        m = Module()
        knots = self.knots
        slopes = [b - a for a, b in zip(knots, knots[1:])]
        segment = data.StructLayout({"base": signed(_signed_bits(knots)),
                                     "slope": signed(_signed_bits(slopes))})
        m.submodules.rom = rom = Memory(
            shape=segment, depth=len(slopes),
            init=[{"base": b, "slope": s} for b, s in zip(knots, slopes)])
        p = StreamingPipeline(m, self.i, self.o, "pwl")
        # Offsets from the bottom of the range: x - lo < 2**(range_log2 + 16) at most.
        span_bits = self.range_log2 + PWL_WIDTH
        # The shift and the range from frac_bits in registers: no shifter in front of the
        # first stage's adders.
        gap, half_span = Signal(4), Signal(span_bits)
        low = Signal(signed(span_bits + 1))  # -half_span
        m.d.sync += [gap.eq(self.frac_bits - self.seg_log2),
                     half_span.eq(Const(1, span_bits) << (self.range_log2 + self.frac_bits)),
                     low.eq(-(Const(1, span_bits) << (self.range_log2 + self.frac_bits)))]
        p["gap"], p["half_span"], p["low"] = gap, half_span, low

        def lane_path(lane):
            name = f"l{lane}"
            x = p["beat"].lanes[lane].x
            p[f"{name}_x"] = x
            offset = x + p["half_span"]
            # offset < 0 and offset >= 2 * half_span, compared beside the adder.
            p[f"{name}_below"] = x < p["low"]
            p[f"{name}_above"] = x >= p["half_span"]
            inside = ~p[f"{name}_below"] & ~p[f"{name}_above"]
            p[f"{name}_offset"] = Mux(inside, offset, 0)[:span_bits]
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


class Gelu(PiecewiseLinear):
    """:class:`PiecewiseLinear` with the golden GELU table ([-8, 8), 256 segments)."""

    def __init__(self, lanes=4):
        super().__init__(lanes, gelu_knots(), GELU_RANGE_LOG2)


class Silu(PiecewiseLinear):
    """:class:`PiecewiseLinear` with the golden SiLU table ([-16, 16), 512 segments)."""

    def __init__(self, lanes=4):
        super().__init__(lanes, silu_knots(), SILU_RANGE_LOG2)
