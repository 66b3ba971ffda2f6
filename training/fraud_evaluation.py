"""Fraud model quality beyond one realization: the Handbook protocol over several seeds and
several consecutive test weeks, each metric as mean ± sd, and the recall per fraud scenario.

One realization is one transactions frame and one model seed. On it, the candidates of
`training.fraud_train.evaluate_candidates` are selected and tuned on the prequential folds
ahead of the Handbook's split (week 0), exactly as the pipeline does; the winner's spec
and cost-chosen threshold are then kept, and for each later week w the winner is refitted
on the training week slid forward by w weeks and tested on the test week slid likewise
(the Handbook's prequential idea, the delay and the blocking of known-compromised cards
included). Selection and threshold are never refitted on a later week: they were chosen
once, before week 0's test, as the deployed model's would be.

With the simulator, seed s makes both the transactions and the model's randomness; with a
given file, seeds vary only the model's. Nothing is registered: each realization is one
MLflow run of the `fraud-evaluation` experiment (its candidates nested under it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import mlflow
import numpy as np
import pandas as pd

from features.fraud_schema import TX_DATETIME, TX_FRAUD, TX_FRAUD_SCENARIO
from features.fraud_windows import fraud_window_features
from mlops.settings import Settings
from training import tracking
from training.evaluate import mean_sd
from training.fraud_metrics import recall_by_scenario
from training.fraud_search import Budget
from training.fraud_selection import (
    CARD_PRECISION,
    Period,
    fit_final,
    fraud_report,
    prepare_folds,
)
from training.fraud_splits import DAY, HANDBOOK_START, TimeSplit, handbook_split, split_frame
from training.fraud_train import evaluate_candidates

EXPERIMENT: Final = "fraud-evaluation"
# Reported as mean ± sd; the first three are the Handbook's.
REPORTED_METRICS: Final = ("roc_auc", "average_precision", CARD_PRECISION, "precision", "recall")


@dataclass(frozen=True)
class WeekResult:
    """One realization's test week: the model tested, its metrics and its per-scenario recall."""

    seed: int
    week: int
    test_start: str
    winner: str
    threshold: float
    metrics: dict[str, float]
    scenarios: dict[str, dict[str, float]]


