"""Generation of the vector units: Verilog that Icarus and Verilator accept, parameter
validation, the vector-unit config, number formats and tables equal to the golden models',
and the iterative divider and square root."""

import gc
import importlib

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator
from click.testing import CliRunner

from systolic.hw import config, norm, pwl, rowquant, softmax
from systolic.hw.config import VectorUnitsConfig
from systolic.hw.vector import Divider, Isqrt
from systolic.hw.verilog import TOPS, build_top
from systolic.sim.unit_stimulus import (ROW_TOPS, STREAMING_TOPS, simulate_amaranth,
                                        suite_jobs, unit_suite)
from systolic.sw.cli import main
from systolic.sw.numerics import fixed

from test_verilog import check_tools_accept, write_verilog

UNIT_TOPS = STREAMING_TOPS + ROW_TOPS
# The numerics package re-exports functions under some module names: import the modules.
golden_gelu, golden_layernorm, golden_norm, golden_pwl, golden_rmsnorm, golden_rowquant, \
    golden_silu, golden_softmax = (
        importlib.import_module(f"systolic.sw.numerics.{name}") for name in
        ("gelu", "layernorm", "norm", "pwl", "rmsnorm", "rowquant", "silu", "softmax"))
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
                                        ("rmsnorm", 16384), ("rowquant", 65536)])
def test_bad_max_row(top, limit):
    for max_row in (0, limit + 1, 8.5):
        with pytest.raises(ValueError, match=f"max_row must be an integer in 1..{limit}"):
            build_top(top, max_row=max_row)
    gc.collect()


@unused_ok
def test_pwl_bad_table():
    with pytest.raises(ValueError, match="knots must have 257 entries"):
        pwl.PiecewiseLinear(2, (0,) * 256, range_log2=3, seg_log2=4)
    gc.collect()


def test_every_unit_has_a_top():
    assert set(UNIT_TOPS) <= set(TOPS)
    assert set(config.VECTOR_UNITS) == {"requantize", "softmax", "gelu", "silu", "eltwise",
                                        "layernorm", "rmsnorm", "rowquant"}


def test_formats_and_tables_match_the_golden_models():
    assert config.MANT_WIDTH == fixed.MANT_BITS + 1
    assert 2**config.SHIFT_WIDTH > fixed.MAX_SHIFT
    assert config.SOFTMAX_MAX_ROW == golden_softmax.MAX_ROW
    assert config.NORM_MAX_ROW == golden_norm.MAX_NORM_DIM
    assert softmax.EXP_TABLE == tuple(golden_softmax.EXP_TABLE.tolist())
    assert (softmax.EXP_FRAC_BITS, softmax.EXP_ONE_BITS, softmax.PROB_BITS,
            softmax.EXP_ZERO_FROM) == (golden_softmax.EXP_FRAC_BITS,
                                       golden_softmax.EXP_ONE_BITS, golden_softmax.PROB_BITS,
                                       golden_softmax.EXP_ZERO_FROM)
    assert pwl.gelu_knots() == tuple(golden_gelu.GELU_TABLE.knots.tolist())
    assert pwl.silu_knots() == tuple(golden_silu.SILU_TABLE.knots.tolist())
    for table, range_log2 in ((golden_gelu.GELU_TABLE, pwl.GELU_RANGE_LOG2),
                              (golden_silu.SILU_TABLE, pwl.SILU_RANGE_LOG2)):
        assert (table.range_log2, table.seg_log2) == (range_log2, pwl.SEG_LOG2)
    assert pwl.TABLE_FRAC_BITS == golden_pwl.TABLE_FRAC_BITS
    assert (rowquant.RECIP_BITS, rowquant.QMAX, rowquant.MANT_BITS) == (
        golden_rowquant.RECIP_BITS, fixed.QMAX, fixed.MANT_BITS)
    assert (norm.PRESCALE_BITS, norm.INV_BITS, 2**(norm.EPS_BITS - 1)) == (
        golden_norm.PRESCALE_BITS, golden_norm.INV_BITS, golden_norm.EPS_MAX)
    assert norm.LAYERNORM_Z_FRAC_BITS == golden_layernorm.Z_FRAC_BITS
    assert norm.RMSNORM_Z_FRAC_BITS == golden_rmsnorm.Z_FRAC_BITS


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
