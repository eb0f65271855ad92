"""Float references of the vector units (accuracy measurement only, never golden)."""

import math

import numpy as np

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    """Exact ``erf`` element-wise (float64)."""
    return _erf(np.asarray(x, dtype=np.float64)).astype(np.float64)


def gelu(x):
    """Exact-erf GELU: ``x * Phi(x)`` (as in BERT / MiniLM)."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def silu(x):
    """SiLU ``x * sigmoid(x)`` (llama SwiGLU gate), overflow-free."""
    x = np.asarray(x, dtype=np.float64)
    return x * 0.5 * (1.0 + np.tanh(0.5 * x))


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
