"""GEMM utilization on the RTL, including all DMA.

    python benchmarks/gemm.py [--backend verilator] [--sizes 8,16] [--quick] [--json]

Runs ``Accelerator.matmul`` (the compiler's tiling, the accelerator's LOAD/MATMUL/STORE
program, host memory behind AXI) on square and skinny GEMMs up to 512^3 for each array size
and prints cycles, utilization = useful MACs / (rows * cols * cycles), the compiler's
predicted cycles, DMA bytes, wall time and simulated cycles per second. Every result is
checked against NumPy. ``--json`` prints a list of row objects (keys include ``m``, ``k``,
``n``, ``rows``, ``cols``, ``backend``, ``cycles``, ``utilization``, ``predicted_cycles``).

The accelerators are those of :func:`config_for`: no vector units (a GEMM does not use
them; they only lengthen the Verilator build).
"""

import argparse
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from systolic.hw.config import VECTOR_UNITS, HardwareConfig, VectorUnitsConfig  # noqa: E402
from systolic.sw.compiler.cost import predict_cycles  # noqa: E402
from systolic.sw.compiler.gemm import compile_gemm  # noqa: E402
from systolic.sim.vectors import matmul_case  # noqa: E402
from systolic.sw.driver import Accelerator, HostImage  # noqa: E402

#: (m, k, n): square, then skinny shapes (decode-like 1 x K x N, tall-thin, short-wide).
SHAPES = [(64, 64, 64), (128, 128, 128), (256, 256, 256), (512, 512, 512),
          (1, 576, 1536), (8, 512, 512), (512, 512, 8), (512, 64, 512)]
QUICK = [(64, 64, 64), (128, 128, 128), (1, 576, 1536)]


def config_for(size, dataflow, dma_bytes=None):
    """An accelerator with memories sized for large GEMMs: 8 x 8 with a 32 KiB scratchpad
    and a 64 KiB accumulator, 16 x 16 with 128 KiB and 256 KiB (Gemmini's sizes), a bus as
    wide as an array row unless ``dma_bytes`` is given, no vector units."""
    spad_lines, acc_lines = (4096, 2048) if size <= 8 else (8192, 4096)
    return HardwareConfig(rows=size, cols=size, dataflow=dataflow, spad_lines=spad_lines,
                          acc_lines=acc_lines, dma_bytes=dma_bytes or min(size, 32),
                          vector=VectorUnitsConfig(**dict.fromkeys(VECTOR_UNITS, False)))


def measure(acc, m, k, n, seed=0):
    a, b = matmul_case(seed, m, k, n)
    start = time.perf_counter()
    c = acc.matmul(a, b)
    wall = time.perf_counter() - start
    if not np.array_equal(c, a.astype(np.int64) @ b):
        raise AssertionError(f"{m}x{k}x{n}: result differs from NumPy")
    run, cfg = acc.last_run, acc.config
    predicted = predict_cycles(cfg, compile_gemm(cfg, a, b, HostImage()).instructions)["total"]
    return {
        "m": m, "k": k, "n": n, "rows": cfg.rows, "cols": cfg.cols,
        "dataflow": cfg.dataflow, "dma_bytes": cfg.dma_bytes, "backend": acc.backend,
        "cycles": run.cycles, "utilization": round(run.utilization, 4),
        "predicted_cycles": predicted,
        "predicted_utilization": round(m * k * n / (cfg.rows * cfg.cols * predicted), 4),
        "load_bytes": run.counters["load_bytes"], "store_bytes": run.counters["store_bytes"],
        "bytes_per_cycle": round((run.counters["load_bytes"] + run.counters["store_bytes"])
                                 / run.cycles, 3),
        "wall_s": round(wall, 2), "cycles_per_s": round(run.cycles / wall),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="verilator")
    parser.add_argument("--sizes", default="8,16", help="array sizes (square), comma-separated")
    parser.add_argument("--dataflow", default="ws", choices=("ws", "os"))
    parser.add_argument("--dma-bytes", type=int, help="bus bytes (default: the array size)")
    parser.add_argument("--quick", action="store_true", help="small shapes only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for size in map(int, args.sizes.split(",")):
        acc = Accelerator(config_for(size, args.dataflow, args.dma_bytes), backend=args.backend)
        if hasattr(acc._sim, "max_cycles"):  # 512^3 on 8 x 8 runs past the default hang limit
            acc._sim.max_cycles = 50_000_000
        for m, k, n in QUICK if args.quick else SHAPES:
            rows.append(measure(acc, m, k, n))
            if not args.json:
                r = rows[-1]
                print(f"{r['rows']:>2}x{r['cols']:<2} {r['dataflow']} {m:>4}x{k:<4}x{n:<5} "
                      f"cycles {r['cycles']:>9}  util {r['utilization']:6.1%}  "
                      f"predicted {r['predicted_cycles']:>9}  "
                      f"bus {r['bytes_per_cycle']:5.2f} B/cycle  {r['wall_s']:6.1f} s "
                      f"({r['cycles_per_s']:,} cycles/s)", flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
