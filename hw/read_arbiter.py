"""Several clients sharing one :class:`~systolic.hw.dma.DMAReader`."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .dma import beat_layout, command_layout

__all__ = ["ReadClientSignature", "ReadArbiter"]


class ReadClientSignature(wiring.Signature):
    """A reader client (client's view): commands out, their beats back in order.

    Members
    -------
    cmd : Out(stream.Signature(command_layout(addr_width, length_width)))
    data : In(stream.Signature(beat_layout(data_bytes)))
    """

    def __init__(self, addr_width, data_bytes, length_width=None):
        super().__init__({"cmd": Out(stream.Signature(command_layout(addr_width, length_width))),
                          "data": In(stream.Signature(beat_layout(data_bytes)))})


class ReadArbiter(wiring.Component):
    """Grants the clients' commands to one reader, round robin, and routes each command's
    beats (up to the one with ``last``) back to the client that issued it.

    The issuers of up to ``depth`` commands whose last beat has not yet arrived are kept in
    a queue; a command is only granted when the queue has room. Each client must keep
    taking its beats (a client that stalls its beats stalls the others' behind them).
    Commands pass through a register, so ``cmd`` comes from registers.

    Members
    -------
    clients : In(ReadClientSignature(addr_width, data_bytes, length_width)).array(clients)
    cmd : Out(stream.Signature(command_layout(addr_width, length_width)))
    data : In(stream.Signature(beat_layout(data_bytes)))
        To the reader.
    """

    def __init__(self, addr_width, data_bytes, clients=2, depth=8, length_width=None):
        if isinstance(clients, bool) or not isinstance(clients, int) or clients < 1:
            raise ValueError(f"clients must be an integer >= 1, not {clients!r}")
        self.count, self.depth = clients, depth
        super().__init__({
            "clients": In(ReadClientSignature(addr_width, data_bytes,
                                              length_width)).array(clients),
            "cmd": Out(stream.Signature(command_layout(addr_width, length_width))),
            "data": In(stream.Signature(beat_layout(data_bytes))),
        })

    def elaborate(self, platform):
        m = Module()
        count = self.count
        id_bits = max(count - 1, 1).bit_length()
        m.submodules.issuers = issuers = SyncFIFO(width=id_bits, depth=self.depth)

        # Round robin: the client after the last granted one goes first (client 0 at first).
        previous = Signal(range(max(count, 2)), init=count - 1)
        grant, granted = Signal(range(max(count, 2))), Signal()
        with m.Switch(previous):
            for last in range(count):
                with m.Case(last):
                    order = [(last + 1 + k) % count for k in range(count)]
                    for client in reversed(order):  # the first in order wins
                        with m.If(self.clients[client].cmd.valid):
                            m.d.comb += [grant.eq(client), granted.eq(1)]
        free = ~self.cmd.valid | self.cmd.ready
        take = granted & free & issuers.w_rdy
        for index, client in enumerate(self.clients):
            m.d.comb += client.cmd.ready.eq(take & (grant == index))
        with m.If(take):
            m.d.sync += [self.cmd.valid.eq(1), previous.eq(grant)]
            with m.Switch(grant):
                for index, client in enumerate(self.clients):
                    with m.Case(index):
                        m.d.sync += self.cmd.payload.eq(client.cmd.payload)
        with m.Elif(self.cmd.ready):
            m.d.sync += self.cmd.valid.eq(0)
        m.d.comb += [issuers.w_en.eq(take), issuers.w_data.eq(grant)]

        # Beats go to the issuer at the head of the queue.
        head = issuers.r_data
        for index, client in enumerate(self.clients):
            routed = issuers.r_rdy & (head == index)
            m.d.comb += [client.data.valid.eq(self.data.valid & routed),
                         client.data.payload.eq(self.data.payload)]
            with m.If(routed):
                m.d.comb += self.data.ready.eq(client.data.ready)
        m.d.comb += issuers.r_en.eq(self.data.valid & self.data.ready & self.data.payload.last)
        return m
