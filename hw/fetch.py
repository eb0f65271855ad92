"""Instruction fetch: reads the program from host memory in chunks through a (shared) DMA
reader and hands out its words in order.

Chunks of up to ``fetch_words`` words (of the configuration) are requested only when the
buffer, which holds two chunks (one streams in while the other is handed out), has room for
all of them, so the fetch unit always takes its beats at once and never stalls a reader it
shares with the load unit. A chunk's words are handed out only once the whole chunk arrived
without error. When a chunk reports an AXI error, its words are fetched again one command
each, so the words before the faulting one still go out and the error names the exact
word, as the functional simulator does.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .config import INSTRUCTION_BYTES, HardwareConfig
from .dma import beat_layout, command_layout
from .isa import INSTRUCTION_BITS
from .load import dma_length_width
from .memory import Repacker

__all__ = ["fetch_layout", "Fetch"]


def fetch_layout(pc_width=32):
    """A fetched instruction word and its index in the program (``pc_width`` bits, of the
    configuration)."""
    return data.StructLayout({"word": INSTRUCTION_BITS, "pc": pc_width})


class Fetch(wiring.Component):
    """Fetches ``count`` instruction words from host byte address ``prog_addr`` (any
    alignment; word ``pc`` is at ``prog_addr + 16 * pc``, little endian).

    ``start`` latches ``prog_addr`` and ``count`` and (re)starts from word 0, cancelling a
    fetch in progress; ``stop`` cancels. A cancelled fetch hands out nothing more, and the
    beats of its DMA commands already issued are taken and dropped (``busy`` stays high until
    they are). An AXI error on a word is reported once every word before it has been taken
    from ``insn``: ``error`` pulses with the word's index on ``error_pc``, and fetching stops.

    Members
    -------
    start : In(1)
    stop : In(1)
    prog_addr : In(addr_width)
    count : In(pc_width)
    insn : Out(stream.Signature(fetch_layout(pc_width)))
        Words in program order with their index ``pc``.
    fetched : Out(1)
        Pulses when a word is taken from ``insn`` (16 bytes for FETCH_BYTES).
    busy : Out(1)
        Words remain to be handed out, an error to be reported, or commands to be drained.
    error : Out(1)
    error_pc : Out(pc_width)
        Index of the word whose fetch failed, when ``error`` pulses.
    dma_cmd : Out(stream.Signature(command_layout(addr_width, dma_length_width(config))))
    dma_data : In(stream.Signature(beat_layout(dma_bytes)))
        To a :class:`~systolic.hw.dma.DMAReader` (or a
        :class:`~systolic.hw.read_arbiter.ReadArbiter`).
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        super().__init__({
            "start": In(1), "stop": In(1),
            "prog_addr": In(config.addr_width), "count": In(config.pc_width),
            "insn": Out(stream.Signature(fetch_layout(config.pc_width))),
            "fetched": Out(1), "busy": Out(1), "error": Out(1),
            "error_pc": Out(config.pc_width),
            "dma_cmd": Out(stream.Signature(command_layout(config.addr_width,
                                                           dma_length_width(config)))),
            "dma_data": In(stream.Signature(beat_layout(config.dma_bytes))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        word_bits = (INSTRUCTION_BYTES - 1).bit_length()
        chunk_words = cfg.fetch_words  # words per DMA command
        buffer_words = 2 * chunk_words
        # Commands that may be in flight, including those of a cancelled fetch draining.
        max_commands = 2 * buffer_words
        pointer_bits = buffer_words.bit_length()  # one bit more than an index

        # Beats to words; the fetch never holds its beats back (room was reserved).
        # ``beat_lanes``: with a bus no wider than a word, which lane of the word the beat
        # on ``dma_data`` fills (none: no beat), written straight into the buffer.
        word, beat_lanes = self._words(m)

        running, fault = Signal(), Signal()
        # Next word to request: address, words from it to the end of the program. (Kept as
        # such so that no wide adder precedes a decision.)
        issue_addr, issue_left = Signal(cfg.addr_width), Signal(cfg.pc_width)
        out_pc, final_pc = Signal(cfg.pc_width), Signal(cfg.pc_width)
        write_ptr, commit_ptr, read_ptr = (Signal(pointer_bits, name=name)
                                           for name in ("write_ptr", "commit_ptr", "read_ptr"))
        # A failed command of one word names the failing word: with one-word commands
        # nothing is fetched again, so there is no retry state.
        retries = chunk_words > 1
        if retries:
            # First word not yet committed, as the next word to request.
            commit_addr, commit_left = Signal(cfg.addr_width), Signal(cfg.pc_width)
            retry_left = Signal(range(chunk_words + 1))  # words to request one by one
            retrying = Signal()  # retry_left != 0, in a register of its own
            received = Signal(range(chunk_words + 1))  # words of the arriving command so far
        # Commands in flight, of which the first `stale` are of a cancelled fetch or from
        # before a rewind; buffer words neither holding a word nor promised to a command.
        in_flight, stale = Signal(range(max_commands + 1)), Signal(range(max_commands + 1))
        free = Signal(range(buffer_words + 1), init=buffer_words)

        # Buffer. In block RAM (``queue_ram_width``) its synchronous read port reads the
        # slot of the next cycle's read_ptr. Beats written straight into the buffer are
        # committed a cycle after the word's last one, and none is written into a
        # committed word's slot, so that port needs no transparency; words from a
        # repacker are written and committed in the same cycle.
        block_ram = cfg.queue_in_block_ram(INSTRUCTION_BITS)
        buffer = Memory(shape=INSTRUCTION_BITS, depth=buffer_words, init=[],
                        attrs={"ram_style": "block"} if block_ram else None)
        m.submodules.buffer = buffer
        beat_bits = 8 * cfg.dma_bytes
        buffer_write = buffer.write_port(
            granularity=beat_bits if beat_lanes is not None and len(beat_lanes) > 1 else None)
        if not block_ram:
            buffer_read = buffer.read_port(domain="comb")
        else:
            buffer_read = buffer.read_port(
                transparent_for=(buffer_write,) if beat_lanes is None else ())
        dropping = stale != 0
        keep = word.valid & ~dropping
        command_end = word.valid & word.payload.last
        kept_end = keep & word.payload.last
        failed = kept_end & word.payload.error
        if beat_lanes is None:
            m.d.comb += [buffer_write.addr.eq(write_ptr),
                         buffer_write.data.eq(word.payload.data), buffer_write.en.eq(keep)]
        else:
            # Each beat goes to its lane of the word at the buffer slot write_ptr has in the
            # next cycle (a word completing in this cycle moves it on). A word's slot then
            # holds it when it completes, as a shift register of its beats would. Beats of a
            # dropped word land in a slot no committed word holds (the one write_ptr then
            # points to: after a cancel or a failure nothing is committed past it), and the
            # next kept word overwrites every lane of it.
            next_write = Signal(pointer_bits)
            m.d.comb += [
                next_write.eq(Mux(self.start | self.stop, 0,
                                  Mux(failed, commit_ptr, write_ptr + keep))),
                buffer_write.addr.eq(next_write),
                buffer_write.data.eq(Cat(*[self.dma_data.payload.data] * len(beat_lanes))),
                buffer_write.en.eq(beat_lanes),
            ]
        m.d.comb += [
            self.insn.valid.eq(read_ptr != commit_ptr),
            self.insn.payload.word.eq(buffer_read.data),
            self.insn.payload.pc.eq(out_pc),
        ]
        handout = self.insn.valid & self.insn.ready
        m.d.comb += [
            self.fetched.eq(handout),
            buffer_read.addr.eq(Mux(self.start | self.stop, 0, read_ptr + handout) if block_ram
                                else read_ptr),
        ]

        # Issue: a chunk (or one word while retrying) when the buffer has room for it.
        # The next chunk's words, min(chunk_words, issue_left), kept with issue_left; after
        # an issue it is recomputed in the next cycle (when no command can issue, as the
        # issued one is still on dma_cmd), so no comparison follows the wide subtraction.
        chunk = Signal(range(chunk_words + 1))
        refresh = Signal()

        def chunk_of(value):
            return Mux(value < chunk_words, value, chunk_words)

        def set_issue_left(value):
            return [issue_left.eq(value), chunk.eq(chunk_of(value))]

        size = Signal(range(chunk_words + 1))
        # free - size: its sign says whether the chunk fits, and it is free's next value.
        spare = Signal(signed(len(free) + 1))
        m.d.comb += [size.eq(Mux(retrying, 1, chunk) if retries else chunk),
                     spare.eq(free - size)]
        issue = (~self.dma_cmd.valid & running & ~fault & (chunk != 0) & (spare >= 0)
                 & (in_flight != max_commands) & ~command_end & ~self.start & ~self.stop)
        with m.If(issue):
            m.d.sync += [
                self.dma_cmd.valid.eq(1),
                self.dma_cmd.payload.addr.eq(issue_addr),
                self.dma_cmd.payload.length.eq(Cat(Const(0, word_bits), size)),
                issue_addr.eq(issue_addr + Cat(Const(0, word_bits), size)),
                issue_left.eq(issue_left - size),
            ]
            if retries:
                m.d.sync += [retry_left.eq(retry_left - retrying), retrying.eq(retry_left > 1)]
        with m.Elif(self.dma_cmd.ready):
            m.d.sync += self.dma_cmd.valid.eq(0)
        m.d.sync += refresh.eq(issue)
        with m.If(refresh):  # a rewind or start in this cycle overrides it below
            m.d.sync += chunk.eq(chunk_of(issue_left))

        # Arrival: keep or drop each word; a command's end commits, rewinds or faults.
        m.d.sync += [in_flight.eq(in_flight + issue - command_end), stale.eq(stale - (command_end & dropping)),
                     free.eq(Mux(issue, spare + handout, free + handout))]
        with m.If(keep):
            m.d.sync += write_ptr.eq(write_ptr + 1)
            if retries:
                m.d.sync += received.eq(received + 1)
        with m.If(kept_end):
            stop = [fault.eq(1), running.eq(0)]
            if retries:
                m.d.sync += received.eq(0)
                words = received + 1
            with m.If(~word.payload.error):
                m.d.sync += commit_ptr.eq(write_ptr + 1)
                if retries:
                    m.d.sync += [commit_addr.eq(commit_addr + Cat(Const(0, word_bits), words)),
                                 commit_left.eq(commit_left - words)]
            with m.Else():
                m.d.sync += write_ptr.eq(commit_ptr)
                if retries:
                    with m.If(received != 0):  # fetch the chunk again word by word
                        m.d.sync += [issue_addr.eq(commit_addr), retry_left.eq(words),
                                     retrying.eq(1), *set_issue_left(commit_left)]
                    with m.Else():
                        m.d.sync += stop
                else:
                    m.d.sync += stop
        with m.If(handout):
            m.d.sync += [read_ptr.eq(read_ptr + 1), out_pc.eq(out_pc + 1)]
            with m.If(out_pc == final_pc):
                m.d.sync += running.eq(0)
        report = fault & (read_ptr == commit_ptr)
        m.d.sync += self.error.eq(report)
        with m.If(report):
            m.d.sync += fault.eq(0)
        m.d.comb += self.error_pc.eq(out_pc)

        # Cancelling: what is in flight becomes stale, and only committed words keep space.
        # (Nothing issues in a cycle that cancels: issue excludes start, stop and any
        # command's end, which a failure is.)
        with m.If(failed | self.start | self.stop):
            m.d.sync += [stale.eq(in_flight - command_end),
                         free.eq(buffer_words - (commit_ptr - read_ptr - handout)[:pointer_bits])]
            if retries:
                m.d.sync += received.eq(0)
        with m.If(self.start | self.stop):
            m.d.sync += [free.eq(buffer_words), running.eq(0), fault.eq(0),
                         write_ptr.eq(0), commit_ptr.eq(0), read_ptr.eq(0)]
            if retries:
                m.d.sync += [retry_left.eq(0), retrying.eq(0)]
        with m.If(self.start):
            m.d.sync += [issue_addr.eq(self.prog_addr), *set_issue_left(self.count),
                         final_pc.eq(self.count - 1), running.eq(self.count != 0),
                         out_pc.eq(0)]
            if retries:
                m.d.sync += [commit_addr.eq(self.prog_addr), commit_left.eq(self.count)]
        m.d.comb += self.busy.eq(running | fault | (in_flight != 0))
        return m

    def _words(self, m):
        """``(word, beat_lanes)``: the words of the beats on ``dma_data``, each valid for
        one cycle (``data``, and ``last`` and ``error`` of its command), a cycle after its
        last beat arrived; and None, or with a bus no wider than a word, the one-hot lane
        of the word the beat on ``dma_data`` fills (0 without a beat).

        A bus no wider than a word needs no :class:`Repacker`: every command is whole words
        and the reader's beats are then all full, so a word is its last few beats, each
        written straight into its lane of the buffer (``word`` then has no ``data``).
        (Cycle for cycle the same as the repacker's output.)"""
        beat_bits = 8 * self.config.dma_bytes
        beat = self.dma_data.payload
        if beat_bits > INSTRUCTION_BITS:
            m.submodules.repacker = repacker = Repacker(self.config.dma_bytes,
                                                        (INSTRUCTION_BYTES,))
            m.d.comb += [
                repacker.i.valid.eq(self.dma_data.valid),
                self.dma_data.ready.eq(repacker.i.ready),
                repacker.i.payload.data.eq(beat.data), repacker.i.payload.count.eq(beat.count),
                repacker.i.payload.last.eq(beat.last), repacker.i.payload.error.eq(beat.error),
                repacker.o.ready.eq(1),
            ]
            return repacker.o, None
        word = stream.Signature(data.StructLayout({"last": 1, "error": 1})).create()
        beats = INSTRUCTION_BITS // beat_bits
        index = Signal(range(beats))  # of the next beat in its word
        m.d.comb += self.dma_data.ready.eq(1)
        take = self.dma_data.valid
        # Little endian: the first beat is the bottom lane.
        lanes = Signal(beats)
        m.d.comb += lanes.eq(Cat(take & (index == lane) for lane in range(beats)))
        with m.If(take):
            m.d.sync += index.eq(Mux(index == beats - 1, 0, index + 1))
        complete = take & (index == beats - 1)
        m.d.sync += [word.valid.eq(complete), word.payload.last.eq(complete & beat.last),
                     word.payload.error.eq(complete & beat.last & beat.error)]
        return word, lanes
