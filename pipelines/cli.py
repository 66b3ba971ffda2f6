"""The `mlops` command line: run the pipelines, the demo and the prediction API.

Heavy modules (Prefect, MLflow, Feast) are imported inside the commands, after the
settings have pointed the tools at MLOPS_HOME, so `mlops --help` is instant.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from mlops.settings import Settings
from pipelines.cli_gate import gate
from pipelines.cli_monitor import monitor
from pipelines.cli_monitoring import bench_monitoring, ui_app
from pipelines.cli_report import build_pages, pages_address, report
from pipelines.cli_simulate import simulate_app
from pipelines.cli_stack import flows_app, stack_app
from pipelines.sources.churn_simulator import SCENARIOS
from pipelines.sources.fraud_simulator import SCENARIOS as FRAUD_SCENARIOS

app = typer.Typer(
    help="Reference MLOps platform: pipelines, training, serving and monitoring.",
    no_args_is_help=True,
    add_completion=False,
)
pipeline_app = typer.Typer(
    help="Run a case study's pipeline (a Prefect flow).", no_args_is_help=True
)
app.add_typer(pipeline_app, name="pipeline")
bench_app = typer.Typer(
    help="Benchmarks: the figures docs/benchmarks.md records.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")
app.add_typer(simulate_app, name="simulate")
app.add_typer(ui_app, name="ui")
bench_app.command("monitoring")(bench_monitoring)
app.command("gate")(gate)
app.add_typer(stack_app, name="stack")
app.add_typer(flows_app, name="flows")
app.command("monitor")(monitor)
app.command("report")(report)


# The simulator's drift scenarios, as a choice list for --help and validation.
Scenario = StrEnum("Scenario", {name: name for name in SCENARIOS})  # type: ignore[misc]
FraudScenario = StrEnum("FraudScenario", {name: name for name in FRAUD_SCENARIOS})  # type: ignore[misc]


# Feast warns on every apply that on-demand views are "experimental"; they are used here
# on purpose, for online reads only (the offline features come from features.fraud_windows).
_KNOWN_NOISE = ("On demand feature view is an experimental feature",)


def _hide_deprecations(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    if issubclass(category, DeprecationWarning) or any(n in str(message) for n in _KNOWN_NOISE):
        return
    _show_warning(message, category, *args, **kwargs)


_show_warning = warnings.showwarning


def _prepare() -> Settings:
    # The third-party stack warns about its own deprecations, which users cannot act on.
    # Some of those libraries install their own warning filters on import, so filtering
    # is not enough: deprecations are dropped where warnings are shown.
    warnings.showwarning = _hide_deprecations
    settings = Settings().prepare()
    # Prefect's temporary server can be slow to start on a busy 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    return settings


def _run(flow: Callable[..., dict[str, Any]], **arguments: Any) -> dict[str, Any]:
    """Run a flow; a source that cannot be used is a message and exit code 2, not a trace."""
    from features.quarantine import UnusableSource

    try:
        return flow(**arguments)
    except UnusableSource as error:
        typer.secho(f"error: cannot use {error.path}: {error.problem}", fg="red", err=True)
        raise typer.Exit(2) from error


def _run_churn(
    source: Path | None, customers: int, scenario: str, current_scenario: str | None
) -> dict[str, Any]:
    from pipelines.churn_flow import churn_pipeline

    return _run(
        churn_pipeline,
        source=source,
        customers=customers,
        scenario=scenario,
        current_scenario=current_scenario,
    )


def _run_fraud(source: Path | None, simulation: Any, periods: Any) -> dict[str, Any]:
    from pipelines.fraud_flow import fraud_pipeline

    return _run(fraud_pipeline, source=source, simulation=simulation, periods=periods)


def _report_run(
    summary: dict[str, Any], title: str, metric_names: tuple[str, ...], details: dict[str, str]
) -> None:
    """What every pipeline reports: its source, rows, run, registered version and metrics."""
    rows = summary["rows"]
    typer.echo("")
    typer.secho(title, bold=True)
    typer.echo(f"  source            {summary['source']}")
    typer.echo(
        f"  rows              {rows['rows_valid']} valid, {rows['rows_quarantined']} quarantined"
        + (f" -> {summary['quarantine_dir']}" if rows["rows_quarantined"] else "")
    )
    for name, text in details.items():
        typer.echo(f"  {name:<17} {text}")
    typer.echo(f"  MLflow run        {summary['run_id']}  ({summary['winner']} won)")
    typer.echo(
        f"  registered        {summary['model_name']} v{summary['model_version']} "
        f"aliases {summary['aliases']}: {summary['gate_reason']}"
    )
    metrics = summary["test_metrics"]
    typer.echo("  test metrics      " + ", ".join(f"{k} {metrics[k]:.3f}" for k in metric_names))


def _report(summary: dict[str, Any], settings: Settings, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary, sort_keys=True, default=str))
        return
    _report_run(summary, "churn pipeline finished", ("roc_auc", "pr_auc", "f1", "recall"), {})
    drift = summary["drift"]
    typer.echo(
        f"  drift             {len(drift['drifted_columns'])} drifted features "
        f"(share {drift['drift_share']:.2f}) -> {drift['html']}"
    )
    typer.echo("")
    typer.secho("where to look next", bold=True)
    typer.echo(f"  MLflow UI         uv run mlflow ui --backend-store-uri {settings.tracking_uri}")
    typer.echo(f"  drift report      open {drift['html']}")


@pipeline_app.command("churn")
def pipeline_churn(
    source: Annotated[
        Path | None,
        typer.Option(help="Telco-schema CSV or parquet (e.g. the public IBM Telco CSV)."),
    ] = None,
    customers: Annotated[int, typer.Option(min=200, help="Customers to simulate.")] = 5000,
    scenario: Annotated[Scenario, typer.Option(help="Drift scenario of the training data.")] = (
        Scenario("baseline")
    ),
    current_scenario: Annotated[
        Scenario | None,
        typer.Option(help="Simulate a later batch with this scenario for the drift report."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON summary line.")
    ] = False,
) -> None:
    """Run the churn flow: ingest, validate, features, train, register, export, drift."""
    settings = _prepare()
    summary = _run_churn(
        source, customers, scenario.value, current_scenario.value if current_scenario else None
    )
    _report(summary, settings, as_json)


def _report_fraud(summary: dict[str, Any], settings: Settings, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary, sort_keys=True, default=str))
        return
    periods = summary["periods"]
    split = (
        f"train {periods['train_days']} days from {periods['train_start']}, "
        f"delay {periods['delay_days']}, test {periods['test_days']}"
    )
    _report_run(
        summary,
        "fraud pipeline finished",
        ("roc_auc", "average_precision", "card_precision_at_100"),
        {"split": split, "online windows": f"as of {summary['online_state_as_of']}"},
    )
    typer.echo(f"  MLflow UI         uv run mlflow ui --backend-store-uri {settings.tracking_uri}")


@pipeline_app.command("fraud")
def pipeline_fraud(
    source: Annotated[
        Path | None,
        typer.Option(help="Transactions in the Fraud Detection Handbook schema (CSV or parquet)."),
    ] = None,
    customers: Annotated[int, typer.Option(min=10, help="Cards to simulate.")] = 5000,
    terminals: Annotated[int, typer.Option(min=10, help="Terminals to simulate.")] = 10000,
    days: Annotated[int, typer.Option(min=1, help="Days to simulate.")] = 183,
    start: Annotated[str, typer.Option(help="First simulated day (UTC).")] = "2018-04-01",
    scenario: Annotated[
        FraudScenario, typer.Option(help="Drift scenario of the simulated data.")
    ] = FraudScenario("baseline"),
    train_start: Annotated[str, typer.Option(help="First training day (UTC).")] = "2018-07-25",
    train_days: Annotated[int, typer.Option(min=1, help="Days of training data.")] = 7,
    delay_days: Annotated[
        int, typer.Option(min=0, help="Days between training and test (the label delay).")
    ] = 7,
    test_days: Annotated[int, typer.Option(min=1, help="Days of test data.")] = 7,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON summary line.")
    ] = False,
) -> None:
    """Run the fraud flow: ingest, validate, window features, Feast, train, register."""
    from training.fraud_splits import handbook_split

    try:
        handbook_split(train_start, train_days, delay_days, test_days)
    except ValueError as error:  # a split that cannot be: say so before any work starts
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
    settings = _prepare()  # before Prefect is imported: it reads its settings on import
    from pipelines.fraud_flow import Periods, Simulation

    periods = Periods(train_start, train_days, delay_days, test_days)
    summary = _run_fraud(
        source, Simulation(customers, terminals, days, start, scenario.value), periods
    )
    _report_fraud(summary, settings, as_json)


@app.command()
def demo(
    serve: Annotated[bool, typer.Option(help="Serve the API when the pipelines are done.")] = True,
    customers: Annotated[int, typer.Option(min=200, help="Churn customers to simulate.")] = 5000,
    fraud_customers: Annotated[
        int, typer.Option(min=10, help="Cards to simulate (the handbook's size is 5000).")
    ] = 1000,
    fraud_terminals: Annotated[
        int, typer.Option(min=10, help="Terminals to simulate (the handbook's size is 10000).")
    ] = 2000,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line: both summaries.")
    ] = False,
) -> None:
    """Run both case studies end to end, build their walkthrough pages, then serve them."""
    settings = _prepare()  # before Prefect is imported: it reads its settings on import
    from pipelines.fraud_flow import Periods, Simulation

    churn = _run_churn(None, customers, "baseline", "price_rise")
    # A fifth of the handbook's cards over its 183 days: the same protocol, a demo's wait.
    fraud = _run_fraud(None, Simulation(fraud_customers, fraud_terminals), Periods())
    if as_json:
        typer.echo(json.dumps({"churn": churn, "fraud": fraud}, sort_keys=True, default=str))
    else:
        _report(churn, settings, as_json=False)
        _report_fraud(fraud, settings, as_json=False)
        base = f"http://{settings.api_host}:{settings.api_port}"
        typer.echo("")
        typer.secho("the API", bold=True)
        typer.echo(f"  API docs          {base}/docs")
        for path, body in (
            ("/v1/churn/predict", {"customer_id": _example_id(settings)}),
            ("/v1/fraud/score", _example_transaction(settings, fraud["online_state_as_of"])),
        ):
            typer.echo(
                f"  curl -s -X POST {base}{path} "
                f"-H 'content-type: application/json' -d '{json.dumps(body)}'"
            )
    # The walkthrough pages of both champions, served by the API under /reports/.
    pages = build_pages(settings)
    if not as_json:
        typer.echo("")
        typer.secho("walkthrough pages", bold=True)
        for page in pages:
            typer.echo(f"  {page.stem:<17} {page}")
        typer.echo(f"  served at         {pages_address(settings)}")
    if serve:
        _serve(settings)


class Model(StrEnum):
    churn = "churn"
    fraud = "fraud"


class ScoringEngine(StrEnum):
    """pipelines.batch_scoring's engines (kept here: --help must not import the batch path)."""

    onnx = "onnx"
    native = "native"


