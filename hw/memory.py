"""On-chip SRAMs: banked scratchpad and accumulator memories with arbitrated ports.

A :class:`BankedMemory` is ``banks`` simple-dual-port ``lib.memory.Memory`` blocks (one read
and one write port each, as FPGA block RAMs have), selected by the high address bits. Any
number of clients attach through :class:`ReadPortSignature` and :class:`WritePortSignature`;
when several clients want the same bank's port in the same cycle, the one listed first
wins and the others see ``ready`` low and retry, so bank conflicts cost cycles, never data.
"""

from math import gcd

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["ReadPortSignature", "WritePortSignature", "BankedMemory", "line_run", "LineSequencer",
           "LineReader", "StreamQueue", "unit_queue", "Repacker",
           "AlignedRepacker", "group_repacker"]


class ReadPortSignature(wiring.Signature):
    """A client's read port (client's view). Issue a read by holding ``en`` with ``addr``
    until ``ready`` (which may be high without ``en``: a read is accepted in a cycle with
    both); the line is on ``data`` ``read_stages`` cycles after the read was
    accepted (only then: capture it), where ``read_stages`` is the memory's (1: in the
    cycle after).

    Members
    -------
    addr : Out(addr_bits)
    en : Out(1)
    ready : In(1)
    data : In(data_bits)
    """

    def __init__(self, addr_bits, data_bits):
        super().__init__({"addr": Out(addr_bits), "en": Out(1), "ready": In(1),
                          "data": In(data_bits)})


class WritePortSignature(wiring.Signature):
    """A client's write port (client's view): a stream of ``addr``/``data`` pairs."""

    def __init__(self, addr_bits, data_bits):
        super().__init__(stream.Signature(data.StructLayout({
            "addr": addr_bits, "data": data_bits})).members)


class BankedMemory(wiring.Component):
    """``lines`` lines of ``data_bits`` bits in ``banks`` banks, with ``readers`` read
    clients and ``writers`` write clients (priority by index, lowest first).

    A read's line is on the client's ``data`` ``read_stages`` (1 or 2) cycles after the read
    was accepted. With 1 it comes from the bank's block RAM output through the bank
    multiplexer; with 2 each bank's output goes into a register first (nothing in front of
    it, so it can sit beside the RAM: block RAM outputs are slow) and the bank multiplexer
    follows the register, a cycle later.

    A read in the cycle of a write to its line returns the new line if ``transparent``;
    otherwise the line it returns is undefined (simulation shows the old one) and no client
    may use it. Block RAMs give neither by themselves: for either, synthesis would add a
    line-wide register, an address comparison and a multiplexer on every bank's read data,
    which lengthen the paths both from the write clients and from the block RAM's (slow)
    output. So only a memory whose clients need it asks for transparency, and the others
    tell synthesis that their reads never meet their writes (``no_rw_check``).
    Nor does a read see the writes of the cycles after it, up to the arrival of its line.

    Members
    -------
    read : In(ReadPortSignature(addr_bits, data_bits)).array(readers)
    write : In(WritePortSignature(addr_bits, data_bits)).array(writers)
    """

    def __init__(self, lines, data_bits, banks, readers, writers, transparent=False,
                 read_stages=1):
        if read_stages not in (1, 2):
            raise ValueError(f"read_stages must be 1 or 2, not {read_stages!r}")
        self.lines, self.data_bits, self.banks = lines, data_bits, banks
        self.transparent, self.read_stages = transparent, read_stages
        self.addr_bits = (lines - 1).bit_length() or 1
        self.bank_bits = (banks - 1).bit_length()
        super().__init__({
            "read": In(ReadPortSignature(self.addr_bits, data_bits)).array(readers),
            "write": In(WritePortSignature(self.addr_bits, data_bits)).array(writers),
        })

    def _bank_of(self, addr):
        return addr[self.addr_bits - self.bank_bits:] if self.bank_bits else 0

    def elaborate(self, platform):
        m = Module()
        bank_lines = self.lines // self.banks
        offset_bits = self.addr_bits - self.bank_bits
        # Each client's request: whether it asks, and for which line.
        reads = [(port.en, port.addr) for port in self.read]
        writes = [(port.valid, port.payload.addr) for port in self.write]
        bank_data = []
        for bank in range(self.banks):
            memory = Memory(shape=self.data_bits, depth=bank_lines, init=[],
                            attrs=None if self.transparent else {"no_rw_check": 1})
            m.submodules[f"bank{bank}"] = memory
            wr = memory.write_port()
            rd = memory.read_port(transparent_for=(wr,) if self.transparent else ())
            if self.read_stages == 1:
                bank_data.append(rd.data)
            else:
                bank_q = Signal(self.data_bits, name=f"bank{bank}_q")
                m.d.sync += bank_q.eq(rd.data)
                bank_data.append(bank_q)
            # Each port of the bank serves the first client (lowest index) that wants it.
            read_taken = Const(0)
            for asks, addr in reads:
                wants = asks & (self._bank_of(addr) == bank)
                with m.If(wants & ~read_taken):
                    m.d.comb += [rd.addr.eq(addr[:offset_bits]), rd.en.eq(1)]
                read_taken = read_taken | wants
            write_taken = Const(0)
            for port, (asks, addr) in zip(self.write, writes):
                wants = asks & (self._bank_of(addr) == bank)
                with m.If(wants & ~write_taken):
                    m.d.comb += [wr.addr.eq(addr[:offset_bits]),
                                 wr.data.eq(port.payload.data), wr.en.eq(1)]
                write_taken = write_taken | wants
        # A client is refused only while an earlier client wants its bank, whether or not
        # it asks itself: its ready does not wait for the banks' arbitration nor for its
        # own en/valid (the first client's is always high), which keeps those off the
        # paths from a client's request back to its own queues.
        for ports, requests in ((self.read, reads), (self.write, writes)):
            for index, (port, (_, addr)) in enumerate(zip(ports, requests)):
                refused = Const(0)
                for asks, earlier in requests[:index]:
                    refused = refused | (asks & (self._bank_of(earlier) == self._bank_of(addr)))
                m.d.comb += port.ready.eq(~refused)
        # A client's data comes from the bank that served its read ``read_stages`` cycles
        # ago.
        for index, port in enumerate(self.read):
            served = Signal(range(max(self.banks, 2)), name=f"served{index}")
            with m.If(port.en & port.ready):
                m.d.sync += served.eq(self._bank_of(port.addr))
            for stage in range(2, self.read_stages + 1):
                delayed = Signal.like(served, name=f"served{index}_{stage}")
                m.d.sync += delayed.eq(served)
                served = delayed
            m.d.comb += port.data.eq(bank_data[0])
            for bank in range(1, self.banks):
                with m.If(served == bank):
                    m.d.comb += port.data.eq(bank_data[bank])
        return m


