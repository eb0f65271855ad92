"""Float references of the vector units (accuracy measurement only, never golden)."""

import numpy as np

# The float functions the GELU and SiLU tables are built from live with the tables.
from systolic.hw.formats import erf, gelu_reference as gelu, silu_reference as silu  # noqa: F401


def softmax(x, valid=None):
    """Row softmax along the last axis; ``valid`` (bool, same shape) excludes positions.
    Rows with no valid position give zeros."""
    x = np.asarray(x, dtype=np.float64)
    if valid is None:
        valid = np.ones(x.shape, dtype=bool)
    mx = np.where(valid, x, -np.inf).max(axis=-1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    e = np.where(valid, np.exp(np.where(valid, x - mx, 0.0)), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def layernorm(x, gamma, beta, eps):
    """LayerNorm over the last axis (biased variance, as in PyTorch)."""
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def rmsnorm(x, gamma, eps):
    """llama RMSNorm over the last axis."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.sqrt((x**2).mean(axis=-1, keepdims=True) + eps) * gamma
