"""Fetch, load and store units, the repacker they share and the read arbiter, in Amaranth's
simulator: the units against SRAMs and the AXI memory model (random latency and
back-pressure) behind the DMA engines, compared with the functional simulator; AXI errors;
throughput; and Verilog that Icarus and Verilator accept."""

import gc
import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.sim import Simulator

from systolic.hw.compute import memory_ports
from systolic.hw.config import HardwareConfig
from systolic.hw.dma import DMAReader, DMAWriter
from systolic.hw.fetch import Fetch
from systolic.hw.isa import Memory, Opcode, decode, encode
from systolic.hw.load import LoadUnit, dma_length_width
from systolic.hw.memory import (AlignedRepacker, BankedMemory, LineReader, Repacker,
                                StreamQueue)
from systolic.hw.read_arbiter import ReadArbiter
from systolic.hw.store import StoreUnit
from systolic.sim import SimulationHang
from systolic.sim.axi_models import AXI4MemoryModel
from systolic.sim.functional import FunctionalSimulator
from systolic.sim.sram_access import read_lines, write_lines

from test_verilog import check_tools_accept

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
    # AlignedRepacker: 2-byte lines gathered from / split out of 4-byte beats and the
    # other way round for 8-byte lines (as in the tiny profile); 4- and 16-byte lines on
    # an 8-byte bus.
    HardwareConfig.profile("tiny", spad_lines=64, acc_lines=32),
    HardwareConfig(rows=4, cols=4, spad_lines=64, acc_lines=32, aligned_repack=True),
]


def config_id(config):
    aligned = "-aligned" if config.aligned_repack else ""
    return f"{config.rows}x{config.cols}-bus{config.dma_bytes}{aligned}"


def line_bytes(config, mem):
    return config.acc_line_bytes if mem == Memory.ACC.value else config.spad_line_bytes


def memory_lines(config, mem):
    """Lines the transfers may use: all but the last, which the contention port writes."""
    return (config.acc_lines if mem == Memory.ACC.value else config.spad_lines) - 1


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


def functional_reference(config, words, memory, spad, acc):
    """``(spad, acc, memory)`` as line bytes after the functional simulator ran ``words`` (a
    LOAD/STORE program, placed after ``memory``) from this state."""
    functional = FunctionalSimulator(config)
    functional.spad.view(np.uint8)[:] = spad
    functional.acc.view(np.uint8).reshape(acc.shape)[:] = acc
    image = np.concatenate([memory, np.frombuffer(
        b"".join(w.to_bytes(16, "little") for w in words), np.uint8)])
    result = functional.run(image, len(memory), len(words))
    assert result.error == 0
    return (functional.spad.view(np.uint8), functional.acc.view(np.uint8).reshape(acc.shape),
            result.memory[:len(memory)])


def lines_to_ints(array):
    return [int.from_bytes(row.tobytes(), "little") for row in array]


def ints_to_lines(values, width):
    return np.frombuffer(b"".join(v.to_bytes(width, "little") for v in values),
                         np.uint8).reshape(len(values), width)