def _registry(settings: Settings, model: Model) -> tuple[Any, str]:
    from mlflow import MlflowClient

    name = {Model.churn: settings.churn_model_name, Model.fraud: settings.fraud_model_name}[model]
    return MlflowClient(tracking_uri=settings.tracking_uri), name


@app.command()
def promote(
    model: Annotated[Model, typer.Argument(help="Which case study's model.")],
    version: Annotated[str, typer.Option(help="The registered version to make champion.")],
    reason: Annotated[str, typer.Option(help="Why, kept on the version.")] = "manual promotion",
) -> None:
    """Move the champion alias to a version; the API follows within MLOPS_MODEL_REFRESH_S."""
    from training.registry import RegistryError
    from training.registry import promote as promote_version

    settings = _prepare()
    client, name = _registry(settings, model)
    try:
        promote_version(client, name, version, reason=reason)
    except RegistryError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"{name}@champion -> v{version}")


@app.command()
def rollback(
    model: Annotated[Model, typer.Argument(help="Which case study's model.")],
) -> None:
    """Give the champion alias back to the version that held it before."""
    from training.registry import RegistryError
    from training.registry import rollback as rollback_champion

    settings = _prepare()
    client, name = _registry(settings, model)
    try:
        version = rollback_champion(client, name)
    except RegistryError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"{name}@champion -> v{version}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
) -> None:
    """Serve the prediction API with the registry's champion model."""
    settings = _prepare()
    if host is not None or port is not None:
        settings = settings.model_copy(
            update={"api_host": host or settings.api_host, "api_port": port or settings.api_port}
        )
    _serve(settings)


