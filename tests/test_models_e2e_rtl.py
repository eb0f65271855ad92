"""Single-layer models on the RTL backends (the generated accelerator, vector engine
included, in Amaranth's simulator, cocotb + Icarus and Verilator): bit-exact with the golden model, with
every matmul and vector operation on the simulated hardware (only embedding lookup, RoPE and
the KV-cache append stay on the host)."""

import numpy as np
import pytest
from checkpoints import write_bert, write_llama

from systolic.hw.config import HardwareConfig, VectorUnitsConfig
from systolic.sw.driver import Accelerator

#: A small accelerator with every vector unit (rows of the tiny models fit ``max_row``).
CONFIG = HardwareConfig(rows=4, cols=4, spad_lines=256, acc_lines=128,
                        vector=VectorUnitsConfig(lanes=4, max_row=64))
#: Work the host does for any configuration.
HOST_ALWAYS = {"embed", "rope", "kv_append"}
#: Five tokens with [CLS] and [SEP]: rows that fill no whole 4-row tile (Amaranth's
#: simulator runs a few thousand cycles a second, so the sequence is short).
TEXT = "the cat sat"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_rtl")
    return {"bert": write_bert(root / "bert", seed=7).path,
            "llama": write_llama(root / "llama", seed=8).path}


@pytest.mark.parametrize("backend", ["amaranth", "icarus", "verilator"])
def test_single_layer_encoder_on_rtl(tiny, backend):
    acc = Accelerator(CONFIG, backend)
    got = acc.load_model(tiny["bert"]).embed([TEXT])
    want = Accelerator(CONFIG, "golden").load_model(tiny["bert"]).embed([TEXT])
    assert np.array_equal(got, want)
    run = acc.last_run
    assert run.cycles > 0 and 0 < run.utilization < 1
    assert run.counters["macs"] == run.macs >= run.useful_macs
    assert {"matmul", "layernorm", "softmax", "requantize", "rowquant", "gelu", "add"} <= set(
        run.ops) and run.predicted_cycles > 0
    assert set(run.host) <= HOST_ALWAYS


def test_single_layer_decoder_on_verilator(tiny):
    acc = Accelerator(CONFIG, "verilator")
    got = acc.load_model(tiny["llama"]).generate("the cat sat", 2, stop_at_eos=False)
    want = Accelerator(CONFIG, "golden").load_model(tiny["llama"]).generate(
        "the cat sat", 2, stop_at_eos=False)
    assert got == want and len(got) == 2
    run = acc.last_run
    assert run.cycles > 0 and run.host["kv_append"]["steps"] == 2
    assert {"rmsnorm", "silu", "mul", "softmax"} <= set(run.ops) and set(run.host) <= HOST_ALWAYS
