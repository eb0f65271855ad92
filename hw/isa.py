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

VECTOR applies one vector unit (``func``) to ``num_rows`` rows of ``row_length`` elements.
Lines hold ``cols`` elements: int32 lanes in the accumulator, int8/uint8 bytes in the
scratchpad. Row ``r`` of an input occupies ``chunks = ceil(row_length / cols)`` consecutive
accumulator lines from ``src_addr + r * chunks`` (lanes past ``row_length`` are ignored).
8-bit results (ROWQUANT, SOFTMAX, and any unit with ``out_width = int8``) go to the
scratchpad, packed ``spad_line_bytes`` per line: row ``r`` fills
``ceil(row_length / spad_line_bytes)`` lines from ``dst_addr``; wider results go to the
accumulator in the input's layout. Bytes and lanes past ``row_length`` are written as 0,
so rows look exactly like rows moved by LOAD. ``dst_addr == src_addr`` (in place) is allowed.

* Per-row records (RowScale words, see `ROW_SCALE_WORD`) sit in lane 0 of the accumulator line
  ``aux_addr + r``; REQUANTIZE and SOFTMAX read them when ``row_scale`` is set, ROWQUANT
  writes them (other lanes 0). MUL and ADD read their second input rows from ``aux_addr``
  in the layout of ``src_addr``.
