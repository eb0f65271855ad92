"""The matmul engine between banked SRAMs, against the functional simulator."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from systolic.hw.compute import MatmulEngine, memory_ports, transparent_accumulator
from systolic.hw.config import HardwareConfig
from systolic.hw.isa import Opcode, decode
from systolic.hw.memory import BankedMemory
from systolic.sim.functional import FunctionalSimulator
from systolic.sim.sram_access import read_lines, write_lines
from systolic.sw.assembler import assemble

# Chains that accumulate into the same lines back to back (length 1 is the read-after-write
# hazard), unsigned activations, and both banks.
PROGRAMS = {
    "ws": """matmul a_addr=40 b_addr=0 c_addr=0 length=5
             matmul a_addr=45 b_addr=4 c_addr=0 length=5 accumulate
             matmul a_addr=50 b_addr=8 c_addr=20 length=2 a_unsigned
             matmul a_addr=52 b_addr=12 c_addr=20 length=1 accumulate
             matmul a_addr=53 b_addr=16 c_addr=20 length=1 accumulate
             matmul a_addr=33 b_addr=58 c_addr=30 length=2 accumulate
             matmul a_addr=54 b_addr=21 c_addr=31 length=1 accumulate
             matmul a_addr=55 b_addr=22 c_addr=31 length=1 accumulate
             matmul a_addr=56 b_addr=23 c_addr=31 length=1 accumulate""",
    "os": """matmul a_addr=40 b_addr=0 c_addr=0 length=7
             matmul a_addr=47 b_addr=7 c_addr=0 length=2 accumulate
             matmul a_addr=50 b_addr=12 c_addr=20 length=1 a_unsigned
             matmul a_addr=52 b_addr=14 c_addr=20 length=9 accumulate
             matmul a_addr=2 b_addr=33 c_addr=26 length=3""",
}


def run_engine(config, words, spad, acc):
    """Execute MATMUL ``words`` on the engine with memories preloaded; returns the final
    accumulator and the cycle count."""
    _, spad_bits, _, acc_bits = memory_ports(config)
    m = Module()
    m.submodules.engine = engine = MatmulEngine(config)
    m.submodules.spad = spad_mem = BankedMemory(config.spad_lines, spad_bits,
                                                config.spad_banks, readers=2, writers=1,
                                                read_stages=config.read_stages)
    m.submodules.acc = acc_mem = BankedMemory(config.acc_lines, acc_bits, config.acc_banks,
                                              readers=2, writers=2,
                                              transparent=transparent_accumulator(config),
                                              read_stages=config.read_stages)
    wiring.connect(m, engine.spad_a, spad_mem.read[0])
    wiring.connect(m, engine.spad_b, spad_mem.read[1])
    wiring.connect(m, engine.acc_read, acc_mem.read[0])
    wiring.connect(m, engine.acc_write, acc_mem.write[0])
    out = {}

    async def bench(ctx):
        await write_lines(ctx, spad_mem.write[0], spad, 8)
        await write_lines(ctx, acc_mem.write[1], acc, 32)
        done = cycles = 0
        for word in words:
            ctx.set(engine.insn.valid, 1)
            ctx.set(engine.insn.payload.as_value(), word)
            while True:
                ready = ctx.get(engine.insn.ready)
                done += ctx.get(engine.done)
                await ctx.tick()
                cycles += 1
                if ready:
                    break
        ctx.set(engine.insn.valid, 0)
        while done < len(words) or not ctx.get(engine.idle):
            done += ctx.get(engine.done)
            await ctx.tick()
            cycles += 1
            assert cycles < 5000, "engine hung"
        out["acc"] = await read_lines(ctx, acc_mem.read[1], config.acc_lines, 32, config.cols,
                                      read_stages=config.read_stages)
        out["cycles"] = cycles

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out["acc"], out["cycles"]


def _config_id(config):
    return (f"{config.rows}x{config.cols}{config.dataflow}"
            + ("-1stage" if config.result_stages == 1 else "")
            + f"-read{config.read_stages}")


CONFIGS = [
    HardwareConfig(rows=4, cols=4, spad_lines=64, acc_lines=32),
    HardwareConfig(rows=3, cols=5, dataflow="os", spad_lines=64, acc_lines=32),
    HardwareConfig(rows=5, cols=3, spad_lines=64, spad_banks=1, acc_lines=32, acc_banks=1),
    # One row: single-row tiles follow each other every cycle, so a length-1 accumulate
    # reads the line the previous one writes in the next cycles, or in that very cycle
    # (all forwarded: the memory is not transparent).
    HardwareConfig(rows=1, cols=3, spad_lines=64, acc_lines=32),
    HardwareConfig(rows=1, cols=3, spad_lines=64, acc_lines=32, read_stages=1),
    # A one-stage result writer: with one read stage the same chains read the line written
    # in their cycle from the memory's transparent port; with two the engine forwards it
    # and the line written in the next cycle.
    HardwareConfig(rows=1, cols=3, spad_lines=64, acc_lines=32, result_stages=1,
                   read_stages=1),
    HardwareConfig(rows=1, cols=3, spad_lines=64, acc_lines=32, result_stages=1),
    HardwareConfig(rows=3, cols=5, dataflow="os", spad_lines=64, acc_lines=32,
                   result_stages=1, read_stages=1),
    HardwareConfig(rows=3, cols=5, dataflow="os", spad_lines=64, acc_lines=32,
                   result_stages=1),
    HardwareConfig(rows=2, cols=2, spad_lines=64, acc_lines=32, result_stages=1,
                   read_stages=1),
    HardwareConfig(rows=2, cols=2, spad_lines=64, acc_lines=32, read_stages=1),
]


def random_chains(config, rng, count=40):
    """``count`` MATMULs writing (mostly accumulating) into the same few accumulator lines
    with random lengths: rows meet the line an earlier row writes at every distance, so
    each forwarding case of the result writer (and the memory's own) is exercised."""
    lines = []
    for _ in range(count):
        length = int(rng.integers(1, 4))
        results = length if config.dataflow == "ws" else config.rows
        b_lines = config.rows if config.dataflow == "ws" else length
        flags = " accumulate" * (rng.random() < 0.85) + " a_unsigned" * (rng.random() < 0.2)
        lines.append(f"matmul a_addr={rng.integers(0, config.spad_lines - length + 1)} "
                     f"b_addr={rng.integers(0, config.spad_lines - b_lines + 1)} "
                     f"c_addr={rng.integers(0, 6 - results + config.rows)}"
                     f" length={length}{flags}")
    return "\n".join(lines)


@pytest.mark.parametrize("source", ["fixed", "random"])
@pytest.mark.parametrize("config", CONFIGS, ids=_config_id)
def test_engine_matches_functional(config, source):
    rng = np.random.default_rng(config.rows * 10 + config.cols)
    functional = FunctionalSimulator(config)
    functional.spad[:] = rng.integers(-128, 128, functional.spad.shape)
    functional.acc[:] = rng.integers(-2**31, 2**31, functional.acc.shape)
    spad, acc = functional.spad.copy(), functional.acc.copy()
    words = assemble(PROGRAMS[config.dataflow] if source == "fixed"
                     else random_chains(config, rng))
    assert all(decode(w)[0] == Opcode.MATMUL for w in words)
    memory = np.zeros(4096, np.uint8)
    program = np.frombuffer(b"".join(w.to_bytes(16, "little") for w in words), np.uint8)
    memory[:len(program)] = program
    assert functional.run(memory, 0, len(words)).error == 0
    result, _ = run_engine(config, words, spad, acc)
    assert np.array_equal(result, functional.acc.astype(np.int64))
    assert not np.array_equal(result, acc)  # the program changed the accumulator
