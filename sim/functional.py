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

import functools
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from systolic.hw.config import INSTRUCTION_BYTES, HardwareConfig
from systolic.hw.csr import ErrorCode
from systolic.hw.isa import (DYADIC_WORD, ROW_SCALE_WORD, VECTOR_PARAMS, VECTOR_UNIT,
                             IllegalInstruction, Memory, Opcode, OutWidth, VectorFunc, decode,
                             pack_words, unpack_words, vector_output_memory,
                             vector_param_lines, vector_row_limit)
from systolic.sw import numerics

__all__ = ["RunResult", "FunctionalSimulator", "TokenDeadlock", "AcceleratorError"]

#: Dependency tokens a queue can hold before the hardware reports TOKEN_OVERFLOW.
MAX_TOKENS = 255

_UNIT = {Opcode.LOAD: "load", Opcode.STORE: "store", Opcode.MATMUL: "compute",
         Opcode.VECTOR: "compute"}
_SPAD, _ACC = Memory.SPAD.value, Memory.ACC.value
#: Output width (bits) of each OutWidth code.
_OUT_BITS = {OutWidth.INT8.value: 8, OutWidth.INT16.value: 16, OutWidth.INT32.value: 32}
#: (unit, dependency flag) -> token queue between two units.
_POPS = {("load", "pop_next"): "c2l", ("compute", "pop_prev"): "l2c",
         ("compute", "pop_next"): "s2c", ("store", "pop_prev"): "c2s"}
_PUSHES = {("load", "push_next"): "l2c", ("compute", "push_prev"): "c2l",
           ("compute", "push_next"): "c2s", ("store", "push_prev"): "s2c"}
#: unit -> [(instruction field, token queue)] of its pops and of its pushes.
_UNIT_POPS = {unit: [(f"deps.{flag}", name) for (u, flag), name in _POPS.items() if u == unit]
              for unit in ("load", "compute", "store")}
_UNIT_PUSHES = {unit: [(f"deps.{flag}", name) for (u, flag), name in _PUSHES.items()
                       if u == unit] for unit in ("load", "compute", "store")}


@functools.lru_cache(maxsize=1 << 18)
def _decode(word):
    """``(opcode, fields, unit, pops, pushes)`` of an instruction word: its unit and the
    token queues it pops and pushes. Cached, since programs run again and again (e.g. every
    decoding step); the field dicts are shared, so nothing here may modify them."""
    opcode, fields = decode(word)
    unit = _UNIT.get(opcode)
    pops = tuple(name for flag, name in _UNIT_POPS.get(unit, ()) if fields[flag])
    pushes = tuple(name for flag, name in _UNIT_PUSHES.get(unit, ()) if fields[flag])
    return opcode, fields, unit, pops, pushes


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
    #: Counters sampled while the program ran (rows of values in ``COUNTERS`` order), from
    #: a backend asked to sample; None otherwise.
    samples: np.ndarray = None


