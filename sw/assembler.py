"""Text assembly for the accelerator's instructions, derived from ``systolic.hw.isa``.

One instruction per line: the lower-case opcode, then ``field=value`` for multi-bit fields
and the bare name of each one-bit field that is set (dependency flags such as ``pop_prev``,
``accumulate``, ...). Enum fields take their lower-case member names (``mem=acc``); numbers
are decimal or ``0x`` hex; ``#`` starts a comment. :func:`disassemble` prints the canonical
form (zero fields omitted, host addresses in hex), and ``assemble(disassemble(words)) ==
words`` for every valid word.

    load mem=spad sram_addr=0 rows=4 row_bytes=4 dram_addr=0x1000 dram_stride=33 push_next
    matmul a_addr=0 b_addr=512 c_addr=0 length=16 pop_prev push_prev
    halt
"""

from amaranth.lib import enum

from systolic.hw.isa import IllegalInstruction, Opcode, decode, encode, instruction_fields

__all__ = ["assemble", "disassemble", "format_instruction", "parse_instruction"]

_HEX_FIELDS = {"dram_addr"}


def _short(name):
    return name.removeprefix("deps.")


def format_instruction(word):
    """One instruction word as canonical assembly text."""
    opcode, values = decode(word)
    parts = [opcode.name.lower()]
    flags = []
    for name, _, width, shape in instruction_fields(opcode):
        if name == "opcode" or values[name] == 0 and not isinstance(shape, enum.EnumMeta):
            continue
        value = values[name]
        if isinstance(shape, enum.EnumMeta):
            parts.append(f"{name}={shape(value).name.lower()}")
        elif width == 1:
            flags.append(_short(name))
        else:
            parts.append(f"{name}={value:#x}" if name in _HEX_FIELDS else f"{name}={value}")
    return " ".join(parts + flags)


def parse_instruction(text):
    """The instruction word for one line of assembly (without comment)."""
    tokens = text.split()
    if not tokens:
        raise IllegalInstruction("empty instruction")
    try:
        opcode = Opcode[tokens[0].upper()]
    except KeyError:
        raise IllegalInstruction(f"unknown mnemonic {tokens[0]!r}; expected one of "
                                 f"{', '.join(op.name.lower() for op in Opcode)}") from None
    fields = {name: shape for name, _, _, shape in instruction_fields(opcode) if name != "opcode"}
    by_short = {_short(name): name for name in fields}
    values = {}
    for token in tokens[1:]:
        key, _, text_value = token.partition("=")
        name = by_short.get(key)
        if name is None:
            raise IllegalInstruction(f"{opcode.name.lower()} has no field {key!r}")
        shape = fields[name]
        if not text_value:
            values[name] = 1
        elif isinstance(shape, enum.EnumMeta):
            try:
                values[name] = shape[text_value.upper()]
            except KeyError:
                raise IllegalInstruction(f"{key}={text_value}: expected one of "
                                         f"{', '.join(m.name.lower() for m in shape)}") from None
        else:
            try:
                values[name] = int(text_value, 0)
            except ValueError:
                raise IllegalInstruction(f"{key}={text_value} is not a number") from None
    return encode(opcode, **values)


def assemble(text):
    """Instruction words of a multi-line assembly program."""
    words = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                words.append(parse_instruction(line))
            except IllegalInstruction as error:
                raise IllegalInstruction(f"line {number}: {error}") from None
    return words


def disassemble(words):
    """Canonical assembly text of instruction words, one per line."""
    return "".join(format_instruction(word) + "\n" for word in words)
