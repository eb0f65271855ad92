"""Predicted FPGA resources (LUTs, flip-flops, DSPs, block RAMs) of an accelerator generated
from a :class:`~systolic.hw.config.HardwareConfig`, without synthesizing it: a model fitted
to real yosys runs (``systolic.sw.synth.synthesize(..., place=False)``), one per FPGA family
(ECP5 85k and 25k share their cells; iCE40 UP5K), stored with its raw measurements in
``sw/data/resources_<family>.json`` and refitted by ``benchmarks/fit_resources.py``.

The model adds up:

* **vector units**, each synthesized on its own at 4 and 8 lanes (the row units also at a
  second row size), every resource linear in ``lanes`` and ``max_row`` (with both norm
  flags the accelerator has one norm unit for both functions, counted as the LayerNorm
  unit, and with both GELU and SiLU one activation unit, counted as the SiLU unit (see
  :func:`unit_tops` and :data:`SHARED_UNITS`); the ``requantize`` and ``eltwise`` flags'
  functions run on one rescale unit, measured for each flag alone and for both);
* **block RAMs** of the big memories, computed from their shapes as yosys maps them
  (:func:`memory_brams`): scratchpad and accumulator banks, the vector engine's two plane
  caches and the array's result queue (a few rows of ``cols`` int32, kept in block RAM
  however shallow), plus a measured constant for the rest;
* **DSPs**: one per processing element (an int8/uint8 multiplier) plus the vector units' plus
  a measured constant. When that exceeds the target's DSP blocks, the synthesis flow
  (``systolic.sw.synth``) builds the narrowest multipliers from LUTs: on ECP5 the PEs' 9x8
  ones come first (the vector units' are 12 bits wide and more). When the others fit
  (``"multipliers": "mixed"``), the flow gives the PEs the DSP blocks the others leave free
  (since commit b7829aa), so the model builds from LUTs only the PE multipliers that do not
  fit, demand minus the target's DSP blocks (0 to all of them), and the design uses every
  DSP block (:meth:`ResourceModel.lut_multipliers`). Fitting and the leave-one-out error
  take a mixed measurement as it was built: with the PE multipliers it records in LUTs
  (``"lut_multipliers"``, the groups with ``pe_`` in their path: :func:`recorded_lut_pe`),
  so the runs from before the fill, which built every PE multiplier from LUTs (the
  ECP5-25k 6x6: 36 of 36), need no marker; a mixed measurement without that record (every
  mixed result of ``synthesize`` has one) would be taken as built by the fill. When the
  others do not fit, and on iCE40, the model moves every multiplier (``"lut"``: the
  synthesis flow would move most of them). LUTs grow by a fitted cost per PE multiplier in
  LUTs (``lut_pe``) and per other DSP block (``lut_dsp``);
* **LUTs and FFs** of everything else (controller, DMA, array, memories' glue, the vector
  engine's data path, multipliers built from LUTs): a linear function of the
  :data:`FEATURES` of the configuration, fitted by least squares with non-negative
  coefficients to whole-accelerator runs, after subtracting the measured units.

iCE40 vector units are not synthesized on their own (no configuration with them comes
close to fitting an UP5K): their costs are the ECP5 units' (:data:`UNITS_FROM`).

The fit's error is measured by leave-one-out over the whole-accelerator runs
(:attr:`ResourceModel.error`); LUT counts are yosys' (nextpnr adds a few percent of
route-through LUTs, see ``sw/synth.py``), so a configuration *fits* a target when every
predicted resource is within :data:`UTILIZATION_LIMIT` of its capacity.
"""

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from systolic.hw.config import ACC_WIDTH, VECTOR_UNITS, HardwareConfig, VectorUnitsConfig
from systolic.hw.isa import VECTOR_PARAMS, VECTOR_UNIT

from .synth import TARGETS

__all__ = ["RESOURCES", "FAMILIES", "FEATURES", "UNIT_TOPS", "SHARED_UNITS",
           "RESCALE_FLAGS", "UTILIZATION_LIMIT",
           "unit_tops", "ResourceModel", "LutMultipliers", "capacity", "family_of", "data_path",
           "modelled_targets", "measurement_key", "memory_brams", "bram_blocks", "queue_brams", "fit",
           "recorded_lut_pe", "write_data", "error_table"]

