"""The load unit: LOAD instructions copy rows of host memory into scratchpad or accumulator
lines through a DMA reader; and the row-command generator it shares with the store unit.

A LOAD moves ``rows`` rows of ``row_bytes`` bytes; row ``i`` comes from host byte address
``dram_addr + i * dram_stride`` (any alignment) and fills ``ceil(row_bytes / L)`` lines from
line ``sram_addr + i * ceil(row_bytes / L)``, its last line zero-padded (``L``: the target
memory's line bytes). Rows are consecutive lines, so line ``sram_addr + n`` receives the
``n``-th line the row stream produces.
"""

from math import gcd

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .compute import memory_ports
from .config import INSTRUCTION_BYTES, HardwareConfig
from .dma import beat_layout, command_layout
from .isa import Memory, Transfer
from .memory import AlignedRepacker, Repacker, WritePortSignature, unit_queue

__all__ = ["RowCommands", "LoadUnit"]

#: Instructions the load unit holds between taking them and writing their last line.


def row_layout(addr_width, rows_bits=16):
    """A block of rows for :class:`RowCommands`."""
    return data.StructLayout({"addr": addr_width, "stride": 32, "rows": rows_bits,
                              "length": 12})


class RowCommands(wiring.Component):
    """One DMA command per row: for each block (``addr``, ``stride``, ``rows`` >= 1,
    ``length``) it emits ``(addr + i * stride, length)`` for ``i`` in ``0 .. rows - 1``
    (addresses wrap at ``addr_width`` bits), one per cycle when ``cmd`` is ready. The
    command stream comes straight from registers.

    Members
    -------
    block : In(stream.Signature(row_layout(addr_width, rows_bits)))
    cmd : Out(stream.Signature(command_layout(addr_width, length_width)))
    busy : Out(1)
        Commands of a block remain to be issued.
    """

    def __init__(self, addr_width, length_width=None, rows_bits=16):
        self.addr_width, self.rows_bits = addr_width, rows_bits
        super().__init__({
            "block": In(stream.Signature(row_layout(addr_width, rows_bits))),
            "cmd": Out(stream.Signature(command_layout(addr_width, length_width))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        addr, stride = Signal(self.addr_width), Signal(32)
        left, length = Signal(self.rows_bits), Signal(12)
        # ``left != 0`` in a flip-flop of its own: the handshakes on both sides start there
        # rather than at a comparison of ``left``.
        busy = Signal()
        m.d.comb += [
            self.busy.eq(busy),
            self.block.ready.eq(~busy),
            self.cmd.valid.eq(busy),
            self.cmd.payload.addr.eq(addr),
            self.cmd.payload.length.eq(length),
        ]
        # While idle the block's fields are loaded every cycle (they matter only once busy):
        # only ``busy`` waits for the block's handshake, which comes from the controller,
        # not the registers' enables.
        with m.If(~busy):
            block = self.block.payload
            m.d.sync += [addr.eq(block.addr), stride.eq(block.stride), left.eq(block.rows),
                         length.eq(block.length), busy.eq(self.block.valid)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [addr.eq(addr + stride), left.eq(left - 1), busy.eq(left != 1)]
        return m


def dma_length_width(config: HardwareConfig):
    """Bits of the length of every DMA command the accelerator issues: a LOAD or STORE row
    (``Transfer.row_bytes``) or a fetch command (``fetch_words`` instruction words)."""
    row_bytes = Shape.cast(data.Layout.cast(Transfer)["row_bytes"].shape).width
    return max(row_bytes, (config.fetch_words * INSTRUCTION_BYTES).bit_length())


def transfer_bits(config: HardwareConfig):
    """Bits of a transfer's ``rows`` and of a line address as the load and store units keep
    them. The controller passes a transfer only if its rows, each at least a line, fit its
    memory from ``sram_addr`` on: ``rows`` is at most the larger memory's lines, and
    ``sram_addr`` below them."""
    lines = max(config.spad_lines, config.acc_lines)
    return lines.bit_length(), (lines - 1).bit_length()


def transfer_widths(config: HardwareConfig):
    """Line bytes of the scratchpad and the accumulator, indexed by :class:`Memory`, and the
    byte unit that rows move in between them and ``dma_bytes``-wide beats."""
    widths = (config.spad_line_bytes, config.acc_line_bytes)
    return widths, gcd(config.dma_bytes, *widths)


class LoadUnit(wiring.Component):
    """Executes LOAD instructions (see ``hw/isa.py``).

    Taking an instruction queues it and starts issuing its row commands, which run ahead of
    the data (up to ``in_flight`` instructions of the configuration); beats are repacked into lines of the
    target memory's width (any line width against any bus width) and written at up to one
    line per cycle. Beats and lines cross small queues, so neither ``dma_data.ready`` nor the
    write ports' ``valid`` depend combinationally on another handshake.

    Members
    -------
    insn : In(stream.Signature(Transfer))
        LOAD instructions whose tokens have been taken and ranges checked (``rows`` and
        ``row_bytes`` >= 1).
    done : Out(1)
        Pulses once per instruction, in order, in the cycle after its last line was written.
    error : Out(1)
        Pulses with ``done`` if the DMA reported an AXI error for any row of the
        instruction (whose lines are then written with whatever data arrived).
    dma_cmd : Out(stream.Signature(command_layout(addr_width, dma_length_width(config))))
    dma_data : In(stream.Signature(beat_layout(dma_bytes)))
        To a :class:`~systolic.hw.dma.DMAReader` (possibly through a
        :class:`~systolic.hw.read_arbiter.ReadArbiter`).
    spad_write, acc_write : Out(WritePortSignature)
        Line writes into the scratchpad and the accumulator.
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        spad_addr, spad_bits, acc_addr, acc_bits = memory_ports(config)
        super().__init__({
            "insn": In(stream.Signature(Transfer)),
            "done": Out(1), "error": Out(1),
            "dma_cmd": Out(stream.Signature(command_layout(config.addr_width,
                                                           dma_length_width(config)))),
            "dma_data": In(stream.Signature(beat_layout(config.dma_bytes))),
            "spad_write": Out(WritePortSignature(spad_addr, spad_bits)),
            "acc_write": Out(WritePortSignature(acc_addr, acc_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        widths, unit = transfer_widths(cfg)
        insn = self.insn.payload

        rows_bits, line_bits = transfer_bits(cfg)
        m.submodules.commands = commands = RowCommands(cfg.addr_width, dma_length_width(cfg),
                                                       rows_bits)
        wiring.connect(m, commands.cmd, wiring.flipped(self.dma_cmd))
        # The beat side needs each instruction's memory and rows; the line side also its
        # first line. Both queues are filled as the instruction is taken.
        m.submodules.intake_queue = intake_queue = unit_queue(
            cfg, data.StructLayout({"mem": 1, "rows": rows_bits}), cfg.in_flight)
        m.submodules.write_queue = write_queue = unit_queue(
            cfg, data.StructLayout({"mem": 1, "rows": rows_bits, "sram_addr": line_bits}),
            cfg.in_flight)
        ready = commands.block.ready & intake_queue.i.ready & write_queue.i.ready
        m.d.comb += [
            self.insn.ready.eq(ready),
            commands.block.valid.eq(self.insn.valid & ready),
            commands.block.payload.addr.eq(insn.dram_addr),
            commands.block.payload.stride.eq(insn.dram_stride),
            commands.block.payload.rows.eq(insn.rows),
            commands.block.payload.length.eq(insn.row_bytes),
            intake_queue.i.valid.eq(self.insn.valid & ready),
            intake_queue.i.payload.mem.eq(insn.mem),
            intake_queue.i.payload.rows.eq(insn.rows),
            write_queue.i.valid.eq(self.insn.valid & ready),
            write_queue.i.payload.mem.eq(insn.mem),
            write_queue.i.payload.rows.eq(insn.rows),
            write_queue.i.payload.sram_addr.eq(insn.sram_addr),
        ]

        # Beats: through a queue into the repacker, tagged with the instruction's line width.
        m.submodules.beats = beats = unit_queue(cfg, beat_layout(cfg.dma_bytes))
        wiring.connect(m, wiring.flipped(self.dma_data), beats.i)
        # (Aligned: every beat of a row but its last is whole.)
        m.submodules.repacker = repacker = (
            AlignedRepacker(cfg.dma_bytes, widths, cfg.dma_bytes) if cfg.aligned_repack
            else Repacker(cfg.dma_bytes, widths, unit))
        intake = intake_queue.o
        row = Signal(rows_bits, init=1)  # counted from 1: no subtraction before the comparison
        beat = beats.o.payload
        m.d.comb += [
            repacker.i.valid.eq(beats.o.valid & intake.valid),
            beats.o.ready.eq(repacker.i.ready & intake.valid),
            repacker.i.payload.data.eq(beat.data),
            repacker.i.payload.count.eq(beat.count),
            repacker.i.payload.last.eq(beat.last),
            repacker.i.payload.error.eq(beat.error),
            repacker.i.payload.width.eq(intake.payload.mem),
        ]
        with m.If(repacker.i.valid & repacker.i.ready & beat.last):
            final_row = row == intake.payload.rows
            m.d.sync += row.eq(Mux(final_row, 1, row + 1))
            m.d.comb += intake.ready.eq(final_row)

        # Lines to the target memory's write port, line sram_addr + n: through a queue, but
        # an AlignedRepacker's (a few gates after the beats queue's registers).
        if cfg.aligned_repack:
            lines = repacker.o
        else:
            m.submodules.lines = queue = unit_queue(cfg, repacker.o.payload.shape())
            wiring.connect(m, repacker.o, queue.i)
            lines = queue.o
        target = write_queue.o.payload
        line = lines.payload
        row, error = Signal(rows_bits, init=1), Signal()
        # The line address is the instruction's sram_addr for its first line, then a
        # register counting on: no adder in front of the memories' bank selection and
        # arbitration, whose ``ready`` comes back to this unit's queues.
        first, next_addr = Signal(init=1), Signal(line_bits)
        addr = Mux(first, target.sram_addr, next_addr)
        for port, mem in ((self.spad_write, Memory.SPAD), (self.acc_write, Memory.ACC)):
            selected = target.mem == mem
            m.d.comb += [
                port.valid.eq(lines.valid & write_queue.o.valid & selected),
                port.payload.addr.eq(addr),
                port.payload.data.eq(line.data),
            ]
            with m.If(selected):
                m.d.comb += lines.ready.eq(port.ready & write_queue.o.valid)
        written = lines.valid & lines.ready
        final = written & line.last & (row == target.rows)
        m.d.comb += write_queue.o.ready.eq(final)
        with m.If(written):
            m.d.sync += [first.eq(final), next_addr.eq(addr + 1),
                         error.eq(~final & (error | line.error))]
            with m.If(line.last):
                m.d.sync += row.eq(Mux(final, 1, row + 1))
        m.d.sync += [self.done.eq(final), self.error.eq(final & (error | line.error))]
        return m
