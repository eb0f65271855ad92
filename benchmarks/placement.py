"""Where a design's placement on the ECP5 goes wrong, before routing (which can take hours).

    python benchmarks/placement.py [--rows 8 --cols 8 | --block NAME] [--target ecp5-85k]
        [--seed 1] [--work DIR] [--reuse] [--paths N] [--json]

Maps the design as ``systolic synth`` does (``systolic.sw.synth.netlist``: the synthesis
harness, multipliers filled into the DSP blocks), places it with nextpnr only
(``--no-route --write placed.json``) and, from the cell locations and nextpnr's own
pre-routing estimate of a net's delay (ECP5 ``predictDelay`` at speed grade 6: 0.12 ns per
unit, 6 units plus 2 per tile of the first 5 in x and in y, 1 per tile beyond) plus typical
cell delays, estimates every register-to-register path. It prints nextpnr's estimated Fmax
after placement, where each block's cells and DSP blocks sit (the x and y ranges of the
middle 80% of its cells), the slowest estimated paths hop by hop, the nets that are the
longest hop of the most paths over 8 ns (with their fan-out), and the long nets (over 2 ns)
on paths over 10 ns by the blocks they join. The estimate is rough (no routing
congestion, no fan-out): use it to compare placements, not as an Fmax. ``--block`` places
one block of ``benchmarks/timing.py`` out of context. ``--json`` prints the block rows.
"""

import argparse
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

from systolic.hw.accelerator import AcceleratorTop
from systolic.hw.config import HardwareConfig
from systolic.sw.synth import TARGETS, netlist

#: Delay of a cell from an input to its output, ns (ECP5 speed grade 6, rounded), and a
#: register's or block RAM's clock to output.
CELL_DELAY = {"LUT4": 0.45, "PFUMX": 0.25, "L6MUX21": 0.25, "TRELLIS_DPR16X4": 0.6,
              "MULT18X18D": 4.0}
CARRY_DELAY = {"data": 0.5, "carry": 0.3, "data_to_cout": 0.45, "cout": 0.06}
CLOCK_TO_OUT = {"TRELLIS_FF": 0.5, "DP16KD": 4.6, "MULT18X18D": 1.0}
SETUP = 0.2
#: Cells whose inputs end a path (their clock pins excluded).
SEQUENTIAL = ("TRELLIS_FF", "DP16KD", "TRELLIS_DPR16X4", "MULT18X18D")
CLOCKS = ("CLK", "WCK", "CLKA", "CLKB", "CLK0", "CLK1", "CLK2", "CLK3")


def net_estimate(a, b):
    """nextpnr's ECP5 pre-routing delay estimate (ns) between tiles ``a`` and ``b``."""
    if a is None or b is None:
        return 0.72
    dx, dy = abs(a[0] - b[0]), abs(a[1] - b[1])
    return 0.12 * (6 + max(dx - 5, 0) + max(dy - 5, 0) + 2 * (min(dx, 5) + min(dy, 5)))


def locations(placed):
    """``{cell name: (x, y)}`` from nextpnr's placed design (a carry cell's halves under its
    own name too)."""
    found = {}
    for name, cell in next(iter(placed["modules"].values()))["cells"].items():
        bel = re.match(r"X(\d+)/Y(\d+)", cell.get("attributes", {}).get("NEXTPNR_BEL", ""))
        if bel:
            xy = (int(bel.group(1)), int(bel.group(2)))
            found[name] = xy
            found.setdefault(re.sub(r"\$CCU2_COMB\d$", "", name), xy)
    return found


