"""The rescale unit: requantization (REQUANTIZE), the element-wise product (MUL) and the
residual add (ADD), each a dyadic scaling of int32 values (golden models:
``systolic.sw.numerics.requantize``, ``eltwise_mul`` and ``residual_add``). One circuit,
built for any of the three functions or for several (chosen by an input): the vector
engine runs one instruction at a time, so the functions share a lane's multipliers and its
rounding shifter instead of each having its own (their DSP blocks are the ones the array's
multipliers run short of)."""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ACC_WIDTH
from .formats import MANT_WIDTH, ROW_EXP_WIDTH, SHIFT_WIDTH
from .vector import (StreamingPipeline, beat_layout, check_lanes, check_subset,
                     dyadic_scale, multiply, out_bits_port, out_layout, saturate_next,
                     saturate_out)

__all__ = ["Rescale", "Requantize", "EltwiseMul", "ResidualAdd", "RESCALE_FUNCS",
           "rescale_layout", "MUL_OPERAND_WIDTH"]

#: The functions a :class:`Rescale` can be built for (the values of its ``func`` input are
#: their indices in the unit's ``funcs``).
RESCALE_FUNCS = ("requantize", "mul", "add")
#: Operand width of the element-wise product (int16 activations).
MUL_OPERAND_WIDTH = 16


def rescale_layout(lanes):
    """Input beat of :class:`Rescale` (the fields each function reads: see there)."""
    dyadic = {"m": signed(MANT_WIDTH), "s": unsigned(SHIFT_WIDTH)}
    return beat_layout(lanes, {
        "x": signed(ACC_WIDTH), "y": signed(ACC_WIDTH), **dyadic,
        **{f"{name}2": shape for name, shape in dyadic.items()}, "bias": signed(ACC_WIDTH),
    }, {"mant": unsigned(MANT_WIDTH), "exp": signed(ROW_EXP_WIDTH)})


