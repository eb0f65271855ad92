"""Design-space exploration: which :class:`~systolic.hw.config.HardwareConfig` runs a model
fastest on a given FPGA.

For every point of a sweep over the array shape and dataflow, the memories, the DMA bus
width and the vector units (:func:`sweep`), :func:`evaluate` compiles the model for that
configuration with the real compiler (``sw/compiler/model.py``) and reads its cycle
prediction (``sw/compiler/cost.py``), its bus traffic (the LOAD/STORE instructions it
emitted) and the work it leaves to the host; :mod:`systolic.sw.resources` predicts LUTs,
FFs, DSPs and block RAMs and whether they fit the target. :func:`pareto` keeps the points no
other point beats in both cycles and resources, :func:`recommend` picks the fastest point that
fits, and :func:`plot` draws the Pareto front and the roofline of the recommended point.

Everything here is *predicted*; nothing is simulated or synthesized:

* **Cycles** are the compiler's per-fragment predictions (calibrated against Verilator, see
  docs/compiler.md). Transformer layers are identical in shape, so only the first layer is
  compiled and its cost multiplied by the number of layers (``layers_scaled`` in the
  workload; :func:`evaluate` with ``scale_layers=False`` compiles every layer, with the same
  result).
* **Host time**: operations the accelerator lacks a unit for (and embedding lookup, RoPE,
  the KV-cache transposition) run on the host, which reads and writes the shared memory.
  They are charged ``host_cycles_per_byte`` accelerator cycles per byte moved
  (:data:`HOST_CYCLES_PER_BYTE`, an assumption, not a measurement).
* **Resources** come from the fitted model, whose leave-one-out error is reported with it.
"""

import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass, replace
from itertools import product

import numpy as np

from systolic.hw.config import VECTOR_UNITS, HardwareConfig, VectorUnitsConfig
from systolic.hw.isa import VECTOR_UNIT, Opcode

from .compiler.cost import predict_cycles
from .compiler.model import VECTOR_FUNCS, ModelCompiler, StepContext
from .compiler.scheduler import Scheduler
from .resources import RESOURCES, ResourceModel, capacity

__all__ = ["Workload", "Point", "Step", "HOST_CYCLES_PER_BYTE", "DEFAULT_SHAPES",
           "load_workload", "sweep", "compile_steps", "predict", "evaluate", "host_bytes",
           "transfer_bytes", "parse_shapes", "report",
           "explore", "Exploration", "pareto", "recommend", "plot", "describe", "MAX_USAGE"]

#: Accelerator cycles the host spends per byte it reads or writes in shared memory (an
#: assumed soft-core or bus-attached host, about 0.5 byte per accelerator cycle).
HOST_CYCLES_PER_BYTE = 2.0
#: Array shapes (rows, cols) of the default sweep: squares and 1:2 rectangles.
DEFAULT_SHAPES = ((4, 4), (8, 8), (8, 16), (16, 8), (12, 12), (16, 16), (16, 32), (32, 16),
                  (24, 24), (32, 32))
#: Scratchpad / accumulator sizes (KiB) of the default sweep: a small pair and a large one
#: (Gemmini's defaults are 256 / 64 KiB). Lines are the largest power of two that fits.
DEFAULT_MEMORIES = ((32, 32), (128, 64))
DEFAULT_DMA_BYTES = (8, 16, 32)
#: Vector-unit lanes of the sweep (wider units cost more DSPs than an 85k ECP5 has).
LANES = (4, 8)
#: Configurations predicted to need more than this multiple of any resource of the target
#: are not compiled (they could not be built on it anyway).
MAX_USAGE = 1.5
#: Longest softmax row a configuration provides for (power of two, at most the default).
SOFTMAX_ROW_CAP = 4096
_RESOURCE_NAMES = {"luts": "LUTs", "ffs": "FFs", "dsps": "DSPs", "brams": "BRAMs"}
_LAYER = re.compile(r"^l(\d+)\.")
_ELEMENT_BYTES = {"int16": 2, "int32": 4, "rowscale": 4}


