"""The systolic array: a rows x cols grid of int8 PEs with skew buffers, control and an
output queue, in a weight-stationary or an output-stationary dataflow."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ACC_WIDTH, check_array_params
from .memory import StreamQueue
from .dsp import lut_candidate
from .pe import (PRODUCT_LATENCY, Accum, Activation, Operand, OutputStationaryPE, WeightBus,
                 WeightStationaryPE, row_index, widen_activation)

__all__ = ["SystolicArray", "array_latency", "ws_cycles", "os_cycles"]

#: Cycles from a write into the empty output queue to its entry appearing on ``out``.
QUEUE_LATENCY = 2


def array_latency(rows, cols):
    """Cycles from accepting an activation row (WS) or a tile's last slice (OS) to its
    first result on ``out``."""
    return rows + cols + PRODUCT_LATENCY + QUEUE_LATENCY


def ws_cycles(rows, cols, tiles, m):
    """Cycles from the first weight beat to the last result for ``tiles`` WS tiles of ``m``
    activation rows each, with inputs always valid and ``out`` always ready."""
    return rows + (tiles - 1) * max(m, rows) + m + array_latency(rows, cols)


def os_cycles(rows, cols, tiles, k):
    """Cycles from the first slice to the last result for ``tiles`` OS tiles of ``k`` slices
    each, with inputs always valid and ``out`` always ready."""
    return (tiles - 1) * max(k, 2 * rows) + k + array_latency(rows, cols) + rows - 1


def _delay(m, value, cycles, name, first=0):
    """``value`` delayed by ``cycles`` registers (a shift chain; zero cycles is a wire), named
    from ``{name}_d{first}`` on."""
    for stage in range(first, first + cycles):
        reg = Signal(value.shape(), name=f"{name}_d{stage}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


class SystolicArray(wiring.Component):
    """A ``rows`` x ``cols`` systolic array of int8 x int8 -> int32 PEs.

    Operands enter at the edges; the skew that staggers row ``r`` by ``r`` cycles and column
    ``c`` by ``c`` cycles is done inside, and so is the de-skew of the results, so every
    stream beat is one whole row or column. Results wait in an output queue of
    ``queue_depth`` rows (a :class:`StreamQueue` in block RAM: in distributed RAM the
    8-column queue's write enable reached 128 ECP5 RAM cells, the matmul engine's longest
    path); the array only accepts work whose results have room in it, so back-pressure on
    ``out`` stalls the inputs and never loses data. The PE grid itself
    never stalls (bubbles flow through it), which keeps the long enable nets out of the
    critical path.

    Weight-stationary (``dataflow="ws"``) computes ``out = acts @ W`` for a ``rows`` x ``cols``
    weight tile ``W``:

    * ``weights`` takes a tile as ``rows`` beats, row 0 first, each one row of ``cols`` int8.
      Tiles alternate between two weight banks, so the next tile loads while the current
      one computes. A tile may start loading once every activation of the tile that used
      its bank two tiles ago has been accepted.
    * ``acts`` takes activation rows (``rows`` int8, or uint8 when ``a_unsigned``: one
      K-slice of a row of A), each multiplied with the oldest loaded tile; ``last`` marks
      the final row for that tile.
      Rows for a tile are accepted from the cycle after its last weight beat.
    * ``out`` gives one row of ``cols`` int32 per activation row, in order.

    *Latency*: an activation row accepted in cycle ``t`` appears on ``out`` in cycle
    ``t + rows + cols + PRODUCT_LATENCY + QUEUE_LATENCY`` (``latency``) when ``out`` is
    ready (each PE registers its operands and its product before the adder).
    *Throughput*: with inputs always valid and ``out`` always ready, tiles of ``M``
    activation rows run back to back at one row per cycle when ``M >= rows``; loading a
    tile takes ``rows`` cycles, so a tile occupies ``max(M, rows)`` cycles. From the first
    weight beat to the last result, ``T`` tiles of ``M`` rows take exactly
    ``rows + (T - 1) * max(M, rows) + M + latency`` cycles (:func:`ws_cycles`).

    Output-stationary (``dataflow="os"``) computes a ``rows`` x ``cols`` tile of ``A @ B``:

    * ``slices`` takes one K-slice per beat: ``a`` (a column of A, ``rows`` int8, or uint8
      when ``a_unsigned``), ``b`` (a row of B, ``cols`` int8) and ``last`` on the final
      slice of the tile. Each PE accumulates in
      int32; on ``last`` the sums move to drain registers and the next tile starts at once.
    * ``out`` gives the tile as ``rows`` beats, row 0 first, each ``cols`` int32.

    *Latency*: the last slice of a tile accepted in cycle ``L`` puts row ``s`` of the tile on
    ``out`` in cycle ``L + latency + s`` when ``out`` is ready.
    *Throughput*: one slice per cycle, with the last slices of consecutive tiles at least
    ``2 * rows`` cycles apart (a drain takes ``rows`` cycles and must finish before the next
    capture reaches the top row). ``T`` tiles of ``K`` slices take exactly
    ``(T - 1) * max(K, 2 * rows) + K + latency + rows - 1`` cycles (:func:`os_cycles`).

    Members
    -------
    weights : In(stream.Signature(ArrayLayout(signed(8), cols)))
        Weight tile rows (``"ws"`` only).
    acts : In(stream.Signature(StructLayout({"data": ArrayLayout(signed(8), rows), "last": 1,
                                             "a_unsigned": 1})))
        Activation rows (``"ws"`` only).
    slices : In(stream.Signature(StructLayout({"a": ArrayLayout(signed(8), rows),
                                               "b": ArrayLayout(signed(8), cols), "last": 1,
                                               "a_unsigned": 1})))
        K-slices (``"os"`` only).
    out : Out(stream.Signature(ArrayLayout(signed(32), cols)))
        Result rows.
    idle : Out(1)
        No accepted work is waiting for its results to leave on ``out``.
    """

    def __init__(self, rows, cols, dataflow="ws", *, operand_width=8, acc_width=32):
        check_array_params(rows, cols, dataflow, operand_width, acc_width)
        self.rows, self.cols, self.dataflow = rows, cols, dataflow
        self.latency = array_latency(rows, cols)
        # Deep enough that the credit check never throttles a full-rate stream.
        self.queue_depth = self.latency + 2 + (rows if dataflow == "os" else 0)
        members = {"out": Out(stream.Signature(data.ArrayLayout(Accum, cols))), "idle": Out(1)}
        if dataflow == "ws":
            members["weights"] = In(stream.Signature(data.ArrayLayout(Operand, cols)))
            members["acts"] = In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(Operand, rows), "last": 1, "a_unsigned": 1})))
        else:
            members["slices"] = In(stream.Signature(data.StructLayout({
                "a": data.ArrayLayout(Operand, rows), "b": data.ArrayLayout(Operand, cols),
                "last": 1, "a_unsigned": 1})))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        # The credits keep the queue from filling up: its `i.ready` is not needed.
        m.submodules.queue = queue = StreamQueue(self.out.payload.shape(), self.queue_depth,
                                                 block_ram=True)
        # Credits: queue entries not yet promised to accepted work.
        credits = Signal(range(self.queue_depth + 1), init=self.queue_depth)
        spent = Signal(range(self.queue_depth + 1))
        delivered = self.out.valid & self.out.ready
        m.d.sync += credits.eq(credits - spent + delivered)
        wiring.connect(m, queue.o, wiring.flipped(self.out))
        m.d.comb += self.idle.eq(credits == self.queue_depth)
        if self.dataflow == "ws":
            push, row = self._elaborate_ws(m, credits, spent, platform)
        else:
            push, row = self._elaborate_os(m, credits, spent)
        m.d.comb += [queue.i.valid.eq(push), queue.i.payload.eq(row)]
        return m

    def _elaborate_ws(self, m, credits, spent, platform):
        rows, cols = self.rows, self.cols
        # Bank control: weight tiles fill banks 0, 1, 0, ...; activations use them in order.
        weight_bank, weight_row, act_bank = Signal(), Signal(row_index(rows)), Signal()
        loaded = [Signal(name=f"loaded{bank}") for bank in range(2)]
        weight_take = self.weights.valid & self.weights.ready
        act_take = self.acts.valid & self.acts.ready
        tile_loaded = weight_take & (weight_row == rows - 1)
        tile_used = act_take & self.acts.payload.last
        m.d.comb += [
            self.weights.ready.eq(~Mux(weight_bank, loaded[1], loaded[0])),
            self.acts.ready.eq(Mux(act_bank, loaded[1], loaded[0]) & (credits != 0)),
            spent.eq(act_take),
        ]
        with m.If(weight_take):
            m.d.sync += weight_row.eq(Mux(weight_row == rows - 1, 0, weight_row + 1))
        with m.If(tile_loaded):
            m.d.sync += weight_bank.eq(~weight_bank)
        with m.If(tile_used):
            m.d.sync += act_bank.eq(~act_bank)
        for bank in range(2):
            with m.If(tile_loaded & (weight_bank == bank)):
                m.d.sync += loaded[bank].eq(1)
            with m.If(tile_used & (act_bank == bank)):
                m.d.sync += loaded[bank].eq(0)

        # Skew: row r's activation and column c's weight each pass r + 1 / c + 1 registers.
        bus = Signal(WeightBus(rows))
        m.d.comb += [bus.valid.eq(weight_take), bus.bank.eq(weight_bank),
                     bus.row.eq(weight_row)]
        pes = [[WeightStationaryPE(r, rows) for c in range(cols)] for r in range(rows)]
        for r in range(rows):
            a = _delay(m, widen_activation(self.acts.payload.data[r],
                                           self.acts.payload.a_unsigned), r + 1, f"act{r}")
            bank_next = _delay(m, act_bank, r, f"bank{r}")
            bank = _delay(m, bank_next, 1, f"bank{r}", first=r)
            for c in range(cols):
                pe = pes[r][c]
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [pe.a_in.eq(a), pe.bank_in.eq(bank)]
                if lut_candidate(platform, Activation, Operand):  # the PE may use bank_next
                    m.d.comb += pe.bank_next.eq(bank_next)
                a, bank, bank_next = pe.a_out, pe.bank_out, bank
        results = []
        for c in range(cols):
            head = Signal(WeightBus(rows), name=f"wbus{c}")
            head_next = _delay(m, bus, c, f"wctl{c}")
            m.d.comb += [head.eq(_delay(m, head_next, 1, f"wctl{c}", first=c)),
                         head.data.eq(_delay(m, self.weights.payload[c], c + 1, f"w{c}"))]
            psum = Const(0, Accum)
            for r in range(rows):
                pe = pes[r][c]
                m.d.comb += [pe.w_in.eq(head), pe.psum_in.eq(psum)]
                if lut_candidate(platform, Activation, Operand):  # the PE may use w_next
                    m.d.comb += pe.w_next.eq(head_next)
                head, head_next, psum = pe.w_out, head, pe.psum_out
            results.append(_delay(m, psum, cols - 1 - c, f"deskew{c}"))
        return _delay(m, act_take, rows + cols + PRODUCT_LATENCY, "pushed"), Cat(*results)

    def _elaborate_os(self, m, credits, spent):
        rows, cols = self.rows, self.cols
        take = self.slices.valid & self.slices.ready
        payload = self.slices.payload
        # Last slices must be 2*rows cycles apart and need room for the tile's rows results.
        cooldown = Signal(range(2 * rows))
        m.d.comb += [
            self.slices.ready.eq(~payload.last | ((cooldown == 0) & (credits >= rows))),
            spent.eq(Mux(take & payload.last, rows, 0)),
        ]
        with m.If(take & payload.last):
            m.d.sync += cooldown.eq(2 * rows - 1)
        with m.Elif(cooldown != 0):
            m.d.sync += cooldown.eq(cooldown - 1)

        # Drain: rows cycles, starting once the bottom row has captured (column 0 first).
        drain_start = _delay(m, take & payload.last, rows + 1 + PRODUCT_LATENCY, "drain_start")
        drain_left = Signal(row_index(rows))
        with m.If(drain_start):
            m.d.sync += drain_left.eq(rows - 1)
        with m.Elif(drain_left != 0):
            m.d.sync += drain_left.eq(drain_left - 1)
        drain = drain_start | (drain_left != 0)

        ctrl = Signal(data.StructLayout({"valid": 1, "last": 1}))
        m.d.comb += [ctrl.valid.eq(take), ctrl.last.eq(payload.last)]
        pes = [[OutputStationaryPE() for c in range(cols)] for r in range(rows)]
        for r in range(rows):
            a = _delay(m, widen_activation(payload.a[r], payload.a_unsigned), r + 1, f"a{r}")
            ctl = _delay(m, ctrl, r + 1, f"ctl{r}")
            for c in range(cols):
                pe = pes[r][c]
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [pe.a_in.eq(a), pe.ctrl_in.eq(ctl)]
                a, ctl = pe.a_out, pe.ctrl_out
        results = []
        for c in range(cols):
            b = _delay(m, payload.b[c], c + 1, f"b{c}")
            column_drain = _delay(m, drain, c, f"drain{c}")
            for r in range(rows):
                pe = pes[r][c]
                below = pes[r + 1][c].result if r + 1 < rows else Const(0, Accum)
                m.d.comb += [pe.b_in.eq(b), pe.result_in.eq(below), pe.drain.eq(column_drain)]
                b = pe.b_out
            results.append(_delay(m, pes[0][c].result, cols - 1 - c, f"deskew{c}"))
        return column_drain, Cat(*results)