def _serve(settings: Settings) -> None:
    import uvicorn

    from serving.app import create_app
    from serving.middleware import uvicorn_log_config

    typer.echo(f"serving on http://{settings.api_host}:{settings.api_port} (Ctrl-C stops)")
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=uvicorn_log_config(),
        access_log=False,  # the app writes one JSON line per request, with its request id
        timeout_graceful_shutdown=10,
    )


@app.command()
def score(
    model: Annotated[Model, typer.Argument(help="Which case study's model.")],
    input_file: Annotated[
        Path, typer.Option("--input", help="Raw file to score (CSV or parquet, labels optional).")
    ],
    output: Annotated[Path, typer.Option(help="Scores to write: .csv or .parquet.")],
    alias: Annotated[str, typer.Option(help="Registry alias of the model.")] = "champion",
    version: Annotated[
        str | None, typer.Option(help="A registered version instead of the alias.")
    ] = None,
    engine: Annotated[
        ScoringEngine,
        typer.Option(
            help="onnx: the bundle serving runs; native: the trained model through MLflow "
            "(faster on large tree ensembles). Either must first reproduce the parity sample."
        ),
    ] = ScoringEngine.onnx,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON summary line.")
    ] = False,
) -> None:
    """Score a whole file with the registered model; invalid rows are quarantined beside it."""
    settings = _prepare()
    from features.quarantine import UnusableSource
    from pipelines.batch_scoring import score_churn_file, score_fraud_file

    scorer = {Model.churn: score_churn_file, Model.fraud: score_fraud_file}[model]
    try:
        summary = scorer(
            settings, input_file, output, alias=alias, version=version, engine=engine.value
        )
    except UnusableSource as error:
        typer.secho(f"error: cannot use {error.path}: {error.problem}", fg="red", err=True)
        raise typer.Exit(2) from error
    except (LookupError, ValueError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), sort_keys=True, default=str))
        return
    typer.echo(
        f"scored {summary.rows_scored:,} rows with {summary.model_name} v{summary.model_version}"
        f" ({summary.engine}) -> {summary.output} in {summary.seconds:.1f} s"
        f" ({summary.rows_per_second:,.0f} rows/s)"
    )
    if summary.quarantine is not None:
        typer.echo(f"quarantined {summary.rows_quarantined:,} rows -> {summary.quarantine}")
    for note in summary.notes:
        typer.secho(f"note: {note}", fg="yellow")


