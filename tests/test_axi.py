"""AXI signatures, the AXI4-Lite slave (Amaranth simulation and cocotb + cocotbext-axi on
its Verilog), and the generated Verilog of the AXI tops in Icarus and Verilator."""

import random
import re
import subprocess

import pytest
from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from systolic.hw.axi import (RESP_OKAY, RESP_SLVERR, AXI4LiteSignature, AXI4LiteSlave,
                             AXI4ReadSignature, AXI4Signature, AXI4WriteSignature,
                             RegisterBusSignature)
from systolic.hw.verilog import generate_verilog
from systolic.sim.axi_models import AXI4LiteMaster, RegisterFile
from systolic.sim.tools import require, verilator_env

LITE = ["awaddr", "awprot", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready",
        "bresp", "bvalid", "bready", "araddr", "arprot", "arvalid", "arready", "rdata",
        "rresp", "rvalid", "rready"]
AXI4_WRITE = ["awid", "awaddr", "awlen", "awsize", "awburst", "awlock", "awcache", "awprot",
              "awqos", "awvalid", "awready", "wdata", "wstrb", "wlast", "wvalid", "wready",
              "bid", "bresp", "bvalid", "bready"]
AXI4_READ = ["arid", "araddr", "arlen", "arsize", "arburst", "arlock", "arcache", "arprot",
             "arqos", "arvalid", "arready", "rid", "rdata", "rresp", "rlast", "rvalid",
             "rready"]
#: Signals the slave drives; every other member is driven by the master.
SLAVE_DRIVEN = {"awready", "wready", "bid", "bresp", "bvalid", "arready", "rid", "rdata",
                "rresp", "rlast", "rvalid"}


# -- signatures ---------------------------------------------------------------------------

@pytest.mark.parametrize("signature, names", [
    (AXI4LiteSignature(12), LITE),
    (AXI4WriteSignature(32, 64, 2), AXI4_WRITE),
    (AXI4ReadSignature(32, 64, 2), AXI4_READ),
    (AXI4Signature(40, 128, 3), AXI4_WRITE + AXI4_READ),
])
def test_signature_members_and_directions(signature, names):
    members = signature.members
    assert list(members) == names
    for name, member in members.items():
        assert member.flow == (In if name in SLAVE_DRIVEN else Out), name
    flipped = signature.flip().members
    assert all(flipped[name].flow != members[name].flow for name in names)


def width(member):
    return Shape.cast(member.shape).width


def test_signature_widths():
    full = AXI4Signature(40, 128, 3).members
    widths = {name: width(full[name]) for name in full}
    assert (widths["awaddr"], widths["araddr"], widths["wdata"], widths["rdata"]) == (40,) * 2 \
        + (128,) * 2
    assert (widths["wstrb"], widths["awid"], widths["rid"], widths["arlen"]) == (16, 3, 3, 8)
    assert (widths["arsize"], widths["awburst"], widths["awcache"], widths["bresp"]) == \
        (3, 2, 4, 2)
    lite = AXI4LiteSignature(10, 64).members
    assert (width(lite["awaddr"]), width(lite["wdata"]), width(lite["wstrb"])) == (10, 64, 8)


@pytest.mark.parametrize("build, error, name", [
    (lambda: AXI4LiteSignature(12, 16), ValueError, "data_width"),
    (lambda: AXI4LiteSignature(0), ValueError, "addr_width"),
    (lambda: AXI4LiteSignature(65), ValueError, "addr_width"),
    (lambda: AXI4Signature(32, 24), ValueError, "data_width"),
    (lambda: AXI4Signature(32, "64"), TypeError, "data_width"),
    (lambda: AXI4Signature(32, 64, 0), ValueError, "id_width"),
    (lambda: AXI4ReadSignature(True, 64), TypeError, "addr_width"),
    (lambda: RegisterBusSignature(8, 48), ValueError, "data_width"),
])
def test_signature_parameter_errors(build, error, name):
    with pytest.raises(error, match=name):
        build()


# -- AXI4-Lite slave in Amaranth's simulator ----------------------------------------------

