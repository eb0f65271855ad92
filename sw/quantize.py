"""Post-training quantization of a loaded float model into a :class:`~.graph.Graph`.

Scheme (docs/numerics.md has the full number-format table):

- weights: int8, symmetric, one scale per output channel (``max |W[:, n]| / 127``);
- matmul inputs: int8 with a dynamic per-row (per-token) scale from a ``rowquant`` of the
  wide producer (LayerNorm/RMSNorm, GELU, SwiGLU product, attention context, Q after RoPE);
- K and V: int8 with static scales (K per head, V per channel) so that QK^T and P.V need no
  per-key factor and a KV cache keeps its scale; P: uint8, 1/256;
- wide activations: int16 with a static scale ``margin * max|x| / 32767`` (or a power of two
  for the GELU/SiLU inputs); residual streams and FFN-down outputs int32 with
  ``margin * max|x| / 2**24``. Maxima come from float runs on calibration texts that are
  distinct from the evaluation texts below.
"""

import math
from dataclasses import dataclass

import numpy as np

from .graph import Graph
from .models import DecoderModel, EncoderModel, decoder_logits, encode
from .numerics import (QMAX, RequantParams, ResidualParams, Scale, SoftmaxParams,
                       layernorm_params, rmsnorm_params)

#: MiniLM calibration sentences (never used for evaluation).
CALIBRATION_SENTENCES = (
    "The weather today is sunny with a light breeze from the west.",
    "She opened the old wooden box and found a stack of letters.",
    "Quantum computers use qubits that can exist in superposition.",
    "The committee postponed the vote until next Thursday afternoon.",
    "A small dog chased the ball across the wet green lawn.",
    "Interest rates rose sharply after the central bank meeting.",
    "He forgot his umbrella at the train station again.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Volcanoes release gases such as sulfur dioxide and carbon dioxide.",
    "Our team finally shipped the new version of the mobile app.",
    "Children were building sandcastles near the edge of the sea.",
    "The museum displays paintings from the Dutch Golden Age.",
)
#: The fixed MiniLM evaluation set (10 sentences).
EVALUATION_SENTENCES = (
    "A man is playing a guitar.",
    "Someone is playing an instrument.",
    "The cat sleeps on the warm windowsill all afternoon.",
    "Stock markets fell after the disappointing earnings report.",
    "How do I reset my password if I lost access to my email?",
    "The spacecraft entered orbit around Mars after a seven-month journey.",
    "Fresh bread smells wonderful early in the morning.",
    "Neural networks can be quantized to eight-bit integers with little loss.",
    "The river flooded the village after three days of heavy rain.",
    "Please turn off the lights when you leave the room.",
)
#: SmolLM2 calibration texts (about 590 tokens; none is used for evaluation).
CALIBRATION_TEXTS = (
    "The history of the printing press begins in the fifteenth century, when Johannes "
    "Gutenberg combined movable metal type with an oil-based ink and a wooden press.",
    "To make a simple tomato sauce, warm olive oil in a pan, add chopped garlic, then pour "
    "in crushed tomatoes and let it simmer for twenty minutes.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + "
    "fibonacci(n - 2)\n",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The Industrial Revolution began in Britain in the late eighteenth century. Steam engines "
    "powered new factories, canals and later railways carried coal and cotton, and millions "
    "of people moved from farms into fast-growing cities such as Manchester.",
    "Dear Sarah, thank you for the lovely birthday card. We had a quiet dinner at home and "
    "then watched an old film. I hope your new job is going well and that we can meet for "
    "lunch next month. Love, Tom",
    "Q: What is the largest planet in the solar system?\nA: Jupiter is the largest planet. "
    "It is a gas giant with a mass more than twice that of all the other planets combined.",
    "To install the package, run pip install requests in a terminal. Then import it in your "
    "script and call requests.get with the URL of the page you want to download.",
    "The human heart has four chambers: two atria and two ventricles. Blood returning from "
    "the body enters the right atrium, passes to the right ventricle and is pumped to the "
    "lungs.",
    "In 1969, Neil Armstrong and Buzz Aldrin landed on the Moon while Michael Collins orbited "
    "above in the command module. Armstrong's first words on the surface were heard by "
    "millions of people.",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i, 'is even')\n    else:\n"
    "        print(i, 'is odd')\n",
    "Good morning! Today we will learn how to write a short poem. First, choose a subject you "
    "care about, such as the sea, a friend or a favourite season. Then list words that "
    "describe how it looks, sounds and feels.",
    "The stock price of the company rose by 12 percent on Tuesday after it reported record "
    "quarterly revenue of 4.5 billion dollars and raised its forecast for the rest of the "
    "year.",
    "Bees communicate the location of flowers through a waggle dance. The angle of the dance "
    "relative to the vertical tells other bees the direction of the food relative to the sun.",
    "<|im_start|>user\nCan you recommend a good book about history?<|im_end|>\n"
    "<|im_start|>assistant\nSure! Sapiens by Yuval Noah Harari is a popular overview of "
    "human history.",
    "Tokyo is the capital of Japan and one of the largest cities in the world. Its "
    "neighbourhoods range from the busy streets of Shibuya to the quiet temples of Asakusa.",
)
#: SmolLM2 evaluation text (more than 56 tokens with BOS).
EVALUATION_TEXT = (
    "The capital of France is Paris. It is known for the Eiffel Tower, which was built for "
    "the World's Fair of 1889, and for the Louvre, the most visited art museum in the "
    "world. Every year millions of tourists walk along the Seine, visit Notre-Dame and "
    "enjoy coffee in the small cafes of the old city."
)
#: SmolLM2 held-out texts (189 tokens): used neither for calibration nor for choosing
#: :data:`DECODER_CONFIG`, only to check that its accuracy carries over to unseen text.
HELDOUT_TEXTS = (
    "The Great Barrier Reef lies off the coast of Queensland in Australia. It is made of "
    "thousands of individual reefs and is home to corals, turtles, sharks and countless "
    "species of fish. Rising sea temperatures have caused several mass bleaching events in "
    "recent decades.",
    "Yesterday I went to the market to buy vegetables. The carrots looked fresh, so I bought "
    "a kilogram, along with onions, potatoes and a bunch of parsley. In the evening I made a "
    "thick soup and shared it with my neighbours.",
    "A binary search finds an item in a sorted list by repeatedly halving the range that "
    "could contain it. Each comparison discards half of the remaining elements, so the "
    "search takes time proportional to the logarithm of the list length.",
    "Leonardo da Vinci was an Italian painter, engineer and scientist of the Renaissance. His "
    "notebooks contain drawings of flying machines, studies of anatomy and plans for "
    "bridges, and his portrait of the Mona Lisa hangs in the Louvre.",
)