def _lines_per_row(row_bytes, line_bytes):
    return -(-row_bytes // line_bytes)


def _host_rows(memory, address, stride, rows, row_bytes):
    """A ``(rows, row_bytes)`` strided view of host memory (the caller checked bounds)."""
    if stride == row_bytes:
        return memory[address:address + rows * row_bytes].reshape(rows, row_bytes)
    return np.ndarray((rows, row_bytes), np.uint8, memory, address, (stride, 1))


class FunctionalSimulator:
    """Executes programs against persistent on-chip memories for one :class:`HardwareConfig`.

    ``spad`` is ``(spad_lines, spad_line_bytes)`` int8, ``acc`` is ``(acc_lines, cols)`` int32;
    both keep their contents from one :meth:`run` to the next, as the hardware's SRAMs do.
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        self.spad = np.zeros((config.spad_lines, config.spad_line_bytes), dtype=np.int8)
        self.acc = np.zeros((config.acc_lines, config.cols), dtype=np.int32)
        # (array, range error, line bytes) per memory, looked up for every instruction
        self._memories = {_ACC: (self.acc, ErrorCode.ACC_RANGE, config.acc_line_bytes),
                          _SPAD: (self.spad, ErrorCode.SPAD_RANGE, config.spad_line_bytes)}

    #: :meth:`run` can work on the caller's memory array instead of a copy.
    runs_in_place = True

    def run(self, memory, prog_addr, count, in_place=False):
        """Run ``count`` instructions from byte ``prog_addr`` of ``memory`` (host memory,
        uint8). With ``in_place`` the result's memory is ``memory`` itself (a uint8 NumPy
        array), which saves copying large images."""
        if in_place:
            if not (isinstance(memory, np.ndarray) and memory.dtype == np.uint8):
                raise TypeError("in_place needs memory as a uint8 NumPy array")
        else:
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
                opcode, fields, unit, pops, pushes = _decode(word)
            except IllegalInstruction as error:
                self._drain(queues, tokens, memory, counters)
                raise AcceleratorError(ErrorCode.ILLEGAL_INSTRUCTION, pc, str(error)) from None
            if opcode == Opcode.HALT:
                break
            if opcode == Opcode.FENCE:
                self._drain(queues, tokens, memory, counters)
                continue
            queues[unit].append((pc, opcode, fields, pops, pushes))
        self._drain(queues, tokens, memory, counters)

    def _drain(self, queues, tokens, memory, counters):
        """Run the queues until empty, honouring dependency tokens."""
        while any(queues.values()):
            progressed = False
            for unit, queue in queues.items():
                if not queue:
                    continue
                pc, opcode, fields, pops, pushes = queue[0]
                if pops and any(tokens[name] == 0 for name in pops):
                    continue
                queue.popleft()
                for name in pops:
                    tokens[name] -= 1
                try:
                    if opcode == Opcode.MATMUL and self.config.dataflow == "ws":
                        # the K tiles accumulating into one block run as one product
                        followers = self._matmul_chain(pc, fields, queue, counters)
                    else:
                        followers = ()
                        self._dispatch(pc, opcode, fields, memory, counters)
                except AcceleratorError as error:
                    # A transfer that faulted on the bus was still issued and completed
                    # (with an error response): the hardware counts it and its bytes.
                    if error.code in (ErrorCode.AXI_READ, ErrorCode.AXI_WRITE):
                        counters["instructions"] += 1
                        kind = "load_bytes" if opcode == Opcode.LOAD else "store_bytes"
                        counters[kind] += fields["rows"] * fields["row_bytes"]
                    raise
                for pc, pushes in ((pc, pushes), *((f[0], f[4]) for f in followers)):
                    counters["instructions"] += 1
                    for name in pushes:
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
        elif opcode == Opcode.VECTOR:
            self._vector(pc, fields)
        else:
            self._matmul(pc, fields, counters)

    # -- units -------------------------------------------------------------------------------
    def _sram(self, pc, mem, first, count):
        """The on-chip array for ``mem``, its line width in bytes, and a range check of
        ``count`` lines starting at ``first``."""
        array, code, width = self._memories[mem]
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
        end = fields["dram_addr"] + fields["dram_stride"] * (rows - 1) + row_bytes
        if end > len(memory):
            raise AcceleratorError(error_code, pc, f"host bytes up to {end:#x} are outside "
                                   "memory")
        return rows, row_bytes

    def _load(self, pc, fields, memory, counters):
        array, width, per_row = self._transfer_lines(pc, fields)
        rows, row_bytes = self._transfer_rows(pc, fields, memory, ErrorCode.AXI_READ)
        block = np.zeros((rows, per_row * width), dtype=np.uint8)
        block[:, :row_bytes] = _host_rows(memory, fields["dram_addr"], fields["dram_stride"],
                                          rows, row_bytes)
        lines = block.reshape(rows * per_row, width)
        first = fields["sram_addr"]
        array[first:first + len(lines)] = lines.view(array.dtype).reshape(len(lines), -1)
        counters["load_bytes"] += rows * row_bytes

    def _store(self, pc, fields, memory, counters):
        array, width, per_row = self._transfer_lines(pc, fields)
        rows, row_bytes = self._transfer_rows(pc, fields, memory, ErrorCode.AXI_WRITE)
        first = fields["sram_addr"]
        block = array[first:first + rows * per_row].view(np.uint8).reshape(rows, -1)
        if fields["dram_stride"] >= row_bytes:
            _host_rows(memory, fields["dram_addr"], fields["dram_stride"], rows,
                       row_bytes)[...] = block[:, :row_bytes]
        else:  # overlapping rows: later rows overwrite earlier ones, as in hardware
            for i in range(rows):
                start = fields["dram_addr"] + fields["dram_stride"] * i
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
        a_addr, b_addr, c_addr = fields["a_addr"], fields["b_addr"], fields["c_addr"]
        self._sram(pc, _SPAD, a_addr, a_count)
        self._sram(pc, _SPAD, b_addr, b_count)
        self._sram(pc, _ACC, c_addr, c_count)
        a = self.spad[a_addr:a_addr + a_count, :cfg.rows]
        # float64 BLAS is exact here (every sum is below 2**53) and much faster than int64
        a = (a.view(np.uint8) if fields["a_unsigned"] else a).astype(np.float64)
        b = self.spad[b_addr:b_addr + b_count, :cfg.cols].astype(np.float64)
        product = (a @ b if cfg.dataflow == "ws" else a.T @ b).astype(np.int32)
        if fields["accumulate"]:
            # int32 array addition wraps around, as the hardware's adders do
            self.acc[c_addr:c_addr + c_count] += product
        else:
            self.acc[c_addr:c_addr + c_count] = product
        counters["macs"] += length * cfg.rows * cfg.cols
        counters["array_busy"] += length

    def _matmul_chain(self, pc, fields, queue, counters):
        """Weight-stationary MATMUL ``fields`` and the MATMULs queued after it that continue
        its accumulation — same block and length, accumulating, popping no token, their A
        and B tiles following on from the previous ones — computed as one product (the
        same int32 result: the accumulator wraps modulo 2**32 either way). Returns the
        queue entries of the followers it executed (removed from ``queue``)."""
        cfg = self.config
        length, c_addr = fields["length"], fields["c_addr"]
        a_addr, b_addr = fields["a_addr"], fields["b_addr"]
        followers = []
        a_next, b_next = a_addr + length, b_addr + cfg.rows
        for entry in queue:
            if not length:
                break
            _, opcode, f, pops, _ = entry
            if opcode != Opcode.MATMUL or pops or not f["accumulate"] or \
                    f["c_addr"] != c_addr or f["length"] != length or \
                    f["a_unsigned"] != fields["a_unsigned"] or f["a_addr"] != a_next or \
                    f["b_addr"] != b_next or a_next + length > cfg.spad_lines or \
                    b_next + cfg.rows > cfg.spad_lines:
                break
            followers.append(entry)
            a_next, b_next = a_next + length, b_next + cfg.rows
        if not followers:
            self._matmul(pc, fields, counters)
            return ()
        for _ in followers:
            queue.popleft()
        tiles = 1 + len(followers)
        self._sram(pc, _SPAD, a_addr, length)  # the head's own range checks (the
        self._sram(pc, _SPAD, b_addr, cfg.rows)  # followers' were checked above)
        self._sram(pc, _ACC, c_addr, length)
        a = self.spad[a_addr:a_addr + tiles * length, :cfg.rows]
        a = (a.view(np.uint8) if fields["a_unsigned"] else a).astype(np.float64)
        a = a.reshape(tiles, length, cfg.rows).transpose(1, 0, 2).reshape(length, -1)
        b = self.spad[b_addr:b_addr + tiles * cfg.rows, :cfg.cols]
        product = (a @ b.astype(np.float64)).astype(np.int64).astype(np.uint32).view(np.int32)
        if fields["accumulate"]:
            self.acc[c_addr:c_addr + length] += product
        else:
            self.acc[c_addr:c_addr + length] = product
        counters["macs"] += tiles * length * cfg.rows * cfg.cols
        counters["array_busy"] += tiles * length
        return followers

    # -- vector units ------------------------------------------------------------------------
    def _vector(self, pc, fields):
        cfg = self.config
        try:
            func = VectorFunc(fields["func"])
        except ValueError:
            raise AcceleratorError(ErrorCode.ILLEGAL_INSTRUCTION, pc,
                                   f"unknown vector function {fields['func']}") from None
        rows, length = fields["num_rows"], fields["row_length"]
        if rows == 0 or length == 0:
            raise AcceleratorError(ErrorCode.ILLEGAL_INSTRUCTION, pc,
                                   "a vector instruction needs num_rows >= 1 and row_length >= 1")
        if not getattr(cfg.vector, VECTOR_UNIT[func]):
            raise AcceleratorError(ErrorCode.ILLEGAL_INSTRUCTION, pc,
                                   f"{func.name} needs the {VECTOR_UNIT[func]} unit, which "
                                   "this accelerator lacks")
        if length > vector_row_limit(cfg.vector, func):
            raise AcceleratorError(ErrorCode.ILLEGAL_INSTRUCTION, pc,
                                   f"{func.name} rows of {length} exceed the unit's "
                                   f"{vector_row_limit(cfg.vector, func)}")
        if fields["out_width"] not in _OUT_BITS:
            raise AcceleratorError(ErrorCode.ILLEGAL_INSTRUCTION, pc,
                                   f"out_width {fields['out_width']} is reserved")
        chunks = -(-length // cfg.cols)
        to_spad = vector_output_memory(func, fields["out_width"]) == Memory.SPAD
        # every line the instruction touches is checked before anything is written
        if to_spad:
            self._sram(pc, Memory.SPAD.value, fields["dst_addr"],
                       rows * -(-length // cfg.spad_line_bytes))
        else:
            self._sram(pc, Memory.ACC.value, fields["dst_addr"], rows * chunks)
        if func == VectorFunc.ROWQUANT:
            self._sram(pc, Memory.ACC.value, fields["aux_addr"], rows)
        x = self._acc_rows(pc, fields["src_addr"], rows, chunks, length)
        header, planes = self._vector_params(pc, func, fields["param_addr"], length)
        try:
            result = self._apply_unit(pc, func, fields, x, header, planes, chunks)
        except ValueError as error:  # parameters outside the unit's ranges
            raise AcceleratorError(ErrorCode.ILLEGAL_INSTRUCTION, pc,
                                   f"{func.name}: {error}") from None
        if func == VectorFunc.ROWQUANT:
            result, scale = result
            records = np.zeros((rows, cfg.cols), dtype=np.int32)
            records[:, 0] = pack_words(ROW_SCALE_WORD, mant=scale.mant, exp=scale.exp)
            self.acc[fields["aux_addr"]:fields["aux_addr"] + rows] = records
        if to_spad:
            self._write_spad_rows(fields["dst_addr"], result, length)
        else:
            self._write_acc_rows(fields["dst_addr"], result, chunks)

    def _acc_rows(self, pc, first, rows, chunks, length):
        """``rows`` x ``length`` int64 elements of rows laid out ``chunks`` lines apart."""
        self._sram(pc, Memory.ACC.value, first, rows * chunks)
        lines = self.acc[first:first + rows * chunks]
        return lines.reshape(rows, chunks * self.config.cols)[:, :length].astype(np.int64)

    def _row_records(self, pc, first, rows):
        self._sram(pc, Memory.ACC.value, first, rows)
        word = unpack_words(ROW_SCALE_WORD, self.acc[first:first + rows, 0])
        return numerics.RowScale(word["mant"], word["exp"])

    def _vector_params(self, pc, func, first, length):
        """Header words (int64, as unsigned 32-bit) and per-channel planes of ``func``."""
        head_lines, plane_lines, total = vector_param_lines(func, length, self.config.cols)
        header_names, plane_names = VECTOR_PARAMS[func]
        if not total:
            return [], []
        self._sram(pc, Memory.ACC.value, first, total)
        block = self.acc[first:first + total]
        header = block[:head_lines].reshape(-1)[:len(header_names)].view(np.uint32)
        planes = [block[head_lines + p * plane_lines:head_lines + (p + 1) * plane_lines]
                  .reshape(-1)[:length].astype(np.int64) for p in range(len(plane_names))]
        return header.astype(np.int64), planes

    def _apply_unit(self, pc, func, fields, x, header, planes, chunks):
        """The golden model of ``func`` on rows ``x`` (ValueError for bad parameters);
        ROWQUANT returns ``(q, RowScale)``."""
        out_bits = _OUT_BITS[fields["out_width"]]
        rows = len(x)
        if func == VectorFunc.REQUANTIZE:
            scale = self._row_records(pc, fields["aux_addr"], rows) if fields["row_scale"] \
                else None
            mult = unpack_words(DYADIC_WORD, planes[0])
            params = numerics.RequantParams(mult["m"], mult["s"], planes[1], out_bits)
            return numerics.requantize(x, params, scale)
        if func == VectorFunc.ROWQUANT:
            return numerics.quantize_rows(x, 32)
        if func == VectorFunc.SOFTMAX:
            scale = self._row_records(pc, fields["aux_addr"], rows) if fields["row_scale"] \
                else None
            mult = unpack_words(DYADIC_WORD, header[0])
            q_index = fields["imm"] + np.arange(rows) if fields["causal"] else None
            return numerics.softmax(x, numerics.SoftmaxParams(int(mult["m"]), int(mult["s"])),
                                    scale, q_index)
        if func in (VectorFunc.GELU, VectorFunc.SILU):
            unit = numerics.gelu if func == VectorFunc.GELU else numerics.silu
            return unit(_low16(x), fields["imm"])
        if func in (VectorFunc.MUL, VectorFunc.ADD):
            y = self._acc_rows(pc, fields["aux_addr"], rows, chunks, x.shape[1])
            scales = [numerics.Scale(w["m"], w["s"], out_bits)
                      for w in (unpack_words(DYADIC_WORD, plane) for plane in planes)]
            if func == VectorFunc.MUL:
                return numerics.eltwise_mul(_low16(x), _low16(y), scales[0])
            return numerics.residual_add(x, y, numerics.ResidualParams(*scales, out_bits))
        gamma = unpack_words(DYADIC_WORD, planes[0])
        eps_q = int(header[0]) | int(header[1]) << 32
        params = numerics.NormParams(gamma["m"], gamma["s"], planes[1], eps_q, out_bits)
        unit = numerics.layernorm if func == VectorFunc.LAYERNORM else numerics.rmsnorm
        return unit(x, params)

    def _write_acc_rows(self, first, values, chunks):
        rows, length = values.shape
        lines = np.zeros((rows, chunks * self.config.cols), dtype=np.int32)
        lines[:, :length] = values
        self.acc[first:first + rows * chunks] = lines.reshape(rows * chunks, -1)

    def _write_spad_rows(self, first, values, length):
        width = self.config.spad_line_bytes
        per_row = -(-length // width)
        rows = len(values)
        lines = np.zeros((rows, per_row * width), dtype=np.uint8)
        lines[:, :length] = np.asarray(values).astype(np.int64).astype(np.uint8)
        self.spad[first:first + rows * per_row] = lines.view(np.int8).reshape(rows * per_row, -1)


def _low16(x):
    """The low 16 bits of int32 lanes as signed values (the units' 16-bit operand ports)."""
    return np.asarray(x, dtype=np.int64).astype(np.int16).astype(np.int64)
