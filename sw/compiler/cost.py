"""Cycle prediction: an event-level model of the accelerator running a program.

The accelerator is decoupled (``hw/accelerator.py``): instruction fetch, a controller that
dispatches in program order into one queue per unit, and the load, compute and store units,
which synchronize only through dependency tokens. :func:`predict_cycles` follows one
instruction at a time, in program order, and works out when it is fetched, dispatched,
issued to its unit (queue room, tokens, the unit's in-flight limit) and done — every time
depends only on earlier instructions, so one pass suffices:

* **fetch**: chunks of ``fetch_words`` words, one command at a time, requested when the
  fetch buffer (two chunks) has room, read over the DMA read channel like loads
  (instructions cost read bandwidth);
* **controller**: a word is dispatched ``decode_stages`` cycles after it was handed out, one
  per cycle, into its unit's queue of ``queue_depth`` entries — a full queue stops dispatch
  of everything behind it; FENCE waits until every unit is idle;
* **gates**: an instruction issues once its unit's previous one issued, the tokens it pops
  were pushed (a token is pushed when its producer is done) and fewer than the unit's
  in-flight limit are unfinished;
* **read channel** (fetch and LOAD): command by command through the arbiter's register,
  the reader's splitter and realigner queue, bursts and host memory (:class:`_ReadChannel`);
  a command's beats follow the previous command's after a cycle; the load unit writes a
  line per cycle and holds back beats when it falls behind;
* **write channel** (STORE): rows in order, each answered ``write_latency`` after its last
  beat, at most :data:`OUTSTANDING` unanswered;
* **matmul engine**: weight tiles load during the previous tile's activations, activation
  rows stream at one per cycle, results leave ``array_latency`` later; at most
  :data:`~systolic.hw.compute.IN_FLIGHT` instructions in flight;
* **vector engine**: one instruction at a time, a line per ``ceil(cols / lanes)`` cycles;
  row units (softmax, norms, rowquant) ``max(beats, passes * beats + overhead)`` per row;
* **memory reads**: the constants hold for memories of one read stage; each further stage
  of the configuration's ``read_stages`` delays a STORE's lines, a MATMUL's operands and its
  result writes (the result writer has a stage more), and each read phase of a VECTOR
  (header, parameter planes, row records, the rows) by a cycle.

The constants of :class:`Timing` were measured on the generated RTL (Verilator backend)
with short programs and VCD traces of whole GEMMs; ``benchmarks/predict.py`` and ``tests/test_cost_model.py`` compare
whole programs with the RTL.
"""

from collections import deque
from dataclasses import dataclass

from systolic.hw.array import array_latency
from systolic.hw.config import INSTRUCTION_BYTES
from systolic.hw.isa import VECTOR_PARAMS, Memory, Opcode, VectorFunc

__all__ = ["predict_cycles", "Timing", "TIMING"]

#: Words per instruction-fetch command of configurations without ``fetch_words``
#: (hw/fetch.py; the fetch buffer holds two commands' words).
FETCH_CHUNK = 8
#: Bursts never cross a page; their longest (hw/axi.py).
PAGE_BYTES = 4096
MAX_BURST = 256
#: Read commands the arbiter keeps in flight (hw/read_arbiter.py).
ARBITER_DEPTH = 8
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
    decode_stages: int = 4
    #: From a request of the fetch unit to the first chunk request; chunk words usable
    #: after the last beat.
    fetch_start: int = 2
    fetch_commit: int = 2
    #: The fetch unit requests a chunk this long after the handout that made room for it.
    fetch_room: int = 2
    #: Gate issue after dispatch; a popped token usable after its push.
    issue_delay: int = 1
    token_delay: int = 1
    #: LOAD: a row command reaches the reader this long after issue (+1 per row); the last
    #: line is written this long after the last beat.
    load_request: int = 2
    #: LOAD: a line is written this long after its beat; the unit's queues hold this many
    #: cycles of lines before they hold back beats.
    line_delay: int = 5
    load_buffer: int = 12
    #: LOAD: done after its last line was written.
    load_tail: int = 1
    #: STORE: first line read after issue; the instruction is done after the last response.
    store_request: int = 3
    store_tail: int = 8
    #: MATMUL: descriptor to the sequencers; result write and done after the array.
    matmul_start: int = 0
    matmul_tail: int = 2
    #: VECTOR: fixed cycles per instruction (start and drain).
    vector_overhead: int = 26
    #: FENCE dispatch after the units are idle; program end after the last instruction.
    fence_delay: int = 1
    end_delay: int = 2


