"""The ``systolic`` command line."""

import json
import time
from pathlib import Path

import click
import numpy as np


@click.group()
def main():
    """systolic: generate an int8 systolic-array accelerator and run Transformers on it."""


def hardware_config(config_file, profile="default", **overrides):
    """A HardwareConfig from a profile (:data:`~systolic.hw.config.PROFILES`), an optional
    JSON file on top (as written by ``systolic explore``) and command-line overrides; bad
    values become usage errors."""
    from systolic.hw.config import PROFILES, HardwareConfig

    try:
        values = dict(PROFILES[profile])
        values.update(json.loads(Path(config_file).read_text()) if config_file else {})
        values.update({key: value for key, value in overrides.items() if value is not None})
        return HardwareConfig.from_dict(values)
    except (ValueError, TypeError, OSError) as error:
        raise click.UsageError(str(error)) from error


def block_params(top, config_file, profile, rows, cols, dataflow, **block_fields):
    """Generator parameters of block ``top``: for the whole accelerator its configuration
    (:func:`hardware_config`), for a block its own fields that were given."""
    if top == "accelerator":
        return hardware_config(config_file, profile, rows=rows, cols=cols,
                               dataflow=dataflow).to_dict()
    if config_file or profile != "default":
        raise click.UsageError("--config and --profile describe a whole accelerator: use them "
                               "with --top accelerator")
    fields = {"rows": rows, "cols": cols, "dataflow": dataflow, **block_fields}
    return {name: value for name, value in fields.items() if value is not None}


def profile_option(command):
    """``--profile NAME``: the configuration the other options start from."""
    from systolic.hw.config import PROFILES

    return click.option("--profile", type=click.Choice(list(PROFILES)), default="default",
                        show_default=True,
                        help="Configuration to start from (tiny: the smallest, which fits "
                        "an iCE40 UP5K); --config and the other options apply on top.")(command)


