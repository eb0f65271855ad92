"""Tiling one int8 GEMM ``C = A @ B`` (any M, K, N) onto the accelerator.

The loop nest walks output blocks; for each it streams the K dimension through
double-buffered scratchpad slots (the load of step ``s + 1`` overlaps the matmul of step
``s``) into one of two accumulator slots (the store of block ``j`` overlaps the compute of
block ``j + 1``). Dependency tokens make the overlap safe:

* load step ``s`` waits for the matmul of step ``s - 2`` (which used the same slots) and
  signals the matmul of step ``s``;
* the first matmul of block ``j`` waits for the store of block ``j - 2`` (same accumulator
  slot), the last one signals the store of block ``j``.

Weight-stationary: a block is ``mb`` rows of A x one N tile; each step loads a
``rows x cols`` weight tile and ``mb`` activation rows (K-slices of ``rows`` bytes).
Output-stationary: a block is one ``rows x cols`` output tile; each step loads ``kc``
K-slices of A^T and of B. The host layouts are described by :class:`GemmLayout`.
"""

from dataclasses import dataclass

from systolic.hw.config import HardwareConfig
from systolic.hw.isa import Memory

from .program import ProgramBuilder

__all__ = ["GemmLayout", "GemmPlan", "plan_gemm", "compile_gemm"]

_MAX_LENGTH = 2**16 - 1