class RegisterBlock(wiring.Component):
    """The :class:`RegisterFile` reference in gateware, answering reads combinationally."""

    regs: In(RegisterBusSignature(8))

    def elaborate(self, platform):
        m = Module()
        regs = self.regs
        values = [Signal(32, name=f"value{index}") for index in range(RegisterFile.RW_REGISTERS)]
        reads, writes = Signal(32), Signal(32)
        word = regs.addr[2:]
        m.d.comb += regs.w_err.eq(word >= RegisterFile.RW_REGISTERS)
        with m.Switch(word):
            for index, value in enumerate(values + [reads, writes]):
                with m.Case(index):
                    m.d.comb += regs.r_data.eq(value)
            with m.Default():
                m.d.comb += regs.r_err.eq(1)
        with m.If(regs.w_en):
            m.d.sync += writes.eq(writes + 1)
            for index, value in enumerate(values):
                for lane in range(4):
                    with m.If((word == index) & regs.w_strb[lane]):
                        m.d.sync += value[8 * lane:8 * lane + 8].eq(
                            regs.w_data[8 * lane:8 * lane + 8])
        with m.If(regs.r_en):
            m.d.sync += reads.eq(reads + 1)
        return m


class LiteBench(wiring.Component):
    """An AXI4LiteSlave in front of a RegisterBlock."""

    bus: In(AXI4LiteSignature(8))

    def elaborate(self, platform):
        m = Module()
        m.submodules.slave = slave = AXI4LiteSlave(8)
        m.submodules.block = block = RegisterBlock()
        wiring.connect(m, wiring.flipped(self.bus), slave.bus)
        wiring.connect(m, slave.regs, block.regs)
        return m


def simulate(*testbenches):
    dut = LiteBench()
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in testbenches:
        sim.add_testbench(bench(AXI4LiteMaster(dut.bus)))
    sim.run()


def random_ops(seed, count, *, contiguous=False):
    """Random register accesses over mapped and unmapped words, at unaligned addresses
    too; with ``contiguous`` the strobes are one run of lanes and addresses are aligned
    (what cocotbext-axi can issue in one access)."""
    rng = random.Random(seed)
    ops = []
    for _ in range(count):
        addr = rng.randrange(0, 0x20) & (~3 if contiguous else ~0)
        if rng.random() < 0.5:
            if contiguous:
                first = rng.randrange(4)
                strb = ((1 << rng.randrange(1, 5 - first)) - 1) << first
            else:
                strb = rng.randrange(16)
            ops.append(("write", addr, rng.getrandbits(32), strb))
        else:
            ops.append(("read", addr))
    return ops


def expected_responses(ops, model=None):
    model = model or RegisterFile()
    responses = []
    for op in ops:
        if op[0] == "write":
            responses.append(RESP_SLVERR if model.write(*op[1:]) else RESP_OKAY)
        else:
            data, error = model.read(op[1])
            responses.append((data, RESP_SLVERR if error else RESP_OKAY))
    return responses


def test_lite_slave_random_accesses():
    """Random reads and writes with AW/W offered in either order or together and B/R
    back-pressure; every response matches the reference register file."""
    ops = random_ops(1, 80)
    rng = random.Random(2)
    got = []

    def bench(master):
        async def run(ctx):
            for op in ops:
                if op[0] == "write":
                    got.append(await master.write(
                        ctx, *op[1:], aw_delay=rng.randrange(4), w_delay=rng.randrange(4),
                        b_delay=rng.randrange(3)))
                else:
                    got.append(tuple(await master.read(ctx, op[1], ar_delay=rng.randrange(2),
                                                       r_delay=rng.randrange(3))))
        return run

    simulate(bench)
    expected = expected_responses(ops)
    assert got == expected
    assert RESP_SLVERR in got and RESP_OKAY in got
    assert any(isinstance(r, tuple) and r[1] == RESP_SLVERR for r in got)


def test_lite_slave_write_before_simultaneous_read():
    """AW, W and AR offered in the same cycle: the write goes first, so the read of the
    same register returns the new value."""
    got = {}

    def writer(master):
        async def run(ctx):
            got["write"] = await master.write(ctx, 0x8, 0x12345678)
        return run

    def reader(master):
        async def run(ctx):
            got["read"] = tuple(await master.read(ctx, 0x8))
        return run

    simulate(writer, reader)
    assert got == {"write": RESP_OKAY, "read": (0x12345678, RESP_OKAY)}


