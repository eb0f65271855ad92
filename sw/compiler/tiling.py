"""Tiling passes: one GEMM, or one vector operation over rows, onto the memories of a
:class:`HardwareConfig`, emitted into a :class:`~.scheduler.Scheduler` (which adds the
dependency tokens). Each operation starts with both memories free (operations are separated
by FENCEs), and double-buffers its slots so that loads overlap compute and stores.

GEMM, weight-stationary (``C = A @ B``, any M, K, N). The scratchpad's lower half holds two
B slots, each one column panel (all of K, or a K panel, for ``cols`` output columns: tile
``kt`` at ``slot + kt * rows``); the upper half two A slots, each ``mb`` rows of A in
K-tile-major order (tile ``kt`` at ``slot + kt * mb``, what a MATMUL streams); the
accumulator two C slots of ``mb`` lines. Per block of ``mb`` rows: load A once (when all of K
fits one panel), then per column panel load B, one MATMUL per K tile, store C.

GEMM, output-stationary: per ``rows x cols`` output tile and K chunk, load ``kc`` lines of
A^T (the host provides A transposed) and of B, one MATMUL, store the tile after the last
chunk.

Rows (vector operations): a row of L elements is ``ceil(L / cols)`` accumulator lines; host
tensors are line-padded (see :mod:`.memory`), so a block of rows is one contiguous LOAD. The
parameter block and input per-row records are loaded once; source, second input, results and
output records are double-buffered blocks of ``rb`` rows.
"""

from dataclasses import dataclass

from systolic.hw.isa import Memory, VectorFunc, vector_output_memory, vector_param_lines

from .scheduler import Scheduler

__all__ = ["Operand", "Epilogue", "EpilogueStep", "emit_gemm", "gemv_transposed", "emit_gemv",
           "RowsJob", "emit_rows", "load_lines"]

#: Largest count of the 16-bit ``rows`` / ``length`` / ``num_rows`` fields.
MAX_FIELD = 2**16 - 1
#: Largest ``row_bytes`` of a transfer.
MAX_ROW_BYTES = 2**12 - 1
#: Cycles of the longest row (DMA command) a weight-stationary transfer of contiguous lines
#: is split into, per array row. The DMA reader serves commands in order and holds about
#: ``dma_outstanding + 2`` of them, so an instruction fetch waits behind that many load
#: commands: with M = 1 (decode) a MATMUL takes only ``rows`` cycles and the two chunks the
#: fetch buffer holds run out unless commands are short; but each command costs a cycle of
#: the bus. A command moves a beat or (lines narrower than the bus) a line per cycle.
#: Measured on the RTL, 16-byte bus: 16x16, 1 x 576 x 8192 takes 323.7k cycles at 3 rows
#: (48 beats) and 333.2k at 4; 8x8 (8-byte lines), 1 x 384 x 1536 takes 77.9k at 3 rows
#: (24 lines) and 95.2k at 6.
COMMAND_ROWS = 3


def command_bytes(cfg, width):
    """Bytes of the longest DMA command of a transfer of ``width``-byte lines on ``cfg``:
    weight-stationary, :data:`COMMAND_ROWS` rows of cycles; output-stationary as long as a
    row can be (its MATMULs stream a K chunk each, so fetch never runs dry waiting)."""
    if cfg.dataflow == "os":
        return MAX_ROW_BYTES
    return min(MAX_ROW_BYTES, COMMAND_ROWS * cfg.rows * min(cfg.dma_bytes, width))


