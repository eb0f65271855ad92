"""Instruction-level functional simulator of the accelerator.

Same program and host-memory image in, same memory image, on-chip memories and counters
out as the RTL (everything but cycle counts), at NumPy speed. It models the three decoupled
units and their dependency tokens exactly: each unit executes its queue in order, and an
instruction starts only when the tokens it pops are available, so a program whose tokens
deadlock raises :class:`TokenDeadlock` here (the hardware would hang).

Errors follow the hardware: fetch stops at an illegal instruction, a failing instruction
stops its unit and nothing further starts; the result carries the :class:`ErrorCode` and the
index of the faulting instruction. (Units that run concurrently in hardware may have finished
more work than here when the error struck; put a FENCE before an instruction that may fail
when the exact memory image matters.)
"""

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from systolic.hw.config import INSTRUCTION_BYTES, HardwareConfig
from systolic.hw.csr import ErrorCode
from systolic.hw.isa import IllegalInstruction, Memory, Opcode, decode

__all__ = ["RunResult", "FunctionalSimulator", "TokenDeadlock", "AcceleratorError"]

#: Dependency tokens a queue can hold before the hardware reports TOKEN_OVERFLOW.
MAX_TOKENS = 255

_UNIT = {Opcode.LOAD: "load", Opcode.STORE: "store", Opcode.MATMUL: "compute"}
#: (unit, dependency flag) -> token queue between two units.
_POPS = {("load", "pop_next"): "c2l", ("compute", "pop_prev"): "l2c",
         ("compute", "pop_next"): "s2c", ("store", "pop_prev"): "c2s"}
_PUSHES = {("load", "push_next"): "l2c", ("compute", "push_prev"): "c2l",
           ("compute", "push_next"): "c2s", ("store", "push_prev"): "s2c"}


class TokenDeadlock(RuntimeError):
    """Every unit waits for a dependency token that no instruction will ever push."""


class AcceleratorError(RuntimeError):
    """An instruction faulted; ``code`` is the :class:`ErrorCode`, ``pc`` its index."""

    def __init__(self, code, pc, message):
        super().__init__(f"{code.name} at instruction {pc}: {message}")
        self.code, self.pc = code, pc


@dataclass
class RunResult:
    """Outcome of one program run on any backend."""

    memory: np.ndarray
    counters: dict = field(default_factory=dict)
    error: ErrorCode = ErrorCode.NONE
    error_pc: int = 0
    cycles: int = None