@dataclass(frozen=True)
class QuantConfig:
    """Knobs of the activation scales.

    Members
    -------
    margin : float
        Static wide scales map ``margin * calibrated max`` to the full int16 range (or to
        ``2**resid_bits`` for int32), so unseen inputs up to ``margin`` times larger do not
        saturate.
    resid_bits : int
        Magnitude bits of the calibrated maximum in int32 residual tensors.
    k_margin, v_margin : float
        Headroom of the static int8 K (per head) and V (per channel) scales: values beyond
        the calibrated maximum occur in unseen text, and clipping them trades against a
        coarser step.
    smooth_attn, smooth_ffn, smooth_down, smooth_head : float or None
        Decoder only: SmoothQuant-style migration strength ``alpha`` of activation outliers
        into the weights (``s_c = max|x_c|**alpha / max|W_c|**(1-alpha)`` per input
        channel) for the inputs of Q/K/V, of gate/up, of down and of the LM head. The
        factors fold into the RMSNorm gammas and into the per-channel multiplier of the
        SwiGLU product, so they cost no hardware. None disables one.
    """

    margin: float = 2.0
    resid_bits: int = 24
    k_margin: float = 1.5
    v_margin: float = 1.5
    smooth_attn: float | None = None
    smooth_ffn: float | None = None
    smooth_down: float | None = None
    smooth_head: float | None = None


#: MiniLM: K/V headroom 1.5 (1.0 measured min cosine 0.9943 instead of 0.9961).
ENCODER_CONFIG = QuantConfig()
#: SmolLM2: tuned on the calibration texts plus held-out texts (docs/numerics.md §6).
DECODER_CONFIG = QuantConfig(k_margin=1.0, v_margin=1.25, smooth_attn=0.8, smooth_ffn=0.7,
                             smooth_down=0.5, smooth_head=0.5)


