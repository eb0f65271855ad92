"""Compiling a quantized :class:`~systolic.sw.graph.Graph` for one :class:`HardwareConfig`.

Passes:

1. **lower** (:func:`lower`): every op goes to an accelerator unit — the array for matmuls,
   a vector unit for the others — or to the host: host ops (``embed``, ``rope``), ops whose
   unit the config lacks or whose rows exceed the unit's row buffer, the transposition of new
   keys into the KV cache (``kv_append``: scores need K^T as the array's B operand) and, for
   an output-stationary array, the transposition of every matmul's A operand (``transpose``).
2. **plan memory** (:class:`ModelCompiler`): one host buffer per tensor sized for
   ``max_seq`` tokens and ``max_keys`` attended positions (formats in :mod:`.memory`), the
   int8 weights (panel-major), the parameter block of every vector op, and per attention
   layer the KV cache: K^T ``(kv_heads * head_dim, max_keys)`` and V
   ``(max_keys, kv_heads * head_dim)`` (the V requantize writes its rows there directly).
3. **tile and schedule** (:meth:`ModelCompiler.fragment`): each accelerator op becomes a
   fragment of instructions (:mod:`.tiling`) with automatic dependency tokens
   (:mod:`.scheduler`); fragments are separated by FENCEs (intermediate tensors round-trip
   through host memory) and cached per (op, tokens, position).
4. **predict** (:mod:`.cost`): cycles per fragment.

The runtime (``systolic.sw.runtime``) executes the steps in order: consecutive accelerator
fragments form one program run, host steps run on the host-memory image between runs.
"""

from dataclasses import dataclass, replace

import numpy as np

from systolic.hw.config import HardwareConfig
from systolic.hw.isa import (DYADIC_WORD, Opcode, OutWidth, VectorFunc, encode, pack_words,
                             vector_param_lines, vector_row_limit)

from .. import golden
from ..graph import HOST_OPS, Graph
from .cost import predict_cycles
from .memory import DeviceMemory, HostLayout, activation_tiles, row_stride, weight_panels
from .scheduler import Scheduler
from .tiling import (Epilogue, EpilogueStep, Operand, RowsJob, emit_gemm, emit_gemv, emit_rows,
                     gemm_block_rows, gemv_transposed)

__all__ = ["OpPlan", "Fragment", "StepContext", "ModelCompiler", "lower", "op_macs",
           "VECTOR_FUNCS"]

#: Graph op kind -> vector function.
VECTOR_FUNCS = {
    "requantize": VectorFunc.REQUANTIZE, "rowquant": VectorFunc.ROWQUANT,
    "softmax": VectorFunc.SOFTMAX, "gelu": VectorFunc.GELU, "silu": VectorFunc.SILU,
    "mul": VectorFunc.MUL, "add": VectorFunc.ADD, "layernorm": VectorFunc.LAYERNORM,
    "rmsnorm": VectorFunc.RMSNORM,
}
_OUT_WIDTH = {8: OutWidth.INT8, 16: OutWidth.INT16, 32: OutWidth.INT32}
#: Rows of A per block from which vector steps run fused into the matmul before them.
FUSE_MIN_ROWS = 64
_STORAGE = {"int16": "int32", "int32": "int32", "int8": "int8", "uint8": "uint8",
            "rowscale": "record"}


@dataclass
class OpPlan:
    """One step of the lowered program.

    Members
    -------
    index : int
        Position in the plan.
    kind : str
        Graph op kind, or ``kv_append`` / ``transpose`` (steps the lowering adds).
    op : Op or None
        The graph op (for ``kv_append``: the op that produced the keys).
    where : "accelerator" or "host"
    reason : str
        Why a step runs on the host.
    positional : bool
        Its instructions depend on the position of the tokens (KV cache, keys, causal mask).
    """

    index: int
    kind: str
    op: object
    where: str
    reason: str = ""
    positional: bool = False


@dataclass
class Fragment:
    """The instructions of one accelerator step and their prediction."""

    words: bytes
    count: int
    predicted: dict
    macs: int


@dataclass
class StepContext:
    """The tokens of one run: ``seq`` new tokens at positions ``start ..``."""

    ids: np.ndarray
    start: int

    @property
    def seq(self):
        return len(self.ids)

    @property
    def keys(self):
        return self.start + self.seq

    @property
    def positions(self):
        return self.start + np.arange(self.seq)


