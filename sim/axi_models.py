"""AXI models for Amaranth's simulator: an AXI4 slave memory backed by a NumPy array and an
AXI4-Lite master that reads and writes registers; plus, shared by the Amaranth and cocotb
tests, random DMA transfer lists and a reference register block.

The memory model is a background process (``sim.add_process(memory.process)``) that drives
its outputs right after each clock edge and sees the master's signals as they were at the
edge (``ctx.tick().sample``), like a register-based slave, so it needs no settling order
with other processes. It checks the master side of the protocol as it goes and raises
:class:`AXIProtocolError` on a violation.
"""

import random
from collections import deque
from dataclasses import dataclass

import numpy as np

from systolic.hw.axi import BOUNDARY_BYTES, BURST_INCR, RESP_DECERR, RESP_OKAY, RESP_SLVERR

from . import SimulationHang

__all__ = ["AXIProtocolError", "Burst", "AXI4MemoryModel", "AXI4LiteMaster",
           "random_transfers", "RegisterFile"]


class AXIProtocolError(AssertionError):
    """The master broke an AXI rule (unstable valid/payload, burst crossing 4 KiB, bad
    ``wlast``, ...)."""


@dataclass
class Burst:
    """An INCR burst as the slave took it: start address, beats, bytes per beat, ID,
    response."""

    addr: int
    beats: int
    size: int
    id: int
    resp: int = RESP_OKAY
    index: int = 0       # beats transferred so far
    ready_cycle: int = 0  # first cycle a response may be given

    def beat_address(self, index):
        """Address of beat ``index`` (the first may be unaligned)."""
        if index == 0:
            return self.addr
        return (self.addr // self.size) * self.size + index * self.size


class _Channel:
    """Checks that a master-driven channel keeps valid and payload while not taken."""

    def __init__(self, name):
        self.name, self.held = name, None

    def check(self, valid, ready, payload):
        if self.held is not None:
            if not valid:
                raise AXIProtocolError(f"{self.name}VALID dropped before {self.name}READY")
            if payload != self.held:
                raise AXIProtocolError(f"{self.name} payload changed while waiting: "
                                       f"{self.held} -> {payload}")
        self.held = payload if valid and not ready else None


class AXI4MemoryModel:
    """An AXI4 slave memory on the master port ``bus`` of a design in Amaranth's simulator.

    ``bus`` is the design's interface object for an :class:`~systolic.hw.axi.AXI4Signature`
    (or one of its halves: the model serves whichever channels exist). ``memory`` is a
    NumPy ``uint8`` array holding the bytes at ``base .. base + memory.size - 1``; writes
    change it in place. Bursts touching ``error_ranges`` (``(start, stop)`` byte address
    pairs) answer SLVERR on every beat (reads return the memory's bytes anyway, writes
    change nothing); bursts reaching outside the memory answer DECERR likewise.

    Timing: each cycle ``arready``, ``awready`` and ``wready`` are high with probability
    ``ready_probability``; an ``R`` beat or ``B`` response that is due is offered with
    probability ``valid_probability`` per cycle (and held until taken). The first ``R``
    beat of a burst is due ``read_latency`` cycles after its ``AR`` was taken, a ``B``
    ``write_latency`` cycles after the burst's last ``W`` beat. Up to ``max_pending`` read
    bursts and write bursts wait at once. INCR bursts of any size are served.

    ``reads`` and ``writes`` log every burst taken, in order.
    """

    def __init__(self, bus, memory, *, base=0, error_ranges=(), ready_probability=1.0,
                 valid_probability=1.0, read_latency=1, write_latency=1, max_pending=8,
                 seed=0):
        if not isinstance(memory, np.ndarray) or memory.dtype != np.uint8 or memory.ndim != 1:
            raise TypeError("memory must be a one-dimensional NumPy uint8 array")
        for name, value in (("ready_probability", ready_probability),
                            ("valid_probability", valid_probability)):
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], not {value}")
        for name, value in (("read_latency", read_latency), ("write_latency", write_latency),
                            ("max_pending", max_pending)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, not {value!r}")
        self.bus, self.memory, self.base = bus, memory, base
        self.error_ranges = [tuple(r) for r in error_ranges]
        self.ready_probability, self.valid_probability = ready_probability, valid_probability
        self.read_latency, self.write_latency = read_latency, write_latency
        self.max_pending = max_pending
        self.rng = random.Random(seed)
        members = bus.signature.members
        self.has_read, self.has_write = "araddr" in members, "awaddr" in members
        self.data_bytes = len((bus.rdata if self.has_read else bus.wdata)) // 8
        self.reads, self.writes = [], []
        self.cycle = 0

    # -- memory -----------------------------------------------------------------------

    def _response(self, burst):
        start = burst.addr // self.data_bytes * self.data_bytes
        stop = burst.beat_address(burst.beats - 1) // self.data_bytes * self.data_bytes \
            + self.data_bytes
        if start < self.base or stop > self.base + self.memory.size:
            return RESP_DECERR
        if any(lo < stop and start < hi for lo, hi in self.error_ranges):
            return RESP_SLVERR
        return RESP_OKAY

    def _word_base(self, addr):
        return addr // self.data_bytes * self.data_bytes - self.base

    def read_word(self, addr):
        """The bus word holding byte ``addr``, as an integer (lane 0 in the low byte)."""
        at = self._word_base(addr)
        return int.from_bytes(self.memory[at:at + self.data_bytes].tobytes(), "little")

    def write_word(self, addr, value, strb):
        at = self._word_base(addr)
        lanes = value.to_bytes(self.data_bytes, "little")
        for lane in range(self.data_bytes):
            if strb >> lane & 1:
                self.memory[at + lane] = lanes[lane]

    def _take_burst(self, addr, length, size, burst, id, log):
        if burst != BURST_INCR:
            raise AXIProtocolError(f"burst type {burst} is not INCR (the only one served)")
        if (1 << size) > self.data_bytes:
            raise AXIProtocolError(f"size {1 << size} bytes is wider than the bus")
        taken = Burst(addr, length + 1, 1 << size, id)
        last_byte = taken.beat_address(taken.beats - 1) // taken.size * taken.size \
            + taken.size - 1
        if addr // BOUNDARY_BYTES != last_byte // BOUNDARY_BYTES:
            raise AXIProtocolError(f"burst of {taken.beats} beats at {addr:#x} crosses a "
                                   f"{BOUNDARY_BYTES}-byte boundary")
        taken.resp = self._response(taken)
        log.append((addr, taken.beats))
        return taken

    # -- the process ----------------------------------------------------------------------

    async def process(self, ctx):
        """The model; add with ``sim.add_process(model.process)``."""
        bus, rng = self.bus, self.rng
        reads, writes, responses = deque(), deque(), deque()
        w_beats = deque()
        r_offer = b_offer = False
        channels = {name: _Channel(name) for name in ("AR", "AW", "W")}
        inputs = []
        if self.has_read:
            inputs += [bus.arvalid, bus.araddr, bus.arlen, bus.arsize, bus.arburst, bus.arid,
                       bus.rready]
        if self.has_write:
            inputs += [bus.awvalid, bus.awaddr, bus.awlen, bus.awsize, bus.awburst, bus.awid,
                       bus.wvalid, bus.wdata, bus.wstrb, bus.wlast, bus.bready]
        while True:
            cycle = self.cycle
            if self.has_read:
                arready = len(reads) < self.max_pending and rng.random() < self.ready_probability
                current = reads[0] if reads and reads[0].ready_cycle <= cycle else None
                if current is not None and not r_offer:
                    r_offer = rng.random() < self.valid_probability
                ctx.set(bus.arready, arready)
                ctx.set(bus.rvalid, r_offer)
                if r_offer:
                    ctx.set(bus.rdata, self.read_word(current.beat_address(current.index)))
                    ctx.set(bus.rresp, current.resp)
                    ctx.set(bus.rlast, current.index == current.beats - 1)
                    ctx.set(bus.rid, current.id)
            if self.has_write:
                awready = (len(writes) < self.max_pending
                           and rng.random() < self.ready_probability)
                wready = rng.random() < self.ready_probability
                due = responses[0] if responses and responses[0].ready_cycle <= cycle else None
                if due is not None and not b_offer:
                    b_offer = rng.random() < self.valid_probability
                ctx.set(bus.awready, awready)
                ctx.set(bus.wready, wready)
                ctx.set(bus.bvalid, b_offer)
                if b_offer:
                    ctx.set(bus.bresp, due.resp)
                    ctx.set(bus.bid, due.id)

            _, _, *sampled = await ctx.tick().sample(*inputs)
            self.cycle += 1
            if self.has_read:
                arvalid, araddr, arlen, arsize, arburst, arid, rready = sampled[:7]
                sampled = sampled[7:]
                channels["AR"].check(arvalid, arready, (araddr, arlen, arsize, arburst, arid))
                if arvalid and arready:
                    burst = self._take_burst(araddr, arlen, arsize, arburst, arid, self.reads)
                    burst.ready_cycle = cycle + self.read_latency
                    reads.append(burst)
                if r_offer and rready:
                    r_offer = False
                    current.index += 1
                    if current.index == current.beats:
                        reads.popleft()
            if self.has_write:
                (awvalid, awaddr, awlen, awsize, awburst, awid, wvalid, wdata, wstrb, wlast,
                 bready) = sampled
                channels["AW"].check(awvalid, awready, (awaddr, awlen, awsize, awburst, awid))
                channels["W"].check(wvalid, wready, (wdata, wstrb, wlast))
                if awvalid and awready:
                    writes.append(self._take_burst(awaddr, awlen, awsize, awburst, awid,
                                                   self.writes))
                if wvalid and wready:
                    w_beats.append((wdata, wstrb, wlast))
                while writes and w_beats:
                    self._write_beat(writes, w_beats.popleft(), responses, cycle)
                if b_offer and bready:
                    b_offer = False
                    responses.popleft()

    def _write_beat(self, writes, beat, responses, cycle):
        burst = writes[0]
        wdata, wstrb, wlast = beat
        final = burst.index == burst.beats - 1
        if bool(wlast) != final:
            raise AXIProtocolError(f"wlast={wlast} on beat {burst.index} of a "
                                   f"{burst.beats}-beat burst at {burst.addr:#x}")
        if burst.resp == RESP_OKAY:
            self.write_word(burst.beat_address(burst.index), wdata, wstrb)
        burst.index += 1
        if final:
            writes.popleft()
            burst.ready_cycle = cycle + self.write_latency
            responses.append(burst)


class AXI4LiteMaster:
    """Host-side AXI4-Lite register access for testbenches in Amaranth's simulator
    (``sim.add_testbench``): ``await master.write(ctx, addr, value)`` and
    ``await master.read(ctx, addr)``. ``bus`` is the design's
    :class:`~systolic.hw.axi.AXI4LiteSignature` slave port. Delays (in cycles) let a test
    offer ``AW`` and ``W`` in either order or together and hold off ``bready``/``rready``;
    an access that gets no answer within ``timeout`` cycles raises
    :class:`~systolic.sim.SimulationHang`.
    """

    def __init__(self, bus, *, timeout=100):
        self.bus, self.timeout = bus, timeout
        self.lanes = len(bus.wdata) // 8

    async def _handshake(self, ctx, requests):
        """Offer each ``(valid, ready, delay)`` from its delay on until taken."""
        pending = dict(enumerate(requests))
        for cycle in range(self.timeout):
            for key, (valid, _, delay) in pending.items():
                ctx.set(valid, cycle >= delay)
            readies = [ready for valid, ready, delay in pending.values()]
            _, _, *taken = await ctx.tick().sample(*readies)
            for key, ready in zip(list(pending), taken):
                valid, _, delay = pending[key]
                if cycle >= delay and ready:
                    ctx.set(valid, 0)
                    del pending[key]
            if not pending:
                return
        raise SimulationHang(f"AXI4-Lite handshake not done within {self.timeout} cycles")

    async def _response(self, ctx, valid, ready, delay, *payload):
        for _ in range(delay):
            await ctx.tick()
        ctx.set(ready, 1)
        for _ in range(self.timeout):
            _, _, taken, *values = await ctx.tick().sample(valid, *payload)
            if taken:
                ctx.set(ready, 0)
                return values
        raise SimulationHang(f"no AXI4-Lite response within {self.timeout} cycles")

    async def write(self, ctx, addr, value, strb=None, *, aw_delay=0, w_delay=0, b_delay=0):
        """Write ``value`` to ``addr`` (``strb`` selects bytes, default all); return
        ``bresp``."""
        bus = self.bus
        ctx.set(bus.awaddr, addr)
        ctx.set(bus.awprot, 0)
        ctx.set(bus.wdata, value)
        ctx.set(bus.wstrb, (1 << self.lanes) - 1 if strb is None else strb)
        await self._handshake(ctx, [(bus.awvalid, bus.awready, aw_delay),
                                    (bus.wvalid, bus.wready, w_delay)])
        (resp,) = await self._response(ctx, bus.bvalid, bus.bready, b_delay, bus.bresp)
        return resp

    async def read(self, ctx, addr, *, ar_delay=0, r_delay=0):
        """Read ``addr``; return ``(rdata, rresp)``."""
        bus = self.bus
        ctx.set(bus.araddr, addr)
        ctx.set(bus.arprot, 0)
        await self._handshake(ctx, [(bus.arvalid, bus.arready, ar_delay)])
        data, resp = await self._response(ctx, bus.rvalid, bus.rready, r_delay,
                                          bus.rdata, bus.rresp)
        return data, resp


def random_transfers(seed, count, *, span, max_length=600, data_bytes=8):
    """``count`` random ``(addr, length)`` transfers inside ``[0, span)`` for DMA tests.

    Lengths are 1..``max_length`` (with a few 0-length ones and many short ones); starts
    are at every alignment, and about a third of the regions straddle a 4 KiB boundary.
    """
    rng = np.random.default_rng(seed)
    transfers = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.05:
            length = 0
        elif kind < 0.35:
            length = int(rng.integers(1, 3 * data_bytes))
        else:
            length = int(rng.integers(1, max_length + 1))
        if rng.random() < 0.35 and span > BOUNDARY_BYTES:
            boundary = BOUNDARY_BYTES * int(rng.integers(1, span // BOUNDARY_BYTES))
            addr = boundary - int(rng.integers(1, max(length, 2)))
        else:
            addr = int(rng.integers(0, span - max(length, 1)))
        addr = max(0, min(addr, span - max(length, 1)))
        transfers.append((addr, length))
    return transfers


class RegisterFile:
    """Reference register block behind a register bus, for AXI4-Lite slave tests.

    Word addresses (the low two bits are ignored): 0x00-0x0C four read/write registers
    (byte strobes honoured); 0x10 the number of reads so far, this one included; 0x14 the
    number of writes so far (every write strobe counts). Writing 0x10 or above, or reading
    0x18 or above, is an error (and changes nothing but the write count).
    """

    RW_REGISTERS = 4
    READS, WRITES = 0x10, 0x14

    def __init__(self):
        self.values = [0] * self.RW_REGISTERS
        self.reads = self.writes = 0

    def write(self, addr, data, strb):
        """Apply a write; return whether it is an error."""
        self.writes += 1
        index = (addr & ~3) // 4
        if index >= self.RW_REGISTERS:
            return True
        mask = sum(0xFF << (8 * lane) for lane in range(4) if strb >> lane & 1)
        self.values[index] = (self.values[index] & ~mask) | (data & mask)
        return False

    def read(self, addr):
        """Perform a read; return ``(data, error)``."""
        self.reads += 1
        word = addr & ~3
        if word < 4 * self.RW_REGISTERS:
            return self.values[word // 4], False
        if word == self.READS:
            return self.reads, False
        if word == self.WRITES:
            return self.writes, False
        return 0, True
