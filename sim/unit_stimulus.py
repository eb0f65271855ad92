"""Cycle-by-cycle stimulus for the vector units, shared by every simulation backend, and the
random test cases (inputs, golden outputs, packed beats) every backend runs.

A case is a :class:`UnitCase`: the top name and generation parameters it runs on, the
per-operation config signals, the packed input beats and the golden rows expected on
``o``. A backend drives a :class:`UnitStimulus` (see ``drive``/``observe``) and decodes what
it collected with :func:`decode_rows`.
"""

import time
from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

from systolic.hw.verilog import build_top

from . import SimulationHang

# Layout packing --------------------------------------------------------------------------


def pack(layout, value):
    """The integer holding ``value`` (nested dicts / lists / ints) in ``layout``."""
    if isinstance(layout, data.StructLayout):
        word = 0
        for name, fld in layout:
            if name in value:
                word |= pack(fld.shape, value[name]) << fld.offset
        return word
    if isinstance(layout, data.ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        word = 0
        for index, item in enumerate(value):
            word |= pack(layout.elem_shape, item) << (index * width)
        return word
    return int(value) & ((1 << Shape.cast(layout).width) - 1)


def unpack(layout, word):
    """Inverse of :func:`pack` (signed fields come back negative)."""
    if isinstance(layout, data.StructLayout):
        return {name: unpack(fld.shape, word >> fld.offset) for name, fld in layout}
    if isinstance(layout, data.ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        return [unpack(layout.elem_shape, word >> (i * width)) for i in range(layout.length)]
    shape = Shape.cast(layout)
    value = word & ((1 << shape.width) - 1)
    if shape.signed and value >> (shape.width - 1):
        value -= 1 << shape.width
    return value


def row_beats(layout, lanes, lane_values, row_values=None):
    """Packed input beats of rows.

    ``lane_values``: field name -> (rows, cols) integer array (per element);
    ``row_values``: field name -> (rows,) array (copied into every beat of the row).
    Padding lanes of a short final beat carry another row's values (units must ignore
    them, in reductions too).
    """
    first = next(iter(lane_values.values()))
    rows, cols = first.shape
    row_values = row_values or {}
    beats = []
    for r in range(rows):
        for start in range(0, cols, lanes):
            count = min(lanes, cols - start)
            lane_records = [{name: int(values[r, start + k] if k < count else
                                       values[(r + 1) % rows, (start + k) % cols])
                             for name, values in lane_values.items()} for k in range(lanes)]
            beat = {"lanes": lane_records, "count": count, "last": start + count == cols}
            beat.update({name: int(values[r]) for name, values in row_values.items()})
            beats.append(pack(layout, beat))
    return beats


def decode_rows(layout, words):
    """Group output words into rows: a list of dicts with ``data`` (int64 array of the
    valid lanes of every beat) and the per-row fields of the row's last beat."""
    rows, current = [], []
    for word in words:
        beat = unpack(layout, word)
        current.extend(beat["data"][:beat["count"]])
        if beat["last"]:
            row = {key: value for key, value in beat.items()
                   if key not in ("data", "count", "last")}
            row["data"] = np.array(current, dtype=np.int64)
            rows.append(row)
            current = []
    return rows


# Stimulus ------------------------------------------------------------------------------


@dataclass
class UnitCase:
    """One test vector set for a unit: run ``beats`` through top ``top`` built with
    ``params``, with ``config`` (signal name -> int) held on its config inputs; the
    output must decode to ``expected`` (rows x cols golden outputs) and, per row, to
    ``expected_fields`` (field -> (rows,) array, e.g. a row scale)."""

    top: str
    params: dict
    config: dict
    beats: list
    expected: np.ndarray
    expected_fields: dict = field(default_factory=dict)
    name: str = ""

    @property
    def out_beats(self):
        return len(self.beats)


@dataclass
class UnitRun:
    """What a simulated run produced: output words, the cycle each input beat was accepted
    and each output beat left, and the wall-clock seconds of the simulation loop."""

    words: list
    accepted: list
    delivered: list
    sim_seconds: float = 0.0

    @property
    def cycles(self):
        return self.delivered[-1] - self.accepted[0] + 1


class UnitStimulus:
    """Drives one :class:`UnitCase`: ``in_gap`` is the probability that the next input beat
    is withheld for a cycle (an offered beat stays offered until taken), ``out_stall`` the
    probability that ``o.ready`` is low; ``timeout`` cycles without a handshake raise
    :class:`~systolic.sim.SimulationHang`."""

    def __init__(self, case, *, out_stall=0.0, in_gap=0.0, seed=0, timeout=2000):
        self.case = case
        self.out_stall, self.in_gap, self.timeout = out_stall, in_gap, timeout
        self.rng = np.random.default_rng(seed)
        self.position = 0
        self.offered = False
        self.cycle = 0
        self.idle_cycles = 0
        self.run = UnitRun(words=[], accepted=[], delivered=[])
        self._out_ready = True
        self._started = None

    @property
    def done(self):
        return len(self.run.words) == self.case.out_beats

    def drive(self):
        """``(i_valid, i_payload, o_ready)`` for the coming clock edge."""
        if self._started is None:
            self._started = time.perf_counter()
        beats = self.case.beats
        if self.position < len(beats) and not self.offered:
            self.offered = self.rng.random() >= self.in_gap
        valid = self.position < len(beats) and self.offered
        self._out_ready = bool(self.rng.random() >= self.out_stall)
        return valid, beats[self.position] if valid else 0, self._out_ready

    def observe(self, i_ready, o_valid, o_payload):
        """Record this cycle's handshakes."""
        moved = False
        if self.offered and self.position < len(self.case.beats) and i_ready:
            self.run.accepted.append(self.cycle)
            self.position += 1
            self.offered = False
            moved = True
        if o_valid and self._out_ready:
            self.run.words.append(int(o_payload))
            self.run.delivered.append(self.cycle)
            moved = True
        self.idle_cycles = 0 if moved else self.idle_cycles + 1
        if self.idle_cycles > self.timeout:
            raise SimulationHang(
                f"{self.case.top}: no handshake for {self.timeout} cycles at cycle "
                f"{self.cycle}: {self.position}/{len(self.case.beats)} beats in, "
                f"{len(self.run.words)}/{self.case.out_beats} out")
        self.cycle += 1

    def result(self):
        self.run.sim_seconds = time.perf_counter() - self._started
        return self.run


def out_layout_of(case):
    """The output payload layout of the unit a case runs on."""
    from systolic.hw.rowquant import rowquant_out_layout
    from systolic.hw.vector import out_layout

    lanes = case.params["lanes"]
    return rowquant_out_layout(lanes) if case.top == "rowquant" else out_layout(lanes)


def check_run(case, run, layout=None):
    """Raise AssertionError unless ``run`` decodes to the case's golden rows."""
    rows = decode_rows(layout or out_layout_of(case), run.words)
    assert len(rows) == len(case.expected), f"{case.name}: {len(rows)} rows out"
    for r, row in enumerate(rows):
        assert np.array_equal(row["data"], case.expected[r]), \
            f"{case.name} row {r}: got {row['data'].tolist()} expected {case.expected[r].tolist()}"
        for key, values in case.expected_fields.items():
            assert row[key] == values[r], f"{case.name} row {r} {key}: {row[key]} != {values[r]}"


# Amaranth backend ----------------------------------------------------------------------


def simulate_amaranth(top, params, jobs, *, vcd=None):
    """Run ``jobs`` (a list of ``(UnitCase, stimulus options)``) one after the other on one
    elaboration of ``top`` in Amaranth's simulator; returns a :class:`UnitRun` per job."""
    from amaranth.sim import Simulator

    dut = build_top(top, **params)
    runs = []

    async def bench(ctx):
        for case, options in jobs:
            stimulus = UnitStimulus(case, **options)
            for name, value in case.config.items():
                ctx.set(getattr(dut, name), value)
            while not stimulus.done:
                valid, payload, out_ready = stimulus.drive()
                ctx.set(dut.i.valid, valid)
                ctx.set(dut.i.payload.as_value(), payload)
                ctx.set(dut.o.ready, out_ready)
                i_ready = ctx.get(dut.i.ready)
                o_valid = ctx.get(dut.o.valid)
                word = ctx.get(dut.o.payload.as_value()) if o_valid else 0
                stimulus.observe(i_ready, o_valid, word)
                await ctx.tick()
            ctx.set(dut.i.valid, 0)
            runs.append(stimulus.result())

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return runs


# Random cases ----------------------------------------------------------------------------

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def with_extremes(rng, x, lo, hi):
    """``x`` with ``lo`` and ``hi`` planted at random positions when there is room."""
    flat = x.reshape(-1)
    if flat.size >= 2:
        flat[rng.choice(flat.size, 2, replace=False)] = (lo, hi)
    return x


def spread_int32(rng, shape):
    """int32 values of every magnitude (log-uniform), both extremes included."""
    mag = np.floor(np.exp2(rng.uniform(0, 31, shape))).astype(np.int64)
    x = np.where(rng.random(shape) < 0.5, -mag, mag - 1)
    return with_extremes(rng, np.clip(x, INT32_MIN, INT32_MAX), INT32_MIN, INT32_MAX)


def rescale_config(top, func, out_bits):
    """The config inputs of a :class:`~systolic.hw.rescale.Rescale` top running ``func``."""
    from systolic.hw.rescale import RESCALE_FUNCS

    funcs = RESCALE_TOP_FUNCS.get(top, RESCALE_FUNCS)
    return {"out_bits": out_bits, **({"func": funcs.index(func)} if len(funcs) > 1 else {})}


def unused_inputs(rng, rows, cols, names, row_names=()):
    """Random values for the rescale unit's inputs a function does not read (the unit must
    ignore them): ``(lane_values, row_values)``."""
    lane = {name: rng.integers(-(2**15), 2**15, (rows, cols)) for name in names}
    return lane, {name: rng.integers(0, 2**7, rows) for name in row_names}


def requantize_case(rng, lanes, rows, cols, out_bits=8, row_scale=True, name="requantize",
                    top="requantize"):
    from systolic.hw.rescale import rescale_layout
    from systolic.sw.numerics import RequantParams, RowScale, requantize

    acc = spread_int32(rng, (rows, cols))
    m = rng.integers(-(2**15) + 1, 2**15, cols)
    m[0] = 2**15 - 1
    if row_scale:
        mant = np.where(rng.random(rows) < 0.2, 0, rng.integers(2**14, 2**15, rows))
        exp = rng.integers(-14, 19, rows)
        s = rng.integers(18, 49, cols)  # s - exp stays in 0..62 for exp in -14..18
        scale = RowScale(mant, exp)
    else:
        mant, exp = np.ones(rows, np.int64), np.zeros(rows, np.int64)
        s = rng.integers(0, 63, cols)
        scale = None
    s[-1] = s.max() if cols == 1 else (48 if row_scale else 62)
    bias = rng.integers(INT32_MIN, INT32_MAX, cols, endpoint=True)
    params = RequantParams(m, s, bias, out_bits)
    expected = requantize(acc, params, scale)
    full = np.ones((rows, 1), np.int64)
    unused, _ = unused_inputs(rng, rows, cols, ("y", "m2", "s2"))
    beats = row_beats(rescale_layout(lanes), lanes,
                      {"x": acc, "m": m * full, "s": s * full, "bias": bias * full, **unused},
                      {"mant": mant, "exp": exp})
    return UnitCase(top, {"lanes": lanes}, rescale_config(top, "requantize", out_bits), beats,
                    expected, name=name)


def pwl_case(rng, lanes, rows, cols, top="gelu", frac_bits=11, name=None, silu=False):
    """int16 extremes, random values and half the values near (and beyond) the tables'
    ranges. On top ``pwl`` (the unit built for both functions) the function is SiLU if
    ``silu``, else GELU."""
    from systolic.hw.pwl import pwl_layout
    from systolic.sw import numerics

    x = with_extremes(rng, rng.integers(-(2**15), 2**15, (rows, cols)), -(2**15), 2**15 - 1)
    # Half the values near the table range, where the interpolation happens.
    span = 1 << (frac_bits + 5)
    near = rng.integers(-span, span, (rows, cols))
    x = np.where(rng.random((rows, cols)) < 0.5, np.clip(near, -(2**15), 2**15 - 1), x)
    func = top if top != "pwl" else "silu" if silu else "gelu"
    expected = (numerics.silu if func == "silu" else numerics.gelu)(x, frac_bits)
    beats = row_beats(pwl_layout(lanes), lanes, {"x": x})
    config = {"frac_bits": frac_bits}
    if top == "pwl":
        config["table"] = int(silu)  # the tables in the order of PWL_FUNCS
    return UnitCase(top, {"lanes": lanes}, config, beats, expected,
                    name=name or f"{top} ({func}) frac_bits={frac_bits}")


def random_dyadic(rng, cols, max_shift=62):
    """Per-channel signed mantissas (|m| < 2**15, extremes included) and shifts."""
    m = rng.integers(-(2**15) + 1, 2**15, cols)
    s = rng.integers(0, max_shift + 1, cols)
    m[0], s[-1] = -(2**15) + 1, max_shift
    return m, s


def eltwise_mul_case(rng, lanes, rows, cols, out_bits=16, scaled=True, name=None,
                     top="eltwise_mul"):
    from systolic.hw.rescale import rescale_layout
    from systolic.sw.numerics import Scale, eltwise_mul

    a = with_extremes(rng, rng.integers(-(2**15), 2**15, (rows, cols)), -(2**15), 2**15 - 1)
    b = with_extremes(rng, rng.integers(-(2**15), 2**15, (rows, cols)), -(2**15), -(2**15))
    if scaled:
        m, s = random_dyadic(rng, cols, 40)
        expected = eltwise_mul(a, b, Scale(m, s, out_bits))
    else:  # the golden unscaled product is m = 1, s = 0 at 32 bits
        m, s, out_bits = np.ones(cols, np.int64), np.zeros(cols, np.int64), 32
        expected = eltwise_mul(a, b)
    full = np.ones((rows, 1), np.int64)
    unused, unused_row = unused_inputs(rng, rows, cols, ("m2", "s2", "bias"), ("mant", "exp"))
    beats = row_beats(rescale_layout(lanes), lanes,
                      {"x": a, "y": b, "m": m * full, "s": s * full, **unused}, unused_row)
    return UnitCase(top, {"lanes": lanes}, rescale_config(top, "mul", out_bits), beats,
                    expected, name=name or f"{top} (mul) out_bits={out_bits} scaled={scaled}")


def residual_add_case(rng, lanes, rows, cols, out_bits=32, name=None, top="residual_add"):
    from systolic.hw.rescale import rescale_layout
    from systolic.sw.numerics import ResidualParams, Scale, residual_add

    a, b = spread_int32(rng, (rows, cols)), spread_int32(rng, (rows, cols))
    (ma, sa), (mb, sb) = random_dyadic(rng, cols), random_dyadic(rng, cols)
    ma[-1], sa[-1] = 2**14, 14  # identity alignment
    params = ResidualParams(Scale(ma, sa), Scale(mb, sb), out_bits)
    expected = residual_add(a, b, params)
    full = np.ones((rows, 1), np.int64)
    unused, unused_row = unused_inputs(rng, rows, cols, ("bias",), ("mant", "exp"))
    beats = row_beats(rescale_layout(lanes), lanes,
                      {"x": a, "y": b, "m": ma * full, "s": sa * full, "m2": mb * full,
                       "s2": sb * full, **unused}, unused_row)
    return UnitCase(top, {"lanes": lanes}, rescale_config(top, "add", out_bits), beats,
                    expected, name=name or f"{top} (add) out_bits={out_bits}")


def rowquant_case(rng, lanes, rows, cols, in_bits=16, max_row=None, name=None):
    """Rows of widely different magnitudes, a zero row, and rows reaching the extremes."""
    from systolic.hw.rowquant import rowquant_layout
    from systolic.sw.numerics import quantize_rows

    lo, hi = -(2**(in_bits - 1)), 2**(in_bits - 1) - 1
    scale = np.exp2(rng.uniform(0, in_bits - 1, (rows, 1)))
    z = np.clip(np.round(rng.normal(0, 1, (rows, cols)) * scale / 3), lo, hi).astype(np.int64)
    z[0] = 0
    if rows > 1:
        z[1] = with_extremes(rng, z[1].copy(), lo, hi)
    if rows > 2:
        z[2] = rng.integers(-1, 2, cols)
    q, row_scale = quantize_rows(z, in_bits)
    beats = row_beats(rowquant_layout(lanes), lanes, {"z": z})
    return UnitCase("rowquant", {"lanes": lanes, "max_row": max_row or cols}, {}, beats,
                    q.astype(np.int64), {"mant": row_scale.mant, "exp": row_scale.exp},
                    name=name or f"rowquant in_bits={in_bits} cols={cols}")


def norm_case(rng, lanes, rows, cols, top="layernorm", out_bits=16, eps_q=None, max_row=None,
              name=None, rms=False):
    """Rows of every magnitude (int32 extremes included), an all-equal row and random
    per-channel gamma/beta; ``eps_q`` random unless given. On top ``norm`` (the unit built
    for both functions) the rows are RMSNorm's if ``rms``, else LayerNorm's."""
    from systolic.hw.norm import norm_layout
    from systolic.sw.numerics import NormParams, layernorm, rmsnorm

    scale = np.exp2(rng.uniform(0, 31, (rows, 1)))
    x = np.clip(np.round(rng.normal(0, 1, (rows, cols)) * scale / 4), INT32_MIN, INT32_MAX)
    x = x.astype(np.int64) + rng.integers(-3, 4, (rows, 1)) * (rng.random((rows, 1)) < 0.3)
    x = np.clip(x, INT32_MIN, INT32_MAX)
    x[0] = rng.integers(-1000, 1000)  # all equal: D is eps only
    if rows > 1:
        x[1] = with_extremes(rng, x[1].copy(), INT32_MIN, INT32_MAX)
    gm, gs = random_dyadic(rng, cols, 40)
    beta = rng.integers(-(2**20), 2**20, cols)
    beta[-1] = INT32_MAX
    if eps_q is None:
        eps_q = int(rng.choice([0, 1, int(rng.integers(0, 2**40)), 2**56]))
    params = NormParams(gm, gs, beta, eps_q, out_bits)
    func = top if top != "norm" else "rmsnorm" if rms else "layernorm"
    expected = (layernorm if func == "layernorm" else rmsnorm)(x, params)
    full = np.ones((rows, 1), np.int64)
    beats = row_beats(norm_layout(lanes), lanes,
                      {"x": x, "gm": gm * full, "gs": gs * full, "beta": beta * full})
    config = {"out_bits": out_bits, "eps_q": eps_q}
    if top == "norm":
        config["rms"] = int(rms)
    return UnitCase(top, {"lanes": lanes, "max_row": max_row or cols}, config, beats, expected,
                    name=name or f"{top} ({func}) cols={cols} out_bits={out_bits} "
                                 f"eps_q={eps_q}")


def softmax_case(rng, lanes, rows, cols, *, causal=False, masked=False, row_scale=False,
                 max_row=None, name=None):
    """Logits of mixed spreads (int32 extremes, an all-equal row, a row where one logit
    dominates), optionally with a causal mask, an additive mask and a row scale."""
    from systolic.hw.softmax import softmax_layout
    from systolic.sw.numerics import RowScale, SoftmaxParams, softmax

    spread = np.exp2(rng.uniform(4, 24, (rows, 1)))
    x = np.clip(np.round(rng.normal(0, 1, (rows, cols)) * spread), INT32_MIN, INT32_MAX)
    x = x.astype(np.int64)
    x[0] = rng.integers(INT32_MIN, INT32_MAX)  # all equal
    if rows > 1:
        x[1] = with_extremes(rng, x[1].copy(), INT32_MIN, INT32_MAX)
    if rows > 2:
        x[2, rng.integers(cols)] += 2**20
    params = SoftmaxParams.from_float(float(np.exp2(rng.uniform(-22, -8))),
                                      row_source_bits=16 if row_scale else None)
    if row_scale:
        mant = np.where(rng.random(rows) < 0.2, 0, rng.integers(2**14, 2**15, rows))
        exp = rng.integers(-14, 3, rows)
        scale = RowScale(mant, exp)
    else:
        mant, exp, scale = np.ones(rows, np.int64), np.zeros(rows, np.int64), None
    q_index = rng.integers(-1, cols + 1, rows) if causal else None
    mask = None
    if masked:
        mask = np.where(rng.random((rows, cols)) < 0.3, INT32_MIN,
                        rng.integers(-(2**24), 2**24, (rows, cols)))
        mask[-1] = INT32_MIN  # a fully masked row
        if rows > 1:
            mask[1] = with_extremes(rng, mask[1].copy(), INT32_MAX, INT32_MIN + 1)
    expected = softmax(x, params, scale, q_index, mask).astype(np.int64)
    beats = row_beats(softmax_layout(lanes), lanes,
                      {"x": x, "mask": np.zeros_like(x) if mask is None else mask},
                      {"mant": mant, "exp": exp,
                       "q_index": np.zeros(rows, np.int64) if q_index is None else q_index})
    config = {"mult": params.m, "shift": params.s, "causal": int(causal),
              "masked": int(masked)}
    return UnitCase("softmax", {"lanes": lanes, "max_row": max_row or cols}, config, beats,
                    expected, name=name or f"softmax cols={cols} causal={causal} "
                                           f"masked={masked} row_scale={row_scale}")


# Test suites ---------------------------------------------------------------------------

#: Streaming units (one beat per cycle) and row units (row buffers of ``max_row``).
STREAMING_TOPS = ("requantize", "gelu", "silu", "eltwise_mul", "residual_add", "pwl",
                  "eltwise", "rescale")
#: The functions of the rescale unit's tops (``rescale``: all of them).
RESCALE_TOP_FUNCS = {"requantize": ("requantize",), "eltwise_mul": ("mul",),
                     "residual_add": ("add",), "eltwise": ("mul", "add")}
ROW_TOPS = ("rowquant", "layernorm", "rmsnorm", "softmax", "norm")
#: Row buffer length every suite uses (odd, not a multiple of the lanes tested).
SUITE_MAX_ROW = 13


def _eltwise_cases(rng, lanes, cols, top):
    """MUL cases (every output width, scaled or not) and ADD cases (every output width) for
    the tops that run them, alternately on a unit of both."""
    funcs = RESCALE_TOP_FUNCS.get(top, ("mul", "add"))
    mul = [eltwise_mul_case(rng, lanes, 2, cols, out_bits, scaled, top=top)
           for out_bits, scaled in ((8, True), (8, False), (16, True), (32, True))]
    add = [residual_add_case(rng, lanes, 2, cols, out_bits, top=top)
           for out_bits in (8, 16, 32)]
    if funcs == ("mul",):
        return mul
    if funcs == ("add",):
        return add
    return [case for pair in zip(mul, add + add[:1]) for case in pair]


def unit_suite(top, lanes, seed=0):
    """``(params, cases)``: generation parameters and the edge-case suite of ``top`` with
    ``lanes`` lanes, the same for every simulator. Rows of length 1, odd lengths and the
    full ``max_row``; every output width or mode of the unit."""
    rng = np.random.default_rng(seed * 1000 + lanes)
    odd = 2 * lanes + 1
    if top in ("requantize", "rescale"):
        cases = [requantize_case(rng, lanes, 3, cols, out_bits, row_scale,
                                 name=f"{top} (requantize) {cols} {out_bits} {row_scale}",
                                 top=top)
                 for out_bits in (8, 16, 32) for row_scale in (True, False)
                 for cols in ((odd,) if out_bits != 32 else (1, odd))]
        if top == "rescale":  # every function, alternately
            cases = [case for pair in zip(cases, _eltwise_cases(rng, lanes, odd, top))
                     for case in pair]
    elif top in ("gelu", "silu", "pwl"):
        # The unit built for both functions (top pwl) runs every case in both, alternately.
        modes = (False, True) if top == "pwl" else (False,)
        cases = [pwl_case(rng, lanes, 2, odd, top, frac_bits, silu=silu)
                 for frac_bits in (4, 8, 11, 15) for silu in modes]
    elif top in ("eltwise_mul", "residual_add", "eltwise"):
        cases = _eltwise_cases(rng, lanes, odd, top)
    elif top == "rowquant":
        cases = [rowquant_case(rng, lanes, 4, cols, in_bits, SUITE_MAX_ROW)
                 for in_bits in (16, 32) for cols in (1, odd, SUITE_MAX_ROW)]
    elif top in ("layernorm", "rmsnorm", "norm"):
        # The unit built for both functions (top norm) runs every case in both, alternately.
        modes = (False, True) if top == "norm" else (False,)
        cases = [norm_case(rng, lanes, 3, cols, top, out_bits, eps_q, SUITE_MAX_ROW, rms=rms)
                 for out_bits, cols, eps_q in ((8, odd, None), (16, 1, 0), (16, odd, 0),
                                               (32, SUITE_MAX_ROW, 2**56),
                                               (16, SUITE_MAX_ROW, None))
                 for rms in modes]
    elif top == "softmax":
        cases = [softmax_case(rng, lanes, 4, cols, causal=causal, masked=masked,
                              row_scale=row_scale, max_row=SUITE_MAX_ROW)
                 for cols, causal, masked, row_scale in (
                     (1, False, False, False), (odd, False, False, False),
                     (SUITE_MAX_ROW, True, False, True), (odd, False, True, False),
                     (SUITE_MAX_ROW, True, True, True))]
    else:
        raise ValueError(f"no test suite for top {top!r}")
    params = {"lanes": lanes}
    if top in ROW_TOPS:
        params["max_row"] = SUITE_MAX_ROW
    return params, cases


def suite_jobs(cases, seed=0):
    """Every case at full speed, then the longest one again under random back-pressure
    (``o`` stalls half the cycles, ``i`` withholds beats 30% of the cycles)."""
    longest = max(cases, key=lambda case: len(case.beats))
    return [(case, {}) for case in cases] + [
        (longest, dict(out_stall=0.5, in_gap=0.3, seed=seed))]
