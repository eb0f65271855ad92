"""BERT-family encoder (post-LayerNorm) and its float reference forward pass.

Weights are float32, linear weights stored ``(in_features, out_features)`` so ``x @ w + b``
is the layer. Sentences run one at a time without padding, token type 0.

Capture keys (``capture`` dict filled by :func:`encode`; ``i`` is the layer index):

=========================  =====================  ==========================================
key                        shape                  meaning
=========================  =====================  ==========================================
``embed.sum``              (seq, hidden)          word + position + token-type embeddings
``embed.ln_out``           (seq, hidden)          embedding LayerNorm output = layer 0 input
``layer{i}.attn.q/k/v``    (seq, hidden)          projections ``x @ wq + bq`` etc.
``layer{i}.attn.scores``   (heads, seq, seq)      ``q k^T / sqrt(head_dim)``, pre-softmax
``layer{i}.attn.probs``    (heads, seq, seq)      softmax of the scores
``layer{i}.attn.context``  (seq, hidden)          ``probs @ v``, heads merged
``layer{i}.attn.out``      (seq, hidden)          output projection ``context @ wo + bo``
``layer{i}.resid1``        (seq, hidden)          layer input + attn.out (LayerNorm 1 input)
``layer{i}.ln1_out``       (seq, hidden)          LayerNorm 1 output (FFN input)
``layer{i}.ffn.up``        (seq, ffn)             ``ln1_out @ w_up + b_up`` (pre-GELU)
``layer{i}.ffn.act``       (seq, ffn)             GELU output
``layer{i}.ffn.down``      (seq, hidden)          ``act @ w_down + b_down``
``layer{i}.resid2``        (seq, hidden)          ln1_out + ffn.down (LayerNorm 2 input)
``layer{i}.ln2_out``       (seq, hidden)          LayerNorm 2 output = layer output
=========================  =====================  ==========================================

:data:`ENCODER_LAYER_KEYS` lists the per-layer suffixes in order of computation.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .common import TokenizerMixin, check_token_ids
from .layers import (attention, gelu_ffn, layer_norm, linear, merge_heads, recorder,
                     split_heads)

ENCODER_LAYER_KEYS = (
    "attn.q", "attn.k", "attn.v", "attn.scores", "attn.probs", "attn.context", "attn.out",
    "resid1", "ln1_out", "ffn.up", "ffn.act", "ffn.down", "resid2", "ln2_out",
)


@dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters of a BERT-family encoder.

    Members
    -------
    vocab_size, hidden, layers, heads, ffn: sizes (``ffn`` is the intermediate width).
    max_positions: rows of the position-embedding table.
    type_vocab: rows of the token-type table.
    eps: LayerNorm epsilon.
    activation: FFN nonlinearity; only ``"gelu"`` (exact erf GELU) is supported.
    position_offset: position id of the first token (0 for BERT; ``pad_token_id + 1`` for
        RoBERTa, whose position ids skip the padding index).
    """

    vocab_size: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int
    type_vocab: int
    eps: float
    activation: str = "gelu"
    position_offset: int = 0

    @property
    def head_dim(self):
        return self.hidden // self.heads


@dataclass
class EncoderLayer:
    """Weights of one post-LN encoder layer (linear weights ``(in, out)``).

    Members
    -------
    wq, bq, wk, bk, wv, bv: (hidden, hidden) / (hidden,) attention projections.
    wo, bo: (hidden, hidden) / (hidden,) attention output projection.
    ln1_weight, ln1_bias: LayerNorm after the attention residual.
    w_up, b_up: (hidden, ffn) / (ffn,) first FFN linear (BERT "intermediate").
    w_down, b_down: (ffn, hidden) / (hidden,) second FFN linear (BERT "output").
    ln2_weight, ln2_bias: LayerNorm after the FFN residual.
    """

    wq: np.ndarray
    bq: np.ndarray
    wk: np.ndarray
    bk: np.ndarray
    wv: np.ndarray
    bv: np.ndarray
    wo: np.ndarray
    bo: np.ndarray
    ln1_weight: np.ndarray
    ln1_bias: np.ndarray
    w_up: np.ndarray
    b_up: np.ndarray
    w_down: np.ndarray
    b_down: np.ndarray
    ln2_weight: np.ndarray
    ln2_bias: np.ndarray