@dataclass
class Workload:
    """A quantized model and what one inference of it is: an encoder pass over ``seq``
    tokens, a decoder ``prefill`` of ``seq`` tokens, or one decoder ``decode`` step (a token
    per step) with ``seq`` tokens already cached."""

    name: str
    model: object
    graph: object
    seq: int
    phase: str

    @property
    def decoder(self):
        from .models import DecoderModel

        return isinstance(self.model, DecoderModel)

    @property
    def unit(self):
        return "token" if self.phase == "decode" else "inference"

    @property
    def layers(self):
        return len({int(_LAYER.match(name).group(1)) for op in self.graph.ops
                    for name in op.outputs[:1] if _LAYER.match(name)})

    def context(self):
        """``(max_seq, max_keys, StepContext)`` of one inference."""
        if self.phase == "decode":
            return 1, self.seq + 1, StepContext(np.zeros(1, np.int64), self.seq)
        return self.seq, self.seq, StepContext(np.zeros(self.seq, np.int64), 0)

    def vector_units(self):
        """The vector units (:data:`VECTOR_UNITS` flags) the model's operations use."""
        return tuple(u for u in VECTOR_UNITS
                     if any(VECTOR_UNIT[VECTOR_FUNCS[op.kind]] == u for op in self.graph.ops
                            if op.kind in VECTOR_FUNCS))

    def row_sizes(self):
        """``(max_row, softmax_max_row)`` a configuration needs so that every norm and row
        quantization runs on its unit, and softmax for up to the model's positions (capped
        at :data:`SOFTMAX_ROW_CAP`): powers of two."""
        rows = [self.graph.tensors[op.inputs[0]].shape[-1] for op in self.graph.ops
                if op.kind in ("layernorm", "rmsnorm", "rowquant")]
        max_row = 1 << (max(rows) - 1).bit_length()
        positions = self.model.config.max_positions
        return max_row, min(SOFTMAX_ROW_CAP, 1 << (positions - 1).bit_length())


def load_workload(name_or_path, seq=32, phase=None):
    """The :class:`Workload` of a model name or checkpoint path (quantized once per model);
    ``phase`` defaults to ``"decode"`` for decoders and ``"prefill"`` for encoders."""
    from .models import DecoderModel, load_model
    from .runtime import quantized_graph

    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise ValueError(f"seq must be a positive integer, not {seq!r}")
    model = load_model(name_or_path)
    decoder = isinstance(model, DecoderModel)
    phase = phase or ("decode" if decoder else "prefill")
    allowed = ("prefill", "decode") if decoder else ("prefill",)
    if phase not in allowed:
        raise ValueError(f"phase must be {' or '.join(map(repr, allowed))} for "
                         f"{name_or_path} ({'a decoder' if decoder else 'an encoder'}), "
                         f"not {phase!r}")
    limit = model.config.max_positions - (phase == "decode")
    if seq > limit:
        raise ValueError(f"seq {seq} exceeds the model's {model.config.max_positions} "
                         "positions")
    return Workload(str(name_or_path), model, quantized_graph(model), seq, phase)


# -- the sweep ---------------------------------------------------------------------------

