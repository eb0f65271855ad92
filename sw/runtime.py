"""Running real Transformers on the accelerator: ``acc.load_model("minilm")`` returns an
:class:`EncoderRunner` (``embed(texts)``), ``acc.load_model("smollm2")`` a
:class:`DecoderRunner` (``generate(prompt, n_tokens)``).

A runner quantizes the float model once (``sw/quantize.py``; cached per model), compiles the
graph for the accelerator's :class:`HardwareConfig` (``sw/compiler/model.py``) and executes it:
accelerator fragments run as programs on the chosen backend, host steps (embedding lookup,
RoPE, KV-cache transposition, ops whose unit is absent) run on the host-memory image between
them. The decoder's KV cache lives in that image; each decoding step appends one position.
On the ``"golden"`` backend the runners execute the integer golden model (``sw/golden.py``)
instead, with the same inputs, outputs and validation.

``acc.last_run`` (:class:`~systolic.sw.driver.RunStats`) describes the last call: cycles
(``None`` on the functional and golden backends), MACs, utilization, counters, predicted
cycles, and the host steps with the bytes they moved.
"""

import numpy as np
from tqdm import tqdm

from . import golden
from .compiler.model import ModelCompiler, StepContext, halt_word
from .models import DecoderModel, EncoderModel, load_model
from .quantize import quantize

__all__ = ["EncoderRunner", "DecoderRunner", "load_runner", "quantized_graph"]

_GRAPHS = {}
#: A program runs at most this many times its predicted cycles before a cycle-accurate
#: backend reports a hang.
HANG_FACTOR = 20


def quantized_graph(model):
    """The quantized graph of a loaded model (computed once per model object)."""
    entry = _GRAPHS.get(id(model))
    if entry is None or entry[0] is not model:
        entry = _GRAPHS[id(model)] = (model, quantize(model))
    return entry[1]


def load_runner(accelerator, name_or_path):
    """The runner of a known model name or checkpoint path on ``accelerator``."""
    model = load_model(name_or_path)
    graph = quantized_graph(model)
    if isinstance(model, EncoderModel):
        return EncoderRunner(accelerator, model, graph)
    if isinstance(model, DecoderModel):
        return DecoderRunner(accelerator, model, graph)
    raise TypeError(f"unsupported model type {type(model).__name__}")


class _Runner:
    """What encoder and decoder runners share: compilation per capacity and execution."""

    def __init__(self, accelerator, model, graph):
        self.accelerator, self.model, self.graph = accelerator, model, graph
        self.config = accelerator.config
        self._compiled = None
        self._memory = None

    @property
    def golden(self):
        return self.accelerator.backend == "golden"

    def _tokens(self, text, what):
        if not isinstance(text, str):
            raise TypeError(f"{what} must be a str, not {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"{what} is empty")
        ids = self.model.tokenize(text)
        if not ids:
            raise ValueError(f"{what} has no tokens")
        return np.asarray(ids, dtype=np.int64)

    def _ids(self, ids, what):
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError(f"{what} must be a non-empty 1-D sequence of token ids")
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"{what} must hold integer token ids, not {ids.dtype}")
        if ids.min() < 0 or ids.max() >= self.model.config.vocab_size:
            raise ValueError(f"{what} holds ids outside the vocabulary "
                             f"0..{self.model.config.vocab_size - 1}")
        return ids.astype(np.int64)

    def _compiler(self, max_seq, max_keys):
        """A compiler (and host-memory image) with room for the request, reused while big
        enough."""
        c = self._compiled
        if c is None or c.max_seq < max_seq or c.max_keys < max_keys:
            c = self._compiled = ModelCompiler(self.graph, self.config, max_seq, max_keys)
            self._memory = c.memory()
        return c

    def _forward(self, ids, start, stats):
        """One run of the graph on the tokens ``ids`` at ``start``; returns the integer
        output tensor."""
        compiler, mem = self._compiled, self._memory
        ctx = StepContext(ids, start)
        pending = []
        for plan in compiler.plans:
            if plan.where == "accelerator":
                fragment = compiler.fragment(plan, ctx)
                pending.append(fragment)
                stats.add_fragment(plan, fragment)
                continue
            self._run_program(pending, stats)
            pending = []
            stats.add_host(plan, compiler.run_host(plan, mem, ctx))
        self._run_program(pending, stats)
        return compiler.output(mem, ctx)

    def _run_program(self, fragments, stats):
        if not fragments:
            return
        mem = self._memory
        program = np.frombuffer(b"".join(f.words for f in fragments) + halt_word(), np.uint8)
        address = self._compiled.layout.size
        mem.grow(address + len(program))
        mem.array[address:address + len(program)] = program
        predicted = sum(f.predicted["total"] for f in fragments)
        stats.add_run(self.accelerator.run_image(mem, address, len(program) // 16,
                                                 max_cycles=HANG_FACTOR * predicted + 10**5))


