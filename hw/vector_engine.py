"""The vector engine: executes VECTOR instructions (see ``hw/isa.py``) on the vector units,
from the accumulator to the accumulator or the scratchpad, one instruction at a time.

Data path (every boundary is a register or a queue)::

    sequencers ─► line readers (src, aux, plane cache) ─► join ─► line queue ─► regroup
      ─► the instruction's unit ─► result queue ─► output regroup ─► out queue ─► writer

* Functions with per-channel parameter planes (REQUANTIZE, MUL, ADD, LAYERNORM, RMSNORM)
  run in *segments* of at most :func:`plane_cache_lines` chunks: a segment's planes are
  read once into the plane cache (two local memories), then every row's lines of that
  segment stream past it. Other functions run as one segment. The cache holds ``max_row``
  elements, so a LayerNorm/RMSNorm row is always one segment; a segment boundary is also a
  scratchpad line boundary, so segments never share an output line.
* The ``aux`` read port reads the parameter header (softmax multiplier, norm epsilon), then
  each segment's planes, and while rows stream, the second input's lines (MUL, ADD) or one
  per-row record per row (REQUANTIZE, SOFTMAX with ``row_scale``).
* The join merges a source line with its aux line or row record and its plane lines into a
  *line beat* of ``cols`` element records; the regroup turns line beats into unit beats of
  ``lanes`` records, full but for the last of a segment row, as the row units need (an
  :class:`AlignedRepacker` over whole records when ``cols`` and ``lanes`` are powers of two,
  a :class:`Repacker` otherwise, nothing when they are equal).
* Results are regrouped into accumulator lines (int32 lanes) or scratchpad lines
  (``spad_line_bytes`` bytes), zero past the row's end, and written in order; ROWQUANT also
  writes each row's record.

An instruction is taken only when the previous one is completely written, so it sees
every earlier result. Of overlapping source and destination regions only ``dst_addr ==
src_addr`` (in place) is supported: each line is read before it is written.
"""

import operator
from functools import cache, reduce
from math import gcd

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .compute import memory_ports
from .config import ACC_WIDTH, HardwareConfig
from .controller import udiv_const
from .isa import (DYADIC_WORD, ROW_SCALE_WORD, VECTOR_PARAMS, VECTOR_UNIT, OutWidth, Vector,
                  VectorFunc, vector_param_lines)
from .memory import (AlignedRepacker, LineReader, ReadPortSignature, StreamQueue,
                     WritePortSignature, group_repacker)
from .norm import NORM_MODES, Norm
from .pwl import PWL_FUNCS, Activation
from .rescale import RESCALE_FUNCS, Rescale
from .rowquant import RowQuantize
from .softmax import Softmax
from .vector import OutBits, StateMachine, kept_copy, lanes_shape

__all__ = ["VectorEngine", "plane_cache_lines", "PLANE_FUNCS", "RECORD_FUNCS",
           "AUX_ROW_FUNCS"]

#: Width of the row index the softmax unit compares columns with (``imm + r``).
Q_INDEX_BITS = 17
#: Functions whose unit reads per-channel planes (through the plane cache).
PLANE_FUNCS = tuple(f for f in VectorFunc if VECTOR_PARAMS[f][1])
#: Functions that read a per-row record when ``row_scale`` is set.
RECORD_FUNCS = (VectorFunc.REQUANTIZE, VectorFunc.SOFTMAX)
#: Functions whose second input rows come from ``aux_addr``.
AUX_ROW_FUNCS = (VectorFunc.MUL, VectorFunc.ADD)
#: Functions whose results always go to the scratchpad / always to the accumulator; the
#: others choose with ``out_width``.
SPAD_FUNCS = (VectorFunc.ROWQUANT, VectorFunc.SOFTMAX)
ACC_FUNCS = (VectorFunc.GELU, VectorFunc.SILU)
WIDTH_FUNCS = tuple(f for f in VectorFunc if f not in SPAD_FUNCS + ACC_FUNCS)
#: Functions one rescale unit runs (its ``funcs`` are their names in lower case).
RESCALE_VECTOR_FUNCS = tuple(VectorFunc[name.upper()] for name in RESCALE_FUNCS)
#: Functions one norm unit runs (the ``VECTOR_UNIT`` names are its modes).
NORM_FUNCS = (VectorFunc.LAYERNORM, VectorFunc.RMSNORM)
#: Header words a function's parameter block may hold (see ``VECTOR_PARAMS``).
HEADER_WORDS = max(len(header) for header, _ in VECTOR_PARAMS.values())


