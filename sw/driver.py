"""Driving the accelerator from Python: ``Accelerator(config, backend).matmul(a, b)`` and
whole models: ``acc.load_model("minilm").embed(texts)``,
``acc.load_model("smollm2").generate(prompt, n)`` (see :mod:`systolic.sw.runtime`).

The driver compiles the work into an instruction program, lays program and operands out in
a host-memory image, runs it on the chosen simulation backend and reads the results back.
Backends are those of :func:`systolic.sim.backends.backend_names` plus ``"golden"``, which
computes with the integer golden models directly (no instructions).
``acc.last_run`` describes the most recent run (cycles, MACs, utilization, all counters).
"""

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from systolic.hw.config import (INSTRUCTION_BYTES, VECTOR_UNITS, HardwareConfig,
                                VectorUnitsConfig)
from systolic.hw.csr import ErrorCode

from .compiler.gemm import compile_gemm
from .numerics.matmul import matmul_int8

__all__ = ["Accelerator", "AcceleratorError", "RunStats", "HostImage", "GOLDEN",
           "backend_choices", "model_config"]

#: The backend that runs the integer golden models instead of instructions.
GOLDEN = "golden"

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
    """What one call cost.

    Members
    -------
    backend : str
    instructions, macs : int or None
        Instructions executed and MACs issued to the array (tile padding included); None
        when the accelerator has no such counters (``perf_counters=False``: its RTL
        backends report ``cycles`` alone).
    useful_macs : int
        MACs of the computation itself.
    cycles : int or None
        Measured cycles (``None`` on the functional and golden backends, which do not model
        time); ``utilization`` = useful MACs / (rows * cols * cycles).
    counters : dict
        Hardware performance counters, summed over the programs run.
    wall_s : float
        Wall time of the call.
    predicted_cycles : int or None
        The compiler's analytic prediction (``predicted_utilization`` likewise).
    programs : int
        Programs run on the backend.
    ops : dict
        Per op kind on the accelerator: ``{"steps", "predicted_cycles", "macs"}``.
    host : dict
        Per op kind run on the host: ``{"steps", "bytes", "reason"}`` (bytes read and
        written in the host memory shared with the accelerator).
    timeline : numpy.ndarray or None
        With a sampling backend (``Accelerator(..., sample_every=N)``): the counters, summed
        over the programs run, at the start of each program, every N cycles and at its end
        (one row per sample, columns in ``COUNTERS`` order); :func:`systolic.sw.timeline.plot_timeline`
        draws it.
    """

    backend: str
    instructions: int = 0
    macs: int = 0
    useful_macs: int = 0
    cycles: int = None
    utilization: float = None
    counters: dict = field(default_factory=dict)
    wall_s: float = 0.0
    predicted_cycles: int = None
    predicted_utilization: float = None
    programs: int = 0
    ops: dict = field(default_factory=dict)
    host: dict = field(default_factory=dict)
    timeline: np.ndarray = None

    @property
    def host_bytes(self):
        return sum(entry["bytes"] for entry in self.host.values())

    def add_fragment(self, plan, fragment):
        entry = self.ops.setdefault(plan.kind, {"steps": 0, "predicted_cycles": 0, "macs": 0})
        entry["steps"] += 1
        entry["predicted_cycles"] += fragment.predicted["total"]
        entry["macs"] += fragment.macs
        self.useful_macs += fragment.macs
        self.predicted_cycles = (self.predicted_cycles or 0) + fragment.predicted["total"]

    def add_host(self, plan, nbytes):
        entry = self.host.setdefault(plan.kind, {"steps": 0, "bytes": 0, "reason": plan.reason})
        entry["steps"] += 1
        entry["bytes"] += int(nbytes)

    def add_run(self, result):
        self.programs += 1
        if result.samples is not None:
            before = np.array([self.counters.get(name, 0) for name in result.counters],
                              dtype=np.int64)
            final = np.array(list(result.counters.values()), dtype=np.int64)
            rows = np.vstack([np.zeros_like(final), result.samples.astype(np.int64), final])
            self._extend_timeline(before + rows)
        for name, value in result.counters.items():
            self.counters[name] = self.counters.get(name, 0) + int(value)
        if "macs" in result.counters and self.macs is not None:
            self.instructions = self.counters.get("instructions", 0)
            self.macs = self.counters.get("macs", 0)
        else:  # (a run without the performance counters: not counted)
            self.instructions = self.macs = None
        if result.cycles is None or (self.programs > 1 and self.cycles is None):
            self.cycles = None
        else:
            self.cycles = (self.cycles or 0) + result.cycles

    def add_golden(self, graph, ids, start):
        from .compiler.model import op_macs

        macs = sum(op_macs(graph, op, len(ids), start + len(ids)) for op in graph.ops)
        self.useful_macs += macs
        self.macs += macs

    def finish(self, config, wall_s):
        self.wall_s = wall_s
        peak = config.rows * config.cols
        if self.cycles:
            self.utilization = self.useful_macs / (peak * self.cycles)
        if self.predicted_cycles:
            self.predicted_utilization = self.useful_macs / (peak * self.predicted_cycles)

    @classmethod
    def combine(cls, runs, config):
        """The total of several calls' stats on one accelerator of ``config``."""
        total = cls(runs[0].backend)
        measured = all(run.cycles is not None for run in runs)
        for run in runs:
            for name in ("instructions", "macs", "useful_macs", "programs"):
                mine, theirs = getattr(total, name), getattr(run, name)
                # (None: not counted, perf_counters=False.)
                setattr(total, name, None if None in (mine, theirs) else mine + theirs)
            if measured:
                total.cycles = (total.cycles or 0) + run.cycles
            if run.predicted_cycles is not None:
                total.predicted_cycles = (total.predicted_cycles or 0) + run.predicted_cycles
            if run.timeline is not None:
                before = np.array([total.counters.get(name, 0) for name in run.counters],
                                  dtype=np.int64)
                total._extend_timeline(before + run.timeline)
            for name, value in run.counters.items():
                total.counters[name] = total.counters.get(name, 0) + value
            for table in (total.ops, total.host):
                for kind, entry in (run.ops if table is total.ops else run.host).items():
                    merged = table.setdefault(kind, dict.fromkeys(entry, 0))
                    for key, value in entry.items():
                        merged[key] = merged[key] + value if key != "reason" else value
        total.finish(config, sum(run.wall_s for run in runs))
        return total

    def _extend_timeline(self, rows):
        self.timeline = rows if self.timeline is None else np.vstack([self.timeline, rows])

    def to_dict(self):
        """JSON-ready summary."""
        out = {name: getattr(self, name) for name in (
            "backend", "instructions", "macs", "useful_macs", "cycles", "utilization",
            "predicted_cycles", "predicted_utilization", "programs", "wall_s", "counters",
            "ops", "host")}
        out["host_bytes"] = self.host_bytes
        return out


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


