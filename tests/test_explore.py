"""`systolic explore`: the design-space sweep (predicted cycles, traffic, resources), the
Pareto front, the recommendation and its round trip into `systolic verilog --config`.

Everything the explorer reports is a prediction; these tests check it against what it is
predicted from: the compiler's own per-run prediction and host traffic on a real functional
run, a full compilation of every layer, the committed synthesis measurements, and the
definitions of Pareto optimality and fit."""

import json
import re
from dataclasses import replace

import numpy as np
import pytest
from checkpoints import write_llama
from click.testing import CliRunner

from systolic.hw.config import VECTOR_UNITS, HardwareConfig, VectorUnitsConfig
from systolic.sw import explore as ex
from systolic.sw import resources as res
from systolic.sw import synth
from systolic.sw.cli import main
from systolic.sw.driver import Accelerator, model_config


@pytest.fixture(scope="module")
def minilm():
    return ex.load_workload("minilm", seq=7)


def _config(rows, cols, dataflow="ws", units=(), lanes=4, dma_bytes=8):
    return HardwareConfig(rows=rows, cols=cols, dataflow=dataflow, spad_lines=4096,
                          acc_lines=1024, dma_bytes=dma_bytes, vector=VectorUnitsConfig(
                              lanes=lanes, max_row=2048, softmax_max_row=512,
                              **{u: u in units for u in VECTOR_UNITS}))


# -- cycles, traffic and host work -----------------------------------------------------------

def test_prediction_equals_the_runtime_on_a_functional_run(minilm):
    """The explorer's cycles, MACs and host bytes for one inference are those the runtime
    reports when it really runs the model (functional backend, same configuration)."""
    config = model_config(16, 16)
    acc = Accelerator(config, "functional")
    runner = acc.load_model("minilm")
    ids = np.array([101, 1037, 2158, 2003, 2652, 1037, 102])  # 7 tokens, as the fixture
    runner.hidden_states(ids)
    stats = acc.last_run
    point = ex.evaluate(minilm, config)
    assert point.cycles == stats.predicted_cycles
    assert point.macs == stats.useful_macs
    assert point.host_bytes == stats.host_bytes > 0


def test_decoder_prefill_and_per_token_prediction_equal_the_runtime(tmp_path):
    """A two-layer llama: the explorer's decode point (one token with ``seq`` cached) is
    the difference between generating two tokens and one; its prefill point is the first."""
    path = str(write_llama(tmp_path / "llama", seed=4, layers=2, hidden=32, heads=4,
                           kv_heads=2, ffn=48).path)
    config = model_config(8, 8)
    acc = Accelerator(config, "functional")
    runner = acc.load_model(path)
    prompt = "the cat sat on the"
    runner.generate(prompt, 1, stop_at_eos=False)
    prefill = acc.last_run
    runner.generate(prompt, 2, stop_at_eos=False)
    both = acc.last_run
    seq = len(runner.prompt_ids(prompt, 2))
    decode = ex.evaluate(ex.load_workload(path, seq), config)
    assert ex.load_workload(path, seq).unit == "token"
    assert (decode.cycles, decode.macs, decode.host_bytes) == (
        both.predicted_cycles - prefill.predicted_cycles,
        both.useful_macs - prefill.useful_macs, both.host_bytes - prefill.host_bytes)
    first = ex.evaluate(ex.load_workload(path, seq, "prefill"), config)
    assert (first.cycles, first.macs, first.host_bytes) == (
        prefill.predicted_cycles, prefill.useful_macs, prefill.host_bytes)
    assert decode.cycles < first.cycles


def test_layer_scaling_equals_compiling_every_layer(minilm):
    config = _config(16, 16, "os", units=("requantize", "rowquant"))
    scaled = ex.evaluate(minilm, config)
    full = ex.evaluate(minilm, config, scale_layers=False)
    assert (scaled.cycles, scaled.bus_bytes, scaled.host_bytes, scaled.macs) == \
        (full.cycles, full.bus_bytes, full.host_bytes, full.macs)
    assert scaled.operations == full.operations


