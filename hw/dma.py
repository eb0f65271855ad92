"""AXI4 DMA engines: a reader (memory -> byte stream) and a writer (byte stream -> memory),
for any byte address and length, and both joined on one AXI4 master port.

Both engines share the two pieces that do the work: :class:`BurstSplitter` turns a command
into INCR bursts that never cross a 4 KiB boundary, and :class:`Realigner` moves bytes
between bus lanes and stream lanes. The reader drops the bytes before the start address
(byte 0 of the region lands in lane 0 of the first stream beat); the writer shifts the
stream up to the start address's lane and strobes only the region's bytes.

Command lengths are ``length_width`` bits (default ``addr_width``): the longest command a
client issues, so that the beat counts are no wider than they need be.

Stream beats (:func:`beat_layout`) carry ``data`` (``data_bytes`` bytes, byte ``i`` in bits
``8i..8i+7``), ``count`` (bytes of the region in this beat: ``data_bytes`` except perhaps on
the last beat), ``last`` (last beat of the command) and ``error`` (on the last beat: some
AXI response of the command was SLVERR or DECERR).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .axi import (BOUNDARY_BYTES, BURST_INCR, CACHE_NORMAL, MAX_BURST_BEATS, AXI4ReadSignature,
                  AXI4Signature, AXI4WriteSignature, check_addr_width, check_id_width,
                  connect_halves)

__all__ = ["DATA_BYTES", "check_dma_params", "command_layout", "beat_layout", "done_layout",
           "Realigner", "BurstSplitter", "DMAReader", "DMAWriter", "DMA"]

#: Bus widths, in bytes, the engines support.
DATA_BYTES = (4, 8, 16, 32)


def check_dma_params(addr_width, data_bytes, max_burst, max_outstanding, id_width=1,
                     length_width=None):
    """Raise :class:`ValueError`/:class:`TypeError` naming the first invalid DMA parameter."""
    check_addr_width(addr_width, minimum=12)
    if length_width is not None and (isinstance(length_width, bool)
                                     or not isinstance(length_width, int)
                                     or not 8 <= length_width <= addr_width):
        raise ValueError(f"length_width must be an integer in 8..addr_width ({addr_width}), "
                         f"not {length_width!r}")
    if isinstance(data_bytes, bool) or not isinstance(data_bytes, int):
        raise TypeError(f"data_bytes must be an integer, not {data_bytes!r}")
    if data_bytes not in DATA_BYTES:
        raise ValueError(f"data_bytes must be one of {', '.join(map(str, DATA_BYTES))}, "
                         f"not {data_bytes}")
    for name, value, high in (("max_burst", max_burst, MAX_BURST_BEATS),
                              ("max_outstanding", max_outstanding, 64)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an integer, not {value!r}")
        if not 1 <= value <= high:
            raise ValueError(f"{name} must be in 1..{high}, not {value}")
    check_id_width(id_width)


def command_layout(addr_width, length_width=None):
    """A transfer: start byte ``addr`` and byte ``length`` (any alignment) of
    ``length_width`` bits (default ``addr_width``)."""
    return data.StructLayout({"addr": addr_width, "length": length_width or addr_width})


def _beats_width(length_width, data_bytes):
    """Bits of a count of the bus beats a command of ``length_width`` bits spans (its full
    beats, plus up to two partial ones)."""
    return length_width - (data_bytes.bit_length() - 1) + 1


def beat_layout(data_bytes):
    """One beat of a packed byte stream (see the module docstring)."""
    return data.StructLayout({"data": 8 * data_bytes, "count": range(data_bytes + 1),
                              "last": 1, "error": 1})


def done_layout():
    """Completion of a write command: ``error`` if some write response failed."""
    return data.StructLayout({"error": 1})


def _realign_layout(length_width, data_bytes):
    return data.StructLayout({
        "beats": _beats_width(length_width, data_bytes),  # input beats of the command
        "none": 1,                       # beats == 0
        "single": 1,                     # beats == 1 (both: no wide comparison downstream)
        "shift": range(data_bytes + 1),  # 1..data_bytes: see Realigner
        "prime": 1,                      # the first input beat only fills the window
        "flush": 1,                      # one more output beat after the last input beat
        "lead": range(data_bytes),       # lanes before the region in the first output beat
        "last_count": range(data_bytes + 1),  # lanes up to the region's end in the last one
    })


class Realigner(wiring.Component):
    """Repacks a stream of ``data_bytes``-wide beats at a byte offset, command by command.

    For each command on ``cmd`` it takes ``beats`` input beats and, keeping the previous one,
    emits as output the bytes ``shift .. shift + data_bytes - 1`` of (previous beat, current
    beat) read as one little-endian word of two beats (``shift`` in 1..``data_bytes``; the
    previous beat of the first is don't-care). With ``prime`` the first input beat yields no
    output; with ``flush`` one more output beat follows the last input beat, built from it
    alone. So a reader drops ``s`` leading bytes with ``shift = s`` and ``prime = s != 0``, and
    a writer delays the stream by ``s`` lanes with ``shift = data_bytes - s``. A command
    with no input beats and ``flush`` emits one beat of count ``last_count``.

    Each output beat has ``lead`` (the command's ``lead`` on its first beat, else 0),
    ``count`` (the command's ``last_count`` on its last beat, else ``data_bytes``), ``last``,
    and ``error`` (on the last beat: OR of the input beats' ``error``). Lanes
    ``lead .. count - 1`` hold the region's bytes. Throughput is one beat per cycle, plus one
    cycle per command to load it.

    Members
    -------
    cmd : In(stream.Signature(_realign_layout(length_width, data_bytes)))
    i : In(stream.Signature(StructLayout({"data": 8 * data_bytes, "error": 1})))
    o : Out(stream.Signature(StructLayout({"data": ..., "lead": ..., "count": ...,
                                           "last": 1, "error": 1})))
    """

    def __init__(self, length_width, data_bytes):
        self.data_bytes = data_bytes
        super().__init__({
            "cmd": In(stream.Signature(_realign_layout(length_width, data_bytes))),
            "i": In(stream.Signature(data.StructLayout({"data": 8 * data_bytes,
                                                        "error": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": 8 * data_bytes, "lead": range(data_bytes),
                "count": range(data_bytes + 1), "last": 1, "error": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        db = self.data_bytes
        command = Signal.like(self.cmd.payload)
        active, priming, first, error = Signal(), Signal(), Signal(), Signal()
        left = Signal.like(command.beats)  # input beats still to take
        previous = Signal(8 * db)

        # left == 0 and left == 1 in registers of their own.
        none_left, one_left = Signal(), Signal()
        taking = active & ~none_left
        flushing = active & none_left
        last = flushing | (one_left & ~command.flush)
        take = self.i.valid & self.i.ready
        # A flush beat must not follow the next command's data offered meanwhile.
        window = Cat(previous, Mux(flushing, 0, self.i.payload.data)).bit_select(
            Cat(Const(0, 3), command.shift), 8 * db)
        m.d.comb += [
            self.cmd.ready.eq(~active),
            self.i.ready.eq(taking & (priming | self.o.ready)),
            self.o.valid.eq(flushing | (taking & ~priming & self.i.valid)),
            self.o.payload.data.eq(window),
            self.o.payload.lead.eq(Mux(first, command.lead, 0)),
            self.o.payload.count.eq(Mux(last, command.last_count, db)),
            self.o.payload.last.eq(last),
            self.o.payload.error.eq(last & (error | (taking & self.i.payload.error))),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            payload = self.cmd.payload
            m.d.sync += [command.eq(payload), left.eq(payload.beats),
                         none_left.eq(payload.none), one_left.eq(payload.single),
                         active.eq(~payload.none | payload.flush),
                         priming.eq(payload.prime), first.eq(1), error.eq(0)]
        with m.If(take):
            m.d.sync += [previous.eq(self.i.payload.data), left.eq(left - 1), priming.eq(0),
                         none_left.eq(one_left), one_left.eq(left == 2),
                         error.eq(error | self.i.payload.error)]
            with m.If(one_left & ~command.flush):
                m.d.sync += active.eq(0)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += first.eq(0)
            with m.If(flushing):
                m.d.sync += active.eq(0)
        return m


class BurstSplitter(wiring.Component):
    """Splits transfer commands into AXI INCR bursts of full bus-width beats.

    For each command it emits one :class:`Realigner` command on ``align`` (in the same cycle
    it takes the command; ``direction`` ``"read"`` or ``"write"`` says which realignment),
    then the bursts covering every bus word the region touches on ``bursts``: each starts
    where the previous ended and is as long as possible without exceeding ``max_burst``
    beats or crossing a 4 KiB boundary; ``last`` marks the command's final burst. A command
    of length 0 has no bursts. A command is only taken once every burst of the previous one
    has been emitted. Addresses wrap at ``2**addr_width``; lengths are ``length_width``
    bits.

    Members
    -------
    cmd : In(stream.Signature(command_layout(addr_width, length_width)))
    align : Out(stream.Signature(_realign_layout(length_width, data_bytes)))
    bursts : Out(stream.Signature(StructLayout({"addr": addr_width, "len": 8, "last": 1})))
        ``addr`` is bus-word aligned; ``len`` is beats - 1 (AXI ``AxLEN``).
    """

    def __init__(self, addr_width, data_bytes, max_burst, direction, length_width=None):
        if direction not in ("read", "write"):
            raise ValueError(f"direction must be 'read' or 'write', not {direction!r}")
        self.addr_width, self.data_bytes = addr_width, data_bytes
        self.length_width = length_width or addr_width
        self.max_burst, self.direction = max_burst, direction
        super().__init__({
            "cmd": In(stream.Signature(command_layout(addr_width, self.length_width))),
            "align": Out(stream.Signature(_realign_layout(self.length_width, data_bytes))),
            "bursts": Out(stream.Signature(data.StructLayout({
                "addr": addr_width, "len": 8, "last": 1}))),
        })

    def _align_command(self, m, addr, length):
        """The Realigner command and the number of bus beats for a (addr, length) command.

        With ``length = hi * data_bytes + lo`` and ``offset`` the address's lane, the region
        spans ``hi + c`` bus beats and ``hi + (lo != 0)`` stream beats, where ``c`` (0, 1 or
        2) follows from ``offset + lo`` alone: one wide adder, and no comparison after it."""
        db = self.data_bytes
        lane_bits = db.bit_length() - 1
        offset = addr[:lane_bits]
        empty = length == 0
        high, low = length[lane_bits:], length[:lane_bits]
        lanes = Signal(lane_bits + 1)  # offset + low: the bytes past the last full beats
        m.d.comb += lanes.eq(offset + low)
        extra = Mux(lanes == 0, 0, Mux(lanes <= db, 1, 2))
        bus_beats = Signal(_beats_width(self.length_width, db))
        m.d.comb += bus_beats.eq(Mux(empty, 0, high + extra))
        partial = low != 0
        data_beats = high + partial

        def is_one(high, small):  # high * 1 + small == 1, small in 0..2
            return ((high == 0) & (small == 1)) | ((high == 1) & (small == 0))
        align = Signal(self.align.payload.shape())
        if self.direction == "read":
            prime = (offset != 0) & ~empty
            m.d.comb += [
                align.beats.eq(bus_beats),
                align.none.eq(empty),
                align.single.eq(~empty & is_one(high, extra)),
                align.shift.eq(Mux(offset == 0, db, offset)),
                align.prime.eq(prime),
                align.flush.eq(empty | (partial + prime != extra)),
                align.lead.eq(0),
                align.last_count.eq(Mux(empty, 0, (low - 1)[:lane_bits] + 1)),
            ]
        else:
            # A length-0 command still takes the one beat a reader emits for it.
            m.d.comb += [
                align.beats.eq(Mux(empty, 1, data_beats)),
                align.none.eq(0),
                align.single.eq(empty | is_one(high, partial)),
                align.shift.eq(db - offset),
                align.prime.eq(empty),
                align.flush.eq(~empty & (partial != extra)),
                align.lead.eq(offset),
                # The lane of the region's last byte, plus one.
                align.last_count.eq((lanes - 1)[:lane_bits] + 1),
            ]
        return align, bus_beats

    def elaborate(self, platform):
        m = Module()
        db = self.data_bytes
        lane_bits = db.bit_length() - 1
        page_beats = BOUNDARY_BYTES // db
        page_bits = page_beats.bit_length() - 1
        max_burst = self.max_burst

        busy = Signal()
        beat = Signal(self.addr_width - lane_bits)  # bus-word address of the next burst
        left = Signal(_beats_width(self.length_width, db))  # bus beats still to request
        # Beats from `beat` to the next 4 KiB boundary and the burst length that allows, the
        # length of every burst but a command's last: registers, so that a burst's update
        # (beat + cap, left - cap) has no comparison in front of its adders.
        to_boundary = Signal(range(page_beats + 1))
        cap = Signal(range(max_burst + 1))

        def limits(beats_to_boundary):
            return [to_boundary.eq(beats_to_boundary),
                    cap.eq(Mux(beats_to_boundary > max_burst, max_burst, beats_to_boundary))]

        align, bus_beats = self._align_command(m, self.cmd.payload.addr, self.cmd.payload.length)
        m.d.comb += [
            self.cmd.ready.eq(~busy & self.align.ready),
            self.align.valid.eq(self.cmd.valid & ~busy),
            self.align.payload.eq(align),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            start = self.cmd.payload.addr[lane_bits:]
            m.d.sync += [beat.eq(start), left.eq(bus_beats),
                         busy.eq(self.cmd.payload.length != 0),
                         *limits(page_beats - start[:page_bits])]

        # The last burst of the command: left <= cap, the high bits of left compared
        # with zero apart from the short comparison of the low ones.
        cap_bits = len(cap)
        last = (left[cap_bits:] == 0) & (left[:cap_bits] <= cap)
        m.d.comb += [
            self.bursts.valid.eq(busy),
            self.bursts.payload.addr.eq(Cat(Const(0, lane_bits), beat)),
            self.bursts.payload.len.eq(Mux(last, left[:cap_bits] - 1, cap - 1)),
            self.bursts.payload.last.eq(last),
        ]
        with m.If(self.bursts.valid & self.bursts.ready):
            # After the last burst these are don't-care: the next command reloads them.
            m.d.sync += [beat.eq(beat + cap), left.eq(left - cap),
                         *limits(Mux(to_boundary == cap, page_beats, to_boundary - cap))]
            with m.If(last):
                m.d.sync += busy.eq(0)
        return m


def _address_channel(m, bus, channel, burst, size_code):
    """Drive the constant and per-burst fields of the ``aw``/``ar`` channel of ``bus``."""
    m.d.comb += [
        getattr(bus, channel + "id").eq(0),
        getattr(bus, channel + "addr").eq(burst.addr),
        getattr(bus, channel + "len").eq(burst.len),
        getattr(bus, channel + "size").eq(size_code),
        getattr(bus, channel + "burst").eq(BURST_INCR),
        getattr(bus, channel + "lock").eq(0),
        getattr(bus, channel + "cache").eq(CACHE_NORMAL),
        getattr(bus, channel + "prot").eq(0),
        getattr(bus, channel + "qos").eq(0),
    ]


class _Engine(wiring.Component):
    """What the reader and writer share: parameters, and a splitter feeding a realigner
    through a queue of realigner commands (so the splitter can run up to
    ``max_outstanding`` commands ahead of the data)."""

    def __init__(self, addr_width, data_bytes, max_burst, max_outstanding, id_width,
                 length_width, members):
        self.addr_width, self.data_bytes = addr_width, data_bytes
        self.max_burst, self.max_outstanding, self.id_width = max_burst, max_outstanding, id_width
        self.length_width = length_width or addr_width
        super().__init__(members)

    def _datapath(self, m, direction):
        m.submodules.splitter = splitter = BurstSplitter(
            self.addr_width, self.data_bytes, self.max_burst, direction, self.length_width)
        m.submodules.realigner = realigner = Realigner(self.length_width, self.data_bytes)
        m.submodules.align_queue = queue = SyncFIFO(
            width=len(splitter.align.payload.as_value()), depth=self.max_outstanding)
        m.d.comb += [
            queue.w_en.eq(splitter.align.valid), queue.w_data.eq(splitter.align.payload),
            splitter.align.ready.eq(queue.w_rdy),
            realigner.cmd.valid.eq(queue.r_rdy), realigner.cmd.payload.eq(queue.r_data),
            queue.r_en.eq(realigner.cmd.ready),
        ]
        return splitter, realigner


class DMAReader(_Engine):
    """Reads byte regions from AXI4 memory into a packed byte stream.

    Each command (``addr``, ``length``) yields ``ceil(length / data_bytes)`` beats on
    ``data`` (at least one: a command of length 0 yields one beat of ``count`` 0 and reads
    nothing), with byte 0 of the region in lane 0 of the first beat; see
    :func:`beat_layout`. Errors are reported per command: ``error`` on the command's last
    beat if any of its ``R`` beats answered SLVERR/DECERR (its data is then garbage); the
    engine still takes every beat, so nothing hangs.

    Reads are INCR bursts of full bus width, ID 0, of up to ``max_burst`` beats, not crossing
    4 KiB boundaries, with up to ``max_outstanding`` bursts in flight so long reads stream at
    one beat per cycle against a memory with latency. ``data.valid`` follows ``rvalid``
    and ``rready`` follows ``data.ready`` combinationally.

    Members
    -------
    cmd : In(stream.Signature(command_layout(addr_width, length_width)))
    data : Out(stream.Signature(beat_layout(data_bytes)))
    bus : Out(AXI4ReadSignature(addr_width, 8 * data_bytes, id_width))
    """

    def __init__(self, addr_width=32, data_bytes=8, *, max_burst=MAX_BURST_BEATS,
                 max_outstanding=4, id_width=1, length_width=None):
        check_dma_params(addr_width, data_bytes, max_burst, max_outstanding, id_width,
                         length_width)
        super().__init__(addr_width, data_bytes, max_burst, max_outstanding, id_width,
                         length_width, {
            "cmd": In(stream.Signature(command_layout(addr_width, length_width))),
            "data": Out(stream.Signature(beat_layout(data_bytes))),
            "bus": Out(AXI4ReadSignature(addr_width, 8 * data_bytes, id_width)),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        splitter, realigner = self._datapath(m, "read")
        wiring.connect(m, wiring.flipped(self.cmd), splitter.cmd)

        # Bursts requested whose last beat has not arrived.
        outstanding = Signal(range(self.max_outstanding + 1))
        may_issue = outstanding != self.max_outstanding
        issued = bus.arvalid & bus.arready
        retired = bus.rvalid & bus.rready & bus.rlast
        m.d.sync += outstanding.eq(outstanding + issued - retired)
        _address_channel(m, bus, "ar", splitter.bursts.payload, self.data_bytes.bit_length() - 1)
        m.d.comb += [
            # outstanding only falls while a burst waits, so arvalid never drops early.
            bus.arvalid.eq(splitter.bursts.valid & may_issue),
            splitter.bursts.ready.eq(bus.arready & may_issue),
            realigner.i.valid.eq(bus.rvalid),
            realigner.i.payload.data.eq(bus.rdata),
            realigner.i.payload.error.eq(bus.rresp[1]),
            bus.rready.eq(realigner.i.ready),
            self.data.valid.eq(realigner.o.valid),
            realigner.o.ready.eq(self.data.ready),
            self.data.payload.data.eq(realigner.o.payload.data),
            self.data.payload.count.eq(realigner.o.payload.count),
            self.data.payload.last.eq(realigner.o.payload.last),
            self.data.payload.error.eq(realigner.o.payload.error),
        ]
        return m


class DMAWriter(_Engine):
    """Writes a packed byte stream into byte regions of AXI4 memory.

    Each command (``addr``, ``length``) takes exactly as many beats from ``data`` as
    :class:`DMAReader` emits for it, ``max(1, ceil(length / data_bytes))``, byte 0 of the
    region in lane 0 of the first beat (so a reader's output can feed a writer directly);
    the beats' ``count``, ``last`` and ``error`` are not looked at, the command's length
    decides. Only the region's bytes are written (``wstrb``). When every write
    response of the command has arrived, one entry goes out on ``done`` (in command order),
    with ``error`` if any of them was SLVERR/DECERR; until ``done`` is taken, the engine
    holds that command's last ``B``. A command of length 0 takes its one beat, writes
    nothing and is done once the commands before it are.

    Writes are INCR bursts of full bus width, ID 0, of up to ``max_burst`` beats, not
    crossing 4 KiB boundaries, with up to ``max_outstanding`` bursts in flight. A burst's
    ``W`` beats may be offered as soon as its ``AW`` is, never earlier.

    Members
    -------
    cmd : In(stream.Signature(command_layout(addr_width, length_width)))
    data : In(stream.Signature(beat_layout(data_bytes)))
    done : Out(stream.Signature(done_layout()))
    bus : Out(AXI4WriteSignature(addr_width, 8 * data_bytes, id_width))
    """

    def __init__(self, addr_width=32, data_bytes=8, *, max_burst=MAX_BURST_BEATS,
                 max_outstanding=4, id_width=1, length_width=None):
        check_dma_params(addr_width, data_bytes, max_burst, max_outstanding, id_width,
                         length_width)
        super().__init__(addr_width, data_bytes, max_burst, max_outstanding, id_width,
                         length_width, {
            "cmd": In(stream.Signature(command_layout(addr_width, length_width))),
            "data": In(stream.Signature(beat_layout(data_bytes))),
            "done": Out(stream.Signature(done_layout())),
            "bus": Out(AXI4WriteSignature(addr_width, 8 * data_bytes, id_width)),
        })

    def elaborate(self, platform):
        m = Module()
        bus, db = self.bus, self.data_bytes
        splitter, realigner = self._datapath(m, "write")
        bursts = splitter.bursts

        # Per burst in order of AW: is it its command's last, or a length-0 command's
        # placeholder that gets no B.
        response_layout = data.StructLayout({"last": 1, "no_response": 1})
        m.submodules.responses = responses = SyncFIFO(
            width=response_layout.size, depth=self.max_outstanding + 2)
        # Per burst in order of AW: its AxLEN, for wlast.
        m.submodules.lengths = lengths = SyncFIFO(width=8, depth=self.max_outstanding)

        # A length-0 command has no bursts: it gets a placeholder among the responses,
        # queued as the splitter takes it (the splitter only takes a command once it has
        # emitted every burst of the earlier ones).
        empty = self.cmd.payload.length == 0
        room = ~empty | responses.w_rdy
        placeholder = self.cmd.valid & self.cmd.ready & empty
        m.d.comb += [
            splitter.cmd.payload.eq(self.cmd.payload),
            splitter.cmd.valid.eq(self.cmd.valid & room),
            self.cmd.ready.eq(splitter.cmd.ready & room),
        ]

        # AW: a register stage; a burst is taken when there is room for it everywhere.
        outstanding = Signal(range(self.max_outstanding + 1))
        aw = Signal.like(bursts.payload)
        aw_valid = Signal()
        take = (bursts.valid & (~aw_valid | bus.awready) & (outstanding != self.max_outstanding)
                & lengths.w_rdy & responses.w_rdy)
        _address_channel(m, bus, "aw", aw, db.bit_length() - 1)
        m.d.comb += [bus.awvalid.eq(aw_valid), bursts.ready.eq(take)]
        with m.If(take):
            m.d.sync += [aw.eq(bursts.payload), aw_valid.eq(1)]
        with m.Elif(bus.awready):
            m.d.sync += aw_valid.eq(0)
        response_in = Signal(response_layout)
        m.d.comb += [
            lengths.w_en.eq(take), lengths.w_data.eq(bursts.payload.len),
            responses.w_en.eq(take | placeholder),
            response_in.last.eq(Mux(take, bursts.payload.last, 1)),
            response_in.no_response.eq(~take),
            responses.w_data.eq(response_in),
        ]

        # W: realigned data, strobes for the region's lanes, wlast from the burst lengths.
        m.d.comb += [realigner.i.valid.eq(self.data.valid),
                     realigner.i.payload.data.eq(self.data.payload.data),
                     self.data.ready.eq(realigner.i.ready)]
        beat = Signal(8)
        out = realigner.o.payload
        all_lanes = Const((1 << db) - 1, db)
        wlast = beat == lengths.r_data
        m.d.comb += [
            bus.wvalid.eq(realigner.o.valid & lengths.r_rdy),
            realigner.o.ready.eq(bus.wready & lengths.r_rdy),
            bus.wdata.eq(out.data),
            # Lanes lead .. count - 1.
            bus.wstrb.eq((all_lanes << out.lead)[:db] & ~(all_lanes << out.count)[:db]),
            bus.wlast.eq(wlast),
        ]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += beat.eq(Mux(wlast, 0, beat + 1))
            m.d.comb += lengths.r_en.eq(wlast)

        # B: in order; errors gathered per command and reported on done.
        head = data.View(response_layout, responses.r_data)
        error = Signal()
        m.d.comb += [
            bus.bready.eq(responses.r_rdy & ~head.no_response & (~head.last | self.done.ready)),
            self.done.valid.eq(responses.r_rdy & head.last & (head.no_response | bus.bvalid)),
            self.done.payload.error.eq(~head.no_response & (error | bus.bresp[1])),
            responses.r_en.eq((bus.bvalid & bus.bready)
                              | (self.done.valid & self.done.ready & head.no_response)),
        ]
        responded = bus.bvalid & bus.bready
        with m.If(responded):
            m.d.sync += error.eq(~head.last & (error | bus.bresp[1]))
        m.d.sync += outstanding.eq(outstanding + take - responded)
        return m


class DMA(wiring.Component):
    """A :class:`DMAReader` and a :class:`DMAWriter` sharing one AXI4 master port (reads and
    writes proceed independently, both with ID 0). Parameters as for the engines.

    Members
    -------
    read_cmd : In(stream.Signature(command_layout(addr_width, length_width)))
    read_data : Out(stream.Signature(beat_layout(data_bytes)))
    write_cmd : In(stream.Signature(command_layout(addr_width, length_width)))
    write_data : In(stream.Signature(beat_layout(data_bytes)))
    write_done : Out(stream.Signature(done_layout()))
    bus : Out(AXI4Signature(addr_width, 8 * data_bytes, id_width))
    """

    def __init__(self, addr_width=32, data_bytes=8, *, max_burst=MAX_BURST_BEATS,
                 max_outstanding=4, id_width=1, length_width=None):
        check_dma_params(addr_width, data_bytes, max_burst, max_outstanding, id_width,
                         length_width)
        self._params = dict(addr_width=addr_width, data_bytes=data_bytes, max_burst=max_burst,
                            max_outstanding=max_outstanding, id_width=id_width,
                            length_width=length_width)
        super().__init__({
            "read_cmd": In(stream.Signature(command_layout(addr_width, length_width))),
            "read_data": Out(stream.Signature(beat_layout(data_bytes))),
            "write_cmd": In(stream.Signature(command_layout(addr_width, length_width))),
            "write_data": In(stream.Signature(beat_layout(data_bytes))),
            "write_done": Out(stream.Signature(done_layout())),
            "bus": Out(AXI4Signature(addr_width, 8 * data_bytes, id_width)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader = reader = DMAReader(**self._params)
        m.submodules.writer = writer = DMAWriter(**self._params)
        wiring.connect(m, wiring.flipped(self.read_cmd), reader.cmd)
        wiring.connect(m, wiring.flipped(self.read_data), reader.data)
        wiring.connect(m, wiring.flipped(self.write_cmd), writer.cmd)
        wiring.connect(m, wiring.flipped(self.write_data), writer.data)
        wiring.connect(m, wiring.flipped(self.write_done), writer.done)
        connect_halves(m, self.bus, read=reader.bus, write=writer.bus)
        return m
