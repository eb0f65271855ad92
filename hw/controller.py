"""The controller: checks fetched instructions, dispatches them to the load, compute and
store units, and keeps the units in step with dependency tokens (see ``hw/isa.py``).

Fetched words pass two pipeline stages (register, then check) and go to one instruction
queue per unit. A :class:`UnitGate` in front of each unit holds the queue's head until the
tokens it pops are available, hands it to the unit, and pushes its tokens when the unit
reports it done. Every check a program can fail at decode time (unknown opcode, a dependency
flag the unit lacks, zero sizes, lines outside a memory, a VECTOR function whose unit is
absent or whose row is too long) raises the error before the instruction reaches a unit;
on an error the controller stops fetching, drops queued instructions, lets the units finish
what they started, and then reports done.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .config import HardwareConfig
from .csr import ErrorCode
from .isa import (ALLOWED_DEPS, INSTRUCTION_BITS, VECTOR_PARAMS, VECTOR_UNIT, Instruction,
                  Memory, Opcode, OutWidth, VectorFunc, vector_output_memory, vector_param_lines,
                  vector_row_limit)
from .pwl import PWL_WIDTH, SEG_LOG2

__all__ = ["FetchedWord", "UnitGate", "Controller", "udiv_const", "UNITS", "TOKEN_QUEUES"]

#: A fetched instruction word and its index in the program.
FetchedWord = data.StructLayout({"word": INSTRUCTION_BITS, "pc": 32})

#: Units, the opcodes they execute, the dependency flags they pop and push, and the token
#: queue each flag uses.
UNITS = {
    "load": ((Opcode.LOAD,), {"pop_next": "c2l"}, {"push_next": "l2c"}),
    "compute": ((Opcode.MATMUL, Opcode.VECTOR), {"pop_prev": "l2c", "pop_next": "s2c"},
                {"push_prev": "c2l", "push_next": "c2s"}),
    "store": ((Opcode.STORE,), {"pop_prev": "c2s"}, {"push_prev": "s2c"}),
}
TOKEN_QUEUES = ("l2c", "c2l", "c2s", "s2c")
#: Tokens a queue can hold (the functional simulator's MAX_TOKENS).
MAX_TOKENS = 255
#: Instructions a gate lets its unit hold at once.
GATE_IN_FLIGHT = 8
#: Line counts of a VECTOR instruction, computed in the stage before its checks: lines per
#: row, and the accumulator / scratchpad lines of all its rows.
VectorLines = data.StructLayout({"chunks": 16, "acc": 32, "spad": 32})


def udiv_const(value, divisor, width):
    """``value // divisor`` for an unsigned ``value`` below ``2**width`` and a constant
    ``divisor``, as a multiply and a shift (exact: checked for every input)."""
    if divisor & (divisor - 1) == 0:
        return value >> (divisor.bit_length() - 1)
    shift = width + divisor.bit_length()
    multiplier = -(-(1 << shift) // divisor)
    assert all((x * multiplier) >> shift == x // divisor for x in range(1 << width))
    return (value * multiplier) >> shift


class UnitGate(wiring.Component):
    """Dependency-token gate in front of one unit.

    Members
    -------
    queue : In(stream.Signature(FetchedWord))
        The unit's instruction queue.
    insn : Out(stream.Signature(FetchedWord))
        To the unit, once the instruction's pop tokens are available.
    done : In(1)
        The unit finished its oldest instruction: push that instruction's tokens.
    available : In(len(pops))
        Per pop flag (in ``pops`` order): its token queue holds a token.
    pop, push : Out(len(pops)), Out(len(pushes))
        Tokens taken / given this cycle.
    done_pc : Out(32)
        Program index of the unit's oldest unfinished instruction.
    stalled : Out(1)
        An instruction waits for tokens.
    drop : In(1)
        Discard queued instructions instead of issuing them (after an error).
    idle : Out(1)
        Nothing queued at the unit and nothing unfinished.
    """

    def __init__(self, pops, pushes):
        self.pops, self.pushes = list(pops), list(pushes)
        super().__init__({
            "queue": In(stream.Signature(FetchedWord)),
            "insn": Out(stream.Signature(FetchedWord)),
            "done": In(1),
            "available": In(max(len(self.pops), 1)),
            "pop": Out(max(len(self.pops), 1)),
            "push": Out(max(len(self.pushes), 1)),
            "done_pc": Out(32),
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
        m.submodules.in_flight = in_flight = SyncFIFO(width=len(pushes) + 32,
                                                      depth=GATE_IN_FLIGHT)
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
    fetched : In(stream.Signature(FetchedWord))
        Words from the fetch unit, in program order.
    fetch_busy : In(1)
        The fetch unit still has words to deliver.
    fetch_error : In(1)
        Pulse: an instruction fetch got an AXI error; ``fetch_error_pc`` names the word.
    fetch_error_pc : In(32)
    stop_fetch : Out(1)
        Pulse: HALT or an error — fetch no further.
    load, compute, store : Out(stream.Signature(FetchedWord))
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
    error_pc : Out(32)
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
        super().__init__({
            "start": In(1),
            "fetched": In(stream.Signature(FetchedWord)),
            "fetch_busy": In(1), "fetch_error": In(1), "fetch_error_pc": In(32),
            "stop_fetch": Out(1),
            "load": Out(stream.Signature(FetchedWord)),
            "compute": Out(stream.Signature(FetchedWord)),
            "store": Out(stream.Signature(FetchedWord)),
            "load_done": In(1), "compute_done": In(1), "store_done": In(1),
            "load_error": In(1), "store_error": In(1),
            "units_idle": In(1),
            "busy": Out(1), "finished": Out(1), "decoded": Out(1),
            "error": Out(8), "error_pc": Out(32),
            "stalled": Out(3), "completed": Out(2),
        })

    def vector_lines(self, word):
        """The :data:`VectorLines` of a VECTOR instruction word (a value to register in the
        stage before :meth:`check`)."""
        cfg = self.config
        vector = data.View(Instruction, word).vector
        length, rows = vector.row_length, vector.num_rows
        chunks = udiv_const(length + cfg.cols - 1, cfg.cols, 17)[:16]
        spad = udiv_const(length + cfg.spad_line_bytes - 1, cfg.spad_line_bytes, 17)[:16]
        return Cat(chunks, (rows * chunks)[:32], (rows * spad)[:32])

    def check(self, m, word, lines):
        """The :class:`ErrorCode` (0 if none) of an instruction word, computed from the
        configuration's memory sizes; ``lines`` is the word's :data:`VectorLines`."""
        cfg = self.config
        insn = data.View(Instruction, word)
        opcode = insn.header.opcode.as_value()
        code = Signal(8)
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
        to_acc = transfer.mem == Memory.ACC
        lines_per_row = Mux(to_acc,
                            udiv_const(transfer.row_bytes + cfg.acc_line_bytes - 1,
                                       cfg.acc_line_bytes, 13),
                            udiv_const(transfer.row_bytes + cfg.spad_line_bytes - 1,
                                       cfg.spad_line_bytes, 13))
        transfer_end = transfer.sram_addr + transfer.rows * lines_per_row
        ws = cfg.dataflow == "ws"
        b_lines = cfg.rows if ws else matmul.length
        c_lines = matmul.length if ws else cfg.rows
        with m.If(~known):
            m.d.comb += code.eq(ErrorCode.ILLEGAL_INSTRUCTION)
        with m.Elif((opcode == Opcode.LOAD.value) | (opcode == Opcode.STORE.value)):
            with m.If((transfer.rows == 0) | (transfer.row_bytes == 0)):
                m.d.comb += code.eq(ErrorCode.ILLEGAL_INSTRUCTION)
            with m.Elif(transfer_end > Mux(to_acc, cfg.acc_lines, cfg.spad_lines)):
                m.d.comb += code.eq(Mux(to_acc, ErrorCode.ACC_RANGE, ErrorCode.SPAD_RANGE))
        with m.Elif(opcode == Opcode.MATMUL.value):
            with m.If(matmul.length == 0):
                m.d.comb += code.eq(ErrorCode.ILLEGAL_INSTRUCTION)
            with m.Elif((matmul.a_addr + matmul.length > cfg.spad_lines)
                        | (matmul.b_addr + b_lines > cfg.spad_lines)):
                m.d.comb += code.eq(ErrorCode.SPAD_RANGE)
            with m.Elif(matmul.c_addr + c_lines > cfg.acc_lines):
                m.d.comb += code.eq(ErrorCode.ACC_RANGE)
        with m.Elif(opcode == Opcode.VECTOR.value):
            m.d.comb += code.eq(self._check_vector(m, insn.vector,
                                                   data.View(VectorLines, lines)))
        return code

    def _check_vector(self, m, vector, lines):
        """The error code of a VECTOR instruction, checked in the functional simulator's
        order: ILLEGAL_INSTRUCTION (unknown function, zero sizes, absent unit, row too long,
        reserved width), then the destination's range, then the accumulator reads' ranges,
        then ILLEGAL_INSTRUCTION for GELU/SILU fraction bits outside their range."""
        cfg = self.config
        code = Signal(8)
        rows, length = vector.num_rows, vector.row_length
        chunks = lines.chunks
        # Per function: legal so far, destination memory, and the accumulator lines it reads
        # besides its source rows.
        illegal, to_spad, param_lines = Signal(init=1), Signal(), Signal(18)
        record_reads, record_writes, aux_reads, pwl = Signal(), Signal(), Signal(), Signal()
        # An if/elif chain, not a switch: Verilator's lint rejects incomplete cases.
        for index, func in enumerate(VectorFunc):
            with (m.Elif if index else m.If)(vector.func == func):
                planes = len(VECTOR_PARAMS[func][1])
                limit = vector_row_limit(cfg.vector, func)
                too_long = length > limit if limit < 2**len(length) - 1 else Const(0)
                spad_if = {w: int(vector_output_memory(func, w) == Memory.SPAD)
                           for w in OutWidth}
                m.d.comb += [
                    illegal.eq(Const(not getattr(cfg.vector, VECTOR_UNIT[func])) | too_long),
                    to_spad.eq(Mux(vector.out_width == OutWidth.INT8,
                                   spad_if[OutWidth.INT8], spad_if[OutWidth.INT16])),
                    param_lines.eq(vector_param_lines(func, 1, cfg.cols)[0]
                                   + chunks * planes),
                    record_reads.eq(func in (VectorFunc.REQUANTIZE, VectorFunc.SOFTMAX)),
                    record_writes.eq(func == VectorFunc.ROWQUANT),
                    aux_reads.eq(func in (VectorFunc.MUL, VectorFunc.ADD)),
                    pwl.eq(func in (VectorFunc.GELU, VectorFunc.SILU)),
                ]

        def beyond(first, count):
            return first + count > cfg.acc_lines

        acc_range = ((~to_spad & beyond(vector.dst_addr, lines.acc))
                     | beyond(vector.src_addr, lines.acc)
                     | (record_writes & beyond(vector.aux_addr, rows))
                     | (record_reads & vector.row_scale & beyond(vector.aux_addr, rows))
                     | (aux_reads & beyond(vector.aux_addr, lines.acc))
                     | ((param_lines != 0) & beyond(vector.param_addr, param_lines)))
        with m.If(illegal | (rows == 0) | (length == 0)
                  | (vector.out_width.as_value() > OutWidth.INT32.value)):
            m.d.comb += code.eq(ErrorCode.ILLEGAL_INSTRUCTION)
        with m.Elif(to_spad & (vector.dst_addr + lines.spad > cfg.spad_lines)):
            m.d.comb += code.eq(ErrorCode.SPAD_RANGE)
        with m.Elif(acc_range):
            m.d.comb += code.eq(ErrorCode.ACC_RANGE)
        with m.Elif(pwl & ((vector.imm < SEG_LOG2) | (vector.imm > PWL_WIDTH - 1))):
            m.d.comb += code.eq(ErrorCode.ILLEGAL_INSTRUCTION)
        return code

    def elaborate(self, platform):
        m = Module()
        depth = self.config.queue_depth
        running = Signal()
        stopping = Signal()  # HALT seen or error: dispatch nothing more
        failed = Signal()

        # Stage 1: the fetched word. Stage 2: the word and its checks.
        s1, s1_valid, s1_lines = Signal(FetchedWord), Signal(), Signal(VectorLines)
        s2, s2_valid, s2_code = Signal(FetchedWord), Signal(), Signal(8)
        s2_insn = data.View(Instruction, s2.word)
        s2_opcode = s2_insn.header.opcode.as_value()

        queues = {name: SyncFIFO(width=data.Layout.cast(FetchedWord).size, depth=depth)
                  for name in UNITS}
        gates = {name: UnitGate(pops, pushes) for name, (_, pops, pushes) in UNITS.items()}
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
        all_idle = Cat(*(gate.idle for gate in gates.values())).all() & self.units_idle

        # Dispatch from stage 2.
        target = {name: Cat(*(s2_opcode == op.value for op in ops)).any()
                  for name, (ops, _, _) in UNITS.items()}
        fence = s2_opcode == Opcode.FENCE.value
        halt = s2_opcode == Opcode.HALT.value
        bad = s2_code != ErrorCode.NONE
        dispatched = Signal()
        with m.If(s2_valid & ~stopping):
            with m.If(bad | halt):
                m.d.comb += dispatched.eq(1)
            with m.Elif(fence):
                m.d.comb += dispatched.eq(all_idle)
            for name in UNITS:
                with m.Elif(target[name]):
                    m.d.comb += [dispatched.eq(queues[name].w_rdy),
                                 queues[name].w_en.eq(1), queues[name].w_data.eq(s2)]
        m.d.comb += self.decoded.eq(s2_valid & ~stopping & dispatched)
        with m.If(s2_valid & stopping):
            m.d.comb += dispatched.eq(1)  # drop words fetched after HALT or an error
        s2_free = ~s2_valid | dispatched
        s1_free = ~s1_valid | s2_free
        m.d.comb += self.fetched.ready.eq(s1_free)
        with m.If(s2_free):
            m.d.sync += [s2.eq(s1), s2_valid.eq(s1_valid),
                         s2_code.eq(self.check(m, s1.word, s1_lines))]
        with m.If(s1_free):
            m.d.sync += [s1.eq(self.fetched.payload), s1_valid.eq(self.fetched.valid),
                         s1_lines.eq(self.vector_lines(self.fetched.payload.word))]

        # Tokens.
        for queue_name in TOKEN_QUEUES:
            count = Signal(range(MAX_TOKENS + 2), name=f"tokens_{queue_name}")
            pushed = Cat(*(gate.push[i] for name, gate in gates.items()
                           for i, flag in enumerate(UNITS[name][2])
                           if UNITS[name][2][flag] == queue_name))
            popped = Cat(*(gate.pop[i] for name, gate in gates.items()
                           for i, flag in enumerate(UNITS[name][1])
                           if UNITS[name][1][flag] == queue_name))
            for name, gate in gates.items():
                for i, flag in enumerate(UNITS[name][1]):
                    if UNITS[name][1][flag] == queue_name:
                        m.d.comb += gate.available[i].eq(count != 0)
            after = count + pushed.any() - popped.any()
            m.d.sync += count.eq(after)
            pusher = next(name for name, (_, _, pushes) in UNITS.items()
                          if queue_name in pushes.values())
            with m.If(self.start):
                m.d.sync += count.eq(0)
            with m.Elif(after > MAX_TOKENS):
                self._fail(m, ErrorCode.TOKEN_OVERFLOW, gates[pusher].done_pc, failed)

        # Errors: the first one wins.
        with m.If(s2_valid & ~stopping & bad):
            self._fail(m, s2_code, s2.pc, failed)
        with m.If(self.fetch_error):
            self._fail(m, ErrorCode.AXI_READ, self.fetch_error_pc, failed)
        with m.If(self.load_error):
            self._fail(m, ErrorCode.AXI_READ, gates["load"].done_pc, failed)
        with m.If(self.store_error):
            self._fail(m, ErrorCode.AXI_WRITE, gates["store"].done_pc, failed)

        stop_now = (s2_valid & ~stopping & (bad | halt)) | self.fetch_error | \
            self.load_error | self.store_error
        m.d.comb += self.stop_fetch.eq(running & stop_now)
        with m.If(stop_now):
            m.d.sync += stopping.eq(1)

        # Completion (not in the cycle right after start, before fetch reports busy).
        just_started = Signal()
        m.d.sync += just_started.eq(self.start)
        drained = ~self.fetch_busy & ~s1_valid & ~s2_valid & all_idle & ~just_started
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
