"""Rung 2: Amaranth's simulator of the array, on the same vectors as the golden rung."""

import re

import numpy as np
import pytest
from amaranth.back import verilog

from systolic.hw.array import SystolicArray, array_latency, os_cycles, ws_cycles
from systolic.hw.dsp import DSP_WIDTH, PipelinedMultiplier, SynthesisPlatform
from systolic.sim import SimulationHang
from systolic.sim.amaranth_sim import simulate_array
from systolic.sim.vectors import ARRAY_SHAPES, array_cases, matmul_case
from systolic.sw.array_schedule import schedule_matmul
from systolic.sw.numerics import matmul_int8


def check_timing(schedule, run):
    """Total cycles and per-beat latency equal the formulas documented on SystolicArray."""
    rows, cols = schedule.rows, schedule.cols
    latency = array_latency(rows, cols)
    if schedule.dataflow == "ws":
        assert run.cycles == ws_cycles(rows, cols, schedule.tiles, schedule.tile_length)
        assert [d - a for d, a in zip(run.delivered, run.accepted["acts"])] == \
            [latency] * len(run.delivered)
    else:
        assert run.cycles == os_cycles(rows, cols, schedule.tiles, schedule.tile_length)
        lasts = [c for c, last in zip(run.accepted["slices"], schedule.slice_last) if last]
        assert run.delivered == [t + latency + s for t in lasts for s in range(rows)]


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("rows, cols", ARRAY_SHAPES)
def test_bit_exact_and_cycle_exact(rows, cols, dataflow):
    for k, a, b in array_cases(rows, cols):
        schedule = schedule_matmul(a, b, rows, cols, dataflow)
        run = simulate_array(schedule)
        assert np.array_equal(run.beats, schedule.expected), f"K={k}"
        assert np.array_equal(schedule.assemble(run.beats), matmul_int8(a, b)), f"K={k}"
        check_timing(schedule, run)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("rows, cols, seed", [(4, 4, 1), (3, 5, 2), (1, 1, 3)])
def test_random_backpressure_loses_nothing(rows, cols, dataflow, seed):
    a, b = matmul_case(seed, 2 * rows + 1, 3 * rows + 2, cols + 3)
    schedule = schedule_matmul(a, b, rows, cols, dataflow)
    run = simulate_array(schedule, out_stall=0.6, in_gap=0.4, seed=seed)
    assert np.array_equal(run.beats, schedule.expected)
    formula = (ws_cycles if dataflow == "ws" else os_cycles)(
        rows, cols, schedule.tiles, schedule.tile_length)
    assert run.cycles > formula  # the stalls really happened


@pytest.mark.parametrize("m, rows", [(2, 4), (4, 4), (9, 4)])
def test_ws_weight_loads_overlap_compute(m, rows):
    """Back to back WS tiles: no bubble when M >= rows, weight-load bound when M < rows."""
    a, b = matmul_case(m, m, 3 * rows, rows)
    schedule = schedule_matmul(a, b, rows, rows, "ws")
    run = simulate_array(schedule)
    acts = run.accepted["acts"]
    gaps = np.diff(acts)
    assert gaps.max() == (1 if m >= rows else rows - m + 1)


def test_missing_weights_is_reported_as_hang():
    a, b = matmul_case(5, 3, 8, 4)
    schedule = schedule_matmul(a, b, 4, 4, "ws")
    schedule.weight_beats = schedule.weight_beats[:4]  # the second tile's weights never come
    with pytest.raises(SimulationHang, match="no handshake"):
        simulate_array(schedule, timeout=50)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_unsigned_activations(dataflow):
    """uint8 activations (softmax probabilities) multiply as 0..255, not as -128..127."""
    a, b = matmul_case(11, 6, 9, 5, a_unsigned=True)
    assert a.max() == 255 and a.min() == 0
    schedule = schedule_matmul(a, b, 4, 3, dataflow, a_unsigned=True)
    run = simulate_array(schedule)
    assert np.array_equal(schedule.assemble(run.beats), matmul_int8(a, b, a_unsigned=True))
    assert not np.array_equal(matmul_int8(a, b, a_unsigned=True),
                              matmul_int8(a.view(np.int8), b))


#: Every multiplier built from LUTs, as ``synthesize(multipliers="lut")`` elaborates the
#: array: the WS PEs select the weight bank a cycle ahead and the multipliers register
#: partial products (``systolic.hw.dsp``).
LUTS = SynthesisPlatform("ecp5", lut_width=DSP_WIDTH)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("rows, cols, m, stall, seed", [
    (4, 4, 9, 0.0, 0), (4, 4, 2, 0.0, 1), (3, 5, 7, 0.5, 2), (1, 1, 3, 0.3, 3),
    (2, 3, 1, 0.0, 4), (8, 8, 17, 0.3, 5)])
def test_lut_multipliers_are_cycle_identical(rows, cols, m, stall, seed, dataflow,
                                            monkeypatch):
    """The array elaborated for LUT-built multipliers accepts, computes and delivers in
    exactly the cycles the generic one does, with the same results (back to back tiles,
    short tiles whose weights arrive just in time, stalls); so does the array with the
    first half of its PEs' multipliers in DSP blocks and the rest in LUTs (``lut_dsps``),
    DSP and LUT PEs side by side in a row and a column. The simulator cannot run the
    MULT18X18D primitive: here it is the generic multiplier, which test_dsp.py shows it
    equals."""
    assert "weight_sel" in verilog.convert(SystolicArray(2, 2, "ws"), platform=LUTS)
    a, b = matmul_case(seed, m, 3 * rows + 2, 2 * cols + 1)
    schedule = schedule_matmul(a, b, rows, cols, dataflow)
    generic = simulate_array(schedule, out_stall=stall, in_gap=stall, seed=seed)
    dsps = (rows * cols + 1) // 2

    def partial():  # one per elaboration: it counts the DSP blocks it grants
        return SynthesisPlatform("ecp5", lut_width=9, lut_dsps=dsps)

    text = verilog.convert(SystolicArray(rows, cols, dataflow), platform=partial())
    assert text.count("MULT18X18D #(") == dsps
    assert len(re.findall(r"reg .*\bpartial0\b", text)) == rows * cols - dsps
    monkeypatch.setattr(PipelinedMultiplier, "_mult18x18d", PipelinedMultiplier._registered)
    for platform in (LUTS, partial()):
        luts = simulate_array(schedule, out_stall=stall, in_gap=stall, seed=seed,
                              platform=platform)
        assert np.array_equal(luts.beats, schedule.expected)
        assert (luts.cycles, luts.accepted, luts.delivered) == \
            (generic.cycles, generic.accepted, generic.delivered)
        if not stall:
            check_timing(schedule, luts)


def test_lut_multipliers_unsigned_activations():
    a, b = matmul_case(12, 6, 9, 5, a_unsigned=True)
    schedule = schedule_matmul(a, b, 4, 3, "ws", a_unsigned=True)
    run = simulate_array(schedule, platform=LUTS)
    assert np.array_equal(schedule.assemble(run.beats), matmul_int8(a, b, a_unsigned=True))
