"""The compiler's passes on the functional simulator: GEMM tiling (any M, K, N, both
dataflows, K panels, small memories), automatic dependency tokens, vector operations over
rows (column segments, row blocks), host-memory formats and the cycle prediction."""

import numpy as np
import pytest
from checkpoints import write_bert

from systolic.hw.array import os_cycles, ws_cycles
from systolic.hw.config import HardwareConfig, VectorUnitsConfig
from systolic.hw.csr import ErrorCode
from systolic.hw.isa import IllegalInstruction, Memory, Opcode, OutWidth, VectorFunc, encode
from systolic.sim.functional import FunctionalSimulator
from systolic.sw import golden
from systolic.sw import numerics as N
from systolic.sw.assembler import assemble
from systolic.sw.compiler.cost import predict_cycles
from systolic.sw.compiler.memory import (DeviceMemory, HostLayout, activation_tiles,
                                         weight_panels)
from systolic.sw.compiler.model import ModelCompiler, StepContext
from systolic.sw.compiler.scheduler import Scheduler
from systolic.sw.compiler.tiling import Operand, RowsJob, emit_gemm, emit_rows
from systolic.sw.driver import Accelerator
from systolic.sw.numerics import matmul_int8

CONFIGS = [
    HardwareConfig(rows=4, cols=4),
    HardwareConfig(rows=3, cols=5, dataflow="os"),
    HardwareConfig(rows=5, cols=3, spad_banks=1, acc_banks=1),
    # 8 scratchpad lines per half: K is split into panels of two 4-row tiles
    HardwareConfig(rows=4, cols=4, spad_lines=16, acc_lines=8),
    HardwareConfig(rows=8, cols=8, dataflow="os", spad_lines=64, acc_lines=16),
]


def run(config, sched, memory):
    words = sched.words() + [encode(Opcode.HALT)]
    program = np.frombuffer(b"".join(w.to_bytes(16, "little") for w in words), np.uint8)
    prog = len(memory.array)
    memory.grow(prog + len(program))
    memory.array[prog:prog + len(program)] = program
    sim = FunctionalSimulator(config)
    result = sim.run(memory.array, prog, len(words), in_place=True)
    assert result.error == ErrorCode.NONE
    return result


def int8(rng, shape, unsigned=False):
    x = rng.integers(0 if unsigned else -128, 256 if unsigned else 128, shape)
    x.flat[0], x.flat[-1] = (0, 255) if unsigned else (-128, 127)
    return x.astype(np.uint8 if unsigned else np.int8)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.rows}x{c.cols}{c.dataflow}"
                         f"{c.spad_lines}")
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (1, 37, 10), (7, 33, 9), (40, 17, 3),
                                     (5, 130, 11)])
@pytest.mark.parametrize("unsigned, panels", [(False, False), (True, False), (False, True),
                                             (True, True)],
                         ids=["int8", "uint8", "panels", "tiles"])
def test_gemm_any_shape(config, m, k, n, unsigned, panels):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a, b = int8(rng, (m, k), unsigned), int8(rng, (k, n))
    layout = HostLayout(config)
    a_host = a if config.dataflow == "ws" else np.ascontiguousarray(a.T)
    tiles = unsigned and panels  # A tile-major (ws) / A^T panel-major (os) as well
    if tiles:
        a_host = activation_tiles(a, config) if config.dataflow == "ws" else \
            weight_panels(a_host, config, width=config.rows)
    ta = layout.add("a", *a_host.shape, "uint8" if unsigned else "int8", stride=a_host.shape[1])
    b_host = weight_panels(b, config) if panels else b
    tb = layout.add("b", *b_host.shape, "int8", stride=b_host.shape[1])
    tc = layout.add("c", m, n, "int32", stride=4 * n + 12)  # padded rows stay untouched
    memory = DeviceMemory(layout.size)
    memory.place(ta, a_host)
    memory.place(tb, b_host)
    sched = Scheduler(config)
    a_op = ta.operand()
    if tiles:  # bytes from one K tile (ws) / panel of A^T (os) to the next
        a_op = Operand(ta.address, (m if config.dataflow == "ws" else k) * a_host.shape[1], "a")
    emit_gemm(sched, m, k, n, a_op, tb.operand(), tc.operand(), unsigned, panels, tiles)
    result = run(config, sched, memory)
    assert np.array_equal(memory.read(tc, m), matmul_int8(a, b, a_unsigned=unsigned))
    assert result.counters["macs"] >= m * k * n
    raw = memory.array[tc.address:tc.address + m * tc.stride].reshape(m, -1)
    assert not raw[:, 4 * n:].any()


