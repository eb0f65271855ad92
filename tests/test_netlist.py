"""The netlist handed to place-and-route is the design: the tiny profile synthesized for the
iCE40 UP5K (``TARGETS["ice40-up5k"]``'s yosys script, abc9 across flip-flops included),
simulated at gate level with yosys' iCE40 cell models under cocotb + Icarus, gives the
functional simulator's final memory images, error codes and error PCs, and the RTL's cycle
counts."""

import re

import numpy as np

from systolic.hw.config import HardwareConfig
from systolic.hw.csr import ErrorCode
from systolic.sim.cocotb.backend import CocotbBackend
from systolic.sim.functional import FunctionalSimulator
from systolic.sw.netlist import cell_library, write_netlist

from test_accelerator import check_same, gemm_program, text_program

TARGET = "ice40-up5k"


def programs(config):
    """``[(memory, prog_addr, count, check)]``: ``check(reference, result)`` beyond
    :func:`check_same`. Run back to back on one simulation (and one functional simulator);
    the error program last."""
    def product(c_addr, expected):
        def check(reference, result):
            assert reference.error == ErrorCode.NONE
            m, n = expected.shape
            c = result.memory[c_addr:c_addr + 4 * m * n].view(np.int32).reshape(m, n)
            assert np.array_equal(c, expected)
        return check

    def no_error(reference, result):
        assert reference.error == ErrorCode.NONE

    def spad_range(reference, result):
        assert (reference.error, reference.error_pc) == (ErrorCode.SPAD_RANGE, 1)

    last = config.spad_lines - 1
    cases = []
    # Odd shapes, random int8 with -128 and 127 (matmul_case); then unsigned activations.
    for m, k, n, seed, unsigned in ((5, 7, 3, 3, False), (3, 5, 2, 4, True)):
        memory, prog_addr, count, c_addr, expected = gemm_program(config, m, k, n, seed,
                                                                  a_unsigned=unsigned)
        cases.append((memory, prog_addr, count, product(c_addr, expected)))
    # Unaligned host addresses, odd row lengths and strides, both memories; the scratchpad
    # rows (4 lines of 2 bytes each) end on its last line.
    data = bytes(np.random.default_rng(5).integers(0, 256, 64, dtype=np.uint8))
    assert config.spad_line_bytes == 2
    for mem, sram_addr in (("acc", 3), ("spad", last - 11)):
        cases.append((*text_program(
            f"load mem={mem} sram_addr={sram_addr} rows=3 row_bytes=7 dram_addr=0x801 "
            f"dram_stride=9\nfence\nstore mem={mem} sram_addr={sram_addr} rows=3 row_bytes=7 "
            "dram_addr=0x903 dram_stride=11", data), no_error))
    # A scratchpad load running past the last line, after a good one: SPAD_RANGE at PC 1.
    cases.append((*text_program(
        "load mem=spad sram_addr=0 rows=1 row_bytes=4 dram_addr=0x802\n"
        f"load mem=spad sram_addr={last - 1} rows=3 row_bytes=4 dram_addr=0x800", data),
        spad_range))
    return cases


def test_ice40_netlist_matches_functional(tmp_path):
    config = HardwareConfig.profile("tiny")
    netlist = write_netlist(config, TARGET)
    text = netlist.read_text()
    # Gate level through and through: only cells, the block RAMs and DSPs among them.
    cells = set(re.findall(r"^  (\w+) ", text, re.M)) - {"input", "output", "wire", "assign"}
    assert {"SB_LUT4", "SB_RAM40_4K", "SB_MAC16"} <= cells <= {
        "SB_LUT4", "SB_CARRY", "SB_RAM40_4K", "SB_MAC16", "SB_DFF", "SB_DFFE", "SB_DFFSR",
        "SB_DFFESR", "SB_DFFSS", "SB_DFFESS", "SB_DFFR", "SB_DFFER", "SB_DFFS", "SB_DFFES"}
    assert cell_library(TARGET)[0][0].exists()

    cases = programs(config)
    jobs = [case[:3] for case in cases]
    functional = FunctionalSimulator(config)
    references = [functional.run(*job) for job in jobs]
    results = CocotbBackend(config, netlist=TARGET, work_dir=tmp_path / "netlist") \
        .run_batch(jobs)
    rtl = CocotbBackend(config, work_dir=tmp_path / "rtl").run_batch(jobs)
    for (*_, check), reference, result, rtl_result in zip(cases, references, results, rtl):
        check(reference, result)
        check_same(reference, result)
        check_same(reference, rtl_result)
        assert result.cycles == rtl_result.cycles  # the netlist is cycle-exact too
