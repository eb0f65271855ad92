"""Element-wise units: the SwiGLU product and the residual add (golden models:
``systolic.sw.numerics.eltwise_mul`` and ``residual_add``)."""

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ACC_WIDTH, MANT_WIDTH, SHIFT_WIDTH
from .vector import (StreamingPipeline, beat_layout, check_lanes, dyadic_scale, multiply,
                     out_bits_port, out_layout, saturate_out)

__all__ = ["EltwiseMul", "ResidualAdd", "eltwise_mul_layout", "residual_add_layout"]

#: Operand width of the element-wise product (int16 activations).
MUL_OPERAND_WIDTH = 16


def eltwise_mul_layout(lanes):
    """Input beat of :class:`EltwiseMul`."""
    return beat_layout(lanes, {
        "a": signed(MUL_OPERAND_WIDTH), "b": signed(MUL_OPERAND_WIDTH),
        "m": signed(MANT_WIDTH), "s": unsigned(SHIFT_WIDTH),
    })


def residual_add_layout(lanes):
    """Input beat of :class:`ResidualAdd`."""
    return beat_layout(lanes, {
        "a": signed(ACC_WIDTH), "b": signed(ACC_WIDTH),
        "ma": signed(MANT_WIDTH), "sa": unsigned(SHIFT_WIDTH),
        "mb": signed(MANT_WIDTH), "sb": unsigned(SHIFT_WIDTH),
    })


class EltwiseMul(wiring.Component):
    """``y = sat_out(round_shift(a * b * m, s))`` per lane. The golden unscaled product
    ``a * b`` is ``m = 1, s = 0, out_bits = 32`` (exact, ``|a * b| <= 2**30``).

    Streaming: one beat per cycle, ``latency`` pipeline stages plus the output queue.

    Members
    -------
    i : In(stream.Signature(eltwise_mul_layout(lanes)))
        ``lanes[k].a``, ``lanes[k].b`` (int16 operands), ``lanes[k].m`` (signed mantissa,
        ``|m| < 2**15``), ``lanes[k].s`` (shift 0..62) of the lane's channel; ``count``;
        ``last``.
    o : Out(stream.Signature(out_layout(lanes)))
        ``data[k]``: the signed ``out_bits`` result.
    out_bits : In(OutBits)
        Output width (8, 16 or 32); hold stable while beats are in flight.
    """

    def __init__(self, lanes=4):
        check_lanes(lanes)
        self.lanes = lanes
        super().__init__({
            "i": In(stream.Signature(eltwise_mul_layout(lanes))),
            "o": Out(stream.Signature(out_layout(lanes))),
            "out_bits": out_bits_port(),
        })

    def elaborate(self, platform):
        m = Module()
        p = StreamingPipeline(m, self.i, self.o, "mul")

        def lane_path(lane):
            beat = p["beat"].lanes[lane]
            product = multiply(p, beat.a, beat.b, f"l{lane}_ab")
            scaled = dyadic_scale(p, product, p["beat"].lanes[lane].m,
                                  p["beat"].lanes[lane].s, f"l{lane}")
            return saturate_out(p, scaled, self.out_bits, f"l{lane}_out")

        results = p.parallel(lane_path, range(self.lanes))
        self.latency = p.finish(results)
        return m


class ResidualAdd(wiring.Component):
    """``y = sat_out(round_shift(a * ma, sa) + round_shift(b * mb, sb))`` per lane.

    Streaming: one beat per cycle, ``latency`` pipeline stages plus the output queue.

    Members
    -------
    i : In(stream.Signature(residual_add_layout(lanes)))
        ``lanes[k].a``, ``lanes[k].b`` (int32 inputs) and their alignments ``ma``/``sa``,
        ``mb``/``sb`` (signed mantissa ``|m| < 2**15``, shift 0..62) for the lane's
        channel; ``count``; ``last``.
    o : Out(stream.Signature(out_layout(lanes)))
        ``data[k]``: the signed ``out_bits`` sum.
    out_bits : In(OutBits)
        Output width (8, 16 or 32); hold stable while beats are in flight.
    """

    def __init__(self, lanes=4):
        check_lanes(lanes)
        self.lanes = lanes
        super().__init__({
            "i": In(stream.Signature(residual_add_layout(lanes))),
            "o": Out(stream.Signature(out_layout(lanes))),
            "out_bits": out_bits_port(),
        })

    def elaborate(self, platform):
        m = Module()
        p = StreamingPipeline(m, self.i, self.o, "residual")

        def operand_path(args):
            lane, operand = args
            beat = p["beat"].lanes[lane]
            return dyadic_scale(p, beat[operand], beat[f"m{operand}"], beat[f"s{operand}"],
                                f"l{lane}_{operand}")

        def lane_path(lane):
            ya, yb = p.parallel(operand_path, [(lane, "a"), (lane, "b")])
            p[f"l{lane}_sum"] = ya + yb
            p.step()
            return saturate_out(p, p[f"l{lane}_sum"], self.out_bits, f"l{lane}_out")

        results = p.parallel(lane_path, range(self.lanes))
        self.latency = p.finish(results)
        return m
