"""The vector engine between banked SRAMs, against the functional simulator: every function on
random rows and parameters (odd row lengths, rows longer than the plane cache, row scales,
causal softmax, in place, int8/int16/int32 results) on configurations where a line is one
unit beat, several beats, and less than one beat."""

import gc

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from systolic.hw.compute import memory_ports
from systolic.hw.config import VECTOR_UNITS, HardwareConfig, VectorUnitsConfig
from systolic.hw.csr import ErrorCode
from systolic.hw.isa import (DYADIC_WORD, ROW_SCALE_WORD, VECTOR_PARAMS, Opcode, OutWidth,
                             VectorFunc, encode, pack_words, vector_output_memory,
                             vector_param_lines)
from systolic.hw.memory import BankedMemory
from systolic.hw.norm import NORM_MODES
from systolic.hw.pwl import PWL_FUNCS
from systolic.hw.rescale import RESCALE_FUNCS
from systolic.hw.vector import MULTIPLY_FABRIC_STAGES
from systolic.hw.vector_engine import VectorEngine, _build_units, plane_cache_lines
from systolic.sim.functional import FunctionalSimulator
from systolic.sim.sram_access import read_lines, write_lines

#: Written into lanes past a row's length: the engine must ignore it.
PAD = 0x5A5A5A5A


