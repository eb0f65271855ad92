"""Hardware parameters, defined once for hw/ and sw/ (the number formats shared with the
golden models are in formats.py)."""

from dataclasses import asdict, dataclass, field

# Number formats of the vector units shared with the golden models (sw/numerics), defined
# in formats.py and re-exported here.
from .formats import MANT_WIDTH, NORM_MAX_ROW, SHIFT_WIDTH, SOFTMAX_MAX_ROW  # noqa: F401

#: Width of matrix operands (signed int8).
OPERAND_WIDTH = 8
#: Width of products accumulated in the array and in the accumulator memory (signed int32).
ACC_WIDTH = 32
#: Largest array dimension the generator accepts.
MAX_ARRAY_DIM = 64
#: Dataflows the array generator implements.
DATAFLOWS = ("ws", "os")


def check_array_params(rows, cols, dataflow, operand_width=OPERAND_WIDTH, acc_width=ACC_WIDTH):
    """Raise :class:`ValueError` naming the first invalid array parameter."""
    for name, value in (("rows", rows), ("cols", cols)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer in 1..{MAX_ARRAY_DIM}, not {value!r}")
        if not 1 <= value <= MAX_ARRAY_DIM:
            raise ValueError(f"{name} must be in 1..{MAX_ARRAY_DIM}, not {value}")
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {', '.join(map(repr, DATAFLOWS))}, "
                         f"not {dataflow!r}")
    if operand_width != OPERAND_WIDTH:
        raise ValueError(f"operand_width must be {OPERAND_WIDTH} (int8 operands), "
                         f"not {operand_width!r}")
    if acc_width != ACC_WIDTH:
        raise ValueError(f"acc_width must be {ACC_WIDTH} (int32 accumulation), not {acc_width!r}")


@dataclass(frozen=True)
class ArrayConfig:
    """Shape and dataflow of the systolic array (validated on construction)."""

    rows: int = 4
    cols: int = 4
    dataflow: str = "ws"

    def __post_init__(self):
        check_array_params(self.rows, self.cols, self.dataflow)


#: AXI data-bus widths (bytes) the DMA engines support.
DMA_BYTES = (4, 8, 16, 32, 64)
#: Bytes per instruction word.
INSTRUCTION_BYTES = 16


