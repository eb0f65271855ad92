"""`systolic synth`: real yosys + nextpnr runs (from PyPI) on a small block; the fit
parameters and the tiny profile."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from systolic.hw.config import HardwareConfig
from systolic.sw.cli import main
from systolic.sw.driver import Accelerator


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
    assert not result["cached"]
    again = json.loads(CliRunner().invoke(main, args).output)
    assert again["cached"] and again["fmax_mhz"] == result["fmax_mhz"]


def test_synth_rejects_unknown_target_and_top():
    runner = CliRunner()
    assert runner.invoke(main, ["synth", "--target", "virtex7"]).exit_code == 2
    bad_top = runner.invoke(main, ["synth", "--target", "ecp5-85k", "--top", "cpu"])
    assert bad_top.exit_code == 2 and "top must be one of" in bad_top.output


def test_profiles_and_fit_parameters_are_validated():
    tiny = HardwareConfig.profile("tiny")
    assert (tiny.rows, tiny.cols, tiny.vector.units) == (2, 2, ())
    assert HardwareConfig.profile("tiny", rows=1).rows == 1
    assert HardwareConfig.profile("default") == HardwareConfig()
    with pytest.raises(ValueError, match="profile must be one of"):
        HardwareConfig.profile("huge")
    for name, value in (("queue_depth", 0), ("queue_depth", 3), ("in_flight", 1),
                        ("in_flight", 6), ("dma_outstanding", 0), ("counter_width", 31),
                        ("counter_width", 65), ("counter_width", 32.0)):
        with pytest.raises(ValueError, match=name):
            HardwareConfig(**{name: value})


def test_tiny_profile_matmul_is_exact_on_the_rtl():
    """The tiny profile's one-entry queues, two instructions per unit, one DMA burst and
    32-bit counters compute an odd-shaped product exactly, with the functional simulator's
    counters."""
    rng = np.random.default_rng(6)
    a = rng.integers(-128, 128, (5, 7), dtype=np.int8)
    b = rng.integers(-128, 128, (7, 3), dtype=np.int8)
    a[0, 0], b[0, 0] = -128, 127
    config = HardwareConfig.profile("tiny")
    rtl, functional = Accelerator(config, "amaranth"), Accelerator(config, "functional")
    expected = a.astype(np.int64) @ b.astype(np.int64)
    assert np.array_equal(rtl.matmul(a, b), expected)
    assert np.array_equal(functional.matmul(a, b), expected)
    for name in ("macs", "array_busy", "fetch_bytes", "load_bytes", "store_bytes",
                 "instructions"):
        assert rtl.last_run.counters[name] == functional.last_run.counters[name], name
