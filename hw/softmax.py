"""Integer softmax over rows of int32 attention logits, with causal and additive masks
(golden model: ``systolic.sw.numerics.softmax``)."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .config import ACC_WIDTH, SOFTMAX_DEFAULT_ROW
from .dsp import MULTIPLY_LATENCY, PipelinedMultiplier
from .formats import (EXP_FRAC_BITS, EXP_ONE_BITS, EXP_TABLE, EXP_ZERO_FROM,
                      INT32_MASK_NEG_INF, MANT_WIDTH, PROB_BITS, ROW_EXP_WIDTH, SHIFT_WIDTH,
                      SOFTMAX_MAX_ROW)
from .vector import (Divider, RowBuffer, StateMachine, beat_layout, check_lanes,
                     check_max_row, dyadic_scale, lane_valid, maximum, multiply, out_layout,
                     output_stage, round_shift, row_reduce, saturate)

__all__ = ["Softmax", "softmax_layout", "EXP_TABLE", "EXP_FRAC_BITS", "EXP_ONE_BITS",
           "PROB_BITS"]

#: Quotient bits of the reciprocal ``2**15 < r <= 2**16``.
RECIP_QUOT_BITS = EXP_ONE_BITS + 2
#: Identity of the row maximum.
INT32_MIN = -(2**31)
#: Bits of the integer part of ``u`` that select a shift; larger ``u`` gives ``e = 0``.
IPART_BITS = (EXP_ZERO_FROM - 1).bit_length()


def softmax_layout(lanes):
    """Input beat of :class:`Softmax`."""
    return beat_layout(lanes, {"x": signed(ACC_WIDTH), "mask": signed(ACC_WIDTH)},
                       {"mant": unsigned(MANT_WIDTH), "exp": signed(ROW_EXP_WIDTH),
                        "q_index": signed(ACC_WIDTH)})


class Softmax(wiring.Component):
    """Softmax of each row in probabilities of 1/256::

        x' = sat32(x + mask)  (masked)           valid: lane holds data, not (masked and
        mx = max valid x'                          mask == -2**31), not (causal and
        d  = mx - x'                               column > q_index)
        u  = round_shift(d * mult * mant, shift - exp)
        e  = round_shift(EXP_TABLE[u % 256], u >> 8)   (0 if u >> 8 >= 16 or not valid)
        r  = floor(2**(b + 15) / sum(e)),  b = bit_length(sum(e))
        p  = sat_u8(round_shift(e * r, b + 7))   (a row without valid position gives 0)

    Row unit: a row is buffered (two rows: one loads while the other is processed), read
    twice at one beat per cycle (exponentials and their sum, then probabilities); between
    the passes one normalization (at most ~28 cycles) and a 17-step division.

    Members
    -------
    i : In(stream.Signature(softmax_layout(lanes)))
        ``lanes[k].x`` (int32 logit), ``lanes[k].mask`` (int32 additive mask, used when
        ``masked``); ``mant`` / ``exp`` (the row scale of Q, ``mant = 1, exp = 0`` without
        one), ``q_index`` (causal mode: the row sees columns ``0..q_index``), the same on
        every beat of a row; ``count``; ``last``. Rows of 1..``max_row`` elements.
    o : Out(stream.Signature(out_layout(lanes)))
        ``data[k]``: probability 0..255; ``count``, ``last`` as the input row.
    mult : In(15)
        Mantissa ``m`` of the golden ``SoftmaxParams`` (1..2**15-1).
    shift : In(6)
        Its shift ``s``; ``shift - exp`` must lie in 0..62.
    causal : In(1)
        Apply the causal mask of ``q_index``.
    masked : In(1)
        Add ``mask`` (``-2**31`` excludes the position).
        The config inputs must stay stable while a row is in the unit.
    """

    def __init__(self, lanes=4, max_row=SOFTMAX_DEFAULT_ROW):
        check_lanes(lanes)
        check_max_row(max_row, SOFTMAX_MAX_ROW)
        self.lanes, self.max_row = lanes, max_row
        super().__init__({
            "i": In(stream.Signature(softmax_layout(lanes))),
            "o": Out(stream.Signature(out_layout(lanes))),
            "mult": In(MANT_WIDTH - 1),
            "shift": In(SHIFT_WIDTH),
            "causal": In(1),
            "masked": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self.lanes
        sum_bits = (self.max_row << EXP_ONE_BITS).bit_length()
        record = data.StructLayout({"x": signed(ACC_WIDTH), "valid": 1})
        # Neither memory's reads meet its writes (no_rw_check): nothing but a register after
        # the block RAMs, whose outputs come late (logic there was the unit's slowest path).
        rows = RowBuffer(m, self.i, lanes, self.max_row, record, "softmax")

        # Input side: mask, validity, store; max of the valid logits.
        # The row scale of the row being received (no reset: a row hands off after its beats).
        in_mant = Signal(MANT_WIDTH, reset_less=True)
        in_exp = Signal(signed(ROW_EXP_WIDTH), reset_less=True)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [in_mant.eq(self.i.payload.mant), in_exp.eq(self.i.payload.exp)]
        p = rows.pipe
        p["column"] = p["index"] * lanes
        p.step()
        beat = p["beat"]
        for k in range(lanes):
            x, mask = beat.lanes[k].x, beat.lanes[k].mask
            column = Cat(p["column"] + k, Const(0, 1)).as_signed()
            p[f"l{k}_x"] = Mux(self.masked, saturate(x + mask, ACC_WIDTH), x)
            p[f"l{k}_ok"] = (lane_valid(beat.count, k)
                             & ~(self.masked & (mask == INT32_MASK_NEG_INF))
                             & ~(self.causal & (column > beat.q_index)))
        p.step()
        rows.write([{"x": p[f"l{k}_x"], "valid": p[f"l{k}_ok"]} for k in range(lanes)])
        start = p.stage
        row_max = row_reduce(p, [Mux(p[f"l{k}_ok"], p[f"l{k}_x"], INT32_MIN)
                                 for k in range(lanes)], maximum, "max", signed(ACC_WIDTH))
        p.stage = start
        row_any = row_reduce(p, [p[f"l{k}_ok"] for k in range(lanes)], lambda a, b: a | b,
                             "any", unsigned(1))
        rows.finish_input()

        # Process side registers (the wide ones set by the state machine before each use,
        # so without a reset).
        mx = Signal(signed(ACC_WIDTH), reset_less=True)
        any_valid = Signal()
        mant = Signal(MANT_WIDTH, reset_less=True)
        exp = Signal(signed(ROW_EXP_WIDTH), reset_less=True)
        total = Signal(sum_bits, reset_less=True)
        shifts = Signal(range(sum_bits + 1), reset_less=True)
        recip = Signal(RECIP_QUOT_BITS, reset_less=True)
        output_pass = Signal()
        can_issue = Signal()

        m.submodules.exp_rom = rom = Memory(shape=unsigned(EXP_ONE_BITS + 1),
                                            depth=len(EXP_TABLE),
                                            init=[int(v) for v in EXP_TABLE])
        m.submodules.e_buffer = e_buffer = Memory(
            shape=data.ArrayLayout(unsigned(EXP_ONE_BITS + 1), lanes), depth=rows.beats,
            init=[], attrs={"no_rw_check": 1})  # written in pass 1, read in pass 2
        e_write, e_read = e_buffer.write_port(), e_buffer.read_port()

        reader = rows.reader("softmax_pass")
        m.d.comb += reader.enable.eq(~output_pass | can_issue)
        q = reader.pipe
        q["valid_exp"] = reader.issue & ~output_pass
        q["valid_out"] = reader.issue & output_pass
        q["first"] = q["index"] == 0
        # mult * mant from a pipelined multiplier (registered on both sides, as the lanes'
        # multipliers): mant is set by the hand-off, the product is there
        # MULTIPLY_LATENCY = 2 cycles after it, just as the first beat reaches stage 0
        # (SCALE, EXPONENTIALS with the reader's go, then the first issue).
        assert MULTIPLY_LATENCY <= 2, "the row scale must be ready for the first beat"
        m.submodules.row_scale = row_scale = PipelinedMultiplier(self.mult.shape(),
                                                                 mant.shape())
        m.d.comb += [row_scale.a.eq(self.mult), row_scale.b.eq(mant)]
        q["mx"], q["mm"], q["any"], q["recip"] = mx, row_scale.p, any_valid, recip
        q["u_shift"] = (self.shift - exp)[:SHIFT_WIDTH]
        q["p_shift"] = (sum_bits - shifts + EXP_ONE_BITS - PROB_BITS)[:SHIFT_WIDTH]
        q.read(e_read, q["index"], "e_read")
        q.step(2)  # the row and the exponentials read back
        split = q.stage

        # Pass 1: exponentials, stored and summed.
        def exponential(lane):
            name = f"l{lane}"
            x = q["record"][lane]
            q[f"{name}_valid"] = x.valid
            q[f"{name}_d"] = Mux(x.valid, q["mx"] - x.x, 0)[:ACC_WIDTH]
            q.step()
            u = dyadic_scale(q, q[f"{name}_d"], q["mm"], q["u_shift"], f"{name}_u")
            q[f"{name}_frac"] = u[:EXP_FRAC_BITS]
            q[f"{name}_ipart"] = u[EXP_FRAC_BITS:EXP_FRAC_BITS + IPART_BITS]
            q[f"{name}_vanish"] = (u[EXP_FRAC_BITS + IPART_BITS:] != 0) | ~q[f"{name}_valid"]
            q.step()
            q.read(rom.read_port(), q[f"{name}_frac"], f"{name}_table")
            q.step(2)
            e = round_shift(q, q[f"{name}_table"], q[f"{name}_ipart"], f"{name}_e")
            q[f"{name}_e"] = Mux(q[f"{name}_vanish"], 0, e)
            q.step()
            return q[f"{name}_e"]

        exps = q.parallel(exponential, range(lanes))
        m.d.comb += [e_write.addr.eq(q["index"]), e_write.en.eq(q["valid_exp"])]
        for lane, value in enumerate(exps):
            m.d.comb += e_write.data[lane].eq(value)
        row_sum = row_reduce(q, exps, lambda a, b: a + b, "sum", unsigned(sum_bits),
                             valid="valid_exp")
        exps_done = q["valid_exp"] & q["last"]

        # Pass 2: probabilities.
        q.stage = split

        def probability(lane):
            name = f"l{lane}"
            product = multiply(q, q["e_read"][lane], q["recip"], f"{name}_er")
            prob = round_shift(q, product, q["p_shift"], f"{name}_p")
            q[f"{name}_p"] = Mux(q["any"], saturate(prob.as_unsigned(), PROB_BITS, signed_result=False), 0)
            q.step()
            return q[f"{name}_p"]

        results = q.parallel(probability, range(lanes))
        self.latency = output_stage(q, self.o, reader.issue & output_pass, can_issue,
                                    results, q["count"], q["last"], valid="valid_out")

        m.submodules.divider = divider = Divider(sum_bits + EXP_ONE_BITS + 1, sum_bits,
                                                 RECIP_QUOT_BITS)
        m.d.comb += [divider.numerator.eq(1 << (sum_bits + EXP_ONE_BITS)),
                     divider.denominator.eq(total)]
        fsm = StateMachine(m, [
            "IDLE", "SCALE", "EXPONENTIALS", "SUM", "TOTAL", "NORMALIZE", "DIVIDE",
            "OUTPUT",
        ], "softmax_state")
        with fsm.state("IDLE"):
            with m.If(rows.handoff):
                m.d.sync += [mx.eq(row_max), any_valid.eq(row_any), mant.eq(in_mant),
                             exp.eq(in_exp)]
                fsm.goto("SCALE")
        with fsm.state("SCALE"):
            m.d.sync += output_pass.eq(0)
            fsm.goto("EXPONENTIALS")
        with fsm.state("EXPONENTIALS"):
            m.d.comb += reader.go.eq(1)
            fsm.goto("SUM")
        with fsm.state("SUM"):
            with m.If(exps_done):
                fsm.goto("TOTAL")
        with fsm.state("TOTAL"):
            m.d.sync += [total.eq(Mux(any_valid, row_sum, 1 << EXP_ONE_BITS)),
                         shifts.eq(0)]
            fsm.goto("NORMALIZE")
        with fsm.state("NORMALIZE"):
            # Shift the sum up to bit sum_bits - 1: b = sum_bits - shifts, and
            # floor(2**(b + 15) / sum) = floor(2**(sum_bits + 15) / (sum << shifts)).
            with m.If(~total[-1]):
                m.d.sync += [total.eq(total << 1), shifts.eq(shifts + 1)]
            with m.Else():
                m.d.comb += divider.start.eq(1)
                fsm.goto("DIVIDE")
        with fsm.state("DIVIDE"):
            with m.If(~divider.busy):
                m.d.sync += [recip.eq(divider.quotient), output_pass.eq(1)]
                m.d.comb += reader.go.eq(1)
                fsm.goto("OUTPUT")
        with fsm.state("OUTPUT"):
            with m.If(~reader.active):
                m.d.comb += rows.release.eq(1)
                fsm.goto("IDLE")
        return m
