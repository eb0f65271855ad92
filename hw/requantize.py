"""Requantizer: int32 matmul accumulators to ``out_bits`` outputs by a per-channel dyadic
multiplier, an optional per-row dynamic scale and a bias (golden model:
``systolic.sw.numerics.requantize``)."""

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ACC_WIDTH
from .formats import MANT_WIDTH, ROW_EXP_WIDTH, SHIFT_WIDTH
from .vector import (OutBits, StreamingPipeline, out_bits_port, beat_layout, check_lanes, dyadic_scale,
                     multiply, out_layout, saturate_next, saturate_out)

__all__ = ["Requantize", "requantize_layout"]


def requantize_layout(lanes):
    """Input beat of :class:`Requantize`."""
    return beat_layout(lanes, {
        "acc": signed(ACC_WIDTH),
        "m": signed(MANT_WIDTH),
        "s": unsigned(SHIFT_WIDTH),
        "bias": signed(ACC_WIDTH),
    }, {"mant": unsigned(MANT_WIDTH), "exp": signed(ROW_EXP_WIDTH)})


class Requantize(wiring.Component):
    """``y = sat_out(sat32(round_shift(acc * m * mant, s - exp)) + bias)`` per lane.

    Streaming: one beat per cycle; a beat accepted in cycle ``t`` leaves the internal
    pipeline after ``latency`` cycles and is offered on ``o`` two cycles later when the
    output queue is empty.

    Members
    -------
    i : In(stream.Signature(requantize_layout(lanes)))
        ``lanes[k].acc`` (int32 accumulator), ``lanes[k].m`` (signed mantissa,
        ``|m| < 2**15``), ``lanes[k].s`` (shift 0..62) and ``lanes[k].bias`` (int32, output
        units) of the lane's channel; ``mant`` (0..2**15-1) and ``exp`` (int8) of the row's
        dynamic scale (``mant = 1, exp = 0`` without one); ``count``; ``last``.
        ``s - exp`` must lie in 0..62 (the golden model raises otherwise; the hardware
        result is then unspecified).
    o : Out(stream.Signature(out_layout(lanes)))
        ``data[k]``: the result (signed ``out_bits`` value in 32 bits); ``count``, ``last``
        copied from the input beat.
    out_bits : In(OutBits)
        Output width (8, 16 or 32); hold stable while beats are in flight.
    """

    def __init__(self, lanes=4):
        check_lanes(lanes)
        self.lanes = lanes
        super().__init__({
            "i": In(stream.Signature(requantize_layout(lanes))),
            "o": Out(stream.Signature(out_layout(lanes))),
            "out_bits": out_bits_port(),
        })

    def elaborate(self, platform):
        m = Module()
        p = StreamingPipeline(m, self.i, self.o, "requant")
        beat = p["beat"]
        def lane_path(lane):
            name = f"l{lane}"
            # m * mant fits 30 bits (one DSP product); the total shift is s - exp.
            mult = multiply(p, beat.lanes[lane].m, beat.mant, f"{name}_mm")
            p[f"{name}_total_shift"] = (p["beat"].lanes[lane].s - p["beat"].exp)[:SHIFT_WIDTH]
            scaled = dyadic_scale(p, p["beat"].lanes[lane].acc, mult, p[f"{name}_total_shift"],
                                  name)
            sat32 = saturate_next(p, scaled, ACC_WIDTH, f"{name}_sat32")
            p[f"{name}_biased"] = sat32 + p["beat"].lanes[lane].bias
            p.step()
            return saturate_out(p, p[f"{name}_biased"], self.out_bits, f"{name}_out")

        results = p.parallel(lane_path, range(self.lanes))
        self.latency = p.finish(results)
        return m
