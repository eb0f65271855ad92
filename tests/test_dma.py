"""DMAReader / DMAWriter in Amaranth's simulator against the NumPy-backed AXI4 memory model:
random transfers at every alignment (including 4 KiB-crossing ones) with random latency and
back-pressure, error responses, burst splitting and throughput."""

import gc
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from systolic.hw.axi import BOUNDARY_BYTES
from systolic.hw.dma import (DMA, DMAReader, DMAWriter, beat_layout, check_dma_params,
                             command_layout)
from systolic.sim import SimulationHang
from systolic.sim.axi_models import AXIProtocolError, AXI4MemoryModel, random_transfers

SPAN = 3 * BOUNDARY_BYTES
#: Transfers every random list ends with: empty, one byte before / two across a 4 KiB
#: boundary, the last bytes of memory.
EDGE_TRANSFERS = [(BOUNDARY_BYTES - 3, 0), (BOUNDARY_BYTES - 1, 1), (2 * BOUNDARY_BYTES - 1, 2),
                  (SPAN - 5, 5)]


# -- independent reference models -----------------------------------------------------------

def split_bursts(addr, length, data_bytes, max_burst):
    """The ``(addr, beats)`` bursts that cover a transfer: every bus word it touches, in
    order, as long as possible without exceeding ``max_burst`` or crossing 4 KiB."""
    if length == 0:
        return []
    word, stop = addr // data_bytes, -(-(addr + length) // data_bytes)
    bursts = []
    while word < stop:
        page_end = (word * data_bytes // BOUNDARY_BYTES + 1) * BOUNDARY_BYTES // data_bytes
        beats = min(max_burst, page_end - word, stop - word)
        bursts.append((word * data_bytes, beats))
        word += beats
    return bursts


def touches(addr, length, data_bytes, ranges):
    """Does the bus-word span of a transfer overlap one of the byte ``ranges``?"""
    if length == 0:
        return False
    start = addr // data_bytes * data_bytes
    stop = -(-(addr + length) // data_bytes) * data_bytes
    return any(lo < stop and start < hi for lo, hi in ranges)


def pack_beats(payload, data_bytes, rng):
    """Stream beats ``(data, count, last)`` for ``payload`` bytes, unused lanes random."""
    beats = []
    for at in range(0, max(len(payload), 1), data_bytes):
        chunk = payload[at:at + data_bytes]
        padded = np.concatenate([chunk, rng.integers(0, 256, data_bytes - len(chunk),
                                                      dtype=np.uint8)])
        last = at + data_bytes >= len(payload)
        beats.append((int.from_bytes(padded.tobytes(), "little"), len(chunk), last))
    return beats


# -- stream helpers -----------------------------------------------------------------------

class Harness:
    """Stream sources and sinks around a DMA engine in one simulation, with random gaps and
    stalls; counts cycles from the start of the run."""

    def __init__(self, dut, seed, timeout=2000):
        self.dut, self.rng, self.timeout = dut, random.Random(seed), timeout
        self.sim = Simulator(dut)
        self.sim.add_clock(1e-8)
        self.progress = 0

    def source(self, port, words, gap):
        """Offer ``words`` in order, each after random idle cycles. Returns the list that
        receives the cycle each word is taken in."""
        taken = []

        async def process(ctx):
            cycle = 0
            for word in words:
                while self.rng.random() < gap:
                    await ctx.tick()
                    cycle += 1
                ctx.set(port.valid, 1)
                ctx.set(port.payload.as_value(), word)
                ready = False
                while not ready:
                    _, _, ready = await ctx.tick().sample(port.ready)
                    cycle += 1
                taken.append(cycle - 1)
                self.progress += 1
                ctx.set(port.valid, 0)
        self.sim.add_testbench(process)
        return taken

    def sink(self, port, stall, count, is_end=lambda word: True):
        """Take payload words until ``count`` of them satisfy ``is_end``, failing the run with
        :class:`SimulationHang` when no stream moves for ``timeout`` cycles. Returns the list
        that receives ``(cycle, word)`` per word taken."""
        taken = []

        async def process(ctx):
            idle, seen, ends, cycle = 0, self.progress, 0, 0
            while ends < count:
                ready = self.rng.random() >= stall
                ctx.set(port.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(port.valid,
                                                               port.payload.as_value())
                if valid and ready:
                    taken.append((cycle, payload))
                    ends += bool(is_end(payload))
                    self.progress += 1
                cycle += 1
                idle = 0 if self.progress != seen else idle + 1
                seen = self.progress
                if idle > self.timeout:
                    raise SimulationHang(f"no progress for {self.timeout} cycles after "
                                         f"{len(taken)} words")
            ctx.set(port.ready, 0)
        self.sim.add_testbench(process)
        return taken

    def run(self):
        self.sim.run()


def command_words(transfers, addr_width=32, length_width=None):
    layout = command_layout(addr_width, length_width)
    return [layout.const({"addr": a, "length": n}).as_value().value for a, n in transfers]


def decode_beats(words, data_bytes):
    layout = beat_layout(data_bytes)
    return [layout.from_bits(word) for word in words]


def memory_image(seed, size=SPAN):
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


# -- runs -----------------------------------------------------------------------------------

def run_reads(transfers, memory, *, data_bytes=8, max_burst=256, max_outstanding=4,
              error_ranges=(), ready_probability=1.0, valid_probability=1.0, latency=1,
              out_stall=0.0, cmd_gap=0.0, seed=0, length_width=None):
    """Read ``transfers`` from ``memory``; return (per-transfer (bytes, counts, error),
    the memory model, cycles)."""
    dut = DMAReader(data_bytes=data_bytes, max_burst=max_burst,
                    max_outstanding=max_outstanding, length_width=length_width)
    model = AXI4MemoryModel(dut.bus, memory, error_ranges=error_ranges,
                            ready_probability=ready_probability,
                            valid_probability=valid_probability, read_latency=latency,
                            seed=seed)
    harness = Harness(dut, seed)
    harness.sim.add_process(model.process)
    harness.source(dut.cmd, command_words(transfers, length_width=length_width), cmd_gap)
    last_bit = beat_layout(data_bytes)["last"].offset
    taken = harness.sink(dut.data, out_stall, len(transfers), lambda word: word >> last_bit & 1)
    harness.run()
    beats = decode_beats([word for _, word in taken], data_bytes)
    return split_commands(beats, data_bytes), model


def split_commands(beats, data_bytes):
    """Group decoded beats into commands: (payload bytes, counts, error of the last beat)."""
    commands, current = [], []
    for beat in beats:
        current.append(beat)
        if beat.last:
            payload = b"".join(int(b.data).to_bytes(data_bytes, "little")[:b.count]
                               for b in current)
            commands.append((np.frombuffer(payload, dtype=np.uint8),
                             [int(b.count) for b in current], int(current[-1].error),
                             [int(b.error) for b in current[:-1]]))
            current = []
    assert not current, "beats after the last command"
    return commands


def check_reads(transfers, results, memory, data_bytes, error_ranges=()):
    assert len(results) == len(transfers)
    for (addr, length), (payload, counts, error, early_errors) in zip(transfers, results):
        beats = max(1, -(-length // data_bytes))
        assert len(counts) == beats, (addr, length)
        assert counts[:-1] == [data_bytes] * (beats - 1)
        assert counts[-1] == length - (beats - 1) * data_bytes
        assert not any(early_errors)
        expect_error = touches(addr, length, data_bytes, error_ranges)
        assert error == expect_error, (addr, length)
        if not expect_error:
            np.testing.assert_array_equal(payload, memory[addr:addr + length],
                                          err_msg=f"read of {length} bytes at {addr:#x}")


#: Random transfers with ``length_width`` 12 (the accelerator's: a row of at most 4095
#: bytes) also include the longest ones.
LONGEST_TRANSFERS = [(3, 4095), (BOUNDARY_BYTES + 2, 4094)]


@pytest.mark.parametrize("data_bytes, max_burst, max_outstanding, seed, length_width", [
    (4, 256, 4, 1, None), (8, 16, 2, 2, None), (16, 256, 4, 3, None), (32, 8, 3, 4, None),
    (4, 256, 1, 5, 12), (8, 16, 2, 6, 12),
])
def test_reads_random(data_bytes, max_burst, max_outstanding, seed, length_width):
    memory = memory_image(seed)
    transfers = random_transfers(seed, 24, span=SPAN, data_bytes=data_bytes) + EDGE_TRANSFERS
    if length_width:
        transfers += LONGEST_TRANSFERS
    assert any(a % BOUNDARY_BYTES + n > BOUNDARY_BYTES for a, n in transfers)
    assert len({a % data_bytes for a, _ in transfers}) > 1
    results, model = run_reads(transfers, memory.copy(), data_bytes=data_bytes,
                               max_burst=max_burst, max_outstanding=max_outstanding,
                               ready_probability=0.7, valid_probability=0.7, latency=3,
                               out_stall=0.3, cmd_gap=0.2, seed=seed,
                               length_width=length_width)
    check_reads(transfers, results, memory, data_bytes)
    assert model.reads == [b for a, n in transfers
                           for b in split_bursts(a, n, data_bytes, max_burst)]


def beat_words(transfers, payloads, data_bytes, rng):
    """Writer input beats for every transfer, as a reader would emit them, with random
    bytes in unused lanes and random ``error`` bits (which the writer must ignore)."""
    layout = beat_layout(data_bytes)
    words = []
    for payload in payloads:
        for data, count, last in pack_beats(payload, data_bytes, rng):
            words.append(layout.const({"data": data, "count": count, "last": last,
                                       "error": int(rng.integers(0, 2))}).as_value().value)
    return words


def expected_writes(memory, transfers, payloads, data_bytes, max_burst, error_ranges=()):
    """``memory`` after the writes, bursts that touch an error range dropped."""
    expected = memory.copy()
    for (addr, length), payload in zip(transfers, payloads):
        for start, beats in split_bursts(addr, length, data_bytes, max_burst):
            stop = start + beats * data_bytes
            if any(lo < stop and start < hi for lo, hi in error_ranges):
                continue
            lo, hi = max(start, addr), min(stop, addr + length)
            expected[lo:hi] = payload[lo - addr:hi - addr]
    return expected


def run_writes(transfers, payloads, memory, *, data_bytes=8, max_burst=256, max_outstanding=4,
               error_ranges=(), ready_probability=1.0, valid_probability=1.0, latency=1,
               done_stall=0.0, data_gap=0.0, cmd_gap=0.0, seed=0, length_width=None):
    """Write ``payloads`` to ``transfers`` in ``memory`` (changed in place); return the done
    errors, the memory model, and the harness's (data taken, done) cycle lists."""
    dut = DMAWriter(data_bytes=data_bytes, max_burst=max_burst,
                    max_outstanding=max_outstanding, length_width=length_width)
    model = AXI4MemoryModel(dut.bus, memory, error_ranges=error_ranges,
                            ready_probability=ready_probability,
                            valid_probability=valid_probability, write_latency=latency,
                            seed=seed)
    harness = Harness(dut, seed)
    harness.sim.add_process(model.process)
    harness.source(dut.cmd, command_words(transfers, length_width=length_width), cmd_gap)
    rng = np.random.default_rng(seed)
    data_taken = harness.source(dut.data, beat_words(transfers, payloads, data_bytes, rng),
                                data_gap)
    done = harness.sink(dut.done, done_stall, len(transfers))
    harness.run()
    return [word for _, word in done], model, (data_taken, done)


def random_payloads(transfers, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, length, dtype=np.uint8) for _, length in transfers]


@pytest.mark.parametrize("data_bytes, max_burst, max_outstanding, seed, length_width", [
    (4, 256, 4, 11, None), (8, 16, 2, 12, None), (16, 256, 4, 13, None), (32, 8, 3, 14, None),
    (4, 256, 1, 15, 12), (8, 16, 2, 16, 12),
])
def test_writes_random(data_bytes, max_burst, max_outstanding, seed, length_width):
    memory = memory_image(seed)
    transfers = random_transfers(seed, 24, span=SPAN, data_bytes=data_bytes) + EDGE_TRANSFERS
    if length_width:
        transfers += LONGEST_TRANSFERS
    payloads = random_payloads(transfers, seed)
    expected = expected_writes(memory, transfers, payloads, data_bytes, max_burst)
    errors, model, _ = run_writes(transfers, payloads, memory, data_bytes=data_bytes,
                                  max_burst=max_burst, max_outstanding=max_outstanding,
                                  ready_probability=0.7, valid_probability=0.6, latency=3,
                                  done_stall=0.3, data_gap=0.3, cmd_gap=0.2, seed=seed,
                                  length_width=length_width)
    np.testing.assert_array_equal(memory, expected)
    assert errors == [0] * len(transfers)
    assert model.writes == [b for a, n in transfers
                            for b in split_bursts(a, n, data_bytes, max_burst)]


ERROR_RANGES = [(4096 - 40, 4096 + 24), (2 * 4096 + 1000, 2 * 4096 + 1001)]


def error_transfers(seed, data_bytes):
    """Random transfers, half of them placed on or next to the error ranges."""
    rng = np.random.default_rng(seed)
    transfers = random_transfers(seed, 16, span=SPAN, max_length=200, data_bytes=data_bytes)
    for lo, hi in ERROR_RANGES:
        for _ in range(4):
            length = int(rng.integers(1, 120))
            transfers.append((int(rng.integers(lo - length - 8, hi + 8)), length))
    rng.shuffle(transfers)
    return [tuple(t) for t in transfers]


def test_read_errors_flagged_per_command():
    data_bytes, seed = 8, 21
    memory = memory_image(seed)
    transfers = error_transfers(seed, data_bytes)
    results, _ = run_reads(transfers, memory.copy(), data_bytes=data_bytes, max_burst=4,
                           error_ranges=ERROR_RANGES, ready_probability=0.8,
                           valid_probability=0.8, latency=2, out_stall=0.2, seed=seed)
    assert any(touches(a, n, data_bytes, ERROR_RANGES) for a, n in transfers)
    check_reads(transfers, results, memory, data_bytes, ERROR_RANGES)


def test_write_errors_flagged_per_command():
    data_bytes, max_burst, seed = 8, 4, 22
    memory = memory_image(seed)
    transfers = error_transfers(seed, data_bytes)
    payloads = random_payloads(transfers, seed)
    expected = expected_writes(memory, transfers, payloads, data_bytes, max_burst, ERROR_RANGES)
    errors, _, _ = run_writes(transfers, payloads, memory, data_bytes=data_bytes,
                              max_burst=max_burst, error_ranges=ERROR_RANGES,
                              ready_probability=0.8, valid_probability=0.8, latency=2,
                              done_stall=0.2, data_gap=0.1, seed=seed)
    assert errors == [int(touches(a, n, data_bytes, ERROR_RANGES)) for a, n in transfers]
    assert any(errors)
    np.testing.assert_array_equal(memory, expected)


def test_decode_error_outside_memory():
    """A read beyond the model's memory answers DECERR, which is flagged too."""
    memory = memory_image(5, size=4096)
    transfers = [(4096 - 8, 16), (100, 20)]
    results, _ = run_reads(transfers, memory.copy(), data_bytes=8)
    assert [error for _, _, error, _ in results] == [1, 0]
    np.testing.assert_array_equal(results[1][0], memory[100:120])


# -- throughput -------------------------------------------------------------------------

THROUGHPUT_BEATS = 512


@pytest.mark.parametrize("offset", [0, 3])
def test_read_throughput(offset):
    """A long read streams at about one beat per cycle against a memory with latency."""
    data_bytes, latency = 8, 16
    memory = memory_image(31, size=2 * BOUNDARY_BYTES)
    transfers = [(offset, THROUGHPUT_BEATS * data_bytes)]
    dut = DMAReader(data_bytes=data_bytes, max_burst=32, max_outstanding=4)
    model = AXI4MemoryModel(dut.bus, memory, read_latency=latency)
    harness = Harness(dut, 0)
    harness.sim.add_process(model.process)
    started = harness.source(dut.cmd, command_words(transfers), 0.0)
    taken = harness.sink(dut.data, 0.0, THROUGHPUT_BEATS)
    harness.run()
    payload = split_commands(decode_beats([w for _, w in taken], data_bytes), data_bytes)[0][0]
    np.testing.assert_array_equal(payload, memory[offset:offset + THROUGHPUT_BEATS * data_bytes])
    cycles = taken[-1][0] - started[0] + 1
    rate = THROUGHPUT_BEATS / cycles
    print(f"read offset {offset}: {THROUGHPUT_BEATS} beats in {cycles} cycles = {rate:.3f}")
    assert cycles <= THROUGHPUT_BEATS + latency + 8


@pytest.mark.parametrize("offset", [0, 5])
def test_write_throughput(offset):
    data_bytes = 8
    memory = memory_image(32, size=2 * BOUNDARY_BYTES)
    transfers = [(offset, THROUGHPUT_BEATS * data_bytes)]
    payloads = random_payloads(transfers, 32)
    expected = expected_writes(memory, transfers, payloads, data_bytes, 32)
    _, _, (data_taken, done) = run_writes(transfers, payloads, memory, data_bytes=data_bytes,
                                          max_burst=32, latency=16)
    np.testing.assert_array_equal(memory, expected)
    cycles = data_taken[-1] - data_taken[0] + 1
    rate = THROUGHPUT_BEATS / cycles
    print(f"write offset {offset}: {THROUGHPUT_BEATS} beats taken in {cycles} cycles = "
          f"{rate:.3f}; done {done[0][0] - data_taken[-1]} cycles after the last beat")
    assert cycles <= THROUGHPUT_BEATS + 4


# -- both engines on one port ---------------------------------------------------------------

def test_dma_reads_and_writes_concurrently():
    """DMA: reads of the lower half and writes to the upper half of memory at once."""
    data_bytes, seed = 8, 41
    memory = memory_image(seed, size=2 * SPAN)
    source = memory[:SPAN].copy()
    reads = random_transfers(seed, 12, span=SPAN, data_bytes=data_bytes)
    writes = [(addr + SPAN, length)
              for addr, length in random_transfers(seed + 1, 12, span=SPAN,
                                                   data_bytes=data_bytes)]
    payloads = random_payloads(writes, seed)
    expected = expected_writes(memory, writes, payloads, data_bytes, 256)
    dut = DMA(data_bytes=data_bytes)
    model = AXI4MemoryModel(dut.bus, memory, ready_probability=0.8, valid_probability=0.8,
                            read_latency=4, write_latency=2, seed=seed)
    harness = Harness(dut, seed)
    harness.sim.add_process(model.process)
    harness.source(dut.read_cmd, command_words(reads), 0.1)
    harness.source(dut.write_cmd, command_words(writes), 0.1)
    harness.source(dut.write_data, beat_words(writes, payloads, data_bytes,
                                              np.random.default_rng(seed)), 0.1)
    last_bit = beat_layout(data_bytes)["last"].offset
    read_beats = harness.sink(dut.read_data, 0.2, len(reads), lambda w: w >> last_bit & 1)
    done = harness.sink(dut.write_done, 0.2, len(writes))
    harness.run()
    results = split_commands(decode_beats([w for _, w in read_beats], data_bytes), data_bytes)
    check_reads(reads, results, source, data_bytes)
    np.testing.assert_array_equal(memory, expected)
    assert [w for _, w in done] == [0] * len(writes)


# -- parameters and protocol checking -----------------------------------------------------

@pytest.mark.parametrize("kwargs, error, name", [
    ({"data_bytes": 12}, ValueError, "data_bytes"),
    ({"data_bytes": 8.0}, TypeError, "data_bytes"),
    ({"addr_width": 11}, ValueError, "addr_width"),
    ({"max_burst": 0}, ValueError, "max_burst"),
    ({"max_burst": 257}, ValueError, "max_burst"),
    ({"max_outstanding": 0}, ValueError, "max_outstanding"),
    ({"id_width": 0}, ValueError, "id_width"),
    ({"length_width": 33}, ValueError, "length_width"),
    ({"length_width": 7}, ValueError, "length_width"),
])
@pytest.mark.parametrize("engine", [DMAReader, DMAWriter, DMA])
@pytest.mark.filterwarnings("ignore:.*created but never used")  # the half-built components
def test_bad_parameters(engine, kwargs, error, name):
    with pytest.raises(error, match=name):
        engine(**kwargs)
    with pytest.raises(error, match=name):
        check_dma_params(**{"addr_width": 32, "data_bytes": 8, "max_burst": 16,
                            "max_outstanding": 4, **kwargs})
    gc.collect()  # report the half-built component while its warning is filtered


def test_memory_model_catches_burst_crossing_4k():
    """The model is a checker too: a master whose burst crosses 4 KiB fails the run."""
    from amaranth.hdl import ClockDomain, Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import Out

    from systolic.hw.axi import AXI4ReadSignature

    class BadMaster(wiring.Component):
        bus: Out(AXI4ReadSignature(32, 64))

        def elaborate(self, platform):
            m = Module()
            m.domains.sync = ClockDomain()
            m.d.comb += [self.bus.araddr.eq(4096 - 16), self.bus.arlen.eq(3),
                         self.bus.arsize.eq(3), self.bus.arburst.eq(1),
                         self.bus.arvalid.eq(1), self.bus.rready.eq(1)]
            return m

    dut = BadMaster()
    model = AXI4MemoryModel(dut.bus, memory_image(0, 8192))
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(model.process)

    async def wait(ctx):
        for _ in range(4):
            await ctx.tick()
    sim.add_testbench(wait)
    with pytest.raises(AXIProtocolError, match="crosses"):
        sim.run()


# -- cocotb + Icarus on the generated Verilog, same vectors --------------------------------

def test_dma_verilog_with_cocotbext_axi(tmp_path):
    """The generated ``dma`` top against cocotbext-axi's AxiRam: the transfers of
    test_reads_random / test_writes_random for 8-byte beats, reads from the lower half of
    memory while writes go to the upper half, with and without random AXI pauses."""
    from systolic.sim.cocotb.runner import run_testbench

    data_bytes, max_burst, max_outstanding = 8, 16, 2
    memory = memory_image(2, size=2 * SPAN)
    jobs, expected = [], []
    for job_seed, pause in ((2, 0.3), (12, 0.0)):
        reads = random_transfers(job_seed, 24, span=SPAN, data_bytes=data_bytes) \
            + EDGE_TRANSFERS
        writes = [(a + SPAN, n) for a, n in random_transfers(job_seed + 10, 24, span=SPAN,
                                                             data_bytes=data_bytes)
                  + EDGE_TRANSFERS]
        payloads = random_payloads(writes, job_seed)
        jobs.append({"kind": "dma", "seed": job_seed, "pause": pause, "gap": 0.2,
                     "stall": 0.3, "memory": memory.tobytes(),
                     "reads": command_words(reads), "writes": command_words(writes),
                     "write_beats": beat_words(writes, payloads, data_bytes,
                                               np.random.default_rng(job_seed)),
                     "last_bit": beat_layout(data_bytes)["last"].offset})
        expected.append((reads, expected_writes(memory, writes, payloads, data_bytes,
                                                max_burst)))
    results = run_testbench("dma", dict(data_bytes=data_bytes, max_burst=max_burst,
                                        max_outstanding=max_outstanding),
                            "systolic.sim.cocotb.tb_axi", jobs, work_dir=tmp_path)
    for (reads, after), result, job in zip(expected, results, jobs):
        check_reads(reads, split_commands(decode_beats(result["read_beats"], data_bytes),
                                          data_bytes), memory, data_bytes)
        assert result["done"] == [0] * len(job["writes"])
        np.testing.assert_array_equal(np.frombuffer(result["memory"], dtype=np.uint8), after)
