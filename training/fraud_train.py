"""Fraud model training: prequential model selection, imbalance handling, an anomaly score,
a bounded Optuna search, a cost-chosen threshold, and registration behind the shared gate.

`train_fraud` runs inside the pipeline's MLflow run. Every candidate is a nested run:

- the logistic baseline and XGBoost, each with every way of handling the imbalance
  (`training.fraud_models.IMBALANCE`);
- `isolation_forest`: the unsupervised anomaly score on its own, as the fraud score. It
  is a reference, never the winner: it has no probability to threshold or serve;
- the best XGBoost variant with the anomaly score as an extra input;
- one run per Optuna trial (TPE, seeded) over XGBoost's hyperparameters for the best
  XGBoost variant, then `<variant>_tuned` with the best trial's parameters.

Selection uses the Fraud Detection Handbook's prequential folds (`model_selection_splits`):
earlier weeks of the training history, never the test period. The winner has the best
mean prequential average precision; its threshold minimises the expected cost on the
folds' validation scores. Test metrics (on `split`'s test period, known-compromised
cards removed) are logged for every variant but choose nothing. The winner is exported
to ONNX (the anomaly score computed inside the graph when it is an input), checked for
parity and registered with `training.registration.register_winner`, gated on test average
precision against the champion scored on the same rows.

This module runs those steps in order; each job has its own module:
`training.fraud_selection` (the folds, evaluating one variant), `training.fraud_search`
(the bounded search), `training.fraud_registration` (the winner's artifacts and
registration). The names other packages import from here are listed in `__all__`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import mlflow
import pandas as pd

from features.fraud_schema import CUSTOMER_ID, TX_DATETIME, TX_FRAUD, TX_FRAUD_SCENARIO
from features.fraud_windows import FRAUD_FEATURES
from mlops import progress
from mlops.settings import Settings
from training.fraud_metrics import recall_by_scenario
from training.fraud_models import IMBALANCE, Family, ModelSpec
from training.fraud_registration import (
    VALIDATION_SCORES_ARTIFACT,
    log_winner_artifacts,
    register_fraud_winner,
)
from training.fraud_search import Budget, SearchResult, search_xgboost
from training.fraud_selection import (
    ANOMALY_ONLY,
    CARD_PRECISION,
    SELECTION_METRIC,
    Evaluated,
    Fold,
    Period,
    Prequential,
    cost_threshold,
    evaluate_anomaly_score,
    evaluate_variant,
    fraud_report,
    prefixed,
    prepare_folds,
)
from training.fraud_splits import TimeSplit, describe_split, split_frame
from training.registration import Registration
from training.train import TrainingResult

__all__ = [
    "ANOMALY_ONLY",
    "CARD_PRECISION",
    "SELECTION_METRIC",
    "VALIDATION_SCORES_ARTIFACT",
    "Candidates",
    "Period",
    "cost_threshold",
    "describe_split",
    "evaluate_candidates",
    "fraud_report",
    "prefixed",
    "register_fraud_winner",
    "train_fraud",
    "winner_recall_by_scenario",
]


@dataclass(frozen=True)
class Candidates:
    """Every evaluated variant, the anomaly score alone (a reference, never the winner) and
    the search that tuned the best XGBoost variant."""

    variants: list[Evaluated]
    anomaly_only: Evaluated
    search: SearchResult

    @property
    def winner(self) -> Evaluated:
        """The variant with the best selection score (the first on a tie); the anomaly score
        alone is never one. Chosen on the prequential folds, so the test period stays an
        unbiased estimate."""
        return max(self.variants, key=lambda v: v.selection_score)

    def selection_scores(self) -> dict[str, float]:
        """`<candidate>_prequential_<metric>` of every candidate, the anomaly score's too."""
        every = [*self.variants, self.anomaly_only]
        return {f"{v.name}_prequential_{SELECTION_METRIC}": v.selection_score for v in every}


def train_fraud(
    transactions_with_features: pd.DataFrame,
    split: TimeSplit,
    settings: Settings,
    *,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    auto_promote: bool = True,
) -> TrainingResult:
    """Select, tune, threshold, test, export and register the fraud model (see module doc).

    `transactions_with_features` holds TX_DATETIME (UTC), CUSTOMER_ID, TX_FRAUD and the
    `FRAUD_FEATURES` columns, for the whole history: the prequential folds need the weeks
    before `split`'s training period. `n_trials` and `timeout_s` override the settings'
    search budget. Must run inside an active (parent) MLflow run. Returns the winner, its
    registered version and alias, its test metrics and every candidate's selection score.
    """
    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError("train_fraud needs an active MLflow run")
    _check_columns(transactions_with_features)
    budget = Budget.of(settings, n_trials, timeout_s)
    started = time.perf_counter()
    folds = prepare_folds(transactions_with_features, split, settings.seed)
    train_frame, test_frame = split_frame(transactions_with_features, split)
    train, test = Period.of(train_frame), Period.of(test_frame)
    _check_both_classes(train, test)
    _log_training_params(split, folds, train, test, budget, settings)
    candidates = evaluate_candidates(folds, train, test, settings, budget)
    winner = candidates.winner
    log_winner_artifacts(winner, folds, test, settings)
    registration = register_fraud_winner(
        winner, test, test_frame, settings, auto_promote=auto_promote
    )
    by_scenario = winner_recall_by_scenario(winner, test_frame)
    _log_selection_and_test_metrics(candidates, by_scenario, started)
    return _training_result(
        parent.info.run_id, candidates, registration, split, settings, by_scenario
    )


