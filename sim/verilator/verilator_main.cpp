// The harness on a Verilated model: built into a shared library by sim/verilator_backend.py.
#include "dut_verilator.h"
#include "harness.h"
