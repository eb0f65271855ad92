"""Model loaders, tokenizers and float reference forward passes (systolic.sw.models).

Real models (MiniLM, SmolLM2) are checked against published facts (shared/README.md); tiny
random BERT and llama checkpoints written here in Hugging Face and GGUF formats are checked
against straightforward loop-based float64 forward passes written in this file.
"""

import json
import math
import shutil

import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file
from checkpoints import (BERT_VOCAB, LLAMA_WORDS, llama_config, random_llama_weights,
                         write_bert, write_llama)
from tokenizers import pre_tokenizers

from systolic.sw.models import (DECODER_LAYER_KEYS, ENCODER_LAYER_KEYS, DecoderModel,
                                EncoderModel, KVCache, ModelError, ModelFileError,
                                UnknownModelError, UnsupportedModelError, cosine,
                                decoder_forward, decoder_logits, decoder_step, embed, encode,
                                generate, known_model_path, load_model)

# --- real models ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    return load_model("minilm")


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2")


def test_minilm_config_and_tokenizer(minilm):
    cfg = minilm.config
    assert isinstance(minilm, EncoderModel)
    assert (cfg.layers, cfg.hidden, cfg.heads, cfg.ffn, cfg.eps) == (6, 384, 12, 1536, 1e-12)
    ids = minilm.tokenize("A man is playing a guitar.")
    tok = minilm.tokenizer
    assert ids[0] == tok.token_to_id("[CLS]") and ids[-1] == tok.token_to_id("[SEP]")
    assert len(ids) == 9  # no padding to 128: [CLS] a man is playing a guitar . [SEP]
    assert minilm.decode(ids) == "a man is playing a guitar."


def test_minilm_sentence_similarity(minilm):
    e = embed(minilm, ["A man is playing a guitar.", "Someone is playing an instrument.",
                       "The stock market fell sharply today.", "A cat sleeps on the sofa."])
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert 0.62 < cosine(e[0], e[1]) < 0.74  # published: about 0.68
    for i, j in [(0, 2), (1, 2), (0, 3), (2, 3)]:
        assert abs(cosine(e[i], e[j])) < 0.15


def test_minilm_loaded_by_path_matches_name(minilm):
    by_path = load_model(known_model_path("minilm"), cache=False)
    assert by_path is not minilm
    texts = ["Someone is playing an instrument.", "A cat sleeps on the sofa."]
    np.testing.assert_array_equal(embed(by_path, texts), embed(minilm, texts))


def test_loaded_models_are_cached_and_read_only(minilm):
    assert load_model("minilm") is minilm
    with pytest.raises(ValueError):
        minilm.layers[0].wq[0, 0] = 1.0


