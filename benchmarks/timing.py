"""Out-of-context timing of the accelerator's blocks on an FPGA.

    python benchmarks/timing.py [--blocks load,store] [--profile tiny] [--rows 8 --cols 8]
                                [--lanes 4] [--target ecp5-85k] [--multipliers lut]
                                [--paths] [--json]

Synthesizes each block on its own (``systolic.sw.synth.synthesize``: yosys + nextpnr inside
the two-pin :class:`~systolic.hw.harness.SynthHarness`, results cached in ``build/synth``)
for one :class:`HardwareConfig` (a profile, by default an 8x8 array with 4-lane vector
units, with the options' overrides) and prints block, LUTs, FFs, DSPs, BRAMs and Fmax.
``--paths`` also prints each block's critical path (from nextpnr's report: the registers it
starts and ends at and the nets it crosses). ``--json`` prints a list of row objects (keys
``block``, ``luts``, ``ffs``, ``dsps``, ``brams``, ``fmax_mhz``, ``multipliers``, ``cached``
and, with ``--paths``, ``path``). Runs one synthesis at a time: yowasp tools take minutes
per block.
"""

import argparse
import json
import re
import time
from pathlib import Path

from systolic.hw.axi import AXI4LiteSlave
from systolic.hw.compute import MatmulEngine
from systolic.hw.config import PROFILES, HardwareConfig
from systolic.hw.controller import Controller
from systolic.hw.dma import DMAReader, DMAWriter
from systolic.hw.fetch import Fetch
from systolic.hw.load import LoadUnit
from systolic.hw.norm import LayerNorm, Norm, RMSNorm
from systolic.hw.pwl import Activation, Gelu, Silu
from systolic.hw.read_arbiter import ReadArbiter
from systolic.hw.registers import CSR_ADDR_WIDTH, RegisterBlock
from systolic.hw.rescale import EltwiseMul, Requantize, ResidualAdd, Rescale
from systolic.hw.rowquant import RowQuantize
from systolic.hw.softmax import Softmax
from systolic.hw.store import StoreUnit
from systolic.hw.vector_engine import VectorEngine
from systolic.sw.synth import TARGETS, synthesize

#: Block name -> builder from a HardwareConfig (the accelerator's own instantiation).
BLOCKS = {
    "controller": Controller,
    "matmul_engine": MatmulEngine,
    "vector_engine": VectorEngine,
    "load": LoadUnit,
    "store": StoreUnit,
    "fetch": Fetch,
    "read_arbiter": lambda cfg: ReadArbiter(cfg.addr_width, cfg.dma_bytes, clients=2),
    "dma_reader": lambda cfg: DMAReader(cfg.addr_width, cfg.dma_bytes,
                                        max_outstanding=cfg.dma_outstanding),
    "dma_writer": lambda cfg: DMAWriter(cfg.addr_width, cfg.dma_bytes,
                                        max_outstanding=cfg.dma_outstanding),
    "axil_slave": lambda cfg: AXI4LiteSlave(CSR_ADDR_WIDTH, 32),
    "registers": RegisterBlock,
    "requantize": lambda cfg: Requantize(cfg.vector.lanes),
    "rowquant": lambda cfg: RowQuantize(cfg.vector.lanes, cfg.vector.max_row),
    "softmax": lambda cfg: Softmax(cfg.vector.lanes, cfg.vector.softmax_max_row),
    "layernorm": lambda cfg: LayerNorm(cfg.vector.lanes, cfg.vector.max_row),
    "rmsnorm": lambda cfg: RMSNorm(cfg.vector.lanes, cfg.vector.max_row),
    "norm": lambda cfg: Norm(cfg.vector.lanes, cfg.vector.max_row),  # both, shared
    "gelu": lambda cfg: Gelu(cfg.vector.lanes),
    "silu": lambda cfg: Silu(cfg.vector.lanes),
    "pwl": lambda cfg: Activation(cfg.vector.lanes),  # GELU and SiLU, shared
    "eltwise_mul": lambda cfg: EltwiseMul(cfg.vector.lanes),
    "residual_add": lambda cfg: ResidualAdd(cfg.vector.lanes),
    "eltwise": lambda cfg: Rescale(cfg.vector.lanes, ("mul", "add")),  # the eltwise flag's
    "rescale": lambda cfg: Rescale(cfg.vector.lanes),  # requantize, mul and add, shared
}

COLUMNS = ("block", "luts", "ffs", "dsps", "brams", "fmax_mhz")


