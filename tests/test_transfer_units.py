"""Fetch, load and store units, the repacker they share and the read arbiter, in Amaranth's
simulator: the units against SRAMs and the AXI memory model (random latency and
back-pressure) behind the DMA engines, compared with the functional simulator; AXI errors;
throughput; and Verilog that Icarus and Verilator accept."""

import random
import subprocess

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from systolic.hw.compute import memory_ports
from systolic.hw.config import HardwareConfig
from systolic.hw.dma import DMAReader, DMAWriter
from systolic.hw.fetch import Fetch
from systolic.hw.isa import Memory, Opcode, decode, encode
from systolic.hw.load import LoadUnit
from systolic.hw.memory import BankedMemory, Repacker
from systolic.hw.read_arbiter import ReadArbiter
from systolic.hw.store import StoreUnit
from systolic.sim import SimulationHang
from systolic.sim.axi_models import AXI4MemoryModel
from systolic.sim.functional import FunctionalSimulator
from systolic.sim.tools import require, verilator_env

#: Host bytes the transfers use (two 4 KiB pages, so rows cross the boundary); the program
#: for the functional simulator follows them.
DATA_SPAN = 2 * 4096
TIMEOUT = 3000

# Scratchpad line 5 bytes < bus 8 < accumulator line 12 (not a multiple of the bus);
# line = bus = 4 and accumulator 16 (a multiple); lines of 6 and 24 bytes on a 16-byte bus.
CONFIGS = [
    HardwareConfig(rows=5, cols=3, spad_lines=64, acc_lines=32, dma_bytes=8),
    HardwareConfig(rows=4, cols=4, spad_lines=64, acc_lines=32, dma_bytes=4),
    HardwareConfig(rows=3, cols=6, spad_lines=64, spad_banks=1, acc_lines=32, acc_banks=1,
                   dma_bytes=16),
]


def config_id(config):
    return f"{config.rows}x{config.cols}-bus{config.dma_bytes}"


def line_bytes(config, mem):
    return config.acc_line_bytes if mem == Memory.ACC.value else config.spad_line_bytes


def memory_lines(config, mem):
    return config.acc_lines if mem == Memory.ACC.value else config.spad_lines


# -- stream sources and sinks --------------------------------------------------------------

