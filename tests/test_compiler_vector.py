"""VECTOR instructions on the functional simulator: every function against its golden model,
with rows, parameter blocks and per-row records laid out by hand as docs/isa.md describes
(so the layouts themselves are checked, not only the simulator against the compiler)."""

import numpy as np
import pytest

from systolic.hw.config import HardwareConfig, VectorUnitsConfig
from systolic.hw.csr import ErrorCode
from systolic.hw.isa import Memory, OutWidth, VectorFunc
from systolic.sim.functional import FunctionalSimulator
from systolic.sw import numerics as N
from systolic.sw.compiler.program import ProgramBuilder

CONFIGS = [HardwareConfig(rows=4, cols=4), HardwareConfig(rows=3, cols=5, dataflow="os"),
           HardwareConfig(rows=5, cols=3)]  # the last has 5-byte scratchpad lines, 3 lanes
#: Value written into lanes past the row length: the units must ignore it.
PAD = 0x5A5A5A5A


def dyadic_word(m, s):
    """``m`` in bits 15:0 (two's complement), ``s`` in bits 21:16, as docs/isa.md says."""
    return (np.asarray(m, np.int64) & 0xFFFF) | (np.asarray(s, np.int64) << 16)


def scale_word(scale):
    return (scale.mant & 0xFFFF) | ((scale.exp & 0xFF) << 16)


