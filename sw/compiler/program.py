"""Building instruction streams: :class:`ProgramBuilder` emits instruction words and keeps
the dependency-token bookkeeping honest (every pop has a matching earlier push)."""

from dataclasses import dataclass, field

from systolic.hw.isa import Memory, Opcode, OutWidth, encode

__all__ = ["ProgramBuilder"]

#: Dependency flag -> the token queue it pushes to or pops from, per unit.
_QUEUES = {
    ("load", "pop_next"): "c2l", ("load", "push_next"): "l2c",
    ("compute", "pop_prev"): "l2c", ("compute", "pop_next"): "s2c",
    ("compute", "push_prev"): "c2l", ("compute", "push_next"): "c2s",
    ("store", "pop_prev"): "c2s", ("store", "push_prev"): "s2c",
}


@dataclass
class ProgramBuilder:
    """Accumulates instruction words. Each method takes dependency flags as keyword
    booleans (``pop_prev``, ``push_next``, ...) and checks, in program order, that no
    instruction pops a token that no earlier instruction pushed."""

    words: list = field(default_factory=list)
    tokens: dict = field(default_factory=lambda: dict.fromkeys(("l2c", "c2l", "s2c", "c2s"), 0))

    def _emit(self, unit, opcode, deps, **fields):
        flags = {}
        for flag, value in deps.items():
            if not value:
                continue
            queue = _QUEUES.get((unit, flag))
            if queue is None:
                raise ValueError(f"{unit} instructions have no dependency flag {flag}")
            if flag.startswith("pop"):
                if self.tokens[queue] == 0:
                    raise ValueError(f"{opcode.name} pops {queue} but no earlier "
                                     "instruction pushed a token")
                self.tokens[queue] -= 1
            else:
                self.tokens[queue] += 1
            flags[f"deps.{flag}"] = 1
        self.words.append(encode(opcode, **fields, **flags))

    def load(self, mem, sram_addr, rows, row_bytes, dram_addr, dram_stride, **deps):
        self._emit("load", Opcode.LOAD, deps, mem=Memory(mem), sram_addr=sram_addr, rows=rows,
                   row_bytes=row_bytes, dram_addr=dram_addr, dram_stride=dram_stride)

    def store(self, mem, sram_addr, rows, row_bytes, dram_addr, dram_stride, **deps):
        self._emit("store", Opcode.STORE, deps, mem=Memory(mem), sram_addr=sram_addr,
                   rows=rows, row_bytes=row_bytes, dram_addr=dram_addr,
                   dram_stride=dram_stride)

    def matmul(self, a_addr, b_addr, c_addr, length, accumulate=False, a_unsigned=False,
               **deps):
        self._emit("compute", Opcode.MATMUL, deps, a_addr=a_addr, b_addr=b_addr,
                   c_addr=c_addr, length=length, accumulate=int(accumulate),
                   a_unsigned=int(a_unsigned))

    def vector(self, func, num_rows, row_length, src_addr, dst_addr, aux_addr=0, param_addr=0,
               out_width=OutWidth.INT32, row_scale=False, causal=False, imm=0, **deps):
        self._emit("compute", Opcode.VECTOR, deps, func=func, out_width=out_width,
                   row_scale=int(row_scale), causal=int(causal), num_rows=num_rows,
                   row_length=row_length, src_addr=src_addr, aux_addr=aux_addr,
                   param_addr=param_addr, dst_addr=dst_addr, imm=imm)

    def fence(self):
        self.words.append(encode(Opcode.FENCE))

    def halt(self):
        self.words.append(encode(Opcode.HALT))