def test_scheduler_tokens_follow_the_hazards():
    config = HardwareConfig(rows=4, cols=4)
    s = Scheduler(config)
    s.load(Memory.SPAD, 0, 4, 4, 0, 4, "w")          # 0: weights into lines 0..3
    s.load(Memory.SPAD, 100, 2, 4, 64, 4, "x")       # 1: activations
    s.matmul(100, 0, 0, 2)                           # 2: reads both -> waits for load 1
    s.matmul(100, 0, 2, 2)                           # 3: covered by the wait of 2
    s.store(Memory.ACC, 0, 2, 16, 256, 16, "y")      # 4: reads acc 0..1 -> waits for 2
    s.load(Memory.SPAD, 0, 4, 4, 128, 4, "w2")       # 5: overwrites what 3 reads
    s.matmul(100, 0, 0, 2)                           # 6: overwrites what 4 reads, reads 5
    s.load(Memory.SPAD, 200, 1, 4, 512, 4, "y")      # 7: reads a buffer 4 stored: FENCE
    flags = [sorted(i.flags) for i in s.instructions]
    assert [i.opcode for i in s.instructions] == [Opcode.LOAD] * 2 + [Opcode.MATMUL] * 2 + [
        Opcode.STORE, Opcode.LOAD, Opcode.MATMUL, Opcode.FENCE, Opcode.LOAD]
    assert flags[:7] == [[], ["push_next"], ["pop_prev", "push_next"], ["push_prev"],
                         ["pop_prev", "push_prev"], ["pop_next", "push_next"],
                         ["pop_next", "pop_prev"]]
    assert flags[8] == []
    with pytest.raises(ValueError, match="outside"):
        s.matmul(1022, 0, 0, 5)


