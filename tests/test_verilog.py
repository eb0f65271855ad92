"""`systolic verilog` writes Verilog-2005 that Icarus compiles and Verilator lints."""

import subprocess

import pytest
from click.testing import CliRunner

from systolic.sim.tools import require, verilator_env
from systolic.sw.cli import main


def write_verilog(tmp_path, *args):
    out = tmp_path / "top.v"
    result = CliRunner().invoke(main, ["verilog", *args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def check_tools_accept(path):
    icarus = subprocess.run([require("iverilog"), "-g2005", "-o", str(path.with_suffix(".vvp")),
                             str(path)], capture_output=True, text=True)
    assert icarus.returncode == 0, icarus.stderr
    # -Wno-WIDTH: Amaranth's backend extends operands implicitly by design; every other
    # warning class stays fatal.
    lint = subprocess.run(["verilator", "--lint-only", "-Wno-WIDTH", str(path)],
                          capture_output=True, text=True, env=verilator_env())
    assert lint.returncode == 0, lint.stderr


@pytest.mark.parametrize("rows, cols", [(1, 1), (3, 5), (16, 16)])
@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_array_verilog_compiles_and_lints(tmp_path, rows, cols, dataflow):
    path = write_verilog(tmp_path, "--top", "array", "--rows", str(rows), "--cols", str(cols),
                         "--dataflow", dataflow)
    text = path.read_text()
    assert text.startswith("`timescale 1ns/1ps")
    assert "module systolic_array(" in text
    check_tools_accept(path)


def test_bad_parameters_are_usage_errors(tmp_path):
    result = CliRunner().invoke(main, ["verilog", "--top", "array", "--rows", "65",
                                       "-o", str(tmp_path / "x.v")])
    assert result.exit_code == 2 and "rows must be in 1..64" in result.output
    result = CliRunner().invoke(main, ["verilog", "--top", "nonsense", "-o", str(tmp_path / "x.v")])
    assert result.exit_code == 2 and "top must be one of" in result.output
    assert not (tmp_path / "x.v").exists()


def test_profile_option_starts_from_a_profile(tmp_path):
    from systolic.hw.config import HardwareConfig
    from systolic.hw.verilog import generate_verilog

    path = write_verilog(tmp_path, "--top", "accelerator", "--profile", "tiny", "--rows", "1")
    assert path.read_text() == generate_verilog(
        "accelerator", **HardwareConfig.profile("tiny", rows=1).to_dict())
    assert path.read_text() != generate_verilog(
        "accelerator", **HardwareConfig(rows=1).to_dict())
    result = CliRunner().invoke(main, ["verilog", "--top", "array", "--profile", "tiny",
                                       "-o", str(tmp_path / "x.v")])
    assert result.exit_code == 2 and "--profile describe a whole accelerator" in result.output
    result = CliRunner().invoke(main, ["verilog", "--profile", "huge"])
    assert result.exit_code == 2 and "huge" in result.output


# Every size and both dataflows, each size once (a lint takes half a minute).
@pytest.mark.parametrize("size, dataflow", [(2, "os"), (4, "ws"), (8, "ws"), (8, "os")])
def test_accelerator_verilog_compiles_and_lints(tmp_path, size, dataflow):
    path = write_verilog(tmp_path, "--top", "accelerator", "--rows", str(size), "--cols",
                         str(size), "--dataflow", dataflow)
    text = path.read_text()
    assert "module systolic_accelerator(" in text
    for port in ("csr__awaddr", "m_axi__araddr", "m_axi__wstrb", "irq"):
        assert port in text
    check_tools_accept(path)


def test_accelerator_verilog_is_the_same_in_every_run(tmp_path):
    """Two processes with different string hash seeds write the same Verilog for an
    accelerator with every vector unit (the synthesis cache is keyed by the text; set
    iteration order once made it differ from run to run)."""
    import os
    import sys
    texts = []
    for seed in ("1", "2"):
        out = tmp_path / f"top{seed}.v"
        subprocess.run([sys.executable, "-c", "from systolic.sw.cli import main; main()",
                        "verilog", "--top",
                        "accelerator", "--rows", "2", "--cols", "2", "-o", str(out)],
                       check=True, env={**os.environ, "PYTHONHASHSEED": seed})
        texts.append(out.read_text())
    assert "is_softmax" in texts[0] and texts[0] == texts[1]
