"""Simulated cycles per second of each simulation backend, on the bare array and on the whole
accelerator.

    python benchmarks/sim_speed.py [--json] [--only array|accelerator] [-m M -k K -n N]

Bare array: runs the same random matmul on the Amaranth and cocotb/Icarus backends for 4x4
and 8x8 arrays in both dataflows. Accelerator: runs the same compiled GEMM program (the
driver's ``Accelerator.matmul``) on the 8x8 accelerator on every RTL backend (amaranth,
icarus, verilator), repeating it on fast backends until it has run for a second.

Prints cycles, utilization (useful MACs / (rows * cols * cycles)), wall time (including
elaboration and simulator builds), simulation time and simulated cycles per second (over the
simulation time); accelerator rows add the setup time (elaboration, or generating Verilog
and finding or building the simulator, and a first run that is not measured) and the speed
relative to Amaranth. An Icarus run
starts a simulator process and regenerates the Verilog, which its simulation time includes.
With --json, prints a list of row objects instead (``top`` says which design).
"""

import argparse
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from systolic.hw.config import HardwareConfig  # noqa: E402
from systolic.sim.amaranth_sim import simulate_array  # noqa: E402
from systolic.sim.cocotb.runner import run_testbench  # noqa: E402
from systolic.sim.vectors import matmul_case  # noqa: E402
from systolic.sw.array_schedule import schedule_matmul  # noqa: E402
from systolic.sw.driver import Accelerator  # noqa: E402
from systolic.sw.numerics import matmul_int8  # noqa: E402


def run_amaranth(schedule):
    return simulate_array(schedule)


def run_icarus(schedule):
    params = dict(rows=schedule.rows, cols=schedule.cols, dataflow=schedule.dataflow)
    [run] = run_testbench("array", params, "systolic.sim.cocotb.tb_array", [(schedule, {})])
    return run


BACKENDS = {"amaranth": run_amaranth, "icarus": run_icarus}
#: RTL backends of the whole accelerator (names of systolic.sim.backends); the first is the
#: reference for the speed ratio.
ACCELERATOR_BACKENDS = ("amaranth", "icarus", "verilator")
#: Fast backends repeat the program until they have simulated for this long.
MIN_SIM_SECONDS = 1.0


def measure(backend, rows, cols, dataflow, m, k, n):
    a, b = matmul_case(0, m, k, n)
    schedule = schedule_matmul(a, b, rows, cols, dataflow)
    start = time.perf_counter()
    run = BACKENDS[backend](schedule)
    wall = time.perf_counter() - start
    assert np.array_equal(run.beats, schedule.expected), f"{backend} result mismatch"
    return {
        "top": "array", "backend": backend, "rows": rows, "cols": cols, "dataflow": dataflow,
        "m": m, "k": k, "n": n, "cycles": run.cycles,
        "utilization": round(schedule.useful_macs / (rows * cols * run.cycles), 4),
        "wall_s": round(wall, 3), "sim_s": round(run.sim_seconds, 3),
        "cycles_per_s": round(run.cycles / run.sim_seconds, 1),
    }


def check(accelerator, a, b, backend):
    """Runs ``a @ b`` on ``accelerator`` and checks the result against NumPy."""
    c = accelerator.matmul(a, b)
    assert np.array_equal(c, matmul_int8(a, b)), f"{backend} result mismatch"


def measure_accelerator(backend, rows, cols, dataflow, m, k, n):
    """One row: the GEMM program on ``backend``'s accelerator, repeated while the simulated
    time is under :data:`MIN_SIM_SECONDS`."""
    config = HardwareConfig(rows=rows, cols=cols, dataflow=dataflow)
    a, b = matmul_case(0, m, k, n)
    start = time.perf_counter()
    accelerator = Accelerator(config, backend)
    # Backends elaborate or build on their first run: it is setup, not simulation.
    check(accelerator, a, b, backend)
    setup = time.perf_counter() - start
    sim_s, runs = 0.0, 0
    while sim_s < MIN_SIM_SECONDS:
        check(accelerator, a, b, backend)
        sim_s += accelerator.last_run.wall_s
        runs += 1
    cycles = accelerator.last_run.cycles
    return {
        "top": "accelerator", "backend": backend, "rows": rows, "cols": cols,
        "dataflow": dataflow, "m": m, "k": k, "n": n, "cycles": cycles,
        "utilization": round(m * k * n / (rows * cols * cycles), 4),
        "setup_s": round(setup, 3), "wall_s": round(time.perf_counter() - start, 3),
        "runs": runs, "sim_s": round(sim_s, 3),
        "cycles_per_s": round(cycles * runs / sim_s, 1),
    }


def print_table(rows, columns):
    """``columns``: (heading, width, alignment, format of a row) tuples."""
    header = " ".join(f"{heading:{align}{width}}" for heading, width, align, _ in columns)
    print(header)
    print("-" * len(header))
    for row in rows:
        print(" ".join(f"{form(row):{align}{width}}" for _, width, align, form in columns))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON rows")
    parser.add_argument("--only", choices=("array", "accelerator"),
                        help="measure only the bare array or only the accelerator")
    parser.add_argument("-m", type=int, default=32)
    parser.add_argument("-k", type=int, default=64)
    parser.add_argument("-n", type=int, default=16)
    args = parser.parse_args()
    shape = (args.m, args.k, args.n)
    array_rows = [] if args.only == "accelerator" else [
        measure(backend, size, size, dataflow, *shape)
        for size in (4, 8) for dataflow in ("ws", "os") for backend in BACKENDS]
    accelerator_rows = [] if args.only == "array" else [
        measure_accelerator(backend, 8, 8, "ws", *shape) for backend in ACCELERATOR_BACKENDS]
    for row in accelerator_rows:
        row["vs_amaranth"] = round(row["cycles_per_s"] / accelerator_rows[0]["cycles_per_s"], 1)
    if args.json:
        print(json.dumps(array_rows + accelerator_rows, indent=1))
        return
    common = [("backend", 9, "<", lambda r: r["backend"]),
              ("array", 6, "<", lambda r: f"{r['rows']}x{r['cols']}"),
              ("flow", 4, "<", lambda r: r["dataflow"]),
              ("cycles", 7, ">", lambda r: r["cycles"]),
              ("util", 6, ">", lambda r: f"{r['utilization']:.1%}")]
    timing = [("wall s", 7, ">", lambda r: f"{r['wall_s']:.2f}"),
              ("sim s", 6, ">", lambda r: f"{r['sim_s']:.2f}"),
              ("cycles/s", 9, ">", lambda r: f"{r['cycles_per_s']:.0f}")]
    if array_rows:
        print(f"Bare array, {args.m}x{args.k}x{args.n} matmul")
        print_table(array_rows, common + timing)
    if accelerator_rows:
        print(f"\nAccelerator, {args.m}x{args.k}x{args.n} GEMM program")
        print_table(accelerator_rows,
                    common + [("setup s", 7, ">", lambda r: f"{r['setup_s']:.2f}"),
                              ("runs", 5, ">", lambda r: r["runs"])]
                    + timing + [("vs amaranth", 11, ">", lambda r: f"{r['vs_amaranth']:g}x")])


if __name__ == "__main__":
    main()
