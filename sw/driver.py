"""Driving the accelerator from Python: ``Accelerator(config, backend).matmul(a, b)``.

The driver compiles the work into an instruction program, lays program and operands out in
a host-memory image, runs it on the chosen simulation backend and reads the results back.
``acc.last_run`` describes the most recent run (cycles, MACs, utilization, all counters).
"""

import time
from dataclasses import dataclass, field

import numpy as np

from systolic.hw.config import INSTRUCTION_BYTES, HardwareConfig
from systolic.hw.csr import ErrorCode

from .compiler.gemm import GemmLayout, compile_gemm
from .numerics.matmul import matmul_int8

__all__ = ["Accelerator", "AcceleratorError", "RunStats", "HostImage"]

#: Alignment of every buffer in the host-memory image (one AXI burst boundary is 4 KiB;
#: 64 bytes keeps rows of small matrices from straddling bus words needlessly).
ALIGN = 64


class AcceleratorError(RuntimeError):
    """The accelerator reported an error (``code``: :class:`ErrorCode`, ``pc``: index of the
    faulting instruction)."""

    def __init__(self, code, pc):
        super().__init__(f"accelerator error {ErrorCode(code).name} at instruction {pc}")
        self.code, self.pc = ErrorCode(code), pc


@dataclass
class RunStats:
    """What one run cost: ``cycles`` (``None`` on the functional backend, which does not
    model time), MACs issued to the array and the useful ones (excluding tile padding),
    utilization = useful MACs / (rows * cols * cycles), all hardware counters, wall time."""

    backend: str
    instructions: int
    macs: int
    useful_macs: int
    cycles: int = None
    utilization: float = None
    counters: dict = field(default_factory=dict)
    wall_s: float = 0.0


class HostImage:
    """A growing host-memory image with 64-byte aligned buffers."""

    def __init__(self):
        self.chunks = []
        self.size = 0

    def add(self, data):
        """Place ``data`` (bytes-like or NumPy array) and return its byte address."""
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        address = self.size
        self.chunks.append((address, raw))
        self.size = -(-(address + len(raw)) // ALIGN) * ALIGN
        return address

    def reserve(self, nbytes):
        return self.add(np.zeros(nbytes, dtype=np.uint8))

    def array(self):
        memory = np.zeros(max(self.size, ALIGN), dtype=np.uint8)
        for address, raw in self.chunks:
            memory[address:address + len(raw)] = raw
        return memory


def _program_bytes(words):
    return np.frombuffer(b"".join(int(w).to_bytes(INSTRUCTION_BYTES, "little") for w in words),
                         dtype=np.uint8)


def _check_operand(name, x, dtypes=(np.int8,)):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy int8 array, not {type(x).__name__}")
    if x.dtype not in dtypes:
        raise TypeError(f"{name} must have dtype {' or '.join(map(str, map(np.dtype, dtypes)))}"
                        f", not {x.dtype}")
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"{name} must be a non-empty 2-D matrix, got shape {x.shape}")


class Accelerator:
    """A simulated accelerator generated from ``config`` (default :class:`HardwareConfig`),
    run on ``backend`` (see :func:`systolic.sim.backends.backend_names`)."""

    def __init__(self, config: HardwareConfig = None, backend="functional"):
        from systolic.sim.backends import create_backend

        self.config = config or HardwareConfig()
        self.backend = backend
        self._sim = create_backend(backend, self.config)
        self.last_run = None

    def run_program(self, words, image: HostImage, useful_macs=0):
        """Run instruction ``words`` appended to ``image``; returns the final host memory.
        Raises :class:`AcceleratorError` if the hardware reports one."""
        prog_addr = image.add(_program_bytes(words))
        memory = image.array()
        start = time.perf_counter()
        result = self._sim.run(memory, prog_addr, len(words))
        wall = time.perf_counter() - start
        cfg = self.config
        counters = dict(result.counters)
        self.last_run = RunStats(
            backend=self.backend, instructions=counters.get("instructions", 0),
            macs=counters.get("macs", 0), useful_macs=useful_macs, cycles=result.cycles,
            utilization=(useful_macs / (cfg.rows * cfg.cols * result.cycles)
                         if result.cycles else None),
            counters=counters, wall_s=wall)
        if result.error != ErrorCode.NONE:
            raise AcceleratorError(result.error, result.error_pc)
        return result.memory

    def matmul(self, a, b):
        """Exact int32 ``a @ b`` of int8 matrices of any shapes (M x K @ K x N); ``a`` may
        also be uint8 (e.g. softmax probabilities), which the array multiplies unsigned."""
        _check_operand("a", a, (np.int8, np.uint8))
        _check_operand("b", b)
        (m, k), (k2, n) = a.shape, b.shape
        if k != k2:
            raise ValueError(f"inner dimensions differ: a is {a.shape}, b is {b.shape}")
        a_unsigned = a.dtype == np.uint8
        if k * 255 * 128 > 2**31 - 1:
            matmul_int8(a, b, a_unsigned)  # raises Int32OverflowError if the result overflows
        image = HostImage()
        a_host = a if self.config.dataflow == "ws" else a.T
        a_addr = image.add(a_host)
        b_addr = image.add(b)
        c_addr = image.reserve(m * n * 4)
        layout = GemmLayout(a_addr, a_host.shape[1], b_addr, n, c_addr, 4 * n)
        memory = self.run_program(compile_gemm(self.config, m, k, n, layout, a_unsigned),
                                  image, useful_macs=m * k * n)
        return memory[c_addr:c_addr + m * n * 4].view(np.int32).reshape(m, n).copy()
