"""`mlops bench ...`: the benchmarks of `benchmarks`, their figures printed and saved.

Each command runs one module of the `benchmarks` package on a home of its own (or the one
given) and prints what docs/benchmarks.md records; `--json` ends with the figures.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import CaseStudy, fail, machine_line, prepare
from cli.score import ScoringEngine
from mlops.settings import Settings

bench_app = typer.Typer(
    help="Benchmarks: the figures docs/benchmarks.md records.", no_args_is_help=True
)


@bench_app.command("monitoring")
def bench_monitoring(
    rows: Annotated[int, typer.Option(min=1000, help="Rows of the reference and the window.")] = (
        100_000
    ),
    # The synthetic score reads features 0, 2 and 4: fewer than five was an IndexError.
    features: Annotated[int, typer.Option(min=5, help="Feature columns.")] = 30,
    compare_unsampled: Annotated[
        bool, typer.Option(help="Also time the drift on every row, and compare the verdicts.")
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line of the figures.")
    ] = False,
) -> None:
    """A monitoring check of ROWS served rows x FEATURES against a ROWS-row reference."""

    prepare()
    from benchmarks.monitoring import bench_monitoring as run_benchmark

    typer.secho(f"benchmark: monitoring check, {rows:,} rows x {features} features", bold=True)
    figures = run_benchmark(rows, features, compare_unsampled)
    typer.echo(
        f"  check             {figures['check_s']:.2f} s (drift on "
        f"{figures['drift_sample_rows']:,} sampled rows a side, data quality on all)"
    )
    typer.echo(f"  record            {figures['record_s']:.2f} s (workspace, HTML, latest)")
    typer.echo(
        f"  drifted           {len(figures['drifted_features'])} of {features} features "
        f"(shifted {len(figures['shifted_features'])}), score drift "
        f"{figures['prediction_drift_score']}"
    )
    if compare_unsampled:
        typer.echo(
            f"  unsampled drift   {figures['check_unsampled_s']:.2f} s, same verdicts: "
            f"{figures['same_verdicts_as_unsampled']}, largest score gap "
            f"{figures['largest_score_gap_vs_unsampled']}"
        )
        typer.echo(
            f"  DataDriftPreset   {figures['preset_unsampled_s']:.2f} s (drift alone, every row)"
        )
    typer.echo(f"  peak memory       {figures['peak_rss_mb']} MB")
    typer.echo(machine_line(figures, 17))
    if as_json:
        typer.echo(json.dumps(figures, sort_keys=True, default=str))


@bench_app.command("pipeline")
def bench_pipeline(
    case_study: Annotated[CaseStudy, typer.Argument(help="Which case study's flow.")],
    home: Annotated[
        Path | None, typer.Option(help="MLOPS_HOME for the run (default: a new temporary one).")
    ] = None,
    scale: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Fraud only: N times the default data, features and training on the Dask "
            "cluster of the settings (MLOPS_DASK_*), peak memory per worker.",
        ),
    ] = None,
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process", help="With --scale: the same stages in this process, to compare."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line of the figures.")
    ] = False,
) -> None:
    """Run a flow at its default size from an empty MLOPS_HOME: wall time and peak memory."""
    import tempfile

    from benchmarks.pipeline import bench_pipeline as run_benchmark

    if scale is not None and case_study.value != "fraud":
        fail("--scale is for the fraud case study")
    home = home or Path(tempfile.mkdtemp(prefix=f"mlops-bench-{case_study.value}-"))
    os.environ["MLOPS_HOME"] = str(home)
    settings = prepare()
    if scale is not None:
        _bench_scaled(scale, settings, in_process, as_json)
        return
    figures = run_benchmark(case_study.value, home)
    if as_json:
        typer.echo(json.dumps(figures, sort_keys=True, default=str))
        return
    metrics = figures["test_metrics"]
    typer.echo("")
    typer.secho(f"benchmark: {figures['benchmark']} at the default size", bold=True)
    typer.echo(f"  wall time         {figures['wall_s']:.1f} s")
    typer.echo(f"  peak memory       {figures['peak_rss_mb']} MB (flow process)")
    typer.echo(f"  rows              {figures['rows']['rows_valid']} valid")
    typer.echo(f"  winner            {figures['winner']}")
    typer.echo("  test metrics      " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    typer.echo(f"  machine           {figures['machine']}")


def _bench_scaled(scale: int, settings: Settings, in_process: bool, as_json: bool) -> None:
    from benchmarks.scaled import bench_fraud_scaled, bench_fraud_scaled_in_process

    where = "in this process" if in_process else "on Dask"
    typer.secho(f"benchmark: fraud features and training at {scale}x {where}", bold=True)
    run = bench_fraud_scaled_in_process if in_process else bench_fraud_scaled
    figures = run(scale, settings, log=typer.echo)
    if as_json:
        typer.echo(json.dumps(figures, sort_keys=True, default=str))
        return
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in figures["stage_seconds"].items())
    typer.echo(f"  transactions      {figures['transactions']:,}")
    typer.echo(f"  wall time         {figures['wall_s']:.0f} s ({stages})")
    if in_process:
        typer.echo(f"  peak memory       {figures['peak_rss_mb']} MB (this process)")
    else:
        typer.echo(f"  peak memory       {figures['worker_peak_rss_mb']} MB per worker")
        typer.echo(f"  client process    {figures['client_peak_rss_mb']} MB")
    metrics = figures["test_metrics"]
    typer.echo("  test metrics      " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    typer.echo(f"  machine           {figures['machine']}, load {figures['load_average_at_start']}")


@bench_app.command("serving")
def bench_serving(
    home: Annotated[
        Path | None,
        typer.Option(help="MLOPS_HOME with a churn champion (default: run the churn flow first)."),
    ] = None,
    seconds: Annotated[
        float, typer.Option(min=1, help="Seconds of load per server and concurrency.")
    ] = 10,
    mlserver: Annotated[
        bool,
        typer.Option(
            help="Race Seldon MLServer in the V2 section (its environment is made once, "
            "under ~/.cache/mlops/bench)."
        ),
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line of the figures.")
    ] = False,
) -> None:
    """Our API vs `mlflow models serve`, a naive endpoint and MLServer (V2), with wrk.

    All on loopback, in one run: the entity routes against `mlflow models serve` and a
    naive FastAPI endpoint, then the Open Inference Protocol against Seldon MLServer.
    """

    from benchmarks.serving import BenchmarkError, require_wrk
    from benchmarks.serving import bench_serving as run_benchmark

    try:
        require_wrk()  # before the churn flow runs for minutes
    except BenchmarkError as error:
        fail(str(error))
    settings = _bench_settings(home, "serving", ["pipeline", "churn"], "the churn flow")
    home = settings.home
    typer.secho(f"benchmark: serving churn from {home}, {seconds:g} s per level", bold=True)
    try:
        figures = run_benchmark(settings, seconds, log=typer.echo, mlserver=mlserver)
    except BenchmarkError as error:
        fail(str(error), code=1)
    _report_serving(figures)
    settings.serving_bench_file.parent.mkdir(parents=True, exist_ok=True)
    settings.serving_bench_file.write_text(json.dumps(figures, sort_keys=True, default=str) + "\n")
    typer.echo(f"figures saved to {settings.serving_bench_file} (`mlops report` shows them)")
    if as_json:
        typer.echo(json.dumps(figures, sort_keys=True, default=str))


@bench_app.command("stream")
def bench_stream(
    home: Annotated[
        Path | None,
        typer.Option(
            help="MLOPS_HOME with a fraud champion and its simulated history (default: run "
            "the fraud flow at the stack's size first)."
        ),
    ] = None,
    rate: Annotated[float, typer.Option(min=1, help="Payments published per second.")] = 2000,
    seconds: Annotated[float, typer.Option(min=1, help="Seconds of steady publishing.")] = 10,
    batch: Annotated[
        int, typer.Option(min=1, help="Most payments the scorer decides at once.")
    ] = 256,
    history: Annotated[
        Path | None,
        typer.Option(help="The transactions file the fraud flow ran on (default: the home's)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line of the figures.")
    ] = False,
) -> None:
    """The stream scorer (`mlops stream fraud`): payments/s and event-to-decision latency.

    Payments continue the home's simulated world on stream keys of their own; first at a
    steady RATE for SECONDS, then as a backlog decided as fast as the scorer can; last,
    the CPU of the scorer's thread per payment, step by step (a scorer in this process).
    """
    from benchmarks.stream import StreamBenchmarkError
    from benchmarks.stream import bench_stream as run_benchmark
    from mlops.case_studies import FRAUD

    settings = _bench_settings(
        home, "stream", ["pipeline", "fraud", *FRAUD.bootstrap_options], "the fraud flow"
    )
    typer.secho(f"benchmark: stream scorer on {settings.home}", bold=True)
    try:
        figures = run_benchmark(
            settings, rate=rate, seconds=seconds, batch=batch, history_file=history, log=typer.echo
        )
    except StreamBenchmarkError as error:
        fail(str(error), code=1)
    for name in ("sustained", "backlog"):
        r = figures[name]
        typer.echo(
            f"  {name:<10} {r['decided']:>7,} decided in {r['elapsed_s']:.2f} s: "
            f"{r['decided_per_s']:>8,.0f}/s, event to decision p50 {r['p50_ms']:.0f} ms, "
            f"p99 {r['p99_ms']:.0f} ms"
        )
    cpu = figures["cpu"]
    steps = ", ".join(f"{k} {v:.0f}" for k, v in cpu["thread_cpu_us_by_step"].items())
    typer.echo(
        f"  cpu        {cpu['thread_cpu_us_per_payment']:.0f} µs of the scorer thread a payment "
        f"({steps}); the process's {cpu['process_cpu_us_per_payment']:.0f} µs"
    )
    typer.echo(machine_line(figures, 10))
    if as_json:
        typer.echo(json.dumps(figures, sort_keys=True, default=str))


@bench_app.command("batch")
def bench_batch(
    home: Annotated[
        Path | None,
        typer.Option(help="MLOPS_HOME with churn and fraud champions (default: run `mlops demo`)."),
    ] = None,
    churn_rows: Annotated[int, typer.Option(min=1000, help="Customers to simulate.")] = 200_000,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line of the figures.")
    ] = False,
) -> None:
    """Batch scoring: each engine alone on 1M rows, then scoring the fraud and churn files."""

    from benchmarks.batch import bench_batch as run_benchmark

    settings = _bench_settings(home, "batch", ["demo", "--no-serve"], "both case studies")
    home = settings.home
    typer.secho(f"benchmark: batch scoring with the champions of {home}", bold=True)
    figures = run_benchmark(settings, churn_rows, log=typer.echo)
    for engine in (ScoringEngine.onnx, ScoringEngine.native):
        for label, key in (("all cores", "all_cores"), ("one thread", "one_thread")):
            rate = figures[f"{engine}_rows_per_s_{key}"]
            typer.echo(f"  {engine + ' alone, ' + label:<26} {rate:,.0f} rows/s")
    typer.echo(f"  |native - onnx| probability {figures['native_onnx_max_abs_diff']:.1e}")
    for name in ("fraud_file", "churn_file"):
        run = figures[name]
        stages = ", ".join(f"{k} {v:.2f}" for k, v in run["stage_seconds"].items())
        typer.echo(
            f"  score_{name:<19} {run['rows_scored']:,} rows in {run['seconds']:.1f} s, "
            f"{run['rows_per_second']:,.0f} rows/s with {run['engine']} ({stages} s)"
        )
    typer.echo(machine_line(figures, 26))
    if as_json:
        typer.echo(json.dumps(figures, sort_keys=True, default=str))


def _bench_settings(home: Path | None, name: str, flow: list[str], what: str) -> Settings:
    """Settings on `home`; without one, run `mlops <flow>` into a new temporary home first,
    in its own process, so its Prefect server is gone before the measurements."""
    import subprocess
    import sys
    import tempfile

    if home is None:
        home = Path(tempfile.mkdtemp(prefix=f"mlops-bench-{name}-"))
        typer.echo(f"no --home: running {what} into {home}")
        command = [sys.executable, "-m", "cli", *flow, "--json"]
        env = {**os.environ, "MLOPS_HOME": str(home)}
        if subprocess.run(command, env=env, check=False, stdout=subprocess.DEVNULL).returncode:
            fail(f"{what} failed", code=1)
    os.environ["MLOPS_HOME"] = str(home)
    return prepare()


def _report_serving(figures: dict[str, Any]) -> None:
    typer.echo("")
    typer.secho(f"serving {figures['model']}", bold=True)
    typer.echo(f"  {'server':<8} {'c':>3} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for name, result in figures["servers"].items():
        for level in ("c1", "c16"):
            r = result[level]
            typer.echo(
                f"  {name:<8} {level[1:]:>3} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                f"{r['rps']:>8,.0f}"
            )
    ratios = figures["ratios"]
    for other in (n for n in figures["servers"] if n != "ours"):
        typer.echo(
            f"  ours / {other:<7} req/s at c=16 {ratios[f'rps_c16_ours_over_{other}']:.2f}x, "
            f"p50 at c=1 {ratios[f'p50_c1_ours_over_{other}']:.3f}x"
        )
    ours = figures["servers"]["ours"]
    both = figures["ours_both_models"]
    typer.echo(
        f"  our RSS, benchmarked       {ours['rss_mb_after_load']} MB after the load "
        f"(models loaded: {', '.join(ours['models_loaded'])})"
    )
    typer.echo(
        "  our RSS, churn + fraud     "
        + (f"{both['rss_mb_after_load']} MB" if isinstance(both, dict) else both)
    )
    mapped = ours["native_libraries_mapped"]
    imported = [name for name, present in figures["serving_imports"].items() if present]
    typer.echo(f"  training libraries mapped  {', '.join(mapped) or 'none'} (/proc/<pid>/maps)")
    typer.echo(f"  training libraries imported {', '.join(imported) or 'none'} (sys.modules)")
    typer.echo(f"  |ours - naive| probability {figures['probability_gap_ours_naive']:.1e}")
    _report_fraud(figures.get("fraud"))
    for model, section in figures["v2"].items():
        _report_v2(model, section)
    typer.echo(machine_line(figures, 26))


def _report_fraud(section: Any) -> None:
    typer.echo("")
    if not isinstance(section, dict):
        typer.secho(f"fraud scoring, /v1/fraud/score: {section}", bold=True)
        return
    typer.secho(f"fraud scoring, {section['model']}, {section['payments']:,} payments", bold=True)
    typer.echo(f"  {'server':<8} {'c':>3} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'refused':>8}")
    for name, result in section["servers"].items():
        for level in ("c1", "c16"):
            r = result[level]
            typer.echo(
                f"  {name:<8} {level[1:]:>3} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                f"{r['rps']:>8,.0f} {r.get('errors', 0):>8,}"
            )
    for key, value in section["ratios"].items():
        typer.echo(f"  {key} {value}")


def _report_v2(model: str, section: Any) -> None:
    typer.echo("")
    if not isinstance(section, dict):
        typer.secho(f"Open Inference Protocol (V2), {model}: {section}", bold=True)
        return
    typer.secho(f"Open Inference Protocol (V2), {section['model']}", bold=True)
    typer.echo(f"  {'server':<8} {'c':>3} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'RSS MB':>8}")
    for name, result in section["servers"].items():
        if not isinstance(result, dict):
            typer.echo(f"  {name:<8} {result}")
            continue
        for level in ("c1", "c16"):
            r = result[level]
            typer.echo(
                f"  {name:<8} {level[1:]:>3} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                f"{r['rps']:>8,.0f} {result['rss_mb_after_load']:>8}"
            )
    peer = section["servers"]["mlserver"]
    if isinstance(peer, dict):
        env = peer["environment"]
        typer.echo(
            f"  mlserver: {peer['runtime']}, |probability - native| "
            f"{peer['probability_gap_vs_native']:.1e}; environment {env['size_mb']:,.0f} MB, "
            + ("cached" if env["cached"] else f"built in {env['built_s']:.0f} s")
        )
    if "mlflow" in section["servers"]:
        typer.echo("  mlflow speaks no V2: its /invocations figures of the table above")
    ratios = section["ratios"]
    if ratios:
        typer.echo(
            f"  ours / mlserver req/s at c=16 {ratios['rps_c16_ours_over_mlserver']:.2f}x, "
            f"p50 at c=1 {ratios['p50_c1_ours_over_mlserver']:.3f}x"
        )