def _ceil_div(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class Operand:
    """A matrix in host memory: byte ``address`` of element (0, 0), ``stride`` bytes between
    rows, and the host ``buffer`` it belongs to (for hazard tracking)."""

    address: int
    stride: int
    buffer: object

    def at(self, row, col_bytes=0):
        return self.address + row * self.stride + col_bytes


@dataclass
class EpilogueStep:
    """A vector operation applied to each output tile of a weight-stationary GEMM while it
    is still in the accumulator (see :class:`Epilogue`).

    ``params``: ``(Operand, lines)`` of the parameter block for rows of the whole output
    width N (as :class:`RowsJob` has it); ``records``: the per-row records a REQUANTIZE
    with ``row_scale`` reads (one word per row of A); ``residual``: the first input of an
    ADD (rows of N int32 elements, the tile's value being the second); ``imm`` as in
    VECTOR."""

    func: VectorFunc
    params: tuple = None
    out_width: int = 2
    records: Operand = None
    residual: Operand = None
    imm: int = 0


@dataclass
class Epilogue:
    """Element-wise vector operations fused into a GEMM: each output tile goes through
    ``steps`` in the accumulator and only the last one's result is stored, to ``out``
    (rows of N elements: int32 lanes, or bytes when the last step writes int8)."""

    steps: list
    out: Operand


def load_lines(sched, mem, sram_addr, lines, address, buffer):
    """LOAD ``lines`` whole lines stored contiguously at ``address`` (few instructions)."""
    width = sched.config.acc_line_bytes if mem == Memory.ACC else sched.config.spad_line_bytes
    _transfer_lines(sched.load, mem, sram_addr, lines, address, buffer, width, sched.config)


def _transfer_lines(transfer, mem, sram_addr, lines, address, buffer, width, cfg):
    per_row = max(1, min(command_bytes(cfg, width) // width, lines))  # lines per transfer row
    done = 0
    while done < lines:
        rows = min((lines - done) // per_row, MAX_FIELD)
        group = per_row
        if rows == 0:  # the remainder
            rows, group = 1, lines - done
        transfer(mem, sram_addr + done, rows, group * width, address + done * width,
                 group * width, buffer)
        done += rows * group


# -- GEMM ------------------------------------------------------------------------------------

#: Most weight slots of a weight-stationary GEMM (loads run this many panels minus one ahead).
B_SLOTS = 3


def emit_gemm(sched: Scheduler, m, k, n, a: Operand, b: Operand, c: Operand, a_unsigned=False,
              b_panels=False, a_tiles=False, epilogue: Epilogue = None):
    """Instructions computing the int32 ``C = A @ B`` (M x K @ K x N) between host operands.

    Weight-stationary ``a`` is A (M x K); output-stationary ``a`` is A^T (K x M). With
    ``b_panels``, B is stored panel-major (:func:`~.memory.weight_panels`: ``cols`` columns at
    a time, one scratchpad line per row), so a panel loads in long bursts. With ``a_tiles``,
    A is stored tile-major too (:func:`~.memory.activation_tiles`): weight-stationary, K tile
    ``t`` (``rows`` columns of every row, one line per row) at ``a.address + t * a.stride``;
    output-stationary, A^T panel-major with panels of ``rows`` columns, ``a.stride`` bytes
    apart. With an ``epilogue`` (weight-stationary only) C is not stored: each output tile
    goes through the epilogue's vector operations and their result is stored instead."""
    if min(m, k, n) < 1:
        raise ValueError(f"GEMM dimensions must be at least 1, got M={m} K={k} N={n}")
    cfg = sched.config
    line = cfg.spad_line_bytes

    def load_b(slot, k0, kw, n0, nw):
        if b_panels:
            load_lines(sched, Memory.SPAD, slot, kw,
                       b.address + ((n0 // cfg.cols) * k + k0) * line, b.buffer)
        else:
            sched.load(Memory.SPAD, slot, kw, nw, b.at(k0, n0), b.stride, b.buffer)

    if cfg.dataflow == "os":
        if epilogue is not None:
            raise ValueError("an epilogue needs a weight-stationary array")
        _gemm_os(sched, m, k, n, a, a_tiles, load_b, c, a_unsigned)
    else:
        _gemm_ws(sched, m, k, n, a, a_tiles, load_b, c, a_unsigned, epilogue)


#: A 1 x K x N product runs transposed (:func:`emit_gemv`) when the bus bounds it (lines at
#: least as wide as the bus: narrower ones are written more slowly than they arrive, and
#: the words of instructions come for free) and the MATMUL words it saves (``K * N / (rows *
#: cols)``, a bus beat each) are at least this many times the cycles of loading A a byte
#: per DMA command (about ``2 * K``). Measured on the RTL, 16x16, 16-byte bus: 1 x 576 x
#: 8192 takes 306.6k cycles transposed and 323.7k as a GEMM; 8x8 (8-byte lines), 1 x 256 x
#: 512 takes 21.3k transposed and 18.5k as a GEMM; 16x16, 1 x 577 x 2051, 83.5k and 82.7k.
GEMV_GAIN = 8


def gemv_transposed(config, m, k, n, a_unsigned=False):
    """Whether ``C = A @ B`` (M x K @ K x N) is better computed by :func:`emit_gemv`:
    weight-stationary, lines as wide as the bus, one signed row of A, N at least
    ``2 * GEMV_GAIN * rows * cols``, and the scratchpad holding blocks of at least
    ``2 * cols`` rows of B^T (a MATMUL per block and K tile replaces one per weight tile)."""
    return (config.dataflow == "ws" and config.spad_line_bytes >= config.dma_bytes
            and m == 1 and not a_unsigned and n >= 2 * GEMV_GAIN * config.rows * config.cols
            and gemm_block_rows(config, n, k, 1) >= 2 * config.cols)


def emit_gemv(sched: Scheduler, k, n, a: Operand, bt: Operand, c: Operand):
    """Instructions computing the int32 row ``C = A @ B`` (1 x K @ K x N, A signed) as
    ``C^T = B^T A^T``: A^T is the stationary operand (K scratchpad lines, element ``k`` alone
    in line ``k``: a LOAD of K one-byte rows from A's row at ``a.address``) and B^T streams
    through the array, stored tile-major (:func:`~.memory.activation_tiles` of B^T: K tile
    ``t`` is N lines at ``bt.address + t * bt.stride``). A MATMUL then streams a block of
    rows of B^T instead of taking one weight tile for one row of A, so the program has
    about ``rows * cols / mb`` times fewer instructions — decode is bound by the bus, on
    which every instruction word costs a beat. C^T's rows are C's elements (``c`` is C's
    row)."""
    if min(k, n) < 1:
        raise ValueError(f"GEMV dimensions must be at least 1, got K={k} N={n}")
    if sched.config.dataflow != "ws":
        raise ValueError("a transposed GEMV needs a weight-stationary array")

    def load_a_column(slot, k0, kw, n0, nw):
        sched.load(Memory.SPAD, slot, kw, 1, a.address + k0, 1, a.buffer)

    _gemm_ws(sched, n, k, 1, bt, True, load_a_column, Operand(c.address, 4, c.buffer), False)


def _spad_halves(cfg):
    """Lines of the weight (B) region at line 0 and of the activation (A) region above it:
    the scratchpad's halves, in different banks when it has two or more, so that the array's
    activation and weight reads never wait for each other."""
    half = cfg.spad_lines // 2
    return half, half


def _c_slots(cfg, lines):
    """Two accumulator slots of ``lines`` lines, in different banks when the accumulator has
    two or more (so a STORE reading one never waits for MATMULs accumulating into the
    other)."""
    return (0, cfg.acc_lines // 2) if lines <= cfg.acc_lines // 2 else None


def _blocks(total, most):
    """``total`` split into equal blocks of at most ``most``: ``[(start, size)]``."""
    count = _ceil_div(total, most)
    size = _ceil_div(total, count)
    return [(start, min(size, total - start)) for start in range(0, total, size)]


def _ws_plan(cfg, m, k, n, epilogue):
    """Sizes of a weight-stationary GEMM: ``(K panels [(first tile, tiles)], weight slot
    lines, weight panels resident, rows per block of A, epilogue writes bytes)``."""
    rows, cols = cfg.rows, cfg.cols
    b_region, a_region = _spad_halves(cfg)
    k_tiles = _ceil_div(k, rows)
    most = min(k_tiles, b_region // (2 * rows))  # K tiles per panel: two slots must fit
    if most < 1:
        raise ValueError(f"the scratchpad of {cfg.spad_lines} lines cannot hold two "
                         f"{rows}-line weight tiles")
    k_panels = _blocks(k_tiles, most)
    kp = k_panels[0][1]
    fit = b_region // (kp * rows)  # weight slots that fit
    per_block = _ceil_div(n, cols) * len(k_panels)  # weight panels of one block of A
    # All weight panels resident when they fit (loaded for the first block of A only);
    # otherwise a ring of slots, reloaded for every block.
    resident = per_block <= fit
    b_slots = [i * kp * rows for i in range(per_block if resident else min(B_SLOTS, fit))]
    lookahead = min(len(b_slots), B_SLOTS) - 1 if len(k_panels) == 1 else 1
    byte_out = epilogue is not None and vector_output_memory(
        epilogue.steps[-1].func, epilogue.steps[-1].out_width) == Memory.SPAD
    mb = min(m, a_region // (2 * kp + 2 * byte_out), cfg.acc_lines // 2, MAX_FIELD)
    if epilogue is not None:
        mb = min(mb, _Epilogue.most_rows(cfg, epilogue, lookahead + 1))
    if mb < 1:
        raise ValueError(f"the memories of {cfg} cannot hold a block of A and its results")
    return k_panels, b_slots, resident, _blocks(m, mb)[0][1], byte_out


def gemm_block_rows(config, m, k, n, epilogue=None):
    """Rows of A per block of a weight-stationary GEMM (each output tile is that tall)."""
    return _ws_plan(config, m, k, n, epilogue)[3]


def _gemm_ws(sched, m, k, n, a, a_tiles, load_b, c, a_unsigned, epilogue=None):
    """Weight-stationary GEMM (see docs/compiler.md, "GEMM tiling").

    A block of ``mb`` rows of A stays in the scratchpad while every column panel of B streams
    past it (when all of K fits; otherwise A and B go K panel by K panel). Weight panels use a
    ring of up to :data:`B_SLOTS` slots and are emitted that many panels minus one ahead of
    their MATMULs, so the load unit runs ahead of the array; the next block of A is loaded
    piece by piece between the panels of the current one; results alternate between two
    accumulator slots in different banks and are stored while the next panel computes. The
    first step's loads and MATMULs go tile by tile, so the array starts after one tile.
    An ``epilogue`` runs on each finished tile before it is stored (:class:`_Epilogue`)."""
    cfg = sched.config
    rows, cols, line = cfg.rows, cfg.cols, cfg.spad_line_bytes
    b_region, _ = _spad_halves(cfg)
    k_tiles = _ceil_div(k, rows)
    k_panels, b_slots, resident, mb, byte_out = _ws_plan(cfg, m, k, n, epilogue)
    kp = k_panels[0][1]
    whole_k = len(k_panels) == 1
    per_block = _ceil_div(n, cols) * len(k_panels)  # weight panels of one block of A
    lookahead = min(len(b_slots), B_SLOTS) - 1 if whole_k else 1
    m_blocks = _blocks(m, mb)
    mb = m_blocks[0][1]
    a_slots = _rotated(sched, "a", (b_region, b_region + mb * kp))
    c_slots = _rotated(sched, "c", _c_slots(cfg, mb))
    b_slots = _rotated(sched, "b", b_slots)
    steps = [(block, m0, mw, n0, min(cols, n - n0), t0, tn)
             for block, (m0, mw) in enumerate(m_blocks) for n0 in range(0, n, cols)
             for t0, tn in k_panels]
    tail = None
    if epilogue is not None:
        tail = _Epilogue(sched, epilogue, n, mb, lookahead + 1,
                         b_region + 2 * mb * kp if byte_out else None)

    def finish(s, c_slot):
        """Store the output tile of step ``s`` (through the epilogue, if any)."""
        block, m0, mw, n0, nw, _, _ = steps[s]
        if tail is None:
            sched.store(Memory.ACC, c_slot, mw, 4 * nw, c.at(m0, 4 * n0), c.stride, c.buffer)
        else:
            tail.finish(s, block, c_slot, m0, mw, n0, nw)

    def epilogue_inputs(s):
        if tail is not None and steps[s][5] + steps[s][6] == k_tiles:
            block, m0, mw, n0, nw, _, _ = steps[s]
            first_of_block = s == 0 or steps[s - 1][0] != block
            tail.prefetch(s, block if first_of_block else None, m0, mw, n0, nw)

    def a_loads(slot, m0, mw, t0, tn, groups=1):
        """Thunks loading K tiles ``t0 .. t0 + tn`` of rows ``m0 .. m0 + mw`` into ``slot``
        (tile-major: tile ``t`` at ``slot + (t - t0) * mw``), in about ``groups`` loads."""
        if a_tiles and mw * line <= MAX_ROW_BYTES:  # tiles of a group: one strided LOAD
            return [lambda g0=g0, gn=gn: sched.load(
                        Memory.SPAD, slot + (g0 - t0) * mw, gn, mw * line,
                        a.address + g0 * a.stride + m0 * line, a.stride, a.buffer)
                    for g0, gn in _blocks_from(t0, tn, _ceil_div(tn, groups))]
        if a_tiles:
            return [lambda t=t: load_lines(sched, Memory.SPAD, slot + (t - t0) * mw, mw,
                                           a.address + t * a.stride + m0 * line, a.buffer)
                    for t in range(t0, t0 + tn)]
        full = min(tn, k // rows - t0)  # tiles without a K remainder
        if mw == 1 and line == rows and full > 0:  # one row: its tiles are consecutive lines
            loads = [lambda g0=g0, gn=gn: _transfer_lines(
                         sched.load, Memory.SPAD, slot + g0 - t0, gn, a.at(m0, g0 * rows),
                         a.buffer, rows, cfg)
                     for g0, gn in _blocks_from(t0, full, _ceil_div(full, groups))]
            if full < tn:
                loads.append(lambda: sched.load(Memory.SPAD, slot + full, 1,
                                                k - (t0 + full) * rows,
                                                a.at(m0, (t0 + full) * rows), rows, a.buffer))
            return loads
        return [lambda t=t: sched.load(Memory.SPAD, slot + (t - t0) * mw, mw,
                                       min(rows, k - t * rows), a.at(m0, t * rows), a.stride,
                                       a.buffer)
                for t in range(t0, t0 + tn)]

    def a_slot(s):
        return a_slots[steps[s][0] % 2] if whole_k else a_slots[s % 2]

    def prefetch(s):
        """Step ``s``'s weight panel (and its A panel when K is split)."""
        _, m0, mw, n0, nw, t0, tn = steps[s]
        k0, kw = t0 * rows, min(k, (t0 + tn) * rows) - t0 * rows
        if not resident or s < per_block:
            load_b(b_slots[s % len(b_slots)], k0, kw, n0, nw)
        if not whole_k:
            for load in a_loads(a_slot(s), m0, mw, t0, tn):
                load()
        epilogue_inputs(s)

    def first_step():
        """Step 0 in small groups of K tiles (load the group's B and A tiles, then its
        MATMULs), so the array starts after one tile and the loads stay ahead of it."""
        _, m0, mw, n0, nw, t0, tn = steps[0]
        epilogue_inputs(0)
        done = 0
        while done < tn:
            # groups grow with what is loaded, a quarter of it at a time
            g0, gn = t0 + done, min(max(done // 4, 1), tn - done)
            k0 = g0 * rows
            load_b(b_slots[0] + done * rows, k0, min(k, k0 + gn * rows) - k0, n0, nw)
            for load in a_loads(a_slot(0) + done * mw, m0, mw, g0, gn):
                load()
            sched.matmul_chain([a_slot(0) + (done + t) * mw for t in range(gn)],
                               [b_slots[0] + (done + t) * rows for t in range(gn)],
                               c_slots[0], mw, accumulate=done > 0, a_unsigned=a_unsigned)
            done += gn
        if tn == k_tiles:
            finish(0, c_slots[0])

    # The next block of A (whole K only), spread over the steps of the current block.
    spread = {}
    if whole_k:
        for block, (m0, mw) in enumerate(m_blocks[1:], start=1):
            pieces = a_loads(a_slots[block % 2], m0, mw, 0, k_tiles, groups=per_block)
            for j, load in enumerate(pieces):
                spread.setdefault((block - 1) * per_block + j * per_block // len(pieces),
                                  []).append(load)

    first_step()
    for s in range(1, min(lookahead + 1, len(steps))):
        prefetch(s)
    c_slot, outputs = c_slots[0], 1
    for s, (_, m0, mw, n0, nw, t0, tn) in enumerate(steps):
        if s + lookahead < len(steps) and s > 0:
            prefetch(s + lookahead)
        for load in spread.get(s, ()):
            load()
        if s == 0:
            continue
        if t0 == 0:
            c_slot = c_slots[outputs % 2]
            outputs += 1
        base = a_slot(s)
        sched.matmul_chain([base + t * mw for t in range(tn)],
                           [b_slots[s % len(b_slots)] + t * rows for t in range(tn)], c_slot,
                           mw, accumulate=t0 > 0, a_unsigned=a_unsigned)
        if t0 + tn == k_tiles:
            finish(s, c_slot)
    _advance(sched, a=len(m_blocks) if whole_k else len(steps),
             b=per_block if resident else len(steps), c=outputs)


class _Epilogue:
    """The fused vector operations of a weight-stationary GEMM (:class:`Epilogue`).

    Accumulator layout: the result tile of a step sits in its C slot (line 0 or
    ``acc_lines / 2``); after C slot 0 come ``ring`` entries of each tile's parameter lines
    (the columns of the tile, one line per plane) and two slots of per-row records (one per
    block of A); after C slot 1, ``ring`` entries of residual rows (ADD). Parameters and
    residual rows are loaded with the tile's weights, ahead of the MATMULs; records with the
    first tile of each block. A last step writing int8 writes to ``byte_slots`` in the
    scratchpad (two slots of ``mb`` lines)."""

    def __init__(self, sched, epilogue, n, mb, ring, byte_slots):
        cfg = sched.config
        self.sched, self.epilogue, self.n, self.mb, self.ring = sched, epilogue, n, mb, ring
        self.finished = 0
        self.param_lines = [vector_param_lines(step.func, cfg.cols, cfg.cols)[2]
                            if step.params is not None else 0 for step in epilogue.steps]
        self.params = mb  # first line of the parameter ring
        self.records = self.params + ring * sum(self.param_lines)
        self.residuals = cfg.acc_lines // 2 + mb
        self.byte_slots = None if byte_slots is None else (byte_slots, byte_slots + mb)

    @staticmethod
    def most_rows(cfg, epilogue, ring):
        """The largest block of rows whose slots fit the accumulator's halves."""
        half = cfg.acc_lines // 2
        params = ring * sum(vector_param_lines(step.func, cfg.cols, cfg.cols)[2]
                            for step in epilogue.steps if step.params is not None)
        records = any(step.records is not None for step in epilogue.steps)
        residual = any(step.residual is not None for step in epilogue.steps)
        return min((half - params) // (1 + 2 * records), half // (1 + ring * residual))

    def prefetch(self, s, block, m0, mw, n0, nw):
        """Load what step ``s``'s tile needs (and, if ``block`` is given, that block's
        records)."""
        sched, cfg = self.sched, self.sched.config
        line = cfg.acc_line_bytes
        entry = s % self.ring
        offset = self.params + entry * sum(self.param_lines)
        for step, lines in zip(self.epilogue.steps, self.param_lines):
            if step.params is not None:
                operand, _ = step.params
                head, chunks, _ = vector_param_lines(step.func, self.n, cfg.cols)
                if head:
                    load_lines(sched, Memory.ACC, offset, head, operand.address,
                               operand.buffer)
                planes = lines - head
                sched.load(Memory.ACC, offset + head, planes, line,
                           operand.address + (head + n0 // cfg.cols) * line, chunks * line,
                           operand.buffer)
            if step.records is not None and block is not None:
                sched.load(Memory.ACC, self.records + (block % 2) * self.mb, mw, 4,
                           step.records.at(m0), 4, step.records.buffer)
            if step.residual is not None:
                sched.load(Memory.ACC, self.residuals + entry * self.mb, mw, 4 * nw,
                           step.residual.at(m0, 4 * n0), step.residual.stride,
                           step.residual.buffer)
            offset += lines

    def finish(self, s, block, c_slot, m0, mw, n0, nw):
        """The epilogue of step ``s``'s tile (of ``block``) in ``c_slot`` and the store of
        its result."""
        sched = self.sched
        entry = s % self.ring
        offset = self.params + entry * sum(self.param_lines)
        value = c_slot
        steps = self.epilogue.steps
        for index, (step, lines) in enumerate(zip(steps, self.param_lines)):
            last = index == len(steps) - 1
            to_bytes = last and self.byte_slots is not None
            dst = self.byte_slots[self.finished % 2] if to_bytes else c_slot
            if step.func == VectorFunc.ADD:
                sched.vector(step.func, mw, nw, self.residuals + entry * self.mb, dst, value,
                             offset, step.out_width)
            elif step.func == VectorFunc.REQUANTIZE:
                records = self.records + (block % 2) * self.mb
                sched.vector(step.func, mw, nw, value, dst, records, offset, step.out_width,
                             row_scale=step.records is not None)
            else:
                sched.vector(step.func, mw, nw, value, dst, 0, offset, step.out_width,
                             imm=step.imm)
            value = dst
            offset += lines
        out = self.epilogue.out
        if self.byte_slots is not None:
            sched.store(Memory.SPAD, value, mw, nw, out.at(m0, n0), out.stride, out.buffer)
        else:
            sched.store(Memory.ACC, value, mw, 4 * nw, out.at(m0, 4 * n0), out.stride,
                        out.buffer)
        self.finished += 1


def _rotated(sched, name, slots):
    """``slots`` starting where the previous operation on ``sched`` left off."""
    phase = sched.rotation.get(name, 0) % len(slots)
    return list(slots[phase:]) + list(slots[:phase])


def _advance(sched, **used):
    for name, count in used.items():
        sched.rotation[name] = sched.rotation.get(name, 0) + count


def _blocks_from(first, total, most):
    """``_blocks`` of the range ``first .. first + total``."""
    return [(first + start, size) for start, size in _blocks(total, most)]


def _gemm_os(sched, m, k, n, a_t, a_tiles, load_b, c, a_unsigned):
    cfg = sched.config
    rows, cols = cfg.rows, cfg.cols
    quarter = cfg.spad_lines // 4
    kc = min(k, quarter, MAX_FIELD)
    c_slots = _c_slots(cfg, rows)
    if c_slots is None:
        raise ValueError(f"the accumulator of {cfg.acc_lines} lines cannot hold two "
                         f"{rows}-line output tiles")
    a_slots, b_slots = (0, quarter), (2 * quarter, 3 * quarter)
    count = {"a": 0, "b": 0, "c": 0}
    chunks = [(k0, min(kc, k - k0)) for k0 in range(0, k, kc)]
    line = cfg.spad_line_bytes

    def next_slot(slots, key):
        count[key] += 1
        return slots[(count[key] - 1) % 2]

    def load_a(k0, kw, m0, mw):
        slot = next_slot(a_slots, "a")
        if a_tiles:
            load_lines(sched, Memory.SPAD, slot, kw,
                       a_t.address + (m0 // rows) * a_t.stride + k0 * line, a_t.buffer)
        else:
            sched.load(Memory.SPAD, slot, kw, mw, a_t.at(k0, m0), a_t.stride, a_t.buffer)
        return slot

    for m0 in range(0, m, rows):
        mw = min(rows, m - m0)
        a_slot = load_a(0, k, m0, mw) if len(chunks) == 1 else None
        for n0 in range(0, n, cols):
            nw = min(cols, n - n0)
            c_slot = c_slots[count["c"] % 2]
            count["c"] += 1
            for index, (k0, kw) in enumerate(chunks):
                if len(chunks) > 1:
                    a_slot = load_a(k0, kw, m0, mw)
                b_slot = next_slot(b_slots, "b")
                load_b(b_slot, k0, kw, n0, nw)
                sched.matmul(a_slot, b_slot, c_slot, kw, accumulate=index > 0,
                             a_unsigned=a_unsigned)
            sched.store(Memory.ACC, c_slot, mw, 4 * nw, c.at(m0, 4 * n0), c.stride, c.buffer)


# -- rows ------------------------------------------------------------------------------------

@dataclass
class RowsJob:
    """One vector operation over rows held in host tensors (line-padded).

    ``groups``: ``[(first row, rows, param line offset, imm)]``, one VECTOR family each
    (e.g. one per attention head, whose softmax multiplier differs); ``src``/``aux``/``dst``:
    host addresses of row 0 and row strides (``aux`` the second input of MUL/ADD);
    ``records_in`` / ``records_out``: host address of the per-row records (one 4-byte word
    per row; input records are indexed by the row within its group); ``params``: host
    address and line count of the parameter block(s).
    """

    func: VectorFunc
    length: int
    groups: list
    src: Operand
    dst: Operand
    aux: Operand = None
    records_in: Operand = None
    records_out: Operand = None
    params: tuple = None  # (Operand, lines)
    out_width: int = 2
    row_scale: bool = False
    causal: bool = False


#: Functions whose unit needs whole rows (the others are element-wise and may process a
#: long row in column segments).
ROW_FUNCS = (VectorFunc.SOFTMAX, VectorFunc.LAYERNORM, VectorFunc.RMSNORM, VectorFunc.ROWQUANT)


def emit_rows(sched: Scheduler, job: RowsJob):
    """Instructions of ``job``: per column segment (element-wise functions split rows that
    do not fit the accumulator; the others need whole rows) load its parameter lines, then
    per block of rows load, apply, store."""
    cfg = sched.config
    func, length = job.func, job.length
    out_mem = vector_output_memory(func, job.out_width)
    plan = _rows_plan(cfg, job, out_mem)
    if plan is None:
        raise ValueError(f"rows of {length} elements do not fit the memories of {cfg}")
    seg, rb, double = plan
    segments = [(c0, min(seg, length - c0)) for c0 in range(0, length, seg)]
    records_addr, _ = _rows_fixed_lines(cfg, job, seg, double)
    if job.records_in is not None:
        sched.load(Memory.ACC, records_addr, max(rows for _, rows, _, _ in job.groups), 4,
                   job.records_in.address, 4, job.records_in.buffer)
    slot = _rows_slots(cfg, job, seg, rb, out_mem, double)
    block = 0
    for index, (c0, width) in enumerate(segments):
        param_base = 0
        if job.params is not None:
            if double:  # alternate between two parameter blocks
                param_base = index % 2 * vector_param_lines(func, seg, cfg.cols)[2]
            _load_params(sched, job, c0, width, len(segments) > 1, param_base)
        for first, rows, param_offset, imm in job.groups:
            for r0 in range(0, rows, rb):
                n = min(rb, rows - r0)
                s = block % 2
                block += 1
                row = first + r0
                _rows_transfer(sched.load, cfg, Memory.ACC, slot["src"][s], n, width, c0,
                               job.src, row)
                aux_addr = records_addr + r0
                if job.aux is not None:
                    _rows_transfer(sched.load, cfg, Memory.ACC, slot["aux"][s], n, width, c0,
                                   job.aux, row)
                    aux_addr = slot["aux"][s]
                elif job.records_out is not None:
                    aux_addr = slot["rec"][s]
                sched.vector(func, n, width, slot["src"][s], slot["dst"][s], aux_addr,
                             param_base + param_offset, job.out_width, job.row_scale, job.causal,
                             imm + r0 if job.causal else imm)
                _rows_transfer(sched.store, cfg, out_mem, slot["dst"][s], n, width, c0,
                               job.dst, row)
                if job.records_out is not None:
                    sched.store(Memory.ACC, slot["rec"][s], n, 4, job.records_out.at(row), 4,
                                job.records_out.buffer)


def _rows_fixed_lines(cfg, job, seg, double=False):
    """``(records line, first free line)``: the parameter block (one segment's worth, or
    with ``double`` two, so the next segment's parameters load while the current one runs)
    and the input records sit at the bottom of the accumulator."""
    params = 0
    if job.params is not None:
        _, _, total = vector_param_lines(job.func, seg, cfg.cols)
        params = (1 + double) * total if seg < job.length else job.params[1]
    records = max(rows for _, rows, _, _ in job.groups) if job.records_in is not None else 0
    return params, params + records


#: Blocks a vector operation's rows are split into at least (when there are enough rows),
#: so that loading the next block and storing the previous one overlap the current one.
ROW_BLOCKS = 8


def _rows_slots(cfg, job, seg, rb, out_mem, double=False):
    """The double-buffered slots of blocks of ``rb`` rows of ``seg`` elements, or None if
    they do not fit: ``{"src", "aux", "rec", "dst": (slot 0, slot 1)}``. With two or more
    accumulator banks the sources sit in the lower half and the rest in the upper half, so
    loading, the vector unit and storing touch different banks where they can."""
    chunks = _ceil_div(seg, cfg.cols)
    _, fixed = _rows_fixed_lines(cfg, job, seg, double)
    sizes = {"src": rb * chunks}
    if job.aux is not None:
        sizes["aux"] = rb * chunks
    if job.records_out is not None:
        sizes["rec"] = rb
    if out_mem == Memory.ACC:
        sizes["dst"] = rb * chunks
    elif 2 * rb * _ceil_div(seg, cfg.spad_line_bytes) > cfg.spad_lines:
        return None
    half = cfg.acc_lines // 2
    upper = sum(2 * size for name, size in sizes.items() if name != "src")
    banked = cfg.acc_banks >= 2 and fixed + 2 * sizes["src"] <= half and upper <= half
    if not banked and fixed + sum(2 * size for size in sizes.values()) > cfg.acc_lines:
        return None
    slots, free = {}, fixed
    for name, size in sizes.items():
        if banked and name == "aux":
            free = half
        elif banked and name != "src" and free < half:
            free = half
        slots[name] = (free, free + size)
        free += 2 * size
    if out_mem == Memory.SPAD:
        slots["dst"] = (0, rb * _ceil_div(seg, cfg.spad_line_bytes))
    return slots


def _rows_plan(cfg, job, out_mem):
    """``(segment length, rows per block, two parameter blocks)`` that fit (None if
    nothing does), preferring whole rows, then at least :data:`ROW_BLOCKS` blocks, then
    two parameter blocks for segments."""
    lcm = cfg.cols * cfg.spad_line_bytes // _gcd(cfg.cols, cfg.spad_line_bytes)
    rows = max(rows for _, rows, _, _ in job.groups)
    seg = job.length
    while True:
        chunks = _ceil_div(seg, cfg.cols)
        out_lines = _ceil_div(seg, cfg.spad_line_bytes)
        segmented = seg < job.length
        too_wide = segmented and max(chunks * cfg.acc_line_bytes,
                                     out_lines * cfg.spad_line_bytes) > MAX_ROW_BYTES
        for double in (segmented, False):
            rb = min(_ceil_div(rows, ROW_BLOCKS), MAX_FIELD)
            while rb >= 1 and _rows_slots(cfg, job, seg, rb, out_mem, double) is None:
                rb //= 2
            if rb >= 1 and not too_wide:
                return seg, rb, double
        if job.func in ROW_FUNCS or seg <= lcm:
            return None
        seg = max(lcm, (seg // 2) // lcm * lcm)


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def _load_params(sched, job, c0, width, segmented, base=0):
    """The parameter block, or (segmented rows) the lines of each plane for columns
    ``c0 .. c0 + width`` laid out as a block for rows of ``width`` at line ``base``."""
    cfg = sched.config
    operand, lines = job.params
    if not segmented:
        load_lines(sched, Memory.ACC, 0, lines, operand.address, operand.buffer)
        return
    head, plane_lines, _ = vector_param_lines(job.func, job.length, cfg.cols)
    _, seg_lines, _ = vector_param_lines(job.func, width, cfg.cols)
    planes = (lines - head) // plane_lines
    for p in range(planes):
        first = head + p * plane_lines + c0 // cfg.cols
        load_lines(sched, Memory.ACC, base + head + p * seg_lines, seg_lines,
                   operand.address + first * cfg.acc_line_bytes, operand.buffer)


def _rows_transfer(transfer, cfg, mem, sram_addr, n, width, c0, operand, row):
    """LOAD or STORE columns ``c0 .. c0 + width`` of ``n`` rows from ``row`` (whole rows of
    contiguous lines in one go; a segment of each row otherwise)."""
    line_bytes = cfg.acc_line_bytes if mem == Memory.ACC else cfg.spad_line_bytes
    lanes = cfg.cols if mem == Memory.ACC else cfg.spad_line_bytes
    lines = _ceil_div(width, lanes)
    element = 4 if mem == Memory.ACC else 1
    address = operand.at(row, c0 * element)
    if operand.stride == lines * line_bytes:
        _transfer_lines(transfer, mem, sram_addr, n * lines, address, operand.buffer,
                        line_bytes, cfg)
    else:
        transfer(mem, sram_addr, n, lines * line_bytes, address, operand.stride,
                 operand.buffer)