def config_options(command):
    """``--config FILE`` and per-field overrides of the hardware configuration."""
    options = [
        click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
                     help="HardwareConfig JSON file (e.g. from `systolic explore`)."),
        click.option("--rows", type=int, help="Array rows (1..64)."),
        click.option("--cols", type=int, help="Array columns (1..64)."),
        click.option("--dataflow", type=click.Choice(["ws", "os"]), help="Array dataflow."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@click.option("--top", default="array", show_default=True, help="Block to generate.")
@profile_option
@config_options
@click.option("--lanes", type=int, help="Vector unit lanes (1..64).")
@click.option("--max-row", type=int, help="Row buffer length of a row vector unit "
              "(softmax, layernorm, rmsnorm, norm, rowquant).")
@click.option("--dsp", type=click.Choice(["generic", "ecp5"]), default="generic",
              show_default=True, help="ecp5: every multiplier a MULT18X18D with its registers "
              "inside (as `systolic synth` builds it; Yosys does not move registers into ECP5 "
              "DSP blocks); generic: registers around a `*`, for any tool and simulator.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Verilog file to write (default: build/<top>.v).")
def verilog(top, profile, config_file, rows, cols, dataflow, lanes, max_row, dsp, output):
    """Write plain Verilog-2005 of a generated block."""
    from systolic.hw.dsp import SynthesisPlatform
    from systolic.hw.verilog import generate_verilog

    params = block_params(top, config_file, profile, rows, cols, dataflow, lanes=lanes,
                          max_row=max_row)
    try:
        text = generate_verilog(top, SynthesisPlatform(dsp) if dsp != "generic" else None,
                                **params)
    except (ValueError, TypeError) as error:
        raise click.UsageError(str(error)) from error
    output = output or Path("build") / f"{top}.v"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    click.echo(f"wrote {output} ({len(text.splitlines())} lines)")


@main.command()
@click.option("--target", type=click.Choice(["ecp5-85k", "ecp5-25k", "ice40-up5k"]),
              required=True)
@click.option("--top", default="accelerator", show_default=True,
              help="Block to synthesize (any `systolic verilog` top).")
@profile_option
@config_options
@click.option("--seed", type=int, default=1, show_default=True, help="nextpnr seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def synth(target, top, profile, config_file, rows, cols, dataflow, seed, as_json):
    """Synthesize and place-and-route a generated block (default: the whole accelerator)
    with yosys and nextpnr from PyPI: LUTs, flip-flops, DSPs, block RAMs and the maximum
    clock frequency."""
    from systolic.hw.verilog import build_top
    from systolic.sw.synth import SynthesisError, synthesize

    params = block_params(top, config_file, profile, rows, cols, dataflow)
    try:
        result = {**synthesize(build_top(top, **params), target, seed=seed), "top": top,
                  "params": params}
    except (ValueError, TypeError) as error:
        raise click.UsageError(str(error)) from error
    except SynthesisError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(json.dumps(result))
        return
    # (No Fmax when the design does not fit the device, or when it was not placed.)
    if result["fmax_mhz"] is not None:
        fmax = f"Fmax {result['fmax_mhz']:.1f} MHz"
    elif not result.get("fits", True):
        fmax = f"does not fit: {', '.join(result['overused'])}"
    else:
        fmax = "Fmax not measured"
    click.echo(f"{target} {top} {params}:  "
               f"LUTs {result['luts']}  FFs {result['ffs']}  DSPs {result['dsps']}  "
               f"BRAMs {result['brams']}  "
               + (f"logic cells {result['logic_cells']}  " if "logic_cells" in result else "")
               + f"{fmax}  "
               f"(multipliers in {result['multipliers'].upper()}"
               f"{', cached' if result['cached'] else ''})")


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs"),
              show_default=True)
def docs(out):
    """Regenerate the ISA and register-map references from the hardware definitions."""
    from systolic.hw.csr import registers_markdown
    from systolic.hw.isa import isa_markdown

    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("isa.md", isa_markdown()), ("registers.md", registers_markdown())):
        (out / name).write_text(text)
        click.echo(f"wrote {out / name}")


