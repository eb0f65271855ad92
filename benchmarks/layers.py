"""Transformer layers on the RTL: one MiniLM encoder layer over a sequence and one SmolLM2
decoding step, compiled by the model compiler and run with every accelerator-side op on the
accelerator (vector units included).

    python benchmarks/layers.py [--backend verilator] [--size 16] [--seq 128]
                                [--position 32] [--layers 1] [--json]

Each model is the real checkpoint truncated to ``--layers`` layers (embedding and, for
SmolLM2, the final norm and the 49152-wide LM head included), quantized as usual. Per run:
cycles (``None`` on the functional backend), the compiler's predicted cycles, array
utilization = useful MACs / (rows * cols * cycles), DMA bytes (LOAD, STORE, instruction
fetch) and the bandwidth roofline: a step that must move ``B`` bytes over a read channel of
``dma_bytes`` bytes per cycle (and a separate write channel) needs at least
``max(load_bytes, store_bytes) / dma_bytes`` cycles; ``roofline`` is that bound over the
measured cycles. Outputs are checked against the integer golden model. ``--json`` prints
a list of row objects.

The configuration is :func:`~systolic.sw.driver.model_config` at ``--size`` (default
16 x 16, weight-stationary, 16-byte bus, vector units as wide as the array).
"""

import argparse
import dataclasses
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from systolic.sw import golden  # noqa: E402
from systolic.sw.compiler.model import StepContext  # noqa: E402
from systolic.sw.driver import Accelerator, model_config  # noqa: E402
from systolic.sw.models import load_model  # noqa: E402
from systolic.sw.runtime import DecoderRunner, EncoderRunner, quantized_graph  # noqa: E402


def truncated(model, layers):
    """``model`` with its first ``layers`` layers only."""
    return dataclasses.replace(model, layers=model.layers[:layers],
                               config=dataclasses.replace(model.config, layers=layers))


def token_ids(model, count, seed=0):
    """``count`` deterministic ids of ordinary tokens."""
    return np.random.default_rng(seed).integers(1000, model.config.vocab_size, count)


def row(name, acc, run, wall, **extra):
    cfg = acc.config
    counters = run.counters
    load, store = counters.get("load_bytes", 0), counters.get("store_bytes", 0)
    roofline = max(load, store) / cfg.dma_bytes
    out = {
        "workload": name, "rows": cfg.rows, "cols": cfg.cols, "dataflow": cfg.dataflow,
        "dma_bytes": cfg.dma_bytes, "backend": acc.backend, **extra,
        "cycles": run.cycles, "predicted_cycles": run.predicted_cycles,
        "utilization": None if run.utilization is None else round(run.utilization, 4),
        "predicted_utilization": round(run.predicted_utilization, 4),
        "useful_macs": run.useful_macs, "load_bytes": load, "store_bytes": store,
        "fetch_bytes": counters.get("fetch_bytes", 0), "instructions": run.instructions,
        "roofline_cycles": round(roofline),
        "roofline": None if not run.cycles else round(roofline / run.cycles, 4),
        "predicted_roofline": round(roofline / run.predicted_cycles, 4),
        "host_ops": sorted(run.host), "wall_s": round(wall, 1),
    }
    return out


def encoder_layer(config, backend, seq, layers):
    """One forward pass of MiniLM (``layers`` layers) over ``seq`` tokens."""
    model = truncated(load_model("minilm"), layers)
    graph = quantized_graph(model)
    acc = Accelerator(config, backend)
    runner = EncoderRunner(acc, model, graph)
    ids = token_ids(model, seq)
    start = time.perf_counter()
    got = runner.hidden_states(ids)
    wall = time.perf_counter() - start
    if not np.array_equal(got, golden.run(graph, ids)[graph.outputs[0]]):
        raise AssertionError("MiniLM layer: hidden states differ from the golden model")
    return row("minilm encoder layer", acc, acc.last_run, wall, layers=layers, seq=seq)


def decoder_step(config, backend, position, layers):
    """One decoding step of SmolLM2 (``layers`` layers) at ``position`` (after a prefill of
    ``position`` tokens, which is not measured)."""
    model = truncated(load_model("smollm2"), layers)
    graph = quantized_graph(model)
    acc = Accelerator(config, backend)
    runner = DecoderRunner(acc, model, graph)
    ids = token_ids(model, position + 1)
    runner._compiler(position, position + 1)
    cache = golden.KVCache()
    want = golden.run(graph, ids[:position], 0, cache)
    want = golden.run(graph, ids[position:], position, cache)[graph.outputs[0]]
    with acc.recording() as stats:
        runner._forward(ids[:position], 0, stats)
    start = time.perf_counter()
    with acc.recording() as stats:
        got = runner._forward(ids[position:], position, stats)
    wall = time.perf_counter() - start
    if not np.array_equal(got, want):
        raise AssertionError("SmolLM2 step: logits differ from the golden model")
    return row("smollm2 decode step", acc, acc.last_run, wall, layers=layers,
               position=position)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="verilator")
    parser.add_argument("--size", type=int, default=16, help="array rows = cols")
    parser.add_argument("--seq", type=int, default=128, help="encoder tokens")
    parser.add_argument("--position", type=int, default=32, help="decoder position")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--only", choices=("encoder", "decoder"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = model_config(args.size, args.size)
    rows = []
    jobs = [("encoder", lambda: encoder_layer(config, args.backend, args.seq, args.layers)),
            ("decoder", lambda: decoder_step(config, args.backend, args.position, args.layers))]
    for name, job in jobs:
        if args.only and name != args.only:
            continue
        rows.append(job())
        if not args.json:
            r = rows[-1]
            measured = "" if r["cycles"] is None else (
                f"cycles {r['cycles']:>9}  util {r['utilization']:6.1%}  "
                f"roofline {r['roofline']:6.1%}  ")
            print(f"{r['workload']:<22} {r['rows']}x{r['cols']} {measured}predicted "
                  f"{r['predicted_cycles']:>9} (util {r['predicted_utilization']:6.1%}, "
                  f"roofline {r['predicted_roofline']:6.1%})  load {r['load_bytes']:>9} B  "
                  f"store {r['store_bytes']:>8} B  fetch {r['fetch_bytes']:>8} B  "
                  f"{r['wall_s']} s", flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
