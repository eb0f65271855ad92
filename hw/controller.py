"""The controller: checks fetched instructions, dispatches them to the load, compute and
store units, and keeps the units in step with dependency tokens (see ``hw/isa.py``).

Fetched words pass four pipeline stages (register; lines per row; line counts and the
checks that need none; the remaining checks: no stage holds more than a constant divider, a
multiplier or a row of adders and comparators) and go to one instruction queue per unit.
With ``decode_stages`` 3, 2 or 1 (of the configuration) the second, then also the third,
then also the first stage are wires: less area, a longer path and a word dispatched one,
two or three cycles earlier. A
:class:`UnitGate` in front of each unit holds the queue's head until the tokens it pops are
available, hands it to the unit, and pushes its tokens when the unit reports it done. Every
check a program can fail at decode time (unknown opcode, a dependency
flag the unit lacks, zero sizes, lines outside a memory, a VECTOR function whose unit is
absent or whose row is too long) raises the error before the instruction reaches a unit;
on an error the controller stops fetching, drops queued instructions, lets the units finish
what they started, and then reports done.
"""

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import FIFOInterface, SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .config import HardwareConfig
from .csr import ErrorCode
from .isa import (ALLOWED_DEPS, INSTRUCTION_BITS, VECTOR_PARAMS, VECTOR_UNIT, Instruction,
                  Memory, Opcode, OutWidth, VectorFunc, vector_output_memory, vector_param_lines,
                  vector_row_limit)
from .pwl import PWL_WIDTH, SEG_LOG2

__all__ = ["FetchedWord", "fetched_word", "DirectQueue", "UnitGate", "Controller", "udiv_const", "UNITS",
           "TOKEN_QUEUES", "gate_depth"]



def fetched_word(pc_width=32):
    """A fetched instruction word and its index in the program (``pc_width`` bits, of the
    configuration)."""
    return data.StructLayout({"word": INSTRUCTION_BITS, "pc": pc_width})


#: A fetched instruction word and its 32-bit index in the program (the default
#: ``pc_width``).
FetchedWord = fetched_word()

#: Units, the opcodes they execute, the dependency flags they pop and push, and the token
#: queue each flag uses.
UNITS = {
    "load": ((Opcode.LOAD,), {"pop_next": "c2l"}, {"push_next": "l2c"}),
    "compute": ((Opcode.MATMUL, Opcode.VECTOR), {"pop_prev": "l2c", "pop_next": "s2c"},
                {"push_prev": "c2l", "push_next": "c2s"}),
    "store": ((Opcode.STORE,), {"pop_prev": "c2s"}, {"push_prev": "s2c"}),
}
TOKEN_QUEUES = ("l2c", "c2l", "c2s", "s2c")


def gate_depth(unit, in_flight):
    """Unfinished instructions the :class:`UnitGate` of ``unit`` keeps tokens for, so that
    it never holds back an instruction the unit would take. The load and store units hold
    at most ``in_flight`` unfinished instructions (their instruction queues) and report one
    done in the cycle after it left them, in which they may take the next: one entry more.
    The compute unit's results pass two pipeline stages after its queue."""
    return 2 * in_flight if unit == "compute" else in_flight + 1
#: Tokens a queue can hold (the functional simulator's MAX_TOKENS).
MAX_TOKENS = 255
#: What the decode checks need of an instruction's sizes and addresses, computed over two
#: pipeline stages in front of them. ``PerRow``: the rows of a VECTOR, LOAD or STORE and the
#: lines each row takes (a VECTOR's row: accumulator ``lines`` = chunks and scratchpad
#: ``spad`` lines; a transfer's row: ``lines`` of its memory), whether a VECTOR writes the
#: scratchpad, and the lines from the first line of a transfer or of a VECTOR's destination,
#: source, auxiliary rows and parameter planes (after its fixed parameter lines) to the end
#: of their memory (negative beyond it), so that each range check is one comparison.
#: A MATMUL's range checks are made here too (``matmul_spad``: its A or B lines leave the
#: scratchpad, ``matmul_acc``: its C lines leave the accumulator).
#: ``LineCounts``: the products ``rows * lines`` and ``rows * spad``.
PerRow = data.StructLayout({
    "rows": 16, "lines": 16, "spad": 16, "to_spad": 1, "room_dst": signed(18),
    "room_src": signed(18), "room_aux": signed(18), "room_param": signed(19),
    "matmul_spad": 1, "matmul_acc": 1})
