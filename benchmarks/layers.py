"""Transformer layers on the RTL: one MiniLM encoder layer over a sequence and one SmolLM2
decoding step, compiled by the model compiler with every accelerator-side op on the
accelerator (vector units included).

    python benchmarks/layers.py [--backend verilator] [--encoder-size 8] [--decoder-size 16]
                                [--seq 128] [--position 32] [--layers 1] [--only encoder]
                                [--json]

Each model is the real checkpoint truncated to ``--layers`` layers (embedding, and for
SmolLM2 the final norm and the 49152-wide LM head, included), quantized as usual, on
:func:`~systolic.sw.driver.model_config` (weight-stationary, 16-byte bus, vector units as
wide as the array): the encoder on 8 x 8 — its vector operations run on the compute unit
between the matmuls, one array row of elements per cycle, so the smaller the array the
smaller their share — and the decoder on 16 x 16, whose weight streaming needs an array
of at least ``dma_bytes`` columns to be bus bound and big tiles to keep instruction fetch
(16 bytes per tile) small.

Every accelerator operation runs as a program of its own, so each one's cycles and
counters are measured separately; host steps run between them. Two rows per model: the
whole pass (``part = "all"``) and its transformer layers only (``"layers"``, without the
embedding's LayerNorm or the LM head). Per row: cycles (``None`` on the functional
backend), the compiler's predicted cycles, array utilization = useful MACs / (rows * cols
* cycles), DMA bytes (LOAD, STORE, instruction fetch) and the bandwidth roofline: moving
the LOAD and STORE bytes over a read and a write channel of ``dma_bytes`` bytes per cycle
takes at least ``max(load_bytes, store_bytes) / dma_bytes`` cycles; ``roofline`` is that
bound over the cycles. Outputs are checked against the integer golden model. ``--json``
prints a list of row objects.
"""

import argparse
import dataclasses
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from systolic.sw import golden  # noqa: E402
from systolic.sw.compiler.model import ModelCompiler, StepContext, halt_word  # noqa: E402
from systolic.sw.driver import Accelerator, model_config  # noqa: E402
from systolic.sw.models import load_model  # noqa: E402
from systolic.sw.runtime import quantized_graph  # noqa: E402


def truncated(model, layers):
    """``model`` with its first ``layers`` layers only."""
    return dataclasses.replace(model, layers=model.layers[:layers],
                               config=dataclasses.replace(model.config, layers=layers))


def token_ids(model, count, seed=0):
    """``count`` deterministic ids of ordinary tokens."""
    return np.random.default_rng(seed).integers(1000, model.config.vocab_size, count)


def run_graph(acc, compiler, memory, ids, start, measured):
    """One forward pass of ``compiler``'s graph over ``ids`` at position ``start``, each
    accelerator operation as a program of its own (so its cycles and counters are its
    own); appends ``{"op", "output", "cycles", "predicted", "macs" (useful), counters...}``
    per operation (vector steps fused into a matmul have no program of their own) to
    ``measured`` and returns the graph's output."""
    ctx = StepContext(ids, start)
    for plan in compiler.plans:
        if plan.where == "host":
            compiler.run_host(plan, memory, ctx)
            continue
        fragment = compiler.fragment(plan, ctx)
        if not fragment.words:  # a vector step fused into its matmul
            continue
        program = np.frombuffer(fragment.words + halt_word(), np.uint8)
        address = compiler.layout.size
        memory.grow(address + len(program))
        memory.array[address:address + len(program)] = program
        result = acc.run_image(memory, address, len(program) // 16,
                               max_cycles=20 * fragment.predicted["total"] + 10**5)
        # The MACS counter counts whole array rows (padding included): useful ones override.
        measured.append({**result.counters, "op": plan.kind, "output": plan.op.outputs[0],
                         "cycles": result.cycles, "predicted": fragment.predicted["total"],
                         "macs": fragment.macs})
    return compiler.output(memory, ctx)


def summary(name, acc, ops, wall, **extra):
    """A row over the operations ``ops`` (entries of :func:`run_graph`)."""
    cfg = acc.config
    peak = cfg.rows * cfg.cols
    measured = all(op["cycles"] is not None for op in ops)
    cycles = sum(op["cycles"] for op in ops) if measured else None
    predicted = sum(op["predicted"] for op in ops)
    macs = sum(op["macs"] for op in ops)
    moved = {key: sum(op.get(key, 0) for op in ops)
             for key in ("load_bytes", "store_bytes", "fetch_bytes", "instructions")}
    roofline = max(moved["load_bytes"], moved["store_bytes"]) / cfg.dma_bytes
    return {
        "workload": name, "rows": cfg.rows, "cols": cfg.cols, "dataflow": cfg.dataflow,
        "dma_bytes": cfg.dma_bytes, "backend": acc.backend, **extra,
        "operations": len(ops), "cycles": cycles, "predicted_cycles": predicted,
        "utilization": round(macs / (peak * cycles), 4) if cycles else None,
        "predicted_utilization": round(macs / (peak * predicted), 4),
        "useful_macs": macs, **moved, "roofline_cycles": round(roofline),
        "roofline": round(roofline / cycles, 4) if cycles else None,
        "predicted_roofline": round(roofline / predicted, 4), "wall_s": round(wall, 1),
    }