def test_encoder_capture(minilm):
    ids = minilm.tokenize("Capture every activation.")
    capture = {}
    out = encode(minilm, ids, capture)
    n, cfg = len(ids), minilm.config
    assert set(capture) == {"embed.sum", "embed.ln_out"} | {
        f"layer{i}.{k}" for i in range(cfg.layers) for k in ENCODER_LAYER_KEYS}
    assert capture["layer0.attn.scores"].shape == (cfg.heads, n, n)
    assert capture["layer0.ffn.up"].shape == (n, cfg.ffn)
    np.testing.assert_allclose(capture["layer3.attn.probs"].sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(capture[f"layer{cfg.layers - 1}.ln2_out"], out)
    np.testing.assert_allclose(capture["layer2.resid1"],
                               capture["layer1.ln2_out"] + capture["layer2.attn.out"], rtol=1e-6)


def test_smollm2_config_and_tokenizer(smollm2):
    cfg = smollm2.config
    assert isinstance(smollm2, DecoderModel)
    assert (cfg.layers, cfg.d, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.ffn) == \
        (30, 576, 9, 3, 64, 1536)
    assert (cfg.vocab_size, cfg.rope_theta, cfg.tied_embeddings) == (49152, 1e5, True)
    tok = smollm2.tokenizer
    assert smollm2.tokenize("Hello") == [tok.token_to_id("Hello")]  # add_bos is false
    assert smollm2.tokenize("<|im_start|>user") == [tok.token_to_id("<|im_start|>"),
                                                     tok.token_to_id("user")]
    assert len(smollm2.tokenize("2024")) == 4  # the SmolLM pre-tokenizer isolates digits
    text = "Café naïve — 你好, world!\n  indented"
    assert smollm2.decode(smollm2.tokenize(text)) == text


def test_smollm2_greedy_continuation(smollm2):
    prompt = smollm2.tokenize("The capital of France is")
    text = smollm2.decode(generate(smollm2, prompt, 3))
    assert text.startswith(" Paris."), text


def test_smollm2_incremental_matches_full(smollm2):
    ids = smollm2.tokenize("Incremental decoding must agree with the full pass")
    full = decoder_logits(smollm2, ids)
    cache = KVCache.empty(smollm2.config)
    head = decoder_forward(smollm2, ids[:5], cache)
    steps = [decoder_step(smollm2, t, cache) for t in ids[5:]]
    assert cache.length == len(ids)
    np.testing.assert_allclose(np.vstack([head] + steps), full, atol=2e-3)
    assert (np.argmax(full, axis=1) == np.argmax(np.vstack([head] + steps), axis=1)).all()


# --- independent float64 references for tiny checkpoints -------------------------------------

def ref_layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * w + b


def ref_rms_norm(x, w, eps):
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps) * w


def ref_attention_head(q, k, v, causal):
    """Loop over query positions: softmax(q.k / sqrt(dim)) . v for one head."""
    out = np.zeros_like(q)
    for t in range(len(q)):
        visible = t + 1 if causal else len(k)
        s = np.array([q[t] @ k[u] for u in range(visible)]) / math.sqrt(q.shape[1])
        p = np.exp(s - s.max())
        out[t] = (p / p.sum()) @ v[:visible]
    return out