def op_macs(graph, op, seq, keys):
    """Useful multiply-accumulates of a matmul op for ``seq`` tokens attending to ``keys``
    positions (0 for other ops)."""
    if op.kind != "matmul":
        return 0
    a, b = op.inputs
    if b in graph.weights:
        k, n = graph.weights[b].shape
        return seq * k * n
    heads = op.attrs.get("heads", 1)
    width = graph.tensors[b].shape[-1] // op.attrs.get("kv_heads", 1)  # head dim
    return heads * seq * keys * width


def _row_length(graph, op):
    """Elements per row of a vector op (its first input's last dimension; keys: None)."""
    length = graph.tensors[op.inputs[0]].shape[-1]
    return None if isinstance(length, str) else length


def lower(graph: Graph, config: HardwareConfig, max_keys):
    """The placement pass: a list of :class:`OpPlan` in execution order."""
    keys, values = golden.attention_inputs(graph)
    plans = []
    transposed = set()

    def add(kind, op, where, reason="", positional=False):
        plans.append(OpPlan(len(plans), kind, op, where, reason, positional))

    for op in graph.ops:
        touches = [graph.tensors[n] for n in (*op.inputs, *op.outputs) if n in graph.tensors]
        positional = any("keys" in t.shape for t in touches) or \
            any(n in keys or n in values for n in (*op.inputs, *op.outputs))
        if op.kind in HOST_OPS:
            add(op.kind, op, "host", "host operation", positional)
        elif op.kind == "matmul":
            if config.dataflow == "os" and op.inputs[0] not in transposed:
                transposed.add(op.inputs[0])
                add("transpose", op, "host", "output-stationary A^T", positional)
            add("matmul", op, "accelerator", positional=positional)
        else:
            func = VECTOR_FUNCS[op.kind]
            unit = {"mul": "eltwise", "add": "eltwise"}.get(op.kind, op.kind)
            length = _row_length(graph, op) or max_keys
            if not getattr(config.vector, unit):
                add(op.kind, op, "host", f"no {unit} unit", positional)
            elif length > vector_row_limit(config.vector, func):
                add(op.kind, op, "host", f"rows of {length} exceed the {unit} unit's "
                    f"{vector_row_limit(config.vector, func)}", positional)
            else:
                add(op.kind, op, "accelerator", positional=positional)
        if any(name in keys for name in op.outputs):
            add("kv_append", op, "host", "K^T for the array", True)
    return plans