def _example_id(settings: Settings) -> str:
    """A customer id that is in the online store, for the printed curl example."""
    import pandas as pd

    from features.feature_repo.churn import CHURN_FEATURES_FILE

    frame = pd.read_parquet(settings.features_dir / CHURN_FEATURES_FILE, columns=["customer_id"])
    return str(frame["customer_id"].iloc[-1])


class CaseStudy(StrEnum):
    churn = "churn"
    fraud = "fraud"


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

    from pipelines.bench import bench_pipeline as run_benchmark

    if scale is not None and case_study.value != "fraud":
        typer.secho("error: --scale is for the fraud case study", fg="red", err=True)
        raise typer.Exit(2)
    home = home or Path(tempfile.mkdtemp(prefix=f"mlops-bench-{case_study.value}-"))
    os.environ["MLOPS_HOME"] = str(home)
    settings = _prepare()
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
    from pipelines.bench_dask import bench_fraud_scaled, bench_fraud_scaled_in_process

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
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line of the figures.")
    ] = False,
) -> None:
    """Our API vs `mlflow models serve` vs a naive FastAPI endpoint, with wrk, on loopback."""

    from pipelines.bench_serving import BenchmarkError, require_wrk
    from pipelines.bench_serving import bench_serving as run_benchmark

    try:
        require_wrk()  # before the churn flow runs for minutes
    except BenchmarkError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
    settings = _bench_settings(home, "serving", ["pipeline", "churn"], "the churn flow")
    home = settings.home
    typer.secho(f"benchmark: serving churn from {home}, {seconds:g} s per level", bold=True)
    try:
        figures = run_benchmark(settings, seconds, log=typer.echo)
    except BenchmarkError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(1) from error
    _report_serving(figures)
    settings.serving_bench_file.parent.mkdir(parents=True, exist_ok=True)
    settings.serving_bench_file.write_text(json.dumps(figures, sort_keys=True, default=str) + "\n")
    typer.echo(f"figures saved to {settings.serving_bench_file} (`mlops report` shows them)")
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
    """Batch scoring: each engine alone on 1M rows, then score_fraud_file and score_churn_file."""

    from pipelines.bench_batch import bench_batch as run_benchmark

    settings = _bench_settings(home, "batch", ["demo", "--no-serve"], "both case studies")
    home = settings.home
    typer.secho(f"benchmark: batch scoring with the champions of {home}", bold=True)
    figures = run_benchmark(settings, churn_rows, log=typer.echo)
    for engine in ScoringEngine:
        for label, key in (("all cores", "all_cores"), ("one thread", "one_thread")):
            rate = figures[f"{engine}_rows_per_s_{key}"]
            typer.echo(f"  {engine + ' alone, ' + label:<26} {rate:,.0f} rows/s")
    typer.echo(f"  |native - onnx| probability {figures['native_onnx_max_abs_diff']:.1e}")
    for name in ("fraud_file", "churn_file"):
        run = figures[name]
        stages = ", ".join(f"{k} {v:.2f}" for k, v in run["stage_seconds"].items())
        typer.echo(
            f"  score_{name:<19} {run['rows_scored']:,} rows in {run['seconds']:.1f} s, "
            f"{run['rows_per_second']:,.0f} rows/s ({stages} s)"
        )
    load = figures["load_avg_before"]
    quiet = "quiet" if load < 0.5 else "BUSY: figures are provisional"
    typer.echo(f"  machine                    {figures['machine']}, load {load:.2f} ({quiet})")
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
        command = [sys.executable, "-m", "pipelines.cli", *flow, "--json"]
        env = {**os.environ, "MLOPS_HOME": str(home)}
        if subprocess.run(command, env=env, check=False, stdout=subprocess.DEVNULL).returncode:
            typer.secho(f"error: {what} failed", fg="red", err=True)
            raise typer.Exit(1)
    os.environ["MLOPS_HOME"] = str(home)
    return _prepare()


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
    load = figures["load_avg_before"]
    quiet = "quiet" if load < 0.5 else "BUSY: figures are provisional"
    typer.echo(f"  machine                    {figures['machine']}, load {load:.2f} ({quiet})")


def _example_transaction(settings: Settings, as_of: str) -> dict[str, Any]:
    """A payment of the busiest card at its usual terminal, an hour after the online state."""
    import numpy as np
    import pandas as pd

    from features.feature_repo.fraud import CUSTOMER_STATE_FILE

    states = pd.read_parquet(settings.features_dir / CUSTOMER_STATE_FILE)
    busiest = states.iloc[int(states["customer_tx_amounts"].map(len).to_numpy().argmax())]
    terminals, counts = np.unique(busiest["customer_tx_terminal_ids"], return_counts=True)
    stamp = pd.Timestamp(as_of) + pd.Timedelta(hours=1)
    return {
        "customer_id": int(busiest["customer_id"]),
        "terminal_id": int(terminals[counts.argmax()]),
        "amount": round(float(np.median(busiest["customer_tx_amounts"])), 2),
        "tx_datetime": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


if __name__ == "__main__":  # `python -m pipelines.cli` behaves like `mlops`
    app(prog_name="mlops")