def in_layer(op):
    """The operation belongs to a transformer layer (not the embedding or the head)."""
    return op["output"].startswith("l") and op["output"].split(".")[0][1:].isdigit()


def rows_of(name, acc, ops, wall, **extra):
    """The whole pass (with its operations' measured and predicted cycles), and its layers
    only."""
    whole = summary(name, acc, ops, wall, part="all", **extra)
    whole["per_op"] = [{key: op[key] for key in ("op", "output", "cycles", "predicted")}
                       for op in ops]
    return [whole, summary(name, acc, [op for op in ops if in_layer(op)], wall,
                           part="layers", **extra)]


def encoder_layer(config, backend, seq, layers, per_op=None):
    """One forward pass of MiniLM (``layers`` layers) over ``seq`` tokens."""
    model = truncated(load_model("minilm"), layers)
    graph = quantized_graph(model)
    acc = Accelerator(config, backend)
    compiler = ModelCompiler(graph, config, seq, seq)
    memory = compiler.memory()
    ids = token_ids(model, seq)
    ops = [] if per_op is None else per_op
    start = time.perf_counter()
    got = run_graph(acc, compiler, memory, ids, 0, ops)
    wall = time.perf_counter() - start
    if not np.array_equal(got, golden.run(graph, ids)[graph.outputs[0]]):
        raise AssertionError("MiniLM layer: hidden states differ from the golden model")
    return rows_of("minilm encoder", acc, ops, wall, layers=layers, seq=seq)


def decoder_step(config, backend, position, layers, per_op=None):
    """One decoding step of SmolLM2 (``layers`` layers, final norm and LM head) at
    ``position``, after a prefill of ``position`` tokens (on the functional simulator, not
    measured)."""
    model = truncated(load_model("smollm2"), layers)
    graph = quantized_graph(model)
    acc = Accelerator(config, backend)
    compiler = ModelCompiler(graph, config, position, position + 1)
    memory = compiler.memory()
    ids = token_ids(model, position + 1)
    cache = golden.KVCache()
    golden.run(graph, ids[:position], 0, cache)
    want = golden.run(graph, ids[position:], position, cache)[graph.outputs[0]]
    # The prefill only fills the KV cache (host memory): the functional simulator does it.
    run_graph(Accelerator(config, "functional"), compiler, memory, ids[:position], 0, [])
    ops = [] if per_op is None else per_op
    start = time.perf_counter()
    got = run_graph(acc, compiler, memory, ids[position:], position, ops)
    wall = time.perf_counter() - start
    if not np.array_equal(got, want):
        raise AssertionError("SmolLM2 step: logits differ from the golden model")
    return rows_of("smollm2 decode step", acc, ops, wall, layers=layers, position=position)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="verilator")
    parser.add_argument("--encoder-size", type=int, default=8, help="array rows = cols")
    parser.add_argument("--decoder-size", type=int, default=16, help="array rows = cols")
    parser.add_argument("--seq", type=int, default=128, help="encoder tokens")
    parser.add_argument("--position", type=int, default=32, help="decoder position")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--only", choices=("encoder", "decoder"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    jobs = {"encoder": lambda: encoder_layer(model_config(args.encoder_size, args.encoder_size),
                                             args.backend, args.seq, args.layers),
            "decoder": lambda: decoder_step(model_config(args.decoder_size, args.decoder_size),
                                            args.backend, args.position, args.layers)}
    for name, job in jobs.items():
        if args.only and name != args.only:
            continue
        rows += job()
        if not args.json:
            for r in rows[-2:]:
                measured = "" if r["cycles"] is None else (
                    f"cycles {r['cycles']:>9}  util {r['utilization']:6.1%}  "
                    f"roofline {r['roofline']:6.1%}  ")
                print(f"{r['workload']:<20} {r['part']:<6} {r['rows']}x{r['cols']} "
                      f"bus {r['dma_bytes']} B  {measured}predicted {r['predicted_cycles']:>9} "
                      f"(util {r['predicted_utilization']:6.1%}, roofline "
                      f"{r['predicted_roofline']:6.1%})  load {r['load_bytes']:>9} B  "
                      f"store {r['store_bytes']:>8} B  fetch {r['fetch_bytes']:>8} B  "
                      f"{r['wall_s']} s", flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
