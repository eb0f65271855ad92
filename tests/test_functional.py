"""The functional simulator and the driver: any-shape matmuls, errors, tokens, state."""

import numpy as np
import pytest

from systolic.hw.config import HardwareConfig
from systolic.hw.csr import ErrorCode
from systolic.sim.functional import FunctionalSimulator, TokenDeadlock
from systolic.sim.vectors import matmul_case
from systolic.sw.assembler import assemble
from systolic.sw.driver import Accelerator, AcceleratorError
from systolic.sw.numerics import Int32OverflowError, matmul_int8

CONFIGS = [
    HardwareConfig(),
    HardwareConfig(rows=3, cols=5, dataflow="os"),
    HardwareConfig(rows=5, cols=3, dataflow="ws", spad_banks=1, acc_banks=1),
    HardwareConfig(rows=1, cols=1, spad_lines=16, spad_banks=1, acc_lines=4, acc_banks=1),
    HardwareConfig(rows=8, cols=8, dataflow="os", spad_lines=64, spad_banks=4, acc_lines=16),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.rows}x{c.cols}{c.dataflow}")
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (7, 33, 9), (40, 17, 3), (5, 130, 11)])
def test_matmul_any_shape(config, m, k, n):
    a, b = matmul_case(m * 1000 + k * 10 + n, m, k, n)
    acc = Accelerator(config, backend="functional")
    assert np.array_equal(acc.matmul(a, b), matmul_int8(a, b))
    run = acc.last_run
    assert run.useful_macs == m * k * n
    assert run.macs >= run.useful_macs
    assert run.counters["load_bytes"] >= a.size + b.size
    assert run.counters["store_bytes"] == 4 * m * n


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_unsigned_activations(dataflow):
    a, b = matmul_case(3, 9, 20, 7, a_unsigned=True)
    acc = Accelerator(HardwareConfig(rows=4, cols=3, dataflow=dataflow))
    assert np.array_equal(acc.matmul(a, b), matmul_int8(a, b, a_unsigned=True))


def test_driver_rejects_bad_input_before_running():
    acc = Accelerator(HardwareConfig())
    good = np.zeros((2, 3), dtype=np.int8)
    with pytest.raises(TypeError, match="dtype int8"):
        acc.matmul(good.astype(np.int16), good.T)
    with pytest.raises(TypeError, match="dtype int8"):
        acc.matmul(good, good.T.astype(np.uint8))
    with pytest.raises(TypeError, match="NumPy int8 array"):
        acc.matmul([[1, 2]], good.T)
    with pytest.raises(ValueError, match="inner dimensions"):
        acc.matmul(good, good)
    with pytest.raises(ValueError, match="2-D"):
        acc.matmul(np.zeros(3, np.int8), good)
    with pytest.raises(ValueError, match="non-empty"):
        acc.matmul(np.zeros((0, 3), np.int8), good.T)
    assert acc.last_run is None
    with pytest.raises(ValueError, match="backend must be one of"):
        Accelerator(HardwareConfig(), backend="spice")


def test_int32_overflow_is_an_error_not_a_wrong_answer():
    k = 131073
    a = np.full((1, k), -128, dtype=np.int8)
    with pytest.raises(Int32OverflowError):
        Accelerator(HardwareConfig()).matmul(a, a.T.copy())


def run_text(config, text, memory_bytes=4096, sim=None):
    sim = sim or FunctionalSimulator(config)
    words = assemble(text)
    memory = np.zeros(memory_bytes, dtype=np.uint8)
    program = b"".join(w.to_bytes(16, "little") for w in words)
    memory[:len(program)] = np.frombuffer(program, np.uint8)
    return sim.run(memory, 0, len(words)), sim