def random_transfer(rng, config, opcode, *, max_rows=5):
    """A LOAD/STORE that passes the dispatcher's checks: rows of 1..3 lines at any host
    alignment and stride (contiguous, gapped, overlapping or zero) inside DATA_SPAN."""
    mem = int(rng.integers(0, 2))
    width = line_bytes(config, mem)
    row_bytes = int(rng.integers(1, 3 * width + 1))
    per_row = -(-row_bytes // width)
    rows = int(rng.integers(1, min(max_rows, memory_lines(config, mem) // per_row) + 1))
    sram_addr = int(rng.integers(0, memory_lines(config, mem) - rows * per_row + 1))
    stride = int(rng.choice([row_bytes, row_bytes + int(rng.integers(1, 40)),
                             int(rng.integers(0, row_bytes + 1))]))
    reach = (rows - 1) * stride + row_bytes
    dram_addr = int(rng.integers(0, DATA_SPAN - reach + 1))
    return encode(opcode, mem=mem, sram_addr=sram_addr, rows=rows, row_bytes=row_bytes,
                  dram_addr=dram_addr, dram_stride=stride)


def functional_run(config, words, memory, spad, acc):
    """The functional simulator's result of ``words`` (a LOAD/STORE program)."""
    functional = FunctionalSimulator(config)
    functional.spad[:], functional.acc[:] = spad, acc
    image = np.concatenate([memory, np.frombuffer(
        b"".join(w.to_bytes(16, "little") for w in words), np.uint8)])
    result = functional.run(image, len(memory), len(words))
    assert result.error == 0
    return functional, result.memory[:len(memory)]


def lines_to_ints(array):
    return [int.from_bytes(row.tobytes(), "little") for row in array]


def ints_to_lines(values, width):
    return np.frombuffer(b"".join(v.to_bytes(width, "little") for v in values),
                         np.uint8).reshape(len(values), width)


class TransferBench:
    """A load or store unit with both SRAMs and a DMA engine on the AXI memory model; the
    testbench preloads the SRAMs, feeds instructions with random gaps, records the cycles of
    ``done`` and ``error`` pulses, and reads the SRAMs back."""

    def __init__(self, config, unit_class, memory, *, error_ranges=(), seed=0, latency=3,
                 ready_probability=0.8, valid_probability=0.8, max_burst=16):
        self.config, self.memory = config, memory
        spad_addr, spad_bits, acc_addr, acc_bits = memory_ports(config)
        m = Module()
        m.submodules.unit = self.unit = unit = unit_class(config)
        m.submodules.spad = self.spad = BankedMemory(config.spad_lines, spad_bits,
                                                     config.spad_banks, readers=2, writers=2)
        m.submodules.acc = self.acc = BankedMemory(config.acc_lines, acc_bits, config.acc_banks,
                                                   readers=2, writers=2)
        load = unit_class is LoadUnit
        engine = (DMAReader if load else DMAWriter)(config.addr_width, config.dma_bytes,
                                                    max_burst=max_burst, max_outstanding=4)
        m.submodules.engine = engine
        wiring.connect(m, unit.dma_cmd, engine.cmd)
        if load:
            wiring.connect(m, engine.data, unit.dma_data)
            wiring.connect(m, unit.spad_write, self.spad.write[0])
            wiring.connect(m, unit.acc_write, self.acc.write[0])
        else:
            wiring.connect(m, unit.dma_data, engine.data)
            wiring.connect(m, engine.done, unit.dma_done)
            wiring.connect(m, unit.spad_read, self.spad.read[0])
            wiring.connect(m, unit.acc_read, self.acc.read[0])
        self.model = AXI4MemoryModel(engine.bus, memory, error_ranges=error_ranges,
                                     ready_probability=ready_probability,
                                     valid_probability=valid_probability, read_latency=latency,
                                     write_latency=latency, seed=seed)
        self.sim = Simulator(m)
        self.sim.add_clock(1e-8)
        self.sim.add_process(self.model.process)
        self.rng = random.Random(seed)

    async def _write_lines(self, ctx, port, lines):
        ctx.set(port.valid, 1)
        for addr, line in enumerate(lines):
            ctx.set(port.payload.addr, addr)
            ctx.set(port.payload.data, line)
            await ctx.tick()
        ctx.set(port.valid, 0)

    async def _read_lines(self, ctx, port, count):
        lines = []
        ctx.set(port.en, 1)
        for addr in range(count):
            ctx.set(port.addr, addr)
            await ctx.tick()
            lines.append(ctx.get(port.data))
        ctx.set(port.en, 0)
        return lines

    def run(self, words, spad, acc, gap=0.3):
        """Execute ``words`` with the SRAMs preloaded with ``spad`` and ``acc`` (line byte
        arrays); returns (spad, acc) after, and per instruction its (accept cycle, done cycle,
        error)."""
        out = {}
        unit = self.unit

        async def bench(ctx):
            await self._write_lines(ctx, self.spad.write[1], lines_to_ints(spad))
            await self._write_lines(ctx, self.acc.write[1], lines_to_ints(acc))
            pending, accepted, done, cycle, idle = list(words), [], [], 0, 0
            offering = False
            while len(done) < len(words):
                if not offering and pending and self.rng.random() >= gap:
                    offering = True
                    ctx.set(unit.insn.payload.as_value(), pending[0])
                ctx.set(unit.insn.valid, offering)
                _, _, ready, done_pulse, error_pulse = await ctx.tick().sample(
                    unit.insn.ready, unit.done, unit.error)
                if offering and ready:
                    pending.pop(0)
                    accepted.append(cycle)
                    offering = False
                    ctx.set(unit.insn.valid, 0)
                assert not error_pulse or done_pulse, "error without done"
                if done_pulse:
                    done.append((cycle, bool(error_pulse)))
                    idle = 0
                idle += 1
                cycle += 1
                if idle > TIMEOUT:
                    raise SimulationHang(f"{len(done)} of {len(words)} instructions done")
            for _ in range(5):  # no spurious pulses after the last instruction
                _, _, done_pulse, error_pulse = await ctx.tick().sample(unit.done, unit.error)
                assert not done_pulse and not error_pulse
            out["spad"] = await self._read_lines(ctx, self.spad.read[1], len(spad))
            out["acc"] = await self._read_lines(ctx, self.acc.read[1], len(acc))
            out["timing"] = [(a, d, e) for a, (d, e) in zip(accepted, done)]

        self.sim.add_testbench(bench)
        self.sim.run()
        return (ints_to_lines(out["spad"], spad.shape[1]), ints_to_lines(out["acc"], acc.shape[1]),
                out["timing"])


def random_state(config, seed):
    """Host memory and SRAM contents (line bytes) at random."""
    rng = np.random.default_rng(seed)
    memory = rng.integers(0, 256, DATA_SPAN, dtype=np.uint8)
    spad = rng.integers(0, 256, (config.spad_lines, config.spad_line_bytes), dtype=np.uint8)
    acc = rng.integers(0, 256, (config.acc_lines, config.acc_line_bytes), dtype=np.uint8)
    return memory, spad, acc


def functional_state(functional):
    return functional.spad.view(np.uint8), functional.acc.view(np.uint8).reshape(
        functional.acc.shape[0], -1)


def touches(addr, length, data_bytes, ranges):
    """Does the bus-word span of a region overlap one of the byte ``ranges``?"""
    start = addr // data_bytes * data_bytes
    stop = -(-(addr + length) // data_bytes) * data_bytes
    return any(lo < stop and start < hi for lo, hi in ranges)


def row_regions(word):
    """Host byte regions ``(addr, length)`` of the rows of a LOAD/STORE word."""
    _, fields = decode(word)
    return [(fields["dram_addr"] + i * fields["dram_stride"], fields["row_bytes"])
            for i in range(fields["rows"])]


# -- repacker ---------------------------------------------------------------------------------

def repack_reference(row, width):
    """Output groups ``(bytes, count, last)`` of a row of bytes regrouped ``width`` at a
    time, the last one zero-padded."""
    groups = []
    for at in range(0, len(row), width):
        chunk = row[at:at + width]
        groups.append((bytes(chunk) + bytes(width - len(chunk)), len(chunk),
                       at + width >= len(row)))
    return groups


@pytest.mark.parametrize("in_bytes, out_widths, unit", [
    (8, (5, 12), 1), (4, (4, 16), 4), (16, (6, 24), 2), (12, (8,), 4), (24, (16,), 8),
    (32, (16,), 16),
])
def test_repacker(in_bytes, out_widths, unit):
    """Random rows cut into inputs of ``in_bytes`` (row ends shorter), random output width
    per row, random gaps and stalls: the groups equal the reference, garbage in unused
    input lanes never leaks, errors are ORed per row."""
    rng = random.Random(in_bytes * 100 + len(out_widths))
    dut = Repacker(in_bytes, out_widths, unit)
    rows = []
    for _ in range(40):
        select = rng.randrange(len(out_widths))
        rows.append((select, bytes(rng.randrange(256) for _ in range(
            rng.randint(1, 3 * max(out_widths) + in_bytes))), rng.random() < 0.2))
    # Non-final inputs carry a multiple of unit bytes: full inputs of in_bytes do.
    inputs = []
    for select, row, error in rows:
        for at in range(0, len(row), in_bytes):
            chunk = row[at:at + in_bytes]
            garbage = bytes(rng.randrange(1, 256) for _ in range(in_bytes - len(chunk)))
            last = at + in_bytes >= len(row)
            inputs.append({"data": int.from_bytes(chunk + garbage, "little"),
                           "count": len(chunk), "last": last,
                           "error": error and last, "width": select})
    expected = []
    for select, row, error in rows:
        expected += [(data, count, last, error and last, out_widths[select])
                     for data, count, last in repack_reference(row, out_widths[select])]
    received = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def source(ctx):
        for payload in inputs:
            while rng.random() < 0.2:
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            for name, value in payload.items():
                ctx.set(getattr(dut.i.payload, name), value)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        idle = 0
        while len(received) < len(expected):
            ready = rng.random() >= 0.3
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            idle += 1
            if valid and ready:
                received.append((payload.data, payload.count, payload.last, payload.error))
                idle = 0
            assert idle < 100, "repacker hung"

    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert len(received) == len(expected)
    for index, ((data, count, last, error, width), (got, got_count, got_last, got_error)) in \
            enumerate(zip(expected, received)):
        assert got.to_bytes(max(out_widths), "little")[:width] == data, f"group {index}"
        assert (got_count, got_last, got_error) == (count, last, error), f"group {index}"


# -- load and store units ----------------------------------------------------------------------

def run_unit(config, unit_class, words, seed, **bench_options):
    """Run ``words`` on the unit and on the functional simulator from the same random state;
    returns (hardware (spad, acc, memory), functional (spad, acc, memory), timing)."""
    memory, spad, acc = random_state(config, seed)
    functional = FunctionalSimulator(config)
    functional.spad.view(np.uint8)[:] = spad
    functional.acc.view(np.uint8).reshape(acc.shape)[:] = acc
    image = np.concatenate([memory, np.frombuffer(
        b"".join(w.to_bytes(16, "little") for w in words), np.uint8)])
    result = functional.run(image, DATA_SPAN, len(words))
    assert result.error == 0
    bench = TransferBench(config, unit_class, memory, seed=seed, **bench_options)
    hw_spad, hw_acc, timing = bench.run(words, spad, acc)
    return ((hw_spad, hw_acc, memory), (*functional_state(functional), result.memory[:DATA_SPAN]),
            timing)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_load_matches_functional(config):
    seed = config.rows * 10 + config.cols
    rng = np.random.default_rng(seed)
    words = [random_transfer(rng, config, Opcode.LOAD) for _ in range(14)]
    assert {decode(w)[1]["mem"] for w in words} == {0, 1}
    hardware, functional, timing = run_unit(config, LoadUnit, words, seed)
    for name, got, expected in zip(("spad", "acc", "memory"), hardware, functional):
        np.testing.assert_array_equal(got, expected, err_msg=name)
    assert not any(error for _, _, error in timing)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_store_matches_functional(config):
    seed = config.rows * 10 + config.cols + 1
    rng = np.random.default_rng(seed)
    words = [random_transfer(rng, config, Opcode.STORE) for _ in range(14)]
    hardware, functional, timing = run_unit(config, StoreUnit, words, seed)
    for name, got, expected in zip(("spad", "acc", "memory"), hardware, functional):
        np.testing.assert_array_equal(got, expected, err_msg=name)
    assert not any(error for _, _, error in timing)