def test_shared_compilations_and_predictions_change_nothing(minilm):
    """explore() compiles once per configuration without its vector lanes and shares step
    predictions between configurations with the same step and timing: every point must
    equal evaluating its configuration on its own."""
    base = _config(16, 16, units=minilm.vector_units(), lanes=4, dma_bytes=8)
    variants = [base, replace(base, dma_bytes=32),
                replace(base, vector=replace(base.vector, lanes=8)),
                _config(16, 16, units=("requantize", "rowquant"), dma_bytes=32),
                _config(16, 16, dma_bytes=32)]
    result = ex.explore(minilm, "ecp5-85k", variants, max_usage=None)
    assert [p.config for p in result.points] == variants
    for point in result.points:
        alone = ex.evaluate(minilm, point.config)
        assert (point.cycles, point.bus_bytes, point.host_bytes, point.macs) == \
            (alone.cycles, alone.bus_bytes, alone.host_bytes, alone.macs)
        assert point.operations == alone.operations
    cycles = [p.cycles for p in result.points]
    assert cycles[1] < cycles[0] and cycles[2] < cycles[0]  # bus width and lanes matter


def test_missing_units_move_work_to_the_host(minilm):
    with_units = ex.evaluate(minilm, _config(16, 16, units=minilm.vector_units()))
    without = ex.evaluate(minilm, _config(16, 16))
    assert without.host_bytes > with_units.host_bytes > 0  # embedding lookup stays on it
    assert without.host_cycles == round(ex.HOST_CYCLES_PER_BYTE * without.host_bytes)
    assert with_units.macs == without.macs
    assert 0 < with_units.utilization < 1


def test_transfer_bytes_of_a_known_program():
    """Bus bytes are the LOAD/STORE rows x row bytes; compute instructions move none."""
    from systolic.hw.isa import Memory
    from systolic.sw.compiler.scheduler import Scheduler

    sched = Scheduler(_config(4, 4))
    sched.load(Memory.SPAD, 0, 5, 4, 0, 64, "a")
    sched.load(Memory.SPAD, 8, 4, 4, 512, 64, "b")
    sched.matmul(0, 8, 0, 5)
    sched.store(Memory.ACC, 0, 5, 16, 4096, 64, "c")
    sched.fence()
    assert ex.transfer_bytes(sched.instructions) == 5 * 4 + 4 * 4 + 5 * 16


# -- Pareto front and recommendation ---------------------------------------------------------

def _point(cycles, usage, fits):
    return ex.Point(_config(4, 4), cycles, 0, 1, 0, 0, {}, fits, usage=usage)


def test_pareto_front_is_exactly_the_non_dominated_points():
    rng = np.random.default_rng(3)
    points = [_point(int(c), float(u), bool(f)) for c, u, f in
              zip(rng.integers(1, 50, 60), rng.uniform(0.1, 3, 60), rng.integers(0, 2, 60))]

    def dominated(p):
        return any(q.total_cycles <= p.total_cycles and q.usage <= p.usage
                   and (q.total_cycles, q.usage) != (p.total_cycles, p.usage) for q in points)

    front = ex.pareto(points)
    assert front and all(not dominated(p) for p in front)
    assert all(dominated(p) or any((q.total_cycles, q.usage) == (p.total_cycles, p.usage)
                                   for q in front) for p in points if p not in front)
    best = ex.recommend(points)
    assert best.fits
    assert all(best.total_cycles <= p.total_cycles for p in points if p.fits)
    assert ex.recommend([p for p in points if not p.fits]) is None


# -- resources -------------------------------------------------------------------------------

def test_block_ram_shapes():
    assert res.bram_blocks(512, 64, "ecp5") == 2     # 512 x 36 twice
    assert res.bram_blocks(1024, 16, "ecp5") == 1    # 1024 x 18
    assert res.bram_blocks(4096, 8, "ecp5") == 2     # 2048 x 9 twice
    assert res.bram_blocks(32, 256, "ecp5") == 0     # LUT RAM
    assert res.bram_blocks(512, 8, "ice40") == 1 and res.bram_blocks(512, 32, "ice40") == 4
    # a queue kept in block RAM however shallow: its entries across the widest blocks
    assert res.queue_brams(512, "ecp5") == 15 and res.queue_brams(64, "ecp5") == 2
    assert res.queue_brams(64, "ice40") == 4


