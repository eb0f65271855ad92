"""The accelerator's instruction set, defined once as `amaranth.lib.data` layouts.

The gateware decodes instructions through these layouts; the software encodes, decodes and
disassembles through the same layouts (`encode`, `decode`), and `docs/isa.md`
is generated from them (`isa_markdown`). Every instruction is one 128-bit word, little
endian in host memory.

Execution model (as in VTA): instructions are fetched in order and dispatched to three
decoupled units — load (LOAD), compute (MATMUL, VECTOR) and store (STORE) — each with its own
queue. Units synchronize only through dependency tokens carried in every instruction's
header: `pop_*` waits for (and consumes) a token from the neighbouring unit before the
instruction starts, `push_*` sends one after it finishes. "prev"/"next" follow the pipeline
order load → compute → store:

* load:    `pop_next` waits for compute, `push_next` signals compute;
* compute: `pop_prev` waits for load, `pop_next` waits for store,
  `push_prev` signals load, `push_next` signals store;
* store:   `pop_prev` waits for compute, `push_prev` signals compute.

FENCE stops dispatch until every queue is empty and every unit idle; HALT ends the program.
"""

from amaranth.lib import data, enum

from .config import INSTRUCTION_BYTES

__all__ = [
    "Opcode", "Memory", "Deps", "Header", "Transfer", "Matmul", "Instruction",
    "INSTRUCTION_BITS", "FIELD_DOCS", "ALLOWED_DEPS", "IllegalInstruction", "encode", "decode",
    "instruction_fields", "isa_markdown",
]

INSTRUCTION_BITS = INSTRUCTION_BYTES * 8


class Opcode(enum.Enum, shape=4):
    """Operation; 0 is deliberately illegal, so executing zeroed memory raises an error."""
    LOAD = 1
    STORE = 2
    MATMUL = 3
    FENCE = 14
    HALT = 15


class Memory(enum.Enum, shape=1):
    """On-chip memory a transfer reads or writes."""
    SPAD = 0
    ACC = 1


class Deps(data.Struct):
    pop_prev: 1
    pop_next: 1
    push_prev: 1
    push_next: 1


class Header(data.Struct):
    opcode: Opcode
    deps: Deps


class Transfer(data.Struct):
    """LOAD (host → scratchpad/accumulator) and STORE (back to the host)."""
    header: Header
    mem: Memory
    sram_addr: 16
    rows: 16
    row_bytes: 12
    dram_addr: 32
    dram_stride: 32


class Matmul(data.Struct):
    """One array tile: weight-stationary — load the ``rows`` x ``cols`` weight tile from
    scratchpad lines ``b_addr ..``, stream ``length`` activation lines from ``a_addr``, write
    ``length`` accumulator lines from ``c_addr``; output-stationary — stream ``length``
    K-slices (line ``a_addr + k`` holds a column of A, line ``b_addr + k`` a row of B) and
    write the ``rows`` x ``cols`` result tile to accumulator lines ``c_addr ..``."""
    header: Header
    a_addr: 16
    b_addr: 16
    c_addr: 16
    length: 16
    accumulate: 1
    a_unsigned: 1


class Instruction(data.Union):
    raw: INSTRUCTION_BITS
    header: Header
    transfer: Transfer
    matmul: Matmul


FIELD_DOCS = {
    "opcode": "operation (see opcodes)",
    "deps.pop_prev": "wait for a token from the previous unit before starting",
    "deps.pop_next": "wait for a token from the next unit before starting",
    "deps.push_prev": "send a token to the previous unit when done",
    "deps.push_next": "send a token to the next unit when done",
    "mem": "0 = scratchpad (int8 lines), 1 = accumulator (int32 lines)",
    "sram_addr": "first on-chip line",
    "rows": "number of rows transferred",
    "row_bytes": "bytes per row (1..4095); a row fills ceil(row_bytes / line bytes) "
                 "consecutive lines, the last one zero-padded on load",
    "dram_addr": "host byte address of row 0",
    "dram_stride": "host bytes from one row to the next",
    "a_addr": "scratchpad line of the first activation row (WS) / A column (OS)",
    "b_addr": "scratchpad line of the first weight row (WS) / B row (OS)",
    "c_addr": "accumulator line of the first result row",
    "length": "activation rows (WS, 1..65535) / K-slices (OS, 1..65535)",
    "accumulate": "add results to the accumulator instead of overwriting it",
    "a_unsigned": "activations are uint8 (e.g. softmax probabilities) instead of int8",
}

#: Dependency flags each opcode may set (the unit it runs on has only these neighbours);
#: any other flag makes the instruction illegal.
ALLOWED_DEPS = {
    Opcode.LOAD: {"pop_next", "push_next"},
    Opcode.STORE: {"pop_prev", "push_prev"},
    Opcode.MATMUL: {"pop_prev", "pop_next", "push_prev", "push_next"},
    Opcode.FENCE: set(),
    Opcode.HALT: set(),
}