class TimingGraph:
    """Arrival times over a yosys ECP5 netlist with the cells at ``where``."""

    def __init__(self, module, where):
        self.cells, self.where = module["cells"], where
        self.names, self.driver, self.arcs, self.start = {}, {}, defaultdict(list), {}
        for name, info in module["netnames"].items():
            for bit in info["bits"]:
                if isinstance(bit, int) and (bit not in self.names
                                             or name.count("$") < self.names[bit].count("$")):
                    self.names[bit] = name
        for name, cell in self.cells.items():
            self._add(name, cell)
        self.arrival, self.previous = {}, {}

    def _bits(self, cell, port):
        return [b for b in cell["connections"].get(port, []) if isinstance(b, int)]

    def _add(self, name, cell):
        kind, directions = cell["type"], cell.get("port_directions", {})
        outputs = [p for p, d in directions.items() if d == "output"]
        inputs = [b for p, d in directions.items() if d == "input" and p not in CLOCKS
                  for b in self._bits(cell, p)]
        for port in outputs:
            for bit in self._bits(cell, port):
                self.driver[bit] = (name, port)
        registered_dsp = kind == "MULT18X18D" and \
            cell["parameters"].get("REG_OUTPUT_CLK", "NONE") != "NONE"
        if kind in ("TRELLIS_FF", "DP16KD") or registered_dsp:
            for port in outputs:
                for bit in self._bits(cell, port):
                    self.start[bit] = CLOCK_TO_OUT[kind]
        elif kind == "CCU2C":
            data = [b for p in ("A0", "B0", "C0", "D0", "A1", "B1", "C1", "D1")
                    for b in self._bits(cell, p)]
            carry = self._bits(cell, "CIN")
            for port in ("S0", "S1"):
                for bit in self._bits(cell, port):
                    self.arcs[bit] = [(b, CARRY_DELAY["data"]) for b in data] + \
                        [(b, CARRY_DELAY["carry"]) for b in carry]
            for bit in self._bits(cell, "COUT"):
                self.arcs[bit] = [(b, CARRY_DELAY["data_to_cout"]) for b in data] + \
                    [(b, CARRY_DELAY["cout"]) for b in carry]
        elif kind in CELL_DELAY:
            sources = self._bits(cell, "RAD") if kind == "TRELLIS_DPR16X4" else inputs
            for port in outputs:
                for bit in self._bits(cell, port):
                    self.arcs[bit] = [(b, CELL_DELAY[kind]) for b in sources]

    def net(self, bit, sink):
        """Estimated delay of the net ``bit`` into cell ``sink``: none along a carry chain or
        into a slice's wide multiplexers."""
        source, port = self.driver.get(bit, (None, None))
        if port == "COUT":
            return 0.0
        if self.cells.get(sink, {}).get("type") in ("PFUMX", "L6MUX21") and source and \
                self.cells[source]["type"] in ("LUT4", "PFUMX", "L6MUX21"):
            return 0.0
        return net_estimate(self.where.get(source), self.where.get(sink))

    def arrive(self, bit):
        """Latest arrival at ``bit`` (iteratively: paths run thousands of cells deep)."""
        stack = [bit]
        while stack:
            top = stack[-1]
            if top in self.arrival:
                stack.pop()
                continue
            if top in self.start or top not in self.arcs:
                self.arrival[top] = self.start.get(top, 0.0)
                stack.pop()
                continue
            pending = [b for b, _ in self.arcs[top] if b not in self.arrival]
            if pending:
                stack.extend(pending)
                continue
            sink = self.driver[top][0]
            best, via = 0.0, None
            for source, delay in self.arcs[top]:
                at = self.arrival[source] + self.net(source, sink) + delay
                if at > best:
                    best, via = at, source
            self.arrival[top], self.previous[top] = best, via
            stack.pop()
        return self.arrival[bit]

    def endpoints(self):
        """``[(arrival incl. setup, cell, port, bit)]`` of every sequential input, slowest
        first."""
        ends = []
        for name, cell in self.cells.items():
            if cell["type"] not in SEQUENTIAL:
                continue
            for port, bits in cell["connections"].items():
                if cell.get("port_directions", {}).get(port) != "input" or port in CLOCKS \
                        or (cell["type"] == "TRELLIS_DPR16X4" and port == "RAD"):
                    continue
                for bit in bits:
                    if isinstance(bit, int):
                        ends.append((self.arrive(bit) + self.net(bit, name) + SETUP,
                                     name, port, bit))
        return sorted(ends, reverse=True)

    def path(self, bit):
        """The bits of the slowest path into ``bit``, from its start."""
        bits = []
        while bit is not None:
            bits.append(bit)
            bit = self.previous.get(bit)
        return bits[::-1]