def ref_bert(w, cfg, prefix, position_offset, ids):
    g = lambda name: w[prefix + name].astype(np.float64)  # noqa: E731
    gelu = np.vectorize(lambda z: 0.5 * z * (1 + math.erf(z / math.sqrt(2))))
    n, heads, eps = len(ids), cfg["num_attention_heads"], cfg["layer_norm_eps"]
    x = (g("embeddings.word_embeddings.weight")[ids]
         + g("embeddings.position_embeddings.weight")[position_offset:position_offset + n]
         + g("embeddings.token_type_embeddings.weight")[0])
    x = ref_layer_norm(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        lin = lambda name, a: a @ g(p + name + ".weight").T + g(p + name + ".bias")  # noqa: E731
        q, k, v = (lin(f"attention.self.{m}", x) for m in ("query", "key", "value"))
        dh = q.shape[1] // heads
        ctx = np.hstack([ref_attention_head(q[:, s], k[:, s], v[:, s], causal=False)
                         for s in (slice(h * dh, (h + 1) * dh) for h in range(heads))])
        x = ref_layer_norm(x + lin("attention.output.dense", ctx),
                           g(p + "attention.output.LayerNorm.weight"),
                           g(p + "attention.output.LayerNorm.bias"), eps)
        ffn = lin("output.dense", gelu(lin("intermediate.dense", x)))
        x = ref_layer_norm(x + ffn, g(p + "output.LayerNorm.weight"),
                           g(p + "output.LayerNorm.bias"), eps)
    return x


def ref_rope(x, theta):
    """x (seq, heads, dim): rotate pair (i, i + dim/2) of position t by t * theta^(-2i/dim)."""
    out = x.copy()
    half = x.shape[2] // 2
    for t in range(x.shape[0]):
        for i in range(half):
            a = t * theta ** (-2 * i / x.shape[2])
            x1, x2 = x[t, :, i], x[t, :, i + half]
            out[t, :, i] = x1 * math.cos(a) - x2 * math.sin(a)
            out[t, :, i + half] = x2 * math.cos(a) + x1 * math.sin(a)
    return out


def ref_llama(w, cfg, ids):
    g = lambda name: w[name].astype(np.float64)  # noqa: E731
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    eps = cfg["rms_norm_eps"]
    dh, n = cfg["hidden_size"] // heads, len(ids)
    silu = lambda z: z / (1 + np.exp(-z))  # noqa: E731
    x = g("model.embed_tokens.weight")[ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        lin = lambda name, a: a @ g(p + name + ".weight").T  # noqa: E731
        h = ref_rms_norm(x, g(p + "input_layernorm.weight"), eps)
        q = ref_rope(lin("self_attn.q_proj", h).reshape(n, heads, dh), cfg["rope_theta"])
        k = ref_rope(lin("self_attn.k_proj", h).reshape(n, kv_heads, dh), cfg["rope_theta"])
        v = lin("self_attn.v_proj", h).reshape(n, kv_heads, dh)
        group = heads // kv_heads
        ctx = np.hstack([ref_attention_head(q[:, j], k[:, j // group], v[:, j // group], True)
                         for j in range(heads)])
        x = x + lin("self_attn.o_proj", ctx)
        h = ref_rms_norm(x, g(p + "post_attention_layernorm.weight"), eps)
        x = x + lin("mlp.down_proj", silu(lin("mlp.gate_proj", h)) * lin("mlp.up_proj", h))
    x = ref_rms_norm(x, g("model.norm.weight"), eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.astype(np.float64).T


# --- tiny checkpoint writers -----------------------------------------------------------------

#: test_models' tiny BERT: two layers, hidden 8 (RoBERTa pads with id 1 and offsets positions).
TINY_BERT = dict(layers=2, hidden=8, heads=2, ffn=12, positions=16, eps=1e-5, pad_token_id=1)
#: test_models' tiny llama: two layers.
TINY_LLAMA = dict(layers=2, rope_theta=50.0)


def llama_cpp_permute(w, n_heads):
    """llama.cpp's converter: per head, rows (half, i) -> (i, half) (interleave the halves)."""
    return (w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def byte_level_vocab():
    """A GPT-2 style vocabulary: one control token, the 256 byte symbols, a few merges."""
    merges = ["Ġ t", "h e", "Ġt he", "4 2"]
    tokens = ["<|endoftext|>"] + sorted(pre_tokenizers.ByteLevel.alphabet()) + \
        [m.replace(" ", "") for m in merges]
    return tokens, merges


def write_llama_gguf(path, seed, arch="llama", pre="smollm", truncate_header=False):
    tokens, merges = byte_level_vocab()
    cfg = llama_config(**TINY_LLAMA, vocab_size=len(tokens), tied=True)
    weights = random_llama_weights(np.random.default_rng(seed), cfg)
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    writer = gguf.GGUFWriter(path, arch)
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(cfg["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_merges(merges)
    writer.add_token_types([gguf.TokenType.CONTROL] + [gguf.TokenType.NORMAL] * (len(tokens) - 1))
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    writer.add_add_bos_token(True)
    names = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
             "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    writer.add_tensor("token_embd.weight", weights["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", weights["model.norm.weight"])
    for i in range(cfg["num_hidden_layers"]):
        for hf, gg in names.items():
            w = weights[f"model.layers.{i}.{hf}.weight"]
            if hf == "self_attn.q_proj":
                w = llama_cpp_permute(w, heads)
            elif hf == "self_attn.k_proj":
                w = llama_cpp_permute(w, kv_heads)
            writer.add_tensor(f"blk.{i}.{gg}.weight", w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return cfg, weights, tokens


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Paths and weights of tiny random checkpoints."""
    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "bert": write_bert(root / "bert", seed=1, **TINY_BERT),
        "roberta": write_bert(root / "roberta", seed=2, prefix="", dtype=np.float16,
                              model_type="roberta", **TINY_BERT),
        "llama": write_llama(root / "llama", seed=3, **TINY_LLAMA),
        "gguf": (root / "tiny.gguf", *write_llama_gguf(root / "tiny.gguf", seed=4)),
    }


# --- tiny checkpoints: any BERT / llama loads and runs -------------------------------------

@pytest.mark.parametrize("kind, prefix, offset", [("bert", "bert.", 0), ("roberta", "", 2)])
def test_tiny_encoder_matches_reference(tiny, kind, prefix, offset):
    path, cfg, weights = tiny[kind]
    model = load_model(path)
    assert isinstance(model, EncoderModel) and model.config.position_offset == offset
    ids = model.tokenize("Hello cats sat.")
    assert [BERT_VOCAB[i] for i in ids] == ["[CLS]", "hello", "cat", "##s", "sat", ".", "[SEP]"]
    np.testing.assert_allclose(encode(model, ids), ref_bert(weights, cfg, prefix, offset, ids),
                               atol=2e-5)


def test_tiny_llama_directory_matches_reference(tiny):
    path, cfg, weights = tiny["llama"]
    model = load_model(path)
    assert isinstance(model, DecoderModel) and not model.config.tied_embeddings
    ids = model.tokenize("the cat sat on the mat")
    assert [LLAMA_WORDS[i] for i in ids] == "<s> the cat sat on the mat".split()
    assert model.config.add_bos
    capture = {}
    logits = decoder_logits(model, ids, capture)
    np.testing.assert_allclose(logits, ref_llama(weights, cfg, ids), atol=2e-4)
    assert set(capture) == {"embed", "final_norm_out", "logits"} | {
        f"layer{i}.{k}" for i in range(cfg["num_hidden_layers"]) for k in DECODER_LAYER_KEYS}
    assert capture["layer1.attn.scores"].shape == (4, len(ids), len(ids))
    assert np.isneginf(capture["layer1.attn.scores"][:, 0, 1:]).all()  # causal mask
    step_capture = {}
    cache = KVCache.empty(model.config)
    decoder_forward(model, ids[:-1], cache)
    last = decoder_step(model, ids[-1], cache, step_capture)
    np.testing.assert_allclose(last, logits[-1], atol=1e-5)
    assert step_capture["layer0.attn.probs"].shape == (4, 1, len(ids))


def test_tiny_llama_gguf_matches_reference(tiny):
    path, cfg, weights, tokens = tiny["gguf"]
    model = load_model(path)
    assert model.config.tied_embeddings and model.config.rope_theta == cfg["rope_theta"]
    ids = model.tokenize("the 42 the")
    # BOS (add_bos_token), byte-level BPE merges, SmolLM digit isolation (the "42" merge
    # must not apply)
    assert [tokens[i] for i in ids] == ["<|endoftext|>", "t", "he", "Ġ", "4", "2", "Ġthe"]
    assert model.decode(ids) == "the 42 the"
    np.testing.assert_allclose(decoder_logits(model, ids), ref_llama(weights, cfg, ids),
                               atol=2e-4)


def test_gguf_pre_tokenizer_gpt2(tmp_path):
    path = tmp_path / "gpt2pre.gguf"
    tokens = write_llama_gguf(path, seed=5, pre="gpt-2")[2]
    assert [tokens[i] for i in load_model(path).tokenize(" 42")] == ["<|endoftext|>", "Ġ", "42"]


def test_generate_counts_and_validates(tiny):
    model = load_model(tiny["gguf"][0])
    prompt = model.tokenize("the")
    out = generate(model, prompt, 5, stop_at_eos=False)
    assert len(out) == 5
    expected = list(prompt)
    for _ in range(5):  # greedy from full recomputation
        expected.append(int(np.argmax(decoder_logits(model, expected)[-1])))
    assert out == expected[len(prompt):]
    assert generate(model, prompt, 0) == []
    with pytest.raises(ValueError, match="n_tokens"):
        generate(model, prompt, -1)


# --- errors ----------------------------------------------------------------------------------

def test_unknown_name():
    with pytest.raises(UnknownModelError, match="minilm.*smollm2"):
        load_model("bert-base-uncased")
    assert issubclass(UnknownModelError, ModelError)


def test_missing_path(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        load_model(tmp_path / "absent.gguf")


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelFileError, match="config.json"):
        load_model(tmp_path)


def copy_dir(tiny, kind, tmp_path):
    target = tmp_path / kind
    shutil.copytree(tiny[kind][0], target)
    return target


@pytest.mark.parametrize("key, value, match", [
    ("model_type", "gpt2", "model_type 'gpt2'"),
    ("hidden_act", "gelu_new", "hidden_act='gelu_new'"),
])
def test_unsupported_config(tiny, tmp_path, key, value, match):
    directory = copy_dir(tiny, "bert", tmp_path)
    cfg = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(dict(cfg, **{key: value})))
    with pytest.raises(UnsupportedModelError, match=match):
        load_model(directory)


def test_missing_tensor(tiny, tmp_path):
    directory = copy_dir(tiny, "bert", tmp_path)
    weights = dict(tiny["bert"][2])
    del weights["bert.encoder.layer.1.output.dense.bias"]
    save_file(weights, directory / "model.safetensors")
    with pytest.raises(UnsupportedModelError, match="encoder.layer.1.output.dense.bias"):
        load_model(directory)


def test_wrong_tensor_shape(tiny, tmp_path):
    directory = copy_dir(tiny, "llama", tmp_path)
    cfg = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(dict(cfg, intermediate_size=20)))
    with pytest.raises(ModelFileError, match="gate_proj.*shape"):
        load_model(directory)


def test_bfloat16_safetensors_rejected(tiny, tmp_path):
    directory = copy_dir(tiny, "roberta", tmp_path)  # stored as float16
    file = directory / "model.safetensors"
    data = file.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n].replace(b'"F16"', b'"BF16"').rstrip()  # same-size tensors
    header += b" " * (-len(header) % 8)
    file.write_bytes(len(header).to_bytes(8, "little") + header + data[8 + n:])
    with pytest.raises(UnsupportedModelError, match="dtype BF16"):
        load_model(directory)


def test_truncated_safetensors(tiny, tmp_path):
    directory = copy_dir(tiny, "bert", tmp_path)
    file = directory / "model.safetensors"
    file.write_bytes(file.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="model.safetensors"):
        load_model(directory)


@pytest.mark.parametrize("keep", [40, -64])
def test_truncated_gguf(tiny, tmp_path, keep):
    file = tmp_path / "cut.gguf"
    file.write_bytes(tiny["gguf"][0].read_bytes()[:keep])
    with pytest.raises(ModelFileError, match="cut.gguf.*(truncated|not a readable)"):
        load_model(file)


def test_unsupported_gguf_architecture(tmp_path):
    path = tmp_path / "other.gguf"
    write_llama_gguf(path, seed=6, arch="gpt2")
    with pytest.raises(UnsupportedModelError, match="architecture 'gpt2'"):
        load_model(path)


def test_unsupported_gguf_pre_tokenizer(tmp_path):
    path = tmp_path / "pre.gguf"
    write_llama_gguf(path, seed=7, pre="qwen2")
    with pytest.raises(UnsupportedModelError, match="pre-tokenizer 'qwen2'"):
        load_model(path)


def test_bad_token_ids(tiny):
    model = load_model(tiny["bert"][0])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        encode(model, [2, len(BERT_VOCAB)])
    with pytest.raises(ValueError, match="at most"):
        encode(model, [5] * 17)
    with pytest.raises(TypeError, match="text"):
        model.tokenize(b"bytes")
