"""The accelerator top level: an AXI4-Lite register slave for the host, an AXI4 master for
instruction fetch and DMA, and inside the controller, the load/compute/store units and the
banked scratchpad and accumulator.

Hierarchy: PE → SystolicArray → MatmulEngine and VectorEngine (the compute unit) →
AcceleratorTop. The compute unit runs its MATMUL and VECTOR instructions in program order:
an instruction for one engine waits until the other is idle (MATMULs still overlap each
other), so every instruction sees the results of the ones before it.
"""

from amaranth.hdl import Module, Mux, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4LiteSignature, AXI4LiteSlave, AXI4Signature, connect_halves
from .compute import MatmulEngine, memory_ports, transparent_accumulator
from .config import INSTRUCTION_BYTES, HardwareConfig
from .controller import Controller
from .csr import COUNTERS
from .dma import DMAReader, DMAWriter, done_layout
from .isa import Instruction, Opcode
from .fetch import Fetch
from .load import LoadUnit, dma_length_width
from .memory import BankedMemory, StreamQueue
from .read_arbiter import ReadArbiter
from .registers import CSR_ADDR_WIDTH, RegisterBlock
from .store import StoreUnit
from .vector_engine import VectorEngine

__all__ = ["AcceleratorTop"]


class AcceleratorTop(wiring.Component):
    """The whole accelerator for one :class:`HardwareConfig`.

    The host writes ``PROG_ADDR``/``PROG_COUNT`` and sets ``CTRL.start`` through ``csr``;
    the accelerator fetches and runs the program from host memory through ``m_axi`` and
    raises ``irq`` (if enabled) when it is done or stopped by an error. Registers:
    ``docs/registers.md``; instructions: ``docs/isa.md``.

    Members
    -------
    csr : In(AXI4LiteSignature(8, 32))
        Control/status registers (slave).
    m_axi : Out(AXI4Signature(addr_width, 8 * dma_bytes))
        Host memory (master): instruction fetch, LOAD and STORE.
    irq : Out(1)
        Interrupt request (level).
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        super().__init__({
            "csr": In(AXI4LiteSignature(CSR_ADDR_WIDTH, 32)),
            "m_axi": Out(AXI4Signature(config.addr_width, 8 * config.dma_bytes)),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.config
        addr_width, dma_bytes = cfg.addr_width, cfg.dma_bytes
        _, spad_bits, _, acc_bits = memory_ports(cfg)
        m = Module()
        m.submodules.csr_slave = csr_slave = AXI4LiteSlave(CSR_ADDR_WIDTH, 32)
        m.submodules.registers = regs = RegisterBlock(cfg)
        m.submodules.controller = ctrl = Controller(cfg)
        m.submodules.fetch = fetch = Fetch(cfg)
        m.submodules.load = load = LoadUnit(cfg)
        m.submodules.compute = compute = MatmulEngine(cfg)
        vector = VectorEngine(cfg) if cfg.vector.units else None
        if vector is not None:
            m.submodules.vector = vector
        m.submodules.store = store = StoreUnit(cfg)
        # Port order is priority: the compute unit must win its accumulator write port
        # (shared by its two engines, which never run at the same time).
        m.submodules.spad = spad = BankedMemory(cfg.spad_lines, spad_bits, cfg.spad_banks,
                                                readers=3, writers=1 + (vector is not None),
                                                read_stages=cfg.read_stages)
        m.submodules.acc = acc = BankedMemory(cfg.acc_lines, acc_bits, cfg.acc_banks,
                                              readers=2 + (vector is not None), writers=2,
                                              transparent=transparent_accumulator(cfg),
                                              read_stages=cfg.read_stages)
        # Commands no longer than a row or a fetch: beat counts of that width.
        length_width = dma_length_width(cfg)
        m.submodules.reader = reader = DMAReader(addr_width, dma_bytes,
                                                 max_outstanding=cfg.dma_outstanding,
                                                 length_width=length_width)
        m.submodules.writer = writer = DMAWriter(addr_width, dma_bytes,
                                                 max_outstanding=cfg.dma_outstanding,
                                                 length_width=length_width)
        m.submodules.read_arbiter = arbiter = ReadArbiter(addr_width, dma_bytes, clients=2,
                                                          length_width=length_width)

        # Host side.
        wiring.connect(m, wiring.flipped(self.csr), csr_slave.bus)
        wiring.connect(m, csr_slave.regs, regs.bus)
        connect_halves(m, self.m_axi, read=reader.bus, write=writer.bus)
        m.d.comb += self.irq.eq(regs.irq)

        # Memories.
        wiring.connect(m, compute.spad_a, spad.read[0])
        wiring.connect(m, compute.spad_b, spad.read[1])
        wiring.connect(m, store.spad_read, spad.read[2])
        wiring.connect(m, load.spad_write, spad.write[0])
        wiring.connect(m, store.acc_read, acc.read[1])
        wiring.connect(m, load.acc_write, acc.write[1])
        if vector is None:
            wiring.connect(m, compute.acc_read, acc.read[0])
            wiring.connect(m, compute.acc_write, acc.write[0])
        else:
            _share_read_port(m, acc.read[0], [compute.acc_read, vector.acc_src])
            _share_write_port(m, acc.write[0], [compute.acc_write, vector.acc_write])
            wiring.connect(m, vector.acc_aux, acc.read[2])
            wiring.connect(m, vector.spad_write, spad.write[1])

        # DMA: fetch and load share the reader; store owns the writer.
        wiring.connect(m, fetch.dma_cmd, arbiter.clients[0].cmd)
        wiring.connect(m, arbiter.clients[0].data, fetch.dma_data)
        wiring.connect(m, load.dma_cmd, arbiter.clients[1].cmd)
        wiring.connect(m, arbiter.clients[1].data, load.dma_data)
        wiring.connect(m, arbiter.cmd, reader.cmd)
        wiring.connect(m, reader.data, arbiter.data)
        # The writer takes a command when its burst splitter and response queue have room:
        # through a queue, that is not on the path of the store unit's next row command.
        m.submodules.write_cmd = write_cmd = StreamQueue(store.dma_cmd.payload.shape(), depth=3)
        wiring.connect(m, store.dma_cmd, write_cmd.i)
        wiring.connect(m, write_cmd.o, writer.cmd)
        wiring.connect(m, store.dma_data, writer.data)
        # The writer's completions come from its response queue and the bus's bvalid, and the
        # store unit pops its instruction queue with them: a register stage between the two
        # (which the placer may put far apart) keeps that a path of its own.
        m.submodules.write_done = write_done = StreamQueue(done_layout(), depth=3)
        wiring.connect(m, writer.done, write_done.i)
        wiring.connect(m, write_done.o, store.dma_done)

        # Control.
        m.d.comb += [
            fetch.start.eq(regs.start), fetch.prog_addr.eq(regs.prog_addr),
            fetch.count.eq(regs.prog_count), fetch.stop.eq(ctrl.stop_fetch),
            ctrl.start.eq(regs.start),
            ctrl.fetch_busy.eq(fetch.busy), ctrl.fetch_error.eq(fetch.error),
            ctrl.fetch_error_pc.eq(fetch.error_pc),
            ctrl.load_done.eq(load.done), ctrl.load_error.eq(load.error),
            ctrl.store_done.eq(store.done), ctrl.store_error.eq(store.error),
            regs.busy.eq(ctrl.busy), regs.finished.eq(ctrl.finished),
            regs.error.eq(ctrl.error), regs.error_pc.eq(ctrl.error_pc),
        ]
        wiring.connect(m, fetch.insn, ctrl.fetched)
        for unit, port in ((load, ctrl.load), (store, ctrl.store)):
            m.d.comb += [unit.insn.valid.eq(port.valid), unit.insn.payload.eq(port.payload.word),
                         port.ready.eq(unit.insn.ready)]
        self._compute_unit(m, ctrl, compute, vector)
        self._counters(m, cfg, regs, ctrl, compute)
        return m

    @staticmethod
    def _compute_unit(m, ctrl, matmul, vector):
        """Dispatch the compute queue's instructions to the matmul and vector engines in
        program order: a VECTOR waits until the matmul engine is idle and a MATMUL until
        the vector engine is idle, so the engines' ``done`` pulses stay in order."""
        port = ctrl.compute
        m.d.comb += [matmul.insn.payload.eq(port.payload.word),
                     ctrl.compute_done.eq(matmul.done), ctrl.units_idle.eq(matmul.idle)]
        if vector is None:
            m.d.comb += [matmul.insn.valid.eq(port.valid), port.ready.eq(matmul.insn.ready)]
            return
        is_vector = data.View(Instruction, port.payload.word).header.opcode == Opcode.VECTOR
        m.d.comb += [
            vector.insn.payload.eq(port.payload.word),
            matmul.insn.valid.eq(port.valid & ~is_vector & vector.idle),
            vector.insn.valid.eq(port.valid & is_vector & matmul.idle),
            port.ready.eq(Mux(is_vector, vector.insn.ready & matmul.idle,
                              matmul.insn.ready & vector.idle)),
            ctrl.compute_done.eq(matmul.done | vector.done),
            ctrl.units_idle.eq(matmul.idle & vector.idle),
        ]

    def _counters(self, m, cfg, regs, ctrl, compute):
        """The performance counters of ``hw/csr.py`` (without ``perf_counters``: CYCLES
        alone), cleared at start."""
        def transfer_bytes(port):
            # Added a cycle after the instruction is taken: the multiplier sees only the
            # queue's head, not the unit's handshake.
            transfer = data.View(Instruction, port.payload.word).transfer
            taken, size = Signal(), Signal(len(transfer.rows) + len(transfer.row_bytes))
            m.d.sync += [taken.eq(port.valid & port.ready),
                         size.eq(transfer.rows * transfer.row_bytes)]
            return Mux(taken, size, 0)

        increments = {
            "CYCLES": ctrl.busy,
            "ARRAY_BUSY": compute.beat,
            "MACS": compute.beat * (cfg.rows * cfg.cols),
            "FETCH_BYTES": ctrl.decoded * INSTRUCTION_BYTES,
            "LOAD_BYTES": transfer_bytes(ctrl.load),
            "STORE_BYTES": transfer_bytes(ctrl.store),
            "INSTRUCTIONS": ctrl.completed,
            "LOAD_STALL": ctrl.stalled[0],
            "COMPUTE_STALL": ctrl.stalled[1],
            "STORE_STALL": ctrl.stalled[2],
        }
        assert list(increments) == list(COUNTERS)
        for index, (name, step) in enumerate(increments.items()):
            if not cfg.perf_counters and name != "CYCLES":
                continue
            # Each step is added a cycle after it happens, from a register: the adder's
            # carry chain is then not on the paths from the units' handshakes. The driver
            # reads the counters after the program's end, when the last step is in.
            counter = Signal(cfg.counter_width, name=f"count_{name.lower()}")
            step_q = Signal(Value.cast(step).shape(), name=f"step_{name.lower()}")
            m.d.sync += step_q.eq(Mux(regs.start, 0, step))
            with m.If(regs.start):
                m.d.sync += counter.eq(0)
            with m.Else():
                m.d.sync += counter.eq(counter + step_q)
            m.d.comb += regs.counters[index].eq(counter)


def _share_read_port(m, port, clients):
    """Serve ``clients`` (read ports that never read in the same cycle) from one memory
    read ``port``; the first one reading is connected. Every client sees the port's
    ``data``, so the memory's read latency is theirs."""
    m.d.comb += [client.data.eq(port.data) for client in clients]
    for index, client in enumerate(clients):
        with (m.If if index == 0 else m.Elif)(client.en):
            m.d.comb += [port.en.eq(1), port.addr.eq(client.addr), client.ready.eq(port.ready)]


def _share_write_port(m, port, clients):
    """Serve ``clients`` (write ports that never write in the same cycle) from one memory
    write ``port``; the first one writing is connected."""
    for index, client in enumerate(clients):
        with (m.If if index == 0 else m.Elif)(client.valid):
            m.d.comb += [port.valid.eq(1), port.payload.eq(client.payload),
                         client.ready.eq(port.ready)]