class Bench:
    """Some of a load unit, a store unit and a fetch unit with both SRAMs and DMA engines on
    the AXI memory model (fetch and load share the reader through a :class:`ReadArbiter`).
    Testbench coroutines preload and read back the SRAMs, feed a unit instructions with
    random gaps recording its ``done``/``error`` pulses, and run fetch scripts.

    The units use the SRAMs' second ports; with ``contention`` the first (higher priority)
    ports read and write the last line of each memory in that fraction of the cycles, so
    the units also see refused accesses."""

    def __init__(self, config, memory, *, units=("load",), error_ranges=(), seed=0, latency=3,
                 ready_probability=0.8, valid_probability=0.8, max_burst=16, contention=0.0):
        self.config, self.memory = config, memory
        self.models, self.processes = [], []
        spad_addr, spad_bits, acc_addr, acc_bits = memory_ports(config)
        m = Module()
        m.submodules.spad = self.spad = BankedMemory(config.spad_lines, spad_bits,
                                                     config.spad_banks, readers=3, writers=3,
                                                     read_stages=config.read_stages)
        m.submodules.acc = self.acc = BankedMemory(config.acc_lines, acc_bits, config.acc_banks,
                                                   readers=3, writers=3,
                                                   read_stages=config.read_stages)
        engine = dict(addr_width=config.addr_width, data_bytes=config.dma_bytes,
                      max_burst=max_burst, max_outstanding=4,
                      length_width=dma_length_width(config))
        self.units = {}
        readers = []
        if "fetch" in units:
            m.submodules.fetch = fetch = self.units["fetch"] = Fetch(config)
            readers.append(fetch)
        if "load" in units:
            m.submodules.load = load = self.units["load"] = LoadUnit(config)
            readers.append(load)
            wiring.connect(m, load.spad_write, self.spad.write[1])
            wiring.connect(m, load.acc_write, self.acc.write[1])
        if "store" in units:
            m.submodules.store = store = self.units["store"] = StoreUnit(config)
            m.submodules.writer = writer = DMAWriter(**engine)
            wiring.connect(m, store.dma_cmd, writer.cmd)
            wiring.connect(m, store.dma_data, writer.data)
            wiring.connect(m, writer.done, store.dma_done)
            wiring.connect(m, store.spad_read, self.spad.read[1])
            wiring.connect(m, store.acc_read, self.acc.read[1])
            self._model(writer.bus, error_ranges, ready_probability, valid_probability,
                        latency, seed)
        if readers:
            m.submodules.reader = reader = DMAReader(**engine)
            if len(readers) == 1:
                wiring.connect(m, readers[0].dma_cmd, reader.cmd)
                wiring.connect(m, reader.data, readers[0].dma_data)
            else:
                m.submodules.arbiter = arbiter = self.arbiter = ReadArbiter(
                    config.addr_width, config.dma_bytes, length_width=engine["length_width"])
                for client, unit in zip(arbiter.clients, readers):
                    wiring.connect(m, unit.dma_cmd, client.cmd)
                    wiring.connect(m, client.data, unit.dma_data)
                wiring.connect(m, arbiter.cmd, reader.cmd)
                wiring.connect(m, reader.data, arbiter.data)
            self._model(reader.bus, error_ranges, ready_probability, valid_probability,
                        latency, seed + 1)
        self.module = m
        self.rng = random.Random(seed)
        if contention:
            self.processes.append(self._contend(contention))

    def _contend(self, fraction):
        async def process(ctx):
            ports = [(memory.read[0], memory.write[0], memory.lines - 1)
                     for memory in (self.spad, self.acc)]
            for read, write, last in ports:
                ctx.set(read.addr, last)
                ctx.set(write.payload.addr, last)
            async for _ in ctx.tick():
                for read, write, _ in ports:
                    ctx.set(read.en, self.rng.random() < fraction)
                    ctx.set(write.valid, self.rng.random() < fraction)
        return process

    def _model(self, bus, error_ranges, ready_probability, valid_probability, latency, seed):
        model = AXI4MemoryModel(
            bus, self.memory, error_ranges=error_ranges, ready_probability=ready_probability,
            valid_probability=valid_probability, read_latency=latency, write_latency=latency,
            seed=seed)
        self.models.append(model)
        self.processes.append(model.process)

    def run(self, *testbenches, processes=()):
        sim = Simulator(self.module)
        sim.add_clock(1e-8)
        for process in (*self.processes, *processes):
            sim.add_process(process)
        for testbench in testbenches:
            sim.add_testbench(testbench)
        sim.run()

    async def preload(self, ctx, spad, acc):
        await write_lines(ctx, self.spad.write[2], lines_to_ints(spad))
        await write_lines(ctx, self.acc.write[2], lines_to_ints(acc))

    async def read_back(self, ctx, spad, acc):
        stages = self.config.read_stages
        return (ints_to_lines(await read_lines(ctx, self.spad.read[2], len(spad),
                                               read_stages=stages), spad.shape[1]),
                ints_to_lines(await read_lines(ctx, self.acc.read[2], len(acc),
                                               read_stages=stages), acc.shape[1]))

    async def feed(self, ctx, unit, words, gap=0.3):
        """Offer ``words`` to ``unit`` until all are done; returns per instruction its
        (accept cycle, done cycle, error)."""
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
        return [(a, d, e) for a, (d, e) in zip(accepted, done)]


    async def fetch(self, ctx, programs, stall=0.3):
        """Run fetch ``programs`` ``(prog_addr, count, cancel_after, stop)`` one after the
        other, taking words with random stalls; a program with ``cancel_after`` words taken
        is cancelled by ``stop`` (or, without it, by the next program's ``start``). Returns
        per program the ``(pc, word)`` taken and the ``error_pc`` reported (or None)."""
        fetch = self.units["fetch"]
        results = []
        for addr, count, cancel_after, stop in programs:
            ctx.set(fetch.prog_addr, addr)
            ctx.set(fetch.count, count)
            ctx.set(fetch.start, 1)
            await ctx.tick()
            ctx.set(fetch.start, 0)
            words, error, idle = [], None, 0
            while True:
                if len(words) == cancel_after:
                    ctx.set(fetch.insn.ready, 0)
                    if stop:
                        ctx.set(fetch.stop, 1)
                        await ctx.tick()
                        ctx.set(fetch.stop, 0)
                    break
                ready = self.rng.random() >= stall
                ctx.set(fetch.insn.ready, ready)
                _, _, valid, payload, fetched, busy, error_pulse, error_pc = \
                    await ctx.tick().sample(fetch.insn.valid, fetch.insn.payload, fetch.fetched,
                                            fetch.busy, fetch.error, fetch.error_pc)
                assert fetched == (valid and ready)
                idle += 1
                if valid and ready:
                    words.append((payload.pc, payload.word))
                    idle = 0
                if error_pulse:
                    assert error is None, "second error"
                    error = error_pc
                if not busy:
                    break
                if idle > TIMEOUT:
                    raise SimulationHang(f"fetch stuck after {len(words)} words")
            results.append((words, error))
        for _ in range(TIMEOUT):  # a cancelled fetch drains its commands
            _, _, busy, valid = await ctx.tick().sample(fetch.busy, fetch.insn.valid)
            assert not valid
            if not busy:
                return results
        raise SimulationHang("fetch never became idle")