class Rescale(wiring.Component):
    """Per lane, for the function chosen by ``func`` among ``funcs``:

    * ``requantize``: ``sat_out(sat32(round_shift(x * m * mant, s - exp)) + bias)``
      (``x`` an int32 accumulator, ``bias`` in output units, ``mant``/``exp`` the row's
      dynamic scale: ``mant = 1, exp = 0`` without one; ``s - exp`` must lie in 0..62,
      the golden model raises otherwise and the hardware result is then unspecified);
    * ``mul``: ``sat_out(round_shift(x * y * m, s))`` of the int16 operands in the low
      bits of ``x`` and ``y`` (the golden unscaled product is ``m = 1, s = 0, out_bits =
      32``, exact: ``|x * y| <= 2**30``);
    * ``add``: ``sat_out(round_shift(x * m, s) + round_shift(y * m2, s2))``.

    Mantissas are signed, ``|m| < 2**15``; shifts 0..62. Every function is one product
    (``m * mant`` or ``x * y``; none for ``add``) and then one or two dyadic scalings, so
    the functions share the product's multiplier, the first scaling's multipliers and
    shifter, the output adder and the saturation; built for several functions, ``add``
    and ``mul`` pass through the stage of ``requantize``'s int32 saturation as well.

    Streaming: one beat per cycle, ``latency`` pipeline stages plus the output queue.

    Members
    -------
    i : In(stream.Signature(rescale_layout(lanes)))
        ``lanes[k]``: ``x``, ``y``, ``m``, ``s``, ``m2``, ``s2`` and ``bias`` (the fields
        the function reads; the others are ignored); ``mant`` (0..2**15-1) and ``exp``
        (int8) of the row (``requantize``); ``count``; ``last``.
    o : Out(stream.Signature(out_layout(lanes)))
        ``data[k]``: the signed ``out_bits`` result; ``count``, ``last`` copied from the
        input beat.
    out_bits : In(OutBits)
        Output width (8, 16 or 32).
    func : In(range(len(funcs)))
        Only with several functions: the index in ``funcs`` of the function the beats use.

    The config inputs (``out_bits``, ``func``) go to registers only; hold them stable from
    the cycle before the first beat while beats are in flight.
    """

    def __init__(self, lanes=4, funcs=RESCALE_FUNCS):
        check_lanes(lanes)
        self.lanes = lanes
        # (In RESCALE_FUNCS order, so a unit's func codes do not depend on how it was asked.)
        self.funcs = check_subset("funcs", funcs, RESCALE_FUNCS)
        members = {
            "i": In(stream.Signature(rescale_layout(lanes))),
            "o": Out(stream.Signature(out_layout(lanes))),
            "out_bits": out_bits_port(),
        }
        if len(self.funcs) > 1:
            members["func"] = In(range(len(self.funcs)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        p = StreamingPipeline(m, self.i, self.o, "rescale")
        # "Runs function f" is a register only in a unit of several functions.
        running = {}
        if len(self.funcs) > 1:
            for index, func in enumerate(self.funcs):
                running[func] = Signal(name=f"rescale_{func}")
                m.d.sync += running[func].eq(self.func == index)
                # Carried along with the beats: each stage's choices read a copy of their
                # own (one register drove every stage's multiplexers, over 600 loads).
                p[f"running_{func}"] = running[func]

        def choose(func, value, otherwise):
            """``value`` while running ``func``, else ``otherwise`` (no multiplexer where
            the unit is built for ``func`` alone, or not for it)."""
            if func not in self.funcs:
                return otherwise
            return Mux(p[f"running_{func}"], value, otherwise) if running else value

        def scaling(args):
            lane, operand = args
            beat = p["beat"].lanes[lane]
            if operand == "y":  # add's second scaling
                return dyadic_scale(p, beat.y, beat.m2, beat.s2, f"l{lane}_y")
            # requantize: x * (m * mant); mul: (x * y) * m; add: x * m.
            value, factor = beat.x, beat.m
            if "requantize" in self.funcs or "mul" in self.funcs:
                product = multiply(
                    p, choose("mul", beat.x[:MUL_OPERAND_WIDTH].as_signed(), beat.m),
                    choose("mul", beat.y[:MUL_OPERAND_WIDTH].as_signed(), p["beat"].mant),
                    f"l{lane}_product")
                beat = p["beat"].lanes[lane]  # (of the stage after the product)
                value = choose("mul", product, beat.x)
                factor = choose("requantize", product, beat.m)
            shift = choose("requantize", (beat.s - p["beat"].exp)[:SHIFT_WIDTH], beat.s)
            return dyadic_scale(p, value, factor, shift, f"l{lane}_x")

        def lane_path(lane):
            operands = ["x", "y"] if "add" in self.funcs else ["x"]
            scaled = p.parallel(scaling, [(lane, operand) for operand in operands])
            for operand, value in zip(operands, scaled):
                p[f"l{lane}_{operand}_scaled"] = value
            first = p[f"l{lane}_x_scaled"]
            if "requantize" in self.funcs:
                # requantize saturates to int32 before adding its bias; the others take the
                # value as it is, a stage later.
                sat32 = saturate_next(p, first, ACC_WIDTH, f"l{lane}_sat32")
                first = choose("requantize", sat32, p[f"l{lane}_x_scaled"])
            second = Const(0)
            if "add" in self.funcs:
                second = choose("add", p[f"l{lane}_y_scaled"], second)
            second = choose("requantize", p["beat"].lanes[lane].bias, second)
            if running:
                # The operands are chosen in a cycle of their own: with the choice in front
                # of it, the wide adder was the shared unit's slowest path.
                p[f"l{lane}_augend"], p[f"l{lane}_addend"] = first, second
                p.step()
                first, second = p[f"l{lane}_augend"], p[f"l{lane}_addend"]
            p[f"l{lane}_sum"] = first + second
            p.step()
            return saturate_out(p, p[f"l{lane}_sum"], self.out_bits, f"l{lane}_out")

        results = p.parallel(lane_path, range(self.lanes))
        self.latency = p.finish(results)
        return m


class Requantize(Rescale):
    """:class:`Rescale` built for ``requantize`` alone (no ``func`` input)."""

    def __init__(self, lanes=4):
        super().__init__(lanes, ("requantize",))


class EltwiseMul(Rescale):
    """:class:`Rescale` built for ``mul`` alone (no ``func`` input)."""

    def __init__(self, lanes=4):
        super().__init__(lanes, ("mul",))


class ResidualAdd(Rescale):
    """:class:`Rescale` built for ``add`` alone (no ``func`` input)."""

    def __init__(self, lanes=4):
        super().__init__(lanes, ("add",))