def _check_power_of_two(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high \
            or value & (value - 1):
        raise ValueError(f"{name} must be a power of two in {low}..{high}, not {value!r}")


class ProgramTooLongError(ValueError):
    """A program has more instructions than the configuration's program indices count
    (``HardwareConfig.max_program``, from ``pc_width``)."""

    def __init__(self, count, config):
        super().__init__(f"program of {count} instructions exceeds the {config.max_program} "
                         f"that pc_width={config.pc_width} allows")
        self.count, self.max_program = count, config.max_program


@dataclass(frozen=True)
class HardwareConfig:
    """Everything that shapes a generated accelerator; the gateware and the compiler both
    read it. Validated on construction.

    Members
    -------
    rows, cols, dataflow
        The systolic array (:class:`SystolicArray`).
    spad_lines, spad_banks
        Scratchpad: ``spad_lines`` int8 lines of ``spad_line_bytes`` (``max(rows, cols)``)
        bytes, split into ``spad_banks`` equal banks by the high address bits. Each bank has
        its own read and write port, so the array can read one bank while DMA fills another.
    acc_lines, acc_banks
        Accumulator: ``acc_lines`` lines of ``cols`` int32, banked like the scratchpad.
    dma_bytes
        Width of the AXI4 data bus in bytes.
    addr_width
        Width of host (AXI) addresses.
    queue_depth
        Instruction queue entries in front of each of the load, compute and store units (0:
        none; the controller's dispatch stage waits until the unit takes its word, so one
        instruction waiting for tokens holds back every one behind it).
    in_flight
        Instructions each of those units holds at once (its own queue); the controller's
        dependency-token gate in front of it keeps the tokens of up to ``in_flight + 1``
        (load, store) or ``2 * in_flight`` (compute) unfinished ones.
    dma_outstanding
        AXI bursts each DMA engine (reader, writer) keeps in flight.
    fetch_words
        Instruction words per fetch command; the fetch buffer holds two commands' words.
    decode_stages
        Pipeline stages of the controller's decode (4; 3, 2 or 1 save registers at the cost
        of longer paths; with 1 the fetch buffer's head feeds the checks directly).
    counter_width
        Bits of each performance counter (it wraps at ``2**counter_width``; the registers
        still read 64 bits, the high bits zero).
    queue_ram_width
        The load and store units' queues (and the store unit's line-read queue, the
        fetch unit's buffer of 128-bit words and the matmul engine's scratchpad line
        readers' queues) at least this many bits wide keep their entries in block RAM (0:
        none, the synthesis tool decides). For FPGAs without distributed RAM (iCE40),
        where a small queue otherwise becomes flip-flops and multiplexers; each such queue
        takes ``ceil(bits / 16)`` iCE40 block RAMs. Results are the same either way; a
        line reader's lines leave a cycle later from block RAM
        (:class:`~systolic.hw.memory.LineReader`). (The systolic array's output queue is
        always in block RAM.)
    perf_counters
        Whether the performance counters other than ``CYCLES`` exist (False: they are
        absent, their registers read 0, ``HW_INFO`` bit 23 says so, and the RTL backends
        report ``cycles`` alone).
    pc_width
        Bits of a program index (8..32): a program holds at most ``2**pc_width - 1``
        instructions (:attr:`max_program`). ``PROG_COUNT`` keeps only its low ``pc_width``
        bits, and the fetch unit, the controller's decode stages and dependency-token gates
        and ``ERROR_PC`` carry indices of that width. The driver and the compiler raise
        :class:`ProgramTooLongError` for a longer program (the hardware would run a
        truncated count).
    compute_read_depth
        Lines each of the matmul engine's two scratchpad readers reads ahead (3 or 4,
        default 4). ``read_stages + 2`` is the least that streams a line per cycle (a line
        is readable ``read_stages + 1`` cycles after its read is issued), so 3 needs
        ``read_stages`` 1: results are the same, with fewer queue registers.
    result_stages
        Pipeline stages of the matmul engine's result writer (2 or 1, default 2). With 2
        the accumulator line an accumulating result row is added to is registered first
        (block RAM outputs are slow); with 1 the row is added to the line as it leaves the
        RAM and written in the same cycle: ``3 * cols`` fewer 32-bit registers, a longer
        path, and every result written a cycle earlier (same results).
    read_stages
        Read latency of the scratchpad and the accumulator (2 or 1, default 2): a read's
        line is on the client's ``data`` this many cycles after the read was accepted
        (:class:`~systolic.hw.memory.BankedMemory`). With 2 each bank's output goes
        straight into a register (block RAM outputs are slow: 5.6 ns clock to data on
        ECP5) and the bank multiplexer and the clients' logic follow it; the line readers
        keep a line per cycle streaming (``compute_read_depth`` must be at least
        ``read_stages + 2``), the matmul result writer has a stage more (and forwards
        every line written between a read and its line's arrival), and transfers and
        results take a cycle longer. With 1 the line comes straight from the RAM's output.
    aligned_repack
        The load and store units regroup bus beats into lines and lines into beats with an
        :class:`~systolic.hw.memory.AlignedRepacker` instead of a
        :class:`~systolic.hw.memory.Repacker`: it holds only an unfinished line or beat
        (far less logic) and passes a group on a cycle earlier, so transfers may take
        different cycles (same results). Needs power-of-two line widths
        (``max(rows, cols)`` and ``cols``), so that lines and beats divide one another.
    vector
        The vector units (:class:`VectorUnitsConfig`); operations whose unit is absent run
        on the host.
    """

    rows: int = 4
    cols: int = 4
    dataflow: str = "ws"
    spad_lines: int = 1024
    spad_banks: int = 2
    acc_lines: int = 512
    acc_banks: int = 2
    dma_bytes: int = 8
    addr_width: int = 32
    queue_depth: int = 8
    in_flight: int = 4
    dma_outstanding: int = 4
    fetch_words: int = 8
    decode_stages: int = 4
    counter_width: int = 64
    queue_ram_width: int = 0
    perf_counters: bool = True
    pc_width: int = 32
    compute_read_depth: int = 4
    result_stages: int = 2
    read_stages: int = 2
    aligned_repack: bool = False
    vector: "VectorUnitsConfig" = field(default_factory=lambda: VectorUnitsConfig())

    def __post_init__(self):
        check_array_params(self.rows, self.cols, self.dataflow)
        _check_power_of_two("spad_lines", self.spad_lines, 2, 65536)
        _check_power_of_two("spad_banks", self.spad_banks, 1, 8)
        _check_power_of_two("acc_lines", self.acc_lines, 2, 65536)
        _check_power_of_two("acc_banks", self.acc_banks, 1, 8)
        if self.spad_banks > self.spad_lines:
            raise ValueError(f"spad_banks ({self.spad_banks}) exceeds spad_lines "
                             f"({self.spad_lines})")
        if self.acc_banks > self.acc_lines:
            raise ValueError(f"acc_banks ({self.acc_banks}) exceeds acc_lines ({self.acc_lines})")
        if self.dma_bytes not in DMA_BYTES:
            raise ValueError(f"dma_bytes must be one of {DMA_BYTES}, not {self.dma_bytes!r}")
        if self.addr_width not in range(16, 65):
            raise ValueError(f"addr_width must be in 16..64, not {self.addr_width!r}")
        if type(self.queue_depth) is not int or self.queue_depth != 0:  # 0: no queue
            _check_power_of_two("queue_depth", self.queue_depth, 1, 256)
        _check_power_of_two("in_flight", self.in_flight, 2, 64)
        _check_power_of_two("dma_outstanding", self.dma_outstanding, 1, 64)
        _check_power_of_two("fetch_words", self.fetch_words, 1, 64)
        if isinstance(self.decode_stages, bool) or not isinstance(self.decode_stages, int) \
                or self.decode_stages not in (1, 2, 3, 4):
            raise ValueError(f"decode_stages must be 1, 2, 3 or 4, "
                             f"not {self.decode_stages!r}")
        if isinstance(self.counter_width, bool) or not isinstance(self.counter_width, int) \
                or not 32 <= self.counter_width <= 64:
            raise ValueError(f"counter_width must be an integer in 32..64, "
                             f"not {self.counter_width!r}")
        if isinstance(self.queue_ram_width, bool) or not isinstance(self.queue_ram_width, int) \
                or not 0 <= self.queue_ram_width <= 4096:
            raise ValueError(f"queue_ram_width must be an integer in 0..4096, "
                             f"not {self.queue_ram_width!r}")
        if not isinstance(self.perf_counters, bool):
            raise ValueError(f"perf_counters must be True or False, "
                             f"not {self.perf_counters!r}")
        if isinstance(self.pc_width, bool) or not isinstance(self.pc_width, int) \
                or not 8 <= self.pc_width <= 32:
            raise ValueError(f"pc_width must be an integer in 8..32, not {self.pc_width!r}")
        if type(self.compute_read_depth) is not int or self.compute_read_depth not in (3, 4):
            raise ValueError(f"compute_read_depth must be 3 or 4, "
                             f"not {self.compute_read_depth!r}")
        if type(self.result_stages) is not int or self.result_stages not in (1, 2):
            raise ValueError(f"result_stages must be 1 or 2, not {self.result_stages!r}")
        if type(self.read_stages) is not int or self.read_stages not in (1, 2):
            raise ValueError(f"read_stages must be 1 or 2, not {self.read_stages!r}")
        if self.compute_read_depth < self.read_stages + 2:
            raise ValueError(f"compute_read_depth ({self.compute_read_depth}) must be at "
                             f"least read_stages + 2 ({self.read_stages + 2}) to stream a "
                             f"line per cycle")
        if not isinstance(self.aligned_repack, bool):
            raise ValueError(f"aligned_repack must be True or False, "
                             f"not {self.aligned_repack!r}")
        if self.aligned_repack and any(w & (w - 1) for w in (self.spad_line_bytes,
                                                              self.acc_line_bytes)):
            raise ValueError(f"aligned_repack needs power-of-two line widths: "
                             f"max(rows, cols) = {self.spad_line_bytes} and cols = {self.cols}")
        if isinstance(self.vector, dict):  # as to_dict() wrote it
            unknown = set(self.vector) - set(VectorUnitsConfig.__dataclass_fields__)
            if unknown:
                raise ValueError(f"unknown vector config keys: {', '.join(sorted(unknown))}")
            object.__setattr__(self, "vector", VectorUnitsConfig(**self.vector))
        if not isinstance(self.vector, VectorUnitsConfig):
            raise ValueError(f"vector must be a VectorUnitsConfig, not {self.vector!r}")

    @property
    def spad_line_bytes(self):
        return max(self.rows, self.cols)

    @property
    def acc_line_bytes(self):
        return self.cols * ACC_WIDTH // 8

    @property
    def spad_bank_lines(self):
        return self.spad_lines // self.spad_banks

    @property
    def acc_bank_lines(self):
        return self.acc_lines // self.acc_banks

    @property
    def max_program(self):
        """Most instructions a program may hold (``2**pc_width - 1``)."""
        return (1 << self.pc_width) - 1

    def check_program_length(self, count):
        """Raise :class:`ProgramTooLongError` if a program of ``count`` instruction words is
        longer than :attr:`max_program`."""
        if count > self.max_program:
            raise ProgramTooLongError(count, self)

    def queue_in_block_ram(self, bits):
        """Whether a queue of ``bits``-bit entries keeps them in block RAM
        (``queue_ram_width``)."""
        return self.queue_ram_width != 0 and bits >= self.queue_ram_width

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Build from a dict (e.g. a JSON config file), rejecting unknown keys by name."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown hardware config keys: {', '.join(sorted(unknown))}")
        return cls(**values)

    @classmethod
    def profile(cls, name, **overrides):
        """The configuration of profile ``name`` (one of :data:`PROFILES`) with
        ``overrides``."""
        if name not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}, not {name!r}")
        return cls.from_dict({**PROFILES[name], **overrides})


