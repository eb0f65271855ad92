"""cocotb testbench for the AXI blocks on their generated Verilog, with cocotbext-axi.

One cocotb test runs every job in the jobs file; each job's ``kind`` says what to do:

* ``"dma"`` (top ``dma``): an ``AxiRam`` loaded with ``memory`` (with random pauses of
  probability ``pause`` on every AXI channel) serves the DMA while the testbench feeds ``reads`` and
  ``writes`` commands and the ``write_beats`` data words, with random gaps and stalls on
  the streams. Result: ``{"read_beats": [word...], "done": [word...], "memory": bytes}``.
* ``"axil"`` (top ``axil_slave``): ``AxiLiteMaster`` performs ``ops`` — ``("write", addr,
  value, strb)`` or ``("read", addr)``, one at a time — then each pair in ``concurrent``
  (a write and a read started together); a :class:`~systolic.sim.axi_models.RegisterFile`
  answers the register bus with registered read data. Result: ``{"responses": [...],
  "concurrent": [...], "reads": int, "writes": int}``.
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from systolic.sim import SimulationHang
from systolic.sim.axi_models import RegisterFile
from systolic.sim.cocotb.runner import load_jobs, save_results

#: Cycles without any stream handshake after which a DMA job is declared hung.
HANG_CYCLES = 2000


async def reset(dut, streams_in=(), streams_out=()):
    dut.rst.value = 1
    for name in streams_in:
        getattr(dut, f"{name}__valid").value = 0
    for name in streams_out:
        getattr(dut, f"{name}__ready").value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


def unsigned(handle):
    """A signal's value as an integer (one-bit signals hold a Logic, wider a LogicArray)."""
    value = handle.value
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


class Streams:
    """Drives and collects the DMA's valid/ready streams, watching for a hang."""

    def __init__(self, dut, rng):
        self.dut, self.rng, self.progress = dut, rng, 0

    async def source(self, name, words, gap):
        clk = self.dut.clk
        valid, payload, ready = (getattr(self.dut, f"{name}__{s}")
                                 for s in ("valid", "payload", "ready"))
        for word in words:
            while self.rng.random() < gap:
                await RisingEdge(clk)
            valid.value, payload.value = 1, word
            taken = False
            while not taken:
                await ReadOnly()
                taken = bool(ready.value)
                await RisingEdge(clk)
            valid.value = 0
            self.progress += 1

    async def sink(self, name, count, stall, is_end=lambda word: True):
        clk = self.dut.clk
        valid, payload, ready = (getattr(self.dut, f"{name}__{s}")
                                 for s in ("valid", "payload", "ready"))
        words, ends, idle, seen = [], 0, 0, self.progress
        while ends < count:
            accept = self.rng.random() >= stall
            ready.value = int(accept)
            await ReadOnly()
            if accept and valid.value:
                word = unsigned(payload)
                words.append(word)
                ends += bool(is_end(word))
                self.progress += 1
            idle = 0 if self.progress != seen else idle + 1
            seen = self.progress
            if idle > HANG_CYCLES:
                raise SimulationHang(f"{name}: no handshake for {HANG_CYCLES} cycles after "
                                     f"{len(words)} words ({ends} of {count} ends)")
            await RisingEdge(clk)
        ready.value = 0
        return words


def _pauses(rng, probability):
    while True:
        yield rng.random() < probability


async def run_dma(dut, job, ram):
    rng = random.Random(job["seed"])
    memory = job["memory"]
    ram.write(0, memory)
    for channel in (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                    ram.read_if.ar_channel, ram.read_if.r_channel):
        channel.set_pause_generator(_pauses(rng, job["pause"]) if job["pause"] else None)
        channel.pause = False  # clearing a generator leaves its last value
    await RisingEdge(dut.clk)
    streams = Streams(dut, rng)
    gap, stall = job["gap"], job["stall"]
    for name, words in (("read_cmd", job["reads"]), ("write_cmd", job["writes"]),
                        ("write_data", job["write_beats"])):
        cocotb.start_soon(streams.source(name, words, gap))
    last_bit = job["last_bit"]
    read_task = cocotb.start_soon(streams.sink("read_data", len(job["reads"]), stall,
                                               lambda word: word >> last_bit & 1))
    done_task = cocotb.start_soon(streams.sink("write_done", len(job["writes"]), stall))
    read_beats, done = await read_task, await done_task
    return {"read_beats": read_beats, "done": done, "memory": ram.read(0, len(memory))}


async def register_file(dut, model):
    """The CSR block: sees each strobe at a clock edge and answers in the next cycle."""
    while True:
        await ReadOnly()
        r_en, w_en = bool(dut.regs__r_en.value), bool(dut.regs__w_en.value)
        addr = unsigned(dut.regs__addr)
        if w_en:
            w_err = model.write(addr, unsigned(dut.regs__w_data), unsigned(dut.regs__w_strb))
        if r_en:
            r_data, r_err = model.read(addr)
        await RisingEdge(dut.clk)
        if w_en:
            dut.regs__w_err.value = int(w_err)
        if r_en:
            dut.regs__r_data.value, dut.regs__r_err.value = r_data, int(r_err)


async def run_axil(dut, job):
    model = RegisterFile()
    cocotb.start_soon(register_file(dut, model))
    master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "bus_"), dut.clk, dut.rst)
    lanes = len(dut.bus__wstrb)

    async def write(addr, value, strb):
        data = value.to_bytes(lanes, "little")
        # cocotbext-axi writes a byte string; strobes come from its start and length.
        first = (strb & -strb).bit_length() - 1
        count = strb.bit_length() - first
        response = await master.write(addr + first, data[first:first + count])
        return int(response.resp)

    async def read(addr):
        response = await master.read(addr, lanes)
        return int.from_bytes(response.data, "little"), int(response.resp)

    responses = []
    for op in job["ops"]:
        if op[0] == "write":
            responses.append(await write(*op[1:]))
        else:
            responses.append(await read(op[1]))
    concurrent = []
    for (_, w_addr, value, strb), (_, r_addr) in job["concurrent"]:
        w_task = cocotb.start_soon(write(w_addr, value, strb))
        r_task = cocotb.start_soon(read(r_addr))
        concurrent.append((await w_task, await r_task))
    return {"responses": responses, "concurrent": concurrent, "reads": model.reads,
            "writes": model.writes}


@cocotb.test()
async def axi_jobs(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    jobs = load_jobs()
    results, ram = [], None
    for job in jobs:
        if job["kind"] == "dma":
            await reset(dut, ("read_cmd", "write_cmd", "write_data"),
                        ("read_data", "write_done"))
            if ram is None:
                ram = AxiRam(AxiBus.from_prefix(dut, "bus_"), dut.clk, dut.rst,
                             size=max(len(job["memory"]) for job in jobs))
            results.append(await run_dma(dut, job, ram))
        else:
            dut.regs__r_data.value = dut.regs__r_err.value = dut.regs__w_err.value = 0
            await reset(dut)
            results.append(await run_axil(dut, job))
    save_results(results)