def test_committed_model_matches_its_measurements():
    """The committed coefficients and leave-one-out error are what fitting the committed
    measurements gives, and the model reproduces the whole accelerators it was fitted to
    (DSPs within 2, block RAMs within 1 or 10%, LUTs within 5%, FFs within 20%)."""
    data = json.loads(res.data_path("ecp5").read_text())
    refit = res.fit("ecp5", data["measurements"])
    assert refit.coefficients == data["model"]["coefficients"]
    assert refit.units == data["model"]["units"]
    assert refit.constants == data["model"]["constants"]
    assert refit.error == data["model"]["error"]
    model = res.ResourceModel.load("ecp5-85k")
    whole = [m for m in data["measurements"] if m["top"] == "accelerator"]
    assert len(whole) == refit.error["luts"]["points"] >= 10
    assert {"dsp", "lut"} <= {m["multipliers"] for m in whole}
    for m in whole:
        predicted = model.of_measurement(m).predict(HardwareConfig.from_dict(m["params"]),
                                                    m["target"], m["multipliers"])
        assert predicted["multipliers"] == m["multipliers"]
        # the newest gateware has 2 more DSP blocks outside the array than the runs before
        assert abs(predicted["dsps"] - m["dsps"]) <= 2
        # the default 8x8 (at 996d273) has 7 block RAMs more than the model, whose unit
        # costs come from older runs of the units alone: 80, predicted 73
        assert abs(predicted["brams"] - m["brams"]) <= max(1, 0.1 * m["brams"])
        assert abs(predicted["luts"] - m["luts"]) <= 0.05 * m["luts"]
        assert abs(predicted["ffs"] - m["ffs"]) <= 0.2 * m["ffs"]


@pytest.mark.parametrize("counted, free", res.SHARED_UNITS)
def test_paired_functions_cost_one_unit(counted, free):
    """With both norm flags the accelerator has one norm unit (counted as LayerNorm's),
    with GELU and SiLU one activation unit (counted as SiLU's)."""
    model = res.ResourceModel.load("ecp5-85k")
    both = _config(8, 8, units=VECTOR_UNITS)
    alone = _config(8, 8, units=set(VECTOR_UNITS) - {free})
    assert model.predict(both, "ecp5-85k") == model.predict(alone, "ecp5-85k")
    assert model.unit(free, 4, both.vector.max_row)["dsps"] > 0
    assert res.unit_tops(both.vector).count(counted) == 1
    assert free not in res.unit_tops(both.vector)


def test_rescale_functions_cost_one_unit():
    """With the requantize and eltwise flags the accelerator has one rescale unit (the
    ``rescale`` top), with one of them that flag's unit."""
    both = _config(8, 8, units=VECTOR_UNITS)
    tops = res.unit_tops(both.vector)
    assert tops.count("rescale") == 1 and not set(res.RESCALE_FLAGS) & set(tops)
    for flag in res.RESCALE_FLAGS:
        alone = _config(8, 8, units=set(VECTOR_UNITS) - {flag})
        assert "rescale" not in res.unit_tops(alone.vector)
        assert [t for t in res.unit_tops(alone.vector) if t in res.RESCALE_FLAGS] == [
            f for f in res.RESCALE_FLAGS if f != flag]


def test_multiplier_mode_follows_the_synthesis_flow():
    """Too few DSP blocks: the PEs' 9x8 multipliers (the narrowest) go to LUTs first, as
    many as the blocks the rest leave free do not hold, and when the rest still do not fit,
    the model moves every multiplier. The oracle is the synthesis flow's own choice
    (``synth.lut_threshold``, then its ``spare`` blocks for the multipliers at that width)
    over the PEs' multipliers and one block per other multiplier, all wider than 9 bits."""
    model = res.ResourceModel.load("ecp5-25k")
    # on the 25k (28 DSP blocks): DSP, mixed, mixed, DSP, LUT, mixed; all DSP on the 85k
    configs = (_config(4, 4), _config(6, 6), _config(8, 8), _config(2, 2, units=("requantize",)),
               _config(4, 4, units=("requantize", "rowquant")), _config(5, 5, units=("gelu",)))
    modes = {t: [] for t in ("ecp5-25k", "ecp5-85k")}
    for config in configs:
        for target in ("ecp5-25k", "ecp5-85k"):
            pe = config.rows * config.cols
            cells = [("pe", 9, 8)] * pe + [("other", 16, 16)] * (model.dsp_demand(config) - pe)
            width = synth.lut_threshold(cells, synth.TARGETS[target].dsps_available)
            expected = {0: "dsp", 9: "mixed"}.get(width, "lut")
            predicted = model.predict(config, target)
            assert predicted["multipliers"] == expected, (config, target)
            modes[target].append(expected)
            lut = model.predict(config, target, "lut")
            assert lut["dsps"] == 0 and lut["luts"] > predicted["luts"] or expected == "lut"
            if expected == "mixed":
                available = synth.TARGETS[target].dsps_available
                spare = available - sum(synth._dsp_blocks(a, b) for _, a, b in cells
                                        if max(a, b) > width)
                lut_pe = pe - min(spare, pe)
                assert 0 < lut_pe < pe
                assert model.lut_multipliers(config, "mixed", target) == \
                    res.LutMultipliers(lut_pe)
                assert predicted["dsps"] == model.dsp_demand(config) - lut_pe == available
                assert model.predict(config, target, "dsp")["luts"] < predicted["luts"]
    assert modes == {"ecp5-25k": ["dsp", "mixed", "mixed", "dsp", "lut", "mixed"],
                     "ecp5-85k": ["dsp"] * 6}
    with pytest.raises(ValueError, match="multipliers must be"):
        model.predict(_config(4, 4), "ecp5-25k", multipliers="dsps")
    with pytest.raises(ValueError, match="target must be one of"):
        res.capacity("virtex7")


