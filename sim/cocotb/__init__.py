"""cocotb testbenches on the generated Verilog, and the runner that builds and starts them."""