def sweep(workload, shapes=DEFAULT_SHAPES, dataflows=("ws", "os"), memories=DEFAULT_MEMORIES,
          dma_bytes=DEFAULT_DMA_BYTES, vector=("none", "epilogue", "all")):
    """The configurations to evaluate: every combination of array shape, dataflow,
    memories (``(scratchpad KiB, accumulator KiB)``), bus width and vector units.
    ``vector``: ``"none"`` (every vector operation on the host), ``"epilogue"`` (requantize
    and rowquant, the matmul epilogues), ``"all"`` (every unit the model uses) — the last
    two with each of :data:`LANES` (at most ``cols``). Row buffers are sized for the model
    (:meth:`Workload.row_sizes`)."""
    max_row, softmax_row = workload.row_sizes()
    used = workload.vector_units()
    unit_sets = {"none": (), "epilogue": tuple(u for u in ("requantize", "rowquant")
                                               if u in used), "all": used}
    configs = []
    for (rows, cols), dataflow, (spad_kib, acc_kib), dma in product(shapes, dataflows,
                                                                    memories, dma_bytes):
        spad = _lines(spad_kib, max(rows, cols))
        acc = _lines(acc_kib, 4 * cols)
        for choice in vector:
            if choice not in unit_sets:
                raise ValueError(f"vector must be among {', '.join(unit_sets)}, not "
                                 f"{choice!r}")
            units = unit_sets[choice]
            for lanes in sorted({min(n, cols) for n in LANES}) if units else (4,):
                flags = {u: u in units for u in VECTOR_UNITS}
                configs.append(HardwareConfig(
                    rows=rows, cols=cols, dataflow=dataflow, spad_lines=spad, acc_lines=acc,
                    dma_bytes=dma, vector=VectorUnitsConfig(
                        lanes=lanes, max_row=max_row, softmax_max_row=softmax_row, **flags)))
    return list(dict.fromkeys(configs))


