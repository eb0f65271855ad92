"""Verilog generation for every top-level block the generator offers."""

from amaranth.back import verilog

from .array import SystolicArray

#: Amaranth emits no timescale; simulators such as Icarus need one to run cocotb.
TIMESCALE = "`timescale 1ns/1ps\n"

#: ``systolic verilog --top NAME``: a builder per top taking generation parameters as
#: keywords (each with a default, so a bare ``--top NAME`` works).
TOPS = {
    "array": lambda rows=4, cols=4, dataflow="ws": SystolicArray(rows, cols, dataflow),
}


def build_top(top, **params):
    """Instantiate the component named ``top`` with generation parameters ``params``."""
    if top not in TOPS:
        raise ValueError(f"top must be one of {', '.join(sorted(TOPS))}, not {top!r}")
    return TOPS[top](**params)


def module_name(top):
    return f"systolic_{top}"


def generate_verilog(top, **params):
    """Plain Verilog-2005 text of ``top`` (module ``systolic_<top>``), with a timescale."""
    component = build_top(top, **params)
    return TIMESCALE + verilog.convert(component, name=module_name(top), emit_src=False)
