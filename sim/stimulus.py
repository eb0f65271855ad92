"""Cycle-by-cycle stimulus for the bare array, shared by every simulation backend.

A backend calls :meth:`ArrayStimulus.drive` before each clock edge to learn what to put on
the input streams and on ``out.ready``, then :meth:`ArrayStimulus.observe` with what the
design answered; the stimulus counts handshakes, records result beats with their cycle,
and raises :class:`~systolic.sim.SimulationHang` when nothing moves for too long.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from systolic.hw.config import ACC_WIDTH, OPERAND_WIDTH
from systolic.sw.bits import pack_lanes, unpack_lanes

from . import SimulationHang


def _beats(schedule):
    """Packed payload integers per input stream, in the array's payload layouts."""
    w = OPERAND_WIDTH
    unsigned = int(schedule.a_unsigned)
    if schedule.dataflow == "ws":
        acts_width = schedule.rows * w
        return {
            "weights": [pack_lanes(row, w) for row in schedule.weight_beats],
            "acts": [pack_lanes(row, w) | ((int(last) | unsigned << 1) << acts_width)
                     for row, last in zip(schedule.act_beats, schedule.act_last)],
        }
    a_width, b_width = schedule.rows * w, schedule.cols * w
    return {"slices": [pack_lanes(a, w) | (pack_lanes(b, w) << a_width)
                       | ((int(last) | unsigned << 1) << (a_width + b_width))
                       for a, b, last in zip(schedule.slice_a, schedule.slice_b,
                                             schedule.slice_last)]}


@dataclass
class ArrayRun:
    """What a simulated run produced: result beats (one row of cols int32 each), the cycle
    each input beat was accepted and each result left, the total cycle count (first input
    accepted to last result out, inclusive) and the wall-clock seconds the simulation loop
    took (excluding elaboration and simulator builds)."""

    beats: np.ndarray
    accepted: dict = field(default_factory=dict)
    delivered: list = field(default_factory=list)
    sim_seconds: float = 0.0

    @property
    def cycles(self):
        first = min(cycles[0] for cycles in self.accepted.values() if cycles)
        return self.delivered[-1] - first + 1


class ArrayStimulus:
    """Stimulus for one :class:`~systolic.sw.array_schedule.ArraySchedule`.

    ``out_stall`` is the probability that ``out.ready`` is low in a cycle, ``in_gap`` the
    probability that an input withholds its next beat for a cycle (an offered beat stays
    offered until it is taken). ``timeout`` is the number of cycles without a handshake
    after which the run is declared hung.
    """

    def __init__(self, schedule, *, out_stall=0.0, in_gap=0.0, seed=0, timeout=1000):
        self.schedule = schedule
        self.inputs = _beats(schedule)
        self.position = {name: 0 for name in self.inputs}
        self.offered = {name: False for name in self.inputs}
        self.out_stall, self.in_gap, self.timeout = out_stall, in_gap, timeout
        self.rng = np.random.default_rng(seed)
        self.cycle = 0
        self.idle_cycles = 0
        self.expected_beats = len(schedule.expected)
        self.run = ArrayRun(beats=None, accepted={name: [] for name in self.inputs})
        self._words = []
        self._out_ready = True
        self._started = None

    @property
    def done(self):
        return len(self._words) == self.expected_beats

    def drive(self):
        """``({stream: (valid, payload)}, out_ready)`` for the coming clock edge."""
        if self._started is None:
            self._started = time.perf_counter()
        drive = {}
        for name, beats in self.inputs.items():
            pos = self.position[name]
            if pos < len(beats) and not self.offered[name]:
                self.offered[name] = self.rng.random() >= self.in_gap
            valid = pos < len(beats) and self.offered[name]
            drive[name] = (valid, beats[pos] if valid else 0)
        self._out_ready = bool(self.rng.random() >= self.out_stall)
        return drive, self._out_ready

    def observe(self, ready, out_valid, out_payload):
        """Record the handshakes of this cycle; ``ready`` maps input stream to its ready."""
        moved = False
        for name, beats in self.inputs.items():
            if self.offered[name] and self.position[name] < len(beats) and ready[name]:
                self.run.accepted[name].append(self.cycle)
                self.position[name] += 1
                self.offered[name] = False
                moved = True
        if out_valid and self._out_ready:
            self._words.append(int(out_payload))
            self.run.delivered.append(self.cycle)
            moved = True
        self.idle_cycles = 0 if moved else self.idle_cycles + 1
        if self.idle_cycles > self.timeout:
            raise SimulationHang(
                f"no handshake for {self.timeout} cycles at cycle {self.cycle}: inputs at "
                f"{self.position}, {len(self._words)}/{self.expected_beats} results out")
        self.cycle += 1

    def result(self):
        self.run.sim_seconds = time.perf_counter() - self._started
        cols = self.schedule.cols
        self.run.beats = np.array([unpack_lanes(w, ACC_WIDTH, cols) for w in self._words],
                                  dtype=np.int64).reshape(-1, cols)
        return self.run
