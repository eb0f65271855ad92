"""Generation of the vector units: Verilog that Icarus and Verilator accept, parameter
validation, the vector-unit config, the number formats and tables of hw/formats.py (defined
once, held by the ROMs and wide enough for the golden models), and the iterative divider
and square root."""

import ast
import gc
import importlib
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator
from click.testing import CliRunner

from systolic.hw import config, formats, isa, norm, pwl, softmax
from systolic.hw.config import VectorUnitsConfig
from systolic.hw.vector import Divider, Isqrt, OutBits
from systolic.hw.verilog import TOPS, build_top
from systolic.sim.unit_stimulus import (ROW_TOPS, STREAMING_TOPS, simulate_amaranth,
                                        suite_jobs, unit_suite)
from systolic.sw.cli import main
from systolic.sw.numerics import fixed

from test_verilog import check_tools_accept, write_verilog

UNIT_TOPS = STREAMING_TOPS + ROW_TOPS
# The numerics package re-exports functions under some module names: import the modules.
golden_gelu, golden_norm, golden_rowquant, golden_silu, golden_softmax = (
    importlib.import_module(f"systolic.sw.numerics.{name}") for name in
    ("gelu", "norm", "rowquant", "silu", "softmax"))
#: Building a component with bad parameters leaves an unused object behind.
unused_ok = pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")


@pytest.mark.parametrize("top", UNIT_TOPS)
def test_default_verilog_compiles_and_lints(tmp_path, top):
    path = write_verilog(tmp_path, "--top", top)
    assert f"module systolic_{top}(" in path.read_text()
    check_tools_accept(path)


def test_cli_lanes_and_max_row(tmp_path):
    path = write_verilog(tmp_path, "--top", "layernorm", "--lanes", "3", "--max-row", "77")
    check_tools_accept(path)
    result = CliRunner().invoke(main, ["verilog", "--top", "softmax", "--lanes", "0",
                                       "-o", str(tmp_path / "x.v")])
    assert result.exit_code == 2 and "lanes must be an integer in 1..64" in result.output


@unused_ok
@pytest.mark.parametrize("top", UNIT_TOPS)
@pytest.mark.parametrize("lanes", [0, 65, 2.0, True])
def test_bad_lanes(top, lanes):
    with pytest.raises(ValueError, match="lanes must be an integer in 1..64"):
        build_top(top, lanes=lanes)
    gc.collect()  # the rejected component is reported unused here, where it is expected


@unused_ok
@pytest.mark.parametrize("top, limit", [("softmax", 65536), ("layernorm", 16384),
                                        ("rmsnorm", 16384), ("norm", 16384),
                                        ("rowquant", 65536)])
def test_bad_max_row(top, limit):
    for max_row in (0, limit + 1, 8.5):
        with pytest.raises(ValueError, match=f"max_row must be an integer in 1..{limit}"):
            build_top(top, max_row=max_row)
    gc.collect()


@unused_ok
def test_norm_modes():
    """The norm unit built for both functions has an ``rms`` input and LayerNorm's
    pipeline; LayerNorm and RMSNorm alone have no ``rms`` input."""
    latency = {}
    for name, unit in (("both", norm.Norm(3, 13)), ("layernorm", norm.LayerNorm(3, 13)),
                       ("rmsnorm", norm.RMSNorm(3, 13)),
                       ("both, reordered", norm.Norm(3, 13, ("rmsnorm", "layernorm")))):
        assert ("rms" in unit.signature.members) == name.startswith("both")
        Fragment.get(unit, None)
        latency[name] = unit.latency
    assert latency["both"] == latency["both, reordered"] == latency["layernorm"]
    assert latency["rmsnorm"] < latency["layernorm"]
    for modes in ((), ("layernorm", "layernorm"), ("softmax",)):
        with pytest.raises(ValueError, match="modes must be distinct values of"):
            norm.Norm(3, 13, modes)
    gc.collect()


@unused_ok
def test_pwl_funcs():
    """The PWL unit built for GELU and SiLU has a ``table`` input and the pipeline of each
    alone; GELU and SiLU alone have no ``table`` input."""
    latency = {}
    for name, unit in (("both", pwl.Activation(3)), ("gelu", pwl.Gelu(3)),
                       ("silu", pwl.Silu(3)),
                       ("both, reordered", pwl.Activation(3, ("silu", "gelu")))):
        assert ("table" in unit.signature.members) == name.startswith("both")
        Fragment.get(unit, None)
        latency[name] = unit.latency
    assert len(set(latency.values())) == 1
    for funcs in ((), ("gelu", "gelu"), ("softmax",)):
        with pytest.raises(ValueError, match="funcs must be distinct values of"):
            pwl.Activation(3, funcs)
    gc.collect()