@pytest.mark.parametrize("rows, cols, units, target", [
    (6, 6, (), "ecp5-25k"),                    # 36 PEs + 3 others of 28 blocks
    (8, 8, VECTOR_UNITS, "ecp5-85k"),          # every unit: 64 PEs + 130 others of 156
])
def test_mixed_multipliers_fill_the_dsp_blocks(rows, cols, units, target):
    """Mixed: the DSP blocks the other multipliers leave free go to PEs, so the PE
    multipliers built from LUTs are exactly the demand beyond the target's blocks, every
    block is used, and the LUTs grow by the fitted cost of those PE multipliers only."""
    model = res.ResourceModel.load(target)
    config = _config(rows, cols, units=units)
    pe, available = rows * cols, synth.TARGETS[target].dsps_available
    excess = model.dsp_demand(config) - available
    assert 0 < excess < pe                     # the others fit, not every PE does
    predicted = model.predict(config, target)
    assert predicted["multipliers"] == "mixed"
    assert model.lut_multipliers(config, "mixed", target) == res.LutMultipliers(excess)
    assert predicted["dsps"] == available
    all_dsp = model.predict(config, target, "dsp")
    cost = model.coefficients["luts"]["lut_pe"] * excess
    assert abs(predicted["luts"] - all_dsp["luts"] - cost) <= 1
    assert all_dsp["dsps"] == predicted["dsps"] + excess


def test_mixed_measurements_count_as_recorded():
    """A mixed measurement is fitted with the PE multipliers it records in LUTs (the groups
    in a ``pe_`` path), which for the runs before the fill were all of them; without a
    record the fill rule applies."""
    model = res.ResourceModel.load("ecp5-25k")
    config = _config(6, 6)
    entry = {"multipliers": "mixed",
             "lut_multipliers": {"core.compute.array.pe_*_* (9x8)": 36, "core (4x1)": 1}}
    assert res.recorded_lut_pe(entry) == 36
    before = model.of_measurement(entry)
    assert before.lut_multipliers(config, "mixed", "ecp5-25k") == res.LutMultipliers(36)
    assert before.predict(config, "ecp5-25k", "mixed")["dsps"] == \
        model.dsp_demand(config) - 36
    fill = model.dsp_demand(config) - 28
    for unrecorded in ({"multipliers": "mixed"}, {"multipliers": "dsp"}):
        assert res.recorded_lut_pe(unrecorded) is None
        assert model.of_measurement(unrecorded).lut_multipliers(
            config, "mixed", "ecp5-25k") == res.LutMultipliers(fill)
    # The committed mixed runs were built by the fill: the rule is within one PE of what
    # each records (the 6x6 builds one more, its 4x1 multiplier outside the array, in LUTs).
    data = json.loads(res.data_path("ecp5").read_text())
    mixed = [m for m in data["measurements"] if m["multipliers"] == "mixed"]
    assert {m["target"] for m in mixed} == {"ecp5-25k", "ecp5-85k"}
    for m in mixed:
        rule = res.ResourceModel.load(m["target"]).lut_multipliers(
            HardwareConfig.from_dict(m["params"]), "mixed", m["target"])
        assert 0 < res.recorded_lut_pe(m) < m["params"]["rows"] * m["params"]["cols"]
        assert abs(rule.pe - res.recorded_lut_pe(m)) <= 1


# -- the command -----------------------------------------------------------------------------