def line_run(m, take, base, count):
    """``(addr, last)`` of a run of ``count`` (>= 1, 16 bits) consecutive line addresses
    from ``base``, one more each cycle ``take`` is high: the current address and whether it
    is the run's last. ``base`` and ``count`` must hold until the last is taken; the next
    run starts after it.

    The first address is ``base`` itself, the others come from registers (as does "this
    is the last"): no adder or subtraction between the run's registers and the memory
    port's bank selection and arbitration, whose ``ready`` comes back to the client."""
    first = Signal(init=1)
    next_addr, left, next_last = Signal(len(base)), Signal(16), Signal()
    addr = Mux(first, base, next_addr)
    last = Mux(first, count == 1, next_last)
    with m.If(take):
        # left: addresses after the next one
        m.d.sync += [first.eq(last), next_addr.eq(addr + 1),
                     left.eq(Mux(first, count - 2, left - 1)),
                     next_last.eq(Mux(first, count == 2, left == 1))]
    return addr, last


class LineSequencer(wiring.Component):
    """Turns descriptors into line addresses: for each ``desc`` beat (``base``, ``count`` >= 1,
    ``flags``) it emits ``base, base + 1, ..., base + count - 1`` on ``addrs``, each with the
    descriptor's ``flags`` and ``last`` on the final one.

    Members
    -------
    desc : In(stream.Signature(StructLayout({"base": addr_bits, "count": 16, "flags": flags})))
    addrs : Out(stream.Signature(StructLayout({"addr": addr_bits,
                                               "tag": {"last": 1, "flags": flags}})))
    """

    def __init__(self, addr_bits, flags=1):
        self.tag = data.StructLayout({"last": 1, "flags": flags})
        super().__init__({
            "desc": In(stream.Signature(data.StructLayout({
                "base": addr_bits, "count": 16, "flags": flags}))),
            "addrs": Out(stream.Signature(data.StructLayout({"addr": addr_bits,
                                                             "tag": self.tag}))),
        })

    def elaborate(self, platform):
        m = Module()
        desc = self.desc.payload
        take = self.addrs.valid & self.addrs.ready
        addr, last = line_run(m, take, desc.base, desc.count)
        m.d.comb += [
            self.addrs.valid.eq(self.desc.valid),
            self.addrs.payload.addr.eq(addr),
            self.addrs.payload.tag.last.eq(last),
            self.addrs.payload.tag.flags.eq(desc.flags),
            self.desc.ready.eq(self.addrs.ready & last),
        ]
        return m


