"""Processing elements: one int8 x int8 multiply-accumulate cell per dataflow.

Both PEs register everything they pass on, so the array is a grid of one-cycle hops and
its timing is fixed by position: an operand that enters row ``r`` on the left and column
``c`` at the top meets its partner in PE(r, c) after ``r + c`` hops.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import ACC_WIDTH, OPERAND_WIDTH
from .dsp import MULTIPLY_LATENCY, PipelinedMultiplier, lut_multiplier

__all__ = ["PRODUCT_LATENCY", "pipelined_product", "row_index", "widen_activation", "WeightBus", "WeightStationaryPE", "OutputStationaryPE"]

Operand = signed(OPERAND_WIDTH)
#: Activations inside the array: int8 or uint8 (softmax probabilities), widened to 9 bits.
Activation = signed(OPERAND_WIDTH + 1)
Accum = signed(ACC_WIDTH)


#: Cycles from a PE's operands to their product: the operands are registered (the weight
#: bank has been selected) and so is the product, which keeps the DSP block between two
#: registers; the partial-sum adder follows in a third stage.
PRODUCT_LATENCY = MULTIPLY_LATENCY


def pipelined_product(m, a, b, split=False):
    """``a * b`` delayed by :data:`PRODUCT_LATENCY` cycles (a :class:`PipelinedMultiplier`;
    ``split``: ``a`` and ``b`` come straight from flip-flops)."""
    m.submodules.multiplier = multiplier = PipelinedMultiplier(a.shape(), b.shape(),
                                                               split=split)
    m.d.comb += [multiplier.a.eq(a), multiplier.b.eq(b)]
    return multiplier.p


def widen_activation(value, unsigned):
    """An int8 (``unsigned`` low) or uint8 (``unsigned`` high) activation as 9-bit signed."""
    return Cat(value, value[-1] & ~unsigned).as_signed()


def data_register(m, value, name):
    """``value`` one cycle later from a flip-flop without reset: operands, weights and sums
    mean something only where the control that travels with them says so, and leaving them
    out of the reset keeps its fan-out to the control bits."""
    register = Signal(Value.cast(value).shape(), name=name, reset_less=True)
    m.d.sync += register.eq(value)
    return register


def row_index(count):
    """Shape of an index into ``count`` items; at least one bit, because zero-width
    vectors come out of the Verilog backend as ``[-1:0]``, which Verilator rejects."""
    return range(max(count, 2))


class WeightBus(data.StructLayout):
    """One weight travelling down a column towards the PE row it is addressed to.

    Fields: ``data`` (the int8 weight), ``valid``, ``bank`` (which of the two weight
    registers it is written to) and ``row`` (the PE row that captures it).
    """

    def __init__(self, rows):
        super().__init__({"data": Operand, "valid": 1, "bank": 1, "row": row_index(rows)})


class WeightStationaryPE(wiring.Component):
    """Weight-stationary PE: ``psum_out = psum_in + a_in * weight[bank_in]`` (9 x 8-bit).

    Two weight registers (banks) let the next weight tile be written while activations
    tagged with the other bank still flow through. A weight on the bus is captured when
    ``w_in.row`` equals this PE's row.

    Where the multiplier is built from LUTs (:func:`~systolic.hw.dsp.lut_multiplier`; for
    a platform with ``lut_dsps`` some PEs' are and others' are not), the weight it
    multiplies with comes from a register (``weight_sel``) that selects the bank one cycle
    ahead, from ``bank_next``, and forwards a weight written in that cycle: the
    multiplier's operands then come straight from flip-flops, so it splits its multiply
    over its two cycles (:class:`~systolic.hw.dsp.PipelinedMultiplier`'s ``split``). Which
    bank the bus writes is then registered a cycle ahead too, from ``w_next``: the bus's
    valid, bank and row registers are the same in every PE of an anti-diagonal (the same
    weight beat reaches them in the same cycle), so synthesis keeps one of each, far from
    most of the PEs it feeds. Otherwise ``bank_next`` and ``w_next`` are unused. (In the
    first cycle after a reset ``weight_sel`` may hold a weight selected before it; the array
    accepts no activation until a weight tile has loaded.)

    Members
    -------
    a_in : In(signed(9))
        Activation from the left neighbour (or the row's skew buffer): int8 or uint8.
    bank_in : In(1)
        Weight bank the activation is multiplied with; travels with the activation.
    bank_next : In(1)
        ``bank_in`` of the next cycle (the left neighbour's ``bank_in``).
    psum_in : In(signed(32))
        Partial sum from the PE above (zero for row 0).
    w_in : In(WeightBus(rows))
        Weight bus from the PE above (or the column's skew buffer).
    w_next : In(WeightBus(rows))
        ``w_in`` of the next cycle (the ``w_in`` of the PE above); ``data`` unused.
    a_out, bank_out, psum_out, w_out : Out(...)
        Registered outputs to the right (activation, bank) and below (partial sum, weights).
    """

    def __init__(self, row, rows):
        self.row = row
        super().__init__({
            "a_in": In(Activation), "bank_in": In(1), "bank_next": In(1), "psum_in": In(Accum),
            "w_in": In(WeightBus(rows)), "w_next": In(WeightBus(rows)),
            "a_out": Out(Activation), "bank_out": Out(1), "psum_out": Out(Accum),
            "w_out": Out(WeightBus(rows)),
        })

    def elaborate(self, platform):
        m = Module()
        weights = [Signal(Operand, name=f"weight{bank}", reset_less=True) for bank in range(2)]
        # split: where it is built from LUTs, its operands are a_in and weight_sel, both
        # flip-flops (in a DSP block or the generic Verilog split changes nothing).
        multiplier = PipelinedMultiplier(Activation, Operand, split=True)
        lut = lut_multiplier(platform, multiplier)
        if lut:
            # Which bank the bus writes this cycle, registered from the bus a cycle ahead.
            writes = [Signal(name=f"write{bank}") for bank in range(2)]
            ahead = self.w_next.valid & (self.w_next.row == self.row)
            m.d.sync += [writes[bank].eq(ahead & (self.w_next.bank == bank))
                         for bank in range(2)]
            # weight_sel is weights[bank_in] of this cycle: the bank of the next cycle and
            # each weight as it will be then (written this cycle or not).
            upcoming = [Mux(writes[bank], self.w_in.data, weights[bank]) for bank in range(2)]
            weight = Signal(Operand, name="weight_sel", reset_less=True)
            m.d.sync += weight.eq(Mux(self.bank_next, upcoming[1], upcoming[0]))
        else:
            weight = Mux(self.bank_in, weights[1], weights[0])
        m.submodules.multiplier = multiplier
        m.d.comb += [multiplier.a.eq(self.a_in), multiplier.b.eq(weight)]
        product = multiplier.p
        # The product arrives PRODUCT_LATENCY cycles after the activation, and so does the
        # partial sum of the same activation from the PE above (it went through the same
        # pipeline one cycle earlier, one row up): the column stays aligned.
        m.d.comb += [
            self.a_out.eq(data_register(m, self.a_in, "a")),
            self.psum_out.eq(data_register(m, self.psum_in + product, "psum")),
            self.w_out.data.eq(data_register(m, self.w_in.data, "w_data")),
            self.w_out.row.eq(data_register(m, self.w_in.row, "w_row")),
        ]
        m.d.sync += [
            self.bank_out.eq(self.bank_in),
            self.w_out.valid.eq(self.w_in.valid),
            self.w_out.bank.eq(self.w_in.bank),
        ]
        if lut:
            for bank in range(2):
                with m.If(writes[bank]):
                    m.d.sync += weights[bank].eq(self.w_in.data)
        else:
            with m.If(self.w_in.valid & (self.w_in.row == self.row)):
                with m.If(self.w_in.bank):
                    m.d.sync += weights[1].eq(self.w_in.data)
                with m.Else():
                    m.d.sync += weights[0].eq(self.w_in.data)
        return m


class SliceControl(data.StructLayout):
    """Control that travels with an output-stationary operand: ``valid`` and ``last`` (the
    final K-slice of the tile, which moves the finished sum into the drain register)."""

    def __init__(self):
        super().__init__({"valid": 1, "last": 1})


class OutputStationaryPE(wiring.Component):
    """Output-stationary PE: accumulates ``a_in * b_in`` over the K-slices of a tile.

    On the slice marked ``last`` the finished sum goes to the ``result`` register and the
    accumulator restarts from zero, so the next tile computes while ``result`` drains: while
    ``drain`` is high, ``result`` takes the value of the PE below (results shift up and leave
    the array at the top of each column).

    Members
    -------
    a_in : In(signed(9))
        Operand from the left (a column of A, one element per row): int8 or uint8.
    ctrl_in : In(SliceControl)
        Valid/last of the slice ``a_in`` belongs to; travels with ``a_in``.
    b_in : In(signed(8))
        Operand from above (a row of B, one element per column).
    result_in : In(signed(32))
        ``result`` of the PE below (zero for the bottom row).
    drain : In(1)
        Shift ``result`` up by one PE this cycle.
    a_out, ctrl_out, b_out : Out(...)
        Registered operands to the right and below.
    result : Out(signed(32))
        The finished sum of the previous tile, as it drains.
    """

    def __init__(self):
        super().__init__({
            "a_in": In(Activation), "ctrl_in": In(SliceControl()), "b_in": In(Operand),
            "result_in": In(Accum), "drain": In(1),
            "a_out": Out(Activation), "ctrl_out": Out(SliceControl()), "b_out": Out(Operand),
            "result": Out(Accum),
        })

    def elaborate(self, platform):
        m = Module()
        acc = Signal(Accum)  # restarts every tile, also after a reset
        total = Signal(Accum)
        result = Signal(Accum, reset_less=True)
        # Both operands come straight from the neighbours' (or the skew buffers') registers.
        product = pipelined_product(m, self.a_in, self.b_in, split=True)
        ctrl = self.ctrl_in
        for stage in range(PRODUCT_LATENCY):  # control follows its product
            delayed = Signal(SliceControl(), name=f"ctrl_d{stage}")
            m.d.sync += delayed.eq(ctrl)
            ctrl = delayed
        m.d.comb += total.eq(acc + product)
        m.d.comb += [
            self.a_out.eq(data_register(m, self.a_in, "a")),
            self.b_out.eq(data_register(m, self.b_in, "b")),
            self.result.eq(result),
        ]
        m.d.sync += self.ctrl_out.eq(self.ctrl_in)
        with m.If(ctrl.valid):
            m.d.sync += acc.eq(Mux(ctrl.last, 0, total))
        # The controller never drains a column while one of its PEs captures (see
        # SystolicArray: last slices are at least 2*rows cycles apart).
        with m.If(ctrl.valid & ctrl.last):
            m.d.sync += result.eq(total)
        with m.Elif(self.drain):
            m.d.sync += result.eq(self.result_in)
        return m
