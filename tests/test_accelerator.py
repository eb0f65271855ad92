"""The whole accelerator on every backend: the same programs and host-memory images give the
same final images, error codes and counters on the functional simulator, Amaranth's
simulator of the RTL and cocotb + Icarus on the generated Verilog."""

import numpy as np
import pytest

from systolic.hw.config import HardwareConfig
from systolic.hw.csr import ErrorCode
from systolic.hw.isa import DYADIC_WORD, pack_words
from systolic.sim.amaranth_sim import AmaranthBackend
from systolic.sim.cocotb.backend import CocotbBackend
from systolic.sim.functional import FunctionalSimulator
from systolic.sim.vectors import matmul_case
from systolic.sw.assembler import assemble
from systolic.sw.compiler.gemm import compile_gemm
from systolic.sw.driver import HostImage, _program_bytes

#: Counters every backend reports identically (the RTL adds cycles and stalls).
SHARED_COUNTERS = ("macs", "array_busy", "fetch_bytes", "load_bytes", "store_bytes",
                   "instructions")

SMALL = [
    HardwareConfig(rows=4, cols=4, spad_lines=64, acc_lines=32),
    HardwareConfig(rows=3, cols=5, dataflow="os", spad_lines=64, acc_lines=32, dma_bytes=4),
]


def gemm_program(config, m, k, n, seed, a_unsigned=False):
    """``(memory, prog_addr, count, c_addr, expected C)`` of a tiled matmul."""
    a, b = matmul_case(seed, m, k, n, a_unsigned=a_unsigned)
    image = HostImage()
    program = compile_gemm(config, a, b, image, a_unsigned)
    prog_addr = image.add(_program_bytes(program.words))
    expected = a.astype(np.int64) @ b.astype(np.int64)
    return image.array(), prog_addr, len(program.words), program.c_addr, expected


def text_program(text, data=b""):
    """A hand-written program at 0x400 with ``data`` at 0x800 in a 4 KiB image."""
    words = assemble(text)
    memory = np.zeros(4096, dtype=np.uint8)
    memory[0x800:0x800 + len(data)] = np.frombuffer(data, np.uint8)
    program = _program_bytes(words)
    memory[0x400:0x400 + len(program)] = program
    return memory, 0x400, len(words)


