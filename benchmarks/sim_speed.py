"""Simulated cycles per second of each simulation backend on the bare array.

    python benchmarks/sim_speed.py [--json]

Runs the same random matmul on every backend for 4x4 and 8x8 arrays in both dataflows and
prints cycles, utilization (useful MACs / (rows * cols * cycles)), wall time (including
elaboration and simulator builds), simulation time and simulated cycles per second (over the
simulation time). With --json, prints a list of row objects instead.
"""

import argparse
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from systolic.sim.amaranth_sim import simulate_array  # noqa: E402
from systolic.sim.cocotb.runner import run_testbench  # noqa: E402
from systolic.sim.vectors import matmul_case  # noqa: E402
from systolic.sw.array_schedule import schedule_matmul  # noqa: E402


def run_amaranth(schedule):
    return simulate_array(schedule)


def run_icarus(schedule):
    params = dict(rows=schedule.rows, cols=schedule.cols, dataflow=schedule.dataflow)
    [run] = run_testbench("array", params, "systolic.sim.cocotb.tb_array", [(schedule, {})])
    return run


BACKENDS = {"amaranth": run_amaranth, "icarus": run_icarus}


def measure(backend, rows, cols, dataflow, m, k, n):
    a, b = matmul_case(0, m, k, n)
    schedule = schedule_matmul(a, b, rows, cols, dataflow)
    start = time.perf_counter()
    run = BACKENDS[backend](schedule)
    wall = time.perf_counter() - start
    assert np.array_equal(run.beats, schedule.expected), f"{backend} result mismatch"
    return {
        "backend": backend, "rows": rows, "cols": cols, "dataflow": dataflow,
        "m": m, "k": k, "n": n, "cycles": run.cycles,
        "utilization": round(schedule.useful_macs / (rows * cols * run.cycles), 4),
        "wall_s": round(wall, 3), "sim_s": round(run.sim_seconds, 3),
        "cycles_per_s": round(run.cycles / run.sim_seconds, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON rows")
    parser.add_argument("-m", type=int, default=32)
    parser.add_argument("-k", type=int, default=64)
    parser.add_argument("-n", type=int, default=16)
    args = parser.parse_args()
    rows = [measure(backend, size, size, dataflow, args.m, args.k, args.n)
            for size in (4, 8) for dataflow in ("ws", "os") for backend in BACKENDS]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    header = f"{'backend':<9} {'array':<6} {'flow':<4} {'cycles':>7} {'util':>6} " \
             f"{'wall s':>7} {'sim s':>6} {'cycles/s':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['backend']:<9} {row['rows']}x{row['cols']:<4} {row['dataflow']:<4} "
              f"{row['cycles']:>7} {row['utilization']:>6.1%} {row['wall_s']:>7.2f} "
              f"{row['sim_s']:>6.2f} "
              f"{row['cycles_per_s']:>9.0f}")


if __name__ == "__main__":
    main()
