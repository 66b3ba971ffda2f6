"""`mlops demo`: both case studies end to end, their walkthrough pages, then the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import echo_json, prepare
from cli.pipeline import print_churn, print_fraud, run_churn, run_fraud
from cli.progress import showing_progress
from cli.report import build_pages, pages_address
from cli.serve import serve_api
from mlops.case_studies import CHURN, FRAUD
from mlops.demo_population import DEMO_CHURN_CUSTOMERS, DEMO_FRAUD_CARDS, DEMO_FRAUD_TERMINALS

if TYPE_CHECKING:
    from mlops.settings import Settings


def demo(
    serve: Annotated[bool, typer.Option(help="Serve the API when the pipelines are done.")] = True,
    customers: Annotated[int, typer.Option(min=200, help="Churn customers to simulate.")] = (
        DEMO_CHURN_CUSTOMERS
    ),
    fraud_customers: Annotated[
        int, typer.Option(min=10, help="Cards to simulate (the handbook's size is 5000).")
    ] = DEMO_FRAUD_CARDS,
    fraud_terminals: Annotated[
        int, typer.Option(min=10, help="Terminals to simulate (the handbook's size is 10000).")
    ] = DEMO_FRAUD_TERMINALS,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line: both summaries.")
    ] = False,
) -> None:
    """Run both case studies end to end, build their walkthrough pages, then serve them."""
    settings = prepare()  # before Prefect is imported: it reads its settings on import
    from pipelines.fraud_flow import Periods, Simulation

    with showing_progress(as_json) as reporter:
        churn = run_churn(None, customers, "baseline", "price_rise")
        # A fifth of the handbook's cards over its 183 days: the same protocol, a demo's wait.
        fraud = run_fraud(None, Simulation(fraud_customers, fraud_terminals), Periods())
        # The walkthrough pages of both champions, served by the API under /reports/.
        with reporter.step("walkthrough pages"):
            pages = build_pages(settings)
    if as_json:
        echo_json({"churn": churn, "fraud": fraud})
    else:
        print_churn(churn, settings, next_steps=False)
        print_fraud(fraud, settings, next_steps=False)
        print_summary(settings, churn, fraud, pages, serving=serve)
    if serve:
        serve_api(settings)


def print_summary(
    settings: Settings,
    churn: dict[str, Any],
    fraud: dict[str, Any],
    pages: list[Path],
    *,
    serving: bool,
) -> None:
    """Where to look when the demo is done: the models, the pages, the API and the UIs."""
    base = f"http://{settings.api_host}:{settings.api_port}"

    def line(label: str, text: str) -> None:
        typer.echo(f"  {label:<17} {text}")

    typer.echo("")
    typer.secho("the demo is done: where to look", bold=True)
    for label, summary, study in (("models", churn, CHURN), ("", fraud, FRAUD)):
        metrics = summary["test_metrics"]
        figures = ", ".join(f"{k} {metrics[k]:.3f}" for k in study.headline_metrics)
        aliases = ", ".join(summary["aliases"])
        line(label, f"{summary['model_name']} v{summary['model_version']} ({aliases}): {figures}")
    for i, page in enumerate(pages):
        line("" if i else "walkthrough pages", str(page))
    line("", f"{pages_address(settings)} (served by the API)")
    line("API", f"{base}  (docs {base}/docs)")
    line("", "starting now; Ctrl-C stops it" if serving else "`mlops serve` starts it")
    for path, body in (
        (CHURN.score_route, {"customer_id": example_customer_id(settings)}),
        (FRAUD.score_route, example_transaction(settings, fraud["online_state_as_of"])),
    ):
        line(
            "try" if path == CHURN.score_route else "",
            f"curl -s -X POST {base}{path} "
            f"-H 'content-type: application/json' -d '{json.dumps(body)}'",
        )
    line("drift report", churn["drift"]["html"])
    line("MLflow UI", "mlops ui mlflow       runs, metrics, models and their aliases")
    line("Prefect UI", "mlops ui prefect      the flow runs and their task logs")
    line("monitoring UI", "mlops ui monitoring   Evidently dashboards, one per model")


def example_customer_id(settings: Settings) -> str:
    """A customer id that is in the online store, for the printed curl example."""
    import pandas as pd

    from features.feature_repo.churn import CHURN_FEATURES_FILE

    frame = pd.read_parquet(settings.features_dir / CHURN_FEATURES_FILE, columns=["customer_id"])
    return str(frame["customer_id"].iloc[-1])


def example_transaction(settings: Settings, as_of: str) -> dict[str, Any]:
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