def plane_cache_lines(config: HardwareConfig):
    """Chunks (lines) of a plane the plane cache holds: ``ceil(max_row / cols)`` (so a
    LayerNorm/RMSNorm row is one segment), rounded up so that a segment of this many chunks
    fills whole scratchpad lines."""
    cols, spad_bytes = config.cols, config.spad_line_bytes
    align = spad_bytes // gcd(cols, spad_bytes)
    lines = -(-config.vector.max_row // cols)
    return -(-lines // align) * align


def _build_units(config):
    """``{func: unit}`` for the functions whose unit ``config`` has (as the engine runs one
    instruction at a time, REQUANTIZE, MUL and ADD share one :class:`Rescale` built for
    those present (MUL and ADD are the ``eltwise`` flag's), LAYERNORM and RMSNORM one
    :class:`Norm` built for the norm functions present, GELU and SILU one
    :class:`Activation` built for the activations present)."""
    vec = config.vector
    norm_modes = tuple(mode for mode in NORM_MODES if getattr(vec, mode))
    norm = cache(lambda: Norm(vec.lanes, vec.max_row, norm_modes))
    pwl_funcs = tuple(func for func in PWL_FUNCS if getattr(vec, func))
    pwl = cache(lambda: Activation(vec.lanes, pwl_funcs))
    rescale_funcs = tuple(f.name.lower() for f in RESCALE_VECTOR_FUNCS
                          if getattr(vec, VECTOR_UNIT[f]))
    rescale = cache(lambda: Rescale(vec.lanes, rescale_funcs))
    builders = {
        VectorFunc.REQUANTIZE: rescale,
        VectorFunc.ROWQUANT: lambda: RowQuantize(vec.lanes, vec.max_row),
        VectorFunc.SOFTMAX: lambda: Softmax(vec.lanes, vec.softmax_max_row),
        VectorFunc.GELU: pwl,
        VectorFunc.SILU: pwl,
        VectorFunc.MUL: rescale,
        VectorFunc.ADD: rescale,
        VectorFunc.LAYERNORM: norm,
        VectorFunc.RMSNORM: norm,
    }
    return {func: build() for func, build in builders.items()
            if getattr(vec, VECTOR_UNIT[func])}


def _distinct_units(units):
    """``[(unit, funcs)]``: each unit of ``{func: unit}`` once, with the functions it runs
    (in function order)."""
    distinct = {}
    for func, unit in units.items():
        distinct.setdefault(id(unit), (unit, []))[1].append(func)
    return list(distinct.values())


def _lane_inputs(func, element):
    """``{field: value}`` of one lane of ``func``'s unit input from an element record."""
    if func in (VectorFunc.GELU, VectorFunc.SILU):
        return {"x": element.x[:16]}
    if func == VectorFunc.ROWQUANT:
        return {"z": element.x}
    if func == VectorFunc.SOFTMAX:
        return {"x": element.x, "mask": 0}
    p0 = data.View(DYADIC_WORD, element.p0[:DYADIC_WORD.size])
    if func in RESCALE_VECTOR_FUNCS:  # one set of inputs for the three: see Rescale
        p1 = data.View(DYADIC_WORD, element.p1[:DYADIC_WORD.size])
        inputs = {"x": element.x, "m": p0.m, "s": p0.s, "m2": p1.m, "s2": p1.s,
                  "bias": element.p1}
        if "y" in element.shape().members:  # (a second input only with MUL and ADD)
            inputs["y"] = element.y
        return inputs
    return {"x": element.x, "gm": p0.m, "gs": p0.s, "beta": element.p1}  # the norms


class _BlockSequencer(wiring.Component):
    """Line addresses of a block: ``rows`` rows of ``lines`` consecutive lines, row ``r``
    from ``base + r * stride`` (modulo the address width); ``tag.last`` marks each row's
    final line. ``start`` (a pulse while not ``busy``) samples the parameters; ``rows`` and
    ``lines`` are at least 1. Everything it drives comes from registers.

    Members
    -------
    start : In(1)
    base, stride : In(addr_bits)
    rows, lines : In(16)
    addrs : Out(stream.Signature(StructLayout({"addr": addr_bits, "tag": tag})))
    busy : Out(1)
    """

    tag = data.StructLayout({"last": 1, "flags": 1})

    def __init__(self, addr_bits):
        super().__init__({
            "start": In(1), "base": In(addr_bits), "stride": In(addr_bits),
            "rows": In(16), "lines": In(16),
            "addrs": Out(stream.Signature(data.StructLayout({"addr": addr_bits,
                                                             "tag": self.tag}))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        addr_bits = len(self.base)
        # Loaded by start (only busy is read before it), so without a reset.
        addr, row_base, stride = (Signal(addr_bits, reset_less=True) for _ in range(3))
        lines_left, lines_held, rows_left = (Signal(16, reset_less=True) for _ in range(3))
        last_line = Signal()  # lines_left == 0, kept in a register
        next_row = (row_base + stride)[:addr_bits]
        m.d.comb += [self.addrs.valid.eq(self.busy), self.addrs.payload.addr.eq(addr),
                     self.addrs.payload.tag.last.eq(last_line)]
        with m.If(self.start):
            m.d.sync += [addr.eq(self.base), row_base.eq(self.base), stride.eq(self.stride),
                         lines_left.eq(self.lines - 1), lines_held.eq(self.lines - 1),
                         last_line.eq(self.lines == 1), rows_left.eq(self.rows - 1),
                         self.busy.eq(1)]
        with m.Elif(self.addrs.valid & self.addrs.ready):
            with m.If(last_line):
                m.d.sync += [lines_left.eq(lines_held), last_line.eq(lines_held == 0),
                             addr.eq(next_row), row_base.eq(next_row),
                             rows_left.eq(rows_left - 1)]
                with m.If(rows_left == 0):
                    m.d.sync += self.busy.eq(0)
            with m.Else():
                m.d.sync += [addr.eq(addr + 1), lines_left.eq(lines_left - 1),
                             last_line.eq(lines_left == 1)]
        return m


class VectorEngine(wiring.Component):
    """Executes VECTOR instructions on the vector units of ``config.vector``.

    Members
    -------
    insn : In(stream.Signature(Vector))
        Instructions whose dependency tokens were taken and whose fields the controller
        checked (a present unit, a row length within its limit, lines inside the
        memories). Taken only while ``idle``.
    done : Out(1)
        Pulses when an instruction's last result line (and ROWQUANT record) is written.
    idle : Out(1)
        No instruction in the engine (low from the cycle after one is taken).
    acc_src : Out(ReadPortSignature)
        Accumulator reads of the source rows.
    acc_aux : Out(ReadPortSignature)
        Accumulator reads of parameter blocks, second-input rows and per-row records.
    acc_write : Out(WritePortSignature)
        Accumulator results (int16/int32) and ROWQUANT's per-row records.
    spad_write : Out(WritePortSignature)
        Scratchpad results (int8/uint8).
    """

    def __init__(self, config: HardwareConfig):
        if not config.vector.units:
            self._MustUse__silence = True  # never elaborated: no unused-object warning
            raise ValueError("config.vector has no vector unit, so there is nothing for a "
                             "vector engine to run")
        self.config = config
        spad_addr, spad_bits, acc_addr, acc_bits = memory_ports(config)
        super().__init__({
            "insn": In(stream.Signature(Vector)),
            "done": Out(1), "idle": Out(1),
            "acc_src": Out(ReadPortSignature(acc_addr, acc_bits)),
            "acc_aux": Out(ReadPortSignature(acc_addr, acc_bits)),
            "acc_write": Out(WritePortSignature(acc_addr, acc_bits)),
            "spad_write": Out(WritePortSignature(spad_addr, spad_bits)),
        })

    def elaborate(self, platform):
        cfg = self.config
        cols, lanes, spad_bytes = cfg.cols, cfg.vector.lanes, cfg.spad_line_bytes
        _, spad_bits, acc_addr, acc_bits = memory_ports(cfg)
        m = Module()
        units = _build_units(cfg)
        distinct = _distinct_units(units)
        for unit, funcs in distinct:
            m.submodules["unit_" + "_".join(f.name.lower() for f in funcs)] = unit
        present = set(units)
        has_planes = bool(present & set(PLANE_FUNCS))
        cache_lines = plane_cache_lines(cfg) if has_planes else 0

        # The element record unit beats are built from: the source value, the second input
        # and the two plane words of its channel (only the fields some unit needs).
        fields = {"x": signed(ACC_WIDTH)}
        if present & set(AUX_ROW_FUNCS):
            fields["y"] = signed(ACC_WIDTH)
        if has_planes:
            fields.update(p0=unsigned(ACC_WIDTH), p1=unsigned(ACC_WIDTH))
        record = data.StructLayout(fields)
        row_fields = {"mant": unsigned(16), "exp": signed(8), "q_index": unsigned(Q_INDEX_BITS)}

        def beat_layout(width):
            return data.StructLayout({"elements": data.ArrayLayout(record, width),
                                      **row_fields, "count": lanes_shape(width), "last": 1})

        # ---- the instruction and what it selects ----------------------------------------
        # What the instruction selects is decoded as it is taken and kept in registers
        # beside it: these flags fan out to every unit, queue and multiplexer of the data
        # path, so they start at flip-flops rather than behind a comparison.
        insn = Signal(Vector, reset_less=True)  # taken before it is read
        incoming = self.insn.payload
        taken = self.insn.valid & self.insn.ready

        def decoded(value, name, shape=1, init=None):
            register = Signal(shape, name=name, init=init)
            with m.If(taken):
                m.d.sync += register.eq(value)
            return register

        def any_of(funcs):
            return Cat(Const(0, 1), *(incoming.func == f for f in funcs if f in present)).any()

        is_func = {f: decoded(incoming.func == f, f"is_{f.name.lower()}") for f in units}
        selects = [(unit, funcs, decoded(any_of(funcs), "is_" + "_".join(
            f.name.lower() for f in funcs))) for unit, funcs in distinct]
        records_in = decoded(any_of(RECORD_FUNCS) & incoming.row_scale, "records_in")
        aux_rows = decoded(any_of(AUX_ROW_FUNCS), "aux_rows")
        segmented = decoded(any_of(PLANE_FUNCS), "segmented")
        rowquant = decoded(any_of([VectorFunc.ROWQUANT]), "rowquant")
        to_spad = decoded(any_of(SPAD_FUNCS) | (any_of(WIDTH_FUNCS)
                                                & (incoming.out_width == OutWidth.INT8)),
                          "to_spad")
        out_bits = decoded(Mux(incoming.out_width == OutWidth.INT8, OutBits.INT8,
                               Mux(incoming.out_width == OutWidth.INT16, OutBits.INT16,
                                   OutBits.INT32)), "out_bits", OutBits, OutBits.INT32)
        head_lines, planes = Signal(2), Signal(2)
        for f in units:  # (not the set: its order varies between runs)
            with m.If(is_func[f]):
                m.d.comb += [head_lines.eq(vector_param_lines(f, 1, cols)[0]),
                             planes.eq(len(VECTOR_PARAMS[f][1]))]

        # The sizes and counters below are set in SIZES and FIRST, before anything reads
        # them: no reset (fewer loads on the reset net, which spans the die).
        chunks = Signal(16, reset_less=True)        # lines per row
        spad_per_row = Signal(16, reset_less=True)  # scratchpad lines per row
        tail = Signal(range(cols + 1), reset_less=True)  # elements in a row's last line
        seg_start = Signal(16, reset_less=True)     # first chunk of the current segment
        seg_len = Signal(16, reset_less=True)       # its chunks
        seg_left = Signal(16, reset_less=True)      # chunks after it
        seg_next = Signal(16)               # chunks of the next segment
        seg_tail = Signal(range(cols + 1))  # elements in a segment row's last line
        first_len = Signal(16)              # chunks of the first segment

        def segment_of(remaining):
            """Chunks of a segment starting with ``remaining`` chunks left."""
            return Mux(remaining > cache_lines, cache_lines, remaining)

        m.d.comb += [seg_next.eq(segment_of(seg_left)),
                     seg_tail.eq(Mux(seg_left == 0, tail, cols)),
                     first_len.eq(Mux(segmented, segment_of(chunks), chunks))]

        # ---- read side ------------------------------------------------------------------
        src_seq = m.submodules.src_seq = _BlockSequencer(acc_addr)
        aux_seq = m.submodules.aux_seq = _BlockSequencer(acc_addr)
        # (The plane cache's reader below keeps one read stage: its local memories answer in
        # the next cycle.)
        src_read = m.submodules.src_read = LineReader(acc_addr, acc_bits, src_seq.tag,
                                                      read_stages=cfg.read_stages)
        aux_read = m.submodules.aux_read = LineReader(acc_addr, acc_bits, aux_seq.tag,
                                                      read_stages=cfg.read_stages)
        wiring.connect(m, src_seq.addrs, src_read.addrs)
        wiring.connect(m, aux_seq.addrs, aux_read.addrs)
        wiring.connect(m, src_read.port, wiring.flipped(self.acc_src))
        wiring.connect(m, aux_read.port, wiring.flipped(self.acc_aux))
        src, aux = src_read.lines, aux_read.lines
        src_words = data.View(data.ArrayLayout(signed(ACC_WIDTH), cols), src.payload.data)
        aux_words = data.View(data.ArrayLayout(signed(ACC_WIDTH), cols), aux.payload.data)

        if has_planes:
            index_bits = (cache_lines - 1).bit_length() or 1
            plane_seq = m.submodules.plane_seq = _BlockSequencer(index_bits)
            plane_read = m.submodules.plane_read = LineReader(index_bits, 2 * acc_bits,
                                                              plane_seq.tag)
            wiring.connect(m, plane_seq.addrs, plane_read.addrs)
            cache_writes, cache_data = [], []
            for index in range(2):
                cache = Memory(shape=acc_bits, depth=cache_lines, init=[])
                m.submodules[f"plane_cache{index}"] = cache
                read = cache.read_port()
                m.d.comb += [read.addr.eq(plane_read.port.addr), read.en.eq(plane_read.port.en)]
                cache_data.append(read.data)
                cache_writes.append(cache.write_port())
            m.d.comb += [plane_read.port.ready.eq(1), plane_read.port.data.eq(Cat(*cache_data))]
            plane = plane_read.lines
            plane_words = data.View(data.ArrayLayout(unsigned(ACC_WIDTH), 2 * cols),
                                    plane.payload.data)

        # ---- control --------------------------------------------------------------------
        fsm = StateMachine(m, ["IDLE", "SIZES", "FIRST", "HEADER", "PLANES", "STREAM",
                               "DRAIN"], "vector_state")
        launched = Signal()  # the current phase's sequencers were started
        header = [Signal(ACC_WIDTH, name=f"header{w}", reset_less=True)
                  for w in range(HEADER_WORDS)]
        line_index = Signal(16, reset_less=True)  # header line / plane chunk being received
        plane_index = Signal(2, reset_less=True)
        rows_left = Signal(16, reset_less=True)   # rows of the segment the join has to take
        q_index = Signal(Q_INDEX_BITS, reset_less=True)
        written = Signal()       # the writer wrote the instruction's last line
        records_left = Signal(16, reset_less=True)

        join = stream.Signature(beat_layout(cols)).flip().create(path=("join",))
        join_take = join.valid & join.ready
        segment_done = join_take & join.payload.last & (rows_left == 0)
        aux_take = aux.valid & aux.ready

        def goto_after_header():
            with m.If(segmented):
                fsm.goto("PLANES")
            with m.Else():
                fsm.goto("STREAM")

        def start(seq, base, rows, stride, lines):
            m.d.comb += [seq.start.eq(1), seq.base.eq(base), seq.rows.eq(rows),
                         seq.stride.eq(stride), seq.lines.eq(lines)]

        with m.If(taken):
            m.d.sync += insn.eq(incoming)
        m.d.comb += [self.idle.eq(fsm.register == fsm.codes["IDLE"]),
                     self.insn.ready.eq(self.idle)]
        with fsm.state("IDLE"):
            with m.If(self.insn.valid):
                fsm.goto("SIZES")
        with fsm.state("SIZES"):
            length = insn.row_length
            m.d.sync += [chunks.eq(udiv_const(length + cols - 1, cols, 17)),
                         spad_per_row.eq(udiv_const(length + spad_bytes - 1, spad_bytes, 17))]
            fsm.goto("FIRST")
        with fsm.state("FIRST"):
            m.d.sync += [tail.eq(insn.row_length - (chunks - 1) * cols),
                         seg_start.eq(0), seg_len.eq(first_len),
                         seg_left.eq(chunks - first_len),
                         q_index.eq(insn.imm), written.eq(0),
                         records_left.eq(Mux(rowquant, insn.num_rows, 0)),
                         launched.eq(0), line_index.eq(0), plane_index.eq(0)]
            with m.If(head_lines != 0):
                fsm.goto("HEADER")
            with m.Else():
                goto_after_header()
        with fsm.state("HEADER"):
            with m.If(~launched):
                start(aux_seq, insn.param_addr, 1, 0, head_lines)
                m.d.sync += launched.eq(1)
            m.d.comb += aux.ready.eq(1)
            with m.If(aux_take):
                m.d.sync += line_index.eq(line_index + 1)
                for word, register in enumerate(header):
                    with m.If(line_index == word // cols):
                        m.d.sync += register.eq(aux_words[word % cols])
                with m.If(aux.payload.tag.last):
                    m.d.sync += launched.eq(0)
                    goto_after_header()
        if has_planes:
            with fsm.state("PLANES"):
                with m.If(~launched):
                    start(aux_seq, insn.param_addr + head_lines + seg_start, planes, chunks,
                          seg_len)
                    m.d.sync += [launched.eq(1), line_index.eq(0), plane_index.eq(0)]
                m.d.comb += aux.ready.eq(1)
                for index, port in enumerate(cache_writes):
                    m.d.comb += [port.addr.eq(line_index), port.data.eq(aux.payload.data),
                                 port.en.eq(aux_take & (plane_index == index))]
                with m.If(aux_take):
                    m.d.sync += line_index.eq(line_index + 1)
                    with m.If(aux.payload.tag.last):
                        m.d.sync += [line_index.eq(0), plane_index.eq(plane_index + 1)]
                        with m.If(plane_index == planes - 1):
                            m.d.sync += launched.eq(0)
                            fsm.goto("STREAM")
        with fsm.state("STREAM"):
            with m.If(~launched):
                start(src_seq, insn.src_addr + seg_start, insn.num_rows, chunks, seg_len)
                with m.If(aux_rows):
                    start(aux_seq, insn.aux_addr + seg_start, insn.num_rows, chunks, seg_len)
                with m.If(records_in):
                    start(aux_seq, insn.aux_addr, insn.num_rows, 1, 1)
                if has_planes:
                    with m.If(segmented):
                        start(plane_seq, 0, insn.num_rows, 0, seg_len)
                m.d.sync += [launched.eq(1), rows_left.eq(insn.num_rows - 1)]
            with m.If(join_take & join.payload.last):
                m.d.sync += [rows_left.eq(rows_left - 1), q_index.eq(q_index + 1)]
            with m.If(segment_done):
                m.d.sync += launched.eq(0)
                with m.If(seg_left == 0):
                    fsm.goto("DRAIN")
                with m.Else():
                    m.d.sync += [seg_start.eq(seg_start + seg_len), seg_len.eq(seg_next),
                                 seg_left.eq(seg_left - seg_next)]
                    fsm.goto("PLANES")
        with fsm.state("DRAIN"):
            with m.If(written & (records_left == 0)):
                m.d.comb += self.done.eq(1)
                fsm.goto("IDLE")

        # ---- join: a source line, its aux line or row record, its planes ---------------
        stream_phase = (fsm.register == fsm.codes["STREAM"]) & launched
        aux_ok = ~(aux_rows | records_in) | aux.valid
        plane_ok = (~segmented | plane.valid) if has_planes else Const(1)
        row_scale = data.View(ROW_SCALE_WORD, aux.payload.data[:ROW_SCALE_WORD.size])
        m.d.comb += [
            join.valid.eq(stream_phase & src.valid & aux_ok & plane_ok),
            src.ready.eq(join_take),
            join.payload.mant.eq(Mux(records_in, row_scale.mant, 1)),
            join.payload.exp.eq(Mux(records_in, row_scale.exp, 0)),
            join.payload.q_index.eq(q_index),
            join.payload.count.eq(Mux(src.payload.tag.last, seg_tail, cols)),
            join.payload.last.eq(src.payload.tag.last),
        ]
        with m.If(stream_phase):
            m.d.comb += aux.ready.eq(join_take & (aux_rows | (records_in
                                                              & src.payload.tag.last)))
        if has_planes:
            m.d.comb += plane.ready.eq(join_take & segmented)
        for k in range(cols):
            element = join.payload.elements[k]
            m.d.comb += element.x.eq(src_words[k])
            if "y" in fields:
                m.d.comb += element.y.eq(aux_words[k])
            if has_planes:
                m.d.comb += [element.p0.eq(plane_words[k]), element.p1.eq(plane_words[cols + k])]

        # ---- unit beats and the units ----------------------------------------------------
        # The units' beats wait in a queue behind the regroup, so that the units' ready
        # (chosen by the instruction) reaches only the queue's output side, not the
        # regroup and the line readers. A queue slice per element record: its output
        # register's enable reaches a record's flip-flops rather than the whole beat's.
        beat = self._regroup_elements(m, join, record, row_fields, beat_layout)
        beat_queue = m.submodules.beat_queue = StreamQueue(beat_layout(lanes), slices=lanes)
        m.d.comb += [beat_queue.i.valid.eq(beat.valid), beat_queue.i.payload.eq(beat.payload),
                     beat.ready.eq(beat_queue.i.ready)]
        self._drive_units(m, selects, is_func, beat_queue.o, insn, header, out_bits)
        result_layout = data.StructLayout({
            "data": data.ArrayLayout(signed(ACC_WIDTH), lanes), "count": lanes_shape(lanes),
            "last": 1, "mant": unsigned(16), "exp": signed(8)})
        results = m.submodules.result_queue = StreamQueue(result_layout)

        # The result side (the packers) and the writer need the instruction's flags only
        # once results come out, cycles after it was taken: each has copies of them a
        # cycle later, which the placer can put beside it rather than at the decoded
        # registers.
        write_to_spad, write_rowquant = (kept_copy(m, flag, f"write_{flag.name}")
                                         for flag in (to_spad, rowquant))
        to_spad, rowquant = (kept_copy(m, flag, f"out_{flag.name}")
                             for flag in (to_spad, rowquant))
        # Only the instruction's unit has results (an instruction is taken once the one
        # before it is written) and a unit's output is zero while it is not valid
        # (OutputQueue): the results are the OR of the units' outputs, with no select
        # reaching every bit of them from one flip-flop.
        outputs = [unit.o for unit, _, _ in selects]
        m.d.comb += results.i.valid.eq(Cat(o.valid for o in outputs).any())
        for o in outputs:
            m.d.comb += o.ready.eq(results.i.ready)
        for name in results.i.payload.shape().members:
            values = [Value.cast(o.payload[name]) for o in outputs
                      if name in o.payload.shape().members]
            if values:
                m.d.comb += results.i.payload[name].eq(reduce(operator.or_, values))

        # ---- output lines, ROWQUANT records and the writer ------------------------------
        out_bits = max(spad_bits, acc_bits)
        out_queue = m.submodules.out_queue = StreamQueue(
            data.StructLayout({"data": out_bits, "last": 1}))
        res = results.o
        paths = []
        if present & set(SPAD_FUNCS + WIDTH_FUNCS):
            paths.append((to_spad, self._pack_lines(m, "spad", 1, spad_bytes, res)))
        if present & set(ACC_FUNCS + WIDTH_FUNCS):
            paths.append((~to_spad, self._pack_lines(m, "acc", 4, cols, res)))
        has_records = VectorFunc.ROWQUANT in present
        if has_records:
            record_queue = m.submodules.record_queue = StreamQueue(
                data.StructLayout({"mant": 16, "exp": 8}))
            record_go = ~(rowquant & res.payload.last) | record_queue.i.ready
        else:
            record_go = Const(1)
        for selected, (line_in, line_out) in paths:
            with m.If(selected):
                m.d.comb += [line_in.valid.eq(res.valid & record_go),
                             res.ready.eq(line_in.ready & record_go),
                             out_queue.i.valid.eq(line_out.valid),
                             out_queue.i.payload.data.eq(line_out.payload.data),
                             out_queue.i.payload.last.eq(line_out.payload.last),
                             line_out.ready.eq(out_queue.i.ready)]
                if has_records:
                    m.d.comb += record_queue.i.valid.eq(res.valid & rowquant & res.payload.last
                                                        & line_in.ready)
        if has_records:
            m.d.comb += [record_queue.i.payload.mant.eq(res.payload.mant),
                         record_queue.i.payload.exp.eq(res.payload.exp)]

        # Result line addresses follow the loop nest: segment, row, line.
        addr_bits = max(len(self.acc_write.payload.addr), len(self.spad_write.payload.addr))
        addr, row_base, seg_base = (Signal(addr_bits, name=f"write_{n}", reset_less=True)
                                    for n in ("addr", "row_base", "seg_base"))
        write_rows_left, write_seg_left = (Signal(16, reset_less=True) for _ in range(2))
        row_stride = Mux(write_to_spad, spad_per_row, chunks)
        seg_step = Mux(write_to_spad, cache_lines * cols // spad_bytes, cache_lines)
        line = out_queue.o
        spad_ready = self.spad_write.ready
        acc_ready = self.acc_write.ready & ~write_rowquant
        line_take = line.valid & Mux(write_to_spad, spad_ready, acc_ready)
        m.d.comb += [
            line.ready.eq(Mux(write_to_spad, spad_ready, acc_ready)),
            self.spad_write.valid.eq(line.valid & write_to_spad),
            self.spad_write.payload.addr.eq(addr),
            self.spad_write.payload.data.eq(line.payload.data[:spad_bits]),
            self.acc_write.valid.eq(line.valid & ~write_to_spad),
            self.acc_write.payload.addr.eq(addr),
            self.acc_write.payload.data.eq(line.payload.data[:acc_bits]),
        ]
        with m.If(fsm.register == fsm.codes["FIRST"]):
            m.d.sync += [addr.eq(insn.dst_addr), row_base.eq(insn.dst_addr),
                         seg_base.eq(insn.dst_addr), write_rows_left.eq(insn.num_rows - 1),
                         write_seg_left.eq(chunks - first_len)]
        with m.Elif(line_take & line.payload.last & (write_rows_left == 0)):
            next_seg = (seg_base + seg_step)[:addr_bits]
            m.d.sync += [seg_base.eq(next_seg), row_base.eq(next_seg), addr.eq(next_seg),
                         write_rows_left.eq(insn.num_rows - 1),
                         write_seg_left.eq(write_seg_left - segment_of(write_seg_left))]
            with m.If(write_seg_left == 0):
                m.d.sync += written.eq(1)
        with m.Elif(line_take & line.payload.last):
            next_row = (row_base + row_stride)[:addr_bits]
            m.d.sync += [row_base.eq(next_row), addr.eq(next_row),
                         write_rows_left.eq(write_rows_left - 1)]
        with m.Elif(line_take):
            m.d.sync += addr.eq(addr + 1)

        if has_records:
            # ROWQUANT's row scales: record word in lane 0 of line aux_addr + r.
            record_addr = Signal(acc_addr, reset_less=True)
            scale = record_queue.o
            with m.If(fsm.register == fsm.codes["FIRST"]):
                m.d.sync += record_addr.eq(insn.aux_addr)
            with m.Elif(scale.valid & scale.ready):
                m.d.sync += [record_addr.eq(record_addr + 1), records_left.eq(records_left - 1)]
            with m.If(write_rowquant):
                m.d.comb += [
                    self.acc_write.valid.eq(scale.valid),
                    self.acc_write.payload.addr.eq(record_addr),
                    self.acc_write.payload.data.eq(Cat(scale.payload.mant, scale.payload.exp)),
                    scale.ready.eq(self.acc_write.ready),
                ]
        return m

    def _regroup_elements(self, m, lines, record, row_fields, beat_layout):
        """Unit beats (``lanes`` element records) from line beats (``cols`` records); the
        stream returned is ``beat_layout(lanes)``."""
        cols, lanes = self.config.cols, self.config.vector.lanes
        if lanes == cols:
            return lines
        beat = stream.Signature(beat_layout(lanes)).flip().create(path=("beat",))
        # Records move as units of a power-of-two number of bytes.
        record_bytes = 1 << ((record.size + 7) // 8 - 1).bit_length()
        repack = m.submodules.regroup = group_repacker(record_bytes * cols,
                                                       record_bytes * lanes, mask_inputs=False)
        if isinstance(repack, AlignedRepacker):
            # Lines and beats divide one another: lines split into beats (or gather) with
            # nothing held but an unfinished beat, no beat-wide buffer behind a barrel
            # shifter that the units' handshake selects, and a beat (which never spans two
            # segment rows) takes the row fields of the line it ends with.
            m.d.comb += [
                repack.i.valid.eq(lines.valid), lines.ready.eq(repack.i.ready),
                beat.valid.eq(repack.o.valid), repack.o.ready.eq(beat.ready),
            ]
            for name in row_fields:
                m.d.comb += beat.payload[name].eq(lines.payload[name])
            self._regroup_data(m, lines, repack, beat, record, record_bytes)
            return beat
        # The row fields wait in a queue: pushed with a row's first line, popped with its
        # last unit beat.
        row_layout = data.StructLayout(row_fields)
        rows = m.submodules.row_fields = SyncFIFOBuffered(width=row_layout.size, depth=4)
        first = Signal(init=1)
        line_go = ~first | rows.w_rdy
        m.d.comb += [
            repack.i.valid.eq(lines.valid & line_go),
            lines.ready.eq(repack.i.ready & line_go),
            rows.w_en.eq(lines.valid & lines.ready & first),
            rows.w_data.eq(Cat(*(lines.payload[name] for name in row_fields))),
        ]
        with m.If(lines.valid & lines.ready):
            m.d.sync += first.eq(lines.payload.last)
        held = data.View(row_layout, rows.r_data)
        m.d.comb += [
            beat.valid.eq(repack.o.valid & rows.r_rdy),
            repack.o.ready.eq(beat.ready & rows.r_rdy),
            rows.r_en.eq(repack.o.valid & beat.ready & repack.o.payload.last),
        ]
        for name in row_fields:
            m.d.comb += beat.payload[name].eq(held[name])
        self._regroup_data(m, lines, repack, beat, record, record_bytes)
        return beat

    def _regroup_data(self, m, lines, repack, beat, record, record_bytes):
        """The records of ``lines`` into the repacker ``repack`` (each padded to
        ``record_bytes``), and its groups out as ``beat``'s elements, ``count`` and
        ``last``."""
        shift = record_bytes.bit_length() - 1
        m.d.comb += [
            repack.i.payload.data.eq(Cat(*(Cat(e.as_value(), Const(0, 8 * record_bytes
                                                                   - record.size))
                                           for e in lines.payload.elements))),
            repack.i.payload.count.eq(lines.payload.count << shift),
            repack.i.payload.last.eq(lines.payload.last),
            beat.payload.count.eq(repack.o.payload.count >> shift),
            beat.payload.last.eq(repack.o.payload.last),
        ]
        for k in range(self.config.vector.lanes):
            start = 8 * record_bytes * k
            m.d.comb += beat.payload.elements[k].eq(
                repack.o.payload.data[start:start + record.size])

    def _drive_units(self, m, selects, is_func, beat, insn, header, out_bits):
        """Unit beats to the instruction's unit (``selects``: ``(unit, funcs, selected)``,
        each unit once); its per-operation inputs from the instruction, its decoded
        ``out_bits`` and the parameter header."""
        lanes = self.config.vector.lanes
        multiplier = data.View(DYADIC_WORD, header[0][:DYADIC_WORD.size])
        for unit, funcs, selected in selects:
            func = funcs[0]  # the functions of a shared unit have the same inputs
            payload = unit.i.payload
            m.d.comb += [unit.i.valid.eq(beat.valid & selected),
                         payload.count.eq(beat.payload.count),
                         payload.last.eq(beat.payload.last)]
            with m.If(selected):
                m.d.comb += beat.ready.eq(unit.i.ready)
            for k in range(lanes):
                for name, value in _lane_inputs(func, beat.payload.elements[k]).items():
                    m.d.comb += payload.lanes[k][name].eq(value)
            for name in ("mant", "exp", "q_index"):
                if name in payload.shape().members:
                    m.d.comb += payload[name].eq(beat.payload[name])
            settings = []  # (unit input, value)
            if func in (VectorFunc.GELU, VectorFunc.SILU):
                settings.append((unit.frac_bits, insn.imm[:4]))
                if len(funcs) > 1:  # table 1 is SiLU's (PWL_FUNCS order)
                    settings.append((unit.table, is_func[VectorFunc.SILU]))
            elif func == VectorFunc.SOFTMAX:
                settings += [(unit.mult, multiplier.m), (unit.shift, multiplier.s),
                             (unit.causal, insn.causal)]
                m.d.comb += unit.masked.eq(0)
            if func in RESCALE_VECTOR_FUNCS and len(funcs) > 1:
                settings.append((unit.func, sum(Mux(is_func[f], unit.funcs.index(f.name.lower()),
                                                    0) for f in funcs)))
            if func in NORM_FUNCS:
                settings.append((unit.eps_q, Cat(*header)))
                if len(funcs) > 1:
                    settings.append((unit.rms, is_func[VectorFunc.RMSNORM]))
            if func in WIDTH_FUNCS:
                settings.append((unit.out_bits, out_bits))
            # Each unit has its own copy of its settings (they are set cycles before its
            # first beat), beside it: the units sharing a setting (out_bits) are far apart.
            prefix = "_".join(f.name.lower() for f in funcs)
            for port, value in settings:
                port = Value.cast(port)
                m.d.comb += port.eq(kept_copy(m, Value.cast(value)[:len(port)],
                                              f"{prefix}_{port.name}"))

    def _pack_lines(self, m, name, lane_bytes, line_lanes, results):
        """``(beat, line)`` streams turning the beats of ``results`` into memory lines of
        ``line_lanes`` lanes of ``lane_bytes`` bytes (the low bytes of each result), zero
        past a row's end. ``beat`` takes its payload from ``results`` (the caller drives
        its handshake); ``line`` has ``data`` and ``last``."""
        lanes = self.config.vector.lanes
        width = 8 * lane_bytes
        beat = stream.Signature(1).flip().create(path=(f"{name}_beat",))
        result = results.payload
        if lanes == line_lanes:  # a beat is a line: zero the lanes past the row's end
            line = stream.Signature(data.StructLayout({"data": width * lanes, "last": 1})
                                    ).create(path=(f"{name}_line",))
            m.d.comb += [
                line.valid.eq(beat.valid), beat.ready.eq(line.ready),
                line.payload.last.eq(result.last),
                line.payload.data.eq(Cat(*(Mux(result.count > k, result.data[k][:width], 0)
                                           for k in range(lanes)))),
            ]
            return beat, line
        repack = group_repacker(lane_bytes * lanes, lane_bytes * line_lanes)
        m.submodules[f"{name}_pack"] = repack
        m.d.comb += [
            repack.i.valid.eq(beat.valid), beat.ready.eq(repack.i.ready),
            repack.i.payload.data.eq(Cat(*(result.data[k][:width] for k in range(lanes)))),
            repack.i.payload.count.eq(result.count * lane_bytes),
            repack.i.payload.last.eq(result.last),
        ]
        return beat, repack.o
