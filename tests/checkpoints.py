"""Tiny random checkpoints in the layouts the model loaders read (Hugging Face BERT and llama
directories: config.json, safetensors, vocabulary or tokenizer.json), shared by the model,
compiler and end-to-end tests."""

import json
from typing import NamedTuple

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors

BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "a", "cat",
              "##s", "dog", "sat", "on", "mat", "ran", "."]
LLAMA_WORDS = ["<s>", "</s>", "<unk>", "hello", "world", "the", "a", "cat", "dog", "sat", "on",
               "mat", "ran"]
#: Linear layers of a BERT layer and of a llama layer: (name, input size key, output size key).
BERT_LINEARS = [("attention.self.query", "h", "h"), ("attention.self.key", "h", "h"),
                ("attention.self.value", "h", "h"), ("attention.output.dense", "h", "h"),
                ("intermediate.dense", "h", "f"), ("output.dense", "f", "h")]
LLAMA_LINEARS = [("self_attn.q_proj", "d", "q"), ("self_attn.k_proj", "d", "kv"),
                 ("self_attn.v_proj", "d", "kv"), ("self_attn.o_proj", "q", "d"),
                 ("mlp.gate_proj", "d", "f"), ("mlp.up_proj", "d", "f"),
                 ("mlp.down_proj", "f", "d")]


class Checkpoint(NamedTuple):
    path: object
    config: dict
    weights: dict


def _normal(rng):
    return lambda *shape: rng.normal(0, 0.5, shape).astype(np.float32)


def bert_config(*, layers=1, hidden=16, heads=2, ffn=40, positions=16, eps=1e-12,
                model_type="bert", **extra):
    return {"model_type": model_type, "vocab_size": len(BERT_VOCAB), "hidden_size": hidden,
            "num_hidden_layers": layers, "num_attention_heads": heads,
            "intermediate_size": ffn, "max_position_embeddings": positions,
            "type_vocab_size": 2, "layer_norm_eps": eps, "hidden_act": "gelu", **extra}


def random_bert_weights(rng, cfg, prefix):
    """Weights of ``cfg`` named with ``prefix`` (``"bert."`` or none, as RoBERTa), plus a
    pooler the loaders must ignore."""
    r = _normal(rng)
    size = {"h": cfg["hidden_size"], "f": cfg["intermediate_size"]}
    h = size["h"]
    w = {"embeddings.word_embeddings.weight": r(cfg["vocab_size"], h),
         "embeddings.position_embeddings.weight": r(cfg["max_position_embeddings"], h),
         "embeddings.token_type_embeddings.weight": r(cfg["type_vocab_size"], h),
         "embeddings.LayerNorm.weight": 1 + r(h), "embeddings.LayerNorm.bias": r(h)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name, n_in, n_out in BERT_LINEARS:
            w[p + name + ".weight"] = r(size[n_out], size[n_in])
            w[p + name + ".bias"] = r(size[n_out])
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + name + ".weight"], w[p + name + ".bias"] = 1 + r(h), r(h)
    w = {prefix + k: v for k, v in w.items()}
    w[prefix + "pooler.dense.weight"] = r(h, h)
    return w


def write_bert(directory, seed=1, *, prefix="bert.", dtype=np.float32, **config):
    """A BERT-family checkpoint directory (``config``: keyword arguments of
    :func:`bert_config`)."""
    directory.mkdir()
    cfg = bert_config(**config)
    weights = {k: v.astype(dtype)
               for k, v in random_bert_weights(np.random.default_rng(seed), cfg, prefix).items()}
    (directory / "config.json").write_text(json.dumps(cfg))
    (directory / "vocab.txt").write_text("\n".join(BERT_VOCAB) + "\n")
    save_file(weights, directory / "model.safetensors")
    return Checkpoint(directory, cfg, weights)


def llama_config(*, layers=1, hidden=16, heads=4, kv_heads=2, ffn=24, positions=32,
                 rope_theta=100.0, vocab_size=len(LLAMA_WORDS), tied=False):
    return {"model_type": "llama", "vocab_size": vocab_size, "hidden_size": hidden,
            "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv_heads, "intermediate_size": ffn, "rope_theta": rope_theta,
            "rms_norm_eps": 1e-5, "max_position_embeddings": positions, "hidden_act": "silu",
            "bos_token_id": 0, "eos_token_id": 1, "tie_word_embeddings": tied}


def random_llama_weights(rng, cfg):
    r = _normal(rng)
    d, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    dh = d // heads
    size = {"d": d, "f": cfg["intermediate_size"], "q": heads * dh,
            "kv": cfg["num_key_value_heads"] * dh}
    w = {"model.embed_tokens.weight": r(cfg["vocab_size"], d), "model.norm.weight": 1 + r(d)}
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = r(cfg["vocab_size"], d)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + r(d)
        w[p + "post_attention_layernorm.weight"] = 1 + r(d)
        for name, n_in, n_out in LLAMA_LINEARS:
            w[p + name + ".weight"] = r(size[n_out], size[n_in])
    return w


def write_llama(directory, seed=2, **config):
    """A llama-family checkpoint directory with a word-level tokenizer that prepends ``<s>``
    (``config``: keyword arguments of :func:`llama_config`)."""
    directory.mkdir()
    cfg = llama_config(**config)
    weights = random_llama_weights(np.random.default_rng(seed), cfg)
    tokenizer = Tokenizer(models.WordLevel({t: i for i, t in enumerate(LLAMA_WORDS)},
                                           unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                             special_tokens=[("<s>", 0)])
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "config.json").write_text(json.dumps(cfg))
    save_file(weights, directory / "model.safetensors")
    return Checkpoint(directory, cfg, weights)
