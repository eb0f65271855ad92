"""The matmul engine: feeds the systolic array from the scratchpad and writes (or adds) its
results into the accumulator, one MATMUL instruction after another without draining.

Each accepted instruction becomes descriptors for independent sequencers — weight-stationary:
weight rows, activation rows, result rows; output-stationary: A columns, B rows, result rows
— so the next instruction's weight tile streams into the array's second bank while the
current activations flow, and result rows are written as they arrive.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .array import SystolicArray
from .config import ACC_WIDTH, OPERAND_WIDTH, HardwareConfig
from .isa import Matmul
from .memory import (LineReader, LineSequencer, ReadPortSignature, WritePortSignature,
                     line_run)

__all__ = ["MatmulEngine", "memory_ports", "transparent_accumulator"]

def memory_ports(config: HardwareConfig):
    """``(spad_addr_bits, spad_line_bits, acc_addr_bits, acc_line_bits)`` of ``config``."""
    return ((config.spad_lines - 1).bit_length() or 1, 8 * config.spad_line_bytes,
            (config.acc_lines - 1).bit_length() or 1, 8 * config.acc_line_bytes)


def transparent_accumulator(config: HardwareConfig):
    """Whether the matmul engine of ``config`` needs the accumulator's read port transparent
    (see :class:`~systolic.hw.memory.BankedMemory`): with one result stage and one read
    stage it reads the line it writes in the same cycle from the memory; otherwise it
    forwards that line itself (a transparent port would put logic between a block RAM's
    output and the register of its second read stage)."""
    return config.result_stages == 1 and config.read_stages == 1


class MatmulEngine(wiring.Component):
    """Executes MATMUL instructions (see ``hw/isa.py``) on a :class:`SystolicArray`.

    The accumulator ports must be the memory's highest-priority reader and writer (client
    0): an accumulate's read is issued with its result row, and the line is written
    ``read_stages + result_stages - 1`` cycles later, neither ever refused (so no handshake
    of the memory reaches the array's output queue). Both memories' read latency must be
    the configuration's ``read_stages``.

    Members
    -------
    insn : In(stream.Signature(Matmul))
        Instructions whose dependency tokens have been taken and fields validated.
    done : Out(1)
        Pulses when an instruction's last result line has been written.
    beat : Out(1)
        The array accepted an activation row (WS) or K-slice (OS) this cycle.
    idle : Out(1)
        No instruction in flight.
    spad_a, spad_b : Out(ReadPortSignature)
        Scratchpad reads: activations / A columns, and weights / B rows.
    acc_read : Out(ReadPortSignature)
        Accumulator reads for ``accumulate``.
    acc_write : Out(WritePortSignature)
        Result lines.
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        spad_addr, spad_bits, acc_addr, acc_bits = memory_ports(config)
        super().__init__({
            "insn": In(stream.Signature(Matmul)),
            "done": Out(1), "beat": Out(1), "idle": Out(1),
            "spad_a": Out(ReadPortSignature(spad_addr, spad_bits)),
            "spad_b": Out(ReadPortSignature(spad_addr, spad_bits)),
            "acc_read": Out(ReadPortSignature(acc_addr, acc_bits)),
            "acc_write": Out(WritePortSignature(acc_addr, acc_bits)),
        })

    def elaborate(self, platform):
        cfg = self.config
        rows, cols, ws = cfg.rows, cfg.cols, cfg.dataflow == "ws"
        spad_addr, spad_bits, acc_addr, acc_bits = memory_ports(cfg)
        m = Module()
        m.submodules.array = array = SystolicArray(rows, cols, cfg.dataflow)
        insn = self.insn.payload

        # One sequencer + reader per scratchpad stream; flags carry a_unsigned.
        seq_a = m.submodules.seq_a = LineSequencer(spad_addr, flags=1)
        seq_b = m.submodules.seq_b = LineSequencer(spad_addr, flags=1)
        depth = cfg.compute_read_depth
        # (Their queues in block RAM if as wide as queue_ram_width: same behaviour.)
        block_ram = cfg.queue_in_block_ram(spad_bits + data.Layout.cast(seq_a.tag).size)
        read_a = m.submodules.read_a = LineReader(spad_addr, spad_bits, seq_a.tag, depth=depth,
                                                  block_ram=block_ram,
                                                  read_stages=cfg.read_stages)
        read_b = m.submodules.read_b = LineReader(spad_addr, spad_bits, seq_b.tag, depth=depth,
                                                  block_ram=block_ram,
                                                  read_stages=cfg.read_stages)
        wiring.connect(m, seq_a.addrs, read_a.addrs)
        wiring.connect(m, seq_b.addrs, read_b.addrs)
        wiring.connect(m, read_a.port, wiring.flipped(self.spad_a))
        wiring.connect(m, read_b.port, wiring.flipped(self.spad_b))

        # Result descriptors: first accumulator line, line count, accumulate.
        result_layout = data.StructLayout({"base": acc_addr, "count": 16, "accumulate": 1})
        # Buffered queues: the descriptors come from registers (a distributed RAM's output
        # in front of the sequencers' arithmetic and handshakes was the engine's longest
        # path) at the cost of one cycle from an instruction to its sequencers.
        queues = {name: SyncFIFOBuffered(width=width, depth=cfg.in_flight)
                  for name, width in (
            ("a", data.Layout.cast(seq_a.desc.payload.shape()).size),
            ("b", data.Layout.cast(seq_b.desc.payload.shape()).size),
            ("c", result_layout.size))}
        for name, queue in queues.items():
            m.submodules[f"queue_{name}"] = queue
        room = queues["a"].w_rdy & queues["b"].w_rdy & queues["c"].w_rdy
        a_desc = Signal(seq_a.desc.payload.shape())
        b_desc = Signal(seq_b.desc.payload.shape())
        c_desc = Signal(result_layout)
        m.d.comb += [
            a_desc.base.eq(insn.a_addr), a_desc.count.eq(insn.length),
            a_desc.flags.eq(insn.a_unsigned),
            b_desc.base.eq(insn.b_addr), b_desc.count.eq(rows if ws else insn.length),
            c_desc.base.eq(insn.c_addr), c_desc.count.eq(insn.length if ws else rows),
            c_desc.accumulate.eq(insn.accumulate),
            self.insn.ready.eq(room),
            queues["a"].w_data.eq(a_desc), queues["b"].w_data.eq(b_desc),
            queues["c"].w_data.eq(c_desc),
        ]
        for queue in queues.values():
            m.d.comb += queue.w_en.eq(self.insn.valid & room)
        for seq, name in ((seq_a, "a"), (seq_b, "b")):
            m.d.comb += [seq.desc.valid.eq(queues[name].r_rdy),
                         seq.desc.payload.eq(queues[name].r_data),
                         queues[name].r_en.eq(seq.desc.ready)]

        lines_a, lines_b = read_a.lines, read_b.lines
        operand_bits = OPERAND_WIDTH
        if ws:
            m.d.comb += [
                array.weights.valid.eq(lines_b.valid),
                array.weights.payload.eq(lines_b.payload.data[:cols * operand_bits]),
                lines_b.ready.eq(array.weights.ready),
                array.acts.valid.eq(lines_a.valid),
                array.acts.payload.data.eq(lines_a.payload.data[:rows * operand_bits]),
                array.acts.payload.last.eq(lines_a.payload.tag.last),
                array.acts.payload.a_unsigned.eq(lines_a.payload.tag.flags),
                lines_a.ready.eq(array.acts.ready),
                self.beat.eq(array.acts.valid & array.acts.ready),
            ]
        else:
            both = lines_a.valid & lines_b.valid
            m.d.comb += [
                array.slices.valid.eq(both),
                array.slices.payload.a.eq(lines_a.payload.data[:rows * operand_bits]),
                array.slices.payload.b.eq(lines_b.payload.data[:cols * operand_bits]),
                array.slices.payload.last.eq(lines_a.payload.tag.last),
                array.slices.payload.a_unsigned.eq(lines_a.payload.tag.flags),
                lines_a.ready.eq(both & array.slices.ready),
                lines_b.ready.eq(both & array.slices.ready),
                self.beat.eq(array.slices.valid & array.slices.ready),
            ]
        writing = self._result_writer(m, array, queues["c"], result_layout)
        # The levels count a descriptor on its way to the queue's output register too.
        m.d.comb += self.idle.eq((queues["a"].level == 0) & (queues["b"].level == 0)
                                 & (queues["c"].level == 0) & array.idle & ~writing)
        return m

    def _result_writer(self, m, array, queue, layout):
        """Result row ``i`` of an instruction goes to line ``base + i``: read the old line
        (``accumulate``) as the row is taken, then add and write. Returns the "a write is
        pending" signal.

        The old line arrives ``read_stages`` (L) cycles after its read. With
        ``result_stages`` 2 it is registered first (block RAM outputs are slow) and the row
        is added and written a cycle later; with 1 the row is added to the line as it
        arrives and written in that cycle. So a row is written ``W = L + result_stages -
        1`` cycles after its read, and the rows taken in the ``W`` cycles before it write
        in the cycles from its read to the cycle before its write: the memory (not
        transparent) returns none of them, so the writer forwards the latest one to the same
        line, if any, instead of the old line: the sum being written in the cycle the line
        is registered, or one written ``j`` cycles before that (``written``, the last
        ``L`` sums). Only with one read stage and one result stage is there no forwarding:
        the row read in the cycle of a write gets the line written from a transparent read
        port (:func:`transparent_accumulator`)."""
        cfg = self.config
        cols, read_stages = cfg.cols, cfg.read_stages
        write_stage = read_stages + cfg.result_stages - 1
        desc = Signal(layout)
        m.d.comb += desc.eq(queue.r_data)
        addr_bits = len(self.acc_write.payload.addr)
        row_shape = array.out.payload.shape()
        # Stage s: s cycles after a result row was taken. The old line arrives in stage
        # read_stages; the row is added and written in the last (write_stage).
        stages = [{"valid": Signal(name=f"r{s}_valid"), "last": Signal(name=f"r{s}_last"),
                   "add": Signal(name=f"r{s}_add"), "addr": Signal(addr_bits, name=f"r{s}_addr"),
                   "row": Signal(row_shape, name=f"r{s}_row")}
                  for s in range(1, write_stage + 1)]
        first, writer = stages[0], stages[-1]
        take = array.out.valid & queue.r_rdy
        addr = Signal(addr_bits)  # of the row offered now
        # (From registers: the other clients' ``ready`` depends on its bank.)
        run_addr, last = line_run(m, take, desc.base, desc.count)
        m.d.comb += [
            addr.eq(run_addr),
            array.out.ready.eq(queue.r_rdy),
            self.acc_read.en.eq(array.out.valid & queue.r_rdy & desc.accumulate),
            self.acc_read.addr.eq(addr),
            queue.r_en.eq(take & last),
        ]
        m.d.sync += [first["valid"].eq(take), first["last"].eq(take & last),
                     first["add"].eq(desc.accumulate), first["addr"].eq(addr),
                     first["row"].eq(array.out.payload)]
        for earlier, later in zip(stages, stages[1:]):
            m.d.sync += [later[key].eq(earlier[key]) for key in earlier]
        elem = data.Layout.cast(row_shape).elem_shape
        old = data.View(data.ArrayLayout(elem, cols), self.acc_read.data)
        sums = [Signal(ACC_WIDTH, name=f"sum{c}") for c in range(cols)]
        # The row taken d = 1 .. write_stage cycles before a row writes in the cycles from
        # the row's read until its old line is taken (but for d = write_stage, which writes
        # in the cycle of the read, with a transparent port).
        ahead = range(1, write_stage + (not transparent_accumulator(cfg)))
        # The old line is taken as it arrives, in stage `capture` (into a register, or added
        # to the row); the write of the row d ahead happened `ago` cycles before (0: now).
        capture = read_stages
        ago = {d: d - (cfg.result_stages - 1) for d in ahead}
        # written[j - 1]: the sums written j cycles ago.
        written = [[Signal(ACC_WIDTH, name=f"written{c}" if j == 1 else f"written{c}_{j}")
                    for c in range(cols)] for j in range(1, max(ago.values(), default=0) + 1)]
        for j, line in enumerate(written):
            m.d.sync += [line[c].eq(sums[c] if j == 0 else written[j - 1][c])
                         for c in range(cols)]

        def source(d, c):
            return sums[c] if ago[d] == 0 else written[ago[d] - 1][c]

        # "Stage d writes the line of the row being taken", decided as the row is taken and
        # carried along with it to the stage its old line arrives in: the address
        # comparisons and their fan-out to every lane's multiplexer are in different cycles.
        forward = {d: [Signal(name=f"forward{d}" if s == 1 else f"forward{d}_{s}")
                       for s in range(1, capture + 1)] for d in ahead}
        for d, flags in forward.items():
            m.d.sync += flags[0].eq(stages[d - 1]["valid"] & (stages[d - 1]["addr"] == addr))
            m.d.sync += [flags[s].eq(flags[s - 1]) for s in range(1, capture)]

        def line_of(c):
            """Lane ``c`` of the line a row in stage ``capture`` adds to."""
            value = old[c]
            for d in reversed(ahead):  # the latest write first
                value = Mux(forward[d][-1], source(d, c), value)
            return Mux(stages[capture - 1]["add"], value, 0)

        if cfg.result_stages == 1:
            for c in range(cols):
                m.d.comb += sums[c].eq(writer["row"][c] + line_of(c))
        else:
            held = [Signal(ACC_WIDTH, name=f"old{c}") for c in range(cols)]
            for c in range(cols):
                m.d.sync += held[c].eq(line_of(c))
                m.d.comb += sums[c].eq(writer["row"][c] + held[c])
        m.d.comb += [
            self.acc_write.valid.eq(writer["valid"]),
            self.acc_write.payload.addr.eq(writer["addr"]),
            self.acc_write.payload.data.eq(Cat(*sums)),
            self.done.eq(writer["valid"] & writer["last"]),
        ]
        pending = first["valid"] | writer["valid"]
        for stage in stages[1:-1]:
            pending = pending | stage["valid"]
        return pending
