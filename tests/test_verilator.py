"""The Verilated accelerator (sim/verilator_backend.py) against the functional simulator: the
programs of test_accelerator.py, a matmul too large for the other RTL backends, hangs and
bad arguments; and against the Amaranth backend, whose host memory it times identically.

Three library builds (about 30 s of CPU each when build/verilator is cold), one per
configuration, each shared by the module. The configurations have no vector units: the
programs do not use them, and they make the Verilog, and the build, several times larger.
"""

import dataclasses

import numpy as np
import pytest

from systolic.hw.config import VECTOR_UNITS, HardwareConfig, VectorUnitsConfig
from systolic.sim import SimulationHang
from systolic.sim.amaranth_sim import AmaranthBackend
from systolic.sim.backends import create_backend
from systolic.sim.verilator_backend import VerilatorBackend
from systolic.sw.driver import Accelerator
from systolic.sw.numerics import matmul_int8
from systolic.sw.timeline import interval_rates, plot_timeline

from test_accelerator import (SMALL, check_error_programs, check_matmul,  # noqa: I001
                              check_state_persists, gemm_program, text_program)

NO_VECTOR = VectorUnitsConfig(**dict.fromkeys(VECTOR_UNITS, False))
#: test_accelerator's small configurations.
CONFIGS = [dataclasses.replace(config, vector=NO_VECTOR) for config in SMALL]
#: A wide bus (128-bit data: Verilator's multi-word ports) on the 8x8 array.
LARGE = HardwareConfig(rows=8, cols=8, dma_bytes=16, vector=NO_VECTOR)


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: f"{c.rows}x{c.cols}{c.dataflow}")
def config(request):
    return request.param


@pytest.fixture(scope="module")
def verilator(config):
    return VerilatorBackend(config)


def test_tiled_matmuls_and_errors(config, verilator):
    check_matmul(config, verilator, gemm_program(config, 9, 17, 7, seed=1))
    check_matmul(config, verilator, gemm_program(config, 1, 5, 3, seed=2, a_unsigned=True))
    # Odd sizes spanning many tiles of both small arrays.
    check_matmul(config, verilator, gemm_program(config, 23, 41, 19, seed=4))
    check_error_programs(config, verilator)


def test_on_chip_state_persists_between_runs(config, verilator):
    check_state_persists(config, verilator)


def test_hang_raises_and_the_next_run_works(config, verilator):
    program = gemm_program(config, 9, 17, 7, seed=6)
    saved, verilator.max_cycles = verilator.max_cycles, 50
    try:
        with pytest.raises(SimulationHang, match="within 50 cycles"):
            verilator.run(*program[:3])
    finally:
        verilator.max_cycles = saved
    check_matmul(config, verilator, program)


def test_cycles_and_stalls_match_amaranth():
    """Same host-memory timing as the Amaranth backend, so every counter agrees, the cycle
    and stall counts included."""
    config = CONFIGS[0]
    memory, prog_addr, count, _, _ = gemm_program(config, 5, 11, 6, seed=8)
    expected = AmaranthBackend(config).run(memory, prog_addr, count)
    result = create_backend("verilator", config).run(memory, prog_addr, count)
    assert result.counters == expected.counters
    assert np.array_equal(result.memory, expected.memory)


def test_large_matmul():
    """64x96x80 on an 8x8 array: about 20k cycles, minutes on the other RTL backends."""
    backend = VerilatorBackend(LARGE)
    result = check_matmul(LARGE, backend, gemm_program(LARGE, 64, 96, 80, seed=5))
    assert result.counters["macs"] == 64 * 96 * 80  # every dimension a multiple of 8
    # Unsigned activations, a ragged shape, on the same model.
    check_matmul(LARGE, backend, gemm_program(LARGE, 37, 70, 45, seed=9, a_unsigned=True))