def _lines_per_row(row_bytes, line_bytes):
    return -(-row_bytes // line_bytes)


class FunctionalSimulator:
    """Executes programs against persistent on-chip memories for one :class:`HardwareConfig`.

    ``spad`` is ``(spad_lines, spad_line_bytes)`` int8, ``acc`` is ``(acc_lines, cols)`` int32;
    both keep their contents from one :meth:`run` to the next, as the hardware's SRAMs do.
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        self.spad = np.zeros((config.spad_lines, config.spad_line_bytes), dtype=np.int8)
        self.acc = np.zeros((config.acc_lines, config.cols), dtype=np.int32)

    def run(self, memory, prog_addr, count):
        memory = np.array(memory, dtype=np.uint8, copy=True)
        counters = {name: 0 for name in ("macs", "fetch_bytes", "load_bytes", "store_bytes",
                                         "instructions", "array_busy")}
        result = RunResult(memory, counters)
        try:
            self._execute(memory, prog_addr, count, counters)
        except AcceleratorError as error:
            result.error, result.error_pc = error.code, error.pc
        return result

    # -- fetch and scheduling ---------------------------------------------------------------
    def _execute(self, memory, prog_addr, count, counters):
        queues = {"load": deque(), "compute": deque(), "store": deque()}
        tokens = {"l2c": 0, "c2l": 0, "s2c": 0, "c2s": 0}
        for pc in range(count):
            address = prog_addr + pc * INSTRUCTION_BYTES
            if address < 0 or address + INSTRUCTION_BYTES > len(memory):
                self._drain(queues, tokens, memory, counters)
                raise AcceleratorError(ErrorCode.AXI_READ, pc, f"fetch from {address:#x} "
                                       "is outside host memory")
            word = int.from_bytes(memory[address:address + INSTRUCTION_BYTES].tobytes(),
                                  "little")
            counters["fetch_bytes"] += INSTRUCTION_BYTES
            try:
                opcode, fields = decode(word)
            except IllegalInstruction as error:
                self._drain(queues, tokens, memory, counters)
                raise AcceleratorError(ErrorCode.ILLEGAL_INSTRUCTION, pc, str(error)) from None
            if opcode == Opcode.HALT:
                break
            if opcode == Opcode.FENCE:
                self._drain(queues, tokens, memory, counters)
                continue
            queues[_UNIT[opcode]].append((pc, opcode, fields))
        self._drain(queues, tokens, memory, counters)

    def _drain(self, queues, tokens, memory, counters):
        """Run the queues until empty, honouring dependency tokens."""
        while any(queues.values()):
            progressed = False
            for unit, queue in queues.items():
                if not queue:
                    continue
                pc, opcode, fields = queue[0]
                pops = [tokens_name for (u, flag), tokens_name in _POPS.items()
                        if u == unit and fields[f"deps.{flag}"]]
                if any(tokens[name] == 0 for name in pops):
                    continue
                queue.popleft()
                for name in pops:
                    tokens[name] -= 1
                self._dispatch(pc, opcode, fields, memory, counters)
                counters["instructions"] += 1
                for (u, flag), name in _PUSHES.items():
                    if u == unit and fields[f"deps.{flag}"]:
                        tokens[name] += 1
                        if tokens[name] > MAX_TOKENS:
                            raise AcceleratorError(ErrorCode.TOKEN_OVERFLOW, pc,
                                                   f"more than {MAX_TOKENS} tokens on {name}")
                progressed = True
            if not progressed:
                waiting = {unit: queue[0][0] for unit, queue in queues.items() if queue}
                raise TokenDeadlock(f"dependency tokens deadlock: units wait at instructions "
                                    f"{waiting} with tokens {tokens}")

    def _dispatch(self, pc, opcode, fields, memory, counters):
        if opcode == Opcode.LOAD:
            self._load(pc, fields, memory, counters)
        elif opcode == Opcode.STORE:
            self._store(pc, fields, memory, counters)
        else:
            self._matmul(pc, fields, counters)

    # -- units -------------------------------------------------------------------------------
    def _sram(self, pc, mem, first, count):
        """The on-chip array for ``mem``, its line width in bytes, and a range check of
        ``count`` lines starting at ``first``."""
        if mem == Memory.ACC.value:
            array, code, width = self.acc, ErrorCode.ACC_RANGE, self.config.acc_line_bytes
        else:
            array, code, width = self.spad, ErrorCode.SPAD_RANGE, self.config.spad_line_bytes
        if first + count > len(array):
            raise AcceleratorError(code, pc, f"lines {first}..{first + count - 1} exceed "
                                   f"{len(array)} lines")
        return array, width

    def _transfer_lines(self, pc, fields):
        """Checks made when the instruction is decoded (as the hardware does, before any
        host access): rows and row bytes not zero, all lines inside the memory."""
        rows, row_bytes = fields["rows"], fields["row_bytes"]
        if rows == 0 or row_bytes == 0:
            raise AcceleratorError(ErrorCode.ILLEGAL_INSTRUCTION, pc,
                                   "a transfer needs rows >= 1 and row_bytes >= 1")
        array, width = self._sram(pc, fields["mem"], 0, 0)
        per_row = _lines_per_row(row_bytes, width)
        self._sram(pc, fields["mem"], fields["sram_addr"], rows * per_row)
        return array, width, per_row

    def _transfer_rows(self, pc, fields, memory, error_code):
        rows, row_bytes = fields["rows"], fields["row_bytes"]
        starts = fields["dram_addr"] + fields["dram_stride"] * np.arange(rows)
        if starts.max() + row_bytes > len(memory):
            raise AcceleratorError(error_code, pc, f"host bytes up to "
                                   f"{int(starts.max()) + row_bytes:#x} are outside memory")
        return starts, rows, row_bytes

    def _load(self, pc, fields, memory, counters):
        array, width, per_row = self._transfer_lines(pc, fields)
        starts, rows, row_bytes = self._transfer_rows(pc, fields, memory, ErrorCode.AXI_READ)
        block = np.zeros((rows, per_row * width), dtype=np.uint8)
        for i, start in enumerate(starts):
            block[i, :row_bytes] = memory[start:start + row_bytes]
        lines = block.reshape(rows * per_row, width)
        first = fields["sram_addr"]
        array[first:first + len(lines)] = lines.view(array.dtype).reshape(len(lines), -1)
        counters["load_bytes"] += rows * row_bytes

    def _store(self, pc, fields, memory, counters):
        array, width, per_row = self._transfer_lines(pc, fields)
        starts, rows, row_bytes = self._transfer_rows(pc, fields, memory, ErrorCode.AXI_WRITE)
        first = fields["sram_addr"]
        block = array[first:first + rows * per_row].view(np.uint8).reshape(rows, -1)
        for i, start in enumerate(starts):
            memory[start:start + row_bytes] = block[i, :row_bytes]
        counters["store_bytes"] += rows * row_bytes

    def _matmul(self, pc, fields, counters):
        cfg = self.config
        length = fields["length"]
        if length == 0:
            raise AcceleratorError(ErrorCode.ILLEGAL_INSTRUCTION, pc, "matmul length is 0")
        a_count = length
        b_count = cfg.rows if cfg.dataflow == "ws" else length
        c_count = length if cfg.dataflow == "ws" else cfg.rows
        self._sram(pc, Memory.SPAD.value, fields["a_addr"], a_count)
        self._sram(pc, Memory.SPAD.value, fields["b_addr"], b_count)
        self._sram(pc, Memory.ACC.value, fields["c_addr"], c_count)
        a = self.spad[fields["a_addr"]:fields["a_addr"] + a_count, :cfg.rows]
        a = (a.view(np.uint8) if fields["a_unsigned"] else a).astype(np.int64)
        b = self.spad[fields["b_addr"]:fields["b_addr"] + b_count, :cfg.cols].astype(np.int64)
        product = a @ b if cfg.dataflow == "ws" else a.T @ b
        c = slice(fields["c_addr"], fields["c_addr"] + c_count)
        if fields["accumulate"]:
            product = product + self.acc[c]
        # The int32 accumulator wraps around, as the hardware's adders do.
        self.acc[c] = product.astype(np.int64).astype(np.uint32).view(np.int32)
        counters["macs"] += length * cfg.rows * cfg.cols
        counters["array_busy"] += length
