"""Analytic cycle prediction of a program fragment (one operation), to be validated against
the RTL. The load, compute and store units run concurrently, so an operation costs about the
busiest unit plus the time to fill the pipeline:

* LOAD / STORE: ``DMA_LATENCY`` per instruction plus, per row (one AXI burst),
  ``max(ceil(row_bytes / dma_bytes), MIN_ROW_CYCLES)`` cycles;
* MATMUL (compute unit): the array formulas of :func:`~systolic.hw.array.ws_cycles` and
  :func:`~systolic.hw.array.os_cycles` generalized to tiles of different lengths:
  weight-stationary ``rows + sum(max(length, rows)) - max(last, rows) + last + latency``
  (the next weight tile streams in while the current activations flow), output-stationary
  ``sum(max(length, 2 * rows)) - max(last, 2 * rows) + last + latency + rows - 1``;
* the loads before the first compute instruction and the stores after the last one do not
  overlap anything (every operation ends with a FENCE);
* VECTOR (compute unit): a line is ``ceil(cols / lanes)`` beats; streaming units take one
  beat per cycle; row units (softmax, norms, rowquant) double-buffer rows, so a row costs
  ``max(beats, passes * beats + ROW_OVERHEAD)`` with the per-row arithmetic of their
  docstrings (softmax: normalization and a 17-step division; norms: square root and a 26-step
  division; rowquant: normalization and a 22-step division).
"""

from systolic.hw.array import array_latency
from systolic.hw.isa import Opcode, VectorFunc

__all__ = ["predict_cycles", "DMA_LATENCY", "MIN_ROW_CYCLES"]

#: Cycles a transfer instruction spends before its first data beat, and the fewest cycles a
#: row (one AXI burst) takes — measured on the generated RTL (Verilator, 8-byte bus, memory
#: latency 8): 20 cycles for a 1-row LOAD, ~3 cycles per further short row.
DMA_LATENCY = 20
MIN_ROW_CYCLES = 3
#: Row units: (read passes over a buffered row, cycles of per-row arithmetic between them).
ROW_UNITS = {VectorFunc.SOFTMAX: (2, 45), VectorFunc.LAYERNORM: (2, 75),
             VectorFunc.RMSNORM: (2, 75), VectorFunc.ROWQUANT: (1, 40)}
#: Pipeline depth of a streaming vector unit (cycles from first beat in to first beat out).
STREAM_LATENCY = 12


def _ceil_div(a, b):
    return -(-a // b)


def predict_cycles(config, instructions):
    """``{"load", "store", "array", "vector", "total"}`` predicted cycles of ``instructions``
    (:class:`~.scheduler.Instruction` objects of one fragment)."""
    rows, cols = config.rows, config.cols
    lanes = config.vector.lanes
    busy = dict.fromkeys(("load", "store", "array", "vector"), 0)
    floor = rows if config.dataflow == "ws" else 2 * rows
    last = None  # length of the latest MATMUL
    prologue = epilogue = 0  # loads before the first compute, stores after the last
    computed = False
    for insn in instructions:
        f = insn.fields
        if insn.opcode in (Opcode.LOAD, Opcode.STORE):
            unit = "load" if insn.opcode == Opcode.LOAD else "store"
            cost = DMA_LATENCY + f["rows"] * max(_ceil_div(f["row_bytes"], config.dma_bytes),
                                                 MIN_ROW_CYCLES)
            busy[unit] += cost
            if unit == "load" and not computed:
                prologue += cost
            elif unit == "store":
                epilogue += cost
            continue
        if insn.opcode in (Opcode.MATMUL, Opcode.VECTOR):
            computed, epilogue = True, 0
        if insn.opcode == Opcode.MATMUL:
            last = f["length"]
            busy["array"] += max(last, floor)
        elif insn.opcode == Opcode.VECTOR:
            beats = _ceil_div(f["row_length"], cols) * _ceil_div(cols, lanes)
            func = VectorFunc(f["func"])
            if func in ROW_UNITS:
                passes, overhead = ROW_UNITS[func]
                busy["vector"] += f["num_rows"] * max(beats, passes * beats + overhead)
            else:
                busy["vector"] += f["num_rows"] * beats + STREAM_LATENCY
    if last is not None:  # the last tile ends without a successor; fill and drain the array
        busy["array"] += last - max(last, floor) + array_latency(rows, cols) + (
            rows if config.dataflow == "ws" else rows - 1)
    # the operation ends with a FENCE: its first loads and last stores do not overlap compute
    busy["total"] = prologue + epilogue + max(busy["load"] - prologue,
                                              busy["store"] - epilogue,
                                              busy["array"] + busy["vector"])
    return busy