class LineReader(wiring.Component):
    """Reads the SRAM line of each address on ``addrs`` through ``port`` and streams it, with
    its tag, on ``lines`` at up to one line per cycle, honouring back-pressure (lines wait in
    a small queue; a read is only issued when its line will have room: the lines queued and
    every read in flight count). ``read_stages`` is the port's read latency (the line is on
    ``port.data`` that many cycles after the read was accepted: the memory's
    ``read_stages``). ``depth`` lines (default :attr:`DEPTH`) are read ahead;
    ``read_stages + 2`` still streams one line per cycle (a line leaves ``read_stages + 1``
    cycles after its read was issued).

    With ``block_ram`` the queue is a :class:`StreamQueue` in block RAM: a line is on
    ``lines`` a cycle later than from the registers of the default queue
    (``read_stages + 2`` cycles after its read was issued), and a read may be issued in the
    cycle a line leaves, so ``depth`` ``read_stages + 2`` still streams a line per cycle.
    (A queue in block RAM that showed a line in the cycle after it was written would need a
    register as wide as the line beside the RAM.)

    Members
    -------
    addrs : In(stream.Signature(StructLayout({"addr": addr_bits, "tag": tag})))
    port : Out(ReadPortSignature(addr_bits, data_bits))
    lines : Out(stream.Signature(StructLayout({"data": data_bits, "tag": tag})))
    """

    DEPTH = 4

    def __init__(self, addr_bits, data_bits, tag, *, block_ram=False, depth=DEPTH,
                 read_stages=1):
        if read_stages not in (1, 2):
            raise ValueError(f"read_stages must be 1 or 2, not {read_stages!r}")
        self.tag, self.block_ram, self.depth = tag, block_ram, depth
        self.read_stages = read_stages
        super().__init__({
            "addrs": In(stream.Signature(data.StructLayout({"addr": addr_bits, "tag": tag}))),
            "port": Out(ReadPortSignature(addr_bits, data_bits)),
            "lines": Out(stream.Signature(data.StructLayout({"data": data_bits, "tag": tag}))),
        })

    def elaborate(self, platform):
        m = Module()
        # Reads accepted 1 .. read_stages cycles ago (with their tags): the last one's line
        # is on port.data.
        flags = [Signal(name="in_flight" if s == 1 else f"in_flight{s}")
                 for s in range(1, self.read_stages + 1)]
        tags = [Signal(self.tag, name="tag" if s == 1 else f"tag{s}")
                for s in range(1, self.read_stages + 1)]
        in_flight, tag = flags[-1], tags[-1]
        line = Cat(self.port.data, tag)
        # Lines read and not yet taken (queued or in flight): at most `depth`.
        pending = Signal(range(self.depth + 1))
        leaving = self.lines.valid & self.lines.ready
        if self.block_ram:
            # The queue (`depth` entries besides its output register) always has room.
            queue = m.submodules.queue = StreamQueue(self.lines.payload.shape(),
                                                     self.depth + 1, block_ram=True)
            room = pending - leaving < self.depth
            m.d.comb += [queue.i.valid.eq(in_flight), queue.i.payload.eq(line)]
            wiring.connect(m, queue.o, wiring.flipped(self.lines))
        else:
            queue = m.submodules.queue = SyncFIFO(width=len(line), depth=self.depth)
            # From the register alone (not the queue's level plus the reads in flight): the
            # read request, which the memory's other clients' ready depends on, follows it
            # through a comparison.
            room = pending < self.depth
            m.d.comb += [
                queue.w_en.eq(in_flight), queue.w_data.eq(line),
                self.lines.valid.eq(queue.r_rdy), self.lines.payload.eq(queue.r_data),
                queue.r_en.eq(self.lines.ready),
            ]
        m.d.comb += [
            self.port.en.eq(self.addrs.valid & room),
            self.port.addr.eq(self.addrs.payload.addr),
            self.addrs.ready.eq(self.port.ready & room),
        ]
        accepted = self.addrs.valid & self.addrs.ready
        m.d.sync += [flags[0].eq(accepted), pending.eq(pending + accepted - leaving)]
        with m.If(accepted):
            m.d.sync += tags[0].eq(self.addrs.payload.tag)
        for s in range(1, self.read_stages):
            m.d.sync += [flags[s].eq(flags[s - 1]), tags[s].eq(tags[s - 1])]
        return m


