"""Llama-family decoder (pre-RMSNorm, GQA, RoPE, SwiGLU) and its float reference forward pass.

Weights are float32, linear weights stored ``(in_features, out_features)`` so ``x @ w`` is
the layer. Q and K use Hugging Face's "rotate half" RoPE layout: the GGUF loader un-permutes
llama.cpp's interleaved Q/K rows, so both checkpoint formats run the same code.

The forward pass is incremental: :func:`decoder_forward` appends tokens to a
:class:`KVCache` (keys stored after RoPE). :func:`decoder_logits` runs a whole causal prefix
from an empty cache, :func:`decoder_step` appends one token, :func:`generate` is greedy.

Capture keys (``capture`` dict; ``i`` is the layer index, ``new`` the tokens run in this
call, ``total`` the cache length after it):

==========================  ========================  =====================================
key                         shape                     meaning
==========================  ========================  =====================================
``embed``                   (new, d)                  token embeddings = layer 0 input
``layer{i}.rms1_out``       (new, d)                  RMSNorm before attention
``layer{i}.attn.q``         (new, heads*head_dim)     ``rms1_out @ wq`` (before RoPE)
``layer{i}.attn.k/v``       (new, kv_heads*head_dim)  ``rms1_out @ wk`` / ``@ wv``
``layer{i}.attn.q_rope``    (heads, new, head_dim)    q after RoPE
``layer{i}.attn.k_rope``    (kv_heads, new, head_dim) k after RoPE (what the cache holds)
``layer{i}.attn.scores``    (heads, new, total)       ``q k^T / sqrt(head_dim)`` with the
                                                      causal mask applied (-inf = masked)
``layer{i}.attn.probs``     (heads, new, total)       softmax of the scores
``layer{i}.attn.context``   (new, heads*head_dim)     ``probs @ v``, heads merged
``layer{i}.attn.out``       (new, d)                  ``context @ wo``
``layer{i}.resid1``         (new, d)                  layer input + attn.out
``layer{i}.rms2_out``       (new, d)                  RMSNorm before the FFN
``layer{i}.ffn.gate``       (new, ffn)                ``rms2_out @ w_gate`` (pre-SiLU)
``layer{i}.ffn.up``         (new, ffn)                ``rms2_out @ w_up``
``layer{i}.ffn.act``        (new, ffn)                ``silu(gate) * up``
``layer{i}.ffn.down``       (new, d)                  ``act @ w_down``
``layer{i}.resid2``         (new, d)                  resid1 + ffn.down = layer output
``final_norm_out``          (new, d)                  final RMSNorm output
``logits``                  (new, vocab)              ``final_norm_out @ lm_head``
==========================  ========================  =====================================

:data:`DECODER_LAYER_KEYS` lists the per-layer suffixes in order of computation.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .common import TokenizerMixin, check_token_ids
from .layers import (apply_rope, attention, causal_mask, linear, merge_heads, recorder,
                     rms_norm, rope_cos_sin, split_heads, swiglu_ffn)

DECODER_LAYER_KEYS = (
    "rms1_out", "attn.q", "attn.k", "attn.v", "attn.q_rope", "attn.k_rope", "attn.scores",
    "attn.probs", "attn.context", "attn.out", "resid1", "rms2_out", "ffn.gate", "ffn.up",
    "ffn.act", "ffn.down", "resid2",
)


@dataclass(frozen=True)
class DecoderConfig:
    """Hyper-parameters of a llama-family decoder.

    Members
    -------
    d: model width; layers; heads: query heads; kv_heads: key/value heads (GQA);
    head_dim; ffn: SwiGLU intermediate width; vocab_size.
    rope_theta: RoPE base frequency; rms_eps: RMSNorm epsilon.
    max_positions: context length the model was trained for.
    tied_embeddings: the LM head is the transposed token-embedding matrix.
    bos_id: beginning-of-sequence id (or None); eos_ids: ids that end generation.
    add_bos: the tokenizer prepends ``bos_id``.
    """

    d: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab_size: int
    rope_theta: float
    rms_eps: float
    max_positions: int
    tied_embeddings: bool
    bos_id: int | None
    eos_ids: tuple
    add_bos: bool


@dataclass
class DecoderLayer:
    """Weights of one pre-norm llama layer (linear weights ``(in, out)``, no biases).

    Members
    -------
    rms1_weight: (d,) RMSNorm before attention ("input_layernorm" / "attn_norm").
    wq: (d, heads*head_dim); wk, wv: (d, kv_heads*head_dim); wo: (heads*head_dim, d).
    rms2_weight: (d,) RMSNorm before the FFN ("post_attention_layernorm" / "ffn_norm").
    w_gate, w_up: (d, ffn); w_down: (ffn, d).
    """

    rms1_weight: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray
    rms2_weight: np.ndarray
    w_gate: np.ndarray
    w_up: np.ndarray
    w_down: np.ndarray


@dataclass
class DecoderModel(TokenizerMixin):
    """A loaded decoder: config, weights and tokenizer.

    Members
    -------
    name: short name. config: :class:`DecoderConfig`.
    embedding: (vocab_size, d) token embeddings.
    layers: list of :class:`DecoderLayer`.
    final_norm_weight: (d,) final RMSNorm.
    lm_head: (d, vocab_size); with tied embeddings a view of ``embedding.T``.
    tokenizer: ``tokenizers.Tokenizer`` (adds BOS only when ``config.add_bos``).
    source: the checkpoint file or directory.
    """

    name: str
    config: DecoderConfig
    embedding: np.ndarray
    layers: list
    final_norm_weight: np.ndarray
    lm_head: np.ndarray
    tokenizer: object = field(repr=False)
    source: Path = None


@dataclass
class KVCache:
    """Keys (after RoPE) and values of every layer for the tokens run so far.

    Members
    -------
    keys, values: one ``(kv_heads, length, head_dim)`` array per layer.
    """

    keys: list
    values: list

    @classmethod
    def empty(cls, config):
        shape = (config.kv_heads, 0, config.head_dim)
        return cls([np.zeros(shape, np.float32) for _ in range(config.layers)],
                   [np.zeros(shape, np.float32) for _ in range(config.layers)])

    @property
    def length(self):
        """Number of tokens held."""
        return self.keys[0].shape[1]


def decoder_layer(x, layer, config, cache, index, cos, sin, record):
    """One pre-norm llama layer on the new tokens ``x (new, d)``, appending their keys and
    values to ``cache`` layer ``index``; ``cos``/``sin`` are RoPE tables of their positions."""
    h = rms_norm(x, layer.rms1_weight, config.rms_eps)
    record("rms1_out", h)
    q, k, v = linear(h, layer.wq), linear(h, layer.wk), linear(h, layer.wv)
    record("attn.q", q)
    record("attn.k", k)
    record("attn.v", v)
    q = apply_rope(split_heads(q, config.heads), cos, sin)
    k = apply_rope(split_heads(k, config.kv_heads), cos, sin)
    record("attn.q_rope", q)
    record("attn.k_rope", k)
    keys = np.concatenate([cache.keys[index], k], axis=1)
    values = np.concatenate([cache.values[index], split_heads(v, config.kv_heads)], axis=1)
    cache.keys[index], cache.values[index] = keys, values
    scores, probs, context = attention(q, keys, values, causal_mask(len(x), keys.shape[1]))
    record("attn.scores", scores)
    record("attn.probs", probs)
    context = merge_heads(context)
    record("attn.context", context)
    attn_out = linear(context, layer.wo)
    record("attn.out", attn_out)
    resid1 = x + attn_out
    record("resid1", resid1)
    h = rms_norm(resid1, layer.rms2_weight, config.rms_eps)
    record("rms2_out", h)
    down = swiglu_ffn(h, layer.w_gate, layer.w_up, layer.w_down,
                      lambda name, a: record("ffn." + name, a))
    resid2 = resid1 + down
    record("resid2", resid2)
    return resid2


def decoder_forward(model, ids, cache, capture=None):
    """Run the new tokens ``ids`` after the ``cache.length`` tokens already in ``cache``
    (which is extended in place); returns their logits ``(len(ids), vocab)``."""
    cfg = model.config
    ids = check_token_ids(ids, cfg.vocab_size)
    start = cache.length
    if start + len(ids) > cfg.max_positions:
        raise ValueError(f"{start} cached + {len(ids)} new tokens exceed the model's "
                         f"context of {cfg.max_positions}")
    cos, sin = rope_cos_sin(np.arange(start, start + len(ids)), cfg.head_dim, cfg.rope_theta)
    x = model.embedding[ids]
    record = recorder(capture, "")
    record("embed", x)
    for i, layer in enumerate(model.layers):
        x = decoder_layer(x, layer, cfg, cache, i, cos, sin, recorder(capture, f"layer{i}."))
    x = rms_norm(x, model.final_norm_weight, cfg.rms_eps)
    record("final_norm_out", x)
    logits = linear(x, model.lm_head)
    record("logits", logits)
    return logits


def decoder_logits(model, ids, capture=None):
    """Logits ``(len(ids), vocab)`` of the full causal prefix ``ids``."""
    return decoder_forward(model, ids, KVCache.empty(model.config), capture)


def decoder_step(model, token_id, cache, capture=None):
    """Append one token to ``cache``; returns its logits ``(vocab,)``."""
    return decoder_forward(model, [token_id], cache, capture)[0]


def generate(model, prompt_ids, n_tokens, stop_at_eos=True):
    """Greedy continuation of ``prompt_ids``: the list of up to ``n_tokens`` new ids (ends
    early, after the EOS id, when ``stop_at_eos``)."""
    if not isinstance(n_tokens, (int, np.integer)) or n_tokens < 0:
        raise ValueError(f"n_tokens must be a non-negative integer, got {n_tokens!r}")
    out = []
    if n_tokens == 0:
        return out
    cache = KVCache.empty(model.config)
    logits = decoder_forward(model, prompt_ids, cache)[-1]
    while True:
        token = int(np.argmax(logits))
        out.append(token)
        if len(out) == n_tokens or (stop_at_eos and token in model.config.eos_ids):
            return out
        logits = decoder_step(model, token, cache)