LineCounts = data.StructLayout({"lines": 32, "spad": 32})
#: The checks that need no line counts, made alongside them: the error code they decide
#: (``NONE`` leaves it to the line counts); the rooms of :data:`PerRow` the others need;
#: and, for a VECTOR, whether it writes the scratchpad, reads ``rows * lines`` auxiliary
#: lines, reads records or parameters beyond the accumulator, or has fraction bits out of
#: range.
EarlyChecks = data.StructLayout({
    "code": 8, "room_dst": signed(18), "room_src": signed(18), "room_aux": signed(18),
    "to_spad": 1, "aux_lines": 1, "acc_range": 1, "pwl_bad": 1})
#: The outcome of the checks, registered in the last stage: the early error code and
#: whether it is set, and which of the range checks and the fraction-bit check of the
#: instruction's opcode failed (the error code follows with a few gates,
#: :meth:`Controller.error_of`; the word is bad if any bit but ``early_code`` is set).
Checked = data.StructLayout({"early_code": 8, "early_bad": 1, "transfer_range": 1,
                             "spad_range": 1, "acc_range": 1, "pwl_bad": 1})


def udiv_const(value, divisor, width):
    """``value // divisor`` for an unsigned ``value`` below ``2**width`` and a constant
    ``divisor``, as a multiply and a shift (exact: checked for every input)."""
    if divisor & (divisor - 1) == 0:
        return value >> (divisor.bit_length() - 1)
    shift = width + divisor.bit_length()
    multiplier = -(-(1 << shift) // divisor)
    assert all((x * multiplier) >> shift == x // divisor for x in range(1 << width))
    return (value * multiplier) >> shift


class DirectQueue(FIFOInterface, Elaboratable):
    """A queue of no entries for ``queue_depth`` 0: what is written is read in the same
    cycle (``r_rdy`` is ``w_en``, ``w_rdy`` is ``r_en``), so the controller's dispatch stage
    hands its word straight to the unit's gate."""

    def __init__(self, *, width):
        super().__init__(width=width, depth=0)
        self.level = Signal(range(1))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.r_data.eq(self.w_data), self.r_rdy.eq(self.w_en),
                     self.w_rdy.eq(self.r_en)]
        return m


class UnitGate(wiring.Component):
    """Dependency-token gate in front of one unit, which may hold up to ``depth``
    unfinished instructions (program indices of ``pc_width`` bits).

    Members
    -------
    queue : In(stream.Signature(fetched_word(pc_width)))
        The unit's instruction queue.
    insn : Out(stream.Signature(fetched_word(pc_width)))
        To the unit, once the instruction's pop tokens are available.
    done : In(1)
        The unit finished its oldest instruction: push that instruction's tokens.
    available : In(len(pops))
        Per pop flag (in ``pops`` order): its token queue holds a token.
    pop, push : Out(len(pops)), Out(len(pushes))
        Tokens taken / given this cycle.
    done_pc : Out(pc_width)
        Program index of the unit's oldest unfinished instruction.
    stalled : Out(1)
        An instruction waits for tokens.
    drop : In(1)
        Discard queued instructions instead of issuing them (after an error).
    idle : Out(1)
        Nothing queued at the unit and nothing unfinished.
    """

    def __init__(self, pops, pushes, depth, pc_width=32):
        self.pops, self.pushes, self.depth = list(pops), list(pushes), depth
        layout = fetched_word(pc_width)
        super().__init__({
            "queue": In(stream.Signature(layout)),
            "insn": Out(stream.Signature(layout)),
            "done": In(1),
            "available": In(max(len(self.pops), 1)),
            "pop": Out(max(len(self.pops), 1)),
            "push": Out(max(len(self.pushes), 1)),
            "done_pc": Out(pc_width),
            "stalled": Out(1),
            "drop": In(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        word = data.View(Instruction, self.queue.payload.word)
        deps = word.header.deps
        wanted = Cat(*(getattr(deps, flag) for flag in self.pops)) if self.pops else Const(0, 1)
        pushes = Cat(*(getattr(deps, flag) for flag in self.pushes)) if self.pushes \
            else Const(0, 1)
        m.submodules.in_flight = in_flight = SyncFIFO(width=len(pushes) + len(self.done_pc),
                                                      depth=self.depth)
        tokens_ok = (wanted & ~self.available) == 0
        issue = self.queue.valid & tokens_ok & in_flight.w_rdy & ~self.drop
        m.d.comb += [
            self.insn.valid.eq(self.queue.valid & tokens_ok & in_flight.w_rdy & ~self.drop),
            self.insn.payload.eq(self.queue.payload),
            self.queue.ready.eq((issue & self.insn.ready) | self.drop),
            self.pop.eq(Mux(issue & self.insn.ready, wanted, 0)),
            in_flight.w_en.eq(issue & self.insn.ready),
            in_flight.w_data.eq(Cat(pushes, self.queue.payload.pc)),
            in_flight.r_en.eq(self.done),
            self.push.eq(Mux(self.done, in_flight.r_data[:len(pushes)], 0)),
            self.done_pc.eq(in_flight.r_data[len(pushes):]),
            self.stalled.eq(self.queue.valid & ~tokens_ok & ~self.drop),
            self.idle.eq(~self.queue.valid & ~in_flight.r_rdy),
        ]
        return m


class Controller(wiring.Component):
    """Decode, checks, dispatch, dependency tokens and program completion.

    Members
    -------
    start : In(1)
        Pulse: a program starts (clears the error and the tokens).
    fetched : In(stream.Signature(fetched_word(pc_width)))
        Words from the fetch unit, in program order (indices of the configuration's
        ``pc_width`` bits, as every ``*_pc`` below).
    fetch_busy : In(1)
        The fetch unit still has words to deliver.
    fetch_error : In(1)
        Pulse: an instruction fetch got an AXI error; ``fetch_error_pc`` names the word.
    fetch_error_pc : In(pc_width)
    stop_fetch : Out(1)
        Pulse: HALT or an error — fetch no further.
    load, compute, store : Out(stream.Signature(fetched_word(pc_width)))
        Instructions for the units (``word`` is cast to the unit's layout).
    load_done, compute_done, store_done : In(1)
        A unit finished its oldest instruction.
    load_error, store_error : In(1)
        A unit's transfer got an AXI error (pulses with or before its ``*_done``).
    units_idle : In(1)
        No unit holds unfinished work.
    busy : Out(1)
    finished : Out(1)
        Pulse: the program ended (all work done, or stopped by an error).
    error : Out(ErrorCode width)
        First error of the program (``ErrorCode.NONE`` if none).
    error_pc : Out(pc_width)
    decoded : Out(1)
        A program word was taken from the fetch stream and acted on (dispatched, or
        FENCE, HALT or an error); words fetched after HALT or an error do not count.
    stalled : Out(3)
        Per unit (load, compute, store): an instruction waits for tokens.
    completed : Out(2)
        Instructions finished this cycle (0..3).
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        layout, pc_width = fetched_word(config.pc_width), config.pc_width
        super().__init__({
            "start": In(1),
            "fetched": In(stream.Signature(layout)),
            "fetch_busy": In(1), "fetch_error": In(1), "fetch_error_pc": In(pc_width),
            "stop_fetch": Out(1),
            "load": Out(stream.Signature(layout)),
            "compute": Out(stream.Signature(layout)),
            "store": Out(stream.Signature(layout)),
            "load_done": In(1), "compute_done": In(1), "store_done": In(1),
            "load_error": In(1), "store_error": In(1),
            "units_idle": In(1),
            "busy": Out(1), "finished": Out(1), "decoded": Out(1),
            "error": Out(8), "error_pc": Out(pc_width),
            "stalled": Out(3), "completed": Out(2),
        })

    def per_row(self, m, word):
        """The :data:`PerRow` of an instruction word (a VECTOR's or a transfer's; a value to
        register two stages before :meth:`check`)."""
        cfg = self.config
        insn = data.View(Instruction, word)
        vector, transfer = insn.vector, insn.transfer
        per_row = Signal(PerRow)

        def ceil_div(value, divisor):
            return udiv_const(value + divisor - 1, divisor, len(value) + 1)[:16]

        # Without vector units every VECTOR is illegal (early_checks): no VECTOR sizes.
        with m.If((insn.header.opcode == Opcode.VECTOR) if cfg.vector.units else Const(0)):
            # (Its own signal: per_row read while it is driven is a loop to Verilator.)
            to_spad = Signal()
            param_base = Signal(range(max(vector_param_lines(func, 1, cfg.cols)[0]
                                          for func in VectorFunc) + 1))
            # An if/elif chain, not a switch: Verilator's lint rejects incomplete cases.
            for index, func in enumerate(VectorFunc):
                with (m.Elif if index else m.If)(vector.func == func):
                    spad_if = {w: int(vector_output_memory(func, w) == Memory.SPAD)
                               for w in OutWidth}
                    m.d.comb += [
                        to_spad.eq(Mux(vector.out_width == OutWidth.INT8,
                                       spad_if[OutWidth.INT8], spad_if[OutWidth.INT16])),
                        param_base.eq(vector_param_lines(func, 1, cfg.cols)[0]),
                    ]
            m.d.comb += [
                per_row.rows.eq(vector.num_rows),
                per_row.to_spad.eq(to_spad),
                per_row.lines.eq(ceil_div(vector.row_length, cfg.cols)),
                per_row.room_dst.eq(Mux(to_spad, cfg.spad_lines, cfg.acc_lines)
                                    - vector.dst_addr),
                per_row.room_src.eq(cfg.acc_lines - vector.src_addr),
                per_row.room_aux.eq(cfg.acc_lines - vector.aux_addr),
                per_row.room_param.eq(cfg.acc_lines - vector.param_addr - param_base),
            ]
        with m.Else():
            to_acc = transfer.mem == Memory.ACC
            m.d.comb += [
                per_row.rows.eq(transfer.rows),
                per_row.lines.eq(Mux(to_acc, ceil_div(transfer.row_bytes, cfg.acc_line_bytes),
                                     ceil_div(transfer.row_bytes, cfg.spad_line_bytes))),
                per_row.room_dst.eq(Mux(to_acc, cfg.acc_lines, cfg.spad_lines)
                                    - transfer.sram_addr),
            ]
        if cfg.vector.units:
            m.d.comb += per_row.spad.eq(ceil_div(vector.row_length, cfg.spad_line_bytes))
        matmul = insn.matmul
        ws = cfg.dataflow == "ws"
        b_lines = cfg.rows if ws else matmul.length
        c_lines = matmul.length if ws else cfg.rows
        m.d.comb += [
            per_row.matmul_spad.eq((matmul.a_addr + matmul.length > cfg.spad_lines)
                                   | (matmul.b_addr + b_lines > cfg.spad_lines)),
            per_row.matmul_acc.eq(matmul.c_addr + c_lines > cfg.acc_lines),
        ]
        return per_row

    def line_counts(self, per_row):
        """The :data:`LineCounts` of a :data:`PerRow` (a value to register in the stage
        before :meth:`check`)."""
        cfg = self.config
        per_row = data.View(PerRow, per_row)
        lines = per_row.rows * per_row.lines
        # A row of ``cols`` elements fills a scratchpad line when the array is not taller.
        spad = lines if cfg.spad_line_bytes == cfg.cols or not cfg.vector.units \
            else per_row.rows * per_row.spad  # (only VECTORs use it)
        return Cat(lines, spad)

    def early_checks(self, m, word, per_row):
        """The :data:`EarlyChecks` of an instruction word and its :data:`PerRow` (a value to
        register in the stage before :meth:`check`)."""
        cfg = self.config
        insn = data.View(Instruction, word)
        opcode = insn.header.opcode.as_value()
        early = Signal(EarlyChecks)
        known = Signal()
        flag_names = ("pop_prev", "pop_next", "push_prev", "push_next")
        flags = Cat(*(getattr(insn.header.deps, flag) for flag in flag_names))
        # Opcodes this hardware executes; any other is illegal here.
        executed = [op for ops, _, _ in UNITS.values() for op in ops] + [Opcode.FENCE,
                                                                          Opcode.HALT]
        for op in executed:
            allowed = sum(1 << i for i, flag in enumerate(flag_names)
                          if flag in ALLOWED_DEPS[op])
            with m.If(opcode == op.value):
                m.d.comb += known.eq((flags & ~allowed) == 0)
        transfer, matmul = insn.transfer, insn.matmul
        per_row = data.View(PerRow, per_row)
        with m.If(~known):
            m.d.comb += early.code.eq(ErrorCode.ILLEGAL_INSTRUCTION)
        with m.Elif((opcode == Opcode.LOAD.value) | (opcode == Opcode.STORE.value)):
            with m.If((transfer.rows == 0) | (transfer.row_bytes == 0)):
                m.d.comb += early.code.eq(ErrorCode.ILLEGAL_INSTRUCTION)
        with m.Elif(opcode == Opcode.MATMUL.value):
            with m.If(matmul.length == 0):
                m.d.comb += early.code.eq(ErrorCode.ILLEGAL_INSTRUCTION)
            with m.Elif(per_row.matmul_spad):
                m.d.comb += early.code.eq(ErrorCode.SPAD_RANGE)
            with m.Elif(per_row.matmul_acc):
                m.d.comb += early.code.eq(ErrorCode.ACC_RANGE)
        with m.Elif(opcode == Opcode.VECTOR.value):
            if cfg.vector.units:
                self._early_vector_checks(m, insn.vector, per_row, early)
            else:
                m.d.comb += early.code.eq(ErrorCode.ILLEGAL_INSTRUCTION)
        m.d.comb += [early.room_dst.eq(per_row.room_dst), early.room_src.eq(per_row.room_src),
                     early.room_aux.eq(per_row.room_aux), early.to_spad.eq(per_row.to_spad)]
        return early

    def _early_vector_checks(self, m, vector, per_row, early):
        """Drive ``early`` for a VECTOR instruction and its :data:`PerRow`: its
        ILLEGAL_INSTRUCTION checks (unknown function, zero sizes, absent unit, row too long,
        reserved width), and its range and fraction-bit checks that need no line counts
        (see :meth:`error_of` for their order)."""
        cfg = self.config
        rows, length = vector.num_rows, vector.row_length
        # Per function: legal so far, and the accumulator lines it reads besides its source
        # rows.
        illegal, params_beyond = Signal(init=1), Signal()
        record_reads, record_writes, pwl = Signal(), Signal(), Signal()
        # An if/elif chain, not a switch: Verilator's lint rejects incomplete cases.
        for index, func in enumerate(VectorFunc):
            with (m.Elif if index else m.If)(vector.func == func):
                planes = len(VECTOR_PARAMS[func][1])
                limit = vector_row_limit(cfg.vector, func)
                too_long = length > limit if limit < 2**len(length) - 1 else Const(0)
                # Fixed lines then a plane per chunk; none at all reads no parameters.
                reads_params = vector_param_lines(func, 1, cfg.cols)[0] != 0 or planes != 0
                m.d.comb += [
                    illegal.eq(Const(not getattr(cfg.vector, VECTOR_UNIT[func])) | too_long),
                    params_beyond.eq(Const(reads_params)
                                     & (per_row.lines * planes > per_row.room_param)),
                    record_reads.eq(func in (VectorFunc.REQUANTIZE, VectorFunc.SOFTMAX)),
                    record_writes.eq(func == VectorFunc.ROWQUANT),
                    early.aux_lines.eq(func in (VectorFunc.MUL, VectorFunc.ADD)),
                    pwl.eq(func in (VectorFunc.GELU, VectorFunc.SILU)),
                ]
        aux_rows = record_writes | (record_reads & vector.row_scale)
        m.d.comb += [
            early.acc_range.eq((aux_rows & (rows > per_row.room_aux)) | params_beyond),
            early.pwl_bad.eq(pwl & ((vector.imm < SEG_LOG2) | (vector.imm > PWL_WIDTH - 1))),
        ]
        with m.If(illegal | (rows == 0) | (length == 0)
                  | (vector.out_width.as_value() > OutWidth.INT32.value)):
            m.d.comb += early.code.eq(ErrorCode.ILLEGAL_INSTRUCTION)

    def check(self, m, word, early, counts):
        """The :data:`Checked` outcome of an instruction word's checks, from the
        configuration's memory sizes, its :data:`EarlyChecks` and its :data:`LineCounts`."""
        insn = data.View(Instruction, word)
        opcode = insn.header.opcode.as_value()
        early, counts = data.View(EarlyChecks, early), data.View(LineCounts, counts)
        checked = Signal(Checked)
        is_transfer = (opcode == Opcode.LOAD.value) | (opcode == Opcode.STORE.value)
        # (A VECTOR without vector units failed early: no range checks of its own.)
        is_vector = (opcode == Opcode.VECTOR.value) if self.config.vector.units else Const(0)
        m.d.comb += [
            checked.early_code.eq(early.code),
            checked.early_bad.eq(early.code != ErrorCode.NONE),
            checked.transfer_range.eq(is_transfer & (counts.lines > early.room_dst)),
            checked.spad_range.eq(is_vector & early.to_spad & (counts.spad > early.room_dst)),
            checked.acc_range.eq(is_vector & (
                early.acc_range | (~early.to_spad & (counts.lines > early.room_dst))
                | (counts.lines > early.room_src)
                | (early.aux_lines & (counts.lines > early.room_aux)))),
            checked.pwl_bad.eq(is_vector & early.pwl_bad),
        ]
        return checked

    def error_of(self, m, word, checked):
        """The :class:`ErrorCode` (0 if none) of an instruction word from its
        :data:`Checked`. A VECTOR is checked in the functional simulator's order:
        ILLEGAL_INSTRUCTION, then the destination's range, then the accumulator reads'
        ranges, then ILLEGAL_INSTRUCTION for GELU/SILU fraction bits outside their range."""
        insn = data.View(Instruction, word)
        checked = data.View(Checked, checked)
        code = Signal(8)
        with m.If(checked.early_bad):
            m.d.comb += code.eq(checked.early_code)
        with m.Elif(checked.transfer_range):
            m.d.comb += code.eq(Mux(insn.transfer.mem == Memory.ACC, ErrorCode.ACC_RANGE,
                                    ErrorCode.SPAD_RANGE))
        with m.Elif(checked.spad_range):
            m.d.comb += code.eq(ErrorCode.SPAD_RANGE)
        with m.Elif(checked.acc_range):
            m.d.comb += code.eq(ErrorCode.ACC_RANGE)
        with m.Elif(checked.pwl_bad):
            m.d.comb += code.eq(ErrorCode.ILLEGAL_INSTRUCTION)
        return code

    def error_code(self, m, word):
        """The :class:`ErrorCode` of an instruction word: the decode pipeline's logic
        without its registers (for tests)."""
        per_row = self.per_row(m, word)
        return self.error_of(m, word, self.check(m, word, self.early_checks(m, word, per_row),
                                                 self.line_counts(per_row)))

    def elaborate(self, platform):
        m = Module()
        depth = self.config.queue_depth
        running = Signal()
        stopping = Signal()  # HALT seen or error: dispatch nothing more
        failed = Signal()

        # The decode pipeline: the fetched word, then with its PerRow, its LineCounts and
        # EarlyChecks, and its error code; the last stage dispatches.
        pc_width = self.config.pc_width
        layout = fetched_word(pc_width)
        stages = [(Signal(layout, name=f"s{i}"), Signal(name=f"s{i}_valid"))
                  for i in range(1, 5)]
        s2_per_row, s3_counts, s3_early = Signal(PerRow), Signal(LineCounts), Signal(EarlyChecks)
        last, last_valid = stages[-1]
        last_checked = Signal(Checked)

        # Buffered: a queue's head is a register, out of the paths through the gates. (With
        # no entries, a word waiting for tokens holds back every word behind it.)
        width = data.Layout.cast(layout).size
        queues = {name: SyncFIFOBuffered(width=width, depth=depth) if depth
                  else DirectQueue(width=width) for name in UNITS}
        gates = {name: UnitGate(pops, pushes, gate_depth(name, self.config.in_flight), pc_width)
                 for name, (_, pops, pushes) in UNITS.items()}
        for name in UNITS:
            m.submodules[f"queue_{name}"] = queues[name]
            m.submodules[f"gate_{name}"] = gates[name]
            queue, gate = queues[name], gates[name]
            m.d.comb += [gate.queue.valid.eq(queue.r_rdy), gate.queue.payload.eq(queue.r_data),
                         queue.r_en.eq(gate.queue.ready), gate.drop.eq(failed)]
            wiring.connect(m, gate.insn, wiring.flipped(getattr(self, name)))
        m.d.comb += [gates["load"].done.eq(self.load_done),
                     gates["compute"].done.eq(self.compute_done),
                     gates["store"].done.eq(self.store_done)]
        # (A buffered queue's head lags a write by a cycle: its level counts every entry.)
        all_idle = Cat(*(gates[name].idle & (queues[name].level == 0) for name in UNITS)).all() \
            & self.units_idle

        # Dispatch from the last stage, whose kind (unit, FENCE or HALT) is decoded a stage
        # earlier. A FENCE waits for all units idle a cycle earlier with nothing dispatched
        # since: no path from the units' state into the pipeline's enables.
        kinds = {name: ops for name, (ops, _, _) in UNITS.items()}
        kinds.update(fence=(Opcode.FENCE,), halt=(Opcode.HALT,))
        s3_opcode = data.View(Instruction, stages[2][0].word).header.opcode.as_value()
        last_kind = Signal(len(kinds))
        target = dict(zip(kinds, last_kind))
        bad = Signal()  # any check failed: registered with the checks, one flip-flop
        was_idle = Signal()
        m.d.sync += was_idle.eq(all_idle & ~Cat(queue.w_en for queue in queues.values()).any())
        go = last_valid & ~stopping & ~bad
        for name in UNITS:
            m.d.comb += [queues[name].w_en.eq(go & target[name]), queues[name].w_data.eq(last)]
        # The stages advance together when the last one is empty or dispatches (bubbles
        # behind a stalled word stay: no chain of enables through the stages), and the
        # first also takes a word whenever it is empty. These enables reach hundreds of
        # flip-flops, so with queues of other than two entries all of ``advance`` but a
        # FENCE's share is ``moves``, a flip-flop computed a cycle ahead (below): the last
        # stage is empty, dropped after a stop, failed its checks, holds a HALT, or its
        # unit's queue has room. (A buffered queue takes a write whenever it holds fewer
        # than ``depth`` entries, except with two: its head register refuses a write in the
        # cycle after one into an empty queue. There, and without queues, whether a queue
        # takes a word is known only in its cycle: flat sums of products, the kinds being
        # one-hot unless the word is bad, give few logic levels from the queues' state.)
        predict_moves = depth not in (0, 2)
        dispatched = Signal()
        if predict_moves:
            moves = Signal(init=1)
            advance = moves | (target["fence"] & was_idle)
            m.d.comb += dispatched.eq(last_valid & advance)
        else:
            m.d.comb += dispatched.eq(
                last_valid & (stopping | bad | target["halt"] | (target["fence"] & was_idle)
                              | Cat(target[name] & queues[name].w_rdy for name in UNITS).any()))
            advance = ~last_valid | dispatched
        # (Words fetched after HALT or an error are dropped.)
        m.d.comb += self.decoded.eq(dispatched & ~stopping)
        free = [~stages[0][1] | advance] + [advance] * (len(stages) - 1)
        sources = [(self.fetched.payload, self.fetched.valid)] + stages[:-1]
        # With fewer decode_stages, the second, then the third, then the first stage are
        # wires (with the first a wire, a word is taken as the last stage takes it).
        stages_kept = self.config.decode_stages
        registered = [stages_kept >= 2, stages_kept >= 3, stages_kept >= 4, True]

        def stage(index, assignments):
            if registered[index]:
                with m.If(free[index]):
                    m.d.sync += assignments
            else:
                m.d.comb += assignments

        for index, ((word, valid), (source, source_valid)) in enumerate(zip(stages, sources)):
            stage(index, [word.eq(source), valid.eq(source_valid)])
        m.d.comb += self.fetched.ready.eq(free[0])
        (s1, _), (s2, _), (s3, _), _ = stages
        # Outside the enables, so that no path runs through them.
        per_row = self.per_row(m, s1.word)
        early = self.early_checks(m, s2.word, s2_per_row)
        checked = self.check(m, s3.word, s3_early, s3_counts)
        stage(1, s2_per_row.eq(per_row))
        stage(2, [s3_counts.eq(self.line_counts(s2_per_row)), s3_early.eq(early)])
        s3_bad = checked.as_value()[8:].any()
        s3_kind = Cat(Cat(s3_opcode == op.value for op in ops).any() for ops in kinds.values())
        stage(3, [last_checked.eq(checked), bad.eq(s3_bad), last_kind.eq(s3_kind)])

        # Tokens. A push that takes a queue past MAX_TOKENS is an error reported a cycle
        # later with the index of the pushing unit's instruction (kept from its done pulse),
        # out of the error logic's paths.
        finished_pc = {name: Signal(pc_width, name=f"finished_pc_{name}") for name in UNITS}
        for name, gate in gates.items():
            with m.If(gate.done):
                m.d.sync += finished_pc[name].eq(gate.done_pc)
        for queue_name in TOKEN_QUEUES:
            count = Signal(range(MAX_TOKENS + 2), name=f"tokens_{queue_name}")
            pushed = Cat(*(gate.push[i] for name, gate in gates.items()
                           for i, flag in enumerate(UNITS[name][2])
                           if UNITS[name][2][flag] == queue_name)).any()
            popped = Cat(*(gate.pop[i] for name, gate in gates.items()
                           for i, flag in enumerate(UNITS[name][1])
                           if UNITS[name][1][flag] == queue_name)).any()
            # count != 0 as a flip-flop of its own, updated with the count, so that the
            # gates' issue logic starts at a register instead of a wide OR.
            nonzero = Signal(name=f"tokens_{queue_name}_nonzero")
            for name, gate in gates.items():
                for i, flag in enumerate(UNITS[name][1]):
                    if UNITS[name][1][flag] == queue_name:
                        m.d.comb += gate.available[i].eq(nonzero)
            m.d.sync += [count.eq(count + pushed - popped),
                         nonzero.eq(Mux(pushed == popped, nonzero, pushed | (count > 1)))]
            pusher = next(name for name, (_, _, pushes) in UNITS.items()
                          if queue_name in pushes.values())
            overflow = Signal(name=f"overflow_{queue_name}")
            # A push onto a full queue overflows, even if a token leaves in the same cycle
            # (past MAX_TOKENS the controller has failed until the next start).
            m.d.sync += overflow.eq(~self.start & (count == MAX_TOKENS) & pushed)
            with m.If(self.start):
                m.d.sync += [count.eq(0), nonzero.eq(0)]
            with m.If(overflow):
                self._fail(m, ErrorCode.TOKEN_OVERFLOW, finished_pc[pusher], failed)

        # Errors: the first one wins.
        with m.If(last_valid & ~stopping & bad):
            self._fail(m, self.error_of(m, last.word, last_checked), last.pc, failed)
        with m.If(self.fetch_error):
            self._fail(m, ErrorCode.AXI_READ, self.fetch_error_pc, failed)
        with m.If(self.load_error):
            self._fail(m, ErrorCode.AXI_READ, gates["load"].done_pc, failed)
        with m.If(self.store_error):
            self._fail(m, ErrorCode.AXI_WRITE, gates["store"].done_pc, failed)

        stop_now = (last_valid & ~stopping & (bad | target["halt"])) | self.fetch_error | \
            self.load_error | self.store_error
        m.d.comb += self.stop_fetch.eq(running & stop_now)
        with m.If(stop_now):
            m.d.sync += stopping.eq(1)
        if predict_moves:
            # ``moves`` of the next cycle: from the last stage's next word (the one behind it
            # if the stages advance), the next ``stopping``, and whether each queue holds
            # fewer than ``depth`` entries after this cycle's write and read (compared
            # before them: no adder after the write, which comes late).
            next_target = dict(zip(kinds, Mux(advance, s3_kind, last_kind)))
            has_room = {}
            for name, queue in queues.items():
                write, read = queue.w_en & queue.w_rdy, queue.r_en & queue.r_rdy
                has_room[name] = Mux(write, Mux(read, queue.level < depth,
                                                queue.level < depth - 1),
                                     read | (queue.level < depth))
            m.d.sync += moves.eq(
                ~Mux(advance, stages[2][1], last_valid) | (~self.start & (stopping | stop_now))
                | Mux(advance, s3_bad, bad) | next_target["halt"]
                | Cat(next_target[name] & has_room[name] for name in UNITS).any())

        # Completion (not in the cycle right after start, before fetch reports busy).
        just_started = Signal()
        m.d.sync += just_started.eq(self.start)
        drained = ~self.fetch_busy & ~Cat(valid for _, valid in stages).any() & all_idle \
            & ~just_started
        m.d.comb += [
            self.busy.eq(running),
            self.finished.eq(running & drained & ~self.start),
            self.stalled.eq(Cat(gates["load"].stalled, gates["compute"].stalled,
                                gates["store"].stalled)),
            self.completed.eq(self.load_done + self.compute_done + self.store_done),
        ]
        with m.If(self.finished):
            m.d.sync += running.eq(0)
        with m.If(self.start):
            m.d.sync += [running.eq(1), stopping.eq(0), failed.eq(0),
                         self.error.eq(ErrorCode.NONE), self.error_pc.eq(0)]
        return m

    def _fail(self, m, code, pc, failed):
        with m.If(~failed):
            m.d.sync += [failed.eq(1), self.error.eq(code), self.error_pc.eq(pc)]
