"""Utilization over time from sampled performance counters (``RunStats.timeline``, from
``Accelerator(..., backend="verilator", sample_every=N)``), drawn as a PNG.

Each interval between two samples gives the array's share of peak MACs (MACs issued /
(rows * cols * cycles), tile padding included), the bus's share of its peak (bytes fetched,
loaded and stored / (dma_bytes * cycles)) and the cycles each unit stalled on tokens.
"""

from pathlib import Path

import numpy as np

from systolic.hw.csr import COUNTERS

__all__ = ["interval_rates", "plot_timeline"]

_COLUMN = {name.lower(): index for index, name in enumerate(COUNTERS)}


def interval_rates(timeline, config, bins=None):
    """Per interval between samples of ``timeline`` (rows of summed counters) — or, with
    ``bins``, per interval of ``bins`` equal spans of cycles (counters interpolated
    linearly between samples) — a dict of NumPy arrays ``cycle`` (end of the interval),
    ``array`` (MACs issued / peak), ``bus`` (bytes moved / bus peak) and ``load_stall``,
    ``compute_stall``, ``store_stall`` (share of the interval's cycles)."""
    timeline = np.asarray(timeline, dtype=np.int64)
    if timeline.ndim != 2 or timeline.shape[1] != len(COUNTERS) or len(timeline) < 2:
        raise ValueError(f"timeline must have at least two rows of {len(COUNTERS)} counters, "
                         f"not shape {timeline.shape}")
    column = {name: timeline[:, index] for name, index in _COLUMN.items()}
    keep = np.concatenate([[True], np.diff(column["cycles"]) > 0])  # empty intervals
    column = {name: values[keep] for name, values in column.items()}
    if bins is not None:
        edges = np.linspace(column["cycles"][0], column["cycles"][-1], bins + 1)
        column = {name: np.interp(edges, column["cycles"], values)
                  for name, values in column.items()}
    cycles = np.diff(column["cycles"])
    moved = sum(np.diff(column[name]) for name in ("fetch_bytes", "load_bytes", "store_bytes"))
    rates = {"cycle": column["cycles"][1:],
             "array": np.diff(column["macs"]) / (config.rows * config.cols * cycles),
             "bus": moved / (config.dma_bytes * cycles)}
    for unit in ("load", "compute", "store"):
        rates[f"{unit}_stall"] = np.diff(column[f"{unit}_stall"]) / cycles
    return rates


#: Intervals drawn at most (more would blur into a band at PNG resolution).
PLOT_BINS = 400


def plot_timeline(timeline, config, path, title="Utilization over time"):
    """Write a PNG to ``path``: array and bus utilization, and stalls, over accelerator
    cycles (averaged over at most ``PLOT_BINS`` intervals)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = len(timeline) - 1
    rates = interval_rates(timeline, config, PLOT_BINS if samples > PLOT_BINS else None)
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 5.5))
    for key, label in (("array", f"array: MACs / peak ({config.rows}x{config.cols})"),
                       ("bus", f"bus: bytes / peak ({config.dma_bytes} B/cycle)")):
        top.step(rates["cycle"], rates[key], where="pre", label=label, linewidth=1)
    top.set_ylabel("share of peak")
    top.set_ylim(0, 1.05)
    top.legend(loc="upper right", fontsize="small")
    top.set_title(title)
    for unit in ("load", "compute", "store"):
        bottom.step(rates["cycle"], rates[f"{unit}_stall"], where="pre", linewidth=1,
                    label=f"{unit} unit waiting on tokens")
    bottom.set_ylabel("share of cycles")
    bottom.set_xlabel("accelerator cycles")
    bottom.set_ylim(0, 1.05)
    bottom.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