def vector_program(config, seed):
    """``(memory, prog_addr, count)`` of a program mixing LOAD, MATMUL, VECTOR and STORE:
    a matmul, its requantization to int8 feeding a second matmul, row quantization whose
    per-row records scale a causal softmax, GELU, an in-place residual add, a LayerNorm,
    SiLU times GELU and an RMSNorm of the residual sum (every vector function); both
    memories are stored back to the host. The compute unit keeps program order; tokens
    order the loads before and the stores after it."""
    rng = np.random.default_rng(seed)
    rows, cols, spad_bytes = config.rows, config.cols, config.spad_line_bytes
    ws = config.dataflow == "ws"
    # Result tile rows (WS: 3 activation rows; OS: the array's rows) of 3-long products.
    tile, b_lines = (3, rows) if ws else (rows, 3)
    a = rng.integers(-128, 128, (3, rows), dtype=np.int8)
    b = rng.integers(-128, 128, (b_lines, cols), dtype=np.int8)

    def dyadic(m, s):
        return pack_words(DYADIC_WORD, m=m, s=s)

    def plane(values):
        return np.broadcast_to(np.asarray(values, np.int64), (cols,))

    eps = 1 << 12
    params = np.array([  # accumulator lines 19..27: one parameter block after another
        plane(dyadic(rng.integers(2**13, 2**15, cols), 20)),  # 19: MUL m/s
        plane(dyadic(rng.integers(2**13, 2**15, cols), 24)),  # 20: REQUANTIZE m/s,
        plane(rng.integers(-20, 20, cols)),                   # 21:   bias
        plane([dyadic(2**14 + 99, 34)] + [0] * (cols - 1)),   # 22: SOFTMAX header
        plane(dyadic(rng.integers(2**13, 2**15, cols), 14)),  # 23: ADD ma/sa,
        plane(dyadic(rng.integers(2**13, 2**15, cols), 15)),  # 24:   mb/sb
        plane([eps, 0] + [0] * (cols - 2)),                   # 25: LAYERNORM eps,
        plane(dyadic(rng.integers(2**13, 2**15, cols), 26)),  # 26:   gamma,
        plane(rng.integers(-30, 30, cols)),                   # 27:   beta
    ]).astype(np.uint32).view(np.int32)
    image = HostImage()
    a_host, b_host, p_host = image.add(a), image.add(b), image.add(params)
    spad_out = image.reserve(27 * spad_bytes)
    acc_out = image.reserve(config.acc_lines * 4 * cols)
    rows_of = f"num_rows={tile} row_length={cols}"
    program = [
        f"load mem=spad sram_addr=0 rows=3 row_bytes={rows} dram_addr={a_host} "
        f"dram_stride={rows}",
        f"load mem=spad sram_addr=3 rows={b_lines} row_bytes={cols} dram_addr={b_host} "
        f"dram_stride={cols}",
        f"load mem=acc sram_addr=19 rows=9 row_bytes={4 * cols} dram_addr={p_host} "
        f"dram_stride={4 * cols} push_next",
        "matmul a_addr=0 b_addr=3 c_addr=0 length=3 pop_prev",
        f"vector func=requantize {rows_of} src_addr=0 param_addr=20 dst_addr=8",
        "matmul a_addr=8 b_addr=3 c_addr=8 length=3 a_unsigned",
        f"vector func=rowquant {rows_of} src_addr=8 aux_addr=28 dst_addr=12",
        f"vector func=softmax {rows_of} src_addr=0 aux_addr=28 param_addr=22 dst_addr=16 "
        "row_scale causal imm=1",
        f"vector func=gelu out_width=int16 {rows_of} src_addr=8 dst_addr=16 imm=9",
        f"vector func=add out_width=int32 {rows_of} src_addr=0 aux_addr=16 param_addr=23 "
        "dst_addr=0",
        f"vector func=layernorm {rows_of} src_addr=0 param_addr=25 dst_addr=20",
        f"vector func=silu out_width=int16 {rows_of} src_addr=8 dst_addr=3 imm=9",
        f"vector func=mul out_width=int32 {rows_of} src_addr=3 aux_addr=16 param_addr=19 "
        "dst_addr=11",
        f"vector func=rmsnorm {rows_of} src_addr=0 param_addr=25 dst_addr=24 push_next",
        f"store mem=spad sram_addr=0 rows=27 row_bytes={spad_bytes} dram_addr={spad_out} "
        f"dram_stride={spad_bytes} pop_prev",
        f"store mem=acc sram_addr=0 rows={config.acc_lines} row_bytes={4 * cols} "
        f"dram_addr={acc_out} dram_stride={4 * cols}",
    ]
    words = assemble("\n".join(program))
    prog_addr = image.add(_program_bytes(words))
    return image.array(), prog_addr, len(words)


def check_same(reference, result):
    assert (result.error, result.error_pc) == (reference.error, reference.error_pc)
    assert np.array_equal(result.memory, reference.memory)
    if set(result.counters) == {"cycles"}:  # perf_counters=False: no other counter exists
        assert result.cycles == result.counters["cycles"] > 0
        return
    for name in SHARED_COUNTERS:
        assert result.counters[name] == reference.counters[name], name
    assert result.cycles > 0


ERROR_PROGRAMS = {
    "illegal opcode": ("fence\n" + "halt\n", None),  # replaced below by a raw zero word
    "spad range": ("load mem=spad sram_addr=60 rows=5 row_bytes=4 dram_addr=0x800", None),
    "acc range": ("fence\nmatmul a_addr=0 b_addr=0 c_addr=30 length=3", None),
    "axi read": ("load mem=spad rows=1 row_bytes=8 dram_addr=0xFFC", None),
    "axi write": ("load mem=spad rows=2 row_bytes=4 dram_addr=0x800 push_next\n"
                  "fence\nstore mem=spad rows=1 row_bytes=8 dram_addr=0x2000", None),
    "vector range": ("fence\nvector func=gelu num_rows=2 row_length=9 src_addr=30 imm=8", None),
    "vector row": ("fence\nvector func=softmax num_rows=1 row_length=5000", None),
}


