"""The whole accelerator on every backend: the same programs and host-memory images give the
same final images, error codes and counters on the functional simulator, Amaranth's
simulator of the RTL and cocotb + Icarus on the generated Verilog."""

import numpy as np
import pytest

from systolic.hw.config import HardwareConfig
from systolic.hw.csr import ErrorCode
from systolic.sim.amaranth_sim import AmaranthBackend
from systolic.sim.cocotb.backend import CocotbBackend
from systolic.sim.functional import FunctionalSimulator
from systolic.sim.vectors import matmul_case
from systolic.sw.assembler import assemble
from systolic.sw.compiler.gemm import GemmLayout, compile_gemm
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
    a_host = a if config.dataflow == "ws" else np.ascontiguousarray(a.T)
    a_addr, b_addr = image.add(a_host), image.add(b)
    c_addr = image.reserve(4 * m * n)
    layout = GemmLayout(a_addr, a_host.shape[1], b_addr, n, c_addr, 4 * n)
    words = compile_gemm(config, m, k, n, layout, a_unsigned)
    prog_addr = image.add(_program_bytes(words))
    expected = a.astype(np.int64) @ b.astype(np.int64)
    return image.array(), prog_addr, len(words), c_addr, expected


def text_program(text, data=b""):
    """A hand-written program at 0x400 with ``data`` at 0x800 in a 4 KiB image."""
    words = assemble(text)
    memory = np.zeros(4096, dtype=np.uint8)
    memory[0x800:0x800 + len(data)] = np.frombuffer(data, np.uint8)
    program = _program_bytes(words)
    memory[0x400:0x400 + len(program)] = program
    return memory, 0x400, len(words)


def check_same(reference, result):
    assert (result.error, result.error_pc) == (reference.error, reference.error_pc)
    assert np.array_equal(result.memory, reference.memory)
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
}


@pytest.fixture(scope="module", params=SMALL, ids=lambda c: f"{c.rows}x{c.cols}{c.dataflow}")
def config(request):
    return request.param


@pytest.fixture(scope="module")
def amaranth(config):
    return AmaranthBackend(config)


def test_tiled_matmuls_and_errors_amaranth(config, amaranth):
    functional = FunctionalSimulator(config)
    programs = [gemm_program(config, 9, 17, 7, seed=1),
                gemm_program(config, 1, 5, 3, seed=2, a_unsigned=True)]
    for memory, prog_addr, count, c_addr, expected in programs:
        reference = functional.run(memory, prog_addr, count)
        assert reference.error == ErrorCode.NONE
        result = amaranth.run(memory, prog_addr, count)
        check_same(reference, result)
        m, n = expected.shape
        c = result.memory[c_addr:c_addr + 4 * m * n].view(np.int32).reshape(m, n)
        assert np.array_equal(c, expected)
    for name, (text, _) in ERROR_PROGRAMS.items():
        memory, prog_addr, count = text_program(text, bytes(range(16)))
        if name == "illegal opcode":
            memory[prog_addr + 16:prog_addr + 32] = 0
        reference = functional.run(memory, prog_addr, count)
        assert reference.error != ErrorCode.NONE, name
        check_same(reference, amaranth.run(memory, prog_addr, count))


def test_on_chip_state_persists_between_runs(config, amaranth):
    """A second program reads back what the first left in the accumulator."""
    first = text_program("load mem=acc sram_addr=7 rows=1 row_bytes=12 dram_addr=0x800",
                         bytes(range(100, 116)))
    second = text_program("store mem=acc sram_addr=7 rows=1 row_bytes=12 dram_addr=0x900")
    functional = FunctionalSimulator(config)
    references = [functional.run(*first), functional.run(*second)]
    results = [amaranth.run(*first), amaranth.run(*second)]
    for reference, result in zip(references, results):
        check_same(reference, result)
    assert bytes(results[1].memory[0x900:0x90C]) == bytes(range(100, 112))


def test_cocotb_icarus_matches_functional(config, tmp_path):
    programs = [gemm_program(config, 6, 9, 5, seed=3)[:3],
                text_program("load mem=spad sram_addr=63 rows=2 row_bytes=4 dram_addr=0x800"),
                text_program("load mem=acc sram_addr=3 rows=2 row_bytes=7 dram_addr=0x801 "
                             "dram_stride=9\nfence\nstore mem=acc sram_addr=3 rows=2 "
                             "row_bytes=7 dram_addr=0x903 dram_stride=11", bytes(range(40)))]
    functional = FunctionalSimulator(config)
    references = [functional.run(*program) for program in programs]
    results = CocotbBackend(config, work_dir=tmp_path).run_batch(programs)
    for reference, result in zip(references, results):
        check_same(reference, result)
