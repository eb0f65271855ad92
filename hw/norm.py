"""LayerNorm and RMSNorm over rows of a wide int32 activation (golden models:
``systolic.sw.numerics.layernorm`` and ``rmsnorm``; shared arithmetic in ``norm.py``): one
circuit, built for either function or for both (chosen per row by an input)."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ACC_WIDTH
from .formats import (EPS_BITS, INV_BITS, LAYERNORM_Z_FRAC_BITS, MANT_WIDTH, NORM_MAX_ROW,
                      PRESCALE_BITS, RMSNORM_Z_FRAC_BITS, SHIFT_WIDTH, SQRT_IN_BITS)
from .vector import (Divider, Isqrt, Pipeline, RowBuffer, StateMachine, beat_layout,
                     check_lanes, check_max_row, check_subset, dyadic_scale, lane_magnitudes,
                     lane_valid, maximum, multiply, out_bits_port, out_layout, output_stage,
                     round_shift, row_reduce, saturate_out)

__all__ = ["Norm", "LayerNorm", "RMSNorm", "NORM_MODES", "norm_layout", "PRESCALE_BITS",
           "INV_BITS", "EPS_BITS", "LAYERNORM_Z_FRAC_BITS", "RMSNORM_Z_FRAC_BITS"]


def norm_layout(lanes):
    """Input beat of :class:`Norm` (and :class:`LayerNorm` / :class:`RMSNorm`)."""
    return beat_layout(lanes, _record_fields())


#: The functions a :class:`Norm` can be built for.
NORM_MODES = ("layernorm", "rmsnorm")


def _record_fields():
    return {"x": signed(ACC_WIDTH), "gm": signed(MANT_WIDTH), "gs": unsigned(SHIFT_WIDTH),
            "beta": signed(ACC_WIDTH)}


class Norm(wiring.Component):
    """LayerNorm and/or RMSNorm (``modes``) over rows of int32 ``x``::

        k  = max(0, bit_length(max|x|) - 15);  xs = round_shift(x, k)
        S1 = sum(xs);  S2 = sum(xs**2)
        D  = n*S2 - S1**2 + round_shift(eps_q, 2k)      (RMSNorm: S2 + ...)
        j  = floor((bit_length(D) - 31) / 2);  sq = isqrt(D >> 2j);  inv = floor(2**40 / sq)
        z  = round_shift((n*xs - S1) * inv, 40 - 16 + j)   (RMSNorm: xs * inv, 40 - 22 + j)
        y  = sat_out(round_shift(z * gm, gs) + beta)    (D == 0: z = 0)

    Row unit: a row is buffered (two rows: one loads while the other is processed), read
    twice (sums, then output) at one beat per cycle; between the passes the per-row
    arithmetic takes up to ~75 cycles (normalizing shifts, a 16-step square root and a
    26-step division).

    Built for both functions, the unit runs RMSNorm as LayerNorm with ``n = 1`` and
    ``S1 = 0`` in the numerator and the moment (``1*xs - 0``, ``1*S2 - 0**2``): the same
    multipliers and pipeline for both, so RMSNorm rows take LayerNorm's cycles. Built for
    RMSNorm alone, it has no numerator or moment multipliers and a shorter pipeline.

    Members
    -------
    i : In(stream.Signature(norm_layout(lanes)))
        ``lanes[k].x`` (int32 input), ``lanes[k].gm`` / ``gs`` (dyadic gamma of the lane's
        channel, ``|gm| < 2**15``, shift 0..62), ``lanes[k].beta`` (int32 bias in output
        units); ``count``; ``last``. Rows of 1..``max_row`` elements.
    o : Out(stream.Signature(out_layout(lanes)))
        ``data[k]``: signed ``out_bits`` outputs; ``count``, ``last`` as the input row.
    out_bits : In(OutBits)
        Output width (8, 16 or 32).
    eps_q : In(57)
        Epsilon in squared input units (0..2**56) of the golden ``NormParams``.
    rms : In(1)
        Only in a unit built for both functions: 1 runs the rows as RMSNorm, 0 as
        LayerNorm (taken through a register).

    The config inputs (``out_bits``, ``eps_q``, ``rms``) must stay stable while a row is in
    the unit, from its first beat in to its last result out.
    """

    def __init__(self, lanes=4, max_row=1024, modes=NORM_MODES):
        check_lanes(lanes)
        check_max_row(max_row, NORM_MAX_ROW)
        self.lanes, self.max_row = lanes, max_row
        self.modes = check_subset("modes", modes, NORM_MODES)
        ports = {
            "i": In(stream.Signature(norm_layout(lanes))),
            "o": Out(stream.Signature(out_layout(lanes))),
            "out_bits": out_bits_port(),
            "eps_q": In(EPS_BITS),
        }
        if len(self.modes) > 1:
            ports["rms"] = In(1)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        lanes, length_bits = self.lanes, self.max_row.bit_length()
        centred = "layernorm" in self.modes  # n*xs - S1 and n*S2 - S1**2 are computed
        if len(self.modes) > 1:
            rms = Signal(name="rms")  # registered: the port fans out to no logic directly
            m.d.sync += rms.eq(self.rms)

        def by_mode(layernorm, rmsnorm):
            """The LayerNorm or the RMSNorm value: a multiplexer if built for both."""
            if len(self.modes) > 1:
                return Mux(rms, rmsnorm, layernorm)
            return layernorm if centred else rmsnorm

        rows = RowBuffer(m, self.i, lanes, self.max_row,
                         data.StructLayout(_record_fields()), "norm")

        # Input side: store the row, find max |x|.
        p = rows.pipe
        p.step()
        beat = p["beat"]
        rows.write([beat.lanes[k] for k in range(lanes)])
        values = lane_magnitudes(beat.count, [beat.lanes[k].x for k in range(lanes)])
        maxabs = row_reduce(p, values, maximum, "maxabs", unsigned(ACC_WIDTH))
        rows.finish_input()

        # Per-row registers of the process side (set by the state machine before each use,
        # so the wide ones need no reset: fewer loads on the reset net).
        top = Signal(ACC_WIDTH, name="prescale_top", reset_less=True)  # max|x| >> k
        k = Signal(range(ACC_WIDTH), name="prescale_k", reset_less=True)
        # D = n*S2 - S1**2 + eps < 2**(2*15 + 2*log2(n) + 1) + 2**56.
        denom = Signal(max(2 * PRESCALE_BITS + 2 * length_bits + 1, EPS_BITS) + 1,
                       reset_less=True)
        j = Signal(signed(7), reset_less=True)
        # Comparisons of D for NORMALIZE, registered with each new value of D (no wide
        # comparison in front of the state machine's decisions).
        d_zero, d_high, d_low = Signal(), Signal(), Signal()

        def set_denom(value):
            value = value[:len(denom)]
            return [denom.eq(value), d_zero.eq(value == 0),
                    d_high.eq(value[SQRT_IN_BITS:] != 0),
                    d_low.eq(value[SQRT_IN_BITS - 2:] == 0)]
        zero = Signal()
        inv = Signal(INV_BITS - PRESCALE_BITS + 1, reset_less=True)
        output_pass = Signal()
        can_issue = Signal()
        # n and S1 of the centred arithmetic: RMSNorm rows of a unit built for both take
        # n = 1 and S1 = 0, which turn n*xs - S1 into xs and n*S2 - S1**2 into S2.
        length = by_mode(rows.proc_length, 1)
        z_frac_bits = by_mode(LAYERNORM_Z_FRAC_BITS, RMSNORM_Z_FRAC_BITS)

        # Both passes read the row through one pipeline: xs, then the sums or the outputs.
        # Per-row values enter at stage 0 and travel with their beat.
        reader = rows.reader("norm_pass")
        m.d.comb += reader.enable.eq(~output_pass | can_issue)
        q = reader.pipe
        q["valid_sums"] = reader.issue & ~output_pass
        q["valid_out"] = reader.issue & output_pass
        q["first"] = q["index"] == 0
        q["k"], q["length"], q["inv"], q["zero"] = k, length, inv, zero
        q["z_shift"] = (INV_BITS - z_frac_bits + j)[:SHIFT_WIDTH]
        q.step(2)  # the row read back

        def prescaled(lane):
            xs = round_shift(q, q["record"][lane].x, q["k"], f"l{lane}_pre")
            # |xs| <= 2**PRESCALE_BITS by the choice of k: narrow multiplier operands.
            xs = xs[:PRESCALE_BITS + 2].as_signed()
            q[f"l{lane}_xs"] = Mux(lane_valid(q["count"], lane), xs, 0)
            q.step()
            return q[f"l{lane}_xs"]

        xs = q.parallel(prescaled, range(lanes))
        for lane, value in enumerate(xs):
            q[f"l{lane}_xs_aligned"] = value
        split = q.stage
        # Pass 1: S1 and S2 of the pre-scaled row.
        s1_shape = signed(PRESCALE_BITS + 2 + length_bits)
        s2_shape = unsigned(2 * PRESCALE_BITS + 1 + length_bits)
        squares = q.parallel(lambda lane: multiply(q, xs[lane], xs[lane], f"l{lane}_sq"),
                             range(lanes))
        for lane, value in enumerate(squares):
            q[f"l{lane}_square"] = value
        after_squares = q.stage
        s1 = row_reduce(q, [q[f"l{lane}_xs_aligned"] for lane in range(lanes)],
                        lambda a, b: a + b, "s1", s1_shape, valid="valid_sums")
        q.stage = after_squares  # the two reductions run side by side
        s2 = row_reduce(q, [q[f"l{lane}_square"] for lane in range(lanes)],
                        lambda a, b: a + b, "s2", s2_shape, valid="valid_sums")
        centre = by_mode(s1, 0)
        sums_done = q["valid_sums"] & q["last"]

        # Pass 2: the outputs (S1, or 0, is final by then and travels with the beat).
        q.stage = split
        q.define("s1", centre, 0)

        def output(lane):
            name = f"l{lane}"
            if not centred:
                numerator = q[f"{name}_xs_aligned"]
            else:
                scaled = multiply(q, q["length"], q[f"{name}_xs_aligned"], f"{name}_nx")
                # |n*xs - S1| <= 2 * n * 2**PRESCALE_BITS, one bit more than S1.
                q[f"{name}_num"] = (scaled - q["s1"])[:s1_shape.width + 1].as_signed()
                q.step()
                numerator = q[f"{name}_num"]
            z = dyadic_scale(q, numerator, q["inv"], q["z_shift"], f"{name}_z")
            q[f"{name}_z"] = Mux(q["zero"], 0, z[:ACC_WIDTH].as_signed())
            q.step()
            record = q["record"][lane]
            y = dyadic_scale(q, q[f"{name}_z"], record.gm, record.gs, f"{name}_g")
            q[f"{name}_y"] = y + q["record"][lane].beta
            q.step()
            return saturate_out(q, q[f"{name}_y"], self.out_bits, f"{name}_out")

        results = q.parallel(output, range(lanes))
        self.latency = output_stage(q, self.o, reader.issue & output_pass, can_issue,
                                    results, q["count"], q["last"], valid="valid_out")

        # Per-row arithmetic: D = n*S2 - S1**2 + round_shift(eps_q, 2k) (RMSNorm: S2 + ...)
        # on held registers; the go token marks when the result is there.
        r = Pipeline(m, "norm_row")
        go = Signal()
        r["go"] = go
        r["length"], r["s1"], r["s2"] = length, centre, s2
        r["eps"], r["eps_shift"] = self.eps_q, Cat(Const(0, 1), k)
        r.step()

        def eps_path(_):
            return round_shift(r, r["eps"], r["eps_shift"], "eps")

        def moment_path(_):
            if not centred:
                return r["s2"]
            n_s2 = multiply(r, r["length"], r["s2"], "ns2")
            r["ns2"] = n_s2
            r.step()
            s1_sq = multiply(r, r["s1"], r["s1"], "s1sq")
            r["s1sq"] = s1_sq
            r.step()
            return r["ns2"] - r["s1sq"]

        moments, eps = r.parallel(lambda build: build(None), [moment_path, eps_path])
        r["denom"] = moments + eps
        r.step()
        total_ready = r["go"]

        m.submodules.isqrt = isqrt = Isqrt(SQRT_IN_BITS // 2)
        m.submodules.divider = divider = Divider(INV_BITS + 1, SQRT_IN_BITS // 2,
                                                 INV_BITS - PRESCALE_BITS + 1)
        m.d.comb += [isqrt.value.eq(denom), divider.numerator.eq(1 << INV_BITS),
                     divider.denominator.eq(isqrt.root)]
        fsm = StateMachine(m, [
            "IDLE", "PRESCALE", "SUMS", "TOTAL", "WAIT_TOTAL", "NORMALIZE", "SQRT",
            "DIVIDE", "OUTPUT",
        ], "norm_state")
        with fsm.state("IDLE"):
            with m.If(rows.handoff):
                m.d.sync += [top.eq(maxabs), k.eq(0)]
                fsm.goto("PRESCALE")
        with fsm.state("PRESCALE"):  # k = max(0, bit_length(max|x|) - 15)
            with m.If(top[PRESCALE_BITS:] != 0):
                m.d.sync += [top.eq(top >> 1), k.eq(k + 1)]
            with m.Else():
                m.d.comb += reader.go.eq(1)
                m.d.sync += output_pass.eq(0)
                fsm.goto("SUMS")
        with fsm.state("SUMS"):
            with m.If(sums_done):
                fsm.goto("TOTAL")
        with fsm.state("TOTAL"):
            m.d.comb += go.eq(1)
            fsm.goto("WAIT_TOTAL")
        with fsm.state("WAIT_TOTAL"):
            with m.If(total_ready):
                m.d.sync += [*set_denom(r["denom"]), j.eq(0)]
                fsm.goto("NORMALIZE")
        with fsm.state("NORMALIZE"):  # even shifts bring D into [2**30, 2**32)
            with m.If(d_zero):
                m.d.sync += [zero.eq(1), inv.eq(0), output_pass.eq(1)]
                m.d.comb += reader.go.eq(1)
                fsm.goto("OUTPUT")
            with m.Elif(d_high):
                m.d.sync += [*set_denom(denom >> 2), j.eq(j + 1)]
            with m.Elif(d_low):
                m.d.sync += [*set_denom(denom << 2), j.eq(j - 1)]
            with m.Else():
                m.d.comb += isqrt.start.eq(1)
                fsm.goto("SQRT")
        with fsm.state("SQRT"):
            with m.If(~isqrt.busy):
                m.d.comb += divider.start.eq(1)
                fsm.goto("DIVIDE")
        with fsm.state("DIVIDE"):
            with m.If(~divider.busy):
                m.d.sync += [zero.eq(0), inv.eq(divider.quotient), output_pass.eq(1)]
                m.d.comb += reader.go.eq(1)
                fsm.goto("OUTPUT")
        with fsm.state("OUTPUT"):
            with m.If(~reader.active):
                m.d.comb += rows.release.eq(1)
                fsm.goto("IDLE")
        return m


class LayerNorm(Norm):
    """:class:`Norm` built for LayerNorm alone (no ``rms`` input)."""

    def __init__(self, lanes=4, max_row=1024):
        super().__init__(lanes, max_row, ("layernorm",))


class RMSNorm(Norm):
    """:class:`Norm` built for RMSNorm alone (no ``rms`` input): no multipliers for the
    numerator and the moment, a shorter pipeline than LayerNorm's."""

    def __init__(self, lanes=4, max_row=1024):
        super().__init__(lanes, max_row, ("rmsnorm",))