class VectorProgram:
    """Random VECTOR instructions and the accumulator contents they read, laid out as
    docs/isa.md describes, in an accumulator image ``acc`` (regions allocated upwards)."""

    def __init__(self, config, seed):
        self.config, self.rng = config, np.random.default_rng(seed)
        self.acc = np.zeros((config.acc_lines, config.cols), np.int32)
        self.acc_next, self.spad_next = 0, 0
        self.words = []

    # -- layout ----------------------------------------------------------------------------
    def _acc_region(self, lines):
        addr = self.acc_next
        self.acc_next += lines
        assert self.acc_next <= self.config.acc_lines, "accumulator too small for the test"
        return addr

    def next_bank(self):
        """Allocate further accumulator regions from the start of the next bank."""
        bank = self.config.acc_bank_lines
        self.acc_next = -(-self.acc_next // bank) * bank

    def put_lines(self, words, lines_per_row):
        """Rows of int32 ``words`` (rows, n), each padded to ``lines_per_row`` lines."""
        cols = self.config.cols
        rows, n = words.shape
        block = np.full((rows, lines_per_row * cols), PAD, np.int64)
        block[:, :n] = words
        addr = self._acc_region(rows * lines_per_row)
        self.acc[addr:addr + rows * lines_per_row] = \
            block.astype(np.uint32).view(np.int32).reshape(-1, cols)
        return addr

    def rows(self, x):
        """Source rows ``x`` (rows, length) in the input layout."""
        return self.put_lines(x, -(-x.shape[1] // self.config.cols))

    def params(self, func, header, planes, length):
        head, per_plane, _ = vector_param_lines(func, length, self.config.cols)
        addr = self.acc_next
        if len(VECTOR_PARAMS[func][0]):
            self.put_lines(np.asarray(header, np.int64)[None], head)
        for plane in planes:
            self.put_lines(np.broadcast_to(plane, (length,))[None], per_plane)
        return addr

    def records(self, mant, exp):
        words = pack_words(ROW_SCALE_WORD, mant=mant, exp=exp).astype(np.int64)
        return self.put_lines(words[:, None], 1)

    def dst(self, func, out_width, rows, length):
        """A fresh destination region in the function's output memory."""
        cfg = self.config
        if vector_output_memory(func, out_width).name == "SPAD":
            addr = self.spad_next
            self.spad_next += rows * -(-length // cfg.spad_line_bytes)
            assert self.spad_next <= cfg.spad_lines, "scratchpad too small for the test"
            return addr
        return self._acc_region(rows * -(-length // cfg.cols))

    # -- random operands -------------------------------------------------------------------
    def int32(self, shape, bits=31):
        """Signed values below ``2**bits`` with both int32 extremes present (two lanes)."""
        x = self.rng.integers(-2**bits, 2**bits, shape)
        if x.size >= 4:
            x.reshape(-1)[self.rng.choice(x.size, 2, replace=False)] = (-2**31, 2**31 - 1)
        return x

    def dyadic(self, length, shift):
        """Dyadic words with ``|m|`` around 2**14 and shifts ``shift - 2 .. shift + 2``."""
        m = self.rng.integers(2**13, 2**15, length) * self.rng.choice([-1, 1], length)
        s = np.clip(shift + self.rng.integers(-2, 3, length), 0, 62)
        return pack_words(DYADIC_WORD, m=m, s=s)

    def records(self, rows, exps):
        """Per-row records (``mant`` 0 or normalized, ``exp`` in ``exps``); returns the
        address of the first."""
        mant = self.rng.integers(2**14, 2**15, rows)
        mant[self.rng.random(rows) < 0.2] = 0
        words = pack_words(ROW_SCALE_WORD, mant=mant, exp=self.rng.integers(*exps, rows))
        return self.put_lines(words.astype(np.int64)[:, None], 1)

    def vector(self, func, rows, length, *, out_width=OutWidth.INT8, row_scale=False,
               causal=False, imm=0, in_place=False, split_banks=False):
        """Append one random instruction of ``func`` whose results mostly lie inside the
        output range (parameters scaled to the operands); returns its fields. MUL with
        ``split_banks`` places its two inputs in different accumulator banks."""
        rng, func = self.rng, VectorFunc(func)
        out_bits = {OutWidth.INT8: 8, OutWidth.INT16: 16, OutWidth.INT32: 32}[out_width]
        spare = 2 if out_bits == 32 else 0  # int32 results keep headroom for the bias
        x = self.int32((rows, length), 20)
        aux = param = 0
        header, planes = (), ()
        if func == VectorFunc.REQUANTIZE:
            # |x * m| ~ 2**34 (times 2**14.5 with a row scale)
            planes = (self.dyadic(length, 36 - out_bits + spare + 14 * row_scale),
                      self.int32(length, out_bits - 3) >> 1)
            if row_scale:
                aux = self.records(rows, (-3, 4))
        elif func == VectorFunc.SOFTMAX:
            x = self.int32((rows, length), 9)
            x[1:] = np.clip(x[1:], -2**9, 2**9)  # the int32 extremes in row 0 only
            # u = d * m >> s spans 0 .. ~2**10 (e from 1 down to 2**-4)
            header = [pack_words(DYADIC_WORD, m=rng.integers(2**13, 2**15),
                                 s=rng.integers(15, 19) + 14 * row_scale)]
            if row_scale:
                aux = self.records(rows, (-3, 4))
        elif func in (VectorFunc.GELU, VectorFunc.SILU):
            imm = imm or int(rng.integers(4, 16))
            # mostly inside the table range (|x| < 2**(imm + 3)); the unit reads 16 bits
            x = self.int32((rows, length), min(imm + 4, 16))
        elif func == VectorFunc.MUL:
            x = self.int32((rows, length), 31)  # |a * b * m| ~ 2**44 on the low 16 bits
            planes = (self.dyadic(length, 46 - out_bits + spare),)
            aux = self.rows(self.int32((rows, length), 31))
            if split_banks:
                self.next_bank()  # source and second input in different banks
        elif func == VectorFunc.ADD:
            # round_shift(a * ma, sa) with |a * ma| ~ 2**34
            shift = 36 - out_bits + spare
            planes = (self.dyadic(length, shift), self.dyadic(length, shift))
            aux = self.rows(self.int32((rows, length), 20))
        elif func in (VectorFunc.LAYERNORM, VectorFunc.RMSNORM):
            x = self.int32((rows, length), int(rng.integers(8, 31)))
            eps = int(rng.integers(0, 2**20))
            header = [eps & 0xFFFFFFFF, eps >> 32]
            # |z| ~ 2**16 (LayerNorm) / 2**22 (RMSNorm), times |gm| ~ 2**14
            z_bits = 16 if func == VectorFunc.LAYERNORM else 22
            planes = (self.dyadic(length, z_bits + 16 - out_bits + spare),
                      self.int32(length, out_bits - 3) >> 1)
        elif func == VectorFunc.ROWQUANT:
            x = self.int32((rows, length), int(rng.integers(8, 31)))
            x[rng.integers(rows)] = 0  # a zero row gives mant = exp = 0
            aux = self._acc_region(rows)
        if planes or header:
            param = self.params(func, header, planes, length)
        src = self.rows(x)
        dst = src if in_place else self.dst(func, out_width, rows, length)
        fields = dict(func=func, out_width=out_width, row_scale=int(row_scale),
                      causal=int(causal), num_rows=rows, row_length=length, src_addr=src,
                      aux_addr=aux, param_addr=param, dst_addr=dst, imm=imm)
        self.words.append(encode(Opcode.VECTOR, **fields))
        return fields

    def reference(self, spad):
        """The functional simulator after running the program on ``acc`` and ``spad``."""
        functional = FunctionalSimulator(self.config)
        functional.acc[:], functional.spad[:] = self.acc, spad
        program = b"".join(w.to_bytes(16, "little") for w in self.words)
        result = functional.run(np.frombuffer(program, np.uint8), 0, len(self.words))
        assert result.error == ErrorCode.NONE, (result.error, result.error_pc)
        return functional


def run_engine(config, words, acc, spad):
    """Execute VECTOR ``words`` on the engine with the memories preloaded; returns the final
    accumulator, scratchpad and the cycles from taking each instruction to its ``done``."""
    _, spad_bits, _, acc_bits = memory_ports(config)
    m = Module()
    m.submodules.engine = engine = VectorEngine(config)
    m.submodules.acc = acc_mem = BankedMemory(config.acc_lines, acc_bits, config.acc_banks,
                                              readers=3, writers=2,
                                              read_stages=config.read_stages)
    m.submodules.spad = spad_mem = BankedMemory(config.spad_lines, spad_bits,
                                                config.spad_banks, readers=1, writers=2,
                                                read_stages=config.read_stages)
    wiring.connect(m, engine.acc_src, acc_mem.read[0])
    wiring.connect(m, engine.acc_aux, acc_mem.read[1])
    wiring.connect(m, engine.acc_write, acc_mem.write[0])
    wiring.connect(m, engine.spad_write, spad_mem.write[0])
    out = {}

    async def bench(ctx):
        await write_lines(ctx, acc_mem.write[1], acc, 32)
        await write_lines(ctx, spad_mem.write[1], spad, 8)
        cycles = []
        for word in words:
            ctx.set(engine.insn.valid, 1)
            ctx.set(engine.insn.payload.as_value(), word)
            await ctx.tick().until(engine.insn.ready)
            ctx.set(engine.insn.valid, 0)
            count = 1
            while not ctx.get(engine.done):
                await ctx.tick()
                count += 1
                assert count < 20000, "engine hung"
            cycles.append(count)
            await ctx.tick()
            assert ctx.get(engine.idle)
        out["acc"] = await read_lines(ctx, acc_mem.read[2], config.acc_lines, 32, config.cols,
                                      read_stages=config.read_stages)
        out["spad"] = await read_lines(ctx, spad_mem.read[0], config.spad_lines, 8,
                                       config.spad_line_bytes, read_stages=config.read_stages)
        out["cycles"] = cycles

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out["acc"], out["spad"], out["cycles"]


def check_program(program, spad=None):
    """Run ``program`` on the engine and the functional simulator; both memories must be
    equal. Returns the engine's cycles per instruction."""
    cfg = program.config
    if spad is None:
        spad = program.rng.integers(-128, 128, (cfg.spad_lines, cfg.spad_line_bytes))
    reference = program.reference(spad)
    acc, spad_out, cycles = run_engine(cfg, program.words, program.acc, spad)
    assert np.array_equal(spad_out, reference.spad.astype(np.int64))
    for index, line in enumerate(acc):
        assert np.array_equal(line, reference.acc[index]), f"accumulator line {index}"
    assert not np.array_equal(acc, program.acc)  # results were written
    return cycles


def small(rows, cols, lanes, max_row, **kwargs):
    return HardwareConfig(rows=rows, cols=cols, spad_lines=128, acc_lines=512,
                          vector=VectorUnitsConfig(lanes=lanes, max_row=max_row,
                                                   softmax_max_row=max_row), **kwargs)


#: A line is one beat (4 lanes, 4 columns); five columns in beats of 4 (and 5-byte
#: scratchpad lines); three columns in beats of 4 with 5-byte scratchpad lines; the same
#: with memories of one read stage; lines split into beats (8 columns, 4 lanes) and beats
#: gathered from lines (2 columns, 4 lanes), where lines and beats divide one another.
CONFIGS = [small(4, 4, 4, 8), small(3, 5, 4, 12, dataflow="os"), small(5, 3, 4, 10),
           small(5, 3, 4, 10, read_stages=1), small(2, 8, 4, 20), small(3, 2, 4, 10)]

F = VectorFunc


def every_function(program):
    """Each function with odd lengths, rows that are not whole lines, and options."""
    cache = plane_cache_lines(program.config) * program.config.cols
    max_row = program.config.vector.max_row
    long = cache + 3  # two segments
    program.vector(F.REQUANTIZE, 3, long, out_width=OutWidth.INT8, row_scale=True)
    program.vector(F.REQUANTIZE, 2, 5, out_width=OutWidth.INT16)
    program.vector(F.REQUANTIZE, 1, 2 * cache + 1, out_width=OutWidth.INT32, in_place=True)
    program.vector(F.ROWQUANT, 3, max_row)
    program.vector(F.SOFTMAX, 3, max_row - 1, causal=True, imm=2, row_scale=True)
    program.vector(F.SOFTMAX, 2, 3)
    program.vector(F.GELU, 2, 7)
    program.vector(F.SILU, 2, 9, in_place=True)
    program.vector(F.MUL, 2, long, out_width=OutWidth.INT16)
    program.vector(F.ADD, 3, 7, out_width=OutWidth.INT32, in_place=True)
    program.vector(F.ADD, 2, 6, out_width=OutWidth.INT8)
    program.vector(F.LAYERNORM, 2, max_row, out_width=OutWidth.INT8)
    program.vector(F.RMSNORM, 3, 5, out_width=OutWidth.INT16)


@pytest.mark.parametrize("config", CONFIGS,
                         ids=lambda c: f"{c.rows}x{c.cols}l{c.vector.lanes}-read{c.read_stages}")
def test_every_function_matches_functional(config):
    program = VectorProgram(config, seed=config.rows * 10 + config.cols)
    every_function(program)
    check_program(program)


def test_throughput():
    """Streaming units take a line per cycle (MUL: when its inputs lie in different banks),
    after reading the parameter planes once per instruction; row units run at their own
    pace. Cycles from taking an instruction to its ``done``, for ``lines`` source lines."""
    config = HardwareConfig(rows=4, cols=4, spad_lines=256, acc_lines=1024,
                            vector=VectorUnitsConfig(max_row=64, softmax_max_row=64))
    program = VectorProgram(config, seed=7)
    rows, length = 6, 48
    lines = rows * length // config.cols
    program.vector(F.MUL, rows, length, out_width=OutWidth.INT16, split_banks=True)
    program.vector(F.GELU, rows, length)
    program.vector(F.REQUANTIZE, rows, length, out_width=OutWidth.INT8, row_scale=True)
    program.vector(F.SOFTMAX, rows, length)
    mul, gelu, requantize, softmax = check_program(program)
    # (Each read phase, of the header, planes, records or rows, takes a cycle more per read
    # stage after the first.)
    extra = config.read_stages - 1
    assert gelu <= lines + 25 + extra
    planes = 2 * length // config.cols
    # (MUL shares the rescale unit with REQUANTIZE and ADD: its pipeline is theirs, with
    # two multiplications in series, each with its fabric stages.)
    fabric = MULTIPLY_FABRIC_STAGES
    assert mul <= lines + planes // 2 + 32 + 2 * fabric + 2 * extra
    # + one record per row, read from the source rows' bank
    assert requantize <= lines + planes + rows + 35 + 2 * fabric + 3 * extra
    # softmax: per row two passes over its beats and the per-row arithmetic between them
    # (a multiplication in the output pass, each row)
    assert softmax <= rows * (2 * length // config.vector.lanes + 50 + fabric) + 30 + fabric \
        + 2 * extra


#: Unit sets of test_partial_unit_sets and the instructions ``(func, rows, length, options)``
#: run on them.
PARTIAL_PROGRAMS = {
    ("gelu",): [(F.GELU, 3, 11, {}), (F.GELU, 1, 23, {"in_place": True})],
    ("rowquant", "softmax"): [(F.ROWQUANT, 3, 12, {}),
                              (F.SOFTMAX, 2, 7, {"causal": True, "imm": 3})],
    # The one norm unit built for both: instructions of the two functions alternate.
    ("layernorm", "rmsnorm"): [(F.RMSNORM, 2, 11, {}),
                               (F.LAYERNORM, 1, 12, {"out_width": OutWidth.INT16}),
                               (F.RMSNORM, 3, 7, {"out_width": OutWidth.INT32}),
                               (F.LAYERNORM, 2, 5, {"in_place": True,
                                                    "out_width": OutWidth.INT16})],
    ("rmsnorm",): [(F.RMSNORM, 2, 9, {"out_width": OutWidth.INT16})],
    # The one activation unit built for both: GELU and SILU alternate at several frac_bits.
    ("gelu", "silu"): [(F.SILU, 2, 9, {"imm": 11}), (F.GELU, 1, 12, {"imm": 11}),
                       (F.SILU, 3, 7, {"imm": 4}), (F.GELU, 2, 5, {"in_place": True,
                                                                 "imm": 15}),
                       (F.SILU, 1, 6, {"imm": 15})],
    ("silu",): [(F.SILU, 2, 9, {"imm": 8})],
}


@pytest.mark.parametrize("units", PARTIAL_PROGRAMS, ids="+".join)
def test_partial_unit_sets(units):
    """Engines with some units only: no plane cache, one output memory only; the norms and
    the activations as one unit for both functions or one function's own."""
    flags = {name: name in units for name in VECTOR_UNITS}
    config = HardwareConfig(rows=3, cols=5, spad_lines=64, acc_lines=128,
                            vector=VectorUnitsConfig(max_row=12, softmax_max_row=12, **flags))
    program = VectorProgram(config, seed=len(units))
    for func, rows, length, options in PARTIAL_PROGRAMS[units]:
        program.vector(func, rows, length, **options)
    check_program(program)


#: Functions that share one unit when their flags are set: ``(functions, the unit's
#: attribute naming the functions it is built for, its value then, its select input)``.
SHARED_UNITS = [((F.LAYERNORM, F.RMSNORM), "modes", NORM_MODES, "rms"),
                ((F.GELU, F.SILU), "funcs", PWL_FUNCS, "table"),
                ((F.REQUANTIZE, F.MUL, F.ADD), "funcs", RESCALE_FUNCS, "func")]


@pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")
@pytest.mark.parametrize("funcs, built_for, names, select", SHARED_UNITS,
                         ids=["norm", "pwl", "rescale"])
def test_shared_functions_share_one_unit(funcs, built_for, names, select):
    """LAYERNORM and RMSNORM run on one Norm, GELU and SILU on one Activation, REQUANTIZE,
    MUL and ADD on one Rescale, when their flags are set; without the first function's
    flag the others have a unit of their own, with the select input only if several
    remain (MUL and ADD are one flag)."""
    both = _build_units(HardwareConfig(rows=2, cols=2))
    assert all(both[f] is both[funcs[0]] for f in funcs)
    assert getattr(both[funcs[0]], built_for) == names
    assert select in both[funcs[0]].signature.members
    shared = sum(len(group) - 1 for group, *_ in SHARED_UNITS)
    assert len({id(unit) for unit in both.values()}) == len(both) - shared
    one = _build_units(HardwareConfig(rows=2, cols=2,
                                      vector=VectorUnitsConfig(**{names[0]: False})))
    assert funcs[0] not in one and getattr(one[funcs[1]], built_for) == names[1:]
    assert (select in one[funcs[1]].signature.members) == (len(names) > 2)
    del both, one
    gc.collect()  # the units (never elaborated) are reported unused here, where expected


def test_engine_needs_a_unit():
    units = dict.fromkeys(VECTOR_UNITS, False)
    with pytest.raises(ValueError, match="no vector unit"):
        VectorEngine(HardwareConfig(vector=VectorUnitsConfig(**units)))


# -- decode-time checks ------------------------------------------------------------------

def random_vector_words(config, rng, count):
    """VECTOR words around every decode-time check, each check hit by some and passed by
    most: unknown functions, zero and maximal sizes, rows at and past a unit's limit,
    reserved widths, regions ending exactly at and one line past a memory's end, GELU/SILU
    fraction bits at and past their bounds."""
    def pick(*options):
        """One of ``(probability, value)`` options; the first has what is left."""
        roll, total = rng.random(), 0
        for probability, value in options[1:]:
            total += probability
            if roll < total:
                return value() if callable(value) else value
        value = options[0][1]
        return value() if callable(value) else value

    cols, spad_bytes, limit = config.cols, config.spad_line_bytes, config.vector.max_row
    words = []
    for _ in range(count):
        func = pick((0, lambda: int(rng.integers(0, 9))), (0.05, lambda: int(rng.integers(9, 16))))
        rows = pick((0, lambda: int(rng.integers(1, 6))), (0.05, 0), (0.03, 2**16 - 1))
        length = pick((0, lambda: int(rng.integers(1, limit + 1))), (0.05, 0), (0.1, limit),
                      (0.1, limit + 1), (0.05, 2**16 - 1))
        chunks = -(-length // cols)
        spans = {"src_addr": rows * chunks, "aux_addr": rows * pick((0, 1), (0.5, chunks)),
                 "param_addr": vector_param_lines(VectorFunc(func % 9), length, cols)[2],
                 "dst_addr": pick((0, rows * chunks), (0.5, rows * -(-length // spad_bytes)))}
        fields = dict(func=func, out_width=pick((0, lambda: int(rng.integers(0, 3))), (0.05, 3)),
                      row_scale=int(rng.integers(0, 2)), causal=int(rng.integers(0, 2)),
                      num_rows=rows, row_length=length,
                      imm=pick((0, lambda: int(rng.integers(4, 16))), (0.1, 3), (0.1, 16),
                               (0.05, lambda: int(rng.integers(0, 2**16)))))
        for name, span in spans.items():
            lines = config.spad_lines if name == "dst_addr" and rng.random() < 0.5 \
                else config.acc_lines
            end = max(lines - span, 0)
            fields[name] = min(pick((0, lambda: int(rng.integers(0, end + 1))), (0.2, end),
                                    (0.15, end + 1),
                                    (0.1, lambda: int(rng.integers(0, 2**16)))), 2**16 - 1)
        words.append(encode(Opcode.VECTOR, **fields))
    return words


def decode_codes(config, words):
    """The controller's error code of each word (its check logic simulated alone)."""
    from amaranth.hdl import Signal

    from systolic.hw.controller import Controller
    from systolic.hw.isa import INSTRUCTION_BITS

    m = Module()
    controller = Controller(config)
    controller._MustUse__silence = True  # only its check logic is simulated
    word = Signal(INSTRUCTION_BITS)
    code = controller.error_code(m, word)
    codes = []

    async def bench(ctx):
        for value in words:
            ctx.set(word, value)
            codes.append(ErrorCode(ctx.get(code)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return codes


@pytest.mark.parametrize("config", [
    HardwareConfig(rows=4, cols=4, spad_lines=64, acc_lines=128,
                   vector=VectorUnitsConfig(max_row=20, softmax_max_row=300, softmax=False,
                                            rmsnorm=False)),
    HardwareConfig(rows=5, cols=3, dataflow="os", spad_lines=256, acc_lines=64,
                   vector=VectorUnitsConfig(max_row=7, gelu=False, eltwise=False)),
], ids=["4x4", "5x3"])
def test_decode_checks_match_functional(config):
    """The controller rejects a VECTOR exactly when (and with the code with which) the
    functional simulator does, for every check that depends on the instruction alone."""
    rng = np.random.default_rng(config.cols)
    words = random_vector_words(config, rng, 600)
    # Every accumulator word valid as any parameter or record (m = 2**14, s = 20 is also
    # mant = 2**14, exp = 20), so the functional simulator's data checks all pass.
    word = int(pack_words(DYADIC_WORD, m=2**14, s=20))
    functional = FunctionalSimulator(config)
    expected = []
    for value in words:
        functional.acc[:] = word
        program = np.frombuffer(value.to_bytes(16, "little"), np.uint8)
        expected.append(functional.run(program, 0, 1).error)
    codes = decode_codes(config, words)
    assert codes == expected
    assert {ErrorCode.NONE, ErrorCode.ILLEGAL_INSTRUCTION, ErrorCode.ACC_RANGE,
            ErrorCode.SPAD_RANGE} <= set(codes)