@pytest.mark.parametrize("text, code, pc", [
    ("fence\nstore mem=spad rows=1 row_bytes=1 dram_addr=0x800\n.", None, None),
    ("load mem=spad sram_addr=1023 rows=2 row_bytes=1 dram_addr=0x800", ErrorCode.SPAD_RANGE, 0),
    ("fence\nload mem=acc sram_addr=511 rows=1 row_bytes=17 dram_addr=0x800",
     ErrorCode.ACC_RANGE, 1),
    ("matmul a_addr=1022 b_addr=0 c_addr=0 length=3", ErrorCode.SPAD_RANGE, 0),
    ("matmul a_addr=0 b_addr=0 c_addr=510 length=3", ErrorCode.ACC_RANGE, 0),
    ("matmul length=0", ErrorCode.ILLEGAL_INSTRUCTION, 0),
    ("load mem=spad rows=1 row_bytes=8 dram_addr=0xFFF", ErrorCode.AXI_READ, 0),
    ("store mem=spad rows=2 row_bytes=8 dram_addr=0xF00 dram_stride=0x100",
     ErrorCode.AXI_WRITE, 0),
    ("load mem=spad rows=0 row_bytes=8", ErrorCode.ILLEGAL_INSTRUCTION, 0),
])
def test_error_codes(text, code, pc):
    if code is None:  # an unparsable line is an assembler error, not a hardware one
        with pytest.raises(Exception, match="unknown mnemonic"):
            run_text(HardwareConfig(), text)
        return
    result, _ = run_text(HardwareConfig(), text)
    assert (result.error, result.error_pc) == (code, pc)


def test_illegal_opcode_stops_fetch_after_earlier_work():
    config = HardwareConfig()
    sim = FunctionalSimulator(config)
    memory = np.zeros(4096, dtype=np.uint8)
    memory[0x800:0x804] = [1, 2, 3, 4]
    words = assemble("load mem=spad sram_addr=5 rows=1 row_bytes=4 dram_addr=0x800\nfence")
    program = b"".join(w.to_bytes(16, "little") for w in words) + bytes(16) + \
        assemble("load mem=spad sram_addr=6 rows=1 row_bytes=4 dram_addr=0x800")[0] \
        .to_bytes(16, "little")
    memory[:len(program)] = np.frombuffer(program, np.uint8)
    result = sim.run(memory, 0, 4)
    assert (result.error, result.error_pc) == (ErrorCode.ILLEGAL_INSTRUCTION, 2)
    assert sim.spad[5, :4].tolist() == [1, 2, 3, 4]
    assert not sim.spad[6].any()


def test_token_deadlock_is_detected():
    with pytest.raises(TokenDeadlock, match="deadlock"):
        run_text(HardwareConfig(), "matmul length=1 pop_prev\nload mem=spad rows=1 "
                 "row_bytes=1 dram_addr=0x800 pop_next")


def test_on_chip_state_persists_across_programs():
    config = HardwareConfig()
    _, sim = run_text(config, "load mem=acc sram_addr=3 rows=1 row_bytes=4 dram_addr=0x0")
    first = sim.acc[3, 0]
    result, _ = run_text(config, "store mem=acc sram_addr=3 rows=1 row_bytes=4 "
                         "dram_addr=0x400", sim=sim)
    assert result.error == ErrorCode.NONE
    assert int.from_bytes(result.memory[0x400:0x404].tobytes(), "little", signed=True) == first
    assert first != 0  # it held the first bytes of the program, not zeros


def test_load_spans_lines_and_zero_pads():
    config = HardwareConfig(rows=4, cols=4)
    memory_image = "load mem=spad sram_addr=8 rows=2 row_bytes=6 dram_addr=0x100 dram_stride=16"
    sim = FunctionalSimulator(config)
    memory = np.zeros(4096, dtype=np.uint8)
    memory[0x100:0x120] = np.arange(32)
    words = assemble(memory_image)
    memory[:16] = np.frombuffer(words[0].to_bytes(16, "little"), np.uint8)
    sim.run(memory, 0, 1)
    assert sim.spad[8:12].view(np.uint8).tolist() == [[0, 1, 2, 3], [4, 5, 0, 0],
                                                      [16, 17, 18, 19], [20, 21, 0, 0]]
