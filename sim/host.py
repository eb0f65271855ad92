"""What a host driver does through the register map, written once for every RTL backend.

A backend supplies two coroutines, ``write(name, value)`` and ``read(name) -> int``, that
access a register of ``hw/csr.py`` through its AXI4-Lite port, and one that waits for the
interrupt; :func:`start_program` and :func:`collect_results` do the rest.
"""

from systolic.hw.csr import ErrorCode, present_counters

__all__ = ["start_program", "collect_results"]


async def start_program(write, prog_addr, count):
    """Point the accelerator at a program, enable the interrupt and start it."""
    await write("IRQ_ENABLE", 1)
    await write("PROG_ADDR_LO", prog_addr & 0xFFFF_FFFF)
    await write("PROG_ADDR_HI", prog_addr >> 32)
    await write("PROG_COUNT", count)
    await write("CTRL", 1)


async def collect_results(read, write):
    """After the interrupt: ``(error, error_pc, counters)`` (counters by lower-case name:
    those ``HW_INFO`` says exist, so ``cycles`` alone without the performance counters),
    then clear DONE/ERROR and the interrupt."""
    status = await read("STATUS")
    if not status & 0b10:
        raise RuntimeError(f"interrupt raised but STATUS.done is clear (STATUS={status:#x})")
    error = ErrorCode(await read("ERROR_CODE"))
    error_pc = await read("ERROR_PC")
    counters = {}
    for name in present_counters(await read("HW_INFO")):
        low = await read(f"{name}_LO")
        counters[name.lower()] = low | await read(f"{name}_HI") << 32
    await write("CTRL", 2)
    return error, error_pc, counters
