"""The accelerator's generated Verilog under cocotb (Icarus), as a driver backend."""

import hashlib
import json
from pathlib import Path

import numpy as np

from systolic.hw.csr import ErrorCode
from systolic.hw.config import HardwareConfig

from .. import SimulationHang
from ..functional import RunResult
from .runner import run_testbench

#: Simulator builds are cached here, one directory per configuration.
BUILD_ROOT = Path("build") / "cocotb"


class CocotbBackend:
    """Runs programs on the generated Verilog of ``AcceleratorTop`` with cocotb (see
    ``tb_accelerator.py``). The simulator is built once per configuration (cached under
    ``build/cocotb``); each :meth:`run` starts a fresh simulation, so on-chip SRAMs start
    zeroed — :meth:`run_batch` runs several programs back to back on one simulation.
    ``netlist=TARGET`` runs the post-synthesis netlist for an FPGA target instead.
    """

    simulator = "icarus"

    def __init__(self, config: HardwareConfig, *, max_cycles=2_000_000, work_dir=None,
                 netlist=None):
        self.config, self.max_cycles = config, max_cycles
        key = hashlib.sha1(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()
        #: ``netlist``: a target name of :data:`systolic.sw.synth.TARGETS` (e.g.
        #: ``"ice40-up5k"``): simulate the gate-level netlist synthesized for it (see
        #: :mod:`systolic.sw.netlist`; synthesized here, or found in its cache) with the
        #: target's cell models, instead of the generated Verilog.
        self.sources = self.defines = None
        if netlist is not None:
            from systolic.sw.netlist import cell_library, write_netlist

            path = write_netlist(config, netlist)
            library, self.defines = cell_library(netlist)
            self.sources = [path, *library]
            key = f"{netlist}-{path.parent.name}"
        self.work_dir = Path(work_dir) if work_dir else \
            BUILD_ROOT / f"{self.simulator}-{key[:12] if netlist is None else key}"

    def run(self, memory, prog_addr, count):
        return self.run_batch([(memory, prog_addr, count)])[0]

    def run_batch(self, programs):
        jobs = [(np.asarray(memory, dtype=np.uint8), prog_addr, count)
                for memory, prog_addr, count in programs]
        outcomes = run_testbench("accelerator", self.config.to_dict(),
                                 "systolic.sim.cocotb.tb_accelerator", (jobs, self.max_cycles),
                                 simulator=self.simulator, work_dir=self.work_dir,
                                 sources=self.sources, defines=self.defines)
        results = []
        for outcome in outcomes:
            if outcome[0] == "hang":
                raise SimulationHang(f"the accelerator did not finish within "
                                     f"{outcome[1]} cycles")
            image, error, error_pc, counters = outcome
            results.append(RunResult(np.frombuffer(image, dtype=np.uint8).copy(), counters,
                                     ErrorCode(error), error_pc, counters["cycles"]))
        return results
