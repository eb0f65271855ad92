"""A standalone int8 GEMM program ``C = A @ B``: the model compiler's tiling
(:func:`~.tiling.emit_gemm`) and automatic dependency tokens (:class:`~.scheduler.Scheduler`)
applied to operands that live in a host-memory image.

Host layouts (what :func:`gemm_image` writes), chosen so that every LOAD is a long burst:
weight-stationary A K-tile-major (:func:`~.memory.activation_tiles`: per ``rows`` columns of
K, one scratchpad line per row of A), output-stationary A^T panel-major (per ``rows`` rows
of A, one line per K index); B panel-major (:func:`~.memory.weight_panels`: one scratchpad
line per row of each ``cols``-column panel); C as M x N int32 row-major. A product of
one row of A with a wide B (:func:`~.tiling.gemv_transposed`) runs as ``C^T = B^T A^T``
(:func:`~.tiling.emit_gemv`): A stays a plain row and B^T is stored K-tile-major
(:func:`~.memory.activation_tiles` of B^T).
"""

from dataclasses import dataclass

import numpy as np

from systolic.hw.config import HardwareConfig
from systolic.hw.isa import Opcode, encode

from .memory import activation_tiles, weight_panels
from .scheduler import Scheduler
from .tiling import Operand, emit_gemm, emit_gemv, gemv_transposed

__all__ = ["GemmProgram", "gemm_image", "compile_gemm"]


@dataclass
class GemmProgram:
    """Instruction words (ending in HALT), where C lands in host memory, and the
    :class:`~.scheduler.Instruction` objects (without the HALT) for the cycle model."""

    words: list
    c_addr: int
    shape: tuple
    instructions: list = None

    def result(self, memory):
        """C (M x N int32) read from a final host-memory image."""
        m, _, n = self.shape
        return memory[self.c_addr:self.c_addr + 4 * m * n].view(np.int32).reshape(m, n).copy()


def gemm_image(config: HardwareConfig, a, b, image, transposed=False):
    """Place ``a`` and ``b`` in ``image`` (a :class:`~systolic.sw.driver.HostImage`) in the
    layouts above (with ``transposed``, those of :func:`~.tiling.emit_gemv`), reserve C,
    and return ``(a Operand, b Operand, c Operand)``."""
    (m, k), n = a.shape, b.shape[1]
    line = config.spad_line_bytes
    if transposed:
        a_addr = image.add(np.ascontiguousarray(a[0]))
        bt_addr = image.add(activation_tiles(np.ascontiguousarray(b.T), config))
        return (Operand(a_addr, k, "a"), Operand(bt_addr, n * line, "b"),
                Operand(image.reserve(4 * n), 4 * n, "c"))
    if config.dataflow == "ws":
        a_host, a_stride = activation_tiles(a, config), m * line
    else:
        a_host, a_stride = weight_panels(a.T, config, width=config.rows), k * line
    a_addr = image.add(a_host)
    b_addr = image.add(weight_panels(b, config))
    c_addr = image.reserve(4 * m * n)
    return (Operand(a_addr, a_stride, "a"), Operand(b_addr, line, "b"),
            Operand(c_addr, 4 * n, "c"))


def compile_gemm(config: HardwareConfig, a, b, image, a_unsigned=False):
    """The :class:`GemmProgram` of ``a @ b`` (int8, or uint8 ``a`` when ``a_unsigned``) with
    its operands placed in ``image``."""
    (m, k), n = a.shape, b.shape[1]
    transposed = gemv_transposed(config, m, k, n, a_unsigned)
    a_op, b_op, c_op = gemm_image(config, a, b, image, transposed)
    sched = Scheduler(config)
    if transposed:
        emit_gemv(sched, k, n, a_op, b_op, c_op)
    else:
        emit_gemm(sched, m, k, n, a_op, b_op, c_op, a_unsigned=a_unsigned, b_panels=True,
                  a_tiles=True)
    return GemmProgram(sched.words() + [encode(Opcode.HALT)], c_op.address, (m, k, n),
                       sched.instructions)