def as_lines(words, cols, pad=0):
    """int32 lines (``ceil(len / cols)`` of ``cols`` lanes) holding ``words``."""
    words = np.asarray(words, np.int64).reshape(-1)
    lines = np.full(-(-len(words) // cols) * cols, pad, np.int64)
    lines[:len(words)] = words
    return lines.astype(np.uint32).view(np.int32).reshape(-1, cols)


def row_lines(x, cols):
    rows, length = x.shape
    chunks = -(-length // cols)
    lines = np.full((rows, chunks * cols), PAD, np.int64)
    lines[:, :length] = x
    return lines.astype(np.uint32).view(np.int32).reshape(rows * chunks, cols)


def param_lines(header, planes, length, cols):
    """Header words (``ceil(len / cols)`` lines), then each plane as one row."""
    blocks = [as_lines(header, cols)] if len(header) else []
    blocks += [row_lines(np.broadcast_to(plane, (length,))[None], cols) for plane in planes]
    return np.concatenate(blocks) if blocks else np.zeros((0, cols), np.int32)


class VectorRun:
    """Loads accumulator regions, runs one VECTOR and stores its result (FENCEs between)."""

    SRC, AUX, PARAM, DST = 0, 100, 200, 300

    def __init__(self, config):
        self.config = config
        self.sim = FunctionalSimulator(config)
        self.memory = np.zeros(1 << 16, np.uint8)
        self.program = ProgramBuilder()
        self.next_free = 4096

    def load_acc(self, line, lines):
        address = self.place(lines)
        width = self.config.acc_line_bytes
        self.program.load(Memory.ACC, line, len(lines), width, address, width)

    def place(self, array):
        raw = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
        address = self.next_free
        self.memory[address:address + len(raw)] = raw
        self.next_free += -(-len(raw) // 64) * 64
        return address

    def run(self, func, x, length, aux=None, records=None, params=None, **fields):
        cols = self.config.cols
        self.load_acc(self.SRC, row_lines(x, cols))
        if aux is not None:
            self.load_acc(self.AUX, row_lines(aux, cols))
        if records is not None:
            self.load_acc(self.AUX, as_lines(np.repeat(scale_word(records)[:, None], cols, 1),
                                             cols))
        if params is not None:
            self.load_acc(self.PARAM, param_lines(*params, length, cols))
        self.program.fence()
        self.program.vector(func, len(x), length, self.SRC, self.DST, self.AUX, self.PARAM,
                            **fields)
        self.program.fence()
        rows = len(x)
        spad = func in (VectorFunc.ROWQUANT, VectorFunc.SOFTMAX) or \
            fields.get("out_width") == OutWidth.INT8
        line_bytes = self.config.spad_line_bytes if spad else self.config.acc_line_bytes
        lanes = line_bytes if spad else cols
        per_row = -(-length // lanes)
        out = self.place(np.zeros(rows * per_row * line_bytes, np.uint8))
        self.program.store(Memory.SPAD if spad else Memory.ACC, self.DST, rows * per_row,
                           line_bytes, out, line_bytes)
        if func == VectorFunc.ROWQUANT:
            rec = self.place(np.zeros(rows * self.config.acc_line_bytes, np.uint8))
            self.program.store(Memory.ACC, self.AUX, rows, self.config.acc_line_bytes, rec,
                               self.config.acc_line_bytes)
        self.program.halt()
        prog = self.place(np.frombuffer(b"".join(w.to_bytes(16, "little")
                                                 for w in self.program.words), np.uint8))
        self.result = self.sim.run(self.memory, prog, len(self.program.words))
        if self.result.error != ErrorCode.NONE:
            return None
        mem = self.result.memory
        raw = mem[out:out + rows * per_row * line_bytes]
        values = raw.view(np.int8 if spad else np.int32).reshape(rows, per_row * lanes)
        assert not values[:, length:].any(), "lanes past the row length must be written as 0"
        values = values[:, :length].astype(np.int64)
        if func == VectorFunc.ROWQUANT:
            words = mem[rec:rec + rows * self.config.acc_line_bytes].view(np.int32)
            words = words.reshape(rows, cols).astype(np.int64)
            assert not words[:, 1:].any()
            mant, exp = words[:, 0] & 0xFFFF, ((words[:, 0] >> 16) & 0xFF)
            return values, N.RowScale(mant, np.where(exp > 127, exp - 256, exp))
        return values


def random_rows(rng, rows, length, bits=32):
    lo, hi = -(2**(bits - 1)), 2**(bits - 1) - 1
    x = rng.integers(lo, hi, (rows, length), endpoint=True)
    x[0, 0], x[-1, -1] = lo, hi
    return x


def random_row_scale(rng, rows):
    _, scale = N.quantize_rows(rng.integers(-2**20, 2**20, (rows, 7)), 32)
    return scale


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.rows}x{c.cols}")
@pytest.mark.parametrize("out_width, bits", [(OutWidth.INT8, 8), (OutWidth.INT16, 16),
                                             (OutWidth.INT32, 32)])
def test_requantize(config, out_width, bits):
    rng = np.random.default_rng(bits + config.cols)
    rows, length = 5, 11
    x = random_rows(rng, rows, length)
    scale = random_row_scale(rng, rows)
    m = rng.integers(-2**15 + 1, 2**15, length)
    s = rng.integers(18, 63, length)
    bias = rng.integers(-2**31, 2**31, length)
    got = VectorRun(config).run(VectorFunc.REQUANTIZE, x, length, records=scale,
                                params=((), (dyadic_word(m, s), bias)), out_width=out_width,
                                row_scale=True)
    assert np.array_equal(got, N.requantize(x, N.RequantParams(m, s, bias, bits), scale))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.rows}x{c.cols}")
def test_rowquant_writes_rows_and_records(config):
    rng = np.random.default_rng(config.cols)
    x = random_rows(rng, 6, 13)
    x[2] = 0  # an all-zero row has a zero scale
    x[4] = rng.integers(-300, 300, 13)  # a negative exponent (sign in bits 23:16)
    q, scale = VectorRun(config).run(VectorFunc.ROWQUANT, x, 13)
    want_q, want_scale = N.quantize_rows(x, 32)
    assert np.array_equal(q, want_q)
    assert np.array_equal(scale.mant, want_scale.mant)
    assert np.array_equal(scale.exp, want_scale.exp) and scale.exp.min() < 0


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.rows}x{c.cols}")
@pytest.mark.parametrize("causal", [False, True])
def test_softmax(config, causal):
    rng = np.random.default_rng(int(causal) + config.cols)
    rows, length = 4, 9
    x = random_rows(rng, rows, length, bits=20)
    x[1, 3] = -2**31
    scale = random_row_scale(rng, rows)
    params = N.SoftmaxParams(20001, 40)
    got = VectorRun(config).run(VectorFunc.SOFTMAX, x, length, records=scale,
                                params=((dyadic_word(params.m, params.s),), ()),
                                row_scale=True, causal=causal, imm=3)
    q_index = 3 + np.arange(rows) if causal else None
    want = N.softmax(x, params, scale, q_index)
    assert np.array_equal(got.astype(np.uint8), want)
    if causal:
        assert not want[0, 4:].any() and want[0, :4].any()


@pytest.mark.parametrize("func, golden", [(VectorFunc.GELU, N.gelu), (VectorFunc.SILU, N.silu)])
def test_activations_read_the_low_16_bits(func, golden):
    config = HardwareConfig(rows=4, cols=4)
    rng = np.random.default_rng(7)
    x16 = random_rows(rng, 3, 10, bits=16)
    high = rng.integers(-2**15, 2**15, x16.shape) * 2**16  # what a wide producer left above
    got = VectorRun(config).run(func, x16 + high, 10, imm=9)
    assert np.array_equal(got, golden(x16, 9))


def test_mul_and_add_per_channel():
    config = HardwareConfig(rows=3, cols=5)
    rng = np.random.default_rng(11)
    a16, b16 = random_rows(rng, 4, 12, 16), random_rows(rng, 4, 12, 16)
    m, s = rng.integers(1, 2**15, 12), rng.integers(0, 40, 12)
    got = VectorRun(config).run(VectorFunc.MUL, a16, 12, aux=b16,
                                params=((), (dyadic_word(m, s),)), out_width=OutWidth.INT32)
    assert np.array_equal(got, N.eltwise_mul(a16, b16, N.Scale(m, s, 32)))
    exact = VectorRun(config).run(VectorFunc.MUL, a16, 12, aux=b16,
                                  params=((), (dyadic_word(1, 0),)), out_width=OutWidth.INT32)
    assert np.array_equal(exact, N.eltwise_mul(a16, b16))
    a, b = random_rows(rng, 4, 12), random_rows(rng, 4, 12)
    params = N.ResidualParams.from_float(0.7, -1.3, out_bits=16)
    got = VectorRun(config).run(VectorFunc.ADD, a, 12, aux=b, out_width=OutWidth.INT16,
                                params=((), (dyadic_word(params.a.m, params.a.s),
                                             dyadic_word(params.b.m, params.b.s))))
    assert np.array_equal(got, N.residual_add(a, b, params))


@pytest.mark.parametrize("func, golden", [(VectorFunc.LAYERNORM, N.layernorm),
                                          (VectorFunc.RMSNORM, N.rmsnorm)])
@pytest.mark.parametrize("config", CONFIGS[:2], ids=lambda c: f"{c.rows}x{c.cols}")
def test_norms_with_a_wide_epsilon(func, golden, config):
    rng = np.random.default_rng(3)
    x = random_rows(rng, 5, 17)
    x[3] = 0  # eps alone decides this row
    gm, gs = rng.integers(-2**15 + 1, 2**15, 17), rng.integers(10, 30, 17)
    beta = rng.integers(-2**20, 2**20, 17)
    eps_q = 3 * 2**40 + 12345  # needs the header's high word
    params = N.NormParams(gm, gs, beta, eps_q, 16)
    got = VectorRun(config).run(func, x, 17, out_width=OutWidth.INT16,
                                params=((eps_q & 0xFFFFFFFF, eps_q >> 32),
                                        (dyadic_word(gm, gs), beta)))
    assert np.array_equal(got, golden(x, params))


def test_in_place_requantize():
    config = HardwareConfig(rows=4, cols=4)
    run = VectorRun(config)
    run.DST = run.SRC
    x = random_rows(np.random.default_rng(5), 3, 6)
    got = run.run(VectorFunc.REQUANTIZE, x, 6, params=((), (dyadic_word(3, 2), 0)),
                  out_width=OutWidth.INT32)
    assert np.array_equal(got, N.requantize(x, N.RequantParams(3, 2, 0, 32)))


@pytest.mark.parametrize("case, code", [
    ("no_unit", ErrorCode.ILLEGAL_INSTRUCTION),
    ("too_long", ErrorCode.ILLEGAL_INSTRUCTION),
    ("reserved_width", ErrorCode.ILLEGAL_INSTRUCTION),
    ("bad_shift", ErrorCode.ILLEGAL_INSTRUCTION),
    ("zero_rows", ErrorCode.ILLEGAL_INSTRUCTION),
    ("dst_range", ErrorCode.SPAD_RANGE),
    ("src_range", ErrorCode.ACC_RANGE),
])
def test_errors(case, code):
    units = VectorUnitsConfig(rowquant=case != "no_unit", max_row=8 if case == "too_long"
                              else 1024)
    config = HardwareConfig(rows=4, cols=4, spad_lines=64, acc_lines=1024, vector=units)
    x = random_rows(np.random.default_rng(1), 3 if case != "zero_rows" else 1, 12)
    run = VectorRun(config)
    run.DST = {"dst_range": 60}.get(case, 0)
    func, fields, params = VectorFunc.ROWQUANT, {}, None
    if case in ("reserved_width", "bad_shift"):
        func, params = VectorFunc.REQUANTIZE, ((), (dyadic_word(5, 63 if case == "bad_shift"
                                                                 else 3), 0))
        fields = {"out_width": 3 if case == "reserved_width" else OutWidth.INT32}
    if case == "src_range":
        run.program.vector(VectorFunc.ROWQUANT, 2, 12, 1020, 0)
    if case == "zero_rows":
        run.program.vector(VectorFunc.ROWQUANT, 0, 12, 0, 0)
    before = run.sim.acc.copy()
    assert run.run(func, x, 12, params=params, **fields) is None
    assert run.result.error == code
    if case in ("dst_range", "src_range", "no_unit"):
        assert np.array_equal(run.sim.acc[run.AUX:], before[run.AUX:])  # no record written
