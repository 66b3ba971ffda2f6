"""`mlops monitor churn|fraud`: run a model's monitoring flow once (check, decide, act)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from cli.common import CaseStudy, JsonOption, fail, prepare


def monitor(
    model: Annotated[CaseStudy, typer.Argument(help="Which model to check.")],
    window: Annotated[
        float | None,
        typer.Option(
            "--window",
            min=0.01,
            help="Hours of the prediction log to check (default: since the last check, "
            "or MLOPS_MONITOR_WINDOW_HOURS).",
        ),
    ] = None,
    act: Annotated[
        bool, typer.Option("--act/--dry-run", help="Act on the decision (alert, retrain).")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Check the champion's recent traffic and labels, decide nothing|alert|retrain, act."""

    prepare()  # before Prefect is imported: it reads its settings on import
    from pipelines.monitoring_flow import monitor_model

    try:
        summary: dict[str, Any] = monitor_model(model=model.value, window_hours=window, act=act)
    except LookupError as error:  # no champion, or a champion without a reference
        fail(str(error))
    if as_json:
        typer.echo(json.dumps(summary, sort_keys=True, default=str))
        return
    decision = summary["decision"]
    typer.echo(
        f"{summary['model']} v{summary['model_version']}: {summary['predictions']} predictions, "
        f"{summary['labelled_predictions']} labelled -> {decision['action'].upper()}"
    )
    for reason in decision["reasons"]:
        typer.echo(f"  - {reason}")
    if "retrain" in summary:
        retrained = summary["retrain"]
        typer.echo(f"retrained: v{retrained['model_version']} registered as {retrained['aliases']}")
    if "challenger_test" in summary:
        verdict = summary["challenger_test"]
        outcome = "PROMOTED" if verdict["promoted"] else "not promoted"
        typer.echo(f"challenger test: {outcome}: {verdict['reason']}")
    typer.echo(f"decision log: MLflow run {summary['mlflow_run_id']}")
