"""On-chip SRAMs: banked scratchpad and accumulator memories with arbitrated ports.

A :class:`BankedMemory` is ``banks`` simple-dual-port ``lib.memory.Memory`` blocks (one read
and one write port each, as FPGA block RAMs have), selected by the high address bits. Any
number of clients attach through :class:`ReadPortSignature` and :class:`WritePortSignature`;
when several clients want the same bank's port in the same cycle, the one listed first
wins and the others see ``ready`` low and retry, so bank conflicts cost cycles, never data.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["ReadPortSignature", "WritePortSignature", "BankedMemory", "LineSequencer",
           "LineReader"]


class ReadPortSignature(wiring.Signature):
    """A client's read port (client's view). Issue a read by holding ``en`` with ``addr``
    until ``ready``; the line is on ``data`` in the cycle after the read was accepted (only
    then: capture it).

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

    Members
    -------
    read : In(ReadPortSignature(addr_bits, data_bits)).array(readers)
    write : In(WritePortSignature(addr_bits, data_bits)).array(writers)
    """

    def __init__(self, lines, data_bits, banks, readers, writers):
        self.lines, self.data_bits, self.banks = lines, data_bits, banks
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
        bank_data = []
        for bank in range(self.banks):
            memory = Memory(shape=self.data_bits, depth=bank_lines, init=[])
            m.submodules[f"bank{bank}"] = memory
            # Transparent: a read in the cycle of a write to the same line returns the new
            # line, so read-modify-write of consecutive results needs no forwarding.
            wr = memory.write_port()
            rd = memory.read_port(transparent_for=(wr,))
            bank_data.append(rd.data)
            # Each port of the bank serves the first client (lowest index) that wants it.
            read_taken = Const(0)
            for port in self.read:
                wants = port.en & (self._bank_of(port.addr) == bank)
                with m.If(wants & ~read_taken):
                    m.d.comb += [rd.addr.eq(port.addr[:offset_bits]), rd.en.eq(1),
                                 port.ready.eq(1)]
                read_taken = read_taken | wants
            write_taken = Const(0)
            for port in self.write:
                wants = port.valid & (self._bank_of(port.payload.addr) == bank)
                with m.If(wants & ~write_taken):
                    m.d.comb += [wr.addr.eq(port.payload.addr[:offset_bits]),
                                 wr.data.eq(port.payload.data), wr.en.eq(1), port.ready.eq(1)]
                write_taken = write_taken | wants
        # A client's data comes from the bank that served its last read.
        for index, port in enumerate(self.read):
            served = Signal(range(max(self.banks, 2)), name=f"served{index}")
            with m.If(port.en & port.ready):
                m.d.sync += served.eq(self._bank_of(port.addr))
            m.d.comb += port.data.eq(bank_data[0])
            for bank in range(1, self.banks):
                with m.If(served == bank):
                    m.d.comb += port.data.eq(bank_data[bank])
        return m


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
        index = Signal(16)
        last = index == self.desc.payload.count - 1
        m.d.comb += [
            self.addrs.valid.eq(self.desc.valid),
            self.addrs.payload.addr.eq(self.desc.payload.base + index),
            self.addrs.payload.tag.last.eq(last),
            self.addrs.payload.tag.flags.eq(self.desc.payload.flags),
            self.desc.ready.eq(self.addrs.ready & last),
        ]
        with m.If(self.addrs.valid & self.addrs.ready):
            m.d.sync += index.eq(Mux(last, 0, index + 1))
        return m


class LineReader(wiring.Component):
    """Reads the SRAM line of each address on ``addrs`` through ``port`` and streams it, with
    its tag, on ``lines`` at up to one line per cycle, honouring back-pressure (lines wait in
    a small queue; a read is only issued when its line will have room).

    Members
    -------
    addrs : In(stream.Signature(StructLayout({"addr": addr_bits, "tag": tag})))
    port : Out(ReadPortSignature(addr_bits, data_bits))
    lines : Out(stream.Signature(StructLayout({"data": data_bits, "tag": tag})))
    """

    DEPTH = 4

    def __init__(self, addr_bits, data_bits, tag):
        self.tag = tag
        super().__init__({
            "addrs": In(stream.Signature(data.StructLayout({"addr": addr_bits, "tag": tag}))),
            "port": Out(ReadPortSignature(addr_bits, data_bits)),
            "lines": Out(stream.Signature(data.StructLayout({"data": data_bits, "tag": tag}))),
        })

    def elaborate(self, platform):
        m = Module()
        layout = data.Layout.cast(self.lines.payload.shape())
        m.submodules.queue = queue = SyncFIFO(width=layout.size, depth=self.DEPTH)
        in_flight = Signal()
        tag = Signal(self.tag)
        room = queue.level + in_flight < self.DEPTH
        m.d.comb += [
            self.port.en.eq(self.addrs.valid & room),
            self.port.addr.eq(self.addrs.payload.addr),
            self.addrs.ready.eq(self.port.ready & room),
            queue.w_en.eq(in_flight),
            queue.w_data.eq(Cat(self.port.data, tag)),
            self.lines.valid.eq(queue.r_rdy),
            self.lines.payload.eq(queue.r_data),
            queue.r_en.eq(self.lines.ready),
        ]
        accepted = self.addrs.valid & self.addrs.ready
        m.d.sync += in_flight.eq(accepted)
        with m.If(accepted):
            m.d.sync += tag.eq(self.addrs.payload.tag)
        return m
