"""The controller's decode checks of MATMUL, LOAD and STORE words against the functional
simulator (the VECTOR checks are in test_vector_engine.py), and its shorter decode
pipelines."""

import numpy as np
import pytest

from systolic.hw.config import VECTOR_UNITS, HardwareConfig
from systolic.hw.csr import ErrorCode
from systolic.hw.isa import Memory, Opcode, encode
from systolic.sim.amaranth_sim import AmaranthBackend
from systolic.sim.functional import FunctionalSimulator

from test_accelerator import (check_error_programs, check_matmul, check_same,  # noqa: I001
                              gemm_program, text_program)
from test_vector_engine import decode_codes  # noqa: I001

#: Errors that come after decode (the functional simulator runs the transfer).
AFTER_DECODE = (ErrorCode.NONE, ErrorCode.AXI_READ, ErrorCode.AXI_WRITE)


def near(rng, end):
    """A 16-bit field value around the last legal start ``end`` (or anywhere)."""
    choice = rng.integers(0, 5)
    value = (end, end + 1, end - 1, int(rng.integers(0, max(end, 0) + 1)),
             int(rng.integers(0, 2**16)))[choice]
    return min(max(value, 0), 2**16 - 1)


def random_words(config, rng, count):
    """MATMUL, LOAD and STORE words whose ranges end at, just past or far from the end of
    their memory, with zero sizes now and then."""
    rows, ws = config.rows, config.dataflow == "ws"
    words = []
    for _ in range(count):
        opcode = (Opcode.MATMUL, Opcode.LOAD, Opcode.STORE)[rng.integers(0, 3)]
        if opcode == Opcode.MATMUL:
            length = int(rng.choice([0, 1, rng.integers(1, 40), 2**16 - 1]))
            b_lines, c_lines = (rows, length) if ws else (length, rows)
            words.append(encode(opcode, a_addr=near(rng, config.spad_lines - length),
                                b_addr=near(rng, config.spad_lines - b_lines),
                                c_addr=near(rng, config.acc_lines - c_lines), length=length,
                                accumulate=int(rng.integers(0, 2))))
        else:
            mem = Memory(int(rng.integers(0, 2)))
            lines = config.acc_lines if mem == Memory.ACC else config.spad_lines
            width = config.acc_line_bytes if mem == Memory.ACC else config.spad_line_bytes
            n = int(rng.choice([0, 1, rng.integers(1, 9), 2**16 - 1]))
            row_bytes = int(rng.choice([0, 1, rng.integers(1, 3 * width), 2**12 - 1]))
            span = n * -(-row_bytes // width)
            words.append(encode(opcode, mem=mem, rows=n, row_bytes=row_bytes,
                                sram_addr=near(rng, lines - span), dram_addr=0x100))
    return words


@pytest.mark.parametrize("config", [
    HardwareConfig(rows=4, cols=4, spad_lines=64, acc_lines=32),
    HardwareConfig(rows=3, cols=5, dataflow="os", spad_lines=128, acc_lines=16, dma_bytes=4),
], ids=["4x4ws", "3x5os"])
def test_decode_checks_match_functional(config):
    rng = np.random.default_rng(config.rows)
    words = random_words(config, rng, 400)
    functional = FunctionalSimulator(config)
    expected = []
    for value in words:
        memory = np.zeros(4096, np.uint8)
        memory[:16] = np.frombuffer(value.to_bytes(16, "little"), np.uint8)
        error = functional.run(memory, 0, 1).error
        expected.append(ErrorCode.NONE if error in AFTER_DECODE else error)
    codes = decode_codes(config, words)
    assert codes == expected
    assert {ErrorCode.NONE, ErrorCode.ILLEGAL_INSTRUCTION, ErrorCode.ACC_RANGE,
            ErrorCode.SPAD_RANGE} <= set(codes)
    matmul_codes = {code for word, code in zip(words, codes)
                    if (word & 0xF) == Opcode.MATMUL.value}
    assert {ErrorCode.SPAD_RANGE, ErrorCode.ACC_RANGE, ErrorCode.NONE} <= matmul_codes


def test_three_decode_stages_and_two_word_fetches_run_the_programs():
    """The middle settings of ``decode_stages`` and ``fetch_words`` (the defaults, 4 and 8,
    run in test_accelerator.py; the tiny profile's 2 and 1 in test_synth.py): tiled
    matmuls and every error program, exactly as the functional simulator."""
    config = HardwareConfig(rows=4, cols=4, spad_lines=64, acc_lines=32, decode_stages=3,
                            fetch_words=2, vector=dict.fromkeys(VECTOR_UNITS, False))
    rtl, functional = AmaranthBackend(config), FunctionalSimulator(config)
    check_matmul(config, rtl, gemm_program(config, 9, 17, 7, seed=3), functional)
    check_error_programs(config, rtl, functional)


def transfer_burst(count=24):
    """``(memory, prog_addr, count)`` of ``count`` independent LOADs of short rows, a FENCE
    and as many STOREs of them: the load and store units keep taking instructions as soon
    as they have room."""
    def transfers(opcode, dram_base, stride):
        return [f"{opcode} mem={'acc' if i % 3 == 0 else 'spad'} sram_addr={2 * i} "
                f"rows={1 + i % 2} row_bytes={1 + 3 * i % 7} dram_addr={dram_base + stride * i}"
                for i in range(count)]
    text = "\n".join(transfers("load", 0x800, 5) + ["fence"] + transfers("store", 0xA00, 16)
                     + ["halt"])
    return text_program(text, bytes(range(200)))


@pytest.mark.parametrize("config, fewer_costs", [
    (HardwareConfig.profile("tiny", spad_lines=128, acc_lines=128), False),
    (HardwareConfig(rows=2, cols=2, spad_lines=128, acc_lines=128, in_flight=4,
                    vector=dict.fromkeys(VECTOR_UNITS, False)), True),
], ids=["tiny", "2x2"])
def test_unit_gates_never_hold_back_an_instruction(config, fewer_costs, monkeypatch):
    """The dependency-token gates keep :func:`gate_depth` unfinished instructions per unit
    (``in_flight + 1`` for load and store): as many as the units take, so a burst of
    transfers runs cycle for cycle as with gates twice as deep, with the functional
    simulator's results. On the 2x2 configuration one entry fewer costs cycles (the depth
    is the least that works); on the tiny profile (one decode stage, no instruction queues)
    this burst takes as many cycles with one entry fewer, so only the equality holds there."""
    import systolic.hw.controller as controller

    program = transfer_burst()
    reference = FunctionalSimulator(config).run(*program)
    depth = controller.gate_depth
    cycles = []
    for scale in (lambda n: n, lambda n: 2 * n, lambda n: n - 1):
        monkeypatch.setattr(controller, "gate_depth",
                            lambda unit, in_flight: scale(depth(unit, in_flight)))
        result = AmaranthBackend(config).run(*program)
        check_same(reference, result)
        cycles.append(result.cycles)
    assert cycles[0] == cycles[1]
    if fewer_costs:
        assert cycles[2] > cycles[0]
