"""The control/status register block behind the AXI4-Lite slave, generated from the
register table in ``hw/csr.py`` (the same table the drivers and ``docs/registers.md`` use)."""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import RegisterBusSignature
from .config import HardwareConfig
from .csr import (COUNTERS, ISA_VERSION, NO_PERF_COUNTERS, REGISTERS, present_counters,
                  register)

__all__ = ["RegisterBlock", "CSR_ADDR_WIDTH", "hw_info"]

#: Byte-address bits of the register space (256 bytes).
CSR_ADDR_WIDTH = 8


def hw_info(config: HardwareConfig):
    """The constant ``HW_INFO`` register of ``config`` (layout in ``hw/csr.py``)."""
    return (config.rows | config.cols << 8 | (config.dataflow == "os") << 16
            | (config.dma_bytes.bit_length() - 1) << 17
            | (0 if config.perf_counters else NO_PERF_COUNTERS) | ISA_VERSION << 24)


class RegisterBlock(wiring.Component):
    """Registers of ``hw/csr.py``; reads of unmapped addresses and writes to unmapped or
    read-only registers answer an error (SLVERR on AXI). Reading a counter's low word
    latches its high word, so ``LO`` then ``HI`` is a consistent 64-bit value.

    Members
    -------
    bus : In(RegisterBusSignature(8, 32))
        From the AXI4-Lite slave.
    start, clear : Out(1)
        Pulses from CTRL writes.
    irq_enable : Out(1)
    prog_addr : Out(addr_width)
        ``PROG_ADDR`` (the register keeps its low ``addr_width`` bits).
    prog_count : Out(pc_width)
        The low ``pc_width`` bits of ``PROG_COUNT`` (the register keeps no more).
    busy, finished : In(1)
        Program running; pulse when it ends (sets DONE, and the interrupt if enabled).
    error : In(8)
    error_pc : In(pc_width)
    counters : In(64).array(len(COUNTERS))
        In ``COUNTERS`` order; without ``perf_counters`` only ``CYCLES`` is read, the other
        counters' registers read 0.
    irq : Out(1)
        Interrupt request (level): done or error, while enabled, until cleared.
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        super().__init__({
            "bus": In(RegisterBusSignature(CSR_ADDR_WIDTH, 32)),
            "start": Out(1), "clear": Out(1), "irq_enable": Out(1),
            "prog_addr": Out(config.addr_width), "prog_count": Out(config.pc_width),
            "busy": In(1), "finished": In(1), "error": In(8),
            "error_pc": In(config.pc_width),
            "counters": In(64).array(len(COUNTERS)),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        done, pending = Signal(), Signal()
        prog_addr = Signal(self.config.addr_width)  # (PROG_ADDR keeps no more bits)
        high_latch = Signal(32)
        m.d.comb += self.prog_addr.eq(prog_addr)

        def offset(name):
            return register(name).offset

        # Writes.
        write_error = Signal()
        writable = {offset("CTRL"), offset("IRQ_ENABLE"), offset("PROG_ADDR_LO"),
                    offset("PROG_ADDR_HI"), offset("PROG_COUNT")}
        data = bus.w_data
        def writing(name):
            return bus.w_en & (bus.addr == offset(name))

        with m.If(bus.w_en):
            m.d.sync += write_error.eq(Cat(*(bus.addr == o for o in writable)).any() == 0)
        m.d.comb += [self.start.eq(writing("CTRL") & data[0] & bus.w_strb[0] & ~self.busy),
                     self.clear.eq(writing("CTRL") & data[1] & bus.w_strb[0])]
        with m.If(writing("IRQ_ENABLE") & bus.w_strb[0]):
            m.d.sync += self.irq_enable.eq(data[0])
        for name, target in (("PROG_ADDR_LO", prog_addr[:32]), ("PROG_ADDR_HI", prog_addr[32:]),
                             ("PROG_COUNT", self.prog_count)):
            with m.If(writing(name)):
                self._write_bytes(m, target, data, bus.w_strb)
        m.d.comb += bus.w_err.eq(write_error)

        # Status.
        with m.If(self.finished):
            m.d.sync += [done.eq(1), pending.eq(self.irq_enable)]
        with m.If(self.start | self.clear):
            m.d.sync += [done.eq(0), pending.eq(0)]
        m.d.comb += self.irq.eq(pending)

        # Reads, registered on r_en.
        read_error = Signal()
        status = Cat(self.busy, done, done & (self.error != 0), pending)
        values = {
            offset("STATUS"): status, offset("IRQ_ENABLE"): self.irq_enable,
            offset("PROG_ADDR_LO"): prog_addr[:32], offset("PROG_ADDR_HI"): prog_addr[32:],
            offset("PROG_COUNT"): self.prog_count, offset("ERROR_CODE"): self.error,
            offset("ERROR_PC"): self.error_pc,
            offset("HW_INFO"): Const(hw_info(self.config), 32),
        }
        # Every case assigns all three registers (the high-word latch keeps its value but on
        # a counter's low word), so no case statement is left incomplete.
        keep_latch = high_latch.eq(high_latch)
        with m.If(bus.r_en):
            with m.Switch(bus.addr):
                for address, value in values.items():
                    with m.Case(address):
                        m.d.sync += [bus.r_data.eq(value), read_error.eq(0), keep_latch]
                present = present_counters(hw_info(self.config))
                for index, name in enumerate(COUNTERS):
                    counter = self.counters[index] if name in present else Const(0, 64)
                    with m.Case(offset(f"{name}_LO")):
                        m.d.sync += [bus.r_data.eq(counter[:32]),
                                     high_latch.eq(counter[32:]),
                                     read_error.eq(0)]
                    with m.Case(offset(f"{name}_HI")):
                        m.d.sync += [bus.r_data.eq(high_latch), read_error.eq(0), keep_latch]
                with m.Default():
                    m.d.sync += [bus.r_data.eq(0), read_error.eq(1), keep_latch]
        m.d.comb += bus.r_err.eq(read_error)
        assert {reg.offset for reg in REGISTERS} == set(values) | {offset("CTRL")} | {
            offset(f"{name}_{half}") for name in COUNTERS for half in ("LO", "HI")}
        return m

    @staticmethod
    def _write_bytes(m, target, data, strobes):
        for byte in range(min(4, (len(target) + 7) // 8)):  # (a narrower target: fewer)
            with m.If(strobes[byte]):
                m.d.sync += target[8 * byte:8 * byte + 8].eq(data[8 * byte:8 * byte + 8])
