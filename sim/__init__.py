"""Simulation backends: Amaranth's simulator, cocotb on the generated Verilog, and testbenches."""


class SimulationHang(RuntimeError):
    """The design stopped making progress: no handshake for longer than the timeout."""