RESOURCES = ("luts", "ffs", "dsps", "brams")
#: Family -> its targets (one synthesis script, the same cells; capacities differ).
FAMILIES = {"ecp5": ("ecp5-85k", "ecp5-25k"), "ice40": ("ice40-up5k",)}
#: Fraction of each resource a design may use and still be called fitting: LUTs and FFs
#: keep 10% for place-and-route (route-through LUTs, packing) and the model's error.
UTILIZATION_LIMIT = {"luts": 0.9, "ffs": 0.9, "dsps": 1.0, "brams": 1.0}
#: Device capacities (the DSP count is ``synth.TARGETS``').
_CAPACITY = {
    "ecp5-85k": {"luts": 83640, "ffs": 83640, "brams": 208},
    "ecp5-25k": {"luts": 24288, "ffs": 24288, "brams": 56},
    "ice40-up5k": {"luts": 5280, "ffs": 5280, "brams": 30},
}
#: Vector unit tops of ``systolic.hw.verilog`` measured on their own, with the row sizes
#: (``max_row``) the row units are measured at: the first at 4 and 8 lanes, the second at 4.
UNIT_TOPS = {"requantize": (), "gelu": (), "silu": (), "eltwise": (), "rescale": (),
             "rowquant": (2048, 1024), "layernorm": (2048, 1024), "rmsnorm": (2048, 1024),
             "softmax": (512, 4096)}
#: The rescale unit runs REQUANTIZE (the ``requantize`` flag), MUL and ADD (``eltwise``):
#: built for one flag's functions it is that flag's top, for both flags the ``rescale`` top.
RESCALE_FLAGS = ("requantize", "eltwise")
#: Flags whose two functions share one unit when both are set (the vector engine runs one
#: instruction at a time): ``(counted, free)`` pairs, the shared unit counted as the
#: ``counted`` flag's top and the ``free`` flag adding nothing. The norm unit is
#: LayerNorm's circuit plus multiplexers on n, S1 and a shift (an RMSNorm row is a
#: LayerNorm row with n = 1 and S1 = 0); the activation unit is SiLU's with GELU's table
#: added to its ROM and the range chosen in registers.
SHARED_UNITS = (("layernorm", "rmsnorm"), ("silu", "gelu"))
#: Block RAM shapes ``(depth, width)`` yosys can map a one-read one-write memory to.
_BRAM_SHAPES = {
    "ecp5": ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)),
    "ice40": ((2048, 2), (1024, 4), (512, 8), (256, 16)),
}
#: Families whose vector units are not measured: (the family whose unit model they use,
#: the ratio of block RAM sizes). iCE40 LUT4s and DSPs count like ECP5's; an SB_RAM40_4K
#: holds 4 kbit, a DP16KD 18 kbit.
UNITS_FROM = {"ice40": ("ecp5", 18 / 4)}
#: Multiplier modes of a synthesized design (``synthesize``'s ``"multipliers"``).
_MODES = ("dsp", "mixed", "lut")
#: Memories shallower than this go to LUT RAM or flip-flops, not block RAM.
_BRAM_MIN_DEPTH = 64
#: Functions whose parameter planes go through the vector engine's plane cache.
_PLANE_UNITS = {VECTOR_UNIT[f] for f, (_, planes) in VECTOR_PARAMS.items() if planes}


def _pe(cfg, lut):
    return cfg.rows * cfg.cols


@dataclass(frozen=True)
class LutMultipliers:
    """Multipliers built from LUTs: ``pe`` of the array's, and ``blocks``, the DSP blocks
    the others would have used."""

    pe: int = 0
    blocks: int = 0


#: A ``"lut_multipliers"`` group of a processing element's multiplier (its path has a
#: ``pe_*_*`` component, e.g. ``core.compute.array.pe_*_*.multiplier (9x8)``).
_PE_GROUP = re.compile(r"(?:^|\.)pe_")


def recorded_lut_pe(entry):
    """PE multipliers a mixed measurement ``entry`` records in LUTs: the counts of its
    ``"lut_multipliers"`` groups in a PE (:data:`_PE_GROUP`); None without that record."""
    if "lut_multipliers" not in entry:
        return None
    return sum(n for group, n in entry["lut_multipliers"].items() if _PE_GROUP.search(group))


def _vector(cfg):
    return bool(cfg.vector.units)


