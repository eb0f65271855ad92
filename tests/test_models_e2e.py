"""Real Transformers end to end on the simulated accelerator: MiniLM embeddings and SmolLM2
greedy generation on the functional backend equal the integer golden model bit for bit;
single-layer random models on every backend that runs models; bad input is rejected before
anything runs."""

import numpy as np
import pytest
from checkpoints import write_bert, write_llama

from systolic.hw.config import HardwareConfig, VectorUnitsConfig
from systolic.sw import golden
from systolic.sw import quantize as Q
from systolic.sw.driver import Accelerator, model_config
from systolic.sw.models import ModelFileError, UnknownModelError, embed

FUNCTIONAL = model_config(32, 32)
SMALL = HardwareConfig(rows=8, cols=8, spad_lines=2048, acc_lines=1024, dma_bytes=8,
                       vector=VectorUnitsConfig(lanes=8, max_row=256))


@pytest.fixture(scope="module")
def minilm():
    return Accelerator(FUNCTIONAL, "functional").load_model("minilm")


@pytest.fixture(scope="module")
def minilm_golden():
    return Accelerator(FUNCTIONAL, "golden").load_model("minilm")


# -- MiniLM ----------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [1, 7, 33])
def test_minilm_hidden_states_bit_exact(minilm, length):
    ids = np.random.default_rng(length).integers(1000, minilm.model.config.vocab_size, length)
    got = minilm.hidden_states(ids)
    assert np.array_equal(got, golden.run(minilm.graph, ids)[minilm.graph.outputs[0]])
    run = minilm.accelerator.last_run
    assert run.cycles is None and run.utilization is None
    assert run.useful_macs > 0 and run.macs >= run.useful_macs
    assert run.predicted_cycles > 0 and 0 < run.predicted_utilization <= 1
    assert run.host["embed"]["bytes"] == length * minilm.model.config.hidden * 4
    assert run.host["kv_append"]["steps"] == minilm.model.config.layers
    assert set(run.ops) == {"layernorm", "rowquant", "matmul", "requantize", "softmax", "add",
                            "gelu"}


def test_minilm_embeddings_equal_golden_and_float(minilm, minilm_golden):
    texts = ["A man is playing a guitar.", "Someone is playing an instrument.",
             "The stock market fell sharply today after the disappointing report."]
    got = minilm.embed(texts)
    assert np.array_equal(got, minilm_golden.embed(texts))
    assert minilm_golden.accelerator.last_run.backend == "golden"
    assert got.shape == (3, 384) and np.allclose(np.linalg.norm(got, axis=1), 1.0)
    similar, unrelated = got[0] @ got[1], got[0] @ got[2]
    assert similar > 0.5 > unrelated


def test_minilm_golden_accuracy_vs_float(minilm_golden):
    texts = list(Q.EVALUATION_SENTENCES)
    cos = (embed(minilm_golden.model, texts) * minilm_golden.embed(texts)).sum(axis=1)
    print(f"MiniLM integer model vs float over {len(texts)} sentences: min cos "
          f"{cos.min():.4f}, mean {cos.mean():.4f}")
    assert cos.min() >= 0.99


@pytest.mark.parametrize("config", [
    HardwareConfig(rows=16, cols=16, dataflow="os", spad_lines=8192, acc_lines=4096,
                   vector=VectorUnitsConfig(lanes=16, max_row=2048, softmax=False,
                                            gelu=False)),
    HardwareConfig(rows=16, cols=16, spad_lines=8192, acc_lines=4096,
                   vector=VectorUnitsConfig(lanes=16, max_row=512, layernorm=False)),
], ids=["os-no-softmax-gelu", "ws-short-rows-no-layernorm"])
def test_minilm_other_configs_fall_back_to_the_host(config):
    runner = Accelerator(config, "functional").load_model("minilm")
    ids = runner.model.tokenize("Short inputs still exercise every layer.")
    got = runner.hidden_states(ids)
    assert np.array_equal(got, golden.run(runner.graph, ids)[runner.graph.outputs[0]])
    host = runner.accelerator.last_run.host
    if config.dataflow == "os":
        assert host["softmax"]["reason"] == "no softmax unit" and "gelu" in host
        assert host["transpose"]["bytes"] > 0
    else:
        assert host["layernorm"]["reason"] == "no layernorm unit"
        assert "exceed" in host["rowquant"]["reason"]  # FFN rows of 1536 > max_row 512
    assert all(entry["bytes"] > 0 for entry in host.values())


# -- SmolLM2 ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smollm2_golden():
    return Accelerator(model_config(64, 64), "golden").load_model("smollm2")