def test_lite_slave_concurrent_writer_and_reader():
    """A writer and a reader hammering different registers at once: no hang, no lost or
    doubled strobe (the access counters), every value right."""
    rng = random.Random(3)
    values = [rng.getrandbits(32) for _ in range(20)]
    reads = []

    def writer(master):
        async def run(ctx):
            assert await master.write(ctx, 0xC, 0xCAFEF00D) == RESP_OKAY
            for value in values:
                assert await master.write(ctx, 0x0, value, w_delay=rng.randrange(2)) \
                    == RESP_OKAY
        return run

    def reader(master):
        async def run(ctx):
            await ctx.tick().repeat(8)  # after the write of 0xC
            for _ in range(20):
                reads.append(tuple(await master.read(ctx, 0xC, r_delay=rng.randrange(2))))
            await ctx.tick().repeat(12)  # after the writer's last write
            reads.append(tuple(await master.read(ctx, 0x0)))
            reads.append(tuple(await master.read(ctx, RegisterFile.WRITES)))
            reads.append(tuple(await master.read(ctx, RegisterFile.READS)))
        return run

    simulate(writer, reader)
    assert reads[:20] == [(0xCAFEF00D, RESP_OKAY)] * 20
    assert reads[20:] == [(values[-1], RESP_OKAY), (21, RESP_OKAY), (23, RESP_OKAY)]


# -- generated Verilog ----------------------------------------------------------------------

def ports(verilog_text):
    """``{name: (direction, width)}`` of the top module's ports."""
    found = {}
    for direction, msb, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\S+);",
                                           verilog_text, re.M):
        found.setdefault(name, (direction, int(msb) + 1 if msb else 1))
    return found


@pytest.mark.parametrize("top, params, signature", [
    ("dma", {}, AXI4Signature(32, 64)),
    ("dma", {"data_bytes": 32, "addr_width": 40}, AXI4Signature(40, 256)),
    ("axil_slave", {}, AXI4LiteSignature(8).flip()),
])
def test_verilog_ports_compile_and_lint(tmp_path, top, params, signature):
    """Every AXI member is a port named ``bus__<signal>`` (what cocotbext-axi's
    ``from_prefix(dut, "bus_")`` looks for) with the right direction and width, and the
    Verilog passes ``iverilog -g2005`` and ``verilator --lint-only -Wno-WIDTH``."""
    text = generate_verilog(top, **params)
    found = ports(text)
    for name, member in signature.members.items():
        direction = "output" if member.flow == Out else "input"
        assert found[f"bus__{name}"] == (direction, width(member)), name
    path = tmp_path / f"{top}.v"
    path.write_text(text)
    icarus = subprocess.run([require("iverilog"), "-g2005", "-o", str(tmp_path / "a.vvp"),
                             str(path)], capture_output=True, text=True)
    assert icarus.returncode == 0, icarus.stderr
    lint = subprocess.run(["verilator", "--lint-only", "-Wno-WIDTH", str(path)],
                          capture_output=True, text=True, env=verilator_env())
    assert lint.returncode == 0, lint.stderr


# -- cocotb + cocotbext-axi ----------------------------------------------------------------

def test_lite_slave_verilog_with_cocotbext_axi(tmp_path):
    """The generated ``axil_slave`` driven by cocotbext-axi's AxiLiteMaster, with a
    register file answering the register bus one cycle after each strobe (registered read
    data): sequential random accesses, then writes and reads started together."""
    from systolic.sim.cocotb.runner import run_testbench

    ops = random_ops(5, 60, contiguous=True)
    rng = random.Random(6)
    concurrent = [(("write", 4 * rng.randrange(2), rng.getrandbits(32), 0xF),
                   ("read", 8 + 4 * rng.randrange(2))) for _ in range(10)]
    jobs = [{"kind": "axil", "ops": ops, "concurrent": concurrent}]
    (result,) = run_testbench("axil_slave", {}, "systolic.sim.cocotb.tb_axi", jobs,
                              work_dir=tmp_path)
    model = RegisterFile()
    assert [tuple(r) if isinstance(r, tuple) else r for r in result["responses"]] \
        == expected_responses(ops, model)
    # Reads of registers the concurrent writes leave alone, so order does not matter.
    expected_pairs = [(RESP_OKAY, (model.values[r_addr // 4], RESP_OKAY))
                      for (_, _, _, _), (_, r_addr) in concurrent]
    assert [(w, tuple(r)) for w, r in result["concurrent"]] == expected_pairs
    assert (result["reads"], result["writes"]) == (model.reads + 10, model.writes + 10)
