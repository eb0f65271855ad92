"""Automatic dependency tokens: :class:`Scheduler` takes instructions in program order,
works out which on-chip lines and host buffers each one reads and writes, and sets the
dependency flags (or inserts a FENCE) that make the decoupled units respect every hazard.

Rules (the load, compute and store units each run their queue in order):

* compute after load (RAW on a line the load writes, or WAW): the load pushes ``l2c``;
* load after compute (the load overwrites a line the compute reads or writes): ``c2l``;
* store after compute (RAW): ``c2s``; compute after store (WAR on a line the store
  reads): ``s2c``;
* load after store on the same lines, or any unit after a STORE into host memory it reads
  (there is no store → load token): a FENCE.

Each instruction pops at most one token per queue: it waits only for the *latest* producer
it depends on in that unit (earlier ones have finished, the unit being in order), and only
when no earlier pop on the queue already waited for a producer at least as recent. Every
producer/consumer pair points backwards in program order, so the program cannot deadlock,
and every push is matched by exactly one pop, so no token is left over.
"""

from dataclasses import dataclass, field

import numpy as np

from systolic.hw.config import HardwareConfig
from systolic.hw.isa import (IllegalInstruction, Memory, Opcode, OutWidth, VectorFunc,
                             field_offsets, vector_output_memory, vector_param_lines)

__all__ = ["Scheduler", "Instruction"]

#: (consumer unit, producer unit) -> (token queue, consumer pop flag, producer push flag)
_QUEUES = {
    ("compute", "load"): ("l2c", "pop_prev", "push_next"),
    ("load", "compute"): ("c2l", "pop_next", "push_prev"),
    ("store", "compute"): ("c2s", "pop_prev", "push_next"),
    ("compute", "store"): ("s2c", "pop_next", "push_prev"),
}
_UNIT = {Opcode.LOAD: "load", Opcode.STORE: "store", Opcode.MATMUL: "compute",
         Opcode.VECTOR: "compute"}
#: On-chip accesses a unit can make (loads only write lines, stores only read them).
_ACCESSES = (("load", "w"), ("compute", "r"), ("compute", "w"), ("store", "r"))
#: Per unit: the accesses of other units its reads conflict with (their writes), those its
#: writes conflict with (all of theirs), and the indices where it records its reads/writes.
_CHECKS = {
    unit: ([i for i, (u, k) in enumerate(_ACCESSES) if u != unit and k == "w"],
           [i for i, (u, k) in enumerate(_ACCESSES) if u != unit],
           {k: i for i, (u, k) in enumerate(_ACCESSES) if u == unit})
    for unit in ("load", "compute", "store")}
_SPAD, _ACC = Memory.SPAD.value, Memory.ACC.value
_MEMORY = {Memory.SPAD: _SPAD, Memory.ACC: _ACC, _SPAD: _SPAD, _ACC: _ACC}
_max = np.maximum.reduce
_OFFSETS = {op: field_offsets(op) for op in (Opcode.LOAD, Opcode.STORE, Opcode.MATMUL,
                                             Opcode.VECTOR, Opcode.FENCE)}


@dataclass
class Instruction:
    """One instruction before encoding: opcode, fields and the dependency flags set so far."""

    opcode: Opcode
    fields: dict
    flags: set = field(default_factory=set)

    def encode(self):
        """The instruction word (fields in range, as :func:`~systolic.hw.isa.encode` checks;
        the flags are those of the unit's token queues)."""
        offsets = _OFFSETS[self.opcode]
        word = self.opcode.value
        for name, value in self.fields.items():
            offset, width = offsets[name]
            value = int(getattr(value, "value", value))
            if not 0 <= value < 1 << width:
                raise IllegalInstruction(f"{self.opcode.name}.{name} = {value} does not fit "
                                         f"{width} bits")
            word |= value << offset
        for flag in self.flags:
            word |= 1 << offsets["deps." + flag][0]
        return word