class EncoderRunner(_Runner):
    """Sentence embeddings of a BERT-family encoder (mean pooling, L2-normalized)."""

    def embed(self, texts, progress=False):
        """Embeddings ``(len(texts), hidden)`` (float64) of a str or a list of str. The integer
        model output is bit-exact with ``golden.run``; only the pooling is float."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise ValueError("texts is empty")
        limit = self.model.config.max_positions
        token_ids = []
        for i, text in enumerate(texts):  # validate everything before running anything
            ids = self._tokens(text, f"text {i}")
            if len(ids) > limit:
                raise ValueError(f"text {i} has {len(ids)} tokens; the model allows {limit}")
            token_ids.append(ids)
        if not self.golden:
            longest = max(len(ids) for ids in token_ids)
            self._compiler(longest, longest)
        rows = []
        with self.accelerator.recording() as stats:
            for ids in tqdm(token_ids, desc="embed", unit="text", disable=not progress):
                rows.append(golden.sentence_embedding(self.graph, self._hidden(ids, stats)))
        return np.stack(rows)

    def _hidden(self, ids, stats):
        if self.golden:
            stats.add_golden(self.graph, ids, 0)
            return golden.run(self.graph, ids)[self.graph.outputs[0]]
        return self._forward(ids, 0, stats)

    def hidden_states(self, text):
        """The integer last hidden states (what ``golden.run`` outputs) of one text or of a
        sequence of token ids."""
        ids = self._tokens(text, "text") if isinstance(text, str) else self._ids(text, "ids")
        if len(ids) > self.model.config.max_positions:
            raise ValueError(f"{len(ids)} tokens exceed the model's "
                             f"{self.model.config.max_positions} positions")
        if not self.golden:
            self._compiler(len(ids), len(ids))
        with self.accelerator.recording() as stats:
            return self._hidden(ids, stats)


class DecoderRunner(_Runner):
    """Greedy generation with a llama-family decoder and a KV cache."""

    def generate(self, prompt, n_tokens, stop_at_eos=True, progress=False):
        """Up to ``n_tokens`` greedily generated token ids after ``prompt`` (a str, or a list
        of token ids); stops after an EOS id when ``stop_at_eos``."""
        ids = self.prompt_ids(prompt, n_tokens)
        out = []
        with self.accelerator.recording() as stats:
            if not n_tokens:
                return out
            step = self._golden_step if self.golden else self._accelerator_step
            if not self.golden:
                self._compiler(len(ids), len(ids) + n_tokens)
            cache = golden.KVCache()
            with tqdm(total=n_tokens, desc="generate", unit="token",
                      disable=not progress) as bar:
                logits = step(ids, 0, cache, stats)
                while True:
                    token = int(np.argmax(logits[-1]))
                    out.append(token)
                    bar.update()
                    if len(out) == n_tokens or (stop_at_eos
                                                and token in self.model.config.eos_ids):
                        return out
                    logits = step(np.array([token]), len(ids) + len(out) - 1, cache, stats)

    def prompt_ids(self, prompt, n_tokens):
        """The token ids of ``prompt`` after checking that ``n_tokens`` more fit the model."""
        if isinstance(n_tokens, bool) or not isinstance(n_tokens, (int, np.integer)) \
                or n_tokens < 0:
            raise ValueError(f"n_tokens must be a non-negative integer, not {n_tokens!r}")
        ids = self._tokens(prompt, "prompt") if isinstance(prompt, str) \
            else self._ids(prompt, "prompt")
        limit = self.model.config.max_positions
        if len(ids) + n_tokens > limit:
            raise ValueError(f"{len(ids)} prompt tokens + {n_tokens} new tokens exceed the "
                             f"model's {limit} positions")
        return ids

    def _golden_step(self, ids, start, cache, stats):
        stats.add_golden(self.graph, ids, start)
        return golden.run(self.graph, ids, start, cache)[self.graph.outputs[0]]

    def _accelerator_step(self, ids, start, cache, stats):
        return self._forward(ids, start, stats)
