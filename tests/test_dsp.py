"""PipelinedMultiplier: the product of every operand pair two cycles later, as NumPy computes
it, from the generic gateware (Amaranth's simulator) and from the ECP5 DSP primitive
(Icarus, with a behavioural MULT18X18D written here from Lattice's description of the
block: 18-bit operands, two's complement where SIGNEDA/SIGNEDB is high, input and output
registers on CLK0 with clock enable CE0 and synchronous reset RST0). The same vectors run
on both."""

import re
import subprocess

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Fragment, Module, Shape, signed, unsigned
from amaranth.sim import Simulator
from click.testing import CliRunner

from systolic.hw.dsp import (DSP_WIDTH, LUT_PIECES, MULTIPLY_LATENCY, PipelinedMultiplier,
                             SynthesisPlatform, lut_candidate, lut_multiplier)
from systolic.sw.cli import main

#: Every multiplier built from LUTs (as ``synthesize(multipliers="lut")`` elaborates them).
LUTS = SynthesisPlatform("ecp5", lut_width=DSP_WIDTH)

#: Operand shapes: the PE's (int8/uint8 activation widened to 9 bits x int8 weight), the
#: vector units' pieces (unsigned 17-bit low pieces, signed top pieces), the widest
#: unsigned and signed operands, mixed signedness, one bit.
SHAPES = [(signed(9), signed(8)), (unsigned(17), signed(18)), (signed(18), unsigned(18)),
          (unsigned(18), unsigned(18)), (signed(18), signed(18)), (signed(5), unsigned(1)),
          (unsigned(3), signed(11))]


def _limits(shape):
    return (-(1 << shape.width - 1), (1 << shape.width - 1) - 1) if shape.signed else \
        (0, (1 << shape.width) - 1)


def _vectors(a_shape, b_shape, count=120, seed=0):
    """Operand pairs: every pair of extremes (-2**(w-1), -1, 0, 1, max), then random."""
    rng = np.random.default_rng(seed)
    columns = []
    for shape in (Shape.cast(a_shape), Shape.cast(b_shape)):
        lo, hi = _limits(shape)
        columns.append(([v for v in (lo, -1, 0, 1, hi) if lo <= v <= hi],
                        rng.integers(lo, hi, endpoint=True, size=count)))
    pairs = [(x, y) for x in columns[0][0] for y in columns[1][0]]
    pairs += list(zip(columns[0][1].tolist(), columns[1][1].tolist()))
    return pairs


def _amaranth_products(a_shape, b_shape, pairs, platform=None, split=False):
    dut = PipelinedMultiplier(a_shape, b_shape, a_init=1, b_init=1, split=split)
    seen = []

    async def testbench(ctx):
        for a, b in pairs + [(0, 0)] * MULTIPLY_LATENCY:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            await ctx.tick()
            seen.append(ctx.get(dut.p))

    sim = Simulator(Fragment.get(dut, platform))
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return seen[MULTIPLY_LATENCY - 1:][:len(pairs)]


def _mult18x18d_model():
    bits = lambda name, n: ", ".join(f"{name}{i}" for i in range(n))  # noqa: E731
    cat = lambda name, n: "{" + ", ".join(f"{name}{i}" for i in reversed(range(n))) + "}"  # noqa: E731
    return f"""
module MULT18X18D #(parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTB_CLK = "NONE",
                    parameter REG_OUTPUT_CLK = "NONE", parameter RESETMODE = "SYNC",
                    parameter GSR = "ENABLED") (
    input {bits("A", 18)}, input {bits("B", 18)}, input {bits("C", 18)},
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0,
    output {bits("P", 36)});
  reg [17:0] a, b;
  reg [35:0] p;
  wire [35:0] wide_a = {{{{18{{SIGNEDA & a[17]}}}}, a}};
  wire [35:0] wide_b = {{{{18{{SIGNEDB & b[17]}}}}, b}};
  assign {cat("P", 36)} = p;
  initial if (REG_INPUTA_CLK != "CLK0" || REG_INPUTB_CLK != "CLK0" || REG_OUTPUT_CLK != "CLK0"
              || RESETMODE != "SYNC") begin
    $display("unmodelled MULT18X18D mode"); $finish;
  end
  always @(posedge CLK0)
    if (RST0) begin a <= 0; b <= 0; p <= 0; end
    else if (CE0) begin a <= {cat("A", 18)}; b <= {cat("B", 18)}; p <= wide_a * wide_b; end
endmodule
"""


