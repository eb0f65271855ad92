// The harness's AXI4 memory model alone, for tests (tests/test_verilator_memory.py): the
// ports are plain fields, no RTL model is involved, and the test plays the AXI master cycle
// by cycle through probe_drive (the slave's outputs for this cycle) and probe_edge (the
// master's outputs at the clock edge).
#include <array>
#include <cstdint>
#include <cstring>

#include "systolic_params.h"

struct CsrPorts {
    uint64_t awaddr, awprot, awvalid, awready, wdata, wstrb, wvalid, wready, bresp, bvalid,
        bready, araddr, arprot, arvalid, arready, rdata, rresp, rvalid, rready;
};

struct AxiPorts {
    uint64_t arid, araddr, arlen, arsize, arburst, arvalid, arready, rid, rresp, rlast, rvalid,
        rready, awid, awaddr, awlen, awsize, awburst, awvalid, awready, wstrb, wlast, wvalid,
        wready, bid, bresp, bvalid, bready;
    std::array<uint8_t, SYSTOLIC_DATA_BYTES> rdata, wdata;
};

struct Ports {
    uint64_t clk, rst, irq;
    CsrPorts csr;
    AxiPorts m_axi;
};

class Dut {
  public:
    Ports ports{};
    Ports* top = &ports;
    void eval() {}
    void flush() {}
    void final() {}
};

#define PORT(name) (dut.top->name)
#define CSR(name) (dut.top->csr.name)
#define MAXI(name) (dut.top->m_axi.name)

inline void set(uint64_t& port, uint64_t value) { port = value; }
inline uint64_t get(uint64_t port) { return port; }

template <std::size_t N>
inline void set_bytes(std::array<uint8_t, N>& port, const uint8_t* bytes, size_t count) {
    std::memcpy(port.data(), bytes, count);
}

template <std::size_t N>
inline void get_bytes(const std::array<uint8_t, N>& port, uint8_t* bytes, size_t count) {
    std::memcpy(bytes, port.data(), count);
}

#include "harness.h"

namespace {

struct Probe {
    Dut dut;
    systolic::AxiMemory memory;
    uint64_t cycle = 0;
};

}  // namespace

SYSTOLIC_EXPORT void* probe_create(uint8_t* memory, uint64_t size, uint32_t read_latency,
                                   uint32_t write_latency, uint32_t max_pending) {
    auto* probe = new Probe;
    probe->memory.memory = memory;
    probe->memory.size = size;
    probe->memory.read_latency = read_latency;
    probe->memory.write_latency = write_latency;
    probe->memory.max_pending = max_pending;
    return probe;
}

SYSTOLIC_EXPORT void probe_destroy(void* handle) { delete static_cast<Probe*>(handle); }

// The slave's outputs for this cycle: arready, rvalid, rid, rresp, rlast, awready, wready,
// bvalid, bid, bresp (R and B fields hold their last values while not valid), and rdata.
SYSTOLIC_EXPORT void probe_drive(void* handle, uint64_t* outputs, uint8_t* rdata) {
    auto* probe = static_cast<Probe*>(handle);
    Dut& dut = probe->dut;
    probe->memory.drive(dut, probe->cycle);
    const AxiPorts& bus = dut.ports.m_axi;
    const uint64_t values[] = {bus.arready, bus.rvalid, bus.rid,    bus.rresp, bus.rlast,
                               bus.awready, bus.wready, bus.bvalid, bus.bid,   bus.bresp};
    std::memcpy(outputs, values, sizeof values);
    std::memcpy(rdata, bus.rdata.data(), SYSTOLIC_DATA_BYTES);
}

// The master's outputs at the edge: arvalid, araddr, arlen, arsize, arburst, arid, rready,
// awvalid, awaddr, awlen, awsize, awburst, awid, wvalid, wstrb, wlast, bready, and wdata.
// Returns a systolic::Status, with a message on a protocol error.
SYSTOLIC_EXPORT int probe_edge(void* handle, const uint64_t* inputs, const uint8_t* wdata,
                               char* message, size_t message_size) {
    auto* probe = static_cast<Probe*>(handle);
    AxiPorts& bus = probe->dut.ports.m_axi;
    uint64_t* const fields[] = {&bus.arvalid, &bus.araddr, &bus.arlen,   &bus.arsize,
                                &bus.arburst, &bus.arid,   &bus.rready,  &bus.awvalid,
                                &bus.awaddr,  &bus.awlen,  &bus.awsize,  &bus.awburst,
                                &bus.awid,    &bus.wvalid, &bus.wstrb,   &bus.wlast,
                                &bus.bready};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; ++i) *fields[i] = inputs[i];
    std::memcpy(bus.wdata.data(), wdata, SYSTOLIC_DATA_BYTES);
    try {
        probe->memory.observe(probe->dut, probe->cycle);
    } catch (const systolic::Failure& failure) {
        systolic::copy_message(failure.what(), message, message_size);
        return failure.status;
    }
    ++probe->cycle;
    return systolic::STATUS_OK;
}