@dataclass
class EncoderModel(TokenizerMixin):
    """A loaded encoder: config, weights and tokenizer.

    Members
    -------
    name: short name (the known name, or the checkpoint's directory name).
    config: :class:`EncoderConfig`.
    word_embeddings: (vocab_size, hidden).
    position_embeddings: (max_positions, hidden).
    type_embeddings: (type_vocab, hidden).
    emb_ln_weight, emb_ln_bias: embedding LayerNorm.
    layers: list of :class:`EncoderLayer`.
    tokenizer: ``tokenizers.Tokenizer`` adding [CLS]/[SEP] (or <s>/</s>), no padding.
    source: the checkpoint directory.
    """

    name: str
    config: EncoderConfig
    word_embeddings: np.ndarray
    position_embeddings: np.ndarray
    type_embeddings: np.ndarray
    emb_ln_weight: np.ndarray
    emb_ln_bias: np.ndarray
    layers: list
    tokenizer: object = field(repr=False)
    source: Path = None


def embeddings(model, ids, capture=None):
    """Embedding block: LayerNorm(word + position + type-0 embeddings) of ``ids``."""
    cfg = model.config
    ids = check_token_ids(ids, cfg.vocab_size)
    if cfg.position_offset + len(ids) > cfg.max_positions:
        raise ValueError(f"ids has {len(ids)} tokens; the model takes at most "
                         f"{cfg.max_positions - cfg.position_offset}")
    positions = cfg.position_offset + np.arange(len(ids))
    x = model.word_embeddings[ids] + model.position_embeddings[positions] + model.type_embeddings[0]
    record = recorder(capture, "embed.")
    record("sum", x)
    x = layer_norm(x, model.emb_ln_weight, model.emb_ln_bias, cfg.eps)
    record("ln_out", x)
    return x


def encoder_layer(x, layer, config, record):
    """One post-LN BERT layer on ``x (seq, hidden)``; ``record`` gets the per-layer keys."""
    q, k, v = (linear(x, w, b) for w, b in ((layer.wq, layer.bq), (layer.wk, layer.bk),
                                            (layer.wv, layer.bv)))
    record("attn.q", q)
    record("attn.k", k)
    record("attn.v", v)
    scores, probs, context = attention(*(split_heads(t, config.heads) for t in (q, k, v)))
    record("attn.scores", scores)
    record("attn.probs", probs)
    context = merge_heads(context)
    record("attn.context", context)
    attn_out = linear(context, layer.wo, layer.bo)
    record("attn.out", attn_out)
    resid1 = x + attn_out
    record("resid1", resid1)
    h = layer_norm(resid1, layer.ln1_weight, layer.ln1_bias, config.eps)
    record("ln1_out", h)
    down = gelu_ffn(h, layer.w_up, layer.b_up, layer.w_down, layer.b_down,
                    lambda name, a: record("ffn." + name, a))
    resid2 = h + down
    record("resid2", resid2)
    out = layer_norm(resid2, layer.ln2_weight, layer.ln2_bias, config.eps)
    record("ln2_out", out)
    return out


def encode(model, ids, capture=None):
    """Last hidden states ``(seq, hidden)`` of the token ids ``ids`` (one sentence)."""
    x = embeddings(model, ids, capture)
    for i, layer in enumerate(model.layers):
        x = encoder_layer(x, layer, model.config, recorder(capture, f"layer{i}."))
    return x


def embed(model, texts):
    """L2-normalized mean-pooled sentence embeddings ``(n, hidden)`` of ``texts`` (a list of
    strings, or one string), each sentence run alone so every token is a real token."""
    if isinstance(texts, str):
        texts = [texts]
    rows = [encode(model, model.tokenize(text)).mean(axis=0) for text in texts]
    if not rows:
        raise ValueError("texts is empty")
    pooled = np.stack(rows)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def cosine(a, b):
    """Cosine similarity of two vectors."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
