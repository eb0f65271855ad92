"""Resources and Fmax of accelerator configurations on each FPGA target, as a Markdown table.

    python benchmarks/synth_table.py [--pairs 8x8:ecp5-85k,tiny:ice40-up5k] [--all]
                                     [--cached-only] [--write README.md] [--json]

Synthesizes the whole accelerator of each (configuration, target) pair with
``systolic.sw.synth.synthesize_config`` (yosys + nextpnr; results cached in ``build/synth``,
so a table of measured pairs is rebuilt in seconds; the 8x8 accelerator takes about 45
minutes of place-and-route the first time) and prints a Markdown table with LUTs, FFs, DSPs,
block RAMs and Fmax, noting multipliers built from LUTs (which, when the DSP blocks run
out) and designs that do not fit.
``--all`` takes every configuration on every target; ``--cached-only`` reports only pairs
already synthesized (the others are left out); ``--write FILE`` puts the table between the
``<!-- synth-table -->`` and ``<!-- /synth-table -->`` markers of FILE; ``--json`` prints
the rows (keys ``config``, ``target``, ``luts``, ``ffs``, ``dsps``, ``brams``,
``fmax_mhz``, ``multipliers``, ``lut_multipliers``, ``fits``).
"""

import argparse
import json
import re
import time
from pathlib import Path

from systolic.hw.config import VECTOR_UNITS, HardwareConfig
from systolic.sw.synth import TARGETS, synthesize_config

#: Configurations of the table: name -> (HardwareConfig, description).
CONFIGS = {
    "8x8": (HardwareConfig(rows=8, cols=8), "8x8 array, all vector units at 4 lanes"),
    "8x8-novec": (HardwareConfig(rows=8, cols=8, vector=dict.fromkeys(VECTOR_UNITS, False)),
                  "8x8 array, no vector units"),
    "4x4": (HardwareConfig(), "4x4 array, all vector units at 4 lanes"),
    "tiny": (HardwareConfig.profile("tiny"), "`tiny` profile: 2x2 array, no vector units"),
}
#: The pairs measured by default.
PAIRS = (("8x8", "ecp5-85k"), ("8x8-novec", "ecp5-85k"), ("tiny", "ecp5-25k"),
         ("tiny", "ice40-up5k"))
BEGIN, END = "<!-- synth-table -->", "<!-- /synth-table -->"


def measure(name, target, cached_only=False):
    """One table row, or None if ``cached_only`` and the pair was never synthesized."""
    start = time.perf_counter()
    result = synthesize_config(CONFIGS[name][0], target, cached_only=cached_only)
    if result is None:
        return None
    return {"config": name, "target": target,
            **{key: result.get(key) for key in ("luts", "ffs", "dsps", "brams", "fmax_mhz",
                                                 "multipliers", "logic_cells")},
            "lut_multipliers": result.get("lut_multipliers", {}),
            "fits": result.get("fits", True), "overused": result.get("overused", []),
            "cached": result["cached"], "wall_s": round(time.perf_counter() - start, 1)}


def markdown(rows):
    """The Markdown table of ``rows`` (from :func:`measure`)."""
    lines = ["| Configuration | Target | LUTs | FFs | DSPs | BRAMs | Fmax (MHz) | Notes |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        notes = []
        if row["multipliers"] == "lut":
            notes.append("multipliers in LUTs (DSPs exhausted)")
        elif row["multipliers"] == "mixed":
            notes.append("DSPs exhausted; in LUTs: " + ", ".join(
                f"{count} x {group}" for group, count in row["lut_multipliers"].items()))
        if row["logic_cells"] is not None and row["fits"]:
            notes.append(f"{row['logic_cells']} logic cells")
        if not row["fits"]:
            notes.append(f"does not fit: {', '.join(row['overused'])}")
        fmax = f"{row['fmax_mhz']:.1f}" if row["fmax_mhz"] is not None else "—"
        lines.append(f"| {CONFIGS[row['config']][1]} | {row['target']} | {row['luts']} | "
                     f"{row['ffs']} | {row['dsps']} | {row['brams']} | {fmax} | "
                     f"{'; '.join(notes)} |")
    return "\n".join(lines)


def write_between_markers(path, table):
    """Replace the text between the table markers of ``path`` with ``table``."""
    text = Path(path).read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no {BEGIN} ... {END} markers")
    Path(path).write_text(pattern.sub(lambda _: f"{BEGIN}\n{table}\n{END}", text))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default=",".join(f"{c}:{t}" for c, t in PAIRS),
                        help=f"comma-separated config:target; configs {', '.join(CONFIGS)}, "
                             f"targets {', '.join(TARGETS)}")
    parser.add_argument("--all", action="store_true", help="every config on every target")
    parser.add_argument("--cached-only", action="store_true",
                        help="report only pairs already synthesized")
    parser.add_argument("--write", metavar="FILE", help="put the table into FILE")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.all:
        pairs = [(c, t) for c in CONFIGS for t in TARGETS]
    else:
        pairs = [tuple(item.strip().split(":")) for item in args.pairs.split(",")
                 if item.strip()]
    for pair in pairs:
        if len(pair) != 2 or pair[0] not in CONFIGS or pair[1] not in TARGETS:
            parser.error(f"bad pair {':'.join(pair)!r}: config:target with configs "
                         f"{', '.join(CONFIGS)} and targets {', '.join(TARGETS)}")
    rows = [row for row in (measure(c, t, args.cached_only) for c, t in pairs) if row]
    table = markdown(rows)
    if args.write:
        write_between_markers(args.write, table)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(table)


if __name__ == "__main__":
    main()