def _icarus_products(a_shape, b_shape, pairs, tmp_path):
    dut = PipelinedMultiplier(a_shape, b_shape)
    text = verilog.convert(dut, name="dut", platform=SynthesisPlatform("ecp5"), emit_src=False)
    assert "MULT18X18D" in text and " * " not in text
    a_width, b_width, p_width = len(dut.a), len(dut.b), len(dut.p)
    stimulus = tmp_path / "stimulus.hex"
    stimulus.write_text("".join(f"{a & (1 << a_width) - 1:x} {b & (1 << b_width) - 1:x}\n"
                                for a, b in pairs))
    tb = f"""
module tb;
  reg clk = 0, rst = 1;
  reg [{a_width - 1}:0] a = 0;
  reg [{b_width - 1}:0] b = 0;
  wire [{p_width - 1}:0] p;
  reg [{a_width - 1}:0] as [0:{len(pairs) - 1}];
  reg [{b_width - 1}:0] bs [0:{len(pairs) - 1}];
  integer i, f, code;
  dut dut (.clk(clk), .rst(rst), .a(a), .b(b), .p(p));
  always #5 clk = ~clk;
  initial begin
    f = $fopen("{stimulus}", "r");
    for (i = 0; i < {len(pairs)}; i = i + 1) code = $fscanf(f, "%h %h\\n", as[i], bs[i]);
    @(negedge clk); @(negedge clk); rst = 0;
    for (i = 0; i < {len(pairs) + MULTIPLY_LATENCY}; i = i + 1) begin
      if (i < {len(pairs)}) begin a = as[i]; b = bs[i]; end
      @(posedge clk); #1;
      if (i >= {MULTIPLY_LATENCY - 1}) $display("%h", p);
      @(negedge clk);
    end
    $finish;
  end
endmodule
"""
    (tmp_path / "all.v").write_text(_mult18x18d_model() + text + tb)
    subprocess.run(["iverilog", "-g2005", "-o", str(tmp_path / "sim"), str(tmp_path / "all.v")],
                   check=True)
    run = subprocess.run(["vvp", "-n", str(tmp_path / "sim")], check=True, capture_output=True,
                         text=True)
    values = [int(line, 16) for line in run.stdout.split()][:len(pairs)]
    signed_p = dut.p.shape().signed
    return [v - (1 << p_width) if signed_p and v >> p_width - 1 else v for v in values]


@pytest.mark.parametrize("a_shape,b_shape", SHAPES, ids=lambda s: repr(s))
def test_generic_and_ecp5_products_are_exact(a_shape, b_shape, tmp_path):
    pairs = _vectors(a_shape, b_shape)
    expected = [int(np.int64(a) * np.int64(b)) for a, b in pairs]
    assert _amaranth_products(a_shape, b_shape, pairs) == expected
    assert _icarus_products(a_shape, b_shape, pairs, tmp_path) == expected
    # Built from LUTs with the operands straight from flip-flops: registered partial
    # products (a times pieces of b), the product in the same cycle.
    assert _amaranth_products(a_shape, b_shape, pairs, LUTS, split=True) == expected


def test_operands_wider_than_a_dsp_block_are_rejected():
    with pytest.raises(ValueError, match="operand b must be at most 18 bits"):
        PipelinedMultiplier(signed(8), unsigned(DSP_WIDTH + 1))


def test_lut_width_leaves_narrow_multipliers_generic():
    narrow = verilog.convert(PipelinedMultiplier(signed(9), signed(8)), name="dut",
                             platform=SynthesisPlatform("ecp5", lut_width=9))
    wide = verilog.convert(PipelinedMultiplier(signed(10), signed(8)), name="dut",
                           platform=SynthesisPlatform("ecp5", lut_width=9))
    assert "MULT18X18D" not in narrow and " * " in narrow and "partial" not in narrow
    assert "MULT18X18D" in wide


def test_split_applies_to_lut_multipliers_only():
    """``split`` registers partial products only where the multiplier becomes LUTs: not in
    the generic Verilog (simulators, other toolchains), not in a DSP block."""
    def text(platform, split=True, shapes=(signed(9), signed(8))):
        return verilog.convert(PipelinedMultiplier(*shapes, split=split), name="dut",
                               platform=platform, emit_src=False)
    pieces = text(SynthesisPlatform("ecp5", lut_width=9))
    assert all(f"partial{i}" in pieces for i in range(LUT_PIECES))
    assert "MULT18X18D" not in pieces
    assert "partial" not in text(None)
    assert "partial" not in text(SynthesisPlatform("ecp5", lut_width=9), split=False)
    assert "MULT18X18D" in text(SynthesisPlatform("ecp5", lut_width=8))
    assert "partial" not in text(LUTS, shapes=(signed(5), unsigned(1)))  # nothing to split


class _Multipliers(Elaboratable):
    """PipelinedMultipliers of several widths as submodules, in this order: two 8x8 (below
    the threshold width 9 used here), five 9x8 (at it), one 12x8 (above), two more 9x8."""

    SHAPES = [("narrow", signed(8), signed(8))] * 2 + [("edge", signed(9), signed(8))] * 5 \
        + [("wide", unsigned(12), signed(8))] + [("edge", unsigned(8), signed(9))] * 2

    def __init__(self):
        self.multipliers = [PipelinedMultiplier(a, b, split=True) for _, a, b in self.SHAPES]

    def elaborate(self, platform):
        m = Module()
        for i, ((kind, _, _), multiplier) in enumerate(zip(self.SHAPES, self.multipliers)):
            m.submodules[f"{kind}{i}"] = multiplier
        return m


