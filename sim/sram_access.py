"""Amaranth testbench access to :class:`~systolic.hw.memory.BankedMemory` ports: preload
lines before a unit runs and read them back after it, shared by the unit tests of the
compute, vector and transfer engines."""

import numpy as np

from systolic.sw.bits import pack_lanes, unpack_lanes

__all__ = ["write_lines", "read_lines"]


async def write_lines(ctx, port, lines, width=None):
    """Write ``lines`` to addresses 0, 1, … through a write ``port``, retrying while a bank
    conflict holds ``ready`` low. A line is an integer, or with ``width`` a vector of signed
    lanes of that many bits."""
    ctx.set(port.valid, 1)
    for addr, line in enumerate(lines):
        ctx.set(port.payload.addr, addr)
        ctx.set(port.payload.data, line if width is None else pack_lanes(line, width))
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def read_lines(ctx, port, count, width=None, lanes=None, read_stages=1):
    """Read addresses 0 … ``count - 1`` through a read ``port`` of a memory whose lines
    arrive ``read_stages`` cycles after their reads (its ``read_stages``): a list of
    integers, or with ``width`` and ``lanes`` an array of ``count`` rows of signed lanes."""
    lines = []
    ctx.set(port.en, 1)
    for addr in range(count):
        ctx.set(port.addr, addr)
        await ctx.tick().until(port.ready)
        if read_stages > 1:  # one read at a time
            ctx.set(port.en, 0)
            await ctx.tick().repeat(read_stages - 1)
            ctx.set(port.en, 1)
        word = ctx.get(port.data)
        lines.append(word if width is None else unpack_lanes(word, width, lanes))
    ctx.set(port.en, 0)
    return lines if width is None else np.array(lines)