@unused_ok
def test_pwl_bad_table():
    with pytest.raises(ValueError, match="knots must have 257 entries"):
        pwl.PiecewiseLinear(2, [((0,) * 256, 3)], seg_log2=4)
    with pytest.raises(ValueError, match="knots must have 513 entries"):
        pwl.PiecewiseLinear(2, [(formats.gelu_knots(), 3), (formats.gelu_knots(), 4)])
    gc.collect()


def test_every_unit_has_a_top():
    assert set(UNIT_TOPS) <= set(TOPS)
    assert set(config.VECTOR_UNITS) == {"requantize", "softmax", "gelu", "silu", "eltwise",
                                        "layernorm", "rmsnorm", "rowquant"}


def rom_of(unit, name):
    """The ROM ``name`` of ``unit`` (elaborated directly: its other parts stay unused)."""
    return getattr(unit.elaborate(None).submodules, name)


@unused_ok
def test_softmax_exp_table_and_its_rom():
    table = formats.EXP_TABLE
    assert len(table) == 2**formats.EXP_FRAC_BITS == 256 and table[0] == 2**15
    assert np.all(np.diff(table) < 0)
    assert np.abs(table - [2.0**(15 - k / 256) for k in range(256)]).max() <= 0.5
    assert table.max() < 2**(formats.EXP_ONE_BITS + 1)  # the ROM's entry width
    assert golden_softmax.EXP_TABLE is table and softmax.EXP_TABLE is table
    assert list(rom_of(softmax.Softmax(1, 4), "exp_rom").init) == table.tolist()
    gc.collect()  # the unit's unused parts are reported here, where it is expected


@unused_ok
@pytest.mark.parametrize("unit, knots, golden, minimum", [
    # Minima of the functions: GELU -0.16997 at x = -0.7518, SiLU -0.27846 at x = -1.2785.
    (pwl.Gelu, formats.gelu_knots(), golden_gelu.GELU_TABLE, -0.16997),
    (pwl.Silu, formats.silu_knots(), golden_silu.SILU_TABLE, -0.27846),
])
def test_pwl_tables_and_their_roms(unit, knots, golden, minimum):
    one = 2**formats.TABLE_FRAC_BITS
    step = one >> formats.SEG_LOG2  # x advances by one step per knot
    half = golden.segments // 2  # the knot at x = 0
    assert len(knots) == golden.segments + 1 and golden.knots is knots
    assert knots[0] == 0 and knots[half] == 0 and knots[-1] == half * step
    # f(x) - f(-x) = x for both x * Phi(x) and x * sigmoid(x).
    assert np.array_equal(knots[half:] - knots[half::-1], np.arange(half + 1) * step)
    assert abs(knots.min() / one - minimum) < 2e-4
    lowest = np.argmin(knots)
    assert np.all(np.diff(knots[:lowest + 1]) <= 0) and np.all(np.diff(knots[lowest:]) >= 0)
    entries = [(e["base"], e["slope"]) for e in rom_of(unit(1), "rom").init]
    assert [base for base, _ in entries] == knots[:-1].tolist()
    assert [base + slope for base, slope in entries] == knots[1:].tolist()
    # The unit built for both functions holds GELU's table, then SiLU's.
    start = 0 if unit is pwl.Gelu else len(formats.gelu_knots()) - 1
    shared = [(e["base"], e["slope"]) for e in rom_of(pwl.Activation(1), "rom").init]
    assert shared[start:start + len(entries)] == entries
    assert len(shared) == len(formats.gelu_knots()) + len(formats.silu_knots()) - 2
    gc.collect()


def test_format_widths_hold_the_golden_ranges():
    # Extreme dyadic multipliers and row scales survive the hardware words unchanged.
    m, s = fixed.check_dyadic("extremes", [-(2**15 - 1), 2**15 - 1, 0], [formats.MAX_SHIFT, 0, 0])
    for mi, si in zip(m.tolist(), s.tolist()):
        word = isa.DYADIC_WORD.const({"m": mi, "s": si})
        assert (word.m, word.s) == (mi, si)
    with pytest.raises(ValueError, match="mantissa"):
        fixed.check_dyadic("too wide", 2**15, 0)
    # max |z| of 1, of an int16 row and of an int32 row.
    scale = golden_rowquant.row_scale_of_maxabs(np.array([1, 2**15, 2**31]))
    assert scale.exp[1] <= formats.ROW_EXP_MAX[16] and scale.exp[2] <= formats.ROW_EXP_MAX[32]
    for mant, exp in zip(scale.mant.tolist(), scale.exp.tolist()):
        word = isa.ROW_SCALE_WORD.const({"mant": mant, "exp": exp})
        assert (word.mant, word.exp) == (mant, exp)
    # The largest eps_q of the golden NormParams fits the norm units' eps_q input.
    golden_norm.NormParams(0, 0, 0, formats.EPS_MAX)
    with pytest.raises(ValueError, match="eps_q"):
        golden_norm.NormParams(0, 0, 0, formats.EPS_MAX + 1)
    assert formats.EPS_MAX < 2**len(norm.LayerNorm(1, 4).eps_q)
    # Each selectable output width is a value of the hardware's out_bits input.
    assert tuple(b.value for b in OutBits) == formats.OUT_BITS