class ModelCompiler:
    """Lowered plan, host-memory layout and instruction fragments of ``graph`` on ``config``
    for up to ``max_seq`` tokens per run and ``max_keys`` positions in total."""

    def __init__(self, graph: Graph, config: HardwareConfig, max_seq, max_keys):
        if max_seq < 1 or max_keys < max_seq:
            raise ValueError(f"need 1 <= max_seq <= max_keys, got {max_seq}, {max_keys}")
        self.graph, self.config = graph, config
        self.max_seq, self.max_keys = max_seq, max_keys
        self.plans = lower(graph, config, max_keys)
        self.keys, self.values = golden.attention_inputs(graph)
        self._fragments = {}
        self._layout()
        self.chains = self._epilogue_chains()
        self.fused_into = {vector: matmul for matmul, chain in self.chains.items()
                           for vector in chain}

    # -- memory planning ------------------------------------------------------------------
    def _layout(self):
        g, cfg = self.graph, self.config
        layout = self.layout = HostLayout(cfg)
        self.buffers = {}
        matmul_weights = {op.inputs[1] for op in g.ops
                          if op.kind == "matmul" and op.inputs[1] in g.weights}
        for name in sorted(matmul_weights):  # panel-major (memory.weight_panels)
            k, n = g.weights[name].shape
            self.buffers[name] = layout.add(name, k * -(-n // cfg.cols), cfg.spad_line_bytes,
                                            "int8")
        for op in g.ops:  # and B^T K-tile-major for one-row products that run transposed
            if op.kind == "matmul" and op.inputs[1] in g.weights:
                k, n = g.weights[op.inputs[1]].shape
                unsigned = g.tensors[op.inputs[0]].dtype == "uint8"
                name = f"bt.{op.inputs[1]}"
                if gemv_transposed(cfg, 1, k, n, unsigned) and name not in self.buffers:
                    self.buffers[name] = layout.add(name, -(-k // cfg.rows) * n,
                                                    cfg.spad_line_bytes, "int8")
        self.param_blocks = {}
        for plan in self.plans:
            if plan.where == "accelerator" and plan.kind in VECTOR_FUNCS:
                lines = self._param_lines(plan.op)
                if len(lines):
                    self.param_blocks[plan.index] = (layout.add(
                        f"params.{plan.index}", len(lines), cfg.cols, "int32"), lines)
        for name, info in g.tensors.items():
            if info.dtype == "ids":
                continue
            if name in self.values:
                self.buffers[name] = layout.add(f"cache.{name}", self.max_keys, info.shape[-1],
                                                _STORAGE[info.dtype])
                continue
            self.buffers[name] = self._tensor_buffer(name, info)
            if name in self.keys:
                self.buffers[f"kt.{name}"] = layout.add(f"cache.kt.{name}", info.shape[-1],
                                                        self.max_keys, "int8")
        self.transposed = {}
        if cfg.dataflow == "os":
            for plan in self.plans:
                if plan.kind == "transpose":
                    self.transposed[plan.op.inputs[0]] = self._transpose_buffer(plan.op)

    def _tensor_buffer(self, name, info):
        shape = info.shape
        if len(shape) == 3:  # (heads, seq, keys)
            heads = shape[0]
            return self.layout.add(name, heads * self.max_seq, self._size(shape[2]),
                                   _STORAGE[info.dtype], rows_per_head=self.max_seq)
        length = 1 if len(shape) == 1 else self._size(shape[-1])
        return self.layout.add(name, self.max_seq, length, _STORAGE[info.dtype])

    def buffer(self, name, ctx):
        """The host buffer of ``name`` as laid out in the run ``ctx``: rows over the keys are
        packed for the current number of keys (so a block of rows is contiguous)."""
        buf = self.buffers[name]
        info = self.graph.tensors.get(name)
        if info is not None and info.shape[-1] == "keys" and name not in self.values:
            return replace(buf, length=ctx.keys,
                           stride=row_stride(self.config, ctx.keys, buf.storage))
        return buf

    def _size(self, dim):
        return {"seq": self.max_seq, "keys": self.max_keys}.get(dim, dim)

    def _transpose_buffer(self, op):
        """A^T of every head's A operand: head ``h`` is rows ``h*K ..`` of (K, max_seq)."""
        a = self.graph.tensors[op.inputs[0]]
        if len(a.shape) == 3:  # probabilities (heads, seq, keys): K = keys
            heads, k = a.shape[0], self.max_keys
        elif op.attrs.get("transpose_b"):  # Q of the scores: K = head_dim
            heads = op.attrs["heads"]
            k = a.shape[-1] // heads
        else:
            heads, k = 1, a.shape[-1]
        storage = "uint8" if a.dtype == "uint8" else "int8"
        return self.layout.add(f"at.{op.inputs[0]}", heads * k, self.max_seq, storage,
                               rows_per_head=k)

    def _param_lines(self, op):
        """The parameter block of a vector op as int32 accumulator lines."""
        cols = self.config.cols
        func = VECTOR_FUNCS[op.kind]
        length = _row_length(self.graph, op) or self.max_keys
        p = op.params

        def dyadic(m, s):
            return pack_words(DYADIC_WORD, m=np.broadcast_to(m, (length,)),
                              s=np.broadcast_to(s, (length,)))

        if func == VectorFunc.SOFTMAX:
            head_lines, _, _ = vector_param_lines(func, length, cols)
            lines = np.zeros((len(p) * head_lines, cols), np.int32)
            for h, params in enumerate(p):
                lines[h * head_lines, 0] = pack_words(DYADIC_WORD, m=params.m, s=params.s)
            return lines
        header, planes = [], []
        if func == VectorFunc.REQUANTIZE:
            planes = [dyadic(p.m, p.s), np.broadcast_to(p.bias, (length,))]
        elif func == VectorFunc.MUL:
            planes = [dyadic(1, 0) if p is None else dyadic(p.m, p.s)]
        elif func == VectorFunc.ADD:
            planes = [dyadic(p.a.m, p.a.s), dyadic(p.b.m, p.b.s)]
        elif func in (VectorFunc.LAYERNORM, VectorFunc.RMSNORM):
            header = [p.eps_q & 0xFFFFFFFF, p.eps_q >> 32]
            planes = [dyadic(p.gm, p.gs), np.broadcast_to(p.beta, (length,))]
        head_lines, chunk_lines, total = vector_param_lines(func, length, cols)
        block = np.zeros(total * cols, np.int64)
        block[:len(header)] = header
        for index, plane in enumerate(planes):
            start = (head_lines + index * chunk_lines) * cols
            block[start:start + length] = np.asarray(plane, np.int64)
        return block.astype(np.uint32).view(np.int32).reshape(total, cols)

    def memory(self):
        """A fresh host-memory image holding the weights and parameter blocks."""
        mem = DeviceMemory(self.layout.size)
        for name, w in self.graph.weights.items():
            if name in self.buffers:
                mem.place(self.buffers[name], weight_panels(np.asarray(w, np.int8),
                                                            self.config))
            if f"bt.{name}" in self.buffers:
                mem.place(self.buffers[f"bt.{name}"],
                          activation_tiles(np.asarray(w, np.int8).T, self.config))
        for tensor, lines in self.param_blocks.values():
            mem.place(tensor, lines)
        return mem

    # -- epilogues -------------------------------------------------------------------------
    def _epilogue_chains(self):
        """``{matmul plan index: [vector plan indices]}``: the vector operations that can run
        on each weight-stationary weight matmul's output tiles while they are still on chip
        (:class:`~.tiling.Epilogue`): a REQUANTIZE of its result, then optionally a GELU,
        SILU or an ADD of a tensor computed earlier, each the only consumer of what it
        reads."""
        if self.config.dataflow != "ws":
            return {}
        consumers = {}
        for plan in self.plans:
            if plan.kind in ("kv_append", "transpose"):  # steps reading an op's result
                continue
            for name in plan.op.inputs:
                consumers.setdefault(name, []).append(plan)
        chains = {}
        for plan in self.plans:
            op = plan.op
            if plan.kind != "matmul" or op.inputs[1] not in self.graph.weights:
                continue
            chain, value = [], op.outputs[0]
            for allowed in (("requantize",), ("gelu", "silu", "add")):
                users = consumers.get(value, [])
                if len(users) != 1 or users[0].where != "accelerator" or \
                        users[0].kind not in allowed or value in self.graph.outputs:
                    break
                user = users[0]
                position = 1 if user.kind == "add" else 0  # an ADD's tile is its second input
                if user.op.inputs[position] != value:
                    break
                chain.append(user.index)
                value = user.op.outputs[0]
            if chain:
                chains[plan.index] = chain
        return chains

    def _fused(self, matmul_index, ctx):
        """Whether the epilogue of matmul step ``matmul_index`` runs fused for ``ctx``: when
        its output tiles are at least :data:`FUSE_MIN_ROWS` tall (a fused epilogue costs the
        array a drain and a refill per output tile, which only pays for itself on tall
        tiles)."""
        if matmul_index not in self.chains:
            return False
        k, n = self.graph.weights[self.plans[matmul_index].op.inputs[1]].shape
        rows = gemm_block_rows(self.config, ctx.seq, k, n,
                               self._epilogue(self.chains[matmul_index], ctx))
        return rows >= FUSE_MIN_ROWS

    def _epilogue(self, chain, ctx):
        """The :class:`~.tiling.Epilogue` of the vector steps ``chain``."""
        steps = []
        for index in chain:
            op = self.plans[index].op
            step = EpilogueStep(VectorFunc(VECTOR_FUNCS[op.kind]))
            if index in self.param_blocks:
                tensor, lines = self.param_blocks[index]
                step.params = (tensor.operand(), len(lines))
            if op.kind == "requantize":
                step.out_width = _OUT_WIDTH[op.params.out_bits]
                if len(op.inputs) > 1:
                    step.records = self.buffers[op.inputs[1]].operand()
            elif op.kind == "add":
                step.out_width = _OUT_WIDTH[op.params.out_bits]
                step.residual = self.buffer(op.inputs[0], ctx).operand()
            else:
                step.imm = op.attrs["frac_bits"]
            steps.append(step)
        out = self.plans[chain[-1]].op.outputs[0]
        out_row = ctx.start if out in self.values else 0
        return Epilogue(steps, self.buffer(out, ctx).operand(row=out_row))

    # -- fragments ------------------------------------------------------------------------
    def fragment(self, plan: OpPlan, ctx: StepContext):
        """The :class:`Fragment` of accelerator step ``plan`` for the tokens of ``ctx`` (no
        instructions for a vector step fused into its matmul)."""
        key = (plan.index, ctx.seq, ctx.start if plan.positional else None)
        if plan.index in self.fused_into and self._fused(self.fused_into[plan.index], ctx):
            return Fragment(b"", 0, dict.fromkeys(("load", "store", "array", "vector",
                                                   "fetch", "total"), 0), 0)
        if key not in self._fragments:
            if ctx.seq > self.max_seq or ctx.keys > self.max_keys:
                raise ValueError(f"{ctx.seq} tokens at position {ctx.start} exceed the "
                                 f"compiled capacity ({self.max_seq} tokens, "
                                 f"{self.max_keys} positions)")
            sched = Scheduler(self.config)
            macs = self._emit(sched, plan, ctx)
            sched.fence()
            words = sched.words()
            self._fragments[key] = Fragment(
                b"".join(w.to_bytes(16, "little") for w in words), len(words),
                predict_cycles(self.config, sched.instructions), macs)
        return self._fragments[key]

    def _emit(self, sched, plan, ctx):
        op = plan.op
        if op.kind == "matmul":
            self._emit_matmul(sched, plan, ctx)
        else:
            self._emit_vector(sched, plan, ctx)
        return op_macs(self.graph, op, ctx.seq, ctx.keys)

    def _emit_matmul(self, sched, plan, ctx):
        g, op = self.graph, plan.op
        a_name, b_name = op.inputs
        a, c = self.buffer(a_name, ctx), self.buffer(op.outputs[0], ctx)
        unsigned = g.tensors[a_name].dtype == "uint8"
        os = self.config.dataflow == "os"
        heads, kv_heads = op.attrs.get("heads", 1), op.attrs.get("kv_heads", 1)
        group = heads // kv_heads
        if b_name in g.weights:
            k, n = g.weights[b_name].shape
            a_op = self.transposed[a_name].operand() if os else a.operand()
            epilogue = self._epilogue(self.chains[plan.index], ctx) \
                if self._fused(plan.index, ctx) else None
            bt = self.buffers.get(f"bt.{b_name}")
            if bt is not None and ctx.seq == 1 and epilogue is None:
                line = self.config.spad_line_bytes
                emit_gemv(sched, k, n, a_op, Operand(bt.address, n * line, bt.name),
                          c.operand())
                return
            emit_gemm(sched, ctx.seq, k, n, a_op, self.buffers[b_name].operand(), c.operand(),
                      unsigned, b_panels=True, epilogue=epilogue)
            return
        if op.attrs.get("transpose_b"):  # scores per head: Q_h (seq, dh) @ K^T (dh, keys)
            kt = self.buffers[f"kt.{b_name}"]
            dh = g.tensors[a_name].shape[-1] // heads
            for h in range(heads):
                a_op = self.transposed[a_name].operand(head=h) if os else a.operand(col=h * dh)
                emit_gemm(sched, ctx.seq, dh, ctx.keys, a_op,
                          kt.operand(row=(h // group) * dh), c.operand(head=h), unsigned)
            return
        v = self.buffers[b_name]  # context per head: P_h (seq, keys) @ V_h (keys, dh)
        dh = g.tensors[b_name].shape[-1] // kv_heads
        for h in range(heads):
            a_op = self.transposed[a_name].operand(head=h) if os else a.operand(head=h)
            emit_gemm(sched, ctx.seq, ctx.keys, dh, a_op, v.operand(col=(h // group) * dh),
                      c.operand(col=h * dh), unsigned)

    def _emit_vector(self, sched, plan, ctx):
        g, op = self.graph, plan.op
        func = VECTOR_FUNCS[op.kind]
        src = g.tensors[op.inputs[0]]
        length = ctx.keys if src.shape[-1] == "keys" else src.shape[-1]
        out = op.outputs[0]
        out_row = ctx.start if out in self.values else 0
        job = RowsJob(func, length, [(0, ctx.seq, 0, 0)],
                      self.buffer(op.inputs[0], ctx).operand(),
                      self.buffer(out, ctx).operand(row=out_row))
        if plan.index in self.param_blocks:
            tensor, lines = self.param_blocks[plan.index]
            job.params = (tensor.operand(), len(lines))
        if op.kind in ("mul", "add"):
            job.aux = self.buffer(op.inputs[1], ctx).operand()
        if op.kind in ("requantize", "softmax") and len(op.inputs) > 1:
            job.records_in = self.buffers[op.inputs[1]].operand()
            job.row_scale = True
        if op.kind == "rowquant":
            job.records_out = self.buffers[op.outputs[1]].operand()
        params = op.params
        if op.kind in ("requantize", "layernorm", "rmsnorm", "add"):
            job.out_width = _OUT_WIDTH[params.out_bits]
        elif op.kind == "mul":
            job.out_width = _OUT_WIDTH[32 if params is None else params.out_bits]
        elif op.kind in ("gelu", "silu"):
            job.groups = [(0, ctx.seq, 0, op.attrs["frac_bits"])]
        elif op.kind == "softmax":
            head_lines, _, _ = vector_param_lines(func, length, self.config.cols)
            rows = self.buffers[op.inputs[0]].rows_per_head
            job.groups = [(h * rows, ctx.seq, h * head_lines, ctx.start)
                          for h in range(len(params))]
            job.causal = bool(op.attrs.get("causal"))
        emit_rows(sched, job)

    # -- host steps ----------------------------------------------------------------------
    def read(self, mem: DeviceMemory, name, ctx):
        """Tensor ``name`` of the current run as the golden model holds it."""
        info, buf = self.graph.tensors[name], self.buffer(name, ctx)
        if name in self.values:
            return mem.read(buf, ctx.keys)
        if len(info.shape) == 3:
            return np.stack([mem.read(buf, ctx.seq, head=h) for h in range(info.shape[0])])
        return mem.read(buf, ctx.seq)

    def write(self, mem: DeviceMemory, name, value, ctx):
        info, buf = self.graph.tensors[name], self.buffer(name, ctx)
        if len(info.shape) == 3:
            for h in range(info.shape[0]):
                mem.write(buf, value[h], head=h)
        else:
            mem.write(buf, value, first=ctx.start if name in self.values else 0)

    def run_host(self, plan: OpPlan, mem: DeviceMemory, ctx: StepContext):
        """Execute host step ``plan``; returns the bytes it read and wrote in host memory
        shared with the accelerator."""
        op, g = plan.op, self.graph
        if plan.kind == "kv_append":
            name = next(n for n in op.outputs if n in self.keys)
            k8 = mem.read(self.buffers[name], ctx.seq)
            kt = self.buffers[f"kt.{name}"]
            mem.view(kt, kt.rows)[:, ctx.start:ctx.keys] = k8.T.astype(np.int8)
            return 2 * k8.size
        if plan.kind == "transpose":
            return self._transpose(op, mem, ctx)
        args = [self.read(mem, n, ctx) if n in g.tensors else g.weights[n] for n in op.inputs
                if n != "ids"]
        outputs = golden.evaluate(g, op, args, ctx.ids, ctx.positions)
        moved = sum(_nbytes(g, n, a) for n, a in zip(op.inputs, args) if n in g.tensors)
        for name, value in zip(op.outputs, outputs):
            self.write(mem, name, value, ctx)
            moved += _nbytes(g, name, value)
        return moved

    def _transpose(self, op, mem, ctx):
        a_name = op.inputs[0]
        at = self.transposed[a_name]
        a = self.read(mem, a_name, ctx)
        heads = at.rows // at.rows_per_head
        if a.ndim == 2 and heads > 1:  # Q of the scores: per-head column groups
            a = a.reshape(ctx.seq, heads, -1).transpose(1, 0, 2)
        for h in range(heads):
            part = a[h] if a.ndim == 3 else a
            mem.view(at, part.shape[1], head=h)[:, :ctx.seq] = part.T
        return 2 * a.size * np.dtype(at.dtype).itemsize

    # -- whole runs -----------------------------------------------------------------------
    def output(self, mem, ctx):
        return self.read(mem, self.graph.outputs[0], ctx)


def _nbytes(graph, name, value):
    info = graph.tensors[name]
    if info.dtype == "rowscale":
        return 4 * len(value)
    return int(np.asarray(value).size) * {"int16": 2, "int32": 4}.get(info.dtype, 1)


def halt_word():
    return encode(Opcode.HALT).to_bytes(16, "little")