#: Configuration features that the LUT and FF counts are linear in (after the units), as
#: functions of the configuration and its :class:`LutMultipliers`.
FEATURES = {
    "base": lambda cfg, lut: 1,
    "pe": _pe,
    "os_pe": lambda cfg, lut: _pe(cfg, lut) * (cfg.dataflow == "os"),
    # accumulator-line-wide datapaths (4 * cols bytes): memories' glue, store path, skews
    "cols": lambda cfg, lut: cfg.cols,
    "dma_bytes": lambda cfg, lut: cfg.dma_bytes,
    # the DMA's byte realigners: a dma_bytes-way multiplexer for each byte of a beat
    "dma_realign": lambda cfg, lut: cfg.dma_bytes ** 2,
    "vector_engine": lambda cfg, lut: int(_vector(cfg)),
    "vector_cols": lambda cfg, lut: cfg.cols * _vector(cfg),
    # multipliers built from LUTs (a LutMultipliers): the array's, and the other DSP blocks'
    # (vector units, controller)
    "lut_pe": lambda cfg, lut: lut.pe,
    "lut_dsp": lambda cfg, lut: lut.blocks,
}


def family_of(target):
    for family, targets in FAMILIES.items():
        if target in targets:
            return family
    raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")


def capacity(target):
    """``{"luts", "ffs", "dsps", "brams"}`` of ``target``."""
    family_of(target)
    return {**_CAPACITY[target], "dsps": TARGETS[target].dsps_available}


def data_path(family):
    return Path(__file__).parent / "data" / f"resources_{family}.json"


def modelled_targets():
    """The targets whose family has a fitted model in its data file."""
    targets = []
    for family, members in FAMILIES.items():
        path = data_path(family)
        if path.exists() and "model" in json.loads(path.read_text()):
            targets += members
    return tuple(targets)


def measurement_key(entry):
    """Identity of a measurement: target, top, generation parameters and synthesis
    options (``{"multipliers": "lut"}`` forces LUT multipliers)."""
    return json.dumps([entry["target"], entry["top"], entry["params"],
                       entry.get("options", {})], sort_keys=True)


def bram_blocks(depth, width, family):
    """Block RAMs of a ``depth`` x ``width``-bit memory with one read and one write port
    (0 when it is too shallow for block RAM)."""
    if depth < _BRAM_MIN_DEPTH:
        return 0
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in _BRAM_SHAPES[family])


def queue_brams(width, family):
    """Block RAMs of a queue of ``width``-bit entries that is kept in block RAM however
    shallow: its entries side by side in the widest blocks."""
    return min(math.ceil(width / w) for _, w in _BRAM_SHAPES[family])


def memory_brams(config, family):
    """Block RAMs of the scratchpad and accumulator banks, of the vector engine's plane
    cache (two memories of ``plane_cache_lines`` accumulator lines) and of the array's
    result queue (rows of ``cols`` accumulators)."""
    from systolic.hw.vector_engine import plane_cache_lines

    total = queue_brams(config.cols * ACC_WIDTH, family)
    total += config.spad_banks * bram_blocks(config.spad_bank_lines, 8 * config.spad_line_bytes,
                                            family)
    total += config.acc_banks * bram_blocks(config.acc_bank_lines, 8 * config.acc_line_bytes,
                                            family)
    if _PLANE_UNITS & set(config.vector.units):
        total += 2 * bram_blocks(plane_cache_lines(config), 8 * config.acc_line_bytes, family)
    return total


def _config(entry):
    return HardwareConfig.from_dict(entry["params"])


def _solve_nonnegative(x, y):
    """Least squares with non-negative coefficients: drop the most negative coefficient's
    feature and solve again until none is negative (features that the data cannot tell
    apart from others end at zero)."""
    active = list(range(x.shape[1]))
    while True:
        coef = np.zeros(x.shape[1])
        if active:
            coef[active] = np.linalg.lstsq(x[:, active], y, rcond=None)[0]
        negative = [i for i in active if coef[i] < 0]
        if not negative:
            return coef
        active.remove(min(negative, key=lambda i: coef[i]))