def backend_choices():
    """Names accepted as ``backend``: the simulation backends and ``"golden"``."""
    from systolic.sim.backends import backend_names

    return sorted({*backend_names(), GOLDEN})


def model_config(rows=32, cols=32, dataflow="ws", vector_units=True):
    """The default configuration for running models: big memories (few, large instructions),
    a 16-byte bus and vector units as wide as the array with room for FFN rows (without
    ``vector_units`` every vector operation runs on the host)."""
    units = {} if vector_units else dict.fromkeys(VECTOR_UNITS, False)
    return HardwareConfig(rows=rows, cols=cols, dataflow=dataflow, spad_lines=16384,
                          spad_banks=2, acc_lines=8192, acc_banks=2, dma_bytes=16,
                          vector=VectorUnitsConfig(lanes=cols, max_row=4096, **units))


class Accelerator:
    """A simulated accelerator generated from ``config`` (default :class:`HardwareConfig`),
    run on ``backend`` (see :func:`backend_choices`).

    On the ``"verilator"`` backend, ``sample_every=N`` samples the performance counters every
    N cycles (``last_run.timeline``) and ``vcd=PATH`` dumps every cycle to a VCD file."""

    def __init__(self, config: HardwareConfig = None, backend="functional", *,
                 sample_every=None, vcd=None):
        self.config = config or HardwareConfig()
        if not isinstance(self.config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        if backend not in backend_choices():
            raise ValueError(f"backend must be one of {', '.join(backend_choices())}, "
                             f"not {backend!r}")
        options = {name: value for name, value in (("sample_every", sample_every),
                                                      ("vcd", vcd)) if value is not None}
        if options and backend != "verilator":
            raise ValueError(f"{' and '.join(options)} need the verilator backend, "
                             f"not {backend!r}")
        self.backend = backend
        self._options = options
        self._backend_instance = None
        self.last_run = None

    @property
    def _sim(self):
        """The simulation backend, created on first use: building an RTL model takes time,
        and a bad model or input is reported before it."""
        from systolic.sim.backends import create_backend

        if self._backend_instance is None and self.backend != GOLDEN:
            self._backend_instance = create_backend(self.backend, self.config, **self._options)
        return self._backend_instance

    def load_model(self, name_or_path):
        """A runner for a known model (``"minilm"``, ``"smollm2"``) or a checkpoint path:
        :class:`~systolic.sw.runtime.EncoderRunner` (``embed``) or
        :class:`~systolic.sw.runtime.DecoderRunner` (``generate``)."""
        from .runtime import load_runner

        return load_runner(self, name_or_path)

    @contextmanager
    def recording(self):
        """``with acc.recording() as stats:`` collects one call's :class:`RunStats`;
        ``last_run`` becomes it when the call succeeds."""
        stats = RunStats(self.backend)
        start = time.perf_counter()
        yield stats
        stats.finish(self.config, time.perf_counter() - start)
        self.last_run = stats

    def run_image(self, memory, prog_addr, count, max_cycles=None):
        """Run ``count`` instructions at ``prog_addr`` of a
        :class:`~systolic.sw.compiler.memory.DeviceMemory` (in place when the backend can);
        returns the backend's result, raises :class:`AcceleratorError` on a hardware error.
        ``max_cycles`` raises the hang limit of a cycle-accurate backend for this run (a
        long program is not a hang). A program longer than the configuration's
        ``max_program`` raises :class:`~systolic.hw.config.ProgramTooLongError`."""
        self.config.check_program_length(count)
        limit = getattr(self._sim, "max_cycles", None)
        if limit is not None and max_cycles is not None:
            self._sim.max_cycles = max(limit, max_cycles)
        try:
            if getattr(self._sim, "runs_in_place", False):
                result = self._sim.run(memory.array, prog_addr, count, in_place=True)
            else:
                result = self._sim.run(memory.array, prog_addr, count)
                memory.array = np.asarray(result.memory, dtype=np.uint8)
        finally:
            if limit is not None:
                self._sim.max_cycles = limit
        if result.error != ErrorCode.NONE:
            raise AcceleratorError(result.error, result.error_pc)
        return result

    def run_program(self, words, image: HostImage, useful_macs=0):
        """Run instruction ``words`` appended to ``image``; returns the final host memory.
        Raises :class:`AcceleratorError` if the hardware reports one, and
        :class:`~systolic.hw.config.ProgramTooLongError` for more words than the
        configuration's ``max_program``."""
        self.config.check_program_length(len(words))
        prog_addr = image.add(_program_bytes(words))
        memory = image.array()
        start = time.perf_counter()
        result = self._sim.run(memory, prog_addr, len(words))
        stats = RunStats(self.backend, useful_macs=useful_macs)
        stats.add_run(result)
        stats.finish(self.config, time.perf_counter() - start)
        self.last_run = stats
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
        if self.backend == GOLDEN:
            start = time.perf_counter()
            c = matmul_int8(a, b, a_unsigned)
            self.last_run = RunStats(GOLDEN, macs=m * k * n, useful_macs=m * k * n,
                                     wall_s=time.perf_counter() - start)
            return c
        if k * 255 * 128 > 2**31 - 1:
            matmul_int8(a, b, a_unsigned)  # raises Int32OverflowError if the result overflows
        image = HostImage()
        program = compile_gemm(self.config, a, b, image, a_unsigned)
        memory = self.run_program(program.words, image, useful_macs=m * k * n)
        return program.result(memory)