# Vector units ---------------------------------------------------------------------------
# Widths and row limits shared with the golden models (MANT_WIDTH, SHIFT_WIDTH,
# SOFTMAX_MAX_ROW, NORM_MAX_ROW) come from formats.py.

#: Default ``max_row`` of the softmax unit.
SOFTMAX_DEFAULT_ROW = 4096
#: Longest row of per-row quantization.
ROWQUANT_MAX_ROW = 2**16
#: Default ``max_row`` of the norm and row-quantization units.
NORM_DEFAULT_ROW = 1024
#: Default and largest lanes (elements per beat) of every vector unit.
VECTOR_DEFAULT_LANES = 4
MAX_LANES = 64
#: Vector units the generator offers (names of :class:`VectorUnitsConfig` flags).
VECTOR_UNITS = ("requantize", "softmax", "gelu", "silu", "eltwise", "layernorm", "rmsnorm",
                "rowquant")


@dataclass(frozen=True)
class VectorUnitsConfig:
    """Which vector units the accelerator contains and their generation parameters.

    ``lanes`` (1..64) elements per beat for every unit; ``max_row`` (elements) sizes the
    row buffers of softmax, layernorm, rmsnorm and rowquant (each is clamped to its unit's
    limit: softmax 65536, norms 16384, rowquant 65536; ``softmax_max_row`` overrides it for
    softmax, whose rows are sequence lengths). Units whose flag is False are absent and
    their operations fall back to the host. With both ``layernorm`` and ``rmsnorm`` the
    accelerator has one norm unit that runs both functions (``hw/norm.py``), and with both
    ``gelu`` and ``silu`` one piecewise-linear unit that runs both (``hw/pwl.py``).
    """

    lanes: int = VECTOR_DEFAULT_LANES
    max_row: int = NORM_DEFAULT_ROW
    softmax_max_row: int = SOFTMAX_DEFAULT_ROW
    requantize: bool = True
    softmax: bool = True
    gelu: bool = True
    silu: bool = True
    eltwise: bool = True
    layernorm: bool = True
    rmsnorm: bool = True
    rowquant: bool = True

    def __post_init__(self):
        for name, value, limit in (("lanes", self.lanes, MAX_LANES),
                                   ("max_row", self.max_row, NORM_MAX_ROW),
                                   ("softmax_max_row", self.softmax_max_row, SOFTMAX_MAX_ROW)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
                raise ValueError(f"{name} must be an integer in 1..{limit}, not {value!r}")
        for name in VECTOR_UNITS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, not {getattr(self, name)!r}")

    @property
    def units(self):
        """Names of the units present."""
        return tuple(name for name in VECTOR_UNITS if getattr(self, name))


#: Named starting points of :meth:`HardwareConfig.profile`. ``tiny``: the smallest useful
#: accelerator (it fits an iCE40 UP5K: see the README), a 2x2
#: array without vector units, one-bank memories of a few block RAMs, a 32-bit bus with
#: 24-bit (16 MiB) host addresses, one-word instruction fetches, a one-stage decode, no
#: instruction queues, two instructions per unit, one DMA burst in flight, a 32-bit cycle
#: counter and no other performance counters, its queues of 18 bits or more (bus beats,
#: line reads, fetched words, the matmul engine's line reads) in block RAM,
#: 16-bit program indices (programs of at most 65,535 instructions), matmul scratchpad
#: readers three lines ahead, a one-stage result writer, memories whose lines come
#: straight from the block RAMs (one read stage), and aligned repackers in the load and
#: store units.
PROFILES = {
    "default": {},
    "tiny": {
        "rows": 2, "cols": 2, "spad_lines": 256, "spad_banks": 1, "acc_lines": 128,
        "acc_banks": 1, "dma_bytes": 4, "addr_width": 24, "queue_depth": 0, "in_flight": 2,
        "dma_outstanding": 1, "fetch_words": 1, "decode_stages": 1, "counter_width": 32,
        "queue_ram_width": 18, "perf_counters": False, "pc_width": 16,
        "compute_read_depth": 3, "result_stages": 1, "read_stages": 1, "aligned_repack": True,
        "vector": dict.fromkeys(VECTOR_UNITS, False),
    },
}