@dataclass
class ResourceModel:
    """A fitted resource model of one FPGA family.

    Members
    -------
    family : str
    units : dict
        ``{top: {resource: [a, b(, c)]}}``: a unit costs ``a + b * lanes (+ c * max_row)``.
    coefficients : dict
        ``{"luts" | "ffs": {feature: coefficient}}`` over :data:`FEATURES`.
    constants : dict
        DSPs and block RAMs of the rest of the accelerator (``"dsps"``, ``"brams"``).
    error : dict
        Leave-one-out error over the whole-accelerator measurements:
        ``{resource: {"mean_pct", "max_pct", "points"}}``, and ``"per_point"``.
    mixed_lut_pe : int or None
        PE multipliers in LUTs in the ``"mixed"`` mode, as a measurement recorded them
        (:meth:`of_measurement`), instead of the fill rule of :meth:`lut_multipliers`
        (None). Not part of the fitted model.
    """

    family: str
    units: dict
    coefficients: dict
    constants: dict
    error: dict = field(default_factory=dict)
    mixed_lut_pe: int | None = None

    @classmethod
    def load(cls, target):
        """The committed model of ``target``'s family."""
        family = family_of(target)
        path = data_path(family)
        if not path.exists():
            raise ValueError(f"no resource model for {target}: run "
                             f"benchmarks/fit_resources.py --family {family} --measure")
        data = json.loads(path.read_text())
        return cls(**data["model"])

    def of_measurement(self, entry):
        """This model for the measurement ``entry`` as it was synthesized: in the ``"mixed"``
        mode with the PE multipliers it records in LUTs (:func:`recorded_lut_pe`; the runs
        from before the synthesis flow filled the free DSP blocks have all of them there),
        if any."""
        lut_pe = recorded_lut_pe(entry) if entry.get("multipliers") == "mixed" else None
        return replace(self, mixed_lut_pe=lut_pe)

    def unit(self, top, lanes, max_row):
        """``{resource: value}`` of one vector unit."""
        features = _unit_features(top, lanes, max_row)
        return {r: max(0.0, float(np.dot(self.units[top][r], features))) for r in RESOURCES}

    def _units(self, vector: VectorUnitsConfig):
        total = dict.fromkeys(RESOURCES, 0.0)
        for top in unit_tops(vector):
            row = vector.softmax_max_row if top == "softmax" else vector.max_row
            for r, value in self.unit(top, vector.lanes, row).items():
                total[r] += value
        return total

    def dsp_demand(self, config):
        """DSP blocks the design asks for: one per PE, the units', and the rest."""
        return round(config.rows * config.cols + self._units(config.vector)["dsps"]
                     + self.constants["dsps"])

    def multiplier_mode(self, config, target):
        """``"dsp"``, ``"mixed"`` (the PE multipliers that do not fit in LUTs) or ``"lut"``
        (all), as the synthesis flow would choose for ``config`` on ``target``."""
        available = TARGETS[target].dsps_available
        demand = self.dsp_demand(config)
        if demand <= available:
            return "dsp"
        if self.family == "ecp5" and demand - config.rows * config.cols <= available:
            return "mixed"
        return "lut"

    def lut_multipliers(self, config, mode, target):
        """The :class:`LutMultipliers` of ``config`` on ``target`` in multiplier ``mode``
        (:data:`_MODES`). ``"mixed"`` fills the DSP blocks as the synthesis flow does: the
        other multipliers (all wider than a PE's) keep theirs, ``spare = available -
        (demand - pe)`` PEs get the blocks left, and the rest of the PEs' multipliers are
        built from LUTs: ``demand - available`` of them, at least 0 and at most all (with
        :attr:`mixed_lut_pe` set, that many instead)."""
        pe = config.rows * config.cols
        demand = self.dsp_demand(config)
        if mode == "mixed":
            lut_pe = self.mixed_lut_pe
            if lut_pe is None:
                lut_pe = demand - TARGETS[target].dsps_available
            return LutMultipliers(min(max(lut_pe, 0), pe))
        return {"dsp": LutMultipliers(), "lut": LutMultipliers(pe, demand - pe)}[mode]

    def predict(self, config, target, multipliers="auto"):
        """``{"luts", "ffs", "dsps", "brams", "multipliers"}`` of ``config`` on ``target``:
        with ``multipliers="auto"`` built as the synthesis flow would choose
        (:meth:`multiplier_mode`), else in the given mode ("dsp", "mixed" or "lut"; "lut"
        is ``synthesize(multipliers="lut")``)."""
        if family_of(target) != self.family:
            raise ValueError(f"this model is for {self.family}, not {target}")
        if multipliers not in ("auto", *_MODES):
            raise ValueError(f"multipliers must be 'auto' or one of {', '.join(_MODES)}, not "
                             f"{multipliers!r}")
        mode = self.multiplier_mode(config, target) if multipliers == "auto" else multipliers
        lut = self.lut_multipliers(config, mode, target)
        units = self._units(config.vector)
        out = {}
        for r in ("luts", "ffs"):
            out[r] = round(units[r] + sum(c * FEATURES[name](config, lut)
                                          for name, c in self.coefficients[r].items()))
        out["dsps"] = self.dsp_demand(config) - lut.pe - lut.blocks
        out["brams"] = round(units["brams"] + memory_brams(config, self.family)
                             + self.constants["brams"])
        out["multipliers"] = mode
        return out

    def fits(self, resources, target):
        """Whether predicted ``resources`` fit ``target`` within :data:`UTILIZATION_LIMIT`."""
        cap = capacity(target)
        return all(resources[r] <= UTILIZATION_LIMIT[r] * cap[r] for r in RESOURCES)


