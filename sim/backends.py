"""Simulation backends by name, so the driver (in sw/) can choose one without importing sim/
at module level. Each backend is a class built from a HardwareConfig with a method
``run(memory, prog_addr, count) -> RunResult`` that keeps on-chip state between runs."""

import importlib

#: name -> "module:Class"
BACKENDS = {
    "functional": "systolic.sim.functional:FunctionalSimulator",
    "amaranth": "systolic.sim.amaranth_sim:AmaranthBackend",
    "icarus": "systolic.sim.cocotb.backend:CocotbBackend",
    "verilator": "systolic.sim.verilator_backend:VerilatorBackend",
}


def backend_names():
    return sorted(BACKENDS)


def create_backend(name, config):
    """An instance of backend ``name`` for ``config``."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(backend_names())}, not {name!r}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(config)