def random_state(config, seed):
    """Host memory and SRAM contents (line bytes) at random."""
    rng = np.random.default_rng(seed)
    memory = rng.integers(0, 256, DATA_SPAN, dtype=np.uint8)
    spad = rng.integers(0, 256, (config.spad_lines, config.spad_line_bytes), dtype=np.uint8)
    acc = rng.integers(0, 256, (config.acc_lines, config.acc_line_bytes), dtype=np.uint8)
    return memory, spad, acc


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


@pytest.mark.parametrize("block_ram", [False, True])
@pytest.mark.parametrize("depth, read_stages", [(3, 1), (4, 1), (4, 2)])
def test_line_reader_streams_lines_in_order(block_ram, depth, read_stages):
    """A LineReader (its queue in registers, or in block RAM as with queue_ram_width) under
    random address offers, port refusals and back-pressure delivers every line with its
    tag, in order; with nothing holding it back it streams one line per cycle (``depth``
    ``read_stages + 2`` suffices), a line leaving ``read_stages + 1`` cycles after its read
    was issued (a cycle more in block RAM; lines still queued may add a cycle)."""
    from amaranth.hdl import Signal
    from amaranth.lib.memory import Memory as RAM
    rng = random.Random(depth * 2 + block_ram + 10 * (read_stages - 1))
    contents = [rng.randrange(1 << 12) for _ in range(64)]
    m = Module()
    m.submodules.reader = reader = LineReader(6, 12, data.StructLayout({"t": 4}),
                                              block_ram=block_ram, depth=depth,
                                              read_stages=read_stages)
    m.submodules.ram = ram = RAM(shape=12, depth=64, init=contents)
    read = ram.read_port()
    port_ready = Signal()
    m.d.comb += [read.addr.eq(reader.port.addr), read.en.eq(reader.port.en & port_ready),
                 reader.port.ready.eq(port_ready)]
    data_out = read.data
    for _ in range(read_stages - 1):  # a memory's second read stage: its output registered
        registered = Signal.like(read.data)
        m.d.sync += registered.eq(data_out)
        data_out = registered
    m.d.comb += reader.port.data.eq(data_out)
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sent, received = [], []  # (line, tag, cycle)

    async def testbench(ctx):
        for cycle in range(2500):
            steady = cycle >= 2000  # from here on everything is ready
            busy = cycle // 100 % 2
            addr, tag = rng.randrange(64), rng.randrange(16)
            ctx.set(reader.addrs.valid, steady or rng.random() < (0.9 if busy else 0.4))
            ctx.set(reader.addrs.payload, {"addr": addr, "tag": {"t": tag}})
            ctx.set(port_ready, steady or rng.random() < 0.8)
            ctx.set(reader.lines.ready, steady or rng.random() < (0.3 if busy else 0.9))
            if ctx.get(reader.addrs.valid) and ctx.get(reader.addrs.ready):
                sent.append((contents[addr], tag, cycle))
            if ctx.get(reader.lines.valid) and ctx.get(reader.lines.ready):
                received.append((ctx.get(reader.lines.payload.data),
                                 ctx.get(reader.lines.payload.tag.t), cycle))
            await ctx.tick()

    sim.add_testbench(testbench)
    sim.run()
    assert len(received) > 1000
    assert [line[:2] for line in received] == [line[:2] for line in sent[:len(received)]]
    late = [(read[2], out[2]) for read, out in zip(sent, received) if read[2] >= 2100]
    # (Lines still queued from the random phase may add to the first reads' latency.)
    latencies = {out - read for read, out in late}
    base = read_stages + 1 + block_ram
    assert len(late) > 390 and len(latencies) == 1 and latencies <= {base, base + 1}
    assert [out for _, out in late] == list(range(late[0][1], late[0][1] + len(late)))