def unit_tops(vector: VectorUnitsConfig):
    """The measured unit tops whose costs add up to the vector units of ``vector``. With
    both norm flags the vector engine builds one norm unit for both functions, counted as
    the ``layernorm`` top (``rmsnorm`` adds nothing), and with both ``gelu`` and ``silu``
    one activation unit, counted as the ``silu`` top (:data:`SHARED_UNITS`); with both
    :data:`RESCALE_FLAGS` one rescale unit, the ``rescale`` top."""
    free = {flag for counted, flag in SHARED_UNITS if counted in vector.units}
    tops = [flag for flag in vector.units if flag not in free]  # each flag's own top
    if set(RESCALE_FLAGS) <= set(vector.units):
        tops = [top for top in tops if top not in RESCALE_FLAGS] + ["rescale"]
    return tops


def _unit_features(top, lanes, max_row):
    return [1.0, lanes] + ([max_row] if UNIT_TOPS[top] else [])


def _unit_model(measurements):
    """Per unit top: every resource linear in lanes (and in ``max_row`` for row units),
    fitted to its measurements."""
    units = {}
    for top in UNIT_TOPS:
        points = [m for m in measurements if m["top"] == top]
        needed = 3 if UNIT_TOPS[top] else 2
        if len(points) < needed:
            raise ValueError(f"unit {top} needs {needed} measurements, has {len(points)}")
        x = np.array([_unit_features(top, m["params"]["lanes"], m["params"].get("max_row", 0))
                      for m in points])
        units[top] = {}
        for r in RESOURCES:
            coef = np.linalg.lstsq(x, np.array([float(m[r]) for m in points]), rcond=None)[0]
            units[top][r] = [round(float(c), 6) for c in coef]
    return units


def _forced(entry):
    """The ``multipliers`` option a measurement was synthesized with."""
    return entry.get("options", {}).get("multipliers", "auto")


def _mode_label(entry, model):
    """The multiplier mode ``entry`` was built in, for the error table: "forced" when the
    option asked for it, and the PE multipliers in LUTs when mixed."""
    mode = entry["multipliers"] + (" forced" if _forced(entry) == "lut" else "")
    if entry["multipliers"] == "mixed":
        config = _config(entry)
        lut = model.lut_multipliers(config, "mixed", entry["target"])
        mode += f", {lut.pe}/{config.rows * config.cols} PEs in LUTs"
    return mode


def _fit_whole(family, units, whole):
    """Coefficients and constants from whole-accelerator measurements (``units`` known)."""
    model = ResourceModel(family, units, {}, {"dsps": 0.0, "brams": 0.0})
    dsp_runs = [m for m in whole if m["multipliers"] == "dsp"]
    configs = {id(m): _config(m) for m in whole}
    built = {id(m): model.of_measurement(m) for m in whole}  # (they share the constants)
    offsets = [m["dsps"] - built[id(m)].dsp_demand(configs[id(m)]) for m in dsp_runs]
    model.constants["dsps"] = float(np.median(offsets)) if dsp_runs else 0.0
    model.constants["brams"] = float(np.median(
        [m["brams"] - memory_brams(configs[id(m)], family)
         - built[id(m)]._units(configs[id(m)].vector)["brams"] for m in whole]))
    names = list(FEATURES)
    for r in ("luts", "ffs"):
        x, y = [], []
        for m in whole:
            cfg = configs[id(m)]
            lut = built[id(m)].lut_multipliers(cfg, m["multipliers"], m["target"])
            x.append([FEATURES[name](cfg, lut) for name in names])
            y.append(m[r] - built[id(m)]._units(cfg.vector)[r])
        coef = _solve_nonnegative(np.array(x, float), np.array(y, float))
        model.coefficients[r] = {name: round(float(c), 4) for name, c in zip(names, coef)}
    return model