def _dsp_modules(text, word="MULT18X18D"):
    """The names of the modules of ``text`` that instantiate a MULT18X18D (contain
    ``word``)."""
    return sorted(re.match(r"\\?(\S+)", chunk).group(1).split(".")[-1]
                  for chunk in text.split("\nmodule ")[1:] if word in chunk)


def test_lut_dsps_keeps_the_first_multipliers_of_the_threshold_width_in_dsp_blocks():
    """``lut_dsps``: of the multipliers exactly ``lut_width`` wide, the first that many in
    elaboration order are DSP primitives, the others LUTs (split); narrower ones are always
    LUTs, wider ones always DSP blocks. Asking again, or elaborating again with the same
    platform, gives the same answers; without ``lut_dsps`` nothing changes."""
    def convert(platform, design=None):
        design = design or _Multipliers()
        ports = [port for mul in design.multipliers for port in (mul.a, mul.b, mul.p)]
        return verilog.convert(design, name="top", platform=platform, ports=ports,
                               emit_src=False)

    assert _dsp_modules(convert(SynthesisPlatform("ecp5", lut_width=9, lut_dsps=3))) == \
        ["edge2", "edge3", "edge4", "wide7"]
    assert _dsp_modules(convert(SynthesisPlatform("ecp5", lut_width=9))) == ["wide7"]
    assert _dsp_modules(convert(SynthesisPlatform("ecp5", lut_width=9, lut_dsps=100))) == \
        ["edge2", "edge3", "edge4", "edge5", "edge6", "edge8", "edge9", "wide7"]
    assert len(_dsp_modules(convert(SynthesisPlatform("ecp5")))) == 10
    partial = convert(SynthesisPlatform("ecp5", lut_width=9, lut_dsps=3))
    assert partial.count("MULT18X18D #(") == 4
    assert _dsp_modules(partial, "partial0") == ["edge5", "edge6", "edge8", "edge9",
                                                 "narrow0", "narrow1"]
    # lut_dsps=0 is the platform without it (equal, and the same Verilog).
    assert SynthesisPlatform("ecp5", lut_width=9, lut_dsps=0) == \
        SynthesisPlatform("ecp5", lut_width=9)
    assert convert(SynthesisPlatform("ecp5", lut_width=9, lut_dsps=0)) == \
        convert(SynthesisPlatform("ecp5", lut_width=9))
    # The grant is remembered per multiplier: asked before elaboration (as a PE asks for its
    # own), asked twice, elaborated twice.
    design, platform = _Multipliers(), SynthesisPlatform("ecp5", lut_width=9, lut_dsps=2)
    last = design.multipliers[-1]
    assert not lut_multiplier(platform, last) and not lut_multiplier(platform, last)
    assert _dsp_modules(convert(platform, design)) == ["edge2", "edge9", "wide7"]
    assert _dsp_modules(convert(platform, design)) == ["edge2", "edge9", "wide7"]
    assert lut_candidate(platform, signed(9), signed(8)) and \
        not lut_candidate(platform, signed(10), signed(8)) and not lut_candidate(None, 1, 1)
    with pytest.raises(ValueError, match="lut_dsps must be at least 0"):
        SynthesisPlatform("ecp5", lut_width=9, lut_dsps=-1)


@pytest.mark.parametrize("a_shape,b_shape", [(signed(9), signed(8)), (unsigned(9), signed(8)),
                                             (signed(9), unsigned(8)), (signed(8), signed(9)),
                                             (signed(9), signed(2)), (unsigned(4), unsigned(3))],
                         ids=repr)
def test_split_products_at_the_extremes(a_shape, b_shape):
    """The PE's shapes and variants, split: every pair of the extremes (-256/255 for 9 bits,
    -128/127 for 8), 2,000 random pairs, and b at the pieces' boundaries (a piece all ones
    or all zeros next to its neighbour's lowest bit)."""
    pairs = _vectors(a_shape, b_shape, count=2000, seed=3)
    b_shape = Shape.cast(b_shape)
    (a_lo, a_hi), (b_lo, b_hi) = _limits(Shape.cast(a_shape)), _limits(b_shape)
    n = min(LUT_PIECES, b_shape.width)
    edges = [b_shape.width * i // n for i in range(1, n)]
    near = {v for e in edges for v in ((1 << e) - 1, 1 << e, -(1 << e), -(1 << e) - 1)}
    pairs += [(a, b) for a in (a_lo, a_hi, a_lo + 1, a_hi - 1, -1, 1)
              for b in sorted(near) if b_lo <= b <= b_hi and a_lo <= a <= a_hi]
    expected = [a * b for a, b in pairs]
    assert _amaranth_products(a_shape, b_shape, pairs, LUTS, split=True) == expected


def test_verilog_cli_emits_one_dsp_primitive_per_pe(tmp_path):
    runner = CliRunner()
    for dsp, primitives in (("ecp5", 6), ("generic", 0)):
        out = tmp_path / f"{dsp}.v"
        result = runner.invoke(main, ["verilog", "--top", "array", "--rows", "2", "--cols", "3",
                                      "--dsp", dsp, "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_text().count("MULT18X18D #(") == primitives
