"""The compiler's cycle prediction (``sw/compiler/cost.py``) against the Verilated RTL.

    python benchmarks/predict.py [--quick] [--vector] [--json]

Points: GEMMs of several shapes (square, decode-like 1 x K x N, tall and short) on
weight- and output-stationary arrays from 3x5 to 16x16 with 4- to 16-byte buses and tiny to
large memories, and MiniLM truncated to one layer on an 8x8 array without vector units (its
matmuls on the accelerator, one program each). ``--vector`` adds the MiniLM layer at 128
tokens with every vector unit (:func:`~systolic.sw.driver.model_config`; its Verilator build
takes several minutes). Prints measured and predicted cycles and the relative error per
point; ``--json`` prints a list of row objects with ``workload``, ``rows``, ``cols``,
``dataflow``, ``dma_bytes``, ``cycles``, ``predicted_cycles``, ``error``.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from systolic.hw.config import VECTOR_UNITS, HardwareConfig, VectorUnitsConfig  # noqa: E402
from systolic.sim.backends import create_backend  # noqa: E402
from systolic.sim.vectors import matmul_case  # noqa: E402
from systolic.sw.compiler.cost import predict_cycles  # noqa: E402
from systolic.sw.compiler.gemm import compile_gemm  # noqa: E402
from systolic.sw.driver import Accelerator, HostImage  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from gemm import config_for  # noqa: E402
from layers import encoder_layer, token_ids, truncated  # noqa: E402

NO_VECTOR = VectorUnitsConfig(**dict.fromkeys(VECTOR_UNITS, False))
TINY_WS = HardwareConfig(rows=4, cols=4, spad_lines=64, acc_lines=32, vector=NO_VECTOR)
TINY_OS = HardwareConfig(rows=3, cols=5, dataflow="os", spad_lines=64, acc_lines=32,
                         dma_bytes=4, vector=NO_VECTOR)
OS_8 = HardwareConfig(rows=8, cols=8, dataflow="os", spad_lines=4096, acc_lines=2048,
                      vector=NO_VECTOR)
#: (configuration, M, K, N)
GEMMS = [
    (TINY_WS, 40, 48, 24), (TINY_OS, 17, 23, 31), (TINY_OS, 1, 40, 60),
    (OS_8, 64, 96, 80), (OS_8, 1, 256, 256),
    (config_for(8, "ws"), 128, 128, 128), (config_for(8, "ws"), 1, 576, 1536),
    (config_for(8, "ws"), 200, 100, 50), (config_for(8, "ws"), 8, 512, 512),
    (config_for(16, "ws"), 256, 256, 256), (config_for(16, "ws"), 1, 1536, 576),
    (config_for(16, "ws"), 512, 64, 512),
]
QUICK = [GEMMS[0], GEMMS[1], GEMMS[3], GEMMS[5], GEMMS[6], GEMMS[10]]


def describe(config):
    return {"rows": config.rows, "cols": config.cols, "dataflow": config.dataflow,
            "dma_bytes": config.dma_bytes, "spad_lines": config.spad_lines,
            "acc_lines": config.acc_lines, "vector_units": bool(config.vector.units)}


def point(workload, config, cycles, predicted, wall):
    return {"workload": workload, **describe(config), "cycles": cycles,
            "predicted_cycles": predicted, "error": round((predicted - cycles) / cycles, 4),
            "wall_s": round(wall, 1)}


def gemm_point(backends, config, m, k, n):
    a, b = matmul_case(m + k + n, m, k, n)
    image = HostImage()
    program = compile_gemm(config, a, b, image)
    words = np.frombuffer(b"".join(int(w).to_bytes(16, "little") for w in program.words),
                          np.uint8)
    prog_addr = image.add(words)
    key = repr(config)
    if key not in backends:
        backends[key] = create_backend("verilator", config)
        backends[key].max_cycles = 50_000_000
    start = time.perf_counter()
    result = backends[key].run(image.array(), prog_addr, len(program.words))
    wall = time.perf_counter() - start
    if not np.array_equal(program.result(result.memory), a.astype(np.int64) @ b):
        raise AssertionError(f"{m}x{k}x{n}: result differs from NumPy")
    predicted = predict_cycles(config, program.instructions)["total"]
    return point(f"gemm {m}x{k}x{n}", config, result.cycles, predicted, wall)


def layer_point(config, seq):
    """MiniLM truncated to one layer over ``seq`` tokens (vector operations on the host when
    the configuration has no vector units)."""
    from systolic.sw.models import load_model
    from systolic.sw.runtime import EncoderRunner, quantized_graph

    model = truncated(load_model("minilm"), 1)
    acc = Accelerator(config, "verilator")
    runner = EncoderRunner(acc, model, quantized_graph(model))
    start = time.perf_counter()
    runner.hidden_states(token_ids(model, seq))
    run = acc.last_run
    return point(f"minilm layer, {seq} tokens ({run.programs} programs)", config, run.cycles,
                 run.predicted_cycles, time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="six small points")
    parser.add_argument("--vector", action="store_true",
                        help="add the MiniLM layer with vector units (long build)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows, backends = [], {}
    jobs = [lambda c=c, m=m, k=k, n=n: gemm_point(backends, c, m, k, n)
            for c, m, k, n in (QUICK if args.quick else GEMMS)]
    if not args.quick:
        jobs.append(lambda: layer_point(HardwareConfig(rows=8, cols=8, dma_bytes=16,
                                                       vector=NO_VECTOR), 32))
    if args.vector:
        jobs.append(lambda: vector_layer_point())
    for job in jobs:
        rows.append(job())
        if not args.json:
            r = rows[-1]
            print(f"{r['rows']:>2}x{r['cols']:<2} {r['dataflow']} bus {r['dma_bytes']:>2} B  "
                  f"{r['workload']:<36} measured {r['cycles']:>9}  predicted "
                  f"{r['predicted_cycles']:>9}  error {r['error']:+6.1%}", flush=True)
    if not args.json:
        errors = np.abs([r["error"] for r in rows])
        print(f"{len(rows)} points: mean |error| {errors.mean():.1%}, max {errors.max():.1%}, "
              f"{(errors <= 0.05).sum()} within 5%")
    else:
        print(json.dumps(rows, indent=1))


def vector_layer_point():
    from systolic.sw.driver import model_config

    config = model_config(8, 8)
    start = time.perf_counter()
    whole = encoder_layer(config, "verilator", 128, 1)[0]  # the whole pass
    return point("minilm layer, 128 tokens, vector units", config, whole["cycles"],
                 whole["predicted_cycles"], time.perf_counter() - start)


if __name__ == "__main__":
    main()