def _borrowed_units(family):
    """Vector units of ``family`` taken from the model of :data:`UNITS_FROM` ``[family]``:
    LUTs, FFs and DSPs as they are, block RAMs scaled by the ratio of block sizes."""
    base, ratio = UNITS_FROM[family]
    model = json.loads(data_path(base).read_text())["model"]
    return {top: {**costs, "brams": [c * ratio for c in costs["brams"]]}
            for top, costs in model["units"].items()}


def fit(family, measurements):
    """A :class:`ResourceModel` fitted to ``measurements`` (dicts as written by
    ``benchmarks/fit_resources.py``: target, top, params, luts, ffs, dsps, brams,
    multipliers), with its leave-one-out error over the whole-accelerator runs."""
    unit_runs = [m for m in measurements if m["top"] in UNIT_TOPS]
    if unit_runs or family not in UNITS_FROM:
        units = _unit_model(unit_runs)
    else:
        units = _borrowed_units(family)
    whole = [m for m in measurements if m["top"] == "accelerator"]
    if len(whole) < 3:
        raise ValueError(f"need at least 3 whole-accelerator measurements, have {len(whole)}")
    model = _fit_whole(family, units, whole)
    per_point = []
    for index, m in enumerate(whole):
        held_out = _fit_whole(family, units, whole[:index] + whole[index + 1:])
        # in the multiplier mode it was built with (the flow that chose it has changed)
        predicted = held_out.of_measurement(m).predict(_config(m), m["target"],
                                                       m["multipliers"])
        per_point.append({"target": m["target"], "params": m["params"],
                          "measured": {r: m[r] for r in RESOURCES},
                          "predicted": {r: predicted[r] for r in RESOURCES},
                          "multipliers": [_mode_label(m, held_out.of_measurement(m)),
                                          predicted["multipliers"]]})
    error = {}
    for r in RESOURCES:
        pct = [abs(p["predicted"][r] - p["measured"][r]) / max(p["measured"][r], 1) * 100
               for p in per_point]
        error[r] = {"mean_pct": round(float(np.mean(pct)), 1),
                    "max_pct": round(float(np.max(pct)), 1), "points": len(pct)}
    model.error = {**error, "per_point": per_point}
    return model


def write_data(family, measurements):
    """Fit ``measurements`` and write them with the model to the family's data file;
    returns the model (None, and only the measurements written, while too few exist)."""
    path = data_path(family)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        model = fit(family, measurements)
    except ValueError:
        model = None
    data = {"family": family, "targets": list(FAMILIES[family]),
            "measurements": sorted(measurements, key=measurement_key)}
    if model is not None:
        data["model"] = {"family": model.family, "units": model.units,
                         "coefficients": model.coefficients, "constants": model.constants,
                         "error": model.error}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return model


def error_table(model):
    """Text table of the leave-one-out error: per resource, and per held-out point."""
    if model is None:
        return "not enough measurements to fit a model yet"
    lines = [f"{model.family}: leave-one-out error over {model.error['luts']['points']} "
             "whole-accelerator runs (yosys synthesis)"]
    for r in RESOURCES:
        e = model.error[r]
        lines.append(f"  {r:<6} mean {e['mean_pct']:5.1f}%  max {e['max_pct']:5.1f}%")
    lines.append("  held-out point: measured / predicted")
    for p in model.error["per_point"]:
        config = HardwareConfig.from_dict(p["params"])
        units = config.vector.units
        vector = (f"{'all' if len(units) == len(VECTOR_UNITS) else len(units)} units "
                  f"x{config.vector.lanes}" if units else "no units")
        name = (f"{p['target']} {config.rows}x{config.cols} {config.dataflow} "
                f"dma{config.dma_bytes} spad{config.spad_lines} acc{config.acc_lines} {vector}")
        values = "  ".join(f"{r} {p['measured'][r]}/{p['predicted'][r]}" for r in RESOURCES)
        lines.append(f"  {name:<56} {values}  ({p['multipliers'][0]})")
    return "\n".join(lines)
