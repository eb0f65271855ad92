// Port adapter of harness.h for a Verilated model (prefix Vtop): ports are plain integers
// up to 64 bits (CData .. QData) and VlWide<N> (32-bit words) above.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>

#include "Vtop.h"
#include "verilated.h"
#ifdef SYSTOLIC_VCD
#include "verilated_vcd_c.h"
#endif

class Dut {
  public:
#ifdef SYSTOLIC_VCD
    // Built with --trace: every eval() can dump a VCD (two time units per clock cycle).
    std::unique_ptr<VerilatedContext> context{traced_context()};
    std::unique_ptr<Vtop> top{new Vtop{context.get(), "top"}};
    std::unique_ptr<VerilatedVcdC> vcd;

    void open_vcd(const char* path) {
        vcd.reset(new VerilatedVcdC);
        top->trace(vcd.get(), 99);
        vcd->open(path);
    }
    void eval() {
        top->eval();
        if (vcd) vcd->dump(context->time());
        context->timeInc(1);
    }
    void flush() {
        if (vcd) vcd->flush();
    }
    void final() {
        top->final();
        if (vcd) vcd->close();
    }

  private:
    static VerilatedContext* traced_context() {
        auto* context = new VerilatedContext;
        context->traceEverOn(true);
        return context;
    }
#else
    std::unique_ptr<VerilatedContext> context{new VerilatedContext};
    std::unique_ptr<Vtop> top{new Vtop{context.get(), "top"}};

    void eval() { top->eval(); }
    void flush() {}
    void final() { top->final(); }
#endif
};

// Ports of the Dut `dut` in scope (a parameter or member of the harness): PORT for clk, rst
// and irq, CSR and MAXI for the csr__* and m_axi__* ports (Verilator spells "__" ___05F).
#define PORT(name) (dut.top->name)
#define CSR(name) (dut.top->csr___05F##name)
#define MAXI(name) (dut.top->m_axi___05F##name)

template <class T>
inline void set(T& port, uint64_t value) { port = static_cast<T>(value); }

template <class T>
inline uint64_t get(const T& port) { return port; }

// Bytes of a port, lane 0 first (the host is little-endian, like the bus).
template <class T>
inline void set_bytes(T& port, const uint8_t* bytes, size_t count) {
    uint64_t value = 0;
    std::memcpy(&value, bytes, count);
    port = static_cast<T>(value);
}

template <std::size_t N>
inline void set_bytes(VlWide<N>& port, const uint8_t* bytes, size_t count) {
    std::memcpy(port.data(), bytes, count);
}

template <class T>
inline void get_bytes(const T& port, uint8_t* bytes, size_t count) {
    const uint64_t value = port;
    std::memcpy(bytes, &value, count);
}

template <std::size_t N>
inline void get_bytes(const VlWide<N>& port, uint8_t* bytes, size_t count) {
    std::memcpy(bytes, port.data(), count);
}