@dataclass(frozen=True)
class FraudEvaluation:
    """Every realization's weeks, and the summaries across seeds (see `summary`)."""

    source: str
    seeds: list[int]
    weeks: int
    search_trials: int
    results: list[WeekResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the runs, then each metric as mean ± sd across seeds on the Handbook's
        week (week 0), on each week, and on each seed's mean over the weeks; the recall per
        scenario as mean ± sd across seeds of each seed's recall pooled over its weeks."""
        by_seed = {s: [r for r in self.results if r.seed == s] for s in self.seeds}
        return {
            "case_study": "fraud",
            "source": self.source,
            "seeds": self.seeds,
            "weeks": self.weeks,
            "search_trials": self.search_trials,
            "handbook_week": _across(r for r in self.results if r.week == 0),
            "per_week": [
                {
                    "week": w,
                    "test_start": next(r.test_start for r in self.results if r.week == w),
                    **_across(r for r in self.results if r.week == w),
                }
                for w in range(self.weeks)
            ],
            "all_weeks": {
                m: mean_sd(
                    float(np.mean([r.metrics[m] for r in rows])) for rows in by_seed.values()
                )
                for m in REPORTED_METRICS
            },
            "recall_by_scenario": _scenario_recall(by_seed.values()),
            "runs": [asdict(r) for r in self.results],
        }


def parse_seeds(text: str) -> list[int]:
    """`"0,1,2"` is those seeds; a single `"N"` is the N seeds 0..N-1."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"seeds must be integers separated by commas, got {text!r}") from None
    if not numbers:
        raise ValueError("no seeds given")
    if len(numbers) == 1 and "," not in text:
        if numbers[0] < 1:
            raise ValueError(f"a number of seeds must be at least 1, got {numbers[0]}")
        return list(range(numbers[0]))
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"seeds repeat: {text!r}")
    return numbers


def labelled_features(valid: pd.DataFrame) -> pd.DataFrame:
    """The window features of validated transactions, with TX_FRAUD and TX_FRAUD_SCENARIO:
    what one realization is evaluated on."""
    features = fraud_window_features(valid)
    features[TX_FRAUD] = valid[TX_FRAUD].to_numpy()
    features[TX_FRAUD_SCENARIO] = valid[TX_FRAUD_SCENARIO].to_numpy()
    return features


def evaluate_fraud(
    settings: Settings,
    seeds: Sequence[int],
    transactions: Callable[[int], pd.DataFrame],
    *,
    origin: str,
    weeks: int = 3,
    start: str = HANDBOOK_START,
    on_week: Callable[[WeekResult], None] | None = None,
) -> FraudEvaluation:
    """Evaluate the fraud model over `seeds` and `weeks` test weeks (see module doc).

    `transactions(seed)` gives the realization's `labelled_features` (the caller simulates
    with the seed, or returns one file's frame whatever the seed); `origin` says where they
    come from. `start` is week 0's training start (the Handbook's). `on_week` is told of
    each week as soon as it is measured.
    """
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, got {weeks}")
    budget = Budget.of(settings, None, None)
    evaluation = FraudEvaluation(origin, list(seeds), weeks, budget.n_trials)
    tracking.use_experiment(settings, EXPERIMENT)
    for seed in seeds:
        frame = transactions(seed)
        seeded = settings.model_copy(update={"seed": seed})
        for result in _realization(frame, seeded, budget, weeks, start, origin):
            evaluation.results.append(result)
            if on_week is not None:
                on_week(result)
        del frame
    return evaluation


def _realization(
    frame: pd.DataFrame, settings: Settings, budget: Budget, weeks: int, start: str, origin: str
) -> Iterable[WeekResult]:
    """Select on week 0's folds, test week 0, then refit the winner on each later week."""
    splits = [handbook_split(pd.Timestamp(start) + w * 7 * DAY) for w in range(weeks)]
    check_covered(frame, splits[-1])
    with mlflow.start_run(run_name=f"fraud-evaluation-seed-{settings.seed}"):
        mlflow.log_params({"source": origin[:500], "seed": settings.seed, "weeks": weeks})
        folds = prepare_folds(frame, splits[0], settings.seed)
        train_frame, test_frame = split_frame(frame, splits[0])
        test = Period.of(test_frame)
        candidates = evaluate_candidates(folds, Period.of(train_frame), test, settings, budget)
        winner = candidates.winner
        assert winner.spec is not None  # the anomaly score alone never wins
        scores = winner.test_scores
        for week, split in enumerate(splits):
            if week:
                train_frame, test_frame = split_frame(frame, split)
                test = Period.of(test_frame)
                model = fit_final(winner.spec, Period.of(train_frame), settings.seed)
                scores = model.predict_proba(test.x)[:, 1]
            metrics = fraud_report(test, scores, winner.threshold, settings)
            by_scenario = recall_by_scenario(
                test_frame[TX_FRAUD_SCENARIO].to_numpy(), scores >= winner.threshold
            )
            mlflow.log_metrics(
                {
                    **{f"week{week}_test_{m}": metrics[m] for m in REPORTED_METRICS},
                    **{f"week{week}_recall_{k}": v["recall"] for k, v in by_scenario.items()},
                }
            )
            yield WeekResult(
                seed=settings.seed,
                week=week,
                test_start=f"{split.test_start:%Y-%m-%d}",
                winner=winner.name,
                threshold=winner.threshold,
                metrics={m: metrics[m] for m in REPORTED_METRICS},
                scenarios=by_scenario,
            )


def _across(results: Iterable[WeekResult]) -> dict[str, dict[str, float]]:
    rows = list(results)
    return {m: mean_sd(r.metrics[m] for r in rows) for m in REPORTED_METRICS}


def _scenario_recall(
    per_seed: Iterable[list[WeekResult]],
) -> dict[str, dict[str, float]]:
    """Each scenario's recall pooled over a seed's weeks, then mean ± sd across seeds, with
    the mean number of its frauds per seed."""
    recalls: dict[str, list[float]] = {}
    frauds: dict[str, list[float]] = {}
    for rows in per_seed:
        pooled = _pooled(r.scenarios for r in rows)
        for name, counts in pooled.items():
            recalls.setdefault(name, []).append(counts["caught"] / counts["frauds"])
            frauds.setdefault(name, []).append(counts["frauds"])
    return {
        name: {**mean_sd(values), "frauds_per_seed": float(np.mean(frauds[name]))}
        for name, values in recalls.items()
    }


def _pooled(weeks: Iterable[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    total: dict[str, dict[str, float]] = {}
    for week in weeks:
        for name, counts in week.items():
            into = total.setdefault(name, {"frauds": 0, "caught": 0})
            into["frauds"] += counts["frauds"]
            into["caught"] += counts["caught"]
    return total


def check_covered(frame: pd.DataFrame, last: TimeSplit) -> None:
    """Fail before any training when the data end before the last week's test does."""
    after_last_day = frame[TX_DATETIME].max().normalize() + DAY
    if last.test_end > after_last_day:
        raise ValueError(
            f"the last test week ends {last.test_end:%Y-%m-%d} but the transactions end "
            f"{after_last_day:%Y-%m-%d}: ask for fewer weeks or more days"
        )
