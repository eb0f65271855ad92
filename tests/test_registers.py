"""The CSR block behind the AXI4-Lite slave: the register map of hw/csr.py over AXI."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from systolic.hw.axi import RESP_OKAY, RESP_SLVERR, AXI4LiteSlave
from systolic.hw.config import HardwareConfig
from systolic.hw.csr import COUNTERS, ISA_VERSION, register
from systolic.hw.registers import CSR_ADDR_WIDTH, RegisterBlock
from systolic.sim.axi_models import AXI4LiteMaster


def test_register_map_over_axi_lite():
    config = HardwareConfig(rows=3, cols=5, dataflow="os", dma_bytes=16)
    m = Module()
    m.submodules.slave = slave = AXI4LiteSlave(CSR_ADDR_WIDTH, 32)
    m.submodules.regs = regs = RegisterBlock(config)
    wiring.connect(m, slave.regs, regs.bus)
    master = AXI4LiteMaster(slave.bus)
    seen = {}

    async def bench(ctx):
        async def read(name):
            return await master.read(ctx, register(name).offset)

        info, resp = await read("HW_INFO")
        assert resp == RESP_OKAY
        assert info == 3 | 5 << 8 | 1 << 16 | 4 << 17 | ISA_VERSION << 24
        assert await master.write(ctx, register("PROG_ADDR_LO").offset, 0x1234_5678) == RESP_OKAY
        assert await master.write(ctx, register("PROG_COUNT").offset, 0xAB, strb=0b0001) == \
            RESP_OKAY
        assert await read("PROG_ADDR_LO") == (0x1234_5678, RESP_OKAY)
        assert ctx.get(regs.prog_addr) == 0x1234_5678
        # PROG_ADDR keeps addr_width (32) bits: the high word reads 0.
        assert await master.write(ctx, register("PROG_ADDR_HI").offset, 5) == RESP_OKAY
        assert await read("PROG_ADDR_HI") == (0, RESP_OKAY)
        assert await read("PROG_COUNT") == (0xAB, RESP_OKAY)
        # Read-only and unmapped registers refuse writes; unmapped reads are errors.
        assert await master.write(ctx, register("HW_INFO").offset, 1) == RESP_SLVERR
        assert await master.write(ctx, 0xFC, 1) == RESP_SLVERR
        assert (await master.read(ctx, 0xFC))[1] == RESP_SLVERR
        # A 64-bit counter reads consistently: the low word latches the high word.
        ctx.set(regs.counters[0], 0x0000_0001_FFFF_FFFF)
        low, _ = await read(f"{list(COUNTERS)[0]}_LO")
        ctx.set(regs.counters[0], 0x0000_0002_0000_0000)
        high, _ = await read(f"{list(COUNTERS)[0]}_HI")
        assert (low, high) == (0xFFFF_FFFF, 1)
        # start pulses; done, the error bit and the interrupt follow `finished`.
        assert await master.write(ctx, register("IRQ_ENABLE").offset, 1) == RESP_OKAY
        ctx.set(regs.error, 3)
        ctx.set(regs.finished, 1)
        await ctx.tick()
        ctx.set(regs.finished, 0)
        assert ctx.get(regs.irq) == 1
        status, _ = await read("STATUS")
        assert status == 0b1110
        await master.write(ctx, register("CTRL").offset, 2)
        assert ctx.get(regs.irq) == 0
        seen["done"] = True

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["done"]
