"""AMBA AXI4 and AXI4-Lite interface signatures, and an AXI4-Lite slave that turns host
register accesses into a simple single-cycle register bus.

Every signature is flat, with members named exactly as the AXI signals (``awaddr``,
``wdata``, ...) and directions from the master's point of view, so a component port
``m_axi: Out(AXI4Signature(...))`` comes out of Verilog generation as ``m_axi__awaddr``,
``m_axi__wdata``, ... (cocotbext-axi: ``AxiBus.from_prefix(dut, "m_axi_")``). A slave port is
``In(signature)``, that is the signature flipped.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "BURST_INCR", "RESP_OKAY", "RESP_EXOKAY", "RESP_SLVERR", "RESP_DECERR",
    "CACHE_NORMAL", "BOUNDARY_BYTES", "MAX_BURST_BEATS",
    "check_addr_width", "check_id_width",
    "AXI4LiteSignature", "AXI4ReadSignature", "AXI4WriteSignature", "AXI4Signature",
    "RegisterBusSignature", "AXI4LiteSlave", "connect_halves",
]

#: ``AxBURST`` encoding of incrementing bursts (the only kind used here).
BURST_INCR = 0b01
#: ``xRESP`` encodings; bit 1 set means the access failed.
RESP_OKAY, RESP_EXOKAY, RESP_SLVERR, RESP_DECERR = 0b00, 0b01, 0b10, 0b11
#: ``AxCACHE`` for DMA: Normal Non-cacheable Bufferable (what Zynq HP ports expect).
CACHE_NORMAL = 0b0011
#: An AXI burst must not cross an address boundary of this many bytes.
BOUNDARY_BYTES = 4096
#: Longest AXI4 INCR burst, in beats (``AxLEN`` is 8 bits).
MAX_BURST_BEATS = 256

_AXI4_DATA_WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
_AXI4_LITE_DATA_WIDTHS = (32, 64)


def _check_int(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low}..{high}, not {value}")


def check_addr_width(addr_width, minimum=1):
    """Raise unless ``addr_width`` is an integer in ``minimum``..64."""
    _check_int("addr_width", addr_width, minimum, 64)


def check_id_width(id_width):
    """Raise unless ``id_width`` is an integer in 1..16."""
    _check_int("id_width", id_width, 1, 16)


def _check_data_width(data_width, allowed):
    if isinstance(data_width, bool) or not isinstance(data_width, int):
        raise TypeError(f"data_width must be an integer, not {data_width!r}")
    if data_width not in allowed:
        raise ValueError(f"data_width must be one of {', '.join(map(str, allowed))}, "
                         f"not {data_width}")


def _lite_members(addr_width, data_width):
    return {
        "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1),
        "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
        "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    }


def _address_members(channel, addr_width, id_width):
    """AXI4 ``AW`` (``channel="aw"``) or ``AR`` (``channel="ar"``) channel members."""
    widths = {"id": id_width, "addr": addr_width, "len": 8, "size": 3, "burst": 2, "lock": 1,
              "cache": 4, "prot": 3, "qos": 4, "valid": 1}
    members = {channel + name: Out(width) for name, width in widths.items()}
    members[channel + "ready"] = In(1)
    return members


def _read_members(addr_width, data_width, id_width):
    return {
        **_address_members("ar", addr_width, id_width),
        "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
        "rvalid": In(1), "rready": Out(1),
    }


def _write_members(addr_width, data_width, id_width):
    return {
        **_address_members("aw", addr_width, id_width),
        "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1),
        "wvalid": Out(1), "wready": In(1),
        "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
    }


class AXI4LiteSignature(wiring.Signature):
    """AXI4-Lite, master's view.

    Members: ``awaddr awprot awvalid awready wdata wstrb wvalid wready bresp bvalid bready
    araddr arprot arvalid arready rdata rresp rvalid rready``.
    """

    def __init__(self, addr_width, data_width=32):
        check_addr_width(addr_width)
        _check_data_width(data_width, _AXI4_LITE_DATA_WIDTHS)
        self.addr_width, self.data_width = addr_width, data_width
        super().__init__(_lite_members(addr_width, data_width))


class _AXI4SignatureBase(wiring.Signature):
    def __init__(self, addr_width, data_width, id_width, members):
        check_addr_width(addr_width)
        _check_data_width(data_width, _AXI4_DATA_WIDTHS)
        check_id_width(id_width)
        self.addr_width, self.data_width, self.id_width = addr_width, data_width, id_width
        super().__init__(members(addr_width, data_width, id_width))


class AXI4ReadSignature(_AXI4SignatureBase):
    """The read half of AXI4 (``AR`` and ``R`` channels), master's view.

    Members: ``arid araddr arlen arsize arburst arlock arcache arprot arqos arvalid arready
    rid rdata rresp rlast rvalid rready``.
    """

    def __init__(self, addr_width, data_width, id_width=1):
        super().__init__(addr_width, data_width, id_width, _read_members)


class AXI4WriteSignature(_AXI4SignatureBase):
    """The write half of AXI4 (``AW``, ``W`` and ``B`` channels), master's view.

    Members: ``awid awaddr awlen awsize awburst awlock awcache awprot awqos awvalid awready
    wdata wstrb wlast wvalid wready bid bresp bvalid bready``.
    """

    def __init__(self, addr_width, data_width, id_width=1):
        super().__init__(addr_width, data_width, id_width, _write_members)


class AXI4Signature(_AXI4SignatureBase):
    """Full AXI4, master's view: the members of :class:`AXI4WriteSignature` followed by
    those of :class:`AXI4ReadSignature` (no ``region`` or ``user`` signals)."""

    def __init__(self, addr_width, data_width, id_width=1):
        super().__init__(addr_width, data_width, id_width, lambda *args: {
            **_write_members(*args), **_read_members(*args)})


def connect_halves(m, bus, *, read, write):
    """Join a read-half and a write-half master interface (the ``Out`` sides of
    :class:`AXI4ReadSignature` and :class:`AXI4WriteSignature`) into the full AXI4 master
    port ``bus`` (the ``Out`` side of :class:`AXI4Signature`), combinationally in ``m``."""
    for half in (read, write):
        for name, member in half.signature.members.items():
            if member.flow == Out:
                m.d.comb += getattr(bus, name).eq(getattr(half, name))
            else:
                m.d.comb += getattr(half, name).eq(getattr(bus, name))


class RegisterBusSignature(wiring.Signature):
    """A single-cycle register bus, initiator's view (the :class:`AXI4LiteSlave` drives it).

    Members
    -------
    addr : Out(addr_width)
        Byte address of the accessed word (low ``log2(data_width // 8)`` bits zero). Holds
        its value in the cycle of ``w_en``/``r_en`` and in the cycle after.
    w_en : Out(1)
        One-cycle write strobe: write ``w_data`` to the bytes of ``addr`` selected by
        ``w_strb``.
    w_data : Out(data_width)
    w_strb : Out(data_width // 8)
    w_err : In(1)
        Sampled in the cycle after ``w_en``: the write hit no register (answers SLVERR).
    r_en : Out(1)
        One-cycle read strobe (for registers with read side effects).
    r_data : In(data_width)
        Valid from the cycle after ``r_en`` until the next ``r_en`` or ``w_en`` (the
        slave's read response shows it): registered on ``r_en``, or driven combinationally
        from ``addr`` (held that long) by registers that only change on ``w_en``/``r_en``.
    r_err : In(1)
        Sampled with ``r_data``: the read hit no register (answers SLVERR).
    """

    def __init__(self, addr_width, data_width=32):
        check_addr_width(addr_width)
        _check_data_width(data_width, _AXI4_LITE_DATA_WIDTHS)
        self.addr_width, self.data_width = addr_width, data_width
        super().__init__({
            "addr": Out(addr_width),
            "w_en": Out(1), "w_data": Out(data_width), "w_strb": Out(data_width // 8),
            "w_err": In(1),
            "r_en": Out(1), "r_data": In(data_width), "r_err": In(1),
        })


class _LiteState(enum.Enum, shape=3):
    # An explicit state register rather than m.FSM(): its Verilog has no incomplete
    # case statements, which Verilator's lint rejects.
    IDLE = 0
    WRITE_CHECK = 1     # the cycle after w_en: take the CSR block's verdict
    WRITE_RESPONSE = 2
    READ = 3            # r_en
    READ_CHECK = 4      # the cycle after r_en: take the verdict (the data holds)
    READ_RESPONSE = 5


class AXI4LiteSlave(wiring.Component):
    """AXI4-Lite slave that performs each host access as one strobe on a register bus.

    One transaction at a time. ``AW`` and ``W`` are taken independently, in any order or
    together; once both are in, the write strobe ``regs.w_en`` is raised for one cycle, the
    CSR block's ``regs.w_err`` is sampled in the next cycle and the ``B`` response (OKAY, or
    SLVERR on error) is held until ``bready``. A read (``AR``) raises ``regs.r_en`` for one
    cycle, samples ``regs.r_err`` in the next cycle and holds the ``R`` response, whose
    data is ``regs.r_data`` itself (which holds it), until ``rready``. A read is only taken
    while no part of a write has been taken; when a read and a write are offered together
    they take turns (the write first after reset and after each read, the read first after
    each write), so neither starves. ``awprot``/``arprot`` are ignored. Latency: a write's
    ``B`` is valid 3 cycles after the later of its ``AW``/``W`` is taken, a read's ``R`` 3
    cycles after its ``AR``.

    Members
    -------
    bus : In(AXI4LiteSignature(addr_width, data_width))
        The host port.
    regs : Out(RegisterBusSignature(addr_width, data_width))
        To the CSR block.
    """

    def __init__(self, addr_width, data_width=32):
        super().__init__({
            "bus": In(AXI4LiteSignature(addr_width, data_width)),
            "regs": Out(RegisterBusSignature(addr_width, data_width)),
        })
        self.addr_width, self.data_width = addr_width, data_width

    def elaborate(self, platform):
        m = Module()
        bus, regs = self.bus, self.regs
        low_bits = (self.data_width // 8).bit_length() - 1

        def word_address(addr):
            return Cat(Const(0, low_bits), addr[low_bits:])

        addr = Signal(self.addr_width)
        aw_taken, w_taken = Signal(), Signal()
        w_data, w_strb = Signal(self.data_width), Signal(self.data_width // 8)
        resp = Signal(2)
        m.d.comb += [
            regs.addr.eq(addr), regs.w_data.eq(w_data), regs.w_strb.eq(w_strb),
            bus.bresp.eq(resp), bus.rresp.eq(resp), bus.rdata.eq(regs.r_data),
        ]
        # Reads and writes offered together take turns, so neither can starve the other.
        read_turn = Signal()
        read_first = Signal()
        m.d.comb += read_first.eq(bus.arvalid & ~aw_taken & ~w_taken
                                  & (read_turn | ~(bus.awvalid | bus.wvalid)))
        state = Signal(_LiteState)
        with m.If(state == _LiteState.IDLE):
            m.d.comb += [
                bus.awready.eq(~aw_taken & ~read_first),
                bus.wready.eq(~w_taken & ~read_first),
                bus.arready.eq(read_first),
            ]
            with m.If(bus.awvalid & bus.awready):
                m.d.sync += [addr.eq(word_address(bus.awaddr)), aw_taken.eq(1)]
            with m.If(bus.wvalid & bus.wready):
                m.d.sync += [w_data.eq(bus.wdata), w_strb.eq(bus.wstrb), w_taken.eq(1)]
            with m.If(aw_taken & w_taken):
                m.d.comb += regs.w_en.eq(1)
                m.d.sync += [aw_taken.eq(0), w_taken.eq(0), state.eq(_LiteState.WRITE_CHECK)]
            with m.Elif(read_first):
                m.d.sync += [addr.eq(word_address(bus.araddr)), read_turn.eq(0),
                             state.eq(_LiteState.READ)]
        with m.Elif(state == _LiteState.WRITE_CHECK):
            m.d.sync += [resp.eq(Mux(regs.w_err, RESP_SLVERR, RESP_OKAY)),
                         state.eq(_LiteState.WRITE_RESPONSE)]
        with m.Elif(state == _LiteState.WRITE_RESPONSE):
            m.d.comb += bus.bvalid.eq(1)
            with m.If(bus.bready):
                m.d.sync += [read_turn.eq(1), state.eq(_LiteState.IDLE)]
        with m.Elif(state == _LiteState.READ):
            m.d.comb += regs.r_en.eq(1)
            m.d.sync += state.eq(_LiteState.READ_CHECK)
        with m.Elif(state == _LiteState.READ_CHECK):
            m.d.sync += [resp.eq(Mux(regs.r_err, RESP_SLVERR, RESP_OKAY)),
                         state.eq(_LiteState.READ_RESPONSE)]
        with m.Else():  # READ_RESPONSE
            m.d.comb += bus.rvalid.eq(1)
            with m.If(bus.rready):
                m.d.sync += state.eq(_LiteState.IDLE)
        return m
