"""Per-row dynamic quantization of a wide activation to int8 with a row scale (golden
model: ``systolic.sw.numerics.quantize_rows``)."""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ACC_WIDTH, ROWQUANT_MAX_ROW
from .formats import MANT_BITS, MANT_WIDTH, QMAX, RECIP_BITS, ROW_EXP_WIDTH, SHIFT_WIDTH
from .vector import (Divider, RowBuffer, StateMachine, beat_layout, check_lanes,
                     check_max_row, dyadic_scale, lane_magnitudes, maximum, out_layout,
                     output_stage, row_reduce, saturate)

__all__ = ["RowQuantize", "rowquant_layout", "rowquant_out_layout", "RECIP_BITS", "QMAX"]

#: Bits of the reciprocal's numerator ``QMAX * 2**29`` and quotient
#: ``floor(QMAX * 2**29 / mant) < 2**22`` (``mant >= 2**14``).
RECIP_NUM_BITS = (QMAX << RECIP_BITS).bit_length()
RECIP_QUOT_BITS = RECIP_NUM_BITS - (MANT_BITS - 1)


def rowquant_layout(lanes):
    """Input beat of :class:`RowQuantize`: one signed 32-bit ``z`` per lane."""
    return beat_layout(lanes, {"z": signed(ACC_WIDTH)})


def rowquant_out_layout(lanes):
    """Output beat of :class:`RowQuantize`: the int8 results and the row's scale."""
    return out_layout(lanes, {"mant": unsigned(MANT_WIDTH), "exp": signed(ROW_EXP_WIDTH)})


class RowQuantize(wiring.Component):
    """``q = sat8(round_shift(z * R, 29 + exp))`` with the row scale ``(mant, exp)`` of
    ``max |z|`` and ``R = floor(127 * 2**29 / mant)`` (zero row: ``mant = exp = 0``,
    ``q = 0``).

    Row unit: a row is buffered (two rows: one loads while the other is emitted), its
    max-abs found while it streams in; then the scale is normalized one bit per cycle (at
    most 18 cycles), the reciprocal takes 22 cycles, and the row streams out at one beat
    per cycle. Any int16 or int32 ``z`` works (the golden ``in_bits`` only validates).

    Members
    -------
    i : In(stream.Signature(rowquant_layout(lanes)))
        ``lanes[k].z``; ``count``; ``last``. Rows of 1..``max_row`` elements.
    o : Out(stream.Signature(rowquant_out_layout(lanes)))
        ``data[k]``: int8 values (-127..127); ``mant``, ``exp``: the row scale, on every
        beat of the row; ``count``, ``last`` as the input beats of the row.
    """

    def __init__(self, lanes=4, max_row=1024):
        check_lanes(lanes)
        check_max_row(max_row, ROWQUANT_MAX_ROW)
        self.lanes, self.max_row = lanes, max_row
        super().__init__({
            "i": In(stream.Signature(rowquant_layout(lanes))),
            "o": Out(stream.Signature(rowquant_out_layout(lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self.lanes
        rows = RowBuffer(m, self.i, lanes, self.max_row, signed(ACC_WIDTH), "rq")

        # Input side: store z, find max |z| over the valid lanes.
        p = rows.pipe
        p.step()
        beat = p["beat"]
        rows.write([beat.lanes[k].z for k in range(lanes)])
        values = lane_magnitudes(beat.count, [beat.lanes[k].z for k in range(lanes)])
        maxabs = row_reduce(p, values, maximum, "maxabs", unsigned(ACC_WIDTH))
        rows.finish_input()

        # Process side: normalize max |z| to the row scale, divide, stream out.
        m.submodules.divider = divider = Divider(RECIP_NUM_BITS, MANT_BITS, RECIP_QUOT_BITS)
        # Set by the state machine before each use, so without a reset.
        mant = Signal(ACC_WIDTH + 1, reset_less=True)
        exp = Signal(signed(ROW_EXP_WIDTH), reset_less=True)
        recip = Signal(RECIP_QUOT_BITS, reset_less=True)
        reader = rows.reader("rq_out")
        m.d.comb += [divider.numerator.eq(QMAX << RECIP_BITS), divider.denominator.eq(mant)]
        fsm = StateMachine(m, [
            "IDLE", "NORMALIZE", "DIVIDE", "OUTPUT",
        ], "rowquant_state")
        with fsm.state("IDLE"):
            with m.If(rows.handoff):
                m.d.sync += [mant.eq(maxabs), exp.eq(0)]
                fsm.goto("NORMALIZE")
        with fsm.state("NORMALIZE"):
            with m.If(mant == 0):
                m.d.sync += recip.eq(0)
                m.d.comb += reader.go.eq(1)
                fsm.goto("OUTPUT")
            with m.Elif(mant[MANT_BITS:] != 0):  # ceil(mant / 2)
                m.d.sync += [mant.eq((mant + 1) >> 1), exp.eq(exp + 1)]
            with m.Elif(mant[MANT_BITS - 1:] == 0):
                m.d.sync += [mant.eq(mant << 1), exp.eq(exp - 1)]
            with m.Else():
                m.d.comb += divider.start.eq(1)
                fsm.goto("DIVIDE")
        with fsm.state("DIVIDE"):
            with m.If(~divider.busy):
                m.d.sync += recip.eq(divider.quotient)
                m.d.comb += reader.go.eq(1)
                fsm.goto("OUTPUT")
        with fsm.state("OUTPUT"):
            with m.If(~reader.active):
                m.d.comb += rows.release.eq(1)
                fsm.goto("IDLE")

        q = reader.pipe
        q["recip"] = recip
        q["shift"] = (RECIP_BITS + exp)[:SHIFT_WIDTH]
        q["mant"] = mant[:MANT_WIDTH]
        q["exp"] = exp
        q.step(2)  # the row read back

        def lane_path(lane):
            scaled = dyadic_scale(q, q["record"][lane], q["recip"], q["shift"], f"l{lane}")
            q[f"l{lane}_q"] = saturate(scaled, 8)
            q.step()
            return q[f"l{lane}_q"]

        results = q.parallel(lane_path, range(lanes))
        self.latency = output_stage(q, self.o, reader.issue, reader.enable, results,
                                    q["count"], q["last"], mant=q["mant"], exp=q["exp"])
        return m
