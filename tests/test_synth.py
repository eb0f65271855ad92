"""`systolic synth`: real yosys + nextpnr runs (from PyPI) on a small block; the fit
parameters and the tiny profile."""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from click.testing import CliRunner

from systolic.hw.config import HardwareConfig
from systolic.hw.dsp import PipelinedMultiplier
from systolic.hw.harness import SynthHarness, fold_widths
from systolic.hw.vector import kept_copy
from systolic.sim.backends import create_backend
from systolic.sim.functional import FunctionalSimulator
from systolic.sw.cli import main

from test_accelerator import (check_error_programs, check_matmul,  # noqa: I001
                              check_same, check_state_persists, gemm_program)


def test_synth_small_array_on_ice40(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # results are cached under ./build/synth
    args = ["synth", "--target", "ice40-up5k", "--top", "array", "--rows", "1", "--cols", "2",
            "--json"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    result = json.loads(first.output)
    assert {"luts", "ffs", "dsps", "brams", "fmax_mhz"} <= set(result)
    assert result["dsps"] == 2 and result["multipliers"] == "dsp"  # one multiplier per PE
    assert 0 < result["luts"] < 5280 and result["ffs"] > 0 and 10 < result["fmax_mhz"] < 500
    # Logic cells pair a LUT with a flip-flop: at least as many as either, at most both.
    assert max(result["luts"], result["ffs"]) <= result["logic_cells"] \
        <= result["luts"] + result["ffs"] + result["harness_ffs"]
    assert not result["cached"]
    again = json.loads(CliRunner().invoke(main, args).output)
    assert again["cached"] and again["fmax_mhz"] == result["fmax_mhz"]


class _Scrambler(wiring.Component):
    """A 300-bit output register stepped by a multiply-add of a 3-bit input."""

    x: In(3)
    y: Out(300)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self.y * 5 + self.x + 1)
        return m


@pytest.mark.parametrize("capture", [True, False])
def test_harness_serial_out_is_the_parity_of_the_core_outputs(capture):
    core = _Scrambler()
    harness = SynthHarness(core, capture=capture)
    assert fold_widths(300) == [19, 2, 1] and fold_widths(1) == []
    assert harness.harness_ffs == harness.input_bits + 300 * capture + 19 + 2 + 1
    # The output register (with capture), then the tree's levels.
    latency = capture + len(fold_widths(300))
    rng = np.random.default_rng(3)
    outputs, serial = [], []

    async def testbench(ctx):  # the harness's clock is its `clk` pin: toggled here
        for _ in range(60):
            ctx.set(harness.serial_in, int(rng.integers(2)))
            ctx.set(harness.clk, 1)
            await ctx.delay(1e-6)
            outputs.append(ctx.get(core.y))
            serial.append(ctx.get(harness.serial_out))
            ctx.set(harness.clk, 0)
            await ctx.delay(1e-6)

    sim = Simulator(harness)
    sim.add_testbench(testbench)
    sim.run()
    parities = [bin(y).count("1") & 1 for y in outputs]
    # The core runs (between the resets the random chain gives it) and both parities occur.
    assert len(set(outputs)) > 10 and set(parities[:-latency]) == {0, 1}
    assert serial[latency:] == parities[:-latency]


def test_synth_rejects_unknown_target_and_top():
    runner = CliRunner()
    assert runner.invoke(main, ["synth", "--target", "virtex7"]).exit_code == 2
    bad_top = runner.invoke(main, ["synth", "--target", "ecp5-85k", "--top", "cpu"])
    assert bad_top.exit_code == 2 and "top must be one of" in bad_top.output


def test_synth_profile_option_synthesizes_that_configuration(monkeypatch):
    from systolic.sw import synth

    seen = []

    def fake_synthesize(component, target, seed):
        seen.append((component.config, target))
        return {"luts": 1, "ffs": 2, "dsps": 0, "brams": 0, "fmax_mhz": 30.0,
                "multipliers": "dsp", "cached": False}

    monkeypatch.setattr(synth, "synthesize", fake_synthesize)
    result = CliRunner().invoke(main, ["synth", "--target", "ice40-up5k", "--profile", "tiny",
                                       "--json"])
    assert result.exit_code == 0, result.output
    assert seen == [(HardwareConfig.profile("tiny"), "ice40-up5k")]
    assert json.loads(result.output)["params"] == HardwareConfig.profile("tiny").to_dict()


def test_profiles_and_fit_parameters_are_validated():
    tiny = HardwareConfig.profile("tiny")
    assert (tiny.rows, tiny.cols, tiny.vector.units, tiny.queue_depth) == (2, 2, (), 0)
    assert HardwareConfig.profile("tiny", rows=1).rows == 1
    assert HardwareConfig.profile("default") == HardwareConfig()
    with pytest.raises(ValueError, match="profile must be one of"):
        HardwareConfig.profile("huge")
    for name, value in (("queue_depth", -1), ("queue_depth", 3), ("queue_depth", 0.0),
                        ("in_flight", 1), ("in_flight", 6), ("dma_outstanding", 0),
                        ("fetch_words", 0),
                        ("fetch_words", 3), ("decode_stages", 0), ("decode_stages", 5),
                        ("decode_stages", 2.0), ("counter_width", 31),
                        ("counter_width", 65), ("counter_width", 32.0),
                        ("queue_ram_width", -1), ("queue_ram_width", 4097),
                        ("queue_ram_width", True), ("pc_width", 7), ("pc_width", 33),
                        ("pc_width", 16.0), ("pc_width", True), ("perf_counters", 1),
                        ("perf_counters", "no"), ("compute_read_depth", 2),
                        ("compute_read_depth", 5), ("compute_read_depth", 3.0),
                        ("compute_read_depth", True), ("result_stages", 0),
                        ("result_stages", 3), ("result_stages", 1.0), ("result_stages", True),
                        ("read_stages", 0), ("read_stages", 3), ("read_stages", 2.0),
                        ("read_stages", True), ("aligned_repack", 1)):
        with pytest.raises(ValueError, match=name):
            HardwareConfig(**{name: value})
    # A line per cycle needs the matmul engine's readers read_stages + 2 lines ahead.
    assert (tiny.read_stages, HardwareConfig().read_stages) == (1, 2)
    with pytest.raises(ValueError, match=r"compute_read_depth \(3\) must be at least "
                                         r"read_stages \+ 2 \(4\)"):
        HardwareConfig.profile("tiny", read_stages=2)
    assert HardwareConfig.profile("tiny", read_stages=2, compute_read_depth=4).read_stages == 2
    assert HardwareConfig.from_dict(HardwareConfig().to_dict()) == HardwareConfig()
    # AlignedRepacker's lines and beats must divide one another.
    for rows, cols in ((3, 2), (2, 3), (4, 6)):
        with pytest.raises(ValueError, match="aligned_repack needs power-of-two line widths"):
            HardwareConfig(rows=rows, cols=cols, aligned_repack=True)
    assert HardwareConfig.profile("tiny").aligned_repack and not HardwareConfig().aligned_repack


def test_queue_ram_width_puts_the_wide_queues_in_block_ram():
    """``queue_ram_width``: exactly the queues at least that wide (load and store units,
    line readers, the systolic array's output queue, the fetch buffer) ask for block RAM
    (the default asks for none), and the array's output queue does in every configuration;
    see test_tiny_profile_runs_the_accelerator_programs and
    tests/test_transfer_units.py for their behaviour."""
    from amaranth.back import verilog

    from systolic.hw.accelerator import AcceleratorTop
    from systolic.hw.compute import MatmulEngine, transparent_accumulator
    from systolic.hw.memory import StreamQueue

    def block_queues(config, top=AcceleratorTop):
        widths = []
        original = StreamQueue.elaborate

        def elaborate(self, platform):
            if self.block_ram:
                widths.append(len(self.i.payload.as_value()))
            return original(self, platform)

        StreamQueue.elaborate = elaborate
        try:
            text = verilog.convert(top(config), emit_src=False)
        finally:
            StreamQueue.elaborate = original
        # (The fetch unit keeps its buffer of 128-bit words in block RAM too.)
        fetch = int(config.queue_in_block_ram(128)) if top is AcceleratorTop else 0
        assert text.count('ram_style = "block"') == len(widths) + fetch
        # (So do the banks of the memories whose read ports are not transparent.)
        banks = config.spad_banks + (0 if transparent_accumulator(config)
                                     else config.acc_banks) if top is AcceleratorTop else 0
        assert text.count("no_rw_check") == len(widths) + banks
        return sorted(widths)

    tiny = HardwareConfig.profile("tiny")
    # Bus beats of load and store (with aligned_repack no line queues), the matmul
    # engine's two scratchpad line readers (2-byte lines and a 2-bit tag), the array's
    # result rows (2 x 32 bits), the store unit's line reader (8-byte lines and a 5-bit tag)
    # and the load and store lines.
    assert block_queues(tiny) == [18, 18, 37, 37, 64, 69]
    general = {"aligned_repack": False}
    assert block_queues(HardwareConfig.profile("tiny", **general)) \
        == [18, 18, 37, 37, 64, 69, 69, 70]
    assert block_queues(HardwareConfig.profile("tiny", **general, queue_ram_width=60)) \
        == [64, 69, 69, 70]
    assert block_queues(HardwareConfig.profile("tiny", **general, queue_ram_width=65)) \
        == [64, 69, 69, 70]
    assert block_queues(HardwareConfig.profile("tiny", queue_ram_width=0)) == [64]
    assert HardwareConfig().queue_ram_width == 0
    assert tiny.queue_in_block_ram(18) and not tiny.queue_in_block_ram(17)
    # Whatever queue_ram_width says, the array's output queue (cols x 32-bit rows) is in
    # block RAM: the default 4x4 array, an 8x8 one and a 3-column one.
    assert block_queues(HardwareConfig(), MatmulEngine) == [128]
    assert block_queues(HardwareConfig(rows=8, cols=8), MatmulEngine) == [256]
    assert block_queues(HardwareConfig(rows=4, cols=3), MatmulEngine) == [96]


def test_stream_queue_slices_keep_their_own_control(tmp_path):
    """yosys keeps each slice's control flip-flops (two one-bit pointers, a two-bit level,
    the ready and valid flags: 6 for depth 3) rather than merging the slices' identical
    state into one; the payload's flip-flops are the same either way. (Behaviour:
    tests/test_transfer_units.py::test_sliced_and_idle_zero_stream_queues_are_the_queue.)"""
    from systolic.hw.memory import StreamQueue
    from systolic.sw.synth import synthesize
    ffs = {slices: synthesize(StreamQueue(21, 3, slices=slices), "ecp5-85k", place=False,
                              cache=tmp_path)["ffs"] for slices in (1, 3)}
    assert ffs[1] == 21 + 6 and ffs[3] == 21 + 3 * 6


class _Copies(wiring.Component):
    """Two registers of the same 5-bit input, one feeding an output and the other the
    inverse of it: plain, or :func:`kept_copy` s."""

    def __init__(self, kept):
        self.kept = kept
        super().__init__({"d": In(5), "a": Out(5), "b": Out(5)})

    def elaborate(self, platform):
        m = Module()
        for name in ("a", "b"):
            if self.kept:
                copy = kept_copy(m, self.d, f"{name}_copy")
            else:
                copy = Signal(5, name=f"{name}_copy")
                m.d.sync += copy.eq(self.d)
            # (outputs that differ: the harness's registers of equal outputs merge too)
            m.d.comb += getattr(self, name).eq(copy if name == "a" else ~copy)
        return m


def test_kept_copies_stay_apart_on_ecp5(tmp_path):
    """yosys merges two registers of the same value into one; ECP5 synthesis keeps
    kept_copy's apart (the ``keep`` attribute on the register's cell)."""
    from systolic.sw.synth import synthesize
    ffs = {kept: synthesize(_Copies(kept), "ecp5-85k", place=False,
                            cache=tmp_path)["ffs"] for kept in (False, True)}
    assert ffs == {False: 5, True: 10}


@pytest.mark.parametrize("backend", ["amaranth", "verilator"])
def test_tiny_profile_runs_the_accelerator_programs(backend):
    """The tiny profile's reduced fetch, decode and queues run test_accelerator's programs
    (tiled matmuls, every error, state kept between runs) exactly as the functional
    simulator does (memories as small as test_accelerator's, which its error programs
    need)."""
    config = HardwareConfig.profile("tiny", spad_lines=64, acc_lines=32)
    rtl, functional = create_backend(backend, config), FunctionalSimulator(config)
    result = check_matmul(config, rtl, gemm_program(config, 9, 17, 7, seed=1), functional)
    # perf_counters=False: the RTL counts cycles alone (check_same compares no counter).
    assert set(result.counters) == {"cycles"} and result.cycles > 0
    check_matmul(config, rtl, gemm_program(config, 1, 5, 3, seed=2, a_unsigned=True),
                 functional)
    check_error_programs(config, rtl, functional)
    check_state_persists(config, rtl)


def test_pc_width_bounds_programs():
    """``pc_width``: the tiny profile's 16-bit program indices; a program of
    ``max_program`` words runs and an error in its last word names it, on the functional
    simulator and the RTL alike; the driver and the compiler raise ProgramTooLongError
    for a longer one (never a silently truncated PROG_COUNT)."""
    from systolic.hw.config import ProgramTooLongError
    from systolic.hw.csr import ErrorCode
    from systolic.sw.assembler import assemble
    from systolic.sw.compiler.gemm import compile_gemm
    from systolic.sw.driver import Accelerator, HostImage, _program_bytes

    assert HardwareConfig().pc_width == 32 and HardwareConfig().max_program == 2**32 - 1
    tiny = HardwareConfig.profile("tiny")
    assert (tiny.pc_width, tiny.max_program) == (16, 65535)
    config = HardwareConfig.profile("tiny", spad_lines=64, acc_lines=32, pc_width=8)
    assert config.max_program == 255
    # 254 FENCEs, then a LOAD past the scratchpad at index 254 (all eight index bits set
    # but the lowest).
    words = assemble("fence\n" * 254 + "load mem=spad sram_addr=60 rows=5 row_bytes=4 "
                     "dram_addr=0x2000")
    memory = np.zeros(8192, dtype=np.uint8)
    memory[:16 * len(words)] = _program_bytes(words)
    reference = FunctionalSimulator(config).run(memory, 0, len(words))
    assert (reference.error, reference.error_pc) == (ErrorCode.SPAD_RANGE, 254)
    check_same(reference, create_backend("amaranth", config).run(memory, 0, len(words)))
    halted = assemble("fence\n" * 254 + "halt")
    memory[:16 * len(halted)] = _program_bytes(halted)
    assert create_backend("amaranth", config).run(memory, 0, 255).error == ErrorCode.NONE

    acc = Accelerator(config)
    with pytest.raises(ProgramTooLongError, match="256 instructions exceeds the 255"):
        acc.run_program(words + halted[-1:], HostImage())
    with pytest.raises(ProgramTooLongError) as info:
        acc.run_image(None, 0, 300)
    assert (info.value.count, info.value.max_program) == (300, 255)
    a, b = np.ones((16, 16), np.int8), np.ones((16, 16), np.int8)
    with pytest.raises(ProgramTooLongError):
        compile_gemm(config, a, b, HostImage())  # 775 words on 2 x 2
    assert np.array_equal(Accelerator(tiny).matmul(a, b), np.full((16, 16), 16))


def test_compute_read_depth_three_on_the_tiny_profile():
    """``compute_read_depth=3`` (the tiny profile): the matmul engine's scratchpad readers
    read three lines ahead; a GEMM gives the same result in the same cycles as with 4."""
    import os
    import sys
    sys.path.insert(0, os.path.dirname(__file__))
    from test_accelerator import check_matmul, gemm_program

    from systolic.hw.memory import LineReader
    from systolic.sim.backends import create_backend

    assert HardwareConfig.profile("tiny").compute_read_depth == 3
    assert HardwareConfig().compute_read_depth == LineReader.DEPTH == 4
    runs = []
    for depth in (3, 4):
        config = HardwareConfig.profile("tiny", spad_lines=64, acc_lines=32,
                                        compute_read_depth=depth)
        result = check_matmul(config, create_backend("amaranth", config),
                              gemm_program(config, 5, 9, 3, seed=2))
        runs.append((result.cycles, bytes(result.memory)))
    assert runs[0] == runs[1]


def test_perf_counters_absent_on_the_tiny_profile():
    """``perf_counters=False`` (the tiny profile): HW_INFO bit 23 is set, the counters but
    CYCLES read 0 however they are driven, the RTL backends report cycles alone and the
    driver leaves instructions and MACs uncounted (None); sampling them is refused."""
    from amaranth.lib import wiring as _wiring

    from systolic.hw.axi import RESP_OKAY, AXI4LiteSlave
    from systolic.hw.csr import COUNTERS, NO_PERF_COUNTERS, present_counters, register
    from systolic.hw.registers import CSR_ADDR_WIDTH, RegisterBlock, hw_info
    from systolic.sim.axi_models import AXI4LiteMaster
    from systolic.sim.verilator_backend import VerilatorBackend
    from systolic.sw.driver import Accelerator

    tiny = HardwareConfig.profile("tiny")
    assert not tiny.perf_counters and HardwareConfig().perf_counters
    assert hw_info(tiny) & NO_PERF_COUNTERS and not hw_info(HardwareConfig()) & NO_PERF_COUNTERS
    assert present_counters(hw_info(tiny)) == ["CYCLES"]
    assert present_counters(hw_info(HardwareConfig())) == list(COUNTERS)

    m = Module()
    m.submodules.slave = slave = AXI4LiteSlave(CSR_ADDR_WIDTH, 32)
    m.submodules.regs = regs = RegisterBlock(tiny)
    _wiring.connect(m, slave.regs, regs.bus)
    master = AXI4LiteMaster(slave.bus)
    seen = {}

    async def bench(ctx):
        for index in range(len(COUNTERS)):
            ctx.set(regs.counters[index], 0x5_0000_0007)
        for name in COUNTERS:
            expected = (7, 5) if name == "CYCLES" else (0, 0)
            low = await master.read(ctx, register(f"{name}_LO").offset)
            high = await master.read(ctx, register(f"{name}_HI").offset)
            assert (low, high) == ((expected[0], RESP_OKAY), (expected[1], RESP_OKAY)), name
        seen["info"] = await master.read(ctx, register("HW_INFO").offset)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["info"] == (hw_info(tiny), RESP_OKAY)

    a, b = np.ones((3, 5), np.int8), np.ones((5, 2), np.int8)
    acc = Accelerator(tiny, "amaranth")
    assert np.array_equal(acc.matmul(a, b), np.full((3, 2), 5))
    assert acc.last_run.cycles > 0 and acc.last_run.macs is None
    assert acc.last_run.instructions is None and set(acc.last_run.counters) == {"cycles"}
    with pytest.raises(ValueError, match="sample_every needs the performance counters"):
        VerilatorBackend(tiny, sample_every=256)


class _Multipliers(wiring.Component):
    """Two 12x10 PipelinedMultipliers (``wide0``, ``wide1``), a plain registered 12x12 ``*``
    (not a PipelinedMultiplier: the flow's own $mul selection places it) and four 9x8
    PipelinedMultipliers (``narrow2`` ... ``narrow5``), each with operands of its own."""

    SHAPES = [(unsigned(12), unsigned(10))] * 2 + [(signed(9), signed(8))] * 4

    def __init__(self):
        members = {}
        for i, (a, b) in enumerate(self.SHAPES + [(unsigned(12), unsigned(12))]):
            members.update({f"a{i}": In(a), f"b{i}": In(b), f"p{i}": Out(24)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for i, (a, b) in enumerate(self.SHAPES):
            multiplier = PipelinedMultiplier(a, b, split=True)
            m.submodules[f"{'wide' if a.width > 9 else 'narrow'}{i}"] = multiplier
            m.d.comb += [multiplier.a.eq(getattr(self, f"a{i}")),
                         multiplier.b.eq(getattr(self, f"b{i}")),
                         getattr(self, f"p{i}").eq(multiplier.p)]
        plain = len(self.SHAPES)
        m.d.sync += getattr(self, f"p{plain}").eq(getattr(self, f"a{plain}") *
                                                  getattr(self, f"b{plain}"))
        return m


@pytest.mark.parametrize("top, available, dsp_modules, lut_multipliers", [
    # 3 DSP blocks for the 12-bit multipliers, 2 of the 4 9x8 ones: the first two.
    ("multipliers", 5, ["narrow2", "narrow3", "wide0", "wide1"], {"core.narrow* (9x8)": 2}),
    # Not even the 12-bit ones fit: the two PipelinedMultipliers of them get the 2 blocks
    # (the plain one at that width goes to LUTs, the flow only selects wider $mul cells).
    ("multipliers", 2, ["wide0", "wide1"], {"core.narrow* (9x8)": 4, "core (12x12)": 1}),
    # The 2x3 array with 4 blocks: PEs (0, 0), (0, 1), (0, 2), (1, 0) keep them.
    ("array", 4, ["multiplier"] * 4, {"core.pe_*_*.multiplier (9x8)": 2}),
])
def test_too_few_dsp_blocks_fill_them_with_the_narrowest_multipliers(
        top, available, dsp_modules, lut_multipliers, tmp_path, monkeypatch):
    """A design that needs more DSP blocks than the device has: the multipliers wider than
    the threshold width keep theirs, and of those at the threshold width the first in
    elaboration order take the blocks left (never more than there are); the others, and
    only they, are built from LUTs and reported as such (yosys, a few seconds each)."""
    from systolic.hw.array import SystolicArray
    from systolic.sw import synth

    name = f"ecp5-{available}-dsps"
    monkeypatch.setitem(synth.TARGETS, name, dataclasses.replace(
        synth.TARGETS["ecp5-25k"], name=name, dsps_available=available))
    component = _Multipliers() if top == "multipliers" else SystolicArray(2, 3, "ws")
    result = synth.synthesize(component, name, place=False, cache=tmp_path)
    assert result["dsps"] == available and result["multipliers"] == "mixed"
    assert result["lut_multipliers"] == lut_multipliers
    text = (Path(result["cache_dir"]) / "top.v").read_text()
    modules = [chunk.split(None, 1)[0].split(".")[-1] for chunk in
               text.split("\nmodule ")[1:] if "MULT18X18D" in chunk]
    assert sorted(modules) == dsp_modules
    if top == "array":
        dsp_pes = re.findall(r"module \\synth_top\.core\.(pe_\d_\d)\.multiplier\b[^;]*;"
                             r"(?:(?!endmodule).)*MULT18X18D", text, re.S)
        assert dsp_pes == ["pe_0_0", "pe_0_1", "pe_0_2", "pe_1_0"]


def test_unplaceable_design_is_reported_as_not_fitting(tmp_path, monkeypatch):
    """nextpnr failing to place a design whose cells are all within the device's counts is
    a design that does not fit (naming the logic cells), not a tool failure; any other
    nextpnr failure still raises."""
    from systolic.sw import synth

    def fake_run(log_text):
        def run(command, cwd, log):
            (cwd / log).write_text(log_text)
            raise synth.SynthesisError("nextpnr failed")
        return run

    utilisation = ("Info: Device utilisation:\n"
                   "Info: \t         ICESTORM_LC:    5217/   5280    98%\n"
                   "Info: \t        ICESTORM_RAM:      29/     30    96%\n")
    stat = "     3413 SB_LUT4\n     2322 SB_DFF\n"
    target = synth.TARGETS["ice40-up5k"]
    monkeypatch.setattr(synth, "_run", fake_run(
        utilisation + "ERROR: Unable to find legal placement for all cells, design is "
        "probably at utilisation limit.\n"))
    result = synth._place(target, tmp_path, stat, 1)
    assert not result["fits"] and result["fmax_mhz"] is None
    assert result["overused"] == ["ICESTORM_LC (no legal placement for 5217 of 5280)"]
    assert result["logic_cells"] == 5217 and result["luts"] == 3413
    monkeypatch.setattr(synth, "_run", fake_run(utilisation + "ERROR: something else\n"))
    with pytest.raises(synth.SynthesisError):
        synth._place(target, tmp_path, stat, 1)


def test_netlist_is_the_mapped_design_synthesize_places(tmp_path, monkeypatch):
    """``netlist`` leaves the design as ``synthesize`` maps it (the DSP blocks filled) in
    ``top.json`` for other tools (benchmarks/placement.py), with yosys' statistics."""
    from systolic.sw import synth

    monkeypatch.setitem(synth.TARGETS, "ecp5-5-dsps", dataclasses.replace(
        synth.TARGETS["ecp5-25k"], name="ecp5-5-dsps", dsps_available=5))
    stat = synth.netlist(_Multipliers(), "ecp5-5-dsps", tmp_path / "work")
    cells = json.loads((tmp_path / "work" / "top.json").read_text())["modules"]["synth_top"][
        "cells"]
    kinds = [cell["type"] for cell in cells.values()]
    assert kinds.count("MULT18X18D") == 5
    assert re.search(r"^\s+5\s+MULT18X18D\s*$", stat, re.M)
    result = synth.synthesize(_Multipliers(), "ecp5-5-dsps", place=False, cache=tmp_path)
    assert result["luts"] == sum(weight * kinds.count(kind)
                                 for kind, weight in synth.TARGETS["ecp5-5-dsps"].stat_luts)
    assert result["ffs"] + result["harness_ffs"] == kinds.count("TRELLIS_FF")
