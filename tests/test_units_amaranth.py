"""Vector units in Amaranth's simulator: bit-exact with the golden models on the shared
edge-case suites (lanes 1, 3 and 4), under back-pressure, at the documented throughput."""

import numpy as np
import pytest

from systolic.sim.unit_stimulus import (ROW_TOPS, STREAMING_TOPS, check_run,
                                        requantize_case, simulate_amaranth, softmax_case,
                                        suite_jobs, unit_suite)

LANES = (1, 3, 4)


@pytest.mark.parametrize("lanes", LANES)
@pytest.mark.parametrize("top", STREAMING_TOPS + ROW_TOPS)
def test_bit_exact(top, lanes):
    params, cases = unit_suite(top, lanes)
    jobs = suite_jobs(cases, seed=lanes)
    runs = simulate_amaranth(top, params, jobs)
    for (case, _), run in zip(jobs, runs):
        check_run(case, run)
    if top in STREAMING_TOPS:
        # One beat per cycle: every beat of an unstalled case is taken in consecutive
        # cycles and the outputs leave back to back.
        for (case, options), run in zip(jobs, runs):
            if not options:
                n = len(case.beats)
                assert run.accepted == list(range(run.accepted[0], run.accepted[0] + n))
                assert np.all(np.diff(run.delivered) == 1)


@pytest.mark.parametrize("top", ROW_TOPS)
def test_row_units_double_buffer(top):
    """The next row streams in while the previous one is still being processed: the
    second row's last beat is accepted before the first row's first result leaves."""
    params, cases = unit_suite(top, 4)
    case = max(cases, key=lambda c: len(c.beats))
    run, = simulate_amaranth(top, params, [(case, {})])
    check_run(case, run)
    beats_per_row = len(case.beats) // len(case.expected)
    assert run.accepted[2 * beats_per_row - 1] < run.delivered[0]


def test_requantize_config_change_between_operations():
    """Operations with different out_bits back to back on one elaboration."""
    rng = np.random.default_rng(5)
    cases = [requantize_case(rng, 4, 2, 9, bits) for bits in (8, 32, 16, 8)]
    runs = simulate_amaranth("requantize", {"lanes": 4}, [(c, {}) for c in cases])
    for case, run in zip(cases, runs):
        check_run(case, run)


def test_softmax_default_max_row_short_row():
    """The default generation parameters (max_row 4096) elaborate and run a short row."""
    rng = np.random.default_rng(6)
    case = softmax_case(rng, 4, 2, 6, causal=True, masked=True, row_scale=True,
                        max_row=4096)
    run, = simulate_amaranth("softmax", {"lanes": 4, "max_row": 4096}, [(case, {})])
    check_run(case, run)