TIMING = Timing()


def _ceil_div(a, b):
    return -(-a // b)


_UNIT = {Opcode.LOAD: "load", Opcode.STORE: "store", Opcode.MATMUL: "compute",
         Opcode.VECTOR: "compute"}
_POPS = {"load": {"pop_next": "c2l"}, "compute": {"pop_prev": "l2c", "pop_next": "s2c"},
         "store": {"pop_prev": "c2s"}}
_PUSHES = {"load": {"push_next": "l2c"}, "compute": {"push_prev": "c2l", "push_next": "c2s"},
           "store": {"push_prev": "s2c"}}
_NEVER = float("inf")


def _bursts(address, length, dma_bytes):
    """Beats of the bursts the reader splits a command into (4 KiB pages, at most
    :data:`MAX_BURST` beats)."""
    first, end = address // dma_bytes, _ceil_div(address + length, dma_bytes)
    bursts = []
    while first < end:
        page_end = (first * dma_bytes // PAGE_BYTES + 1) * PAGE_BYTES // dma_bytes
        beats = min(end, page_end, first + MAX_BURST) - first
        bursts.append(beats)
        first += beats
    return bursts


class _ReadChannel:
    """The DMA read channel, command by command (hw/read_arbiter.py, hw/dma.py):

    * the arbiter grants the fetch unit's and the load unit's commands round robin into its
      output register, which frees when the reader takes the command there, while fewer
      than :data:`ARBITER_DEPTH` granted commands have not had their last beat;
    * the reader's splitter takes a command once it has requested every burst of the
      previous one and its queue of ``dma_outstanding`` realigner commands has room; it
      requests a burst (4 KiB pages, at most 256 beats) a cycle later at the earliest,
      while fewer than ``dma_outstanding`` bursts are unanswered;
    * memory answers ``read_latency`` after a burst's request; the realigner starts a
      command a cycle after the previous one's last beat and takes a beat per cycle;
    * the load unit writes a line per cycle, ``line_delay`` after its beat, and holds back
      beats when its queues hold ``load_buffer`` cycles of lines."""

    def __init__(self, timing, outstanding):
        self.t, self.outstanding = timing, outstanding
        # (request, bursts (beats each), lines, what)
        self.waiting = {"fetch": deque(), "load": deque()}
        self.last_grant, self.last_client = -1, "load"
        self.taken = self.last_request = -_NEVER  # previous command: taken, last burst
        self.last_beats = deque([-_NEVER] * ARBITER_DEPTH)  # of the latest commands
        self.aligned = deque([-_NEVER] * outstanding)  # realigner starts, latest commands
        self.answered = deque([-_NEVER] * outstanding)  # last beats of the latest bursts
        self.line_end = -_NEVER  # last line the load unit has written

    def grant_time(self):
        """(time, client) of the next grant, or None when nothing waits."""
        fetch, load = self.waiting["fetch"], self.waiting["load"]
        if not fetch and not load:
            return None
        earliest = max(self.last_grant + 1, self.taken, self.last_beats[0] + 1)
        if not load:
            return max(earliest, fetch[0][0]), "fetch"
        if not fetch:
            return max(earliest, load[0][0]), "load"
        time = max(earliest, min(fetch[0][0], load[0][0]))
        fetch_ready, load_ready = fetch[0][0] <= time, load[0][0] <= time
        if fetch_ready and load_ready:
            return time, ("fetch" if self.last_client == "load" else "load")
        return time, ("fetch" if fetch_ready else "load")

    def grant(self, time, client):
        """Grant ``client``'s oldest command at ``time``; returns (the cycle of its last
        beat, of its last line written (load) or None, what)."""
        t = self.t
        _, bursts, lines, what = self.waiting[client].popleft()
        taken = max(time + 1, self.last_request + 1, self.aligned[0] + 1)
        request = taken
        answers = []
        for beats in bursts:
            request = max(request + 1, self.answered[0] + 1)
            answers.append(request + t.read_latency)
            self.answered.popleft()
            self.answered.append(_NEVER)  # placeholder, set below
        aligned = max(taken + 1, self.last_beats[-1] + 1)
        first = max(aligned + 1, answers[0])
        beat = first
        for index, beats in enumerate(bursts):
            beat = max(beat, answers[index]) + beats
            self.answered[index - len(bursts)] = beat - 1
        last = beat - 1
        line_end = None
        if lines:
            line_end = max(self.line_end + lines, first + t.line_delay + lines - 1,
                           last + t.line_delay)
            self.line_end = line_end
            if line_end - t.load_buffer > last:  # beats held back by the line writer
                last = line_end - t.load_buffer
                self.answered[-1] = max(self.answered[-1], last)
        self.taken, self.last_request = taken, request
        self.aligned.popleft()
        self.aligned.append(aligned)
        self.last_beats.popleft()
        self.last_beats.append(last)
        self.last_grant, self.last_client = time, client
        return last, line_end, what


class _Simulation:
    """The state of the accelerator while a program runs (see the module docstring)."""

    def __init__(self, config, timing, instructions):
        self.cfg, self.t = config, timing
        self.insns = list(instructions)
        n = len(self.insns) + 1  # and a HALT
        self.n = n
        self.in_flight = getattr(config, "in_flight", 4)
        # Cycles a memory's line arrives later than from a memory of one read stage.
        self.read_delay = getattr(config, "read_stages", 1) - 1
        self.chunk = getattr(config, "fetch_words", FETCH_CHUNK)
        self.read = _ReadChannel(timing, getattr(config, "dma_outstanding", 4))
        self.busy = dict.fromkeys(("load", "store", "array", "vector", "fetch"), 0)
        # front end
        self.ready = [None] * n  # cycle each word is usable in the fetch buffer
        self.handed = [None] * n
        self.dispatched = [None] * n
        self.words_requested = 0
        self.fetch_granted = -_NEVER
        self.last_request = timing.fetch_start - 2
        self.next_hand = self.next_dispatch = 0
        self.fenced = 0  # earliest dispatch after the latest FENCE
        # units: their instructions in order (indices), issue and done times
        self.order = {u: [] for u in UNIT_FREE}
        self.issued = {u: [] for u in UNIT_FREE}
        self.done = {u: [] for u in UNIT_FREE}
        self.queued = {u: deque() for u in UNIT_FREE}  # dispatched, not issued
        self.pushes = {q: [] for q in ("l2c", "c2l", "c2s", "s2c")}
        self.pops = dict.fromkeys(self.pushes, 0)
        self.unknown = 0  # issued instructions whose done time is still unknown (loads)
        self.last_done = 0
        self.load_commands_end = 0  # when the load unit's row commands are all requested
        # matmul and vector engines, write channel
        self.w_end = self.a_end = self.a_end_prev = self.last_slice = 0
        self.vector_free = self.matmul_idle = 0
        self.write_free = 0
        self.write_answers = [0] * getattr(config, "dma_outstanding", 4)
        self.total = None

    # -- candidates: the earliest time each action can happen (None: not yet known) --------
    def fetch_time(self):
        if self.words_requested >= self.n:
            return None
        size = min(self.chunk, self.n - self.words_requested)
        if self.read.waiting["fetch"]:
            return None  # the previous command is still waiting for its grant
        time = max(self.last_request + 2, self.fetch_granted + 1)
        needed = self.words_requested + size - 2 * self.chunk  # words to be handed out first
        if needed > 0:
            if needed > self.next_hand:
                return None
            time = max(time, self.handed[needed - 1] + self.t.fetch_room)
        return time

    def handout_time(self):
        h = self.next_hand
        if h >= self.n or self.ready[h] is None:
            return None
        time = self.ready[h]
        if h:
            time = max(time, self.handed[h - 1] + 1)
        stages = self.t.decode_stages
        if h >= stages:
            if self.dispatched[h - stages] is None:
                return None
            time = max(time, self.dispatched[h - stages])
        return time

    def dispatch_time(self):
        d = self.next_dispatch
        if d >= self.next_hand:
            return None
        time = max(self.handed[d] + self.t.decode_stages, self.fenced)
        if d:
            time = max(time, self.dispatched[d - 1] + 1)
        insn = self.insns[d] if d < len(self.insns) else None
        if insn is None or insn.opcode == Opcode.FENCE:  # HALT, FENCE: everything done
            if self.unknown or any(self.queued.values()):
                return None
            return max(time, self.last_done + (self.t.fence_delay if insn else 0))
        unit = _UNIT[insn.opcode]
        if len(self.queued[unit]) >= self.cfg.queue_depth:
            return None  # waits for the unit to take an instruction
        k = len(self.order[unit]) - self.cfg.queue_depth
        if k >= 0:
            time = max(time, self.issued[unit][k] + 1)
        return time

    def issue_time(self, unit):
        queue = self.queued[unit]
        if not queue:
            return None
        index = queue[0]
        k = len(self.issued[unit])
        insn = self.insns[index]
        time = self.dispatched[index] + self.t.issue_delay
        if k:
            time = max(time, self.issued[unit][-1] + 1)
        done = self.done[unit]
        for limit, free in ((2 * self.in_flight, 1), (self.in_flight, UNIT_FREE[unit])):
            if k >= limit:
                if done[k - limit] is None:
                    return None
                time = max(time, done[k - limit] + free)
        for flag, queue_name in _POPS[unit].items():
            if flag in insn.flags:
                pushes = self.pushes[queue_name]
                if len(pushes) <= self.pops[queue_name]:
                    return None
                time = max(time, pushes[self.pops[queue_name]] + self.t.token_delay)
        if unit == "load":
            time = max(time, self.load_commands_end)
        return time

    # -- actions --------------------------------------------------------------------------
    def request_fetch(self, time):
        size = min(self.chunk, self.n - self.words_requested)
        first = self.words_requested
        self.words_requested += size
        self.last_request = time
        beats = _ceil_div(size * INSTRUCTION_BYTES, self.cfg.dma_bytes)
        self.busy["fetch"] += beats
        self.read.waiting["fetch"].append((time, (beats,), 0, range(first, first + size)))

    def hand_out(self, time):
        self.handed[self.next_hand] = time
        self.next_hand += 1

    def dispatch(self, time):
        d = self.next_dispatch
        self.dispatched[d] = time
        self.next_dispatch += 1
        insn = self.insns[d] if d < len(self.insns) else None
        if insn is None:
            self.total = max(time, self.last_done) + self.t.end_delay
        elif insn.opcode == Opcode.FENCE:
            self.fenced = time
        else:
            unit = _UNIT[insn.opcode]
            self.order[unit].append(d)
            self.queued[unit].append(d)
            return unit
        return None

    def issue(self, unit, time):
        index = self.queued[unit].popleft()
        insn = self.insns[index]
        for flag, queue_name in _POPS[unit].items():
            if flag in insn.flags:
                self.pops[queue_name] += 1
        self.issued[unit].append(time)
        f = insn.fields
        if unit == "load":
            self.done[unit].append(None)
            self.unknown += 1
            self._load(index, time, f)
            return
        if unit == "store":
            finish = self._store(time, f)
        elif insn.opcode == Opcode.MATMUL:
            finish = self._matmul(time, f)
        else:
            finish = self._vector(time, f)
        self.done[unit].append(None)
        self._finish(unit, len(self.done[unit]) - 1, finish)

    def _finish(self, unit, k, finish):
        done = self.done[unit]
        if k:
            finish = max(finish, done[k - 1] + 1)  # a unit finishes in order
        done[k] = finish
        self.last_done = max(self.last_done, finish)
        insn = self.insns[self.order[unit][k]]
        for flag, queue_name in _PUSHES[unit].items():
            if flag in insn.flags:
                self.pushes[queue_name].append(finish)

    def grant(self, time, client):
        last, line_end, what = self.read.grant(time, client)
        if client == "fetch":
            self.fetch_granted = time
            for word in what:
                self.ready[word] = last + self.t.fetch_commit
        elif what is not None:  # the last command of a load instruction
            k, issue = what
            self.busy["load"] += line_end - issue
            self.unknown -= 1
            self._finish("load", k, line_end + self.t.load_tail)

    # -- unit timing ----------------------------------------------------------------------
    def _line_bytes(self, mem):
        return self.cfg.acc_line_bytes if mem == Memory.ACC.value else self.cfg.spad_line_bytes

    def _load(self, index, issue, f):
        lines = _ceil_div(f["row_bytes"], self._line_bytes(f["mem"]))  # written 1 per cycle
        rows = f["rows"]
        waiting = self.read.waiting["load"]
        k = len(self.done["load"]) - 1
        for r in range(rows):
            address = f["dram_addr"] + r * f["dram_stride"]
            waiting.append((issue + self.t.load_request + r,
                            _bursts(address, f["row_bytes"], self.cfg.dma_bytes), lines,
                            (k, issue) if r == rows - 1 else None))
        self.load_commands_end = issue + rows

    def _store(self, issue, f):
        t, cfg = self.t, self.cfg
        lines = _ceil_div(f["row_bytes"], self._line_bytes(f["mem"]))
        answer = issue
        for r in range(f["rows"]):
            address = f["dram_addr"] + r * f["dram_stride"]
            beats = _ceil_div(address % cfg.dma_bytes + f["row_bytes"], cfg.dma_bytes)
            oldest = min(self.write_answers)
            start = max(issue + t.store_request + self.read_delay + r * lines,
                        self.write_free, oldest)
            self.write_free = start + max(beats, lines) + 1
            answer = self.write_free + t.write_latency
            self.write_answers[self.write_answers.index(oldest)] = answer
        self.busy["store"] += answer - issue
        return answer + t.store_tail

    def _matmul(self, issue, f):
        cfg, t = self.cfg, self.t
        rows, length = cfg.rows, f["length"]
        start = max(issue + t.matmul_start + self.read_delay, self.vector_free)
        tail = t.matmul_tail + self.read_delay  # the result writer's stages
        if cfg.dataflow == "ws":
            w_start = max(start, self.w_end, self.a_end_prev)
            self.w_end = w_start + rows
            a_start = max(self.w_end + 1, self.a_end)
            self.a_end_prev, self.a_end = self.a_end, a_start + length
            done = self.a_end + array_latency(rows, cfg.cols) + tail
        else:
            s_start = max(start, self.a_end, self.last_slice + 2 * rows - length + 1)
            self.a_end = s_start + length
            self.last_slice = self.a_end - 1
            done = self.a_end + array_latency(rows, cfg.cols) + rows - 1 + tail
        self.busy["array"] += length
        self.matmul_idle = max(self.matmul_idle, done)
        return done

    def _vector(self, issue, f):
        cfg, t = self.cfg, self.t
        start = max(issue, self.matmul_idle, self.vector_free)
        func = VectorFunc(f["func"])
        chunks = _ceil_div(f["row_length"], cfg.cols)
        beats = chunks * _ceil_div(cfg.cols, cfg.vector.lanes)
        rows = f["num_rows"]
        header, planes = VECTOR_PARAMS[func]
        phases = 1 + bool(header) + bool(planes) + bool(f.get("row_scale"))  # read phases
        cycles = (t.vector_overhead + self.read_delay * phases
                  + PLANE_COUNT.get(func, 0) * chunks)
        if func in ROW_UNITS:
            passes, overhead = ROW_UNITS[func]
            cycles += rows * max(beats, passes * beats + overhead)
        else:
            cycles += rows * beats
        self.busy["vector"] += cycles
        self.vector_free = start + cycles
        return self.vector_free

    # -- the loop -------------------------------------------------------------------------
    def run(self):
        """Take the earliest possible action until the HALT is dispatched; a candidate is
        recomputed only when an action may have changed it."""
        units = tuple(UNIT_FREE)
        # Units whose next issue can change when a unit pushes tokens (they pop them).
        woken = {u: {consumer for flag, queue in _PUSHES[u].items()
                     for consumer, pops in _POPS.items() if queue in pops.values()}
                 for u in units}
        names = ("fetch", "grant", "handout", "dispatch") + units
        compute = (self.fetch_time, self.read.grant_time, self.handout_time,
                   self.dispatch_time) + tuple((lambda u=u: self.issue_time(u)) for u in units)
        times = [None] * len(names)
        index = {name: i for i, name in enumerate(names)}
        dirty = set(range(len(names)))
        after_issue = {u: {index["dispatch"], index[u], *(index[c] for c in woken[u])}
                       | ({index["grant"]} if u == "load" else set()) for u in units}
        after_grant_load = {index["grant"], index["dispatch"], index["load"],
                            *(index[c] for c in woken["load"])}
        after_fetch = {index["fetch"], index["grant"]}
        after_grant_fetch = {index["fetch"], index["grant"], index["handout"]}
        after_handout = {index["fetch"], index["handout"], index["dispatch"]}
        after_dispatch = {index["handout"], index["dispatch"]}
        grant = index["grant"]
        while self.total is None:
            for i in dirty:
                times[i] = compute[i]()
            best, action = _NEVER, -1
            for i, time in enumerate(times):
                if time is not None:
                    moment = time[0] if i == grant else time
                    if moment < best:
                        best, action = moment, i
            if action < 0:
                raise RuntimeError("the cycle model found no next action (a program whose "
                                   "tokens never arrive?)")
            name = names[action]
            if name == "fetch":
                self.request_fetch(best)
                dirty = after_fetch
            elif name == "grant":
                client = times[grant][1]
                self.grant(best, client)
                dirty = after_grant_fetch if client == "fetch" else after_grant_load
            elif name == "handout":
                self.hand_out(best)
                dirty = after_handout
            elif name == "dispatch":
                unit = self.dispatch(best)
                dirty = after_dispatch if unit is None else after_dispatch | {index[unit]}
            else:
                self.issue(name, best)
                dirty = after_issue[name]
        return self.total


def predict_cycles(config, instructions, timing: Timing = TIMING):
    """Predicted cycles of a program made of ``instructions`` (:class:`~.scheduler.Instruction`
    objects in program order; a HALT is implied at the end): a dict with ``"total"`` (from
    start to done, as the CYCLES counter counts) and the busy cycles of ``"load"``,
    ``"store"`` (transfers in flight), ``"array"`` (activation rows or K-slices),
    ``"vector"`` and ``"fetch"`` (instruction bus beats)."""
    sim = _Simulation(config, timing, instructions)
    total = sim.run()
    result = {name: int(value) for name, value in sim.busy.items()}
    result["total"] = int(total)
    return result
