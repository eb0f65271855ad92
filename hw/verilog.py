"""Verilog generation for every top-level block the generator offers."""

from amaranth.back import verilog

from .accelerator import AcceleratorTop
from .array import SystolicArray
from .config import HardwareConfig
from .norm import LayerNorm, Norm, RMSNorm
from .pwl import Activation, Gelu, Silu
from .rescale import EltwiseMul, Requantize, ResidualAdd, Rescale
from .rowquant import RowQuantize
from .softmax import Softmax
from .axi import AXI4LiteSlave
from .dma import DMA

#: Amaranth emits no timescale; simulators such as Icarus need one to run cocotb.
TIMESCALE = "`timescale 1ns/1ps\n"

#: ``systolic verilog --top NAME``: a builder per top taking generation parameters as
#: keywords (each with a default, so a bare ``--top NAME`` works).
TOPS = {
    "array": lambda rows=4, cols=4, dataflow="ws": SystolicArray(rows, cols, dataflow),
    "requantize": lambda lanes=4: Requantize(lanes),
    "gelu": lambda lanes=4: Gelu(lanes),
    "silu": lambda lanes=4: Silu(lanes),
    # GELU and SiLU in one unit (a ``table`` input selects), as the vector engine builds it
    # when it has both.
    "pwl": lambda lanes=4: Activation(lanes),
    "eltwise_mul": lambda lanes=4: EltwiseMul(lanes),
    "residual_add": lambda lanes=4: ResidualAdd(lanes),
    # MUL and ADD in one unit (a ``func`` input selects), as the vector engine builds it for
    # the eltwise flag, and with REQUANTIZE too, when it has both flags.
    "eltwise": lambda lanes=4: Rescale(lanes, ("mul", "add")),
    "rescale": lambda lanes=4: Rescale(lanes),
    "rowquant": lambda lanes=4, max_row=1024: RowQuantize(lanes, max_row),
    "layernorm": lambda lanes=4, max_row=1024: LayerNorm(lanes, max_row),
    "rmsnorm": lambda lanes=4, max_row=1024: RMSNorm(lanes, max_row),
    # LayerNorm and RMSNorm in one unit (an ``rms`` input selects), as the vector engine
    # builds it when it has both.
    "norm": lambda lanes=4, max_row=1024: Norm(lanes, max_row),
    "softmax": lambda lanes=4, max_row=4096: Softmax(lanes, max_row),
    "dma": lambda addr_width=32, data_bytes=8, max_burst=256, max_outstanding=4: DMA(
        addr_width, data_bytes, max_burst=max_burst, max_outstanding=max_outstanding),
    "axil_slave": lambda addr_width=8, data_width=32: AXI4LiteSlave(addr_width, data_width),
    "accelerator": lambda **params: AcceleratorTop(HardwareConfig(**params)),
}


def build_top(top, **params):
    """Instantiate the component named ``top`` with generation parameters ``params``."""
    if top not in TOPS:
        raise ValueError(f"top must be one of {', '.join(sorted(TOPS))}, not {top!r}")
    return TOPS[top](**params)


def module_name(top):
    return f"systolic_{top}"


def generate_verilog(top, platform=None, **params):
    """Plain Verilog-2005 text of ``top`` (module ``systolic_<top>``), with a timescale;
    ``platform`` a :class:`~systolic.hw.dsp.SynthesisPlatform` for FPGA primitives."""
    component = build_top(top, **params)
    return TIMESCALE + verilog.convert(component, name=module_name(top), platform=platform,
                                       emit_src=False)
