"""The Verilator harness's AXI4 slave memory (sim/verilator/harness.h) alone, with the test
as the AXI master cycle by cycle (sim/verilator/memory_probe.cpp, compiled here with g++):
burst data and latency, strobes, DECERR outside the memory, and each protocol check."""

import ctypes
import re
import subprocess

import numpy as np
import pytest

from systolic.hw.axi import BURST_INCR, RESP_DECERR, RESP_OKAY
from systolic.hw.config import HardwareConfig
from systolic.sim.axi_models import AXIProtocolError
from systolic.sim.tools import require
from systolic.sim.verilator_backend import HARNESS_DIR, harness_params

DATA_BYTES = 8
OUTPUTS = ("arready", "rvalid", "rid", "rresp", "rlast", "awready", "wready", "bvalid", "bid",
           "bresp")
INPUTS = ("arvalid", "araddr", "arlen", "arsize", "arburst", "arid", "rready", "awvalid",
          "awaddr", "awlen", "awsize", "awburst", "awid", "wvalid", "wstrb", "wlast", "bready")
FULL_SIZE = 3  # log2(DATA_BYTES)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    work = tmp_path_factory.mktemp("memory_probe")
    (work / "systolic_params.h").write_text(harness_params(HardwareConfig(dma_bytes=DATA_BYTES)))
    path = work / "probe.so"
    subprocess.run([require("g++"), "-std=c++17", "-O1", "-shared", "-fPIC",
                    f"-I{HARNESS_DIR}", f"-I{work}", str(HARNESS_DIR / "memory_probe.cpp"),
                    "-o", str(path)], check=True)
    lib = ctypes.CDLL(str(path))
    lib.probe_create.restype = ctypes.c_void_p
    lib.probe_create.argtypes = [ctypes.c_void_p, ctypes.c_uint64] + [ctypes.c_uint32] * 3
    lib.probe_destroy.argtypes = [ctypes.c_void_p]
    lib.probe_drive.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.probe_edge.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                               ctypes.c_char_p, ctypes.c_size_t]
    return lib


class Master:
    """Plays the AXI master: :meth:`cycle` shows the slave's outputs for this cycle to
    ``decide``, which returns the master's outputs at the edge (unnamed ones are 0)."""

    def __init__(self, lib, memory, read_latency=3, write_latency=2, max_pending=8):
        self.lib, self.memory = lib, memory
        self.handle = lib.probe_create(memory.ctypes.data, memory.size, read_latency,
                                       write_latency, max_pending)
        self.now = 0

    def cycle(self, decide):
        outputs = np.zeros(len(OUTPUTS), np.uint64)
        rdata = np.zeros(DATA_BYTES, np.uint8)
        self.lib.probe_drive(self.handle, outputs.ctypes.data, rdata.ctypes.data)
        seen = dict(zip(OUTPUTS, map(int, outputs)), rdata=bytes(rdata), cycle=self.now)
        master = decide(seen)
        inputs = np.array([master.get(name, 0) for name in INPUTS], np.uint64)
        wdata = np.frombuffer(master.get("wdata", bytes(DATA_BYTES)), np.uint8).copy()
        message = ctypes.create_string_buffer(512)
        status = self.lib.probe_edge(self.handle, inputs.ctypes.data, wdata.ctypes.data,
                                     message, 512)
        if status:
            raise AXIProtocolError(message.value.decode())
        self.now += 1
        return seen

    def __del__(self):
        self.lib.probe_destroy(self.handle)


def ar(addr, beats, id=0, size=FULL_SIZE, burst=BURST_INCR):
    return dict(arvalid=1, araddr=addr, arlen=beats - 1, arsize=size, arburst=burst, arid=id)


def aw(addr, beats, id=0, size=FULL_SIZE, burst=BURST_INCR):
    return dict(awvalid=1, awaddr=addr, awlen=beats - 1, awsize=size, awburst=burst, awid=id)