def _ceil_div(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class GemmLayout:
    """Host byte addresses and row strides of the operands.

    ``a``: weight-stationary A (M x K int8, row-major); output-stationary A^T (K x M int8,
    row-major). ``b``: B (K x N int8, row-major). ``c``: C (M x N int32, row-major).
    """

    a_addr: int
    a_stride: int
    b_addr: int
    b_stride: int
    c_addr: int
    c_stride: int


@dataclass(frozen=True)
class GemmPlan:
    """On-chip placement: double-buffered scratchpad slots for A and B, two accumulator
    slots, and the block size (``mb`` rows of A per block for WS, ``kc`` K-slices per step
    for OS)."""

    a_slots: tuple
    b_slots: tuple
    c_slots: tuple
    block: int


def _two_slots(lines, bank, config, offset=0):
    """Two scratchpad slots of ``lines`` lines in ``bank`` (after ``offset`` if there is
    only one bank)."""
    base = bank * config.spad_bank_lines if config.spad_banks > 1 else offset
    return (base, base + lines)


def plan_gemm(config: HardwareConfig, m, k, n):
    """Choose block sizes and slots so that both scratchpad operands and the accumulator
    are double-buffered, with A and B in different banks when there are several."""
    rows, cols = config.rows, config.cols
    spad_room = config.spad_bank_lines if config.spad_banks > 1 else config.spad_lines
    acc_room = config.acc_bank_lines if config.acc_banks > 1 else config.acc_lines // 2
    if config.dataflow == "ws":
        b_lines = rows
        a_room = spad_room // 2 if config.spad_banks > 1 else (spad_room - 2 * b_lines) // 2
        block = min(m, a_room, acc_room, _MAX_LENGTH)
        a_lines, c_lines = block, block
    else:
        c_lines = rows
        a_room = spad_room // 2 if config.spad_banks > 1 else spad_room // 4
        block = min(k, a_room, _MAX_LENGTH)
        a_lines = b_lines = block
        if c_lines > acc_room:
            block = 0
    if block < 1:
        raise ValueError(f"the memories of {config} are too small for one "
                         f"{config.dataflow.upper()} tile")
    a_bank, b_bank = (1 % config.spad_banks), 0
    b_slots = _two_slots(b_lines, b_bank, config)
    a_slots = _two_slots(a_lines, a_bank, config, offset=2 * b_lines)
    c_slots = (0, config.acc_bank_lines) if config.acc_banks > 1 else (0, c_lines)
    return GemmPlan(a_slots, b_slots, c_slots, block)


def compile_gemm(config: HardwareConfig, m, k, n, layout: GemmLayout, a_unsigned=False):
    """Instruction words (ending in HALT) computing the int32 ``C = A @ B`` of shapes
    ``m x k`` and ``k x n`` between the host buffers of ``layout``."""
    if min(m, k, n) < 1:
        raise ValueError(f"GEMM dimensions must be at least 1, got M={m} K={k} N={n}")
    plan = plan_gemm(config, m, k, n)
    walk = _ws_steps if config.dataflow == "ws" else _os_steps
    steps = list(walk(config, m, k, n, plan, layout))
    program = ProgramBuilder()
    blocks = sum(1 for step in steps if step["store"])
    j = 0  # output block
    for s, step in enumerate(steps):
        program.load(Memory.SPAD, **step["b_load"], pop_next=s >= 2)
        program.load(Memory.SPAD, **step["a_load"], push_next=True)
        program.matmul(**step["matmul"], a_unsigned=a_unsigned, pop_prev=True,
                       pop_next=step["first"] and j >= 2, push_prev=s + 2 < len(steps),
                       push_next=step["store"] is not None)
        if step["store"]:
            program.store(Memory.ACC, **step["store"], pop_prev=True, push_prev=j + 2 < blocks)
            j += 1
    program.halt()
    return program.words


def _step(plan, layout, s, j, a_rows, a_bytes, a_at, b_rows, b_bytes, b_at, length,
          first, last, c_rows, c_bytes, c_at):
    """One load-load-matmul step (and the store closing its block when ``last``); the
    ``*_at`` pairs are (row, column) element coordinates in the host matrices."""
    return {
        "b_load": dict(sram_addr=plan.b_slots[s % 2], rows=b_rows, row_bytes=b_bytes,
                       dram_addr=layout.b_addr + b_at[0] * layout.b_stride + b_at[1],
                       dram_stride=layout.b_stride),
        "a_load": dict(sram_addr=plan.a_slots[s % 2], rows=a_rows, row_bytes=a_bytes,
                       dram_addr=layout.a_addr + a_at[0] * layout.a_stride + a_at[1],
                       dram_stride=layout.a_stride),
        "matmul": dict(a_addr=plan.a_slots[s % 2], b_addr=plan.b_slots[s % 2],
                       c_addr=plan.c_slots[j % 2], length=length, accumulate=not first),
        "first": first,
        "store": None if not last else dict(
            sram_addr=plan.c_slots[j % 2], rows=c_rows, row_bytes=c_bytes,
            dram_addr=layout.c_addr + c_at[0] * layout.c_stride + 4 * c_at[1],
            dram_stride=layout.c_stride),
    }


def _ws_steps(config, m, k, n, plan, layout):
    """Blocks of ``mb`` A rows x one N tile; a step per K tile of ``rows``."""
    rows, cols = config.rows, config.cols
    s = j = 0
    k_tiles = _ceil_div(k, rows)
    for m0 in range(0, m, plan.block):
        mb = min(plan.block, m - m0)
        for n0 in range(0, n, cols):
            nw = min(cols, n - n0)
            for kt in range(k_tiles):
                k0 = kt * rows
                kw = min(rows, k - k0)
                yield _step(plan, layout, s, j, mb, kw, (m0, k0), kw, nw, (k0, n0), mb,
                            kt == 0, kt == k_tiles - 1, mb, 4 * nw, (m0, n0))
                s += 1
            j += 1


def _os_steps(config, m, k, n, plan, layout):
    """Blocks of one rows x cols output tile; a step per ``kc`` K-slices."""
    rows, cols = config.rows, config.cols
    s = j = 0
    chunks = _ceil_div(k, plan.block)
    for m0 in range(0, m, rows):
        mw = min(rows, m - m0)
        for n0 in range(0, n, cols):
            nw = min(cols, n - n0)
            for chunk in range(chunks):
                k0 = chunk * plan.block
                kc = min(plan.block, k - k0)
                yield _step(plan, layout, s, j, kc, mw, (k0, m0), kc, nw, (k0, n0), kc,
                            chunk == 0, chunk == chunks - 1, mw, 4 * nw, (m0, n0))
                s += 1
            j += 1