@main.command()
@click.option("--rows", type=int, default=4, show_default=True)
@click.option("--cols", type=int, default=4, show_default=True)
@click.option("--dataflow", type=click.Choice(["ws", "os"]), default="ws", show_default=True)
@click.option("-m", type=int, default=16, show_default=True, help="Rows of A.")
@click.option("-k", type=int, default=33, show_default=True, help="Columns of A / rows of B.")
@click.option("-n", type=int, default=9, show_default=True, help="Columns of B.")
@click.option("--backend", type=click.Choice(["amaranth", "icarus", "verilator"]),
              default="amaranth",
              show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def demo(rows, cols, dataflow, m, k, n, backend, seed, as_json):
    """Generate the array's Verilog and run a random int8 matmul on the simulated array,
    checked bit for bit against NumPy."""
    from systolic.hw.config import check_array_params
    from systolic.hw.verilog import generate_verilog
    from systolic.sw.array_schedule import schedule_matmul
    from systolic.sw.numerics import matmul_int8

    try:
        check_array_params(rows, cols, dataflow)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    verilog_path = Path("build") / f"array_{rows}x{cols}_{dataflow}.v"
    verilog_path.parent.mkdir(parents=True, exist_ok=True)
    verilog_path.write_text(generate_verilog("array", rows=rows, cols=cols, dataflow=dataflow))

    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    schedule = schedule_matmul(a, b, rows, cols, dataflow)
    start = time.perf_counter()
    if backend == "amaranth":
        from systolic.sim.amaranth_sim import simulate_array
        run = simulate_array(schedule)
    else:
        from systolic.sim.cocotb.runner import run_testbench
        [run] = run_testbench("array", dict(rows=rows, cols=cols, dataflow=dataflow),
                              "systolic.sim.cocotb.tb_array", [(schedule, {})],
                              simulator=backend)
    wall = time.perf_counter() - start
    result = schedule.assemble(run.beats)
    exact = bool(np.array_equal(result, matmul_int8(a, b)))
    stats = {
        "rows": rows, "cols": cols, "dataflow": dataflow, "m": m, "k": k, "n": n,
        "backend": backend, "verilog": str(verilog_path), "bit_exact": exact,
        "cycles": run.cycles, "useful_macs": schedule.useful_macs,
        "utilization": schedule.useful_macs / (rows * cols * run.cycles),
        "wall_s": round(wall, 3), "cycles_per_s": round(run.cycles / run.sim_seconds, 1),
    }
    if as_json:
        click.echo(json.dumps(stats))
    else:
        click.echo(f"wrote {verilog_path}")
        click.echo(f"{m}x{k} @ {k}x{n} on a {rows}x{cols} {dataflow.upper()} array ({backend}): "
                   f"{'bit-exact with NumPy' if exact else 'MISMATCH with NumPy'}")
        click.echo(f"{run.cycles} cycles, utilization {stats['utilization']:.1%}, "
                   f"{stats['cycles_per_s']:.0f} simulated cycles/s")
    if not exact:
        raise SystemExit(1)


# -- running models --------------------------------------------------------------------------

#: Default array size of run/generate: a 16x16 accelerator with vector units is Verilated
#: in minutes (32x32 would take about four times as long) and embeds two short sentences with
#: MiniLM in about 3 M cycles.
MODEL_ARRAY = 16


def model_options(command):
    """Options shared by ``run`` and ``generate``: model, backend, hardware, JSON output."""
    from systolic.sw.driver import backend_choices

    options = [
        click.option("--model", "model_name", required=True,
                     help="Known model name (minilm, smollm2) or a checkpoint path."),
        click.option("--backend", type=click.Choice(backend_choices()),
                     help="Where the model runs (default: the fastest RTL backend here, "
                     "verilator, else amaranth; functional: instruction-level simulator; "
                     "golden: integer NumPy model, no instructions)."),
        click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
                     help="HardwareConfig JSON file (default: the model configuration)."),
        click.option("--rows", type=int, help=f"Array rows (default {MODEL_ARRAY})."),
        click.option("--cols", type=int, help=f"Array columns (default {MODEL_ARRAY})."),
        click.option("--dataflow", type=click.Choice(["ws", "os"]), help="Array dataflow."),
        click.option("--vector-units/--no-vector-units", default=True, show_default=True,
                     help="Vector units in the default configuration (without them every "
                     "vector operation runs on the host, e.g. on RTL without a vector "
                     "engine)."),
        click.option("--plot-timeline", "timeline_png", type=click.Path(dir_okay=False),
                     help="verilator: sample the counters every 1000 cycles and plot array "
                     "and bus utilization and stalls over time to this PNG."),
        click.option("--vcd", type=click.Path(dir_okay=False),
                     help="verilator: dump every cycle to this VCD file (a traced build; "
                     "large for long runs)."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


#: Cycles between counter samples for --plot-timeline.
TIMELINE_SAMPLE_CYCLES = 1000


def load_runner(model_name, backend, config_file, rows, cols, dataflow, vector_units,
                timeline_png=None, vcd=None):
    """The accelerator and model runner for the command-line options."""
    from systolic.sim.backends import default_backend
    from systolic.sw.driver import Accelerator, model_config
    from systolic.sw.models import ModelError

    if backend is None:
        backend = default_backend()
        note = ("the fastest RTL simulator on this machine" if backend == "verilator" else
                "Verilator needs g++ and make: Amaranth's simulator is about 1000x slower")
        click.echo(f"backend: {backend} ({note})", err=True)
    if config_file:
        config = hardware_config(config_file, rows=rows, cols=cols, dataflow=dataflow)
    else:
        try:
            config = model_config(rows or MODEL_ARRAY, cols or MODEL_ARRAY, dataflow or "ws",
                                  vector_units)
        except ValueError as error:
            raise click.UsageError(str(error)) from error
    sampling = TIMELINE_SAMPLE_CYCLES if timeline_png else None
    try:
        acc = Accelerator(config, backend, sample_every=sampling, vcd=vcd)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    try:
        return acc, acc.load_model(model_name)
    except (ModelError, ValueError, TypeError) as error:
        raise click.ClickException(str(error)) from error


def _failure(error):
    """A ClickException for a failed run, with a hint for hardware without vector units."""
    from systolic.hw.csr import ErrorCode

    message = str(error)
    if getattr(error, "code", None) == ErrorCode.ILLEGAL_INSTRUCTION:
        message += " (if this backend's hardware has no vector engine, use --no-vector-units)"
    return click.ClickException(message)


def _plot_timeline(stats, config, path):
    """The --plot-timeline PNG, if asked for (a note on stderr says where)."""
    if path:
        from systolic.sw.timeline import plot_timeline

        plot_timeline(stats.timeline, config, path)
        click.echo(f"wrote {path}", err=True)


def _summary(stats):
    """One line about a run's cost."""
    counted = "uncounted" if stats.instructions is None else stats.instructions  # (no counters)
    parts = [f"{stats.backend}: {counted} instructions",
             f"{stats.useful_macs / 1e6:.1f} M useful MACs"]
    if stats.cycles is not None:
        parts.append(f"{stats.cycles} cycles, utilization {stats.utilization:.1%}")
    if stats.predicted_cycles:
        parts.append(f"predicted {stats.predicted_cycles} cycles "
                     f"({stats.predicted_utilization:.1%})")
    if stats.host:
        parts.append("host: " + ", ".join(f"{kind} x{entry['steps']} ({entry['bytes']} B)"
                                          for kind, entry in stats.host.items()))
    parts.append(f"{stats.wall_s:.1f} s")
    return "; ".join(parts)


@main.command()
@model_options
@click.option("--text", "texts", multiple=True, required=True,
              help="A sentence to embed (repeat for several).")
def run(model_name, backend, config_file, rows, cols, dataflow, vector_units, timeline_png,
        vcd, as_json, texts):
    """Sentence embeddings of an encoder (MiniLM) on the accelerator, with their cosine
    similarities."""
    from systolic.sw.driver import AcceleratorError
    from systolic.sw.runtime import EncoderRunner

    acc, runner = load_runner(model_name, backend, config_file, rows, cols, dataflow,
                              vector_units, timeline_png, vcd)
    if not isinstance(runner, EncoderRunner):
        raise click.UsageError(f"{model_name} is a decoder: use `systolic generate`")
    try:
        embeddings = runner.embed(list(texts), progress=True)
    except (ValueError, TypeError, AcceleratorError) as error:
        raise _failure(error) from error
    stats = acc.last_run
    _plot_timeline(stats, acc.config, timeline_png)
    if as_json:
        click.echo(json.dumps({"embeddings": embeddings.tolist(), "stats": stats.to_dict()}))
        return
    for index, (text, vector) in enumerate(zip(texts, embeddings)):
        head = ", ".join(f"{v:+.4f}" for v in vector[:6])
        click.echo(f"[{index}] {text!r}: [{head}, ...] ({len(vector)} values)")
    cosine = embeddings @ embeddings.T
    click.echo("cosine similarities:")
    for index, row in enumerate(cosine):
        click.echo(f"[{index}] " + " ".join(f"{v:+.4f}" for v in row))
    click.echo(_summary(stats))


@main.command()
@model_options
@click.option("--prompt", "prompts", multiple=True, required=True,
              help="A prompt to continue (repeat for several).")
@click.option("--tokens", "n_tokens", type=click.IntRange(min=0), default=8,
              show_default=True, help="Tokens to generate per prompt (greedy).")
def generate(model_name, backend, config_file, rows, cols, dataflow, vector_units,
             timeline_png, vcd, as_json, prompts, n_tokens):
    """Greedy generation with a decoder (SmolLM2) on the accelerator."""
    from systolic.sw.driver import AcceleratorError, RunStats
    from systolic.sw.runtime import DecoderRunner

    acc, runner = load_runner(model_name, backend, config_file, rows, cols, dataflow,
                              vector_units, timeline_png, vcd)
    if not isinstance(runner, DecoderRunner):
        raise click.UsageError(f"{model_name} is an encoder: use `systolic run`")
    results, runs = [], []
    try:
        for prompt in prompts:  # every prompt is checked before anything runs
            runner.prompt_ids(prompt, n_tokens)
        for prompt in prompts:
            tokens = runner.generate(prompt, n_tokens, progress=True)
            results.append({"prompt": prompt, "tokens": tokens,
                            "text": runner.model.decode(tokens)})
            runs.append(acc.last_run)
    except (ValueError, TypeError, AcceleratorError) as error:
        raise _failure(error) from error
    stats = RunStats.combine(runs, acc.config)
    _plot_timeline(stats, acc.config, timeline_png)
    if as_json:
        click.echo(json.dumps({"prompts": results, "stats": stats.to_dict()}))
        return
    for result in results:
        click.echo(f"{result['prompt']!r} -> {result['text']!r} {result['tokens']}")
    click.echo(_summary(stats))


@main.command()
@click.option("--model", "model_name", required=True,
              help="minilm, smollm2, or a checkpoint path.")
@click.option("--seq", type=int, default=128, show_default=True,
              help="Tokens (encoder / prefill) or tokens already cached (decode).")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
def analyze(model_name, seq, as_json):
    """Per-operation MACs, bytes moved and arithmetic intensity of a model, and where the
    work goes (attention vs FFN, prefill vs decode)."""
    from systolic.sw.analysis import summarize, workload
    from systolic.sw.models import DecoderModel, ModelError, load_model

    try:
        model = load_model(model_name)
    except ModelError as error:
        raise click.UsageError(str(error)) from error
    phases = ("prefill", "decode") if isinstance(model, DecoderModel) else ("prefill",)
    try:
        report = {phase: workload(model, seq, phase) for phase in phases}
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    if as_json:
        click.echo(json.dumps({phase: {"operations": [op.as_dict() for op in ops],
                                       **summarize(ops)} for phase, ops in report.items()}))
        return
    for phase, ops in report.items():
        summary = summarize(ops)
        click.echo(f"\n{model_name} {phase} (seq {seq}): {summary['macs'] / 1e6:.1f} M MACs, "
                   f"{summary['bytes'] / 1e6:.2f} MB moved, "
                   f"{summary['intensity']:.1f} MACs/byte")
        click.echo(f"  {'operation':<24} {'count':>6} {'shape / elements':>22} "
                   f"{'MMACs':>9} {'MB':>8} {'MAC/B':>7}")
        for op in ops:
            shape = f"{op.m}x{op.k}x{op.n}" if op.kind == "matmul" else f"{op.elements}"
            click.echo(f"  {op.name:<24} {op.count:>6} {shape:>22} {op.macs / 1e6:>9.2f} "
                       f"{op.bytes / 1e6:>8.3f} {op.intensity:>7.1f}")
        shares = ", ".join(f"{group} {g['macs_share']:.0%} of MACs / {g['bytes_share']:.0%} "
                           f"of bytes" for group, g in summary["groups"].items())
        click.echo(f"  where it goes: {shares}")


def target_option(command):
    """``--target``: the FPGAs whose family has a fitted resource model."""
    from systolic.sw.resources import modelled_targets

    return click.option("--target", type=click.Choice(modelled_targets()), default="ecp5-85k",
                        show_default=True, help="FPGA the configuration must fit.")(command)


@main.command()
@click.option("--model", "model_name", required=True,
              help="minilm, smollm2, or a checkpoint path.")
@target_option
@click.option("--seq", type=int, default=32, show_default=True,
              help="Tokens per inference (encoder / prefill) or tokens already cached "
              "(decode: cycles per generated token).")
@click.option("--phase", type=click.Choice(["prefill", "decode"]),
              help="Decoders: decode (default, per token) or prefill.")
@click.option("--shapes", help="Array shapes to sweep, e.g. 4x4,8x8,8x16 (default: squares "
              "4..32 and 1:2 rectangles).")
@click.option("--dataflow", "dataflows", type=click.Choice(["ws", "os"]), multiple=True,
              help="Dataflows to sweep (repeat; default both).")
@click.option("--dma-bytes", "dma_bytes", type=int, multiple=True,
              help="Bus widths to sweep (repeat; default 8, 16, 32).")
@click.option("--vector", "vector", type=click.Choice(["none", "epilogue", "all"]),
              multiple=True, help="Vector unit sets to sweep (repeat; default all three).")
@click.option("--host-cycles-per-byte", type=click.FloatRange(min=0), default=2.0,
              show_default=True, help="Assumed host cost of operations without a vector "
              "unit, in accelerator cycles per byte it reads or writes.")
@click.option("--max-usage", type=float, default=1.5, show_default=True,
              help="Do not compile configurations predicted to need more than this multiple "
              "of a resource of the target.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the Pareto and roofline plots to this PNG.")
@click.option("--save", "save_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the recommended HardwareConfig JSON (default: "
              "build/explore/<model>-<target>.json; use it with `systolic verilog --top "
              "accelerator --config FILE`).")
@click.option("--json", "as_json", is_flag=True, help="Print the points and the "
              "recommendation as JSON.")
def explore(model_name, target, seq, phase, shapes, dataflows, dma_bytes, vector,
            host_cycles_per_byte, max_usage, plot_path, save_path, as_json):
    """Sweep hardware configurations for a model: predicted cycles, utilization, bus
    traffic and FPGA resources per point, the Pareto front, and the fastest configuration
    that fits the target."""
    from systolic.sw import explore as ex
    from systolic.sw.models import ModelError
    from systolic.sw.synth import TARGETS

    try:
        workload = ex.load_workload(model_name, seq, phase)
        sweep = {"shapes": ex.parse_shapes(shapes) if shapes else ex.DEFAULT_SHAPES,
                 "dataflows": dataflows or ("ws", "os"),
                 "dma_bytes": dma_bytes or ex.DEFAULT_DMA_BYTES,
                 "vector": vector or ("none", "epilogue", "all")}
        configs = ex.sweep(workload, **sweep)
        result = ex.explore(workload, target, configs, host_cycles_per_byte, max_usage,
                            progress=True)
    except (ModelError, ValueError, TypeError) as error:
        raise click.UsageError(str(error)) from error
    best = result.recommended
    if best is not None:
        stem = Path(model_name).stem if Path(model_name).exists() else model_name
        save_path = save_path or Path("build") / "explore" / f"{stem}-{target}.json"
        save_path.parent.mkdir(parents=True, exist_ok=True)
        save_path.write_text(json.dumps(best.config.to_dict(), indent=1) + "\n")
    freq = TARGETS[target].freq_mhz
    if plot_path:
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        ex.plot(plot_path, result, freq)
    if as_json:
        front = {id(p) for p in result.front}
        click.echo(json.dumps({"points": [p.as_dict(id(p) in front) for p in result.points],
                               "recommended": best.config.to_dict() if best else None}))
        return
    click.echo(ex.report(result, freq))
    if best is not None:
        click.echo(f"  wrote {save_path}: systolic verilog --top accelerator --config "
                   f"{save_path}")
    if plot_path:
        click.echo(f"wrote {plot_path}")