def critical_path(report_path, verilog_text=None):
    """The critical path of nextpnr's ``report.json``: start and end cells, the named nets
    it crosses, its delay in ns and, given the synthesized Verilog, the source lines of its
    logic in order."""
    report = json.loads(open(report_path).read())
    steps = report["critical_paths"][0]["path"]
    nets, lines = [], []
    for step in steps:
        # Cell-derived net names trail the cell types they pass through: keep the signal.
        name = re.split(r"_(?:TRELLIS|LUT4|CCU2C|PFUMX|L6MUX|MULT18X18D|DP16KD)|\$CCU2",
                        step.get("net") or "")[0]
        if name and (not nets or nets[-1] != name):
            nets.append(name)
        for source in step.get("sources", ()):
            found = re.match(r"top\.v:(\d+)\.", source)
            if found and int(found.group(1)) not in lines:
                lines.append(int(found.group(1)))
    text = verilog_text.splitlines() if verilog_text else []
    return {"from": steps[0]["from"]["cell"], "to": steps[-1]["to"]["cell"],
            "delay_ns": round(sum(step["delay"] for step in steps), 2), "nets": nets,
            "source": [text[n - 1].strip() for n in lines if n <= len(text)]}


def measure(name, config, target, seed=1, paths=False, multipliers="auto"):
    """One row of the table: resources and Fmax of block ``name`` built from ``config``
    (``multipliers="lut"``: every multiplier from LUTs, as the array's are in a design
    whose DSP blocks run out)."""
    start = time.perf_counter()
    block = BLOCKS[name](config)
    result = synthesize(block, target, seed=seed, multipliers=multipliers)
    row = {"block": name, **{key: result[key] for key in COLUMNS[1:]},
           "multipliers": result["multipliers"], "cached": result["cached"],
           "wall_s": round(time.perf_counter() - start, 1)}
    if paths:
        # The text synthesize() compiled, for the path's source lines.
        text = (Path(result["cache_dir"]) / "top.v").read_text()
        row["path"] = critical_path(f"{result['cache_dir']}/report.json", text)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", default=",".join(BLOCKS),
                        help=f"comma-separated, of: {', '.join(BLOCKS)}")
    parser.add_argument("--target", default="ecp5-85k", choices=sorted(TARGETS))
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--rows", type=int, help="default: 8, or the profile's")
    parser.add_argument("--cols", type=int, help="default: 8, or the profile's")
    parser.add_argument("--dma-bytes", type=int)
    parser.add_argument("--lanes", type=int)
    parser.add_argument("--max-row", type=int)
    parser.add_argument("--softmax-max-row", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--multipliers", default="auto", choices=("auto", "lut"),
                        help="lut: build every multiplier from LUTs (default: DSP blocks "
                             "while they last)")
    parser.add_argument("--paths", action="store_true", help="print critical paths")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    blocks = [name.strip() for name in args.blocks.split(",") if name.strip()]
    unknown = [name for name in blocks if name not in BLOCKS]
    if unknown:
        parser.error(f"unknown blocks {', '.join(unknown)}; choose from {', '.join(BLOCKS)}")
    overrides = {"rows": args.rows, "cols": args.cols} if args.profile != "default" else \
        {"rows": args.rows or 8, "cols": args.cols or 8}
    overrides["dma_bytes"] = args.dma_bytes
    base = HardwareConfig.profile(args.profile)
    vector = {name: value for name, value in (("lanes", args.lanes), ("max_row", args.max_row),
                                              ("softmax_max_row", args.softmax_max_row))
              if value is not None}
    config = HardwareConfig.profile(
        args.profile, **{key: value for key, value in overrides.items() if value is not None},
        vector={**base.vector.__dict__, **vector})
    rows = []
    if not args.json:
        print(f"{args.target}, {args.profile} profile, {config.rows}x{config.cols}, "
              f"dma_bytes={config.dma_bytes}, lanes={config.vector.lanes}")
        print(f"{'block':<14}{'LUTs':>8}{'FFs':>8}{'DSPs':>6}{'BRAMs':>7}{'Fmax MHz':>10}")
    for name in blocks:
        row = measure(name, config, args.target, args.seed, args.paths, args.multipliers)
        rows.append(row)
        if not args.json:
            note = {"dsp": "", "mixed": "  (some multipliers in LUTs)"}.get(
                row["multipliers"], "  (multipliers in LUTs)")
            print(f"{name:<14}{row['luts']:>8}{row['ffs']:>8}{row['dsps']:>6}"
                  f"{row['brams']:>7}{row['fmax_mhz']:>10.1f}{note}", flush=True)
            if args.paths:
                path = row["path"]
                print(f"    {path['delay_ns']} ns: {path['from']} -> {path['to']}")
                print("    via " + ", ".join(path["nets"]))
                for line in path["source"]:
                    print(f"      {line}")
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
