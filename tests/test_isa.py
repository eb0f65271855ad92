"""The ISA: encoding round trips, the assembler, illegal words, and generated docs."""

from pathlib import Path

import numpy as np
import pytest

from systolic.hw.csr import REGISTERS, registers_markdown
from systolic.hw.isa import (ALLOWED_DEPS, INSTRUCTION_BITS, IllegalInstruction, Opcode,
                             decode, encode, instruction_fields, isa_markdown)
from systolic.sw.assembler import assemble, disassemble

DOCS = Path(__file__).resolve().parent.parent / "docs"


def random_fields(rng, opcode):
    values = {}
    for name, _, width, shape in instruction_fields(opcode):
        if name == "opcode" or name.startswith("deps.") and \
                name.removeprefix("deps.") not in ALLOWED_DEPS[opcode]:
            continue
        values[name] = int(rng.integers(0, len(shape))) if hasattr(shape, "__members__") \
            else int(rng.integers(0, 1 << width, dtype=np.uint64))
    return values


@pytest.mark.parametrize("opcode", list(Opcode))
def test_encode_decode_round_trip(opcode):
    rng = np.random.default_rng(opcode.value)
    for _ in range(50):
        fields = random_fields(rng, opcode)
        word = encode(opcode, **fields)
        assert 0 <= word < 1 << INSTRUCTION_BITS
        decoded_opcode, decoded = decode(word)
        assert decoded_opcode == opcode
        assert decoded == {name: fields.get(name, 0) for name in decoded}
        assert assemble(disassemble([word])) == [word]


def test_fields_do_not_overlap_and_fit():
    for opcode in Opcode:
        used = 0
        for _, offset, width, _ in instruction_fields(opcode):
            mask = ((1 << width) - 1) << offset
            assert not used & mask
            used |= mask
        assert used < 1 << INSTRUCTION_BITS


def test_assembler_text():
    text = """
    # a tiny program
    load mem=spad sram_addr=2 rows=4 row_bytes=3 dram_addr=0x100 dram_stride=17 push_next
    matmul a_addr=2 b_addr=0 c_addr=1 length=4 accumulate a_unsigned pop_prev
    store mem=acc rows=1 row_bytes=16 dram_addr=0x200 dram_stride=16
    fence
    halt
    """
    words = assemble(text)
    assert [decode(w)[0] for w in words] == [Opcode.LOAD, Opcode.MATMUL, Opcode.STORE,
                                             Opcode.FENCE, Opcode.HALT]
    _, load = decode(words[0])
    assert (load["sram_addr"], load["rows"], load["row_bytes"], load["dram_addr"],
            load["dram_stride"], load["deps.push_next"]) == (2, 4, 3, 0x100, 17, 1)
    _, matmul = decode(words[1])
    assert matmul["accumulate"] == matmul["a_unsigned"] == matmul["deps.pop_prev"] == 1
    assert assemble(disassemble(words)) == words


@pytest.mark.parametrize("text, message", [
    ("jump x=1", "unknown mnemonic"),
    ("load bogus=1", "no field"),
    ("load mem=dram", "expected one of spad, acc"),
    ("load rows=65536", "does not fit 16 bits"),
    ("load rows=ten", "not a number"),
    ("store pop_next", "STORE cannot pop_next"),
    ("halt push_prev", "HALT cannot push_prev"),
])
def test_assembler_errors(text, message):
    with pytest.raises(IllegalInstruction, match=message):
        assemble(text)


def test_illegal_words():
    with pytest.raises(IllegalInstruction, match="illegal opcode 0"):
        decode(0)
    with pytest.raises(IllegalInstruction, match="illegal opcode 7"):
        decode(7)
    with pytest.raises(IllegalInstruction, match="not 128 bits"):
        decode(1 << INSTRUCTION_BITS)
    with pytest.raises(IllegalInstruction, match="no field"):
        encode(Opcode.HALT, rows=1)


def test_generated_docs_are_current():
    assert (DOCS / "isa.md").read_text() == isa_markdown(), "run `systolic docs`"
    assert (DOCS / "registers.md").read_text() == registers_markdown(), "run `systolic docs`"


def test_register_map_is_consistent():
    offsets = [reg.offset for reg in REGISTERS]
    assert len(set(offsets)) == len(offsets)
    assert all(offset % 4 == 0 for offset in offsets)
    assert len({reg.name for reg in REGISTERS}) == len(REGISTERS)