def _capture_keys(capture):
    """Per key: overall max |x|, per-channel max over the last axis (when that axis is a
    feature axis) and per-head max for (heads, seq, head_dim) tensors."""
    out = {}
    for key, value in capture.items():
        a = np.abs(np.asarray(value, dtype=np.float64))
        entry = {"max": float(a.max())}
        if not key.endswith(("scores", "probs")):
            entry["ch"] = a.reshape(-1, a.shape[-1]).max(axis=0)
        if a.ndim == 3 and not key.endswith(("scores", "probs")):
            entry["head"] = a.max(axis=(1, 2))
        out[key] = entry
    return out


def calibrate(model, texts):
    """Run the float model on ``texts`` (each cut to the model's context) and keep, per
    capture key, the max |x| (overall, per channel, per head) over all of them."""
    cfg = model.config
    context = cfg.max_positions - getattr(cfg, "position_offset", 0)
    stats = {}
    for text in texts:
        capture = {}
        ids = model.tokenize(text)[:context]
        if isinstance(model, EncoderModel):
            encode(model, ids, capture)
        else:
            decoder_logits(model, ids, capture)
        for key, entry in _capture_keys(capture).items():
            if key not in stats:
                stats[key] = entry
                continue
            for field, value in entry.items():
                stats[key][field] = np.maximum(stats[key][field], value)
    return stats


def quantize_weight(w):
    """Per-output-channel symmetric int8 of a float (K, N) weight: ``(w_q int8, scale (N,))``."""
    w = np.asarray(w, dtype=np.float64)
    scale = np.abs(w).max(axis=0) / QMAX
    scale = np.where(scale > 0, scale, 1.0)
    return np.clip(np.round(w / scale), -QMAX, QMAX).astype(np.int8), scale


def gelu_frac_bits(amax, margin):
    """Fraction bits of an int16 fixed-point GELU/SiLU input holding ``margin * amax``."""
    return int(np.clip(math.floor(math.log2(32767 / max(amax * margin, 1e-9))), 4, 15))