#: The member of :class:`Instruction` that describes each opcode's fields.
_FORMATS = {Opcode.LOAD: "transfer", Opcode.STORE: "transfer", Opcode.MATMUL: "matmul",
            Opcode.FENCE: "header", Opcode.HALT: "header"}


class IllegalInstruction(ValueError):
    """An instruction word with an unknown opcode or a field out of range."""


def _flat_fields(layout, prefix="", offset=0):
    """``(dotted name, bit offset, width, shape)`` of every leaf field of a struct layout."""
    for name, field in data.Layout.cast(layout):
        shape = field.shape
        if isinstance(shape, data.StructLayout) or (
                isinstance(shape, type) and issubclass(shape, data.Struct)):
            yield from _flat_fields(shape, f"{prefix}{name}.", offset + field.offset)
        else:
            yield f"{prefix}{name}", offset + field.offset, field.width, shape


def instruction_fields(opcode):
    """Leaf fields of ``opcode``'s format: ``[(name, offset, width, shape), ...]``, named
    without the ``header.`` prefix (``opcode``, ``deps.pop_prev``, ..., ``rows``, ...)."""
    layout = data.Layout.cast(Instruction)[_FORMATS[Opcode(opcode)]].shape
    return [(name.removeprefix("header."), offset, width, shape)
            for name, offset, width, shape in _flat_fields(layout)]


def encode(opcode, **fields):
    """The 128-bit instruction word for ``opcode`` with ``fields`` (names as in
    :func:`instruction_fields`, e.g. ``**{"deps.push_next": 1}``; omitted fields are zero)."""
    opcode = Opcode(opcode)
    word = opcode.value
    known = {name: (offset, width) for name, offset, width, _ in instruction_fields(opcode)}
    for name, value in fields.items():
        if name not in known or name == "opcode":
            raise IllegalInstruction(f"{opcode.name} has no field {name!r}")
        offset, width = known[name]
        value = int(value.value if isinstance(value, enum.Enum) else value)
        if not 0 <= value < 1 << width:
            raise IllegalInstruction(f"{opcode.name}.{name} = {value} does not fit {width} bits")
        word |= value << offset
    decode(word)  # rejects dependency flags the opcode's unit does not have
    return word


def decode(word):
    """``(opcode, {field: int})`` of an instruction word; raises :class:`IllegalInstruction`
    for an unknown opcode or a dependency flag the opcode's unit does not have."""
    word = int(word)
    if not 0 <= word < 1 << INSTRUCTION_BITS:
        raise IllegalInstruction(f"instruction word {word:#x} is not {INSTRUCTION_BITS} bits")
    try:
        opcode = Opcode(word & 0xF)
    except ValueError:
        raise IllegalInstruction(f"illegal opcode {word & 0xF} in {word:#034x}") from None
    fields = {name: (word >> offset) & ((1 << width) - 1)
              for name, offset, width, _ in instruction_fields(opcode) if name != "opcode"}
    for name, value in fields.items():
        flag = name.removeprefix("deps.")
        if value and flag != name and flag not in ALLOWED_DEPS[opcode]:
            raise IllegalInstruction(f"{opcode.name} cannot {flag} (its unit has no such "
                                     "neighbour)")
    return opcode, fields


def isa_markdown():
    """The ISA reference (``docs/isa.md``), generated from the layouts above."""
    from . import isa  # noqa: F401  (the module docstring is the introduction)

    lines = ["# Instruction set", "",
             "Generated by `systolic.hw.isa.isa_markdown()` from the layouts in `hw/isa.py`; "
             "`tests/test_isa.py` checks that this file is current.", "",
             isa.__doc__.strip(), "", "## Opcodes", "", "| opcode | value | format |",
             "|---|---|---|"]
    lines += [f"| {op.name} | {op.value} | {_FORMATS[op]} |" for op in Opcode]
    lines += ["", "Dependency flags an opcode may set (any other makes it illegal): " +
              "; ".join(f"{op.name}: {', '.join(sorted(ALLOWED_DEPS[op])) or 'none'}"
                        for op in Opcode) + "."]
    for fmt in sorted(set(_FORMATS.values())):
        ops = ", ".join(op.name for op in Opcode if _FORMATS[op] == fmt)
        layout = data.Layout.cast(Instruction)[fmt].shape
        doc = (getattr(layout, "__doc__", None) or "").strip()
        lines += ["", f"## `{fmt}` format ({ops})", ""]
        if doc and fmt != "header":
            lines += [" ".join(doc.split()), ""]
        lines += ["| bits | field | meaning |", "|---|---|---|"]
        for name, offset, width, _ in _flat_fields(layout):
            name = name.removeprefix("header.")
            bits = f"{offset}" if width == 1 else f"{offset + width - 1}:{offset}"
            lines.append(f"| {bits} | `{name}` | {FIELD_DOCS[name]} |")
    return "\n".join(lines) + "\n"
