"""The store unit: STORE instructions copy scratchpad or accumulator lines back to rows of
host memory through a DMA writer.

A STORE moves ``rows`` rows of ``row_bytes`` bytes; row ``i`` is the first ``row_bytes``
bytes of lines ``sram_addr + i * ceil(row_bytes / L) ..`` (``L``: the source memory's line
bytes) and goes to host byte address ``dram_addr + i * dram_stride``; nothing else is
written. The rows are consecutive lines, so the unit reads lines ``sram_addr`` onwards and
only needs to count each row's bytes to know where it ends.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .compute import memory_ports
from .config import HardwareConfig
from .dma import beat_layout, command_layout, done_layout
from .isa import Memory, Transfer
from .load import RowCommands, dma_length_width, transfer_bits, transfer_widths
from .memory import AlignedRepacker, LineReader, ReadPortSignature, Repacker, unit_queue

__all__ = ["StoreUnit"]


class StoreUnit(wiring.Component):
    """Executes STORE instructions (see ``hw/isa.py``).

    Taking an instruction queues it (up to ``in_flight`` of the configuration) and starts
    issuing its row commands; lines are read at up to one per cycle from either memory,
    repacked into bus beats (any line width against any bus width), and streamed to the DMA
    writer through a small queue. An instruction is done when the writer has reported every
    one of its row commands.

    Members
    -------
    insn : In(stream.Signature(Transfer))
        STORE instructions whose tokens have been taken and ranges checked.
    done : Out(1)
        Pulses once per instruction, in order, in the cycle after its last row's write
        completion arrived.
    error : Out(1)
        Pulses with ``done`` if any row's completion reported an AXI error.
    spad_read, acc_read : Out(ReadPortSignature)
        Line reads from the scratchpad and the accumulator.
    dma_cmd : Out(stream.Signature(command_layout(addr_width, dma_length_width(config))))
    dma_data : Out(stream.Signature(beat_layout(dma_bytes)))
    dma_done : In(stream.Signature(done_layout()))
        To a :class:`~systolic.hw.dma.DMAWriter`.
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        spad_addr, spad_bits, acc_addr, acc_bits = memory_ports(config)
        super().__init__({
            "insn": In(stream.Signature(Transfer)),
            "done": Out(1), "error": Out(1),
            "spad_read": Out(ReadPortSignature(spad_addr, spad_bits)),
            "acc_read": Out(ReadPortSignature(acc_addr, acc_bits)),
            "dma_cmd": Out(stream.Signature(command_layout(config.addr_width,
                                                           dma_length_width(config)))),
            "dma_data": Out(stream.Signature(beat_layout(config.dma_bytes))),
            "dma_done": In(stream.Signature(done_layout())),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        widths, unit = transfer_widths(cfg)
        line_bytes = max(widths)
        insn = self.insn.payload

        rows_bits, line_bits = transfer_bits(cfg)
        m.submodules.commands = commands = RowCommands(cfg.addr_width, dma_length_width(cfg),
                                                       rows_bits)
        wiring.connect(m, commands.cmd, wiring.flipped(self.dma_cmd))
        m.submodules.read_queue = read_queue = unit_queue(cfg, data.StructLayout({
            "mem": 1, "sram_addr": line_bits, "rows": rows_bits, "row_bytes": 12}),
            cfg.in_flight)
        m.submodules.done_queue = done_queue = unit_queue(
            cfg, data.StructLayout({"rows": rows_bits}), cfg.in_flight)
        ready = commands.block.ready & read_queue.i.ready & done_queue.i.ready
        m.d.comb += [
            self.insn.ready.eq(ready),
            commands.block.valid.eq(self.insn.valid & ready),
            commands.block.payload.addr.eq(insn.dram_addr),
            commands.block.payload.stride.eq(insn.dram_stride),
            commands.block.payload.rows.eq(insn.rows),
            commands.block.payload.length.eq(insn.row_bytes),
            read_queue.i.valid.eq(self.insn.valid & ready),
            read_queue.i.payload.mem.eq(insn.mem),
            read_queue.i.payload.sram_addr.eq(insn.sram_addr),
            read_queue.i.payload.rows.eq(insn.rows),
            read_queue.i.payload.row_bytes.eq(insn.row_bytes),
            done_queue.i.valid.eq(self.insn.valid & ready),
            done_queue.i.payload.rows.eq(insn.rows),
        ]

        reader = self._line_reader(m, line_bytes)
        self._line_addresses(m, read_queue.o, reader.addrs, widths)

        # Line bytes past a row's end only reach lanes the writer does not strobe.
        repacker_class = AlignedRepacker if cfg.aligned_repack else Repacker
        m.submodules.repacker = repacker = repacker_class(line_bytes, (cfg.dma_bytes,), unit,
                                                          mask_inputs=False)
        # Lines reach a Repacker from registers (its fill arithmetic follows their count),
        # an AlignedRepacker straight from the line reader's queue.
        if cfg.aligned_repack:
            lines = reader.lines
        else:
            m.submodules.lines = queue = unit_queue(cfg, reader.lines.payload.shape())
            wiring.connect(m, reader.lines, queue.i)
            lines = queue.o
        line = lines.payload
        m.d.comb += [
            repacker.i.valid.eq(lines.valid),
            lines.ready.eq(repacker.i.ready),
            repacker.i.payload.data.eq(line.data),
            repacker.i.payload.count.eq(line.tag.count),
            repacker.i.payload.last.eq(line.tag.last),
        ]
        m.submodules.beats = beats = unit_queue(cfg, beat_layout(cfg.dma_bytes))
        wiring.connect(m, repacker.o, beats.i)
        wiring.connect(m, beats.o, wiring.flipped(self.dma_data))

        # Completions: one per row command, in order.
        row, error = Signal(rows_bits, init=1), Signal()  # row counted from 1
        head = done_queue.o
        m.d.comb += self.dma_done.ready.eq(head.valid)
        completed = self.dma_done.valid & self.dma_done.ready
        final = completed & (row == head.payload.rows)
        m.d.comb += head.ready.eq(final)
        with m.If(completed):
            m.d.sync += [row.eq(Mux(final, 1, row + 1)),
                         error.eq(~final & (error | self.dma_done.payload.error))]
        m.d.sync += [self.done.eq(final),
                     self.error.eq(final & (error | self.dma_done.payload.error))]
        return m

    def _line_reader(self, m, line_bytes):
        """A :class:`LineReader` over both memories: the top address bit picks the
        accumulator. Each line carries its row bytes (``count``) and the row's end."""
        spad_addr, _, acc_addr, _ = memory_ports(self.config)
        addr_bits = max(spad_addr, acc_addr)
        tag = data.StructLayout({"count": range(line_bytes + 1), "last": 1})
        width = 8 * line_bytes + data.Layout.cast(tag).size
        read_stages = self.config.read_stages
        m.submodules.reader = reader = LineReader(
            addr_bits + 1, 8 * line_bytes, tag,
            block_ram=self.config.queue_in_block_ram(width), read_stages=read_stages)
        port = reader.port
        acc = port.addr[addr_bits]
        # Which memory served the reads of 1 .. read_stages cycles ago (the last one's line
        # is on the ports' data).
        served = [Signal(name="served_acc" if s == 1 else f"served_acc{s}")
                  for s in range(1, read_stages + 1)]
        m.d.comb += [
            self.spad_read.addr.eq(port.addr), self.spad_read.en.eq(port.en & ~acc),
            self.acc_read.addr.eq(port.addr), self.acc_read.en.eq(port.en & acc),
            port.ready.eq(Mux(acc, self.acc_read.ready, self.spad_read.ready)),
            port.data.eq(Mux(served[-1], self.acc_read.data, self.spad_read.data)),
        ]
        with m.If(port.en & port.ready):
            m.d.sync += served[0].eq(acc)
        m.d.sync += [served[s].eq(served[s - 1]) for s in range(1, read_stages)]
        return reader

    def _line_addresses(self, m, queue, addrs, widths):
        """Line addresses of the instructions on ``queue``, from registers: each instruction
        is loaded in one cycle, then its lines follow one per cycle."""
        addr_bits = len(addrs.payload.addr) - 1
        loaded = Signal()
        addr, rows_left = Signal(addr_bits), Signal(transfer_bits(self.config)[0])
        row_bytes, bytes_left = Signal(12), Signal(12)
        acc = Signal()
        width = Mux(acc, widths[Memory.ACC.value], widths[Memory.SPAD.value])
        row_end = bytes_left <= width
        m.d.comb += [
            addrs.valid.eq(loaded),
            addrs.payload.addr.eq(Cat(addr, acc)),
            addrs.payload.tag.count.eq(Mux(row_end, bytes_left, width)),
            addrs.payload.tag.last.eq(row_end),
        ]
        with m.If(queue.valid & ~loaded):
            m.d.sync += [loaded.eq(1), addr.eq(queue.payload.sram_addr),
                         rows_left.eq(queue.payload.rows), acc.eq(queue.payload.mem),
                         row_bytes.eq(queue.payload.row_bytes),
                         bytes_left.eq(queue.payload.row_bytes)]
        with m.If(addrs.valid & addrs.ready):
            m.d.sync += [addr.eq(addr + 1), bytes_left.eq(Mux(row_end, row_bytes,
                                                              bytes_left - width))]
            with m.If(row_end):
                m.d.sync += rows_left.eq(rows_left - 1)
                with m.If(rows_left == 1):
                    m.d.sync += loaded.eq(0)
                    m.d.comb += queue.ready.eq(1)