class _Builder:
    """Emits the common op patterns into a graph, reading calibrated maxima."""

    def __init__(self, graph, stats, config):
        self.g, self.stats, self.cfg = graph, stats, config
        self.row_sources = {}  # per-row int8 tensor -> the wide tensor it was made from

    def amax(self, *keys):
        return max(float(self.stats[k]["max"]) for k in keys)

    def scale16(self, *keys):
        return self.scale16_of(self.amax(*keys))

    def scale16_of(self, amax):
        return max(amax, 1e-9) * self.cfg.margin / 32767

    def scale32(self, *keys):
        return max(self.amax(*keys), 1e-9) * self.cfg.margin / 2**self.cfg.resid_bits

    def bits(self, name):
        return int(self.g.tensors[name].dtype[3:])

    def scale(self, name):
        return self.g.tensors[name].scale

    def rowquant(self, src):
        """``src`` (int16/int32) -> per-row int8 ``src.q`` and its row scale ``src.rs``."""
        width = self.g.tensors[src].shape
        rs = self.g.tensor(f"{src}.rs", "rowscale", ("seq",))
        q = self.g.tensor(f"{src}.q", "int8", width, self.scale(src), rs)
        self.g.op("rowquant", [src], [q, rs], in_bits=self.bits(src))
        self.row_sources[q] = src
        return q

    def linear(self, xq, w, b, out, out_dtype, out_scale):
        """int8 rows ``xq`` (with row scale) @ quantized ``w`` (+ b) -> ``out``."""
        info = self.g.tensors[xq]
        src_bits = self.bits(self.row_sources[xq])
        wq, sw = quantize_weight(w)
        wname = self.g.weight(f"{out}.w", wq)
        acc = self.g.tensor(f"{out}.acc", "int32", ("seq", wq.shape[1]), info.scale * sw / QMAX,
                            info.row_scale)
        self.g.op("matmul", [xq, wname], [acc])
        self.g.tensor(out, out_dtype, ("seq", wq.shape[1]), out_scale)
        bias = 0.0 if b is None else np.asarray(b, np.float64) / out_scale
        params = RequantParams.from_float(info.scale / QMAX * sw / out_scale, bias,
                                          int(out_dtype[3:]), row_source_bits=src_bits)
        self.g.op("requantize", [acc, info.row_scale], [out], params)
        return out

    def requantize(self, src, out, out_dtype, out_scale):
        """Static-scale conversion of ``src`` to ``out`` (per-channel ``out_scale`` allowed)."""
        self.g.tensor(out, out_dtype, self.g.tensors[src].shape, out_scale)
        mult = np.asarray(self.scale(src), np.float64) / np.asarray(out_scale, np.float64)
        self.g.op("requantize", [src], [out],
                  RequantParams.from_float(mult, 0.0, int(out_dtype[3:])))
        return out

    def norm(self, kind, x, gamma, beta, eps, out, out_scale):
        self.g.tensor(out, "int16", self.g.tensors[x].shape, out_scale)
        if kind == "layernorm":
            params = layernorm_params(gamma, beta, eps, self.scale(x), out_scale, 16)
        else:
            params = rmsnorm_params(gamma, eps, self.scale(x), out_scale, 16)
        self.g.op(kind, [x], [out], params)
        return out

    def add(self, a, b, out, key):
        out_scale = self.scale32(key)
        self.g.tensor(out, "int32", self.g.tensors[a].shape, out_scale)
        params = ResidualParams.from_float(self.scale(a) / out_scale, self.scale(b) / out_scale)
        self.g.op("add", [a, b], [out], params)
        return out

    def activation(self, kind, x, out, frac_bits):
        self.g.tensor(out, "int16", self.g.tensors[x].shape, 2.0**-frac_bits)
        self.g.op(kind, [x], [out], frac_bits=frac_bits)
        return out

    def attention(self, p, qq, k8, v8, heads, kv_heads, head_dim, k_scale, v_scale, causal,
                  ctx_key):
        """Scores, integer softmax and context; returns the int16 context ``p + ctx``."""
        g = self.g
        group = heads // kv_heads
        scores = g.tensor(p + "scores", "int32", (heads, "seq", "keys"))
        g.op("matmul", [qq, k8], [scores], heads=heads, kv_heads=kv_heads, transpose_b=True)
        q_info = g.tensors[qq]
        kh = np.asarray(k_scale).reshape(kv_heads, head_dim)[:, 0]
        params = [SoftmaxParams.from_float(q_info.scale / QMAX * kh[h // group]
                                           / math.sqrt(head_dim), row_source_bits=16)
                  for h in range(heads)]
        probs = g.tensor(p + "probs", "uint8", (heads, "seq", "keys"), 1 / 256)
        g.op("softmax", [scores, q_info.row_scale], [probs], params, causal=causal)
        ctx_acc = g.tensor(p + "ctx.acc", "int32", ("seq", heads * head_dim))
        g.op("matmul", [probs, v8], [ctx_acc], heads=heads, kv_heads=kv_heads)
        v_of_ctx = np.asarray(v_scale).reshape(kv_heads, 1, head_dim).repeat(group, axis=1)
        g.tensors[ctx_acc].scale = v_of_ctx.reshape(-1) / 256
        return self.requantize(ctx_acc, p + "ctx", "int16", self.scale16(ctx_key))


def smooth_factors(act_max, weights, alpha):
    """Per-input-channel SmoothQuant factors ``s`` (activation / s, weight rows * s) for
    activation channel maxima ``act_max`` feeding the (K, N) ``weights``; 1 when ``alpha``
    is None."""
    if alpha is None:
        return np.ones(len(act_max))
    w_max = np.max([np.abs(w).max(axis=1) for w in weights], axis=0).astype(np.float64)
    s = np.maximum(act_max, 1e-5) ** alpha / np.maximum(w_max, 1e-5) ** (1 - alpha)
    return s / np.exp(np.log(s).mean())


def _kv_scales(stats, key, heads, head_dim, margin):
    """Static int8 scales: per head for K (``"head"`` entries), broadcast to channels."""
    entry = stats[key]
    if "head" in entry:
        per_head = entry["head"]
    else:
        per_head = entry["ch"].reshape(heads, head_dim).max(axis=1)
    return np.repeat(np.maximum(per_head, 1e-9) * margin / QMAX, head_dim)


def quantize_encoder(model, texts=CALIBRATION_SENTENCES, config=ENCODER_CONFIG):
    """Quantized graph of a BERT-family :class:`EncoderModel` (post-LN); its output is the
    int16 last hidden state (seq, hidden)."""
    cfg = model.config
    stats = calibrate(model, texts)
    g = Graph(model.name, meta={"arch": "encoder", "hidden": cfg.hidden, "heads": cfg.heads,
                                "layers": cfg.layers})
    b = _Builder(g, stats, config)
    g.inputs = [g.tensor("ids", "ids", ("seq",))]
    tables = (model.word_embeddings, model.position_embeddings, model.type_embeddings[:1])
    emb_scale = sum(float(np.abs(t).max()) for t in tables) / 32767
    names = [g.weight(f"embed.{n}", np.round(t / emb_scale).astype(np.int16))
             for n, t in zip(("word", "position", "type"), tables)]
    emb = g.tensor("embed.sum", "int32", ("seq", cfg.hidden), emb_scale)
    g.op("embed", ["ids"], [emb], tables=list(zip(names, ("token", "position", "type0"))),
         position_offset=cfg.position_offset)
    x = b.norm("layernorm", emb, model.emb_ln_weight, model.emb_ln_bias, cfg.eps, "embed.ln",
               b.scale16("embed.ln_out"))
    hd = cfg.head_dim
    for i, layer in enumerate(model.layers):
        p, key = f"l{i}.", f"layer{i}."
        xq = b.rowquant(x)
        q = b.linear(xq, layer.wq, layer.bq, p + "q", "int16", b.scale16(key + "attn.q"))
        k_scale = _kv_scales(stats, key + "attn.k", cfg.heads, hd, config.k_margin)
        v_scale = np.maximum(stats[key + "attn.v"]["ch"], 1e-9) * config.v_margin / QMAX
        k8 = b.linear(xq, layer.wk, layer.bk, p + "k", "int8", k_scale)
        v8 = b.linear(xq, layer.wv, layer.bv, p + "v", "int8", v_scale)
        ctx = b.attention(p, b.rowquant(q), k8, v8, cfg.heads, cfg.heads, hd, k_scale, v_scale,
                          False, key + "attn.context")
        attn = b.linear(b.rowquant(ctx), layer.wo, layer.bo, p + "attn_out", "int32",
                        b.scale32(key + "resid1"))
        r1 = b.add(x, attn, p + "resid1", key + "resid1")
        h = b.norm("layernorm", r1, layer.ln1_weight, layer.ln1_bias, cfg.eps, p + "ln1",
                   b.scale16(key + "ln1_out"))
        frac = gelu_frac_bits(b.amax(key + "ffn.up"), config.margin)
        up = b.linear(b.rowquant(h), layer.w_up, layer.b_up, p + "up", "int16", 2.0**-frac)
        act = b.activation("gelu", up, p + "act", frac)
        down = b.linear(b.rowquant(act), layer.w_down, layer.b_down, p + "down", "int32",
                        b.scale32(key + "resid2"))
        r2 = b.add(h, down, p + "resid2", key + "resid2")
        x = b.norm("layernorm", r2, layer.ln2_weight, layer.ln2_bias, cfg.eps, p + "ln2",
                   b.scale16(key + "ln2_out"))
    g.outputs = [x]
    g.validate()
    return g


def quantize_decoder(model, texts=CALIBRATION_TEXTS, config=DECODER_CONFIG):
    """Quantized graph of a llama-family :class:`DecoderModel` (causal prefill); its output
    is the int32 logits (seq, vocab)."""
    cfg = model.config
    stats = calibrate(model, texts)
    g = Graph(model.name, meta={"arch": "decoder", "d": cfg.d, "heads": cfg.heads,
                                "kv_heads": cfg.kv_heads, "layers": cfg.layers,
                                "vocab": cfg.vocab_size})
    b = _Builder(g, stats, config)
    g.inputs = [g.tensor("ids", "ids", ("seq",))]
    emb_scale = float(np.abs(model.embedding).max()) / 32767
    table = g.weight("embed.token", np.round(model.embedding / emb_scale).astype(np.int16))
    x = g.tensor("embed", "int32", ("seq", cfg.d), emb_scale)
    g.op("embed", ["ids"], [x], tables=[(table, "token")])
    hd = cfg.head_dim
    for i, layer in enumerate(model.layers):
        p, key = f"l{i}.", f"layer{i}."
        ch1 = stats[key + "rms1_out"]["ch"]
        s1 = smooth_factors(ch1, (layer.wq, layer.wk, layer.wv), config.smooth_attn)
        n1 = b.rowquant(b.norm("rmsnorm", x, layer.rms1_weight / s1, None, cfg.rms_eps,
                               p + "rms1", b.scale16_of((ch1 / s1).max())))
        wq, wk, wv = (w * s1[:, None] for w in (layer.wq, layer.wk, layer.wv))
        q = b.linear(n1, wq, None, p + "q", "int16",
                     b.scale16(key + "attn.q", key + "attn.q_rope"))
        k = b.linear(n1, wk, None, p + "k", "int16",
                     b.scale16(key + "attn.k", key + "attn.k_rope"))
        v_scale = np.maximum(stats[key + "attn.v"]["ch"], 1e-9) * config.v_margin / QMAX
        v8 = b.linear(n1, wv, None, p + "v", "int8", v_scale)
        for name, heads in ((q, cfg.heads), (k, cfg.kv_heads)):
            g.tensor(name + "_rope", "int16", g.tensors[name].shape, b.scale(name))
            g.op("rope", [name], [name + "_rope"], heads=heads, head_dim=hd,
                 theta=cfg.rope_theta)
        k_scale = _kv_scales(stats, key + "attn.k_rope", cfg.kv_heads, hd, config.k_margin)
        k8 = b.requantize(k + "_rope", p + "k8", "int8", k_scale)
        ctx = b.attention(p, b.rowquant(q + "_rope"), k8, v8, cfg.heads, cfg.kv_heads, hd,
                          k_scale, v_scale, True, key + "attn.context")
        o = b.linear(b.rowquant(ctx), layer.wo, None, p + "attn_out", "int32",
                     b.scale32(key + "resid1"))
        r1 = b.add(x, o, p + "resid1", key + "resid1")
        ch2 = stats[key + "rms2_out"]["ch"]
        s2 = smooth_factors(ch2, (layer.w_gate, layer.w_up), config.smooth_ffn)
        n2 = b.rowquant(b.norm("rmsnorm", r1, layer.rms2_weight / s2, None, cfg.rms_eps,
                               p + "rms2", b.scale16_of((ch2 / s2).max())))
        frac = gelu_frac_bits(b.amax(key + "ffn.gate"), config.margin)
        gate = b.linear(n2, layer.w_gate * s2[:, None], None, p + "gate", "int16", 2.0**-frac)
        up = b.linear(n2, layer.w_up * s2[:, None], None, p + "up", "int16",
                      b.scale16(key + "ffn.up"))
        act = b.activation("silu", gate, p + "silu", frac)
        s3 = smooth_factors(stats[key + "ffn.act"]["ch"], (layer.w_down,), config.smooth_down)
        # the product is divided by s3 per channel in the mul unit's multiplier; the output
        # unit is chosen so that the largest multiplier is 1 (no int32 overflow)
        prod_scale = 2.0**-frac * b.scale(up)
        out_unit = prod_scale / s3.min()
        prod = g.tensor(p + "act", "int32", g.tensors[up].shape, out_unit)
        g.op("mul", [act, up], [prod], Scale.from_float(prod_scale / s3 / out_unit, 32))
        down = b.linear(b.rowquant(prod), layer.w_down * s3[:, None], None, p + "down",
                        "int32", b.scale32(key + "resid2"))
        x = b.add(r1, down, p + "resid2", key + "resid2")
    chf = stats["final_norm_out"]["ch"]
    sf = smooth_factors(chf, (model.lm_head,), config.smooth_head)
    nf = b.rowquant(b.norm("rmsnorm", x, model.final_norm_weight / sf, None, cfg.rms_eps,
                           "final_norm", b.scale16_of((chf / sf).max())))
    g.outputs = [b.linear(nf, model.lm_head * sf[:, None], None, "logits", "int32",
                          b.scale32("logits"))]
    g.validate()
    return g


def quantize(model, texts=None, config=None):
    """Quantized graph of any model :func:`~.models.load_model` returns, calibrated on
    ``texts`` with ``config`` (defaults: the built-in calibration set and configuration of
    its kind)."""
    if isinstance(model, EncoderModel):
        return quantize_encoder(model, texts or CALIBRATION_SENTENCES, config or ENCODER_CONFIG)
    if isinstance(model, DecoderModel):
        return quantize_decoder(model, texts or CALIBRATION_TEXTS, config or DECODER_CONFIG)
    raise TypeError(f"model must be an EncoderModel or DecoderModel, not {type(model).__name__}")