def test_smollm2_generates_the_golden_tokens(smollm2_golden):
    prompt = "The capital of France is"
    want = smollm2_golden.generate(prompt, 8, stop_at_eos=False)
    acc = Accelerator(model_config(64, 64), "functional")
    got = acc.load_model("smollm2").generate(prompt, 8, stop_at_eos=False)
    print(f"SmolLM2 on the functional backend: {got} {smollm2_golden.model.decode(got)!r}, "
          f"{acc.last_run.instructions} instructions, {acc.last_run.wall_s:.1f} s")
    assert got == want and len(got) == 8
    run = acc.last_run
    assert run.host["rope"]["steps"] == 8 * 2 * smollm2_golden.model.config.layers
    assert run.host["kv_append"]["steps"] == 8 * smollm2_golden.model.config.layers


def test_smollm2_golden_decoding_equals_the_full_prefix(smollm2_golden):
    graph = smollm2_golden.graph
    ids = smollm2_golden.model.tokenize("Incremental decoding must agree")
    full = golden.run(graph, ids)["logits"]
    cache = golden.KVCache()
    steps = [golden.run(graph, ids[:4], cache=cache)["logits"]]
    steps += [golden.run(graph, [t], cache=cache)["logits"] for t in ids[4:]]
    assert cache.length == len(ids)
    assert np.array_equal(np.vstack(steps), full)
    with pytest.raises(ValueError, match="differs"):
        golden.run(graph, ids[:1], start=0, cache=cache)


# -- single-layer random models ---------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_e2e")
    return {"bert": write_bert(root / "bert").path, "llama": write_llama(root / "llama").path}


@pytest.mark.parametrize("config", [SMALL, HardwareConfig(rows=4, cols=4, dataflow="os")],
                         ids=["8x8ws", "4x4os"])
def test_single_layer_models_on_every_backend(tiny, config):
    sentences = ["the cat sat on a mat .", "a dog ran", "cat"]
    bert = {b: Accelerator(config, b).load_model(tiny["bert"]) for b in ("functional", "golden")}
    assert np.array_equal(bert["functional"].embed(sentences), bert["golden"].embed(sentences))
    llama = {b: Accelerator(config, b).load_model(tiny["llama"])
             for b in ("functional", "golden")}
    prompt = "the cat sat on the"
    tokens = {b: runner.generate(prompt, 6, stop_at_eos=False) for b, runner in llama.items()}
    assert tokens["functional"] == tokens["golden"] and len(tokens["golden"]) == 6
    assert len(set(tokens["golden"])) > 1  # a random model still picks different tokens


# -- bad input --------------------------------------------------------------------------------

def test_unknown_model_name():
    with pytest.raises(UnknownModelError, match="unknown model 'minilm3'"):
        Accelerator(SMALL).load_model("minilm3")


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_weight_file(tiny, tmp_path, keep):
    directory = write_bert(tmp_path / "bert", seed=3).path
    weights = directory / "model.safetensors"
    raw = weights.read_bytes()
    weights.write_bytes(raw[:int(len(raw) * keep)])
    acc = Accelerator(SMALL)
    with pytest.raises(ModelFileError, match="model.safetensors"):
        acc.load_model(directory)
    assert acc.last_run is None


def test_corrupt_weight_file(tmp_path):
    directory = write_bert(tmp_path / "bert", seed=4).path
    (directory / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        Accelerator(SMALL).load_model(directory)


def test_bad_texts_are_rejected_before_anything_runs(tiny):
    acc = Accelerator(SMALL)
    bert = acc.load_model(tiny["bert"])
    for texts, error, match in [
        (["the cat", ""], ValueError, "text 1 is empty"),
        (["the cat", "   "], ValueError, "text 1 is empty"),
        ([], ValueError, "texts is empty"),
        (["the cat", 7], TypeError, "text 1 must be a str"),
        (["the cat", " ".join(["cat"] * 20)], ValueError, "22 tokens; the model allows 16"),
    ]:
        with pytest.raises(error, match=match):
            bert.embed(texts)
        assert acc.last_run is None and bert._compiled is None
    llama = acc.load_model(tiny["llama"])
    with pytest.raises(ValueError, match="prompt is empty"):
        llama.generate("", 3)
    with pytest.raises(ValueError, match="exceed the model's 32 positions"):
        llama.generate("the cat sat", 30)
    with pytest.raises(ValueError, match="n_tokens"):
        llama.generate("the cat sat", -1)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        llama.generate([0, 99], 2)
    assert acc.last_run is None and llama._compiled is None
