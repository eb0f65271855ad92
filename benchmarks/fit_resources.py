"""Measure and fit the explorer's FPGA resource model (``systolic.sw.resources``).

    python benchmarks/fit_resources.py [--family ecp5|ice40] [--measure] [--only N,...]

Synthesizes (yosys only, ``synthesize(..., place=False)``: LUT/FF/DSP/BRAM counts without
place-and-route; results cached in ``build/synth``) a handful of small accelerators and
every vector unit on its own, then fits the per-family coefficients and writes them with the
raw measurements and the leave-one-out error to ``sw/data/resources_<family>.json``.
Without ``--measure`` the measurements already in that file are refitted and nothing is
synthesized. Runs one synthesis at a time: a whole accelerator takes minutes to an hour.
"""

import argparse
import json
import subprocess
import sys
import time

from systolic.hw.config import VECTOR_UNITS
from systolic.hw.verilog import build_top
from systolic.sw import resources
from systolic.sw.synth import synthesize

NO_VECTOR = dict.fromkeys(VECTOR_UNITS, False)


def _accelerator(target, rows, cols, dataflow="ws", vector=None, options=None, **memory):
    """An accelerator measurement: vector units absent unless ``vector`` gives their
    lanes (all units) and row sizes; ``options`` of the synthesis (forced LUT
    multipliers)."""
    params = {"rows": rows, "cols": cols, "dataflow": dataflow, **memory,
              "vector": dict(vector) if vector else dict(NO_VECTOR)}
    return {"target": target, "top": "accelerator", "params": params,
            **({"options": options} if options else {})}


def _unit(target, top, lanes, max_row=None):
    params = {"lanes": lanes} if max_row is None else {"lanes": lanes, "max_row": max_row}
    return {"target": target, "top": top, "params": params}


def _units(target):
    """Every vector unit at 4 and 8 lanes; the row units at their first row size there and
    at their second one with 4 lanes."""
    entries = []
    for top, rows in resources.UNIT_TOPS.items():
        first = rows[0] if rows else None
        entries += [_unit(target, top, 4, first), _unit(target, top, 8, first)]
        entries += [_unit(target, top, 4, row) for row in rows[1:]]
    return entries


#: The matmul epilogues.
EPILOGUE_UNITS = ("requantize", "rowquant")


def _vector(lanes, units=VECTOR_UNITS, max_row=2048, softmax_max_row=512):
    return {"lanes": lanes, "max_row": max_row, "softmax_max_row": softmax_max_row,
            **{unit: unit in units for unit in VECTOR_UNITS}}


def plan(family):
    """What to synthesize for ``family``: every vector unit (:func:`_units`), then
    accelerators from 2x2 up, in DSP, mixed and LUT multiplier modes, with and without vector
    units, varying dataflow, bus width and memories (iCE40: small accelerators only).
    yosys takes 3 to 5 minutes for a 4x4 accelerator without vector units, 15 to 60 for an
    8x8 one or one with every vector unit."""
    if family == "ecp5":
        big = "ecp5-85k"
        return _units(big) + [
            _accelerator(big, 2, 2),
            _accelerator(big, 4, 4),
            _accelerator(big, 8, 8),
            _accelerator(big, 8, 8, "os"),
            _accelerator(big, 4, 16, dma_bytes=16),
            _accelerator(big, 8, 8, dma_bytes=32),
            _accelerator(big, 8, 8, spad_lines=8192, acc_lines=4096),
            _accelerator(big, 4, 4, vector=_vector(4)),      # 170 DSPs: LUT multipliers
            _accelerator(big, 4, 8),
            _accelerator(big, 4, 4, vector=_vector(4, EPILOGUE_UNITS)),
            _accelerator(big, 4, 4, options={"multipliers": "lut"}),  # forced
            _accelerator(big, 4, 4, "os", dma_bytes=16),
            _accelerator(big, 4, 8, vector=_vector(8, EPILOGUE_UNITS)),
            # 39 DSP blocks wanted, 28 there: the PEs' multipliers in LUTs ("mixed")
            _accelerator("ecp5-25k", 6, 6),
            # the default 8x8 (`systolic synth --rows 8 --cols 8`): 195 DSP blocks wanted,
            # 156 there; the other multipliers take 131, 25 PEs the blocks left ("mixed")
            _accelerator(big, 8, 8, vector=_vector(4, max_row=1024, softmax_max_row=4096)),
        ]
    if family == "ice40":
        target = "ice40-up5k"  # vector units: the ECP5 ones (resources.UNITS_FROM)
        return [
            _accelerator(target, 1, 1),
            _accelerator(target, 2, 2),
            _accelerator(target, 4, 4),
            _accelerator(target, 4, 4, "os", dma_bytes=4),
            _accelerator(target, 2, 2, vector=_vector(4, EPILOGUE_UNITS)),
        ]
    raise ValueError(f"family must be one of {', '.join(resources.FAMILIES)}, not {family!r}")


def _commit():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "hw"], capture_output=True,
                               text=True, check=True).stdout.strip()
        return head + ("+dirty-hw" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure(entry):
    start = time.perf_counter()
    result = synthesize(build_top(entry["top"], **entry["params"]), entry["target"],
                        place=False, **entry.get("options", {}))
    return {**entry, **{key: result[key] for key in resources.RESOURCES},
            "multipliers": result["multipliers"],
            **{key: result[key] for key in ("lut_multipliers",) if key in result},
            "synth_s": None if result["cached"] else round(time.perf_counter() - start, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=resources.FAMILIES, default="ecp5")
    parser.add_argument("--measure", action="store_true",
                        help="Synthesize the measurements missing from the data file.")
    parser.add_argument("--only", help="Comma-separated indices of the plan to measure.")
    args = parser.parse_args()

    path = resources.data_path(args.family)
    data = json.loads(path.read_text()) if path.exists() else {"measurements": []}
    known = {resources.measurement_key(m): m for m in data["measurements"]}
    entries = plan(args.family)
    if args.only:
        entries = [entries[int(i)] for i in args.only.split(",")]
    for index, entry in enumerate(entries):
        key = resources.measurement_key(entry)
        if key in known or not args.measure:
            continue
        print(f"[{index + 1}/{len(entries)}] {entry['target']} {entry['top']} "
              f"{json.dumps(entry['params'])}", file=sys.stderr, flush=True)
        known[key] = {**measure(entry), "commit": _commit()}
        data["measurements"] = list(known.values())
        resources.write_data(args.family, data["measurements"])
        m = known[key]
        print(f"    LUTs {m['luts']} FFs {m['ffs']} DSPs {m['dsps']} BRAMs {m['brams']} "
              f"({m['multipliers']}) in {m['synth_s']} s", file=sys.stderr, flush=True)
    model = resources.write_data(args.family, list(known.values()))
    print(resources.error_table(model))


if __name__ == "__main__":
    main()
