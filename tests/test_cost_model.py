"""The compiler's cycle prediction (sw/compiler/cost.py) against the Verilated RTL: GEMMs of
several shapes on four configurations (4x4 and 8x8 weight-stationary, 3x5
output-stationary; 4-, 8- and 16-byte buses; tiny to default memories) — a decode-like
product of one row among them, run transposed (tiling.emit_gemv) where the bus bounds it —
and a one-layer BERT model, each within 5% of the measured cycles.

The first three configurations are test_verilator's (no vector units), so the library
builds are shared with it.
"""

import dataclasses

import numpy as np
import pytest
from checkpoints import write_bert
from test_verilator import CONFIGS, LARGE

from systolic.sim.backends import create_backend
from systolic.sim.vectors import matmul_case
from systolic.sw.compiler.cost import predict_cycles
from systolic.sw.compiler.gemm import compile_gemm
from systolic.sw.compiler.tiling import gemv_transposed
from systolic.sw.driver import Accelerator, HostImage

#: Largest relative error of a prediction.
TOLERANCE = 0.05

#: 4x4 with lines as wide as its 4-byte bus and a scratchpad large enough for a 1 x K x N
#: product to run transposed.
GEMV = dataclasses.replace(CONFIGS[0], dma_bytes=4, spad_lines=1024, acc_lines=512)

#: (configuration, M, K, N): both small configurations split K into panels and M into
#: blocks; the 8x8 ones stream weights (decode-like, M = 1) and compute (square).
POINTS = [
    (GEMV, 1, 37, 257),
    (CONFIGS[0], 40, 48, 24),
    (CONFIGS[1], 17, 23, 31),
    (CONFIGS[1], 1, 40, 60),
    (LARGE, 64, 128, 96),
    (LARGE, 1, 256, 512),
    (LARGE, 100, 70, 30),
]


@pytest.fixture(scope="module")
def backends():
    made = {}

    def get(config):
        key = repr(config)
        if key not in made:
            made[key] = create_backend("verilator", config)
        return made[key]
    return get


@pytest.mark.parametrize("config, m, k, n", POINTS,
                         ids=[f"{c.rows}x{c.cols}{c.dataflow}-{m}x{k}x{n}" for c, m, k, n in POINTS])
def test_gemm_prediction_within_tolerance(backends, config, m, k, n):
    a, b = matmul_case(m * k + n, m, k, n)
    image = HostImage()
    program = compile_gemm(config, a, b, image)
    words = np.frombuffer(b"".join(int(w).to_bytes(16, "little") for w in program.words),
                          np.uint8)
    prog_addr = image.add(words)
    result = backends(config).run(image.array(), prog_addr, len(program.words))
    assert np.array_equal(program.result(result.memory), a.astype(np.int64) @ b)
    assert gemv_transposed(config, m, k, n) == (config is GEMV)
    predicted = predict_cycles(config, program.instructions)
    error = (predicted["total"] - result.cycles) / result.cycles
    print(f"{config.rows}x{config.cols} {config.dataflow} {m}x{k}x{n}: measured "
          f"{result.cycles}, predicted {predicted['total']} ({error:+.1%})")
    assert abs(error) <= TOLERANCE
    assert predicted["array"] == result.counters["array_busy"]


def test_model_layer_prediction_within_tolerance(tmp_path):
    """A one-layer BERT (hidden 64, FFN 128) over 40 tokens on the 8x8 accelerator: its
    matmuls run on the RTL (one program each, the vector operations on the host between
    them); the predictions of its fragments add up to the measured cycles."""
    path = write_bert(tmp_path / "bert", seed=3, hidden=64, heads=2, ffn=128, positions=64).path
    acc = Accelerator(LARGE, "verilator")
    runner = acc.load_model(path)
    ids = np.random.default_rng(1).integers(5, runner.model.config.vocab_size, 40)
    runner.hidden_states(ids)
    run = acc.last_run
    error = (run.predicted_cycles - run.cycles) / run.cycles
    print(f"one-layer BERT, 40 tokens: measured {run.cycles} in {run.programs} programs, "
          f"predicted {run.predicted_cycles} ({error:+.1%})")
    assert run.programs > 5 and set(run.ops) == {"matmul"}
    assert abs(error) <= TOLERANCE