* The parameter block at accumulator line ``param_addr`` holds the function's header words
  (word ``w`` in line ``param_addr + w // cols``, lane ``w % cols``) and then its
  per-channel planes: plane ``p``, chunk ``c`` in line ``param_addr + H + p * chunks + c``
  with ``H = ceil(header words / cols)`` (see `VECTOR_PARAMS`).
* Units read 16-bit operands (GELU, SILU, MUL) from the low 16 bits of each int32 lane.
* The functional simulator raises ILLEGAL_INSTRUCTION for a unit the accelerator lacks, a
  row longer than the unit's row buffer, or parameters outside the unit's ranges (the
  hardware result is then unspecified).
"""

import numpy as np
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

from .config import INSTRUCTION_BYTES, NORM_MAX_ROW, ROWQUANT_MAX_ROW
from .formats import MANT_WIDTH, ROW_EXP_WIDTH, SHIFT_WIDTH

__all__ = [
    "Opcode", "Memory", "Deps", "Header", "Transfer", "Matmul", "Vector", "VectorFunc",
    "OutWidth", "Instruction", "INSTRUCTION_BITS", "FIELD_DOCS", "ALLOWED_DEPS",
    "VECTOR_PARAMS", "VECTOR_UNIT", "DYADIC_WORD", "ROW_SCALE_WORD", "IllegalInstruction",
    "encode", "decode", "instruction_fields", "isa_markdown", "pack_words", "unpack_words",
    "vector_row_limit", "vector_param_lines", "vector_output_memory", "field_offsets",
]

INSTRUCTION_BITS = INSTRUCTION_BYTES * 8


class Opcode(enum.Enum, shape=4):
    """Operation; 0 is deliberately illegal, so executing zeroed memory raises an error."""
    LOAD = 1
    STORE = 2
    MATMUL = 3
    VECTOR = 4
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


class VectorFunc(enum.Enum, shape=4):
    """Vector unit a VECTOR instruction applies (golden models in ``sw/numerics``)."""
    REQUANTIZE = 0
    ROWQUANT = 1
    SOFTMAX = 2
    GELU = 3
    SILU = 4
    MUL = 5
    ADD = 6
    LAYERNORM = 7
    RMSNORM = 8


class OutWidth(enum.Enum, shape=2):
    """Signed output width of REQUANTIZE, MUL, ADD, LAYERNORM and RMSNORM."""
    INT8 = 0
    INT16 = 1
    INT32 = 2


class Vector(data.Struct):
    """Apply the vector unit ``func`` to ``num_rows`` rows of ``row_length`` elements read
    from accumulator lines ``src_addr ..`` and write the results from ``dst_addr`` (scratchpad
    for 8-bit results, accumulator otherwise); line layouts in the introduction and in the
    parameter-block table."""
    header: Header
    func: VectorFunc
    out_width: OutWidth
    row_scale: 1
    causal: 1
    num_rows: 16
    row_length: 16
    src_addr: 16
    aux_addr: 16
    param_addr: 16
    dst_addr: 16
    imm: 16


class Instruction(data.Union):
    raw: INSTRUCTION_BITS
    header: Header
    transfer: Transfer
    matmul: Matmul
    vector: Vector


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
    "func": "vector unit (see vector functions)",
    "out_width": "REQUANTIZE, MUL, ADD, LAYERNORM, RMSNORM: output width (0 = int8 to the "
                 "scratchpad, 1 = int16, 2 = int32 to the accumulator); ignored otherwise",
    "row_scale": "REQUANTIZE, SOFTMAX: multiply by the per-row RowScale at `aux_addr + r` "
                 "(otherwise mant = 1, exp = 0)",
    "causal": "SOFTMAX: row `r` sees columns `0 .. imm + r` only",
    "num_rows": "rows processed (1..65535)",
    "row_length": "elements per row (1..65535; at most the unit's row buffer)",
    "src_addr": "accumulator line of row 0 of the (first) input",
    "aux_addr": "accumulator line of row 0 of the second input (MUL, ADD) or of the "
                "per-row records (read by REQUANTIZE/SOFTMAX, written by ROWQUANT)",
    "param_addr": "accumulator line of the parameter block (header words, then planes)",
    "dst_addr": "line of row 0 of the result (scratchpad for 8-bit results, else accumulator)",
    "imm": "GELU, SILU: fraction bits of input and output (4..15); SOFTMAX with `causal`: "
           "the last column row 0 sees; 0 otherwise",
}

#: Dependency flags each opcode may set (the unit it runs on has only these neighbours);
#: any other flag makes the instruction illegal.
ALLOWED_DEPS = {
    Opcode.LOAD: {"pop_next", "push_next"},
    Opcode.STORE: {"pop_prev", "push_prev"},
    Opcode.MATMUL: {"pop_prev", "pop_next", "push_prev", "push_next"},
    Opcode.VECTOR: {"pop_prev", "pop_next", "push_prev", "push_next"},
    Opcode.FENCE: set(),
    Opcode.HALT: set(),
}

#: The member of :class:`Instruction` that describes each opcode's fields.
_FORMATS = {Opcode.LOAD: "transfer", Opcode.STORE: "transfer", Opcode.MATMUL: "matmul",
            Opcode.VECTOR: "vector", Opcode.FENCE: "header", Opcode.HALT: "header"}

#: A dyadic multiplier ``m * 2**-s`` in one int32 parameter word (the rest of the word is 0).
DYADIC_WORD = data.StructLayout({"m": signed(MANT_WIDTH), "s": unsigned(SHIFT_WIDTH)})
#: A per-row scale (``RowScale``: one int8 step is ``mant * 2**exp / 127`` source units) in
#: one int32 per-row record (the rest of the word is 0).
ROW_SCALE_WORD = data.StructLayout({"mant": unsigned(MANT_WIDTH),
                                    "exp": signed(ROW_EXP_WIDTH)})

#: Parameter block of each function: ``(header words, per-channel planes)``; every entry is
#: ``(name, contents)``. Dyadic entries are `DYADIC_WORD`s; plane words are per channel.
VECTOR_PARAMS = {
    VectorFunc.REQUANTIZE: ((), (("m_s", "dyadic multiplier (m, s) of the channel"),
                                 ("bias", "int32 bias in output units"))),
    VectorFunc.ROWQUANT: ((), ()),
    VectorFunc.SOFTMAX: ((("m_s", "dyadic logit multiplier (m, s), m > 0"),), ()),
    VectorFunc.GELU: ((), ()),
    VectorFunc.SILU: ((), ()),
    VectorFunc.MUL: ((), (("m_s", "dyadic multiplier (m, s) of the product"),)),
    VectorFunc.ADD: ((), (("ma_sa", "dyadic alignment of input a"),
                          ("mb_sb", "dyadic alignment of input b"))),
    VectorFunc.LAYERNORM: ((("eps_lo", "eps_q bits 31:0"), ("eps_hi", "eps_q bits 63:32")),
                           (("gm_gs", "dyadic gamma (gm, gs)"),
                            ("beta", "int32 beta in output units"))),
}
VECTOR_PARAMS[VectorFunc.RMSNORM] = VECTOR_PARAMS[VectorFunc.LAYERNORM]

#: The unit (a `VectorUnitsConfig` flag) that executes each function.
VECTOR_UNIT = {
    VectorFunc.REQUANTIZE: "requantize", VectorFunc.ROWQUANT: "rowquant",
    VectorFunc.SOFTMAX: "softmax", VectorFunc.GELU: "gelu", VectorFunc.SILU: "silu",
    VectorFunc.MUL: "eltwise", VectorFunc.ADD: "eltwise", VectorFunc.LAYERNORM: "layernorm",
    VectorFunc.RMSNORM: "rmsnorm",
}


def vector_row_limit(units, func):
    """Longest row the unit of ``func`` accepts in the vector units ``units`` (a
    `VectorUnitsConfig`): its row buffer for the row units, 65535 (the field) otherwise."""
    func = VectorFunc(func)
    if func == VectorFunc.SOFTMAX:
        return min(units.softmax_max_row, 2**16 - 1)
    if func in (VectorFunc.LAYERNORM, VectorFunc.RMSNORM):
        return min(units.max_row, NORM_MAX_ROW)
    if func == VectorFunc.ROWQUANT:
        return min(units.max_row, ROWQUANT_MAX_ROW - 1)
    return 2**16 - 1


def vector_output_memory(func, out_width):
    """Where ``func`` writes its results: the scratchpad for 8-bit results (ROWQUANT,
    SOFTMAX, ``out_width`` INT8), the accumulator otherwise (GELU and SILU give int16)."""
    func = VectorFunc(func)
    if func in (VectorFunc.ROWQUANT, VectorFunc.SOFTMAX):
        return Memory.SPAD
    if func in (VectorFunc.GELU, VectorFunc.SILU) or OutWidth(out_width) != OutWidth.INT8:
        return Memory.ACC
    return Memory.SPAD


def vector_param_lines(func, row_length, cols):
    """``(header lines, lines per plane, total lines)`` of ``func``'s parameter block for
    rows of ``row_length`` on an array with ``cols`` columns."""
    header, planes = VECTOR_PARAMS[VectorFunc(func)]
    head = -(-len(header) // cols)
    chunks = -(-row_length // cols)
    return head, chunks, head + len(planes) * chunks


def pack_words(layout, **fields):
    """int32 words (NumPy, broadcast over the arguments) holding ``fields`` of the struct
    ``layout`` (`DYADIC_WORD`, `ROW_SCALE_WORD`); raises ValueError when a value does not fit."""
    word = np.int64(0)
    for name, field in layout:
        value = np.asarray(fields.pop(name), dtype=np.int64)
        shape = field.shape
        lo, hi = (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed \
            else (0, (1 << shape.width) - 1)
        if value.size and (value.min() < lo or value.max() > hi):
            raise ValueError(f"{name} does not fit {shape}")
        word = word | ((value & ((1 << shape.width) - 1)) << field.offset)
    if fields:
        raise ValueError(f"unknown fields {sorted(fields)}")
    return np.asarray(word, dtype=np.int64).astype(np.uint32).view(np.int32)


def unpack_words(layout, words):
    """``{field: int64 array}`` of int32 ``words`` packed by :func:`pack_words`."""
    words = np.asarray(words).astype(np.int64) & 0xFFFFFFFF
    out = {}
    for name, field in layout:
        shape = field.shape
        value = (words >> field.offset) & ((1 << shape.width) - 1)
        if shape.signed:
            value = np.where(value >= 1 << (shape.width - 1), value - (1 << shape.width), value)
        out[name] = value
    return out


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
    """Leaf fields of ``opcode``'s format: ``((name, offset, width, shape), ...)``, named
    without the ``header.`` prefix (``opcode``, ``deps.pop_prev``, ..., ``rows``, ...)."""
    return _FIELDS[_opcode(opcode)]


def field_offsets(opcode):
    """``{name: (bit offset, width)}`` of ``opcode``'s fields (for fast encoders)."""
    return _ENCODE[_opcode(opcode)]


def _opcode(value):
    """``Opcode(value)`` without the cost of Amaranth's enum call (on the decode path)."""
    opcode = _OPCODES.get(value.value if isinstance(value, Opcode) else value)
    if opcode is None:
        raise ValueError(f"{value!r} is not a valid Opcode")
    return opcode


def _format_fields(fmt):
    layout = data.Layout.cast(Instruction)[fmt].shape
    return tuple((name.removeprefix("header."), offset, width, shape)
                 for name, offset, width, shape in _flat_fields(layout))


#: Field tables per opcode, computed once (decoding runs for every simulated instruction).
_FIELDS = {op: _format_fields(fmt) for op, fmt in _FORMATS.items()}
_OPCODES = {op.value: op for op in Opcode}
#: Per opcode: ``{name: (offset, width)}`` (encode) and the fields decode extracts.
_ENCODE = {op: {name: (offset, width) for name, offset, width, _ in fields}
           for op, fields in _FIELDS.items()}
_DECODE = {op: tuple((name, offset, (1 << width) - 1, name.removeprefix("deps."))
                     for name, offset, width, _ in fields if name != "opcode")
           for op, fields in _FIELDS.items()}


def encode(opcode, **fields):
    """The 128-bit instruction word for ``opcode`` with ``fields`` (names as in
    :func:`instruction_fields`, e.g. ``**{"deps.push_next": 1}``; omitted fields are zero)."""
    opcode = _opcode(opcode)
    word = opcode.value
    known = _ENCODE[opcode]
    for name, value in fields.items():
        if name not in known or name == "opcode":
            raise IllegalInstruction(f"{opcode.name} has no field {name!r}")
        offset, width = known[name]
        value = int(value.value if isinstance(value, enum.Enum) else value)
        if not 0 <= value < 1 << width:
            raise IllegalInstruction(f"{opcode.name}.{name} = {value} does not fit {width} bits")
        if value and name.startswith("deps.") and name[5:] not in ALLOWED_DEPS[opcode]:
            raise IllegalInstruction(f"{opcode.name} cannot {name[5:]} (its unit has no such "
                                     "neighbour)")
        word |= value << offset
    return word


def decode(word):
    """``(opcode, {field: int})`` of an instruction word; raises :class:`IllegalInstruction`
    for an unknown opcode or a dependency flag the opcode's unit does not have."""
    word = int(word)
    if not 0 <= word < 1 << INSTRUCTION_BITS:
        raise IllegalInstruction(f"instruction word {word:#x} is not {INSTRUCTION_BITS} bits")
    opcode = _OPCODES.get(word & 0xF)
    if opcode is None:
        raise IllegalInstruction(f"illegal opcode {word & 0xF} in {word:#034x}")
    fields = {}
    for name, offset, mask, flag in _DECODE[opcode]:
        value = fields[name] = (word >> offset) & mask
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
    return "\n".join(lines + _vector_markdown()) + "\n"


def _vector_markdown():
    """The vector functions table and the parameter/record word layouts."""
    def entries(items):
        return "<br>".join(f"`{name}`: {doc}" for name, doc in items) or "none"

    def word(layout):
        return ", ".join(f"`{name}` bits {f.offset + f.width - 1}:{f.offset} ({f.shape})"
                         for name, f in layout)

    lines = ["", "## Vector functions", "",
             "| func | value | unit | header words | per-channel planes |", "|---|---|---|---|---|"]
    for func in VectorFunc:
        header, planes = VECTOR_PARAMS[func]
        lines.append(f"| {func.name} | {func.value} | {VECTOR_UNIT[func]} | {entries(header)} "
                     f"| {entries(planes)} |")
    lines += ["", f"Dyadic parameter word (`DYADIC_WORD`): {word(DYADIC_WORD)}; the other "
              "bits are 0.", "",
              f"Per-row record word (`ROW_SCALE_WORD`): {word(ROW_SCALE_WORD)}; the other bits "
              "are 0."]
    return lines