def declared_twice(root):
    """``(file, line, name)`` of every assignment or definition, outside hw/formats.py, of a
    public name of hw/formats.py or of a constant's name it is imported under
    (``import X as Y``; ``reference`` imports the float functions as ``gelu``/``silu``)."""
    trees = {path: ast.parse(path.read_text(), str(path))
             for folder in ("hw", "sw") for path in sorted((root / folder).rglob("*.py"))}
    names = set(formats.__all__)
    for tree in trees.values():
        names |= {alias.asname for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                  and (node.module or "").endswith("formats") for alias in node.names
                  if alias.asname and alias.asname.isupper()}
    found = []
    for path, tree in trees.items():
        if path == root / "hw" / "formats.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                targets = [node.name]
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                assigned = node.targets if isinstance(node, ast.Assign) else [node.target]
                targets = [n.id for target in assigned for n in ast.walk(target)
                           if isinstance(n, ast.Name)]
            else:
                continue
            found += [(str(path.relative_to(root)), node.lineno, name) for name in targets
                      if name in names]
    return found


def test_formats_are_declared_once():
    """hw/formats.py is the only definition of the hw/sw number formats and tables."""
    root = Path(__file__).resolve().parents[1]
    tree = ast.parse((root / "hw" / "formats.py").read_text())
    defined = {target.id for node in tree.body if isinstance(node, ast.Assign)
               for target in node.targets} | {node.name for node in tree.body
                                              if isinstance(node, ast.FunctionDef)}
    assert set(formats.__all__) == {name for name in defined if not name.startswith("_")}
    assert declared_twice(root) == []


def test_vector_units_config():
    cfg = VectorUnitsConfig(lanes=8, max_row=768, softmax=False)
    assert cfg.units == ("requantize", "gelu", "silu", "eltwise", "layernorm", "rmsnorm",
                         "rowquant")
    assert VectorUnitsConfig().softmax_max_row == 4096
    for kwargs, message in (({"lanes": 0}, "lanes must be an integer in 1..64"),
                            ({"max_row": 16385}, "max_row must be an integer in 1..16384"),
                            ({"softmax_max_row": 0}, "softmax_max_row must be an integer"),
                            ({"gelu": 1}, "gelu must be True or False")):
        with pytest.raises(ValueError, match=message):
            VectorUnitsConfig(**kwargs)


def _run_iterative(dut, pairs, apply, result):
    """Start ``dut`` once per input, wait until it is idle, collect ``result``."""
    outputs = []

    async def bench(ctx):
        for values in pairs:
            apply(ctx, values)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            await ctx.tick().until(~dut.busy)
            outputs.append(ctx.get(result))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return outputs


def test_divider_and_isqrt_random():
    rng = np.random.default_rng(3)
    # The norm unit's divider: 41-bit numerators, 16-bit divisors >= 2**15, 26-bit
    # quotients (2**41 - 1 over 2**15 is the largest quotient).
    dens = [2**15, 2**15, 2**16 - 1] + rng.integers(2**15, 2**16, 20).tolist()
    nums = [2**41 - 1, 2**40, 2**40] + rng.integers(0, 2**41, 20).tolist()
    divider = Divider(41, 16, 26)

    def apply_division(ctx, pair):
        ctx.set(divider.numerator, pair[0])
        ctx.set(divider.denominator, pair[1])

    quotients = _run_iterative(divider, list(zip(nums, dens)), apply_division,
                               divider.quotient)
    assert quotients == [n // d for n, d in zip(nums, dens)]

    values = [0, 1, 2**32 - 1, 2**30] + rng.integers(0, 2**32, 20).tolist()
    root = Isqrt(16)
    roots = _run_iterative(root, values, lambda ctx, v: ctx.set(root.value, v), root.root)
    assert roots == fixed.isqrt(np.array(values)).tolist()


@pytest.mark.parametrize("top", STREAMING_TOPS)
def test_streaming_latency(top):
    """A beat accepted in cycle t is offered on ``o`` in cycle t + latency + 2."""
    params, cases = unit_suite(top, 3)
    dut = build_top(top, **params)
    Fragment.get(dut, None)
    run, = simulate_amaranth(top, params, suite_jobs(cases[:1])[:1])
    assert run.delivered[0] - run.accepted[0] == dut.latency + 2
