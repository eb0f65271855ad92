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
    """

    simulator = "icarus"

    def __init__(self, config: HardwareConfig, *, max_cycles=2_000_000, work_dir=None):
        self.config, self.max_cycles = config, max_cycles
        key = hashlib.sha1(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()
        self.work_dir = Path(work_dir) if work_dir else \
            BUILD_ROOT / f"{self.simulator}-{key[:12]}"

    def run(self, memory, prog_addr, count):
        return self.run_batch([(memory, prog_addr, count)])[0]

    def run_batch(self, programs):
        jobs = [(np.asarray(memory, dtype=np.uint8), prog_addr, count)
                for memory, prog_addr, count in programs]
        outcomes = run_testbench("accelerator", self.config.to_dict(),
                                 "systolic.sim.cocotb.tb_accelerator", (jobs, self.max_cycles),
                                 simulator=self.simulator, work_dir=self.work_dir)
        results = []
        for outcome in outcomes:
            if outcome[0] == "hang":
                raise SimulationHang(f"the accelerator did not finish within "
                                     f"{outcome[1]} cycles")
            image, error, error_pc, counters = outcome
            results.append(RunResult(np.frombuffer(image, dtype=np.uint8).copy(), counters,
                                     ErrorCode(error), error_pc, counters["cycles"]))
        return results
