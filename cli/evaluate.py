"""`mlops evaluate fraud|fraud-features|churn`: a model's quality over several realizations,
as mean ± sd, and what each group of fraud features adds to it.

One test week of one simulation cannot carry a claim (issue 15): these commands repeat the
case study's protocol (`training.fraud_evaluation`, `training.churn_evaluation`) and print
each metric with its spread. Nothing is registered or promoted.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import JsonOption, echo_json, fail, prepare
from cli.progress import showing_progress

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from mlops.settings import Settings
    from training.fraud_evaluation import WeekResult

evaluate_app = typer.Typer(
    help="Measure a case study's model over several seeds or splits (mean ± sd).",
    no_args_is_help=True,
)

SourceOption = Annotated[
    Path | None,
    typer.Option(help="Evaluate this file instead of simulated data (seeds vary the model only)."),
]


SeedsOption = Annotated[
    str, typer.Option(help="Seeds: '0,1,2,3,4', or a number N for the seeds 0..N-1.")
]
CustomersOption = Annotated[int, typer.Option(min=10, help="Cards to simulate.")]
TerminalsOption = Annotated[int, typer.Option(min=10, help="Terminals to simulate.")]
DaysOption = Annotated[int, typer.Option(min=1, help="Days to simulate.")]
TrainStartOption = Annotated[str, typer.Option(help="First training day of week 0 (UTC).")]


def _pm(summary: dict[str, float]) -> str:
    return f"{summary['mean']:.3f} ± {summary['sd']:.3f}"


@evaluate_app.command("fraud")
def evaluate_fraud_command(
    seeds: SeedsOption = "5",
    weeks: Annotated[
        int, typer.Option(min=1, help="Consecutive test weeks from the Handbook's (prequential).")
    ] = 3,
    source: SourceOption = None,
    customers: CustomersOption = 5000,
    terminals: TerminalsOption = 10000,
    days: DaysOption = 183,
    train_start: TrainStartOption = "2018-07-25",
    as_json: JsonOption = False,
) -> None:
    """The Handbook's fraud protocol over several seeds and test weeks: ROC-AUC, average
    precision and card precision@100 as mean ± sd, and the recall of each fraud scenario."""
    from training.fraud_evaluation import evaluate_fraud

    if source is not None:
        origin = str(source)
    else:
        origin = f"simulator(customers={customers}, terminals={terminals}, days={days})"

    def tell(week: WeekResult) -> None:
        m = week.metrics
        typer.echo(
            f"seed {week.seed} week {week.week} ({week.test_start}, {week.winner}): "
            f"ROC-AUC {m['roc_auc']:.3f}, AP {m['average_precision']:.3f}, "
            f"CP@100 {m['card_precision_at_100']:.3f}",
            err=True,
        )

    result = _run_fraud(
        seeds,
        as_json,
        lambda chosen, settings: evaluate_fraud(
            settings,
            chosen,
            _fraud_transactions(source, customers, terminals, days),
            origin=origin,
            weeks=weeks,
            start=train_start,
            on_week=tell,
        ).summary(),
    )
    if as_json:
        echo_json(result)
    else:
        _print_fraud(result)


@evaluate_app.command("fraud-features")
def evaluate_fraud_features_command(
    seeds: SeedsOption = "5",
    weeks: Annotated[
        int, typer.Option(min=1, help="Consecutive test weeks from the Handbook's.")
    ] = 2,
    source: SourceOption = None,
    customers: CustomersOption = 5000,
    terminals: TerminalsOption = 10000,
    days: DaysOption = 183,
    train_start: TrainStartOption = "2018-07-25",
    as_json: JsonOption = False,
) -> None:
    """Each group of fraud features beyond the Handbook's: the gain of having it, paired by
    seed and test week, with one fixed model (XGBoost with SMOTE, no search)."""
    from training.fraud_ablation import ablate_fraud

    def tell(run: dict[str, Any]) -> None:
        ap = {name: m["average_precision"] for name, m in run["metrics"].items()}
        shown = ", ".join(f"{name} {value:.3f}" for name, value in ap.items())
        typer.echo(f"seed {run['seed']} week {run['week']}: AP {shown}", err=True)

    result = _run_fraud(
        seeds,
        as_json,
        lambda chosen, _settings: ablate_fraud(
            chosen,
            _fraud_transactions(source, customers, terminals, days),
            weeks=weeks,
            start=train_start,
            on_week=tell,
        ),
    )
    if as_json:
        echo_json(result)
        return
    typer.echo("")
    typer.secho(
        f"fraud features: {len(result['seeds'])} seed(s) x {result['weeks']} week(s), "
        f"{result['model']} at its defaults; gain = all features minus all but the group",
        bold=True,
    )
    for group, gain in result["gains"].items():
        ap, cp = gain["average_precision"], gain["card_precision_at_100"]
        verdict = "holds" if gain["holds"] else "within its spread"
        typer.echo(
            f"  {group:<20} AP {ap['mean']:+.4f} ± {ap['sd']:.4f} (min {ap['min']:+.4f}), "
            f"CP@100 {cp['mean']:+.4f} ± {cp['sd']:.4f}: {verdict}"
        )


def _run_fraud(
    seeds: str, as_json: bool, work: Callable[[list[int], Settings], dict[str, Any]]
) -> dict[str, Any]:
    """`work(seeds, settings)` under the progress display, once the seeds are parsed and the
    home prepared; an unusable file, a bad seed list or too many weeks is a clear error."""
    from features.quarantine import UnusableSource
    from training.fraud_evaluation import parse_seeds

    try:
        chosen = parse_seeds(seeds)
    except ValueError as error:
        fail(str(error))
    settings = prepare()
    with showing_progress(as_json):
        try:
            return work(chosen, settings)
        except UnusableSource as error:
            fail(f"cannot use {error.path}: {error.problem}")
        except ValueError as error:
            fail(str(error))


def _fraud_transactions(
    source: Path | None, customers: int, terminals: int, days: int
) -> Callable[[int], pd.DataFrame]:
    """Each seed's labelled features: one simulation per seed, or the file's, read once."""
    from features.fraud_schema import validate_fraud_frame
    from sources.fraud_files import load_fraud_file
    from sources.fraud_simulator import simulate_transactions
    from training.fraud_evaluation import labelled_features

    if source is None:
        return lambda seed: labelled_features(
            simulate_transactions(customers, terminals, days, seed=seed)
        )
    valid = validate_fraud_frame(load_fraud_file(source), source).valid
    if valid.empty:
        fail(f"{source} has no valid transactions")
    frame = labelled_features(valid)
    return lambda seed: frame


def _print_fraud(result: dict[str, Any]) -> None:
    typer.echo("")
    typer.secho(
        f"fraud evaluation: {len(result['seeds'])} seed(s) x {result['weeks']} week(s), "
        f"{result['search_trials']} search trials",
        bold=True,
    )
    typer.echo(f"  source                 {result['source']}")
    names = {"roc_auc": "ROC-AUC", "average_precision": "average precision"}
    for metric, summary in result["handbook_week"].items():
        weeks = result["all_weeks"][metric]
        typer.echo(
            f"  {names.get(metric, metric):<22} {_pm(summary)} (Handbook week); "
            f"{_pm(weeks)} (mean of the weeks)"
        )
    for name, summary in result["recall_by_scenario"].items():
        typer.echo(
            f"  recall {name:<15} {_pm(summary)} ({summary['frauds_per_seed']:.0f} frauds a seed)"
        )


@evaluate_app.command("churn")
def evaluate_churn_command(
    source: SourceOption = None,
    customers: Annotated[int, typer.Option(min=200, help="Customers to simulate.")] = 5000,
    repeats: Annotated[int, typer.Option(min=1, help="Repeats of the stratified split.")] = 5,
    folds: Annotated[int, typer.Option(min=2, help="Parts of each split.")] = 2,
    as_json: JsonOption = False,
) -> None:
    """Every churn candidate over repeated stratified splits: ROC-AUC, average precision
    and Brier score as mean ± sd."""
    from features.quarantine import UnusableSource
    from sources.churn_files import load_churn_file
    from sources.churn_simulator import simulate_customers
    from training.churn_evaluation import churn_data, evaluate_churn

    settings = prepare()
    try:
        if source is not None:
            raw, origin = load_churn_file(source), str(source)
        else:
            raw = simulate_customers(customers, seed=settings.seed)
            origin = f"simulator(customers={customers}, seed={settings.seed})"
        data = churn_data(raw, origin)
        result = evaluate_churn(data, settings.seed, repeats=repeats, folds=folds)
    except UnusableSource as error:
        fail(f"cannot use {error.path}: {error.problem}")
    if as_json:
        echo_json(result)
        return
    typer.echo("")
    typer.secho(
        f"churn evaluation: {result['repeats']} x {result['folds']} stratified splits", bold=True
    )
    typer.echo(f"  source       {result['source']} ({result['rows']} customers)")
    for name, metrics in result["candidates"].items():
        typer.echo(
            f"  {name:<18} ROC-AUC {_pm(metrics['roc_auc'])}, "
            f"AP {_pm(metrics['average_precision'])}, Brier {_pm(metrics['brier'])}"
        )