def _lines(kib, line_bytes):
    """The most lines of ``line_bytes`` bytes, a power of two, in ``kib`` KiB (2..65536)."""
    return min(65536, max(2, 1 << ((kib * 1024 // line_bytes).bit_length() - 1)))


# -- one point ---------------------------------------------------------------------------

def transfer_bytes(instructions):
    """Bytes the LOAD and STORE ``instructions`` move over the bus (rows x row bytes)."""
    return sum(i.fields["rows"] * i.fields["row_bytes"] for i in instructions
               if i.opcode in (Opcode.LOAD, Opcode.STORE))


def _elements(shape, rows, ctx):
    sizes = {"seq": rows, "keys": ctx.keys}
    return math.prod(sizes.get(d, d) for d in shape)


def host_bytes(compiler, plan, ctx):
    """Bytes the host step ``plan`` reads and writes in shared memory (as
    :meth:`ModelCompiler.run_host` counts them when it runs)."""
    g, op = compiler.graph, plan.op
    if plan.kind == "kv_append":
        keys = next(n for n in op.outputs if n in compiler.keys)
        return 2 * _elements(g.tensors[keys].shape, ctx.seq, ctx)
    if plan.kind == "transpose":
        return 2 * _elements(g.tensors[op.inputs[0]].shape, ctx.seq, ctx)

    def nbytes(name, reading):
        info = g.tensors[name]
        rows = ctx.keys if reading and name in compiler.values else ctx.seq
        if info.dtype == "rowscale":
            return 4 * rows
        return _elements(info.shape, rows, ctx) * _ELEMENT_BYTES.get(info.dtype, 1)

    return sum(nbytes(n, True) for n in op.inputs if n in g.tensors and n != "ids") + \
        sum(nbytes(n, False) for n in op.outputs)


def _op_name(plan):
    """A layer-independent name of a plan's operation: its output without the layer
    prefix (``q``, ``scores``, ``up``...), with the kind for non-matmuls."""
    name = _LAYER.sub("", plan.op.outputs[0]).removesuffix(".acc")
    return name if plan.kind == "matmul" else f"{name} ({plan.kind})"


@dataclass
class Point:
    """One evaluated configuration (all values predicted).

    Members
    -------
    config : HardwareConfig
    cycles : int
        Accelerator cycles of one inference (compiler prediction).
    host_cycles : int
        Host time in accelerator cycles (:data:`HOST_CYCLES_PER_BYTE` per host byte).
    macs : int
        Useful multiply-accumulates.
    bus_bytes, host_bytes : int
        Bytes the accelerator's DMA moves; bytes the host steps move.
    resources : dict
        ``{"luts", "ffs", "dsps", "brams", "multipliers"}``.
    fits : bool
    operations : dict
        Per operation: ``{"kind", "macs", "bus_bytes", "cycles"}`` (for the roofline).
    """

    config: HardwareConfig
    cycles: int
    host_cycles: int
    macs: int
    bus_bytes: int
    host_bytes: int
    resources: dict = None
    fits: bool = None
    operations: dict = None
    usage: float = None

    @property
    def total_cycles(self):
        return self.cycles + self.host_cycles

    @property
    def utilization(self):
        return self.macs / (self.config.rows * self.config.cols * self.cycles)

    def as_dict(self, pareto=False):
        return {"config": self.config.to_dict(), "cycles": self.cycles,
                "host_cycles": self.host_cycles, "total_cycles": self.total_cycles,
                "utilization": round(self.utilization, 4), "macs": self.macs,
                "bus_bytes": self.bus_bytes, "host_bytes": self.host_bytes,
                "resources": self.resources, "usage": round(self.usage, 4),
                "fits": self.fits, "pareto": pareto}


@dataclass
class Step:
    """One step of an inference, compiled once and counted ``weight`` times (the layers
    that repeat it): accelerator instructions with their MACs, or a host step's bytes."""

    name: str
    kind: str
    weight: int
    instructions: list = None
    macs: int = 0
    bus_bytes: int = 0
    host_bytes: int = 0
    vector: bool = False
    fingerprint: str = None


def compile_steps(workload, config, scale_layers=True):
    """The :class:`Step` list of one inference of ``workload`` on ``config``. With
    ``scale_layers`` a step is compiled once and weighted by the number of layers that
    repeat it (steps match by kind and output name without the layer prefix). The
    instructions do not depend on the vector ``lanes``, so one compilation serves every
    configuration that differs only in those (:func:`explore` relies on it; the bus width
    does matter: it sets the length of the DMA commands)."""
    max_seq, max_keys, ctx = workload.context()
    compiler = ModelCompiler(workload.graph, config, max_seq, max_keys)
    keys = [(plan.kind, _op_name(plan)) if scale_layers else plan.index
            for plan in compiler.plans]
    repeats = Counter(keys)
    steps = []
    for plan, key in zip(compiler.plans, keys):
        weight = repeats.pop(key, 0)
        if not weight:  # counted with its first occurrence
            continue
        step = Step(_op_name(plan), plan.kind, weight)
        if plan.where == "host":
            step.host_bytes = host_bytes(compiler, plan, ctx)
        else:
            # The instructions themselves, not ModelCompiler.fragment's encoded words: the
            # words are not needed and encoding them is half the compile time.
            sched = Scheduler(config)
            step.macs = compiler._emit(sched, plan, ctx)
            sched.fence()
            step.instructions = sched.instructions
            step.bus_bytes = transfer_bytes(step.instructions)
            # Fused GEMM epilogues put VECTOR instructions in matmul steps too.
            step.vector = any(i.opcode == Opcode.VECTOR for i in step.instructions)
            step.fingerprint = _fingerprint(step.instructions)
        steps.append(step)
    return steps


def _fingerprint(instructions):
    """A digest of everything the cycle model reads from ``instructions`` (opcodes, fields,
    dependency flags)."""
    text = repr([(i.opcode.value, sorted((k, int(getattr(v, "value", v)))
                                         for k, v in i.fields.items()), sorted(i.flags))
                 for i in instructions])
    return hashlib.sha1(text.encode()).hexdigest()


def predict(steps, config, host_cycles_per_byte=HOST_CYCLES_PER_BYTE, cache=None):
    """The :class:`Point` (without resources) of compiled ``steps`` on ``config``: the
    compiler's cycle prediction (:func:`~systolic.sw.compiler.cost.predict_cycles`) of every
    step, their bus bytes, MACs and host bytes. ``cache`` (a dict) keeps step predictions
    across calls for configurations that differ only in their vector units."""
    cycles = macs = bus = host = 0
    operations = {}
    for step in steps:
        if step.instructions is None:
            host += step.weight * step.host_bytes
            continue
        predicted = step.weight * _step_cycles(step, config, cache)
        moved = step.weight * step.bus_bytes
        cycles, macs, bus = cycles + predicted, macs + step.weight * step.macs, bus + moved
        entry = operations.setdefault(step.name, {"kind": step.kind, "macs": 0,
                                                  "bus_bytes": 0, "cycles": 0})
        entry["macs"] += step.weight * step.macs
        entry["bus_bytes"] += moved
        entry["cycles"] += predicted
    return Point(config, cycles, round(host * host_cycles_per_byte), macs, bus, host,
                 operations=operations)


def _step_cycles(step, config, cache):
    """Predicted cycles of ``step`` on ``config``, shared through ``cache`` between
    configurations whose programs contain the same step (the same instructions, by
    :func:`_fingerprint`) and whose timing is the same: the cycle model reads neither
    which vector units exist nor, without VECTOR instructions, their lanes."""
    if cache is None:
        return predict_cycles(config, step.instructions)["total"]
    vector = config.vector
    timing = replace(config, vector=VectorUnitsConfig(
        lanes=vector.lanes if step.vector else 1, max_row=vector.max_row,
        softmax_max_row=vector.softmax_max_row))
    key = (timing, step.fingerprint)
    if key not in cache:
        cache[key] = predict_cycles(config, step.instructions)["total"]
    return cache[key]


def evaluate(workload, config, host_cycles_per_byte=HOST_CYCLES_PER_BYTE, scale_layers=True):
    """The :class:`Point` (without resources) of one configuration."""
    return predict(compile_steps(workload, config, scale_layers), config, host_cycles_per_byte)


def _compile_key(config):
    """What the compiled instructions depend on: ``config`` without the vector lanes."""
    return replace(config, vector=replace(config.vector, lanes=1))


# -- the whole exploration ---------------------------------------------------------------

def pareto(points):
    """The points that no other point beats in both total cycles and ``usage`` (the largest
    fraction of any resource of the target), fastest first."""
    front, best = [], math.inf
    for p in sorted(points, key=lambda p: (p.usage, p.total_cycles)):
        if p.total_cycles < best:
            front.append(p)
            best = p.total_cycles
    return sorted(front, key=lambda p: p.total_cycles)


def recommend(points):
    """The fastest point that fits (fewest resources among equally fast ones), or None."""
    fitting = [p for p in points if p.fits]
    return min(fitting, key=lambda p: (p.total_cycles, p.usage)) if fitting else None


@dataclass
class Exploration:
    """The result of :func:`explore`: evaluated ``points`` (in sweep order), the resource
    ``model`` used, how many configurations were ``skipped`` for needing more than
    ``max_usage`` times the target, and the ``unrunnable`` ones (config -> the compiler's
    reason, e.g. memories too small for the model's rows)."""

    workload: Workload
    target: str
    points: list
    model: ResourceModel
    skipped: int
    max_usage: float
    host_cycles_per_byte: float
    unrunnable: dict

    @property
    def front(self):
        return pareto(self.points)

    @property
    def recommended(self):
        return recommend(self.points)


def explore(workload, target, configs=None, host_cycles_per_byte=HOST_CYCLES_PER_BYTE,
            max_usage=MAX_USAGE, progress=False):
    """Evaluate ``configs`` (default: :func:`sweep`) on ``target``, host steps charged
    ``host_cycles_per_byte``. Resources are predicted first; configurations predicted to
    need more than ``max_usage`` times some resource of the target are not compiled
    (``None``: compile everything). Progress goes to stderr."""
    from tqdm import tqdm

    model = ResourceModel.load(target)
    cap = capacity(target)
    configs = sweep(workload) if configs is None else list(dict.fromkeys(configs))
    points = {}
    for config in configs:
        resources = model.predict(config, target)
        usage = max(resources[r] / cap[r] for r in RESOURCES)
        if max_usage is None or usage <= max_usage:
            points[config] = Point(config, 0, 0, 0, 0, 0, resources,
                                   model.fits(resources, target), usage=usage)
    groups = {}
    for config in points:
        groups.setdefault(_compile_key(config), []).append(config)
    cache, unrunnable = {}, {}
    with tqdm(total=len(points), desc="explore", unit="config", disable=not progress) as bar:
        for key, members in groups.items():
            try:
                steps = compile_steps(workload, key)
            except ValueError as error:  # e.g. a row longer than the memories hold
                for config in members:
                    unrunnable[config] = str(error)
                    del points[config]
                bar.update(len(members))
                continue
            for config in members:
                done = predict(steps, config, host_cycles_per_byte, cache)
                points[config] = replace(done, resources=points[config].resources,
                                         fits=points[config].fits, usage=points[config].usage)
                bar.update()
    return Exploration(workload, target, [points[c] for c in configs if c in points], model,
                       len(configs) - len(points) - len(unrunnable), max_usage,
                       host_cycles_per_byte, unrunnable)


def plot(path, exploration, freq_mhz):
    """A PNG with the Pareto plot (throughput at ``freq_mhz`` vs the most-used resource's
    share of the target) and the roofline of the recommended point's operations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points, recommended = exploration.points, exploration.recommended
    target, workload = exploration.target, exploration.workload
    front = sorted(exploration.front, key=lambda p: p.usage)
    rate = freq_mhz * 1e6
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for fits, color, label in ((False, "#bbbbbb", "does not fit"), (True, "#1f77b4", "fits")):
        chosen = [p for p in points if p.fits == fits]
        left.scatter([100 * p.usage for p in chosen], [rate / p.total_cycles for p in chosen],
                     s=10, color=color, label=f"{label} {target}")
    left.plot([100 * p.usage for p in front], [rate / p.total_cycles for p in front],
              color="#d62728", lw=1, marker="o", ms=3, label="Pareto front")
    if recommended is not None:
        left.scatter([100 * recommended.usage], [rate / recommended.total_cycles], marker="*",
                     s=200, color="#ff7f0e", zorder=3, label="recommended")
    left.axvline(100, color="k", lw=0.5, ls="--")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel(f"most-used resource, % of {target} (predicted)")
    left.set_ylabel(f"{workload.unit}s/s at {freq_mhz:g} MHz (predicted)")
    left.set_title(f"{workload.name} {workload.phase}, seq {workload.seq}: "
                   "throughput vs resources")
    left.legend(fontsize=8)
    if recommended is not None:
        _roofline(right, recommended)
    else:
        right.set_axis_off()
        right.text(0.5, 0.5, f"no configuration fits {target}", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _roofline(ax, point):
    cfg = point.config
    peak = cfg.rows * cfg.cols
    ops = {name: op for name, op in point.operations.items() if op["macs"] and op["bus_bytes"]}
    intensity = np.array([op["macs"] / op["bus_bytes"] for op in ops.values()])
    low, high = min(intensity.min(), peak / cfg.dma_bytes) / 4, intensity.max() * 4
    x = np.geomspace(low, high, 200)
    ax.plot(x, np.minimum(peak, x * cfg.dma_bytes), color="k", lw=1,
            label=f"roof: {peak} MACs/cycle, {cfg.dma_bytes} B/cycle")
    # Operations of one shape (q, k and v, for instance) fall on one spot: one label.
    spots = {}
    for name, op, ai in zip(ops, ops.values(), intensity):
        rate = op["macs"] / op["cycles"]
        spots.setdefault((round(float(ai), 2), round(rate, 1)), (ai, rate, []))[2].append(name)
    for ai, rate, names in spots.values():
        ax.scatter([ai], [rate], s=25)
        ax.annotate(", ".join(names), (ai, rate), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MACs per bus byte)")
    ax.set_ylabel("MACs per cycle (predicted)")
    ax.set_title(f"roofline of the recommended {cfg.rows}x{cfg.cols} {cfg.dataflow.upper()}")
    ax.legend(fontsize=8)


def describe(config):
    """A short text name of a configuration."""
    units = config.vector.units
    vector = f"{len(units)} vector units x{config.vector.lanes}" if units else "no vector units"
    return (f"{config.rows}x{config.cols} {config.dataflow.upper()} spad {config.spad_lines} "
            f"acc {config.acc_lines} dma {config.dma_bytes}B {vector}")


def _row(point, freq_mhz, unit):
    r = point.resources
    return (f"  {describe(point.config):<52} {point.cycles:>11,} {point.host_cycles:>10,} "
            f"{freq_mhz * 1e6 / point.total_cycles:>9.1f} {point.utilization:>6.1%} "
            f"{point.bus_bytes / 1e6:>8.2f} {r['luts']:>7} {r['ffs']:>7} {r['dsps']:>5} "
            f"{r['brams']:>5} {'yes' if point.fits else 'no':>4}")


def report(exploration, freq_mhz, rows=15):
    """Text report: what was evaluated and how, the Pareto front (fastest ``rows`` points)
    and the recommendation."""
    x, w, model = exploration, exploration.workload, exploration.model
    front, best = x.front, x.recommended
    err = model.error
    fitting = sum(p.fits for p in x.points)
    skipped = (f" ({x.skipped} more predicted to need over {x.max_usage:g}x the target "
               "were not compiled)") if x.skipped else ""
    if x.unrunnable:
        skipped += (f"; {len(x.unrunnable)} cannot run the model (e.g. "
                    f"{next(iter(x.unrunnable.values())).split(' of HardwareConfig')[0]})")
    lines = [
        f"{w.name} {w.phase}, seq {w.seq}, on {x.target}: {len(x.points)} configurations "
        f"evaluated{skipped}, {fitting} fit.",
        f"Predicted, not measured. Cycles: the compiler's model (sw/compiler/cost.py) of the "
        f"compiled program, each of the {w.layers} identical layers compiled once; host "
        f"steps at {x.host_cycles_per_byte:g} cycles/byte (assumed).",
        f"Resources: model fitted to {err['luts']['points']} yosys runs of whole "
        "accelerators (+ vector units alone); leave-one-out error " + ", ".join(
            f"{_RESOURCE_NAMES[r]} {err[r]['mean_pct']:.1f}% mean / {err[r]['max_pct']:.1f}% max"
            for r in RESOURCES) + ". Fits = within 90% of LUTs/FFs, 100% of DSPs/BRAMs.",
        "",
        f"Pareto front (fewest cycles for the resources), {w.unit}s/s at {freq_mhz:g} MHz:",
        f"  {'configuration':<52} {'cycles':>11} {'host cyc':>10} {w.unit[:3] + '/s':>9} "
        f"{'util':>6} {'bus MB':>8} {'LUTs':>7} {'FFs':>7} {'DSPs':>5} {'BRAMs':>5} "
        f"{'fits':>4}",
    ]
    lines += [_row(p, freq_mhz, w.unit) for p in front[:rows]]
    if len(front) > rows:
        lines.append(f"  ... {len(front) - rows} more on the front")
    lines.append("")
    if best is None:
        smallest = min(x.points, key=lambda p: p.usage, default=None)
        lines.append(f"No configuration fits {x.target}" + (
            f"; the smallest evaluated needs {smallest.usage:.0%} of its most-used resource."
            if smallest else "."))
    else:
        lines.append(f"Recommended for {x.target} (fastest that fits):")
        lines.append(_row(best, freq_mhz, w.unit))
        units = ", ".join(best.config.vector.units) or "none (vector operations on the host)"
        lines.append(f"  vector units: {units}")
    return "\n".join(lines)


def parse_shapes(text):
    """``"4x4,8x16"`` -> ``((4, 4), (8, 16))``."""
    shapes = []
    for part in text.split(","):
        try:
            rows, cols = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise ValueError(f"shapes must look like 8x8,8x16, not {text!r}") from None
        shapes.append((rows, cols))
    return tuple(shapes)