@pytest.mark.parametrize("depth, block_ram", [(2, False), (3, False), (4, True)])
def test_sliced_and_idle_zero_stream_queues_are_the_queue(depth, block_ram):
    """A StreamQueue cut into slices (each with its own control), one whose payload is zero
    while not valid (``idle_zero``: distributed RAM, read asynchronously) and the same
    queue whole, fed the same random offers and back-pressure: the same handshakes every
    cycle and the same payloads, in order. (That synthesis keeps the slices' control apart:
    tests/test_synth.py::test_stream_queue_slices_keep_their_own_control.)"""
    layout = data.StructLayout({"a": 13, "b": signed(7), "c": 1})
    rng = random.Random(depth)
    m = Module()
    m.submodules.whole = whole = StreamQueue(layout, depth, block_ram=block_ram)
    m.submodules.sliced = sliced = StreamQueue(layout, depth, block_ram=block_ram, slices=3)
    m.submodules.zeroed = zeroed = StreamQueue(layout, depth, slices=2, idle_zero=True)
    queues = (whole, sliced, zeroed)
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sent, received = [], []

    async def testbench(ctx):
        for cycle in range(2000):
            valid, ready = rng.random() < 0.6, rng.random() < (0.3 if cycle // 200 % 2 else 0.9)
            payload = {"a": rng.randrange(1 << 13), "b": rng.randrange(-64, 64),
                       "c": rng.randrange(2)}
            for queue in queues:
                ctx.set(queue.i.valid, valid)
                ctx.set(queue.i.payload, payload)
                ctx.set(queue.o.ready, ready)
            handshakes = {(ctx.get(q.i.ready), ctx.get(q.o.valid)) for q in queues}
            assert len(handshakes) == 1, cycle
            if not ctx.get(zeroed.o.valid):
                assert ctx.get(zeroed.o.payload.as_value()) == 0, cycle
            if valid and ctx.get(sliced.i.ready):
                sent.append(payload)
            if ready and ctx.get(sliced.o.valid):
                assert len({ctx.get(q.o.payload.as_value()) for q in queues}) == 1, cycle
                out = ctx.get(sliced.o.payload)
                received.append({"a": out.a, "b": out.b, "c": out.c})
            await ctx.tick()

    sim.add_testbench(testbench)
    sim.run()
    assert len(received) > 500 and received == sent[:len(received)]
    with pytest.raises(ValueError, match="slices must be an integer from 1 to the payload's 21"):
        StreamQueue(layout, slices=22)
    with pytest.raises(ValueError, match="idle_zero reads its entries asynchronously"):
        StreamQueue(layout, 4, block_ram=True, idle_zero=True)


@pytest.mark.parametrize("in_bytes, out_widths, unit", [
    (8, (5, 12), 1), (4, (4, 16), 4), (16, (6, 24), 2), (12, (8,), 4), (24, (16,), 8),
    (32, (16,), 16),
])
def test_repacker(in_bytes, out_widths, unit):
    """Random rows cut into inputs of ``in_bytes`` (row ends shorter), random output width
    per row, random gaps and stalls: the groups equal the reference, garbage in unused
    input lanes never leaks, errors are ORed per row."""
    check_repacker(Repacker(in_bytes, out_widths, unit), in_bytes, out_widths, (in_bytes,),
                   random.Random(in_bytes * 100 + len(out_widths)))


@pytest.mark.parametrize("in_bytes, out_widths, groups", [
    (4, (2, 8), (4,)),          # the tiny profile's load: beats into lines
    (8, (4,), (2, 8)),          # its store: 2- and 8-byte lines into beats
    (8, (4, 16), (8,)), (16, (4,), (4, 16)), (4, (4, 32), (4,)), (32, (16,), (32,)),
    (16, (2, 64), (16,)), (8, (8,), (1, 8)),
    (16, (4, 8), (16,)),        # inputs only split (the vector engine's regroup)
])
def test_aligned_repacker(in_bytes, out_widths, groups):
    """As test_repacker, for rows whose inputs are whole groups of one of ``groups`` bytes
    each (so that groups and output widths divide one another)."""
    unit = min(groups)
    check_repacker(AlignedRepacker(in_bytes, out_widths, unit), in_bytes, out_widths, groups,
                   random.Random(in_bytes * 100 + len(out_widths) + unit))


@pytest.mark.filterwarnings("ignore:.*created but never used")  # the half-built components
def test_aligned_repacker_rejects_widths_that_do_not_divide():
    with pytest.raises(ValueError, match="powers of two"):
        AlignedRepacker(4, (5,), 1)
    with pytest.raises(ValueError, match="unit"):
        AlignedRepacker(4, (4,), 8)
    gc.collect()  # report the half-built components while their warning is filtered


def check_repacker(dut, in_bytes, out_widths, groups, rng):
    """Random rows, each cut into inputs of a random one of ``groups`` bytes (row ends
    shorter) in the low lanes of ``in_bytes``-byte inputs, random output width per row,
    random gaps and stalls: the groups equal the reference, garbage in unused input lanes
    never leaks, errors are ORed per row."""
    rows = []
    for _ in range(40):
        select = rng.randrange(len(out_widths))
        rows.append((select, rng.choice(groups), bytes(rng.randrange(256) for _ in range(
            rng.randint(1, 3 * max(out_widths) + in_bytes))), rng.random() < 0.2))
    inputs = []
    for select, group, row, error in rows:
        for at in range(0, len(row), group):
            chunk = row[at:at + group]
            garbage = bytes(rng.randrange(1, 256) for _ in range(in_bytes - len(chunk)))
            last = at + group >= len(row)
            inputs.append({"data": int.from_bytes(chunk + garbage, "little"),
                           "count": len(chunk), "last": last,
                           "error": error and last, "width": select})
    expected = []
    for select, _, row, error in rows:
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
    reference = functional_reference(config, words, memory, spad, acc)
    kind = "load" if unit_class is LoadUnit else "store"
    bench = Bench(config, memory, units=(kind,), seed=seed, **bench_options)
    out = {}

    async def testbench(ctx):
        await bench.preload(ctx, spad, acc)
        out["timing"] = await bench.feed(ctx, bench.units[kind], words)
        out["spad"], out["acc"] = await bench.read_back(ctx, spad, acc)

    bench.run(testbench)
    return (out["spad"], out["acc"], memory), reference, out["timing"]


def assert_same(hardware, reference, memory_mask=slice(None)):
    """Equal SRAMs but for their last lines (see :class:`Bench`) and host memory (within
    ``memory_mask``)."""
    for name, got, expected, part in zip(("spad", "acc", "memory"), hardware, reference,
                                         (slice(-1), slice(-1), memory_mask)):
        np.testing.assert_array_equal(got[part], expected[part], err_msg=name)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_load_matches_functional(config):
    seed = config.rows * 10 + config.cols
    rng = np.random.default_rng(seed)
    words = [random_transfer(rng, config, Opcode.LOAD, max_rows=8) for _ in range(24)]
    assert {decode(w)[1]["mem"] for w in words} == {0, 1}
    hardware, reference, timing = run_unit(config, LoadUnit, words, seed, contention=0.3)
    assert_same(hardware, reference)
    assert not any(error for _, _, error in timing)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_store_matches_functional(config):
    seed = config.rows * 10 + config.cols + 1
    rng = np.random.default_rng(seed)
    words = [random_transfer(rng, config, Opcode.STORE, max_rows=8) for _ in range(24)]
    assert {decode(w)[1]["mem"] for w in words} == {0, 1}
    hardware, reference, timing = run_unit(config, StoreUnit, words, seed, contention=0.3)
    assert_same(hardware, reference)
    assert not any(error for _, _, error in timing)


#: SLVERR ranges for the error tests: a 4 KiB boundary region and a single byte.
ERROR_RANGES = [(4096 - 24, 4096 + 8), (6000, 6001)]


def error_words(config, opcode, seed):
    """Random transfers, every other one moved onto an error range."""
    rng = np.random.default_rng(seed)
    words = []
    for index in range(12):
        word = random_transfer(rng, config, opcode, max_rows=3)
        if index % 2:
            _, fields = decode(word)
            lo, _ = ERROR_RANGES[index // 2 % len(ERROR_RANGES)]
            fields["dram_addr"] = lo - int(rng.integers(0, fields["row_bytes"] + 8))
            word = encode(opcode, **{k: v for k, v in fields.items() if not k.startswith("deps")})
        words.append(word)
    return words


@pytest.mark.parametrize("unit_class", [LoadUnit, StoreUnit], ids=["load", "store"])
def test_most_rows_a_memory_holds(unit_class):
    """The units keep ``rows`` and line addresses in as few bits as the decode checks allow
    (``transfer_bits``): a transfer of as many one-line rows as the larger memory holds, and
    one filling the smaller to its last line, match the functional simulator."""
    config = HardwareConfig.profile("tiny", spad_lines=256, acc_lines=128)
    opcode = Opcode.LOAD if unit_class is LoadUnit else Opcode.STORE
    words = [encode(opcode, mem=Memory.SPAD, sram_addr=0, rows=config.spad_lines, row_bytes=2,
                    dram_addr=3, dram_stride=5),
             encode(opcode, mem=Memory.ACC, sram_addr=1, rows=config.acc_lines - 1,
                    row_bytes=7, dram_addr=0x700, dram_stride=9)]
    hardware, reference, _ = run_unit(config, unit_class, words, 8)
    assert_same(hardware, reference)


@pytest.mark.parametrize("unit_class", [LoadUnit, StoreUnit], ids=["load", "store"])
def test_axi_errors_flagged_per_instruction(unit_class):
    """An instruction with a row in an SLVERR range pulses error with its done, the others
    do not, and nothing hangs. Loads still write the lines (the model returns the data);
    stores write every byte outside the failed rows' bus words."""
    config = CONFIGS[0]
    opcode = Opcode.LOAD if unit_class is LoadUnit else Opcode.STORE
    words = error_words(config, opcode, 77)
    expected = [any(touches(a, n, config.dma_bytes, ERROR_RANGES) for a, n in row_regions(w))
                for w in words]
    assert any(expected) and not all(expected)
    hardware, reference, timing = run_unit(config, unit_class, words, 77,
                                           error_ranges=ERROR_RANGES)
    assert [error for _, _, error in timing] == expected
    failed = np.zeros(DATA_SPAN, bool)
    for word, error in zip(words, expected):
        for addr, length in row_regions(word):
            if error and touches(addr, length, config.dma_bytes, ERROR_RANGES):
                db = config.dma_bytes
                failed[addr // db * db:-(-(addr + length) // db) * db] = True
    assert_same(hardware, reference, ~failed)


# -- throughput ----------------------------------------------------------------------------

THROUGHPUT_CONFIGS = [HardwareConfig(rows=8, cols=8, spad_lines=512, acc_lines=128),
                      HardwareConfig(rows=5, cols=3, spad_lines=1024, acc_lines=512),
                      HardwareConfig(rows=4, cols=4, spad_lines=1024, acc_lines=512,
                                     aligned_repack=True)]


@pytest.mark.parametrize("unit_class", [LoadUnit, StoreUnit], ids=["load", "store"])
@pytest.mark.parametrize("config, mem, rows", [
    (THROUGHPUT_CONFIGS[0], Memory.SPAD, 1), (THROUGHPUT_CONFIGS[0], Memory.SPAD, 8),
    (THROUGHPUT_CONFIGS[0], Memory.ACC, 4), (THROUGHPUT_CONFIGS[1], Memory.SPAD, 2),
    (THROUGHPUT_CONFIGS[1], Memory.ACC, 1), (THROUGHPUT_CONFIGS[2], Memory.SPAD, 2),
    (THROUGHPUT_CONFIGS[2], Memory.ACC, 2)],
    ids=["8x8-spad-1", "8x8-spad-8", "8x8-acc-4", "5x3-spad-2", "5x3-acc-1",
         "4x4-aligned-spad-2", "4x4-aligned-acc-2"])
def test_throughput(unit_class, config, mem, rows):
    """Aligned contiguous transfers of about 4 KiB on an 8-byte bus against a memory with
    latency: one line per cycle when lines are narrower than the bus, else close to one
    bus beat per cycle (the DMA spends a cycle per row command)."""
    width = line_bytes(config, mem.value)
    row_bytes = 4096 // rows // width * width - (width if rows == 1 else 0)  # 12 bits
    opcode = Opcode.LOAD if unit_class is LoadUnit else Opcode.STORE
    word = encode(opcode, mem=mem, sram_addr=0, rows=rows, row_bytes=row_bytes, dram_addr=0,
                  dram_stride=row_bytes)
    hardware, reference, timing = run_unit(config, unit_class, [word], 5, latency=8,
                                            ready_probability=1.0, valid_probability=1.0,
                                            max_burst=64)
    assert_same(hardware, reference)
    (accepted, done, _), = timing
    beats = -(-rows * row_bytes // config.dma_bytes)
    lines = rows * row_bytes // width
    cycles = done - accepted
    print(f"{unit_class.__name__} {config_id(config)} {mem.name} line {width} B, {rows} rows: "
          f"{lines} lines, {beats} beats in {cycles} cycles: {lines / cycles:.3f} lines/cycle, "
          f"{beats / cycles:.3f} beats/cycle")
    assert cycles <= max(beats, lines) + 2 * rows + 30


# -- fetch -------------------------------------------------------------------------------------

def program_words(memory, addr, count):
    return [int.from_bytes(memory[addr + 16 * pc:addr + 16 * pc + 16].tobytes(), "little")
            for pc in range(count)]


def check_fetch(memory, programs, results, data_bytes, error_ranges=()):
    for (addr, count, cancel_after, _), (words, error) in zip(programs, results):
        fault = next((pc for pc in range(count) if addr + 16 * pc + 16 > len(memory)
                      or touches(addr + 16 * pc, 16, data_bytes, error_ranges)), None)
        taken = count if fault is None else fault
        if cancel_after is not None:
            assert cancel_after <= taken
            taken, fault = cancel_after, None
        assert [pc for pc, _ in words] == list(range(taken))
        assert [word for _, word in words] == program_words(memory, addr, taken)
        assert error == fault


@pytest.mark.parametrize("data_bytes, queue_ram_width", [
    (4, 0), (8, 0), (32, 0), (4, 37), (32, 37)])
def test_fetch_programs(data_bytes, queue_ram_width):
    """Programs at every alignment, of lengths around the chunk size, one after the other:
    completed, stopped part-way, and restarted part-way (data in flight dropped); with
    ``queue_ram_width`` the buffer is a block RAM read a cycle ahead."""
    config = HardwareConfig(dma_bytes=data_bytes, queue_ram_width=queue_ram_width)
    seed = data_bytes
    rng = np.random.default_rng(seed)
    memory = rng.integers(0, 256, 3 * 4096, dtype=np.uint8)
    programs = []
    for count, cancel_after, stop in [(1, None, False), (17, None, False), (40, 3, True),
                                      (9, None, False), (30, 11, False), (0, None, False),
                                      (25, 0, True), (8, None, False), (33, 20, True)]:
        addr = int(rng.integers(0, len(memory) - 16 * count))
        programs.append((addr, count, cancel_after, stop))
    bench = Bench(config, memory, units=("fetch",), seed=seed)
    out = {}

    async def testbench(ctx):
        out["results"] = await bench.fetch(ctx, programs)

    bench.run(testbench)
    check_fetch(memory, programs, out["results"], data_bytes)


@pytest.mark.parametrize("data_bytes, fetch_words, queue_ram_width", [
    (8, 8, 0), (4, 1, 0), (4, 2, 0), (4, 1, 37), (8, 8, 37), (16, 2, 0)])
def test_fetch_errors(data_bytes, fetch_words, queue_ram_width):
    """A failing chunk is fetched again word by word: the words before the faulting one go
    out, then error names it; a fetch running off the end of memory stops where the
    functional simulator does; a new start after an error works. (Buses no wider than a
    word write each beat straight into the fetch buffer, beats of dropped words too.)"""
    config = HardwareConfig(dma_bytes=data_bytes, fetch_words=fetch_words,
                            queue_ram_width=queue_ram_width)
    rng = np.random.default_rng(9)
    memory = rng.integers(0, 256, 2 * 4096, dtype=np.uint8)
    error_ranges = [(1000, 1001), (3000, 3100)]
    tail = len(memory) - 16 * 40 - 5
    # FENCE words to the end of memory: the functional simulator names the first word
    # outside it.
    fences = np.frombuffer(encode(Opcode.FENCE).to_bytes(16, "little") * 200, np.uint8)
    memory[tail:] = fences[:len(memory) - tail]
    functional = FunctionalSimulator(config).run(memory, tail, 200)
    programs = [(1000 - 16 * 11 - 3, 20, None, False),  # fails in its second chunk
                (3000 - 16 * 2, 10, None, False),  # fails in its first chunk, word 2
                (100, 12, None, False),
                (tail, 200, None, False),  # off the end
                (1000 - 16 * 20, 24, 17, True)]  # stopped before the faulting word
    bench = Bench(config, memory, units=("fetch",), error_ranges=error_ranges, seed=9)
    out = {}

    async def testbench(ctx):
        out["results"] = await bench.fetch(ctx, programs)

    bench.run(testbench)
    results = out["results"]
    check_fetch(memory, programs, results, config.dma_bytes, error_ranges)
    # The words holding bytes 1000 and 3000; a beat wider than 8 bytes that holds them also
    # holds the end of the word before, whose fetch then fails too.
    faults = [11, 2] if data_bytes <= 8 else [10, 1]
    assert [error for _, error in results] == [*faults, None, functional.error_pc, None]
    assert functional.error.name == "AXI_READ"


# -- sharing the reader ------------------------------------------------------------------------

def test_fetch_and_load_share_a_reader():
    """Fetch (client 0) and load (client 1) on one reader through the arbiter, both busy at
    once: the words and the SRAM contents are those of each alone."""
    config = CONFIGS[0]
    seed = 31
    memory, spad, acc = random_state(config, seed)
    rng = np.random.default_rng(seed)
    words = [random_transfer(rng, config, Opcode.LOAD) for _ in range(16)]
    reference = functional_reference(config, words, memory, spad, acc)
    programs = [(int(rng.integers(0, DATA_SPAN - 16 * 40)), count, cancel_after, stop)
                for count, cancel_after, stop in [(40, None, False), (30, 7, True),
                                                  (25, None, False)]]
    bench = Bench(config, memory, units=("fetch", "load"), seed=seed, contention=0.3)
    out = {}

    async def loads(ctx):
        await bench.preload(ctx, spad, acc)
        out["timing"] = await bench.feed(ctx, bench.units["load"], words, gap=0.1)
        out["spad"], out["acc"] = await bench.read_back(ctx, spad, acc)

    async def fetches(ctx):
        for _ in range(config.spad_lines + config.acc_lines):  # while the SRAMs are preloaded
            await ctx.tick()
        out["results"] = await bench.fetch(ctx, programs, stall=0.1)
        out["fetch_end"] = ctx.get(bench.units["fetch"].busy)

    grants = []

    async def monitor(ctx):
        async for _, _, *handshakes in ctx.tick().sample(
                *(signal for client in bench.arbiter.clients
                  for signal in (client.cmd.valid, client.cmd.ready))):
            for index in range(2):
                if handshakes[2 * index] and handshakes[2 * index + 1]:
                    grants.append(index)

    bench.run(loads, fetches, processes=[monitor])
    check_fetch(memory, programs, out["results"], config.dma_bytes)
    assert_same((out["spad"], out["acc"], memory), reference)
    # The two clients' commands really were interleaved at the reader.
    switches = sum(a != b for a, b in zip(grants, grants[1:]))
    assert switches >= 6, grants


def test_arbiter_three_clients():
    """Three clients issuing random reads at once, one of them slow to take its beats: every
    client gets exactly its own bytes, in order."""
    data_bytes, seed = 8, 12
    rng = random.Random(seed)
    memory = np.random.default_rng(seed).integers(0, 256, 2 * 4096, dtype=np.uint8)
    m = Module()
    m.submodules.arbiter = arbiter = ReadArbiter(32, data_bytes, clients=3, depth=4)
    m.submodules.reader = reader = DMAReader(32, data_bytes, max_burst=8)
    wiring.connect(m, arbiter.cmd, reader.cmd)
    wiring.connect(m, reader.data, arbiter.data)
    model = AXI4MemoryModel(reader.bus, memory, ready_probability=0.8, valid_probability=0.8,
                            read_latency=2, seed=seed)
    requests = [[(rng.randrange(0, len(memory) - 100), rng.randrange(1, 100))
                 for _ in range(12)] for _ in range(3)]
    received = [[] for _ in range(3)]
    order = []
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_process(model.process)

    def issuer(index):
        async def process(ctx):
            port = arbiter.clients[index].cmd
            for addr, length in requests[index]:
                ctx.set(port.valid, 1)
                ctx.set(port.payload.addr, addr)
                ctx.set(port.payload.length, length)
                await ctx.tick().until(port.ready)
                order.append(index)
                ctx.set(port.valid, 0)
        return process

    def taker(index, stall):
        async def process(ctx):
            port = arbiter.clients[index].data
            current, idle = b"", 0
            while len(received[index]) < len(requests[index]):
                ready = rng.random() >= stall
                ctx.set(port.ready, ready)
                _, _, valid, beat = await ctx.tick().sample(port.valid, port.payload)
                idle += 1
                if valid and ready:
                    current += beat.data.to_bytes(data_bytes, "little")[:beat.count]
                    idle = 0
                    if beat.last:
                        received[index].append(current)
                        current = b""
                if idle > TIMEOUT:
                    raise SimulationHang(f"client {index} starved")
        return process

    for index, stall in enumerate((0.0, 0.2, 0.7)):
        sim.add_testbench(issuer(index))
        sim.add_testbench(taker(index, stall))
    sim.run()
    for index in range(3):
        assert received[index] == [memory[a:a + n].tobytes() for a, n in requests[index]]
    # Round robin: while all three wait, grants rotate.
    assert order[:6] == [0, 1, 2, 0, 1, 2]


# -- Verilog -----------------------------------------------------------------------------------

@pytest.mark.parametrize("config", [CONFIGS[0], HardwareConfig(rows=16, cols=16, dma_bytes=32,
                                                               addr_width=40)],
                         ids=["5x3-bus8", "16x16-bus32"])
def test_verilog_compiles_and_lints(tmp_path, config):
    for name, top in [("load", LoadUnit(config)), ("store", StoreUnit(config)),
                      ("fetch", Fetch(config)),
                      ("arbiter", ReadArbiter(config.addr_width, config.dma_bytes))]:
        path = tmp_path / f"{name}.v"
        path.write_text(verilog.convert(top, name=name))
        check_tools_accept(path)