@pytest.fixture(scope="module", params=SMALL, ids=lambda c: f"{c.rows}x{c.cols}{c.dataflow}")
def config(request):
    return request.param


@pytest.fixture(scope="module")
def amaranth(config):
    return AmaranthBackend(config)


def check_matmul(config, backend, program, functional=None):
    """``program`` (from :func:`gemm_program`) on ``backend``: the memory image and counters
    of ``functional`` (a functional simulator with the same on-chip state as ``backend``;
    default a fresh one), and the exact product."""
    memory, prog_addr, count, c_addr, expected = program
    reference = (functional or FunctionalSimulator(config)).run(memory, prog_addr, count)
    assert reference.error == ErrorCode.NONE
    result = backend.run(memory, prog_addr, count)
    check_same(reference, result)
    m, n = expected.shape
    c = result.memory[c_addr:c_addr + 4 * m * n].view(np.int32).reshape(m, n)
    assert np.array_equal(c, expected)
    return result


def check_error_programs(config, backend, functional=None):
    """Every program of ERROR_PROGRAMS stops ``backend`` as it stops ``functional`` (as in
    :func:`check_matmul`)."""
    functional = functional or FunctionalSimulator(config)
    for name, (text, _) in ERROR_PROGRAMS.items():
        memory, prog_addr, count = text_program(text, bytes(range(16)))
        if name == "illegal opcode":
            memory[prog_addr + 16:prog_addr + 32] = 0
        reference = functional.run(memory, prog_addr, count)
        assert reference.error != ErrorCode.NONE, name
        check_same(reference, backend.run(memory, prog_addr, count))


def check_state_persists(config, backend):
    """A second program reads back what the first left in the accumulator."""
    first = text_program("load mem=acc sram_addr=7 rows=1 row_bytes=12 dram_addr=0x800",
                         bytes(range(100, 116)))
    second = text_program("store mem=acc sram_addr=7 rows=1 row_bytes=12 dram_addr=0x900")
    functional = FunctionalSimulator(config)
    references = [functional.run(*first), functional.run(*second)]
    results = [backend.run(*first), backend.run(*second)]
    for reference, result in zip(references, results):
        check_same(reference, result)
    assert bytes(results[1].memory[0x900:0x90C]) == bytes(range(100, 112))


def test_tiled_matmuls_and_errors_amaranth(config, amaranth):
    # One reference for the whole sequence: the vector program stores every accumulator
    # line, including what the matmuls left there.
    functional = FunctionalSimulator(config)
    check_matmul(config, amaranth, gemm_program(config, 9, 17, 7, seed=1), functional)
    check_matmul(config, amaranth, gemm_program(config, 1, 5, 3, seed=2, a_unsigned=True),
                 functional)
    memory, prog_addr, count = vector_program(config, seed=4)
    reference = functional.run(memory, prog_addr, count)
    assert reference.error == ErrorCode.NONE
    check_same(reference, amaranth.run(memory, prog_addr, count))
    check_error_programs(config, amaranth, functional)


def test_on_chip_state_persists_between_runs(config, amaranth):
    check_state_persists(config, amaranth)


def test_cocotb_icarus_matches_functional(config, tmp_path):
    programs = [gemm_program(config, 6, 9, 5, seed=3)[:3],
                text_program("load mem=spad sram_addr=63 rows=2 row_bytes=4 dram_addr=0x800"),
                text_program("load mem=acc sram_addr=3 rows=2 row_bytes=7 dram_addr=0x801 "
                             "dram_stride=9\nfence\nstore mem=acc sram_addr=3 rows=2 "
                             "row_bytes=7 dram_addr=0x903 dram_stride=11", bytes(range(40))),
                vector_program(config, seed=5)]
    functional = FunctionalSimulator(config)
    references = [functional.run(*program) for program in programs]
    results = CocotbBackend(config, work_dir=tmp_path).run_batch(programs)
    for reference, result in zip(references, results):
        check_same(reference, result)
