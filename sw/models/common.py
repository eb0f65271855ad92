"""Pieces shared by the encoder and decoder models: token-id checks and tokenization."""

import numpy as np


def check_token_ids(ids, vocab_size, name="ids"):
    """Return ``ids`` as a 1-D int64 array, raising unless every id is in ``0..vocab_size-1``."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of token ids, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer token ids, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= vocab_size:
        raise ValueError(f"{name} holds ids outside the vocabulary 0..{vocab_size - 1}")
    return arr.astype(np.int64)


class TokenizerMixin:
    """``tokenize``/``decode`` for a model dataclass with a ``tokenizer`` field holding a
    ``tokenizers.Tokenizer`` (padding and truncation off; special tokens such as [CLS]/[SEP]
    or BOS come from its post-processor)."""

    def tokenize(self, text):
        """Token ids of ``text`` with the model's special tokens added."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self.tokenizer.encode(text).ids

    def decode(self, ids, skip_special_tokens=True):
        """Text of the token ids ``ids``."""
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