def winner_recall_by_scenario(winner: Evaluated, test_frame: pd.DataFrame) -> dict[str, float]:
    """The winner's recall at its threshold on the test frauds of each scenario present
    (`training.fraud_metrics.SCENARIO_NAMES`); empty when the data carry no
    TX_FRAUD_SCENARIO. Which fraud the model misses, not just how much."""
    if TX_FRAUD_SCENARIO not in test_frame:
        return {}
    alerts = winner.test_scores >= winner.threshold
    counts = recall_by_scenario(test_frame[TX_FRAUD_SCENARIO].to_numpy(), alerts)
    return {name: c["recall"] for name, c in counts.items()}


def evaluate_candidates(
    folds: list[Fold], train: Period, test: Period, settings: Settings, budget: Budget
) -> Candidates:
    """Evaluate every candidate of the module doc, each in a nested run, in its order."""

    families: tuple[Family, ...] = ("logistic", "xgboost")
    # Each family with each imbalance handling, the anomaly score, XGBoost with it, tuned.
    count = len(families) * len(IMBALANCE) + 3
    with progress.step("fraud candidate models", total=count) as done:

        def evaluate(
            spec: ModelSpec, name: str | None = None, known: Prequential | None = None
        ) -> Evaluated:
            evaluated = evaluate_variant(spec, folds, train, test, settings, name=name, known=known)
            done.advance(note=evaluated.name)
            return evaluated

        variants = [
            evaluate(ModelSpec(family, imbalance)) for family in families for imbalance in IMBALANCE
        ]
        anomaly_only = evaluate_anomaly_score(folds, train, test, settings)
        done.advance(note=anomaly_only.name)
        variants.append(evaluate(ModelSpec("xgboost", _best_xgboost(variants).imbalance, True)))
        base = _best_xgboost(variants)
        search = search_xgboost(base, folds, settings.seed, budget)
        if search.best is not None:
            tuned = ModelSpec("xgboost", base.imbalance, base.anomaly_feature, search.best_params)
            variants.append(evaluate(tuned, name=f"{base.name}_tuned", known=search.best))
    return Candidates(variants, anomaly_only, search)


def _check_columns(frame: pd.DataFrame) -> None:
    missing = [c for c in (TX_DATETIME, CUSTOMER_ID, TX_FRAUD, *FRAUD_FEATURES) if c not in frame]
    if missing:
        raise ValueError(f"transactions lack column(s) {missing}")


def _check_both_classes(train: Period, test: Period) -> None:
    for name, period in (("training", train), ("test", test)):
        if period.y.min() == period.y.max():
            raise ValueError(f"the {name} period needs both frauds and genuine transactions")


def _best_xgboost(variants: list[Evaluated]) -> ModelSpec:
    """The spec of the XGBoost variant with the best selection score (the first on a tie)."""
    best = max(
        (v for v in variants if v.spec and v.spec.family == "xgboost"),
        key=lambda v: v.selection_score,
    )
    assert best.spec is not None
    return best.spec


def _log_training_params(
    split: TimeSplit,
    folds: list[Fold],
    train: Period,
    test: Period,
    budget: Budget,
    settings: Settings,
) -> None:
    mlflow.log_params(
        {
            "split": describe_split(split),
            "prequential_folds": len(folds),
            "prequential_tests": ",".join(_day(f.valid.frame) for f in folds),
            "train_rows": len(train.y),
            "test_rows": len(test.y),
            "selection_metric": f"prequential_{SELECTION_METRIC}",
            "cost_missed_fraud": settings.fraud_cost_missed_fraud,
            "cost_false_alarm": settings.fraud_cost_false_alarm,
            "search_trials": budget.n_trials,
            "search_timeout_s": budget.timeout_s,
        }
    )


def _log_selection_and_test_metrics(
    candidates: Candidates, by_scenario: dict[str, float], started: float
) -> None:
    selection = candidates.selection_scores()
    mlflow.log_metrics(
        {
            # MLflow metric names take no "+" ("xgboost_smote+anomaly").
            **{k.replace("+", "_plus_"): v for k, v in selection.items()},
            **prefixed("test_", candidates.winner.test_metrics),
            **prefixed("test_recall_", by_scenario),
            "training_seconds": time.perf_counter() - started,
        }
    )


def _training_result(
    parent_run_id: str,
    candidates: Candidates,
    registration: Registration,
    split: TimeSplit,
    settings: Settings,
    by_scenario: dict[str, float],
) -> TrainingResult:
    winner = candidates.winner
    return TrainingResult(
        parent_run_id=parent_run_id,
        winner=winner.name,
        model_name=settings.fraud_model_name,
        version=registration.version,
        aliases=[registration.alias],
        test_metrics=winner.test_metrics,
        cv_metrics=candidates.selection_scores(),
        gate=registration.gate,
        parity_max_abs_diff=registration.parity_max_abs_diff,
        extra={
            "threshold": winner.threshold,
            "threshold_chosen_on": "prequential validation scores, by expected cost",
            "selection_metric": f"prequential_{SELECTION_METRIC}",
            "search_trials_run": candidates.search.trials,
            "anomaly_only_test_average_precision": candidates.anomaly_only.test_metrics[
                SELECTION_METRIC
            ],
            "split": describe_split(split),
            "test_recall_by_scenario": by_scenario,
        },
    )


def _day(frame: pd.DataFrame) -> str:
    return f"{frame[TX_DATETIME].min():%Y-%m-%d}"
