"""`systolic synth`: real yosys + nextpnr runs (from PyPI) on a small block."""

import json

from click.testing import CliRunner

from systolic.sw.cli import main


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