def test_counter_samples_observe_without_changing_the_run():
    """Counters sampled every 1000 cycles: the same results and final counters as a run
    without sampling, one sample per 1000 cycles, every counter non-decreasing and at most
    its final value, and the cycle counter near each sampling point."""
    memory, prog_addr, count, _, _ = gemm_program(LARGE, 64, 96, 80, seed=5)
    plain = VerilatorBackend(LARGE).run(memory, prog_addr, count)
    assert plain.samples is None
    sampled = VerilatorBackend(LARGE, sample_every=1000).run(memory, prog_addr, count)
    assert sampled.counters == plain.counters
    assert np.array_equal(sampled.memory, plain.memory)
    samples = sampled.samples.astype(np.int64)
    assert samples.shape == (plain.cycles // 1000, len(plain.counters))
    final = np.array(list(plain.counters.values()))
    assert np.all(np.diff(samples, axis=0) >= 0) and np.all(samples <= final)
    cycles = samples[:, list(plain.counters).index("cycles")]
    points = 1000 * np.arange(1, len(samples) + 1)
    assert np.all((cycles >= points - 20) & (cycles <= points + 20))  # START's write skew
    assert samples[-1, list(plain.counters).index("macs")] > 0


def test_vcd_dump(tmp_path):
    """A library built with tracing dumps every cycle: the clock toggles as often as the
    backend counts cycles. (The tiny profile: tracing makes the build several times slower,
    and its Verilog is the smallest.)"""
    config = HardwareConfig.profile("tiny")
    vcd = tmp_path / "run.vcd"
    backend = VerilatorBackend(config, vcd=vcd)
    memory, prog_addr, count, c_addr, expected = gemm_program(config, 3, 5, 4, seed=11)
    result = check_matmul(config, backend, (memory, prog_addr, count, c_addr, expected))
    text = vcd.read_text()
    assert "$enddefinitions" in text and " clk $end" in text
    times = [int(line[1:]) for line in text.splitlines() if line.startswith("#")]
    assert max(times) == 2 * backend.total_cycles - 1 > 2 * result.cycles


def test_bad_arguments_raise():
    config = CONFIGS[0]
    with pytest.raises(TypeError, match="config must be a HardwareConfig"):
        VerilatorBackend(config.to_dict())
    with pytest.raises(ValueError, match="read_latency"):
        VerilatorBackend(config, read_latency=0)
    with pytest.raises(ValueError, match="sample_every"):
        VerilatorBackend(config, sample_every=10)


def test_run_in_place(config, verilator):
    memory, prog_addr, count, c_addr, expected = gemm_program(config, 4, 6, 5, seed=10)
    result = verilator.run(memory, prog_addr, count, in_place=True)
    assert result.memory is memory
    m, n = expected.shape
    assert np.array_equal(memory[c_addr:c_addr + 4 * m * n].view(np.int32).reshape(m, n),
                          expected)
    with pytest.raises(TypeError, match="in_place needs"):
        verilator.run(memory[::2], prog_addr, count, in_place=True)


def test_bad_run_arguments_raise(config, verilator):
    memory, prog_addr, count = text_program("fence")
    with pytest.raises(ValueError, match="memory must be one-dimensional"):
        verilator.run(memory.reshape(64, 64), prog_addr, count)
    with pytest.raises(ValueError, match="prog_addr"):
        verilator.run(memory, 2**config.addr_width, count)
    with pytest.raises(ValueError, match="count"):
        verilator.run(memory, prog_addr, -1)


def test_timeline_of_a_matmul(tmp_path):
    """Accelerator(..., sample_every=N): the run's timeline ends at its counters, its
    intervals' rates stay within the peaks and average to the run's MAC rate, and the plot
    is written."""
    acc = Accelerator(LARGE, "verilator", sample_every=500)
    rng = np.random.default_rng(12)
    a = rng.integers(-128, 128, (64, 96), dtype=np.int8)
    b = rng.integers(-128, 128, (96, 80), dtype=np.int8)
    assert np.array_equal(acc.matmul(a, b), matmul_int8(a, b))
    run = acc.last_run
    assert not run.timeline[0].any() and list(run.timeline[-1]) == list(run.counters.values())
    rates = interval_rates(run.timeline, LARGE)
    assert np.all((rates["array"] >= 0) & (rates["array"] <= 1))
    assert np.all((rates["bus"] >= 0) & (rates["bus"] <= 1))
    cycles = np.diff(np.concatenate([[0], rates["cycle"]]))
    assert np.isclose((rates["array"] * cycles).sum() * 64, run.counters["macs"])
    binned = interval_rates(run.timeline, LARGE, bins=7)  # equal spans, interpolated
    assert len(binned["array"]) == 7
    assert np.isclose((binned["array"] * run.cycles / 7).sum() * 64, run.counters["macs"])
    assert plot_timeline(run.timeline, LARGE, tmp_path / "t.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="sample_every and vcd need the verilator backend"):
        Accelerator(LARGE, "functional", sample_every=500, vcd=tmp_path / "x.vcd")