def memory_image(size=0x1800, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def read_burst(master, addr, beats, id=0):
    """Offer one read burst at cycle 0, take every R beat: [(cycle, beat outputs)]."""
    beats_seen = []
    for _ in range(beats + 20):
        seen = master.cycle(lambda s: {**(ar(addr, beats, id) if s["cycle"] == 0 else {}),
                                       "rready": 1})
        if seen["rvalid"]:
            beats_seen.append(seen)
    return beats_seen


def word(memory, addr):
    at = addr // DATA_BYTES * DATA_BYTES
    return bytes(memory[at:at + DATA_BYTES])


def test_read_burst_latency_and_data(library):
    memory = memory_image()
    beats = read_burst(Master(library, memory, read_latency=5), 0x13, 4, id=1)
    # The first beat is due read_latency cycles after AR; the unaligned start reads the
    # word holding it, then the following aligned words.
    assert [b["cycle"] for b in beats] == [5, 6, 7, 8]
    assert [b["rdata"] for b in beats] == [word(memory, a) for a in (0x10, 0x18, 0x20, 0x28)]
    assert [b["rlast"] for b in beats] == [0, 0, 0, 1]
    assert {(b["rid"], b["rresp"]) for b in beats} == {(1, RESP_OKAY)}


def test_write_burst_strobes_and_response(library):
    memory = memory_image()
    expected = memory.copy()
    data = [bytes(range(16 * i, 16 * i + DATA_BYTES)) for i in range(3)]
    strobes = [0xFF, 0x0F, 0x81]
    for beat, (lanes, strb) in enumerate(zip(data, strobes)):
        for lane in range(DATA_BYTES):
            if strb >> lane & 1:
                expected[0x40 + DATA_BYTES * beat + lane] = lanes[lane]
    master = Master(library, memory, write_latency=4)
    # The first W beat comes a cycle before its AW (the slave buffers it).
    plan = {0: {}, 1: aw(0x40, 3, id=1), 2: {}, 3: {}}
    plan[0].update(wvalid=1, wdata=data[0], wstrb=strobes[0])
    plan[2].update(wvalid=1, wdata=data[1], wstrb=strobes[1])
    plan[3].update(wvalid=1, wdata=data[2], wstrb=strobes[2], wlast=1)
    responses = []
    for _ in range(12):
        seen = master.cycle(lambda s: {**plan.get(s["cycle"], {}), "bready": 1})
        if seen["bvalid"]:
            responses.append((seen["cycle"], seen["bid"], seen["bresp"]))
    assert np.array_equal(memory, expected)
    assert responses == [(3 + 4, 1, RESP_OKAY)]  # write_latency after the last W beat


def test_bursts_reaching_outside_the_memory_answer_decerr(library):
    memory = memory_image(0x1800)
    before = memory.copy()
    beats = read_burst(Master(library, memory), 0x17F8, 2)
    assert [b["rresp"] for b in beats] == [RESP_DECERR] * 2
    master = Master(library, memory)
    responses = []
    for _ in range(10):
        seen = master.cycle(lambda s: {**(aw(0x17F8, 2) if s["cycle"] == 0 else {}),
                                       "wvalid": s["cycle"] in (0, 1), "wlast": s["cycle"] == 1,
                                       "wstrb": 0xFF, "wdata": bytes(DATA_BYTES),
                                       "bready": 1})
        if seen["bvalid"]:
            responses.append(seen["bresp"])
    assert responses == [RESP_DECERR]
    assert np.array_equal(memory, before)
    # The last full word inside the memory is fine.
    assert [b["rresp"] for b in read_burst(Master(library, memory), 0x17F0, 2)] == \
        [RESP_OKAY] * 2


def held_ar_then(change):
    """A master whose second AR waits (one pending burst fills the slave, whose R beat is
    never taken) and is then changed by ``change``."""
    def decide(seen):
        if seen["cycle"] == 0:
            return ar(0x100, 1)
        if seen["cycle"] == 1:
            assert not seen["arready"]
            return ar(0x200, 2)
        return change(ar(0x200, 2))
    return decide


@pytest.mark.parametrize("decide, message", [
    (lambda s: ar(0x100, 2, burst=0), "burst type 0 is not INCR"),
    (lambda s: ar(0x100, 2, size=FULL_SIZE + 1), "size 16 bytes is wider than the bus"),
    (lambda s: ar(0xFF8, 2), "burst of 2 beats at 0xff8 crosses a 4096-byte boundary"),
    (lambda s: {**aw(0x100, 3), "wvalid": 1, "wlast": 1}, "wlast=1 on beat 0 of a 3-beat burst"),
    (held_ar_then(lambda request: {**request, "arvalid": 0}), "ARVALID dropped before ARREADY"),
    (held_ar_then(lambda request: {**request, "araddr": 0x208}),
     "AR payload changed while waiting: (0x200, 0x1, 0x3, 0x1, 0) -> (0x208"),
], ids=["fixed", "size", "4k-read", "wlast", "valid-dropped", "payload-changed"])
def test_protocol_errors(library, decide, message):
    master = Master(library, memory_image(), max_pending=1)
    with pytest.raises(AXIProtocolError, match=re.escape(message)):
        for _ in range(4):
            master.cycle(decide)