def block_of(name, depth):
    """A cell's or net's block: the first ``depth`` levels of its hierarchical name, without
    the cell types yosys appends to the names of the cells it maps."""
    name = re.split(r"_(?:TRELLIS|LUT4|CCU2C|PFUMX|L6MUX21|MULT18X18D|DP16KD)|\$", name)[0]
    return ".".join(name.split(".")[:depth]) or "?"


def block_rows(cells, where, depth):
    """Per block: cells placed, the x and y ranges of the middle 80% of them, and its DSP
    blocks' x range and rows."""
    spots, dsps = defaultdict(list), defaultdict(list)
    for name, cell in cells.items():
        if name in where:
            spots[block_of(name, depth)].append(where[name])
            if cell["type"] == "MULT18X18D":
                dsps[block_of(name, depth)].append(where[name])

    def middle(values):
        values = sorted(values)
        return [values[len(values) // 10], values[(len(values) - 1) * 9 // 10]]

    rows = []
    for block, xy in sorted(spots.items(), key=lambda kv: -len(kv[1])):
        row = {"block": block, "cells": len(xy), "x": middle(x for x, _ in xy),
               "y": middle(y for _, y in xy), "dsps": len(dsps[block])}
        if dsps[block]:
            row["dsp_x"] = [min(x for x, _ in dsps[block]), max(x for x, _ in dsps[block])]
            row["dsp_rows"] = sorted({y for _, y in dsps[block]})
        rows.append(row)
    return rows


def path_hops(graph, name, bit):
    """``[(delay ns, net, sink cell)]``: the nets of the slowest path into input ``bit`` of
    cell ``name``, in order."""
    path = graph.path(bit)
    sinks = [graph.driver[after][0] for after in path[1:]] + [name]
    return [(graph.net(source, sink), source, sink) for source, sink in zip(path, sinks)]


def long_hops(graph, ends, depth, over=10.0, longer=2.0):
    """``Counter`` of (from block, to block) of the nets longer than ``longer`` ns on the
    slowest paths into the endpoints over ``over`` ns, and the longest of each."""
    hops, longest = Counter(), {}
    for arrival, name, _, bit in ends:
        if arrival < over:
            break
        for delay, source, sink in path_hops(graph, name, bit):
            if delay > longer:
                key = (block_of(graph.names.get(source, "?"), depth), block_of(sink, depth))
                hops[key] += 1
                longest[key] = max(longest.get(key, 0.0), delay)
    return hops, longest


def culprit_nets(graph, ends, over=8.0):
    """``[(net, endpoints, longest ns, fan-out)]``, most endpoints first: for each endpoint
    over ``over`` ns, the net of the longest hop on its slowest path. A net that is the
    longest hop of many failing paths (a reset, a wide register's enable, a flag decoded
    far from its users) is one to replicate, register nearer its users or take off the
    path."""
    fanout = Counter(bit for cell in graph.cells.values()
                     for port, bits in cell["connections"].items()
                     if cell.get("port_directions", {}).get(port) == "input"
                     for bit in bits if isinstance(bit, int))
    count, longest = Counter(), defaultdict(float)
    for arrival, name, _, bit in ends:
        if arrival < over:
            break
        delay, source, _ = max(path_hops(graph, name, bit), key=lambda hop: hop[0])
        count[source] += 1
        longest[source] = max(longest[source], delay)
    return [(graph.names.get(bit, str(bit)), n, longest[bit], fanout[bit])
            for bit, n in count.most_common()]


def place(work, target, seed):
    """nextpnr placement only: ``work/placed.json`` and the estimated Fmax (MHz)."""
    target = TARGETS[target]
    subprocess.run([target.nextpnr, *target.args, "--json", "top.json", "--freq",
                    str(target.freq_mhz), "--seed", str(seed), "--timing-allow-fail",
                    "--no-route", "--write", "placed.json", "--log", "placed.log", "-q"],
                   cwd=work, check=True)


def estimated_fmax(work):
    found = re.findall(r"Max frequency for clock .*?: ([\d.]+) MHz",
                       (Path(work) / "placed.log").read_text())
    return float(found[-1]) if found else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--block", help="one block of benchmarks/timing.py, out of context")
    parser.add_argument("--target", default="ecp5-85k", choices=("ecp5-85k", "ecp5-25k"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", help="directory for top.json, placed.json and the logs "
                        "(default build/placement/<design>)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep top.json / placed.json already in --work")
    parser.add_argument("--paths", type=int, default=5, help="slowest paths to print")
    parser.add_argument("--depth", type=int, default=3, help="hierarchy levels of a block")
    parser.add_argument("--json", action="store_true", help="print the block rows as JSON")
    args = parser.parse_args()

    config = HardwareConfig(rows=args.rows, cols=args.cols)
    if args.block:
        sys.path.insert(0, str(Path(__file__).parent))
        from timing import BLOCKS
        if args.block not in BLOCKS:
            parser.error(f"--block must be one of {', '.join(BLOCKS)}")
        design, component = args.block, BLOCKS[args.block](config)
    else:
        design, component = f"{args.rows}x{args.cols}", AcceleratorTop(config)
    work = Path(args.work or Path("build") / "placement" / f"{design}-{args.target}")
    if not (args.reuse and (work / "top.json").exists()):
        print(f"yosys: mapping {design} into {work}/top.json", file=sys.stderr, flush=True)
        netlist(component, args.target, work)
        (work / "placed.json").unlink(missing_ok=True)
    if not (args.reuse and (work / "placed.json").exists()):
        print("nextpnr: placing (no routing)", file=sys.stderr, flush=True)
        place(work, args.target, args.seed)

    module = json.loads((work / "top.json").read_text())["modules"]["synth_top"]
    where = locations(json.loads((work / "placed.json").read_text()))
    graph = TimingGraph(module, where)
    ends = graph.endpoints()
    rows = block_rows(module["cells"], where, args.depth)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{design} on {args.target}: nextpnr's estimate after placement "
          f"{estimated_fmax(work)} MHz; by this estimate the slowest path {ends[0][0]:.1f} ns, "
          f"{sum(e[0] > 8 for e in ends)} endpoints over 8 ns of {len(ends)}")
    print(f"\n{'block':<50} {'cells':>7}  {'x (10-90%)':>11}  {'y (10-90%)':>11}  DSPs")
    for row in rows[:30]:
        dsp = (f"{row['dsps']} at x {row['dsp_x'][0]}-{row['dsp_x'][1]}, rows "
               f"{','.join(map(str, row['dsp_rows']))}" if row["dsps"] else "")
        print(f"{row['block'][:50]:<50} {row['cells']:>7}  {row['x'][0]:>4} - {row['x'][1]:<4}"
              f"  {row['y'][0]:>4} - {row['y'][1]:<4}  {dsp}")
    shown = set()
    for arrival, name, port, bit in ends:
        if len(shown) >= args.paths:
            break
        key = re.sub(r"\d+", "#", name)
        if key in shown:
            continue
        shown.add(key)
        print(f"\n{arrival:.2f} ns into {name}.{port} at {where.get(name)}")
        for step in graph.path(bit):
            source = graph.driver.get(step, ("?",))[0]
            kind = module["cells"].get(source, {}).get("type", "?")
            print(f"  {graph.arrival.get(step, 0.0):6.2f}  {kind:<10} {str(where.get(source)):<10} "
                  f"{graph.names.get(step, step)[:100]}")
    print("\nthe longest hop of the slowest path into each endpoint over 8 ns, by net: "
          "endpoints, longest (ns), fan-out, net")
    for net, count, delay, fanout in culprit_nets(graph, ends)[:args.paths * 4]:
        print(f"  {count:6d} {delay:5.1f} {fanout:6d}  {net[:100]}")
    hops, longest = long_hops(graph, ends, args.depth)
    print("\nnets over 2 ns on paths over 10 ns: count, longest (ns), from block -> to block")
    for (source, sink), count in hops.most_common(25):
        print(f"  {count:6d} {longest[(source, sink)]:5.1f}  {source[:50]:<50} -> {sink[:60]}")


if __name__ == "__main__":
    main()
