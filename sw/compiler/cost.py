"""Cycle prediction: an event-level model of the accelerator running a program.

The accelerator is decoupled (``hw/accelerator.py``): instruction fetch, a controller that
dispatches in program order into one queue per unit, and the load, compute and store units,
which synchronize only through dependency tokens. :func:`predict_cycles` follows one
instruction at a time, in program order, and works out when it is fetched, dispatched,
issued to its unit (queue room, tokens, the unit's in-flight limit) and done — every time
depends only on earlier instructions, so one pass suffices:

* **fetch**: chunks of :data:`FETCH_CHUNK` words, requested when the fetch buffer has room,
  read over the DMA read channel like loads (instructions cost read bandwidth);
* **controller**: a word is dispatched ``decode_stages`` cycles after it was handed out, one
  per cycle, into its unit's queue of ``queue_depth`` entries — a full queue stops dispatch
  of everything behind it; FENCE waits until every unit is idle;
* **gates**: an instruction issues once its unit's previous one issued, the tokens it pops
  were pushed (a token is pushed when its producer is done) and fewer than the unit's
  in-flight limit are unfinished;
* **read channel** (fetch and LOAD): a calendar of bus beats; a row (one DMA command) takes
  ``ceil`` beats plus one, its first beat ``read_latency`` after the request, and at most
  :data:`OUTSTANDING` commands are in flight;
* **write channel** (STORE): rows in order, each answered ``write_latency`` after its last
  beat, at most :data:`OUTSTANDING` unanswered;
* **matmul engine**: weight tiles load during the previous tile's activations, activation
  rows stream at one per cycle, results leave ``array_latency`` later; at most
  :data:`~systolic.hw.compute.IN_FLIGHT` instructions in flight;
* **vector engine**: one instruction at a time, a line per ``ceil(cols / lanes)`` cycles;
  row units (softmax, norms, rowquant) ``max(beats, passes * beats + overhead)`` per row.

The constants of :class:`Timing` were measured on the generated RTL (Verilator backend)
with short programs; ``benchmarks/predict.py`` and ``tests/test_cost_model.py`` compare
whole programs with the RTL.
"""

import bisect
from dataclasses import dataclass

from systolic.hw.array import array_latency
from systolic.hw.config import INSTRUCTION_BYTES
from systolic.hw.isa import Memory, Opcode, VectorFunc

__all__ = ["predict_cycles", "Timing", "TIMING"]

#: Words per instruction-fetch command, and words the fetch buffer holds (hw/fetch.py).
FETCH_CHUNK = 8
FETCH_BUFFER = 16
#: Read commands the arbiter keeps in flight (hw/read_arbiter.py).
ARBITER_DEPTH = 8
#: A load command is granted once the data of the command this many before it started (the
#: reader's burst and command queues are full until then).
GRANT_AHEAD = 3
#: When a unit's slot of an instruction frees, relative to its done pulse (the units hold
#: ``in_flight`` instructions, the gates in front of them twice as many).
UNIT_FREE = {"load": 1, "compute": -1, "store": 1}
#: Row units: (read passes over a buffered row, cycles of per-row arithmetic).
ROW_UNITS = {VectorFunc.SOFTMAX: (2, 45), VectorFunc.LAYERNORM: (2, 90),
             VectorFunc.RMSNORM: (2, 90), VectorFunc.ROWQUANT: (1, 40)}
#: Functions with per-channel parameter planes (read once per instruction).
PLANE_COUNT = {VectorFunc.REQUANTIZE: 2, VectorFunc.MUL: 1, VectorFunc.ADD: 2,
               VectorFunc.LAYERNORM: 2, VectorFunc.RMSNORM: 2}