def rows_case(config, job_func, length, rows, seed, out_width=OutWidth.INT32, **kwargs):
    """Run one vector job over host rows; returns (input, output, records or None)."""
    rng = np.random.default_rng(seed)
    layout = HostLayout(config)
    x = rng.integers(-2**31, 2**31, (rows, length))
    src = layout.add("x", rows, length, "int32")
    out_storage = "int8" if job_func in (VectorFunc.ROWQUANT,) or out_width == OutWidth.INT8 \
        else "int32"
    dst = layout.add("y", rows, length, out_storage)
    memory_parts = {}
    job = RowsJob(job_func, length, [(0, rows, 0, 0)], src.operand(), dst.operand(),
                  out_width=out_width)
    if job_func == VectorFunc.REQUANTIZE:
        m, s = rng.integers(1, 2**15, length), rng.integers(20, 40, length)
        bias = rng.integers(-1000, 1000, length)
        params = N.RequantParams(m, s, bias, {0: 8, 1: 16, 2: 32}[out_width.value])
        plane = np.stack([(m & 0xFFFF) | (s << 16), bias])
        lines = np.zeros((2, -(-length // config.cols) * config.cols), np.int64)
        lines[:, :length] = plane
        block = lines.astype(np.uint32).view(np.int32).reshape(-1, config.cols)
        tp = layout.add("p", len(block), config.cols, "int32")
        memory_parts[tp] = block
        job.params = (tp.operand(), len(block))
        memory_parts["want"] = N.requantize(x, params)
    else:
        rec = layout.add("r", rows, 1, "record")
        job.records_out = rec.operand()
        memory_parts["rec"] = rec
        memory_parts["want"] = N.quantize_rows(x, 32)
    memory = DeviceMemory(layout.size)
    memory.write(src, x)
    for tensor, block in memory_parts.items():
        if not isinstance(tensor, str):
            memory.place(tensor, block)
    sched = Scheduler(config)
    emit_rows(sched, job)
    run(config, sched, memory)
    got = memory.read(dst, rows)
    records = memory.read(memory_parts["rec"], rows) if "rec" in memory_parts else None
    return sched, got, records, memory_parts["want"]


@pytest.mark.parametrize("config", [HardwareConfig(rows=4, cols=4, acc_lines=64),
                                    HardwareConfig(rows=5, cols=3, acc_lines=32)],
                         ids=["4x4", "5x3"])
@pytest.mark.parametrize("out_width", [OutWidth.INT8, OutWidth.INT32])
def test_long_rows_run_in_column_segments(config, out_width):
    # a requantize row of 150 elements cannot fit twice in a small accumulator: element-wise
    # units process it in column segments, each with its slice of the parameter planes
    sched, got, _, want = rows_case(config, VectorFunc.REQUANTIZE, 150, 5, 1, out_width)
    widths = {i.fields["row_length"] for i in sched.instructions if i.opcode == Opcode.VECTOR}
    assert max(widths) < 150
    assert np.array_equal(got, want)


def test_row_units_take_blocks_of_whole_rows():
    config = HardwareConfig(rows=4, cols=4, acc_lines=64)
    sched, got, records, (want, scale) = rows_case(config, VectorFunc.ROWQUANT, 21, 9, 2)
    vectors = [i.fields for i in sched.instructions if i.opcode == Opcode.VECTOR]
    assert len(vectors) > 1 and all(v["row_length"] == 21 for v in vectors)
    assert np.array_equal(got, want)
    assert np.array_equal(records.mant, scale.mant) and np.array_equal(records.exp, scale.exp)
    with pytest.raises(ValueError, match="do not fit"):
        rows_case(HardwareConfig(rows=4, cols=4, acc_lines=16), VectorFunc.ROWQUANT, 40, 2, 3)


@pytest.mark.parametrize("dataflow, formula", [("ws", ws_cycles), ("os", os_cycles)])
def test_predicted_matmul_chains_follow_the_array_formulas(dataflow, formula):
    """Back-to-back MATMULs of tiles long enough to keep the array busy: each further tile
    adds what the array's cycle formula adds, and the array is busy once per row."""
    config = HardwareConfig(rows=4, cols=4, dataflow=dataflow)
    length = 24

    def chain(tiles):
        sched = Scheduler(config)
        sched.matmul_chain([512] * tiles, [0] * tiles, 0, length)
        return predict_cycles(config, sched.instructions)

    short, long = chain(10), chain(14)  # both fetched in two chunks
    assert long["array"] == 14 * length
    assert long["total"] - short["total"] == formula(4, 4, 14, length) - formula(4, 4, 10, length)


def test_predicted_transfers_are_bound_by_the_bus():
    """A long LOAD and a long STORE each take a bus beat per ``dma_bytes`` (accumulator lines
    of 16 bytes are written and read faster than 8-byte beats arrive; 4-byte scratchpad
    lines are not: such a LOAD takes a cycle per line); run together they overlap (separate
    read and write channels), one after another (tokens) they add."""
    config = HardwareConfig(rows=4, cols=4, dma_bytes=8, spad_lines=8192, acc_lines=8192)

    def cycles(*build):
        sched = Scheduler(config)
        for step in build:
            step(sched)
        return predict_cycles(config, sched.instructions)["total"]

    def load(s):
        s.load(Memory.ACC, 0, 8, 4000, 0, 4000, "x")

    def narrow_load(s):
        s.load(Memory.SPAD, 0, 8, 4000, 0, 4000, "x")

    def store(s):
        s.store(Memory.ACC, 4096, 16, 1600, 65536, 1600, "y")

    def dependent_store(s):  # reads what the load wrote
        s.store(Memory.ACC, 0, 2, 16, 65536, 16, "y")

    beats_load, beats_store = 8 * 500, 16 * 200
    assert beats_load < cycles(load) < beats_load * 1.05
    assert 8 * 1000 < cycles(narrow_load) < 8 * 1000 * 1.05
    assert beats_store < cycles(store) < beats_store * 1.05
    assert cycles(load, store) < max(cycles(load), cycles(store)) + 50
    assert cycles(load, dependent_store) > cycles(load) + 20


def test_host_formats_pad_rows_to_lines():
    config = HardwareConfig(rows=5, cols=3, vector=VectorUnitsConfig())
    layout = HostLayout(config)
    wide = layout.add("w", 2, 7, "int32")
    byte = layout.add("b", 2, 7, "int8")
    rec = layout.add("r", 3, 1, "record")
    assert (wide.stride, byte.stride, rec.stride) == (3 * 12, 10, 4)
    assert wide.address % 64 == byte.address % 64 == rec.address % 64 == 0
    memory = DeviceMemory(layout.size)
    memory.write(wide, np.arange(14).reshape(2, 7) - 7)
    assert memory.read(wide, 2).tolist() == (np.arange(14).reshape(2, 7) - 7).tolist()
    scale = N.RowScale(np.array([0, 2**14, 2**15 - 1]), np.array([0, -14, 18]))
    memory.write(rec, scale)
    back = memory.read(rec, 3)
    assert back.mant.tolist() == scale.mant.tolist() and back.exp.tolist() == [0, -14, 18]
    with pytest.raises(ValueError, match="allocated twice"):
        layout.add("w", 1, 1, "int8")


def test_fast_encoding_equals_the_isa_encoder():
    config = HardwareConfig(rows=4, cols=4)
    sched = Scheduler(config)
    emit_gemm(sched, 9, 13, 6, Operand(0, 13, "a"), Operand(1024, 6, "b"), Operand(2048, 24, "c"))
    emit_rows(sched, RowsJob(VectorFunc.SOFTMAX, 7, [(0, 3, 0, 2)], Operand(4096, 32, "x"),
                             Operand(8192, 8, "p"), records_in=Operand(9000, 4, "r"),
                             params=(Operand(9500, 16, "q"), 1), row_scale=True, causal=True))
    for insn in sched.instructions:
        flags = {f"deps.{flag}": 1 for flag in insn.flags}
        assert insn.encode() == encode(insn.opcode, **insn.fields, **flags)
    sched = Scheduler(config)
    sched.load(Memory.SPAD, 0, 1, 4096, 0, 1, "x")  # 256 lines fit, 4096 needs 13 bits
    with pytest.raises(IllegalInstruction, match="row_bytes = 4096 does not fit 12 bits"):
        sched.words()


def test_chained_matmuls_equal_single_ones_with_wraparound():
    """The functional simulator runs a K-tile chain as one product; the result must equal
    one MATMUL at a time, including int32 wrap-around of the accumulator."""
    config = HardwareConfig(rows=4, cols=4)
    rng = np.random.default_rng(9)
    spad = rng.integers(-128, 128, (64, 4), dtype=np.int8)
    spad[:16] = 127
    spad[32:48] = 127  # large products
    results = []
    for fenced in (False, True):
        sim = FunctionalSimulator(config)
        sim.spad[:64] = spad
        sim.acc[8:11] = 2**31 - 1000  # the first tile accumulates onto these and wraps
        text = []
        for t in range(4):
            text.append(f"matmul a_addr={t * 3} b_addr={32 + 4 * t} c_addr=8 length=3 accumulate")
            if fenced:
                text.append("fence")
        words = assemble("\n".join(text))
        memory = np.zeros(4096, np.uint8)
        program = b"".join(w.to_bytes(16, "little") for w in words)
        memory[:len(program)] = np.frombuffer(program, np.uint8)
        result = sim.run(memory, 0, len(words))
        assert result.error == ErrorCode.NONE and result.counters["instructions"] == 4
        assert result.counters["macs"] == 4 * 3 * 16
        results.append(sim.acc[8:11].copy())
    assert np.array_equal(results[0], results[1])
    assert (results[0] < 0).any()  # it did wrap


@pytest.mark.parametrize("tokens", [70, 20])
def test_fused_epilogues_are_bit_exact(tmp_path, tokens):
    """A one-layer BERT on a 4x4 array: with 70 tokens the requantize after each weight
    matmul (with row scales, int8 for K and V, 16-bit for Q), the GELU after the FFN's
    first matmul and the residual ADDs after the attention output and FFN matmuls run fused
    on the matmuls' output tiles (their own steps emit nothing); with 20 tokens (tiles too
    short to pay) they run on their own. Both equal the golden model bit for bit."""

    path = write_bert(tmp_path / "bert", seed=5, hidden=16, heads=2, ffn=40, positions=80).path
    config = HardwareConfig(rows=4, cols=4, spad_lines=4096, acc_lines=1024,
                            vector=VectorUnitsConfig(lanes=4, max_row=128))
    runner = Accelerator(config, "functional").load_model(path)
    ids = np.random.default_rng(tokens).integers(5, runner.model.config.vocab_size, tokens)
    got = runner.hidden_states(ids)
    assert np.array_equal(got, golden.run(runner.graph, ids)[runner.graph.outputs[0]])
    compiler = ModelCompiler(runner.graph, config, tokens, tokens)
    fused = {compiler.plans[i].op.outputs[0] for chain in compiler.chains.values()
             for i in chain}
    assert {"l0.q", "l0.k", "l0.v", "l0.attn_out", "l0.resid1", "l0.up", "l0.act",
            "l0.down", "l0.resid2"} <= fused
    ctx = StepContext(ids, 0)
    empty = [compiler.plans[i].op.outputs[0] for i in compiler.fused_into
             if compiler.fragment(compiler.plans[i], ctx).count == 0]
    assert set(empty) == (fused if tokens == 70 else set())
