"""benchmarks/placement.py's path estimate on a hand-made placed netlist."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from placement import TimingGraph, culprit_nets  # noqa: E402


def _ff(d, q):
    return {"type": "TRELLIS_FF", "port_directions": {"DI": "input", "CLK": "input",
                                                      "Q": "output"},
            "connections": {"DI": [d], "CLK": [9], "Q": [q]}}


def test_culprit_net_is_the_longest_hop_of_the_failing_paths():
    """A flip-flop drives a LUT whose output reaches two flip-flops across the die and one
    beside it: the LUT's net is the longest hop of the two far paths, and only those fail."""
    cells = {
        "src": _ff(1, 2),
        "lut": {"type": "LUT4", "port_directions": {"A": "input", "Z": "output"},
                "connections": {"A": [2], "Z": [3]}},
        "far1": _ff(3, 4), "far2": _ff(3, 5), "near": _ff(3, 6),
    }
    netnames = {"d": {"bits": [1]}, "q": {"bits": [2]}, "wide_enable": {"bits": [3]},
                "o1": {"bits": [4]}, "o2": {"bits": [5]}, "o3": {"bits": [6]},
                "clk": {"bits": [9]}}
    where = {"src": (1, 1), "lut": (1, 1), "far1": (100, 90), "far2": (90, 100),
             "near": (2, 1)}
    graph = TimingGraph({"cells": cells, "netnames": netnames}, where)
    ends = graph.endpoints()
    assert [name for _, name, _, _ in ends[:2]] in (["far1", "far2"], ["far2", "far1"])
    # 0.12 ns per unit: 6, 2 per tile of the first 5 in x and in y, 1 per tile beyond;
    # from (1, 1) to (100, 90): 6 + 2 * (5 + 5) + 94 + 84 = 204 units.
    assert ends[0][0] > 24.48
    culprits = culprit_nets(graph, ends, over=8.0)
    assert culprits == [("wide_enable", 2, pytest.approx(24.48), 3)]
