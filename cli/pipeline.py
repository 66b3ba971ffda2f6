"""`mlops pipeline churn|fraud`: run a case study's flow and print where its results went."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import check_source, echo_json, fail, prepare, run_flow
from cli.progress import showing_progress
from mlops.case_studies import CHURN, FRAUD
from sources.churn_simulator import SCENARIOS
from sources.fraud_simulator import SCENARIOS as FRAUD_SCENARIOS

if TYPE_CHECKING:
    from mlops.settings import Settings

pipeline_app = typer.Typer(
    help="Run a case study's pipeline (a Prefect flow).", no_args_is_help=True
)

# The simulators' drift scenarios, as choice lists for --help and validation.
Scenario = StrEnum("Scenario", {name: name for name in SCENARIOS})  # type: ignore[misc]
FraudScenario = StrEnum("FraudScenario", {name: name for name in FRAUD_SCENARIOS})  # type: ignore[misc]


def run_churn(
    source: Path | None, customers: int, scenario: str, current_scenario: str | None
) -> dict[str, Any]:
    """The churn flow's summary (`pipelines.churn_flow.churn_pipeline`)."""
    check_source(source)
    from pipelines.churn_flow import churn_pipeline

    return run_flow(
        churn_pipeline,
        source=source,
        customers=customers,
        scenario=scenario,
        current_scenario=current_scenario,
    )


def run_fraud(source: Path | None, simulation: Any, periods: Any) -> dict[str, Any]:
    """The fraud flow's summary; `simulation` and `periods` are the flow's `Simulation` and
    `Periods`."""
    check_source(source)
    from pipelines.fraud_flow import fraud_pipeline

    return run_flow(fraud_pipeline, source=source, simulation=simulation, periods=periods)


def _print_run(
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


def print_churn(summary: dict[str, Any], settings: Settings, next_steps: bool = True) -> None:
    """The churn flow's summary for a person, and (`next_steps`) where to look next."""
    _print_run(summary, "churn pipeline finished", CHURN.headline_metrics, {})
    drift = summary["drift"]
    typer.echo(
        f"  drift             {len(drift['drifted_columns'])} drifted features "
        f"(share {drift['drift_share']:.2f}) -> {drift['html']}"
    )
    if not next_steps:
        return
    typer.echo("")
    typer.secho("where to look next", bold=True)
    typer.echo(f"  MLflow UI         uv run mlflow ui --backend-store-uri {settings.tracking_uri}")
    typer.echo(f"  drift report      open {drift['html']}")


def print_fraud(summary: dict[str, Any], settings: Settings, next_steps: bool = True) -> None:
    """The fraud flow's summary for a person, and (`next_steps`) the MLflow UI."""
    periods = summary["periods"]
    split = (
        f"train {periods['train_days']} days from {periods['train_start']}, "
        f"delay {periods['delay_days']}, test {periods['test_days']}"
    )
    details = {"split": split, "online windows": f"as of {summary['online_state_as_of']}"}
    if recall := summary.get("test_recall_by_scenario"):
        details["recall by fraud"] = ", ".join(f"{k} {v:.3f}" for k, v in recall.items())
    _print_run(summary, "fraud pipeline finished", FRAUD.headline_metrics, details)
    if next_steps:
        typer.echo(
            f"  MLflow UI         uv run mlflow ui --backend-store-uri {settings.tracking_uri}"
        )


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
    settings = prepare()
    with showing_progress(as_json):
        summary = run_churn(
            source,
            customers,
            scenario.value,
            current_scenario.value if current_scenario else None,
        )
    if as_json:
        echo_json(summary)
    else:
        print_churn(summary, settings)


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
        fail(str(error))
    settings = prepare()  # before Prefect is imported: it reads its settings on import
    from pipelines.fraud_flow import Periods, Simulation

    periods = Periods(train_start, train_days, delay_days, test_days)
    with showing_progress(as_json):
        summary = run_fraud(
            source, Simulation(customers, terminals, days, start, scenario.value), periods
        )
    if as_json:
        echo_json(summary)
    else:
        print_fraud(summary, settings)