class Scheduler:
    """Collects the instructions of one program fragment (see the module docstring).

    ``instructions`` is the list in program order (FENCEs included); :meth:`words` encodes
    them. Host buffers are named by the caller (any hashable), lines are checked to lie
    inside the memories of ``config``.
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        self.instructions = []
        self._sizes = {_SPAD: config.spad_lines, _ACC: config.acc_lines}
        # per memory and access of _ACCESSES: the last instruction index per line
        self._last = {mem: [np.full(size, -1, dtype=np.int64) for _ in _ACCESSES]
                      for mem, size in self._sizes.items()}
        self._covered = dict.fromkeys(("l2c", "c2l", "c2s", "s2c"), -1)
        self._fenced = -1  # index of the last FENCE
        self._host_reads, self._host_writes = set(), set()
        #: Slot rotation the tiler carries from one operation to the next (so that the next
        #: operation's first loads go to slots the current one's last instructions do not
        #: use).
        self.rotation = {}

    # -- instructions ---------------------------------------------------------------------
    def load(self, mem, sram_addr, rows, row_bytes, dram_addr, dram_stride, buffer):
        mem = _MEMORY[mem]
        lines = rows * -(-row_bytes // self._line_bytes(mem))
        if buffer in self._host_writes:
            self.fence()
        self._add(Opcode.LOAD, dict(mem=mem, sram_addr=sram_addr, rows=rows,
                                    row_bytes=row_bytes, dram_addr=dram_addr,
                                    dram_stride=dram_stride),
                  writes=[(mem, sram_addr, lines)])
        self._host_reads.add(buffer)

    def store(self, mem, sram_addr, rows, row_bytes, dram_addr, dram_stride, buffer):
        mem = _MEMORY[mem]
        lines = rows * -(-row_bytes // self._line_bytes(mem))
        if buffer in self._host_reads:
            self.fence()
        self._add(Opcode.STORE, dict(mem=mem, sram_addr=sram_addr, rows=rows,
                                     row_bytes=row_bytes, dram_addr=dram_addr,
                                     dram_stride=dram_stride),
                  reads=[(mem, sram_addr, lines)])
        self._host_writes.add(buffer)

    def matmul(self, a_addr, b_addr, c_addr, length, accumulate=False, a_unsigned=False):
        cfg = self.config
        ws = cfg.dataflow == "ws"
        c_lines = length if ws else cfg.rows
        reads = [(_SPAD, a_addr, length), (_SPAD, b_addr, cfg.rows if ws else length)]
        if accumulate:
            reads.append((_ACC, c_addr, c_lines))
        self._add(Opcode.MATMUL, dict(a_addr=a_addr, b_addr=b_addr, c_addr=c_addr,
                                      length=length, accumulate=int(accumulate),
                                      a_unsigned=int(a_unsigned)),
                  reads=reads, writes=[(_ACC, c_addr, c_lines)])

    def matmul_chain(self, a_addrs, b_addrs, c_addr, length, accumulate=False,
                     a_unsigned=False):
        """Consecutive MATMULs into one accumulator block (e.g. the K tiles of a GEMM
        block): tile ``t`` reads ``a_addrs[t]`` and ``b_addrs[t]``; the first accumulates
        only with ``accumulate``, the others always. Same result as one :meth:`matmul` per
        tile, with the hazards worked out once for the whole chain."""
        cfg = self.config
        ws = cfg.dataflow == "ws"
        b_lines = cfg.rows if ws else length
        c_lines = length if ws else cfg.rows
        # the lines spanned by all tiles (exact for tiles laid out back to back; a superset,
        # which only adds waits for earlier instructions, otherwise)
        reads = [(_SPAD, min(addrs), max(addrs) + count - min(addrs))
                 for addrs, count in ((a_addrs, length), (b_addrs, b_lines))]
        if accumulate or len(a_addrs) > 1:
            reads.append((_ACC, c_addr, c_lines))
        group = [dict(a_addr=a, b_addr=b, c_addr=c_addr, length=length,
                      accumulate=int(accumulate or t > 0), a_unsigned=int(a_unsigned))
                 for t, (a, b) in enumerate(zip(a_addrs, b_addrs))]
        self._add_group(Opcode.MATMUL, group, reads, [(_ACC, c_addr, c_lines)])

    def vector(self, func, num_rows, row_length, src_addr, dst_addr, aux_addr=0,
               param_addr=0, out_width=OutWidth.INT32, row_scale=False, causal=False, imm=0):
        cfg = self.config
        func, out_width = VectorFunc(func), OutWidth(out_width)
        chunks = -(-row_length // cfg.cols)
        reads = [(_ACC, src_addr, num_rows * chunks)]
        writes = []
        _, _, param_lines = vector_param_lines(func, row_length, cfg.cols)
        if param_lines:
            reads.append((_ACC, param_addr, param_lines))
        if func in (VectorFunc.MUL, VectorFunc.ADD):
            reads.append((_ACC, aux_addr, num_rows * chunks))
        elif func == VectorFunc.ROWQUANT:
            writes.append((_ACC, aux_addr, num_rows))
        elif row_scale:
            reads.append((_ACC, aux_addr, num_rows))
        if vector_output_memory(func, out_width) == Memory.SPAD:
            writes.append((_SPAD, dst_addr, num_rows * -(-row_length // cfg.spad_line_bytes)))
        else:
            writes.append((_ACC, dst_addr, num_rows * chunks))
        self._add(Opcode.VECTOR, dict(func=func, out_width=out_width, row_scale=int(row_scale),
                                      causal=int(causal), num_rows=num_rows,
                                      row_length=row_length, src_addr=src_addr,
                                      aux_addr=aux_addr, param_addr=param_addr,
                                      dst_addr=dst_addr, imm=imm),
                  reads=reads, writes=writes)

    def fence(self):
        """Wait until every unit is idle (also what the hazards without a token need)."""
        if self.instructions and self.instructions[-1].opcode == Opcode.FENCE:
            return
        self._fenced = len(self.instructions)
        self.instructions.append(Instruction(Opcode.FENCE, {}))
        self._host_reads.clear()
        self._host_writes.clear()

    def words(self):
        """The encoded instruction words (no HALT). Raises
        :class:`~systolic.hw.config.ProgramTooLongError` when they and a HALT would exceed
        the configuration's ``max_program``."""
        self.config.check_program_length(len(self.instructions) + 1)
        return [insn.encode() for insn in self.instructions]

    # -- hazards ----------------------------------------------------------------------------
    def _line_bytes(self, mem):
        return self.config.acc_line_bytes if mem == _ACC else self.config.spad_line_bytes

    def _add(self, opcode, fields, reads=(), writes=()):
        self._add_group(opcode, [fields], reads, writes)

    def _add_group(self, opcode, group, reads=(), writes=()):
        """Add consecutive instructions of one unit (``group``: their field dicts) that
        together make the accesses ``reads`` and ``writes``: the first one waits for every
        producer the group depends on, and later consumers wait for the last one."""
        unit = _UNIT[opcode]
        for mem, first, count in (*reads, *writes):
            if count < 1 or first < 0 or first + count > self._sizes[mem]:
                raise ValueError(f"{Memory(mem).name} lines {first}..{first + count - 1} "
                                 f"outside 0..{self._sizes[mem] - 1}")
        # the most recent conflicting instruction of each other unit: reads after their
        # writes (RAW), writes after their reads and writes (WAR, WAW)
        need = {}
        read_checks, write_checks, own = _CHECKS[unit]
        for accesses, checks in ((reads, read_checks), (writes, write_checks)):
            for mem, first, count in accesses:
                lasts = self._last[mem]
                for check in checks:
                    latest = int(_max(lasts[check][first:first + count]))
                    other = _ACCESSES[check][0]
                    if latest > need.get(other, -1):
                        need[other] = latest
        if need.get("store", -1) > self._fenced and unit == "load" or \
                need.get("load", -1) > self._fenced and unit == "store":
            self.fence()  # load <-> store hazards have no token queue
        first = Instruction(opcode, group[0])
        for producer_unit, producer in need.items():
            if (unit, producer_unit) not in _QUEUES or producer <= self._fenced:
                continue
            queue, pop, push = _QUEUES[unit, producer_unit]
            if producer > self._covered[queue]:
                self.instructions[producer].flags.add(push)
                first.flags.add(pop)
                self._covered[queue] = producer
        self.instructions.append(first)
        self.instructions.extend(Instruction(opcode, fields) for fields in group[1:])
        index = len(self.instructions) - 1
        for kind, accesses in (("r", reads), ("w", writes)):
            for mem, first, count in accesses:
                self._last[mem][own[kind]][first:first + count] = index
