"""What a model asks of the hardware: every operation of one inference (an encoder pass, a
decoder prefill, or one decode step) with its MACs, the bytes it must move and its
arithmetic intensity, grouped by where the time goes (attention vs FFN, prefill vs decode).

Formats follow docs/numerics.md: int8 matmul operands, int32 accumulators, int8/int16/int32
activations between units, weights read once per operation. ``bytes`` counts what crosses
the accelerator's bus if every operation loads its inputs and stores its output once (the
compiler's traffic is at least this; tiling reloads add to it).
"""

from dataclasses import asdict, dataclass

from .models.decoder import DecoderModel
from .models.encoder import EncoderModel

__all__ = ["Operation", "workload", "summarize"]


@dataclass(frozen=True)
class Operation:
    """One operation of a layer, repeated ``count`` times (heads x layers, ...).

    ``kind`` is ``"matmul"`` (``m x k @ k x n``) or a vector unit name (``elements`` per
    instance); ``group`` is ``"attention"``, ``"ffn"``, ``"norm"``, ``"embedding"`` or
    ``"head"`` (the LM head).
    """

    name: str
    kind: str
    group: str
    count: int
    m: int = 0
    k: int = 0
    n: int = 0
    elements: int = 0
    in_bytes: int = 0
    b_bytes: int = 0
    out_bytes: int = 0

    @property
    def macs(self):
        return self.count * self.m * self.k * self.n

    @property
    def bytes(self):
        return self.count * (self.in_bytes + self.b_bytes + self.out_bytes)

    @property
    def intensity(self):
        """MACs per byte moved."""
        return self.macs / self.bytes if self.bytes else 0.0

    def as_dict(self):
        return {**asdict(self), "macs": self.macs, "bytes": self.bytes,
                "intensity": round(self.intensity, 3)}


def _matmul(name, group, count, m, k, n, out_bytes=4):
    """``A (m x k, int8) @ B (k x n, int8: a weight, or K/V)`` with an int32 result."""
    return Operation(name, "matmul", group, count, m, k, n, in_bytes=m * k, b_bytes=k * n,
                     out_bytes=m * n * out_bytes)


def _vector(name, kind, group, count, elements, in_bytes=4, out_bytes=1):
    return Operation(name, kind, group, count, elements=elements,
                     in_bytes=elements * in_bytes, out_bytes=elements * out_bytes)


def _attention(layers, heads, head_dim, queries, keys):
    """Scores, softmax and context of one attention block per layer (K and V, from the
    projections or the KV cache, are the B operands)."""
    return [
        _matmul("scores (Q K^T)", "attention", layers * heads, queries, head_dim, keys),
        _vector("softmax", "softmax", "attention", layers * heads, queries * keys),
        _matmul("context (P V)", "attention", layers * heads, queries, keys, head_dim),
    ]


def _encoder(config, seq):
    d, f, layers = config.hidden, config.ffn, config.layers
    dh = d // config.heads
    return [
        _vector("embedding + LayerNorm", "layernorm", "embedding", 1, seq * d),
        _matmul("Q/K/V projections", "attention", 3 * layers, seq, d, d),
        *_attention(layers, config.heads, dh, seq, seq),
        _matmul("attention output", "attention", layers, seq, d, d),
        _vector("residual + LayerNorm", "layernorm", "norm", 2 * layers, seq * d),
        _matmul("FFN up", "ffn", layers, seq, d, f),
        _vector("GELU", "gelu", "ffn", layers, seq * f, in_bytes=4, out_bytes=1),
        _matmul("FFN down", "ffn", layers, seq, f, d),
    ]


def _decoder(config, queries, keys):
    d, f, layers = config.d, config.ffn, config.layers
    kv = config.kv_heads * config.head_dim
    return [
        _vector("RMSNorm", "rmsnorm", "norm", 2 * layers + 1, queries * d),
        _matmul("Q projection", "attention", layers, queries, d, config.heads * config.head_dim),
        _matmul("K/V projections", "attention", 2 * layers, queries, d, kv),
        *_attention(layers, config.heads, config.head_dim, queries, keys),
        _matmul("attention output", "attention", layers, queries,
                config.heads * config.head_dim, d),
        _matmul("FFN gate/up", "ffn", 2 * layers, queries, d, f),
        _vector("SiLU x up", "mul", "ffn", layers, queries * f),
        _matmul("FFN down", "ffn", layers, queries, f, d),
        _matmul("LM head", "head", 1, 1, d, config.vocab_size),
    ]


def workload(model, seq=128, phase="prefill"):
    """Operations of one inference of ``model`` (a loaded model from ``sw.models``):
    an encoder pass over ``seq`` tokens, a decoder ``"prefill"`` of ``seq`` tokens, or one
    decoder ``"decode"`` step with ``seq`` tokens already in the KV cache."""
    if seq < 1:
        raise ValueError(f"seq must be at least 1, not {seq}")
    if isinstance(model, EncoderModel):
        if phase != "prefill":
            raise ValueError("an encoder has no decode phase")
        return _encoder(model.config, seq)
    if isinstance(model, DecoderModel):
        if phase == "prefill":
            return _decoder(model.config, seq, seq)
        if phase == "decode":
            return _decoder(model.config, 1, seq + 1)
        raise ValueError(f"phase must be 'prefill' or 'decode', not {phase!r}")
    raise TypeError(f"cannot analyze a {type(model).__name__}")


def summarize(operations):
    """Totals and per-group shares of MACs and bytes."""
    macs = sum(op.macs for op in operations)
    total_bytes = sum(op.bytes for op in operations)
    groups = {}
    for op in operations:
        group = groups.setdefault(op.group, {"macs": 0, "bytes": 0})
        group["macs"] += op.macs
        group["bytes"] += op.bytes
    for group in groups.values():
        group["macs_share"] = group["macs"] / macs if macs else 0.0
        group["bytes_share"] = group["bytes"] / total_bytes if total_bytes else 0.0
    return {"macs": macs, "bytes": total_bytes,
            "intensity": macs / total_bytes if total_bytes else 0.0, "groups": groups}
