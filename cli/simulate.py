"""`mlops simulate`: traffic to the running API from the simulators, and its delayed labels."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import CaseStudy, JsonOption, fail, prepare
from cli.progress import showing_progress

if TYPE_CHECKING:
    from stack.traffic import TrafficResult

simulate_app = typer.Typer(
    help="Simulated traffic against the running API, and the delivery of its labels.",
    no_args_is_help=True,
)


@simulate_app.command("traffic")
def traffic(
    model: Annotated[CaseStudy, typer.Option(help="Which case study's endpoint to call.")],
    scenario: Annotated[
        str,
        typer.Option(
            help="The simulator's drift scenario. churn: baseline, price_rise, contract_mix, "
            "fiber_push; fraud: baseline, new_fraud_pattern, spending_shift."
        ),
    ] = "baseline",
    rate: Annotated[float, typer.Option(min=0.01, help="Requests per second.")] = 10.0,
    duration: Annotated[float, typer.Option(min=0.01, help="Seconds of traffic.")] = 10.0,
    url: Annotated[
        str | None, typer.Option(help="The API (default: MLOPS_API_HOST and MLOPS_API_PORT).")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Simulator seed (fraud: MLOPS_SEED, the pipeline's cards and terminals; "
            "churn: MLOPS_SEED + 1, customers the pipeline never saw)."
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at most.")] = 4,
    label_delay: Annotated[
        float | None,
        typer.Option(
            min=0, help="Days until a request's label is due (default churn 30, fraud 7)."
        ),
    ] = None,
    history: Annotated[
        Path | None,
        typer.Option(
            help="fraud: the transactions file the pipeline ran on (default: the newest "
            "simulated one under MLOPS_HOME/raw)."
        ),
    ] = None,
    to: Annotated[
        str,
        typer.Option(
            help="api: call the API; stream: publish fraud payments on the payments stream "
            "(Redis Streams) for `mlops stream fraud`."
        ),
    ] = "api",
    as_json: JsonOption = False,
) -> None:
    """Send rate x duration requests to the API and file their labels, due later."""

    settings = prepare()
    from stack.traffic import TrafficError, run_traffic

    base = url or f"http://{settings.api_host}:{settings.api_port}"
    try:
        with showing_progress(as_json):
            result = run_traffic(
                settings,
                model.value,
                scenario=scenario,
                rate=rate,
                duration_s=duration,
                url=base,
                seed=seed,
                concurrency=concurrency,
                label_delay_days=label_delay,
                history_file=history,
                to=to,
            )
    except TrafficError as error:
        fail(str(error))
    _report_traffic(result, result.url, as_json)


def _report_traffic(result: TrafficResult, base: str, as_json: bool) -> None:
    """What was sent and filed, the notes, the JSON line if asked; exit 1 when nothing
    succeeded."""
    statuses = ", ".join(f"{status}: {n}" for status, n in result.statuses.items())
    typer.echo(
        f"sent {result.planned} {result.model} requests ({result.scenario}) to {base} "
        f"in {result.seconds:.1f} s: {statuses}"
    )
    if result.feed:
        typer.echo(
            f"filed {result.labels_filed} labels, due {result.label_delay_days:g} days after "
            f"{result.first_event} .. {result.last_event} -> {result.feed}"
        )
    for note in result.notes:
        typer.secho(f"note: {note}", fg="yellow")
    if as_json:
        typer.echo(json.dumps(result.to_dict(), sort_keys=True, default=str))
    if result.succeeded == 0:
        fail("no request succeeded (is the API up, and serving this model?)", code=1)


@simulate_app.command("labels")
def deliver_labels(
    model: Annotated[CaseStudy, typer.Option(help="Whose labels to deliver.")],
    until: Annotated[
        str | None,
        typer.Option(
            help="Deliver labels due by this time (ISO 8601, UTC if no offset; default: "
            "the latest event in the feed)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the label flow: deliver the labels that are due, join them to the predictions."""
    import pandas as pd

    cut_off: datetime | None = None
    if until is not None:
        try:
            stamp = pd.Timestamp(until)
        except ValueError:
            fail(f"--until {until!r} is not a time")
        cut_off = (stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp).to_pydatetime()
    prepare()  # before Prefect is imported: it reads its settings on import
    from pipelines.label_flow import ingest_labels

    summary = ingest_labels(model=model.value, until=cut_off)
    if as_json:
        typer.echo(json.dumps(summary, sort_keys=True, default=str))
        return
    if summary["until"] is None:
        typer.echo(f"{summary['model']}: no labels pending")
        return
    typer.echo(
        f"{summary['model']}: {summary['delivered']} labels due by {summary['until']}, "
        f"{summary.get('rows_valid', 0)} valid, {summary.get('rows_quarantined', 0)} quarantined"
        + (f" -> {summary['quarantine_file']}" if summary.get("quarantine_file") else "")
    )
    if summary["delivered"]:
        typer.echo(
            f"  stored {summary['stored']} ({summary['already_stored']} already stored), "
            f"joined to {summary['joined']} logged predictions ({summary['unjoined']} without)"
        )
    if "terminals_rewritten" in summary:
        typer.echo(
            f"  online: {summary['frauds_written_online']} frauds written into "
            f"{summary['terminals_rewritten']} terminal histories "
            f"({summary['frauds_not_online']} not in the online state)"
        )
    typer.echo(f"  still pending     {summary['pending']}")