def _sweep(shapes, vector):
    """A small sweep: array shapes whose compilation is quick (few tiles), weight-stationary,
    a 16-byte bus, every configuration compiled."""
    return ["--model", "minilm", "--seq", "7", "--shapes", shapes, "--dataflow", "ws",
            "--dma-bytes", "16", "--max-usage", "100", *sum((["--vector", v] for v in vector),
                                                           [])]


def _dominated(p, points):
    return any(q["total_cycles"] <= p["total_cycles"] and q["usage"] <= p["usage"]
               and (q["total_cycles"], q["usage"]) != (p["total_cycles"], p["usage"])
               for q in points)


def test_cli_json_contract_plot_and_recommendation_round_trip(tmp_path):
    saved, png = tmp_path / "rec.json", tmp_path / "explore.png"
    result = CliRunner().invoke(main, ["explore", *_sweep("12x12,16x16", ("none", "epilogue")),
                                       "--target", "ecp5-85k",
                                       "--json", "--save", str(saved), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"points", "recommended"}
    # 2 shapes x 2 memory sizes x (no units + epilogue units at 4 and 8 lanes)
    assert len(out["points"]) == 2 * 2 * 3
    cap = res.capacity("ecp5-85k")
    for p in out["points"]:
        config = HardwareConfig.from_dict(p["config"])
        assert (config.rows, config.cols, config.dma_bytes) in {(12, 12, 16), (16, 16, 16)}
        assert set(config.vector.units) in ({"requantize", "rowquant"}, set())
        r = p["resources"]
        assert p["fits"] == (r["luts"] <= 0.9 * cap["luts"] and r["ffs"] <= 0.9 * cap["ffs"]
                             and r["dsps"] <= cap["dsps"] and r["brams"] <= cap["brams"])
        assert p["usage"] == pytest.approx(max(r[k] / cap[k] for k in res.RESOURCES), abs=1e-4)
        assert p["utilization"] == pytest.approx(
            p["macs"] / (config.rows * config.cols * p["cycles"]), abs=1e-4)
        assert p["total_cycles"] == p["cycles"] + p["host_cycles"]
        assert p["bus_bytes"] > 0 and p["host_bytes"] > 0
        assert p["pareto"] == (not _dominated(p, out["points"]))
    fitting = [p for p in out["points"] if p["fits"]]
    assert fitting and len(fitting) < len(out["points"])
    best = min(fitting, key=lambda p: (p["total_cycles"], p["usage"]))
    assert out["recommended"] == best["config"]
    config = HardwareConfig.from_dict(json.loads(saved.read_text()))
    assert config == HardwareConfig.from_dict(out["recommended"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    verilog = tmp_path / "rec.v"
    gen = CliRunner().invoke(main, ["verilog", "--top", "accelerator", "--config", str(saved),
                                    "-o", str(verilog)])
    assert gen.exit_code == 0, gen.output
    modules = re.findall(r"^module \\?(\S+)", verilog.read_text(), re.MULTILINE)
    assert len([m for m in modules if re.search(r"\.array\.pe_\d+_\d+$", m)]) == \
        config.rows * config.cols
    units = {m.split(".unit_")[1].split(".")[0] for m in modules if ".unit_" in m}
    assert units == set(config.vector.units)


def test_cli_text_report_and_nothing_fits(tmp_path):
    """A 16x16 array needs more multipliers than an ECP5-25k has DSP blocks; built from
    LUTs they do not fit either."""
    text = CliRunner().invoke(main, ["explore", *_sweep("16x16", ("none",)),
                                     "--target", "ecp5-25k",
                                     "--save", str(tmp_path / "r.json")])
    assert text.exit_code == 0, text.output
    assert "No configuration fits ecp5-25k" in text.stdout
    assert "Predicted, not measured" in text.stdout and "leave-one-out" in text.stdout
    assert "16x16 WS" in text.stdout
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--model", "bert-huge"], "bert-huge"),
    (["--model", "minilm", "--target", "virtex7"], "virtex7"),
    (["--model", "minilm", "--seq", "0"], "seq must be a positive integer"),
    (["--model", "minilm", "--seq", "600"], "exceeds the model's 512 positions"),
    (["--model", "minilm", "--shapes", "8by8"], "shapes must look like"),
    (["--model", "minilm", "--shapes", "0x8"], "rows must be in"),
    (["--model", "minilm", "--phase", "decode"], "phase must be"),
])
def test_cli_rejects_bad_input(args, message):
    result = CliRunner().invoke(main, ["explore", *args])
    assert result.exit_code == 2
    assert message in result.output