@dataclass(frozen=True)
class Timing:
    """Latencies of the RTL in cycles (see the module docstring for where they apply)."""

    #: Host memory: first read beat after the address, write response after the last beat.
    read_latency: int = 8
    write_latency: int = 8
    #: Controller stages between a fetched word and its dispatch.
    decode_stages: int = 2
    #: From a request of the fetch unit to the first chunk request; chunk words usable
    #: after the last beat.
    fetch_start: int = 2
    fetch_commit: int = 2
    #: Gate issue after dispatch; a popped token usable after its push.
    issue_delay: int = 1
    token_delay: int = 1
    #: LOAD: a row command reaches the reader this long after issue (+1 per row); the last
    #: line is written this long after the last beat.
    load_request: int = 2
    load_tail: int = 4
    #: STORE: first line read after issue; the instruction is done after the last response.
    store_request: int = 3
    store_tail: int = 5
    #: MATMUL: descriptor to the sequencers; result write and done after the array.
    matmul_start: int = 0
    matmul_tail: int = 2
    #: VECTOR: fixed cycles per instruction (start and drain).
    vector_overhead: int = 26
    #: FENCE dispatch after the units are idle; program end after the last instruction.
    fence_delay: int = 1
    end_delay: int = 3


TIMING = Timing()


def _ceil_div(a, b):
    return -(-a // b)


class _ReadChannel:
    """The DMA read channel shared by the load unit and instruction fetch (hw/dma.py,
    hw/read_arbiter.py). Commands are granted round robin and at most
    :data:`ARBITER_DEPTH` of them are in flight: a load command is granted once the one that
    many commands earlier finished, so a fetch request waits only for the load commands
    granted before it, not for the whole load instruction. Each command's data follows the
    previous command's, ``read_latency`` after its address (at most :data:`OUTSTANDING`
    bursts unanswered), plus a cycle between commands."""

    def __init__(self, latency, outstanding):
        self.latency, self.outstanding = latency, outstanding
        self.grants, self.starts, self.ends = [], [], []  # load commands, in order
        self.fetches = []  # (start, end) of fetch commands, in order
        self.debt = 0  # beats of fetch commands served before load commands placed earlier
        self.recent = [0] * ARBITER_DEPTH  # ends of the latest commands of either client

    def _retire(self, end):
        self.recent.pop(0)
        self.recent.append(end)

    def load(self, request, beats):
        """A load command of ``beats`` bus beats requested at ``request``; returns its end."""
        grant = max(request, self.recent[0])
        if len(self.ends) >= GRANT_AHEAD:
            grant = max(grant, self.starts[-GRANT_AHEAD] - self.latency)
        start = max(grant, self.recent[-self.outstanding] - 1) + self.latency
        if self.ends:
            start = max(start, self.ends[-1] + self.debt)
        self.debt = 0
        end = start + beats + 1
        fetches = self.fetches
        i = bisect.bisect_right(fetches, (start, float("inf"))) - 1
        i = max(i, 0)
        while i < len(fetches):  # step over fetch commands granted earlier
            f_start, f_end = fetches[i]
            if f_start < end and f_end > start:
                start, end = f_end, f_end + beats + 1
            elif f_start >= end:
                break
            i += 1
        self.grants.append(grant)
        self.starts.append(start)
        self.ends.append(end)
        self._retire(end)
        return end

    def fetch(self, request, beats):
        """A fetch command: served after the load commands granted before it."""
        committed = bisect.bisect_right(self.grants, request)
        start = request + self.latency
        if committed:
            start = max(start, self.ends[committed - 1])
        if self.fetches:
            start = max(start, self.fetches[-1][1])
        end = start + beats + 1
        # Load commands granted after this one but already placed where it goes would move
        # later: later load commands make up for the overlap.
        overlap, i = 0, committed
        while i < len(self.starts) and self.starts[i] < end:
            overlap += max(0, min(end, self.ends[i]) - max(start, self.starts[i]))
            i += 1
        if overlap:
            self.debt += overlap
        else:
            self.fetches.append((start, end))
        self._retire(end)
        return end

    def forget(self, before):
        """Drop commands that ended before ``before`` (no request can come earlier)."""
        cut = bisect.bisect_left(self.ends, before)
        if cut > 64:
            del self.grants[:cut], self.starts[:cut], self.ends[:cut]
        cut = bisect.bisect_left(self.fetches, (before, 0))
        if cut > 64:
            del self.fetches[:cut]


class _Model:
    def __init__(self, config, timing):
        self.cfg, self.t = config, timing
        self.outstanding = getattr(config, "dma_outstanding", 4)
        self.in_flight = getattr(config, "in_flight", 4)
        self.read = _ReadChannel(timing.read_latency, self.outstanding)
        self.write_free = 0
        self.write_answers = [0] * self.outstanding
        self.busy = dict.fromkeys(("load", "store", "array", "vector", "fetch"), 0)
        # per unit: issue and done times in unit order
        self.issued = {u: [] for u in UNIT_FREE}
        self.done = {u: [] for u in UNIT_FREE}
        self.pushes = {q: [] for q in ("l2c", "c2l", "c2s", "s2c")}
        self.pops = dict.fromkeys(self.pushes, 0)
        self.last_done = 0
        # matmul engine state
        self.w_end = self.a_end = self.a_end_prev = self.last_slice = 0
        self.vector_free = self.matmul_idle = 0

    # -- channels ---------------------------------------------------------------------------
    def beats(self, nbytes, address):
        return _ceil_div(address % self.cfg.dma_bytes + nbytes, self.cfg.dma_bytes)

    def write_command(self, ready, nbytes, address, lines):
        """One DMA write command of ``lines`` on-chip lines whose first line can be read
        at ``ready``; returns the cycle its response arrives."""
        beats = _ceil_div(address % self.cfg.dma_bytes + nbytes, self.cfg.dma_bytes)
        oldest = min(self.write_answers)
        start = max(ready, self.write_free, oldest)
        end = start + max(beats, lines) + 1
        self.write_free = end
        answer = end + self.t.write_latency
        self.write_answers[self.write_answers.index(oldest)] = answer
        return answer

    # -- units ------------------------------------------------------------------------------
    def load(self, issue, f):
        t = self.t
        end = issue
        for r in range(f["rows"]):
            beats = self.beats(f["row_bytes"], f["dram_addr"] + r * f["dram_stride"])
            end = self.read.load(issue + t.load_request + r, beats + (r == 0))
        self.busy["load"] += end - issue
        return end + t.load_tail

    def store(self, issue, f):
        t = self.t
        line = self.cfg.acc_line_bytes if f["mem"] == Memory.ACC.value else \
            self.cfg.spad_line_bytes
        lines_per_row = _ceil_div(f["row_bytes"], line)
        answer = issue
        for r in range(f["rows"]):
            answer = self.write_command(issue + t.store_request + r * lines_per_row,
                                        f["row_bytes"], f["dram_addr"] + r * f["dram_stride"],
                                        lines_per_row)
        self.busy["store"] += answer - issue
        return answer + t.store_tail

    def matmul(self, issue, f):
        cfg, t = self.cfg, self.t
        rows, length = cfg.rows, f["length"]
        start = max(issue + t.matmul_start, self.vector_free)
        if cfg.dataflow == "ws":
            w_start = max(start, self.w_end, self.a_end_prev)
            self.w_end = w_start + rows
            a_start = max(self.w_end + 1, self.a_end)
            self.a_end_prev, self.a_end = self.a_end, a_start + length
            done = self.a_end + array_latency(rows, cfg.cols) + t.matmul_tail
        else:
            s_start = max(start, self.a_end, self.last_slice + 2 * rows - length + 1)
            self.a_end = s_start + length
            self.last_slice = self.a_end - 1
            done = self.a_end + array_latency(rows, cfg.cols) + rows - 1 + t.matmul_tail
        self.busy["array"] += length
        self.matmul_idle = max(self.matmul_idle, done)
        return done

    def vector(self, issue, f):
        cfg, t = self.cfg, self.t
        start = max(issue, self.matmul_idle, self.vector_free)
        func = VectorFunc(f["func"])
        chunks = _ceil_div(f["row_length"], cfg.cols)
        beats = chunks * _ceil_div(cfg.cols, cfg.vector.lanes)
        rows = f["num_rows"]
        cycles = t.vector_overhead + PLANE_COUNT.get(func, 0) * chunks
        if func in ROW_UNITS:
            passes, overhead = ROW_UNITS[func]
            cycles += rows * max(beats, passes * beats + overhead)
        else:
            cycles += rows * beats
        self.busy["vector"] += cycles
        self.vector_free = start + cycles
        return self.vector_free


_UNIT = {Opcode.LOAD: "load", Opcode.STORE: "store", Opcode.MATMUL: "compute",
         Opcode.VECTOR: "compute"}
_POPS = {"load": {"pop_next": "c2l"}, "compute": {"pop_prev": "l2c", "pop_next": "s2c"},
         "store": {"pop_prev": "c2s"}}
_PUSHES = {"load": {"push_next": "l2c"}, "compute": {"push_prev": "c2l", "push_next": "c2s"},
           "store": {"push_prev": "s2c"}}


def predict_cycles(config, instructions, timing: Timing = TIMING):
    """Predicted cycles of a program made of ``instructions`` (:class:`~.scheduler.Instruction`
    objects in program order; a HALT is implied at the end): a dict with ``"total"`` (from
    start to done, as the CYCLES counter counts) and the busy cycles of ``"load"``,
    ``"store"`` (transfers in flight), ``"array"`` (activation rows or K-slices) and
    ``"vector"``."""
    model = _Model(config, timing)
    t = timing
    n = len(instructions)
    handed = [0] * (n + 1)  # hand-out time of each word (HALT last)
    dispatched = [0] * (n + 1)
    chunk_ready = {}
    fence_after = 0  # dispatch of the latest FENCE: later instructions come after it
    queue_of = {u: [] for u in UNIT_FREE}  # dispatch times per unit
    unit_limit, gate_limit = model.in_flight, 2 * model.in_flight

    def word_ready(i):
        c = i // FETCH_CHUNK
        if c not in chunk_ready:
            request = t.fetch_start if c == 0 else chunk_ready[c - 1][0] + 2
            first_needed = FETCH_CHUNK * c + FETCH_CHUNK - FETCH_BUFFER - 1
            if first_needed >= 0:
                request = max(request, handed[first_needed] + 1)
            words = min(FETCH_CHUNK, n + 1 - FETCH_CHUNK * c)
            end = model.read.fetch(request, model.beats(words * INSTRUCTION_BYTES, 0))
            model.busy["fetch"] += words * INSTRUCTION_BYTES // config.dma_bytes
            chunk_ready[c] = (request, end + t.fetch_commit)
        return chunk_ready[c][1]

    for i in range(n + 1):
        insn = instructions[i] if i < n else None
        handed[i] = max(word_ready(i), handed[i - 1] + 1 if i else 0,
                        dispatched[i - t.decode_stages] if i >= t.decode_stages else 0)
        d = max(handed[i] + t.decode_stages, dispatched[i - 1] + 1 if i else 0, fence_after)
        if insn is None:  # HALT: the program ends when everything is done
            dispatched[i] = d
            total = max(d, model.last_done) + t.end_delay
            break
        if insn.opcode == Opcode.FENCE:
            d = max(d, model.last_done + t.fence_delay)
            dispatched[i] = fence_after = d
            continue
        unit = _UNIT[insn.opcode]
        queue, issued, done = queue_of[unit], model.issued[unit], model.done[unit]
        depth = config.queue_depth
        if len(queue) >= depth:
            d = max(d, issued[len(queue) - depth] + 1)
        dispatched[i] = d
        queue.append(d)
        g = max(d + t.issue_delay, issued[-1] + 1 if issued else 0)
        k = len(issued)
        if k >= gate_limit:
            g = max(g, done[k - gate_limit] + 1)
        if k >= unit_limit:
            g = max(g, done[k - unit_limit] + UNIT_FREE[unit])
        for flag, name in _POPS[unit].items():
            if flag in insn.flags:
                g = max(g, model.pushes[name][model.pops[name]] + t.token_delay)
                model.pops[name] += 1
        if unit == "load":
            finish = model.load(g, insn.fields)
        elif unit == "store":
            finish = model.store(g, insn.fields)
        elif insn.opcode == Opcode.MATMUL:
            finish = model.matmul(g, insn.fields)
        else:
            finish = model.vector(g, insn.fields)
        finish = max(finish, done[-1] + 1 if done else 0)  # units finish in order
        issued.append(g)
        done.append(finish)
        for flag, name in _PUSHES[unit].items():
            if flag in insn.flags:
                model.pushes[name].append(finish)
        model.last_done = max(model.last_done, finish)
        if i % 256 == 0 and i > 64:
            model.read.forget(handed[i - 64])
    result = {name: int(value) for name, value in model.busy.items()}
    result["total"] = int(total)
    return result
