"""The `mlops` command line: run the pipelines, the demo and the prediction API.

Heavy modules (Prefect, MLflow, Feast) are imported inside the commands, after the
settings have pointed the tools at MLOPS_HOME, so `mlops --help` is instant.
"""

from __future__ import annotations

import json
import os
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from mlops.settings import Settings
from pipelines.sources.churn_simulator import SCENARIOS

app = typer.Typer(
    help="Reference MLOps platform: pipelines, training, serving and monitoring.",
    no_args_is_help=True,
    add_completion=False,
)
pipeline_app = typer.Typer(
    help="Run a case study's pipeline (a Prefect flow).", no_args_is_help=True
)
app.add_typer(pipeline_app, name="pipeline")


# The simulator's drift scenarios, as a choice list for --help and validation.
Scenario = StrEnum("Scenario", {name: name for name in SCENARIOS})  # type: ignore[misc]


def _hide_deprecations(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    if not issubclass(category, DeprecationWarning):
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


def _run_churn(
    source: Path | None, customers: int, scenario: str, current_scenario: str | None
) -> dict[str, Any]:
    from features.quarantine import UnusableSource
    from pipelines.churn_flow import churn_pipeline

    try:
        return churn_pipeline(
            source=source,
            customers=customers,
            scenario=scenario,
            current_scenario=current_scenario,
        )
    except UnusableSource as error:
        typer.secho(f"error: cannot use {error.path}: {error.problem}", fg="red", err=True)
        raise typer.Exit(2) from error


def _report(summary: dict[str, Any], settings: Settings, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary, sort_keys=True, default=str))
        return
    metrics = summary["test_metrics"]
    rows = summary["rows"]
    typer.echo("")
    typer.secho("churn pipeline finished", bold=True)
    typer.echo(f"  source            {summary['source']}")
    typer.echo(
        f"  rows              {rows['rows_valid']} valid, {rows['rows_quarantined']} quarantined"
        + (f" -> {summary['quarantine_dir']}" if rows["rows_quarantined"] else "")
    )
    typer.echo(f"  MLflow run        {summary['run_id']}  ({summary['winner']} won)")
    typer.echo(
        f"  registered        {summary['model_name']} v{summary['model_version']} "
        f"aliases {summary['aliases']}: {summary['gate_reason']}"
    )
    typer.echo(
        "  test metrics      "
        + ", ".join(f"{k} {metrics[k]:.3f}" for k in ("roc_auc", "pr_auc", "f1", "recall"))
    )
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


@app.command()
def demo(
    serve: Annotated[bool, typer.Option(help="Serve the API when the pipeline is done.")] = True,
    customers: Annotated[int, typer.Option(min=200, help="Customers to simulate.")] = 5000,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON summary line.")
    ] = False,
) -> None:
    """Run the churn case study end to end on the embedded stores, then serve it."""
    settings = _prepare()
    summary = _run_churn(None, customers, "baseline", "price_rise")
    _report(summary, settings, as_json)
    if not as_json:
        base = f"http://{settings.api_host}:{settings.api_port}"
        typer.echo(f"  API docs          {base}/docs")
        body = json.dumps({"customer_id": _example_id(settings)})
        typer.echo(
            f"  predict           curl -s -X POST {base}/v1/churn/predict "
            f"-H 'content-type: application/json' -d '{body}'"
        )
    if serve:
        _serve(settings)


class Model(StrEnum):
    churn = "churn"


def _registry(settings: Settings, model: Model) -> tuple[Any, str]:
    from mlflow import MlflowClient

    name = {Model.churn: settings.churn_model_name}[model]
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


def _example_id(settings: Settings) -> str:
    """A customer id that is in the online store, for the printed curl example."""
    import pandas as pd

    from features.feature_repo.churn import CHURN_FEATURES_FILE

    frame = pd.read_parquet(settings.features_dir / CHURN_FEATURES_FILE, columns=["customer_id"])
    return str(frame["customer_id"].iloc[-1])


if __name__ == "__main__":  # `python -m pipelines.cli` behaves like `mlops`
    app(prog_name="mlops")
