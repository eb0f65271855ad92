"""Long delays of wide values in a :class:`Pipeline` go through a :class:`DelayLine`
(distributed RAM): the value read ``N`` stages later is exactly the value of ``N`` cycles
earlier, as a register chain gives it."""

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module, Signal, signed
from amaranth.lib import data
from amaranth.sim import Simulator

from systolic.hw.vector import (DELAY_LINE_MAX_STAGES, MEMORY_DELAY_MIN_STAGES,
                                MEMORY_DELAY_MIN_WIDTH, Pipeline)

WIDTH = 45
#: Short (register chains), at the threshold, the longest single line (17: 16 words), just
#: past it (two lines in series) and three lines.
DISTANCES = (1, MEMORY_DELAY_MIN_STAGES - 1, MEMORY_DELAY_MIN_STAGES, 9, 17, 18, 21, 33, 35)
RECORD = data.StructLayout({"a": signed(20), "b": 7, "c": signed(33)})


def _field(bits, name):
    field = RECORD[name]
    width = field.shape.width
    value = (bits >> field.offset) & ((1 << width) - 1)
    return value - (value >> (width - 1) << width) if field.shape.signed else value


def _build(distances):
    m = Module()
    value = Signal(signed(WIDTH))
    record = Signal(RECORD)
    flag = Signal()
    p = Pipeline(m, "t")
    p["value"], p["record"], p["flag"] = value, record, flag
    outputs = {}
    for distance in sorted(distances):
        p.stage = distance
        outputs[distance] = (p["value"], p["record"].c, p["record"].a, p["flag"])
    return m, p, value, record, flag, outputs


def test_long_wide_delays_use_delay_lines():
    m, p, *_ = _build(DISTANCES)
    Fragment.get(m, None)
    lines = {at for key, at in p.delay_lines if key == "value"}
    assert lines == {d for d in DISTANCES if d >= MEMORY_DELAY_MIN_STAGES}
    assert {key for key, _ in p.delay_lines} == {"value", "record"}  # flags keep chains
    assert MEMORY_DELAY_MIN_WIDTH > 1
    for (_, at), lines in p.delay_lines.items():
        assert sum(line.distance for line in lines) == at
        assert all(line.distance <= DELAY_LINE_MAX_STAGES for line in lines)
    assert len(p.delay_lines["value", 33]) == 2


@pytest.mark.parametrize("seed", [0, 1])
def test_delay_is_exact(seed):
    """Random wide values (and a record's fields, and a flag) come out exactly N cycles
    later for every N; an off-by-one delay gives different random values."""
    m, _, value, record, flag, outputs = _build(DISTANCES)
    rng = np.random.default_rng(seed)
    cycles = 3 * max(DISTANCES) + 20
    values = [int(v) for v in rng.integers(-(1 << (WIDTH - 1)), 1 << (WIDTH - 1), cycles)]
    records = [int(v) for v in rng.integers(0, 1 << RECORD.size, cycles, dtype=np.uint64)]
    flags = [int(v) for v in rng.integers(0, 2, cycles)]
    mismatches = []

    async def bench(ctx):
        for t in range(cycles):
            ctx.set(value, values[t])
            ctx.set(record.as_value(), records[t])
            ctx.set(flag, flags[t])
            for distance, (v, c, a, f) in outputs.items():
                if t >= distance:
                    rec = records[t - distance]
                    want = (values[t - distance], _field(rec, "c"), _field(rec, "a"),
                            flags[t - distance])
                    got = (ctx.get(v), ctx.get(c), ctx.get(a), ctx.get(f))
                    if got != want:
                        mismatches.append((t, distance, got, want))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert not mismatches, mismatches[:5]