class StreamQueue(wiring.Component):
    """A first-in first-out queue of up to ``depth`` (>= 3 for one payload per cycle)
    payloads between two streams. ``i.ready``, ``o.valid`` and ``o.payload`` are flip-flops,
    so a queue cuts the combinational paths between the handshakes and data on either side.

    Cycle for cycle it behaves as ``SyncFIFOBuffered(depth=depth)``: ``depth - 1`` entries
    and an output register, a payload written to an empty queue reaching ``o`` two cycles
    later; ``i.ready`` (some entry is free) is kept in a register of its own rather than
    compared from the fill level, so ``i.ready`` of a full queue rises in the cycle after
    an entry moved to the output register.

    With ``block_ram`` the entries and the output register are asked to be a block RAM
    (``ram_style``; as the queue never reads an entry in the cycle it is written, the
    RAM's read-during-write behaviour needs no extra logic: ``no_rw_check``), unless
    ``depth`` is 2 (one entry: a register either way).

    With ``slices`` > 1 the payload's bits are cut into that many queues side by side, each
    with its own pointers, level and flags (their handshakes are the same every cycle; as
    each slice's state feeds back on itself, synthesis does not merge them into one), so no
    single enable net reaches every flip-flop of a wide payload: the output register's
    enable, which follows ``o.ready``, reaches one slice's.

    With ``idle_zero`` the output register is cleared as its payload leaves (and in the
    cycle after a reset), so ``o.payload`` is zero whenever ``o.valid`` is low but for that
    one cycle: the outputs of several queues of which at most one is valid at a time
    combine with an OR, with no select that has to reach every bit of the combined
    payload. (Its entries are read asynchronously then, into distributed RAM, not block
    RAM.)

    Members
    -------
    i : In(stream.Signature(layout))
    o : Out(stream.Signature(layout))
    """

    def __init__(self, layout, depth=3, *, block_ram=False, slices=1, idle_zero=False):
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth must be an integer >= 2, not {depth!r}")
        if block_ram and idle_zero and depth > 2:
            self._MustUse__silence = True  # never elaborated: no unused-object warning
            raise ValueError("a queue with idle_zero reads its entries asynchronously, "
                             "which a block RAM cannot: not both")
        width = Shape.cast(layout).width
        if isinstance(slices, bool) or not isinstance(slices, int) or not 1 <= slices <= width:
            self._MustUse__silence = True  # never elaborated: no unused-object warning
            raise ValueError(f"slices must be an integer from 1 to the payload's {width} "
                             f"bits, not {slices!r}")
        self.depth, self.block_ram, self.slices = depth, block_ram and depth > 2, slices
        self.idle_zero = idle_zero
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        if self.slices > 1:
            payload_in, payload_out = (Value.cast(p) for p in (self.i.payload, self.o.payload))
            width = len(payload_in)
            bounds = [width * k // self.slices for k in range(self.slices + 1)]
            for k, (start, stop) in enumerate(zip(bounds, bounds[1:])):
                part = m.submodules[f"slice{k}"] = StreamQueue(
                    stop - start, self.depth, block_ram=self.block_ram,
                    idle_zero=self.idle_zero)
                m.d.comb += [part.i.valid.eq(self.i.valid),
                             part.i.payload.eq(payload_in[start:stop]),
                             part.o.ready.eq(self.o.ready),
                             payload_out[start:stop].eq(part.o.payload)]
                if k == 0:
                    m.d.comb += [self.i.ready.eq(part.i.ready), self.o.valid.eq(part.o.valid)]
            return m
        entries = self.depth - 1  # besides the output register
        # (Level 0: nothing is read; level ``entries``: nothing is written. So the read and
        # the write of a cycle never meet at one address.)
        attrs = {"ram_style": "block", "no_rw_check": 1} if self.block_ram else None
        storage = Memory(shape=len(Value.cast(self.i.payload)), depth=entries, init=[],
                         attrs=attrs)
        m.submodules.storage = storage
        write = storage.write_port()
        produce, consume = Signal(range(entries)), Signal(range(entries))
        level = Signal(range(entries + 1))
        ready, valid = Signal(init=1), Signal()  # level != entries; the output register
        do_write = self.i.valid & ready
        do_read = (level != 0) & (~valid | self.o.ready)
        m.d.comb += [
            self.i.ready.eq(ready), self.o.valid.eq(valid),
            write.addr.eq(produce), write.data.eq(self.i.payload), write.en.eq(do_write),
        ]
        if self.idle_zero:
            read = storage.read_port(domain="comb")
            # (No reset, which would reach every bit: cleared whenever not valid instead.)
            held = Signal.like(read.data, reset_less=True)
            m.d.comb += [read.addr.eq(consume), self.o.payload.eq(held)]
        else:
            read = storage.read_port()
            m.d.comb += [read.addr.eq(consume), read.en.eq(do_read),
                         self.o.payload.eq(read.data)]

        def advance(pointer):
            return pointer.eq(Mux(pointer == entries - 1, 0, pointer + 1))

        with m.If(do_write):
            m.d.sync += advance(produce)
        with m.If(do_read):
            m.d.sync += [advance(consume), valid.eq(1)]
            if self.idle_zero:
                m.d.sync += held.eq(read.data)
        with m.Elif(self.o.ready):
            m.d.sync += valid.eq(0)
        if self.idle_zero:
            with m.If(~do_read & (self.o.ready | ~valid)):
                m.d.sync += held.eq(0)
        with m.If(do_write & ~do_read):
            m.d.sync += [level.eq(level + 1), ready.eq(level != entries - 1)]
        with m.If(do_read & ~do_write):
            m.d.sync += [level.eq(level - 1), ready.eq(1)]
        return m


def unit_queue(config, layout, depth=3):
    """A :class:`StreamQueue` of a unit of ``config`` (a :class:`HardwareConfig`): in block
    RAM if its entries are at least ``queue_ram_width`` bits wide."""
    bits = data.Layout.cast(layout).size
    return StreamQueue(layout, depth, block_ram=config.queue_in_block_ram(bits))


def repacker_members(in_bytes, out_widths):
    """The signature members shared by :class:`Repacker` and :class:`AlignedRepacker`:
    beats of ``in_bytes`` in (with the index of the output width to pack into), groups of
    up to ``max(out_widths)`` bytes out."""
    out_bytes = max(out_widths)
    return {
        "i": In(stream.Signature(data.StructLayout({
            "data": 8 * in_bytes, "count": range(in_bytes + 1), "last": 1, "error": 1,
            "width": range(max(len(out_widths), 2))}))),
        "o": Out(stream.Signature(data.StructLayout({
            "data": 8 * out_bytes, "count": range(out_bytes + 1), "last": 1,
            "error": 1}))),
    }


class Repacker(wiring.Component):
    """Regroups a byte stream, row by row, from input groups of up to ``in_bytes`` bytes
    into output groups of ``width`` bytes (one of ``out_widths``, chosen per row): DMA
    beats into SRAM lines, lines into beats, beats into instruction words.

    Each input carries ``count`` bytes (lanes ``0 .. count - 1``; the other lanes are
    ignored); ``last`` ends a row. A row's bytes, in order, fill output groups from lane 0;
    the row's last group is zero-padded after its bytes and has ``last`` set, so a row of
    ``n`` bytes yields ``ceil(n / width)`` groups, and the next row starts a new group.
    ``count`` of an output is its number of row bytes, ``error`` (on ``last``) the OR of
    the row's input ``error`` bits, and ``width`` of a row's inputs selects
    ``out_widths[width]`` (all inputs of a row must agree).

    Without ``mask_inputs`` the lanes past ``count`` are taken as they are instead of being
    zeroed (less logic in front of the buffer): they then show up past ``count`` in the
    row's last output group, which is only right when the consumer ignores those lanes.

    Every input but a row's last must carry a multiple of ``unit`` bytes (a power of two
    dividing every output width; default: the largest such divisor of ``in_bytes`` and the
    output widths): the bytes then only move in units of ``unit`` bytes, which keeps the
    shifter small. Throughput: an input and an output per cycle when the output keeps up;
    ``i.ready`` depends on ``o.ready`` and the repacker's registers only.

    Members
    -------
    i : In(stream.Signature(StructLayout({"data": 8 * in_bytes, "count": range(in_bytes + 1),
                                          "last": 1, "error": 1, "width": ...})))
    o : Out(stream.Signature(StructLayout({"data": 8 * max(out_widths), "count": ...,
                                           "last": 1, "error": 1})))
    """

    def __init__(self, in_bytes, out_widths, unit=None, *, mask_inputs=True):
        self.in_bytes, self.out_widths = in_bytes, tuple(out_widths)
        self.mask_inputs = mask_inputs
        self.unit = unit if unit is not None else gcd(in_bytes, *self.out_widths)
        if self.unit & (self.unit - 1) or any(w % self.unit for w in self.out_widths):
            raise ValueError(f"unit must be a power of two dividing the output widths "
                             f"{self.out_widths}, not {self.unit}")
        out_bytes = max(self.out_widths)
        # Before an input is taken at most out_bytes - unit bytes remain after the output.
        self.capacity = in_bytes + out_bytes - self.unit
        super().__init__(repacker_members(in_bytes, self.out_widths))

    def elaborate(self, platform):
        m = Module()
        capacity, unit = self.capacity, self.unit
        room = capacity - self.in_bytes  # the most bytes that may be held when taking an input
        buffer = Signal(8 * capacity)  # bytes past fill are zero
        fill = Signal(range(capacity + 1))
        row_done, error = Signal(), Signal()  # the row's last input is in the buffer
        select = Signal.like(self.i.payload.width)
        # Comparisons of fill with the output width, kept in registers so that the
        # handshakes depend on a few gates after flip-flops only.
        fill_less = Signal.like(fill)  # fill - width, when full
        full, fits = Signal(), Signal(init=1)  # fill >= width, fill <= width
        out_count = Signal.like(self.o.payload.count)  # min(fill, width)
        # An input fits without / after an output.
        room_keep, room_emit = Signal(init=1), Signal(init=1)

        def width_of(index):
            width = Signal(range(max(self.out_widths) + 1))
            m.d.comb += width.eq(self.out_widths[0])
            for option, out_width in enumerate(self.out_widths[1:], 1):
                with m.If(index == option):
                    m.d.comb += width.eq(out_width)
            return width

        consumed = Signal.like(buffer)  # the buffer without its first output group
        m.d.comb += consumed.eq(buffer >> 8 * self.out_widths[0])
        for option, out_width in enumerate(self.out_widths[1:], 1):
            with m.If(select == option):
                m.d.comb += consumed.eq(buffer >> 8 * out_width)

        final = row_done & fits
        width_held = width_of(select)
        m.d.comb += [
            self.o.valid.eq(row_done | full),
            self.o.payload.data.eq(buffer),
            self.o.payload.count.eq(out_count),
            self.o.payload.last.eq(final),
            self.o.payload.error.eq(error & final),
        ]
        emit = self.o.valid & self.o.ready
        base = Signal.like(fill)  # bytes left after this cycle's output
        kept = Signal.like(buffer)
        with m.If(emit & final):
            m.d.comb += [base.eq(0), kept.eq(0)]
        with m.Elif(emit):
            m.d.comb += [base.eq(fill_less), kept.eq(consumed)]
        with m.Else():
            m.d.comb += [base.eq(fill), kept.eq(buffer)]
        m.d.comb += self.i.ready.eq(Mux(emit, final | (~row_done & room_emit),
                                        ~row_done & room_keep))
        take = self.i.valid & self.i.ready

        lanes = self.i.payload.data
        if self.mask_inputs:
            lanes = Cat(*(Mux(self.i.payload.count > k, lanes[8 * k:8 * k + 8], 0)
                          for k in range(self.in_bytes)))
        # Place the input at byte base (a multiple of unit): a barrel shifter in units.
        placed = lanes
        for bit, select_bit in enumerate(base[unit.bit_length() - 1:]):
            step = 8 * unit << bit
            if step < len(buffer):
                placed = Mux(select_bit, Cat(Const(0, step), placed), placed)[:len(buffer)]

        m.d.sync += buffer.eq(kept | Mux(take, placed, 0))

        # The next fill and its comparisons, computed for every case in parallel so that
        # the handshakes only select among them.
        def state(value, width):
            within = value <= width
            return [fill.eq(value), fill_less.eq(value - width), full.eq(value >= width),
                    fits.eq(within), out_count.eq(Mux(within, value, width)),
                    room_keep.eq(value <= room), room_emit.eq(value <= room + width)]

        count, width_in = self.i.payload.count, width_of(self.i.payload.width)
        with m.If(take):
            m.d.sync += select.eq(self.i.payload.width)
            with m.If(emit & final):
                m.d.sync += state(count, width_in)
            with m.Elif(emit):
                m.d.sync += state(fill_less + count, width_in)
            with m.Else():
                m.d.sync += state(fill + count, width_in)
        with m.Elif(emit & final):  # empty
            m.d.sync += [fill.eq(0), full.eq(0), fits.eq(1), out_count.eq(0), room_keep.eq(1),
                         room_emit.eq(1)]
        with m.Elif(emit):
            m.d.sync += state(fill_less, width_held)
        m.d.sync += error.eq(Mux(emit & final, 0, error) | (take & self.i.payload.error))
        with m.If(take):
            m.d.sync += row_done.eq(self.i.payload.last)
        with m.Elif(emit & final):
            m.d.sync += row_done.eq(0)
        return m


class AlignedRepacker(wiring.Component):
    """A :class:`Repacker` (the same members, groups and ``error``) for rows whose groups
    line up: every input but a row's last carries a whole group of ``g`` bytes, where ``g``
    (``unit``'s multiple; it may differ from row to row, as lines of two memories do) and
    the row's output width divide one another. An input then either fits into the output
    group being filled or starts a group it fills (splitting into whole groups), so the
    bytes never move by more than a group.

    Unlike :class:`Repacker` it buffers nothing but an unfinished output group: an output
    is combinational from the input and the held bytes (a cycle earlier), ``o.valid``
    follows ``i.valid`` and ``i.ready`` follows ``o.ready``. Inputs that break the
    alignment give garbage, never a hang.

    Members
    -------
    i : In(stream.Signature(StructLayout({"data": 8 * in_bytes, "count": range(in_bytes + 1),
                                          "last": 1, "error": 1, "width": ...})))
    o : Out(stream.Signature(StructLayout({"data": 8 * max(out_widths), "count": ...,
                                           "last": 1, "error": 1})))
    """

    def __init__(self, in_bytes, out_widths, unit, *, mask_inputs=True):
        widths = (in_bytes, unit, *out_widths)
        if any(w & (w - 1) for w in widths) or unit > in_bytes:
            raise ValueError(f"in_bytes ({in_bytes}), unit ({unit}) and out_widths "
                             f"{tuple(out_widths)} must be powers of two, unit <= in_bytes")
        self.in_bytes, self.out_widths, self.unit = in_bytes, tuple(out_widths), unit
        self.mask_inputs = mask_inputs
        super().__init__(repacker_members(in_bytes, self.out_widths))

    def elaborate(self, platform):
        m = Module()
        in_bytes, unit = self.in_bytes, self.unit
        out_bytes = max(self.out_widths)
        i, o = self.i, self.o
        # Bytes of the output group held from earlier inputs (a multiple of unit, below the
        # widest group), and bytes of the current input already sent (a multiple of the
        # narrowest group, below in_bytes: only when an input splits). Where a unit fills
        # the widest group, inputs only split: nothing is held and every output ends a
        # group (a short one only with last), so no sum or comparison decides that.
        gathers = unit < out_bytes
        if gathers:
            held = Signal(8 * (out_bytes - unit), reset_less=True)  # read below pos only
            pos = Signal(range(out_bytes))
        else:
            pos = Const(0, range(out_bytes))
        sent = Signal(range(in_bytes))
        error = Signal()

        width = Signal(range(out_bytes + 1))
        m.d.comb += width.eq(self.out_widths[0])
        for option, out_width in enumerate(self.out_widths[1:], 1):
            with m.If(i.payload.width == option):
                m.d.comb += width.eq(out_width)

        def shifter(value, amount, step, limit, left):
            """``value`` shifted by ``amount`` bytes (a multiple of ``step`` below
            ``limit``): a multiplexer of as many inputs as there are such amounts."""
            result = Signal(len(value))
            for shift in range(0, limit, step):
                with m.If(amount == shift):
                    m.d.comb += result.eq((value << 8 * shift) if left else (value >> 8 * shift))
            return result

        narrowest = min(self.out_widths)
        rest = shifter(i.payload.data, sent, narrowest, in_bytes, left=False)
        placed = shifter(Cat(rest, Const(0, max(8 * (out_bytes - in_bytes), 0))),
                         pos, unit, out_bytes, left=True)[:8 * out_bytes]
        if gathers:
            total = pos + (i.payload.count - sent)  # held bytes and the input's bytes left
            group_end = (total >= width) | i.payload.last
            ends_input = total <= width
        else:
            total, ends_input = self._split_left(m, i.payload.count, sent)
            group_end = Const(1)
        count = Mux(ends_input, total, width)
        # (Lanes from len(held) // 8 on are never held: pos stays below them.)
        lanes = [Mux(k < pos, held.word_select(k, 8), placed.word_select(k, 8))
                 if gathers and k < len(held) // 8 else placed.word_select(k, 8)
                 for k in range(out_bytes)]
        if self.mask_inputs:  # lanes past the row's bytes are zero
            lanes = [Mux(k < count, lane, 0) for k, lane in enumerate(lanes)]
        last = i.payload.last & ends_input
        m.d.comb += [
            o.valid.eq(i.valid & group_end),
            o.payload.data.eq(Cat(*lanes)),
            o.payload.count.eq(count),
            o.payload.last.eq(last),
            o.payload.error.eq(last & (error | i.payload.error)),
            i.ready.eq(Mux(group_end, o.ready & ends_input, 1)),
        ]
        take = i.valid & i.ready
        group_taken = o.valid & o.ready
        with m.If(take):
            m.d.sync += [sent.eq(0), error.eq(~i.payload.last & (error | i.payload.error))]
        if gathers:
            with m.If(i.valid & ~group_end):  # held: the output group goes on
                m.d.sync += [pos.eq(total), held.eq(Cat(*lanes)[:len(held)])]
            with m.Elif(group_taken):
                m.d.sync += pos.eq(0)
        with m.If(group_taken & ~ends_input):  # the input goes on into the next group
            m.d.sync += sent.eq(sent + width)
        return m

    def _split_left(self, m, count, sent):
        """Where inputs only split: the bytes of the input not yet sent (``count - sent``)
        and whether they fit the output group (``<= width``), without an adder or a
        comparison over the whole count (their carry chains were the slowest paths from
        ``sent`` into the consumers of ``last`` and ``count``). ``sent`` is a multiple of
        the narrowest group ``g``: with ``count = h * g + lo``, the bytes left are
        ``(h - sent / g) * g + lo``, a function of a few bits."""
        g = min(self.out_widths)
        shift, groups = g.bit_length() - 1, self.in_bytes // g
        high, low = count[shift:], count[:shift]
        left_groups = Signal(range(groups + 1))
        for index in range(groups):
            for h in range(index, groups + 1):
                with m.If((sent[shift:] == index) & (high == h)):
                    m.d.comb += left_groups.eq(h - index)
        whole = Signal()  # the bytes left are whole groups (low == 0)
        m.d.comb += whole.eq(low == 0 if shift else 1)
        ends_input = Signal()
        for option, width in enumerate(self.out_widths):
            with m.If(self.i.payload.width == option if option else 1):
                m.d.comb += ends_input.eq((left_groups < width // g)
                                          | ((left_groups == width // g) & whole))
        return Cat(low, left_groups), ends_input


def group_repacker(in_bytes, out_bytes, *, mask_inputs=True):
    """A repacker of inputs of ``in_bytes`` into groups of ``out_bytes``, for rows whose
    inputs are all whole but the last: an :class:`AlignedRepacker` (nothing held but an
    unfinished group) when both are powers of two, so that they divide one another, else a
    :class:`Repacker`."""
    if in_bytes & (in_bytes - 1) or out_bytes & (out_bytes - 1):
        return Repacker(in_bytes, (out_bytes,), mask_inputs=mask_inputs)
    return AlignedRepacker(in_bytes, (out_bytes,), in_bytes, mask_inputs=mask_inputs)
