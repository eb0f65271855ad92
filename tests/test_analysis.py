"""`systolic analyze`: model workloads against hand-derived counts."""

import json

import pytest
from click.testing import CliRunner

from systolic.sw.analysis import summarize, workload
from systolic.sw.cli import main
from systolic.sw.models import load_model


@pytest.fixture(scope="module")
def minilm():
    return load_model("minilm")


def test_minilm_macs_match_the_architecture(minilm):
    s, d, f, layers = 37, 384, 1536, 6
    # Per layer: Q, K, V, O (4 s d^2), FFN up and down (2 s d f), scores and context
    # over all heads (2 s^2 d).
    expected = layers * (4 * s * d * d + 2 * s * d * f + 2 * s * s * d)
    assert summarize(workload(minilm, s))["macs"] == expected


def test_decode_is_memory_bound_and_prefill_is_not():
    model = load_model("smollm2")
    decode = summarize(workload(model, 64, "decode"))
    prefill = summarize(workload(model, 64, "prefill"))
    assert decode["intensity"] < 1.1  # every weight byte is used once per token
    assert prefill["intensity"] > 20
    assert {"attention", "ffn", "head"} <= set(decode["groups"])
    lm_head = next(op for op in workload(model, 64, "decode") if op.group == "head")
    assert (lm_head.m, lm_head.k, lm_head.n) == (1, 576, 49152)


def test_bad_requests(minilm):
    with pytest.raises(ValueError, match="no decode phase"):
        workload(minilm, 8, "decode")
    with pytest.raises(ValueError, match="at least 1"):
        workload(minilm, 0)


def test_cli_json(minilm):
    result = CliRunner().invoke(main, ["analyze", "--model", "minilm", "--seq", "16", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["prefill"]
    assert report["macs"] == summarize(workload(minilm, 16))["macs"]
    assert {"name", "macs", "bytes", "intensity"} <= set(report["operations"][0])
