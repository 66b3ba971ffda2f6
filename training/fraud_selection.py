"""Fraud model selection on the prequential folds: a variant's folds, threshold and test.

The Fraud Detection Handbook's prequential folds (`training.fraud_splits.model_selection_splits`)
are earlier weeks of the training history, never the test period. A variant is fitted on
each fold's training weeks and scored on its validation week; the mean of the folds'
metrics ranks it (`SELECTION_METRIC`, the fraud case study's primary metric, prefixed
`prequential_`). Its threshold is the one of least expected cost on those validation
scores. It is then fitted on the whole training period and tested: test metrics are
logged but choose nothing. `training.fraud_train` runs the selection; this module
evaluates one variant at a time, each in a nested MLflow run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from features.fraud_schema import CUSTOMER_ID, TX_DATETIME, TX_FRAUD
from features.fraud_windows import FRAUD_FEATURES
from mlops.case_studies import FRAUD
from mlops.settings import Settings
from training.fraud_metrics import (
    DEFAULT_K,
    SCORE_COLUMN,
    card_precision_at_k,
    choose_cost_threshold,
    fraud_metrics,
)
from training.fraud_models import (
    AnomalyAugmentedClassifier,
    ModelSpec,
    anomaly_score,
    fit_detector,
    with_anomaly,
)
from training.fraud_splits import TimeSplit, model_selection_splits, split_frame

SELECTION_METRIC: Final = FRAUD.primary_metric
CARD_PRECISION: Final = f"card_precision_at_{DEFAULT_K}"
ANOMALY_ONLY: Final = "isolation_forest"


@dataclass(frozen=True)
class Period:
    """The rows of one period: keys and labels for the metrics, float32 features."""

    frame: pd.DataFrame
    x: np.ndarray
    y: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Period:
        """The period of `frame`'s rows (TX_DATETIME, CUSTOMER_ID, TX_FRAUD, FRAUD_FEATURES)."""
        keys = frame[[TX_DATETIME, CUSTOMER_ID, TX_FRAUD]].reset_index(drop=True)
        return cls(
            frame=keys,
            x=frame[list(FRAUD_FEATURES)].to_numpy(dtype=np.float32),
            y=frame[TX_FRAUD].to_numpy(dtype=np.int64),
        )


@dataclass(frozen=True)
class Fold:
    """One prequential fold, with its IsolationForest's scores (fitted on its training rows)."""

    train: Period
    valid: Period
    anomaly_train: np.ndarray
    anomaly_valid: np.ndarray

    def inputs(self, with_anomaly_feature: bool) -> tuple[np.ndarray, np.ndarray]:
        """The (training, validation) model inputs, with the anomaly score appended if asked."""
        if not with_anomaly_feature:
            return self.train.x, self.valid.x
        return (
            with_anomaly(self.train.x, self.anomaly_train),
            with_anomaly(self.valid.x, self.anomaly_valid),
        )


@dataclass(frozen=True)
class Prequential:
    """Validation scores of each fold and their metrics, averaged over the folds."""

    scores: list[np.ndarray]
    metrics: dict[str, float]


@dataclass
class Evaluated:
    """A candidate after selection and test; satisfies `training.registration.WinningModel`."""

    name: str
    spec: ModelSpec | None  # None for the anomaly score alone
    model: Any
    run_id: str
    threshold: float
    prequential: Prequential
    test_scores: np.ndarray
    test_metrics: dict[str, float]
    model_uri: str = ""

    @property
    def selection_score(self) -> float:
        """Its mean prequential `SELECTION_METRIC`: what ranks the candidates."""
        return self.prequential.metrics[f"prequential_{SELECTION_METRIC}"]


def prepare_folds(frame: pd.DataFrame, split: TimeSplit, seed: int) -> list[Fold]:
    """The prequential folds ahead of `split`, as arrays, with each fold's anomaly scores."""
    folds = []
    for fold_split in model_selection_splits(frame, split):
        fold_train, fold_valid = split_frame(frame, fold_split)
        train, valid = Period.of(fold_train), Period.of(fold_valid)
        detector = fit_detector(train.x, seed)
        folds.append(
            Fold(train, valid, anomaly_score(detector, train.x), anomaly_score(detector, valid.x))
        )
    return folds


def prequential(spec: ModelSpec, folds: list[Fold], seed: int) -> Prequential:
    """Fit on each fold's training weeks, score its validation week."""
    scores = []
    for fold in folds:
        x_train, x_valid = fold.inputs(spec.anomaly_feature)
        model = spec.fit_classifier(x_train, fold.train.y, seed)
        scores.append(model.predict_proba(x_valid)[:, 1])
    return Prequential(scores, _fold_metrics(folds, scores))


def evaluate_variant(
    spec: ModelSpec,
    folds: list[Fold],
    train: Period,
    test: Period,
    settings: Settings,
    *,
    name: str | None = None,
    known: Prequential | None = None,
) -> Evaluated:
    """One nested run: prequential metrics, cost threshold, fit on the training period, test.

    `name` defaults to the spec's; `known` is the variant's prequential result when it was
    already computed (the search's best trial), so it is not fitted again.
    """
    name = name or spec.name
    with mlflow.start_run(run_name=name, nested=True) as run:
        result = known or prequential(spec, folds, settings.seed)
        threshold = _cost_threshold(folds, result.scores, settings)
        model = fit_final(spec, train, settings.seed)
        test_scores = model.predict_proba(test.x)[:, 1]
        metrics = fraud_report(test, test_scores, threshold, settings)
        mlflow.log_params({"candidate": name, **spec.log_params()})
        mlflow.log_metrics({**result.metrics, "threshold": threshold, **prefixed("test_", metrics)})
        return Evaluated(
            name, spec, model, run.info.run_id, threshold, result, test_scores, metrics
        )


def evaluate_anomaly_score(
    folds: list[Fold], train: Period, test: Period, settings: Settings
) -> Evaluated:
    """The IsolationForest's score as the fraud score, evaluated like the supervised models."""
    with mlflow.start_run(run_name=ANOMALY_ONLY, nested=True) as run:
        scores = [fold.anomaly_valid for fold in folds]
        result = Prequential(scores, _fold_metrics(folds, scores))
        threshold = _cost_threshold(folds, scores, settings)
        detector = fit_detector(train.x, settings.seed)
        test_scores = anomaly_score(detector, test.x)
        metrics = fraud_report(test, test_scores, threshold, settings)
        mlflow.log_params({"candidate": ANOMALY_ONLY, "model.n_estimators": detector.n_estimators})
        mlflow.log_metrics({**result.metrics, "threshold": threshold, **prefixed("test_", metrics)})
        return Evaluated(
            ANOMALY_ONLY, None, detector, run.info.run_id, threshold, result, test_scores, metrics
        )


def fit_final(spec: ModelSpec, train: Period, seed: int) -> Any:
    """The variant fitted on the whole training period; takes the FRAUD_FEATURES rows."""
    if not spec.anomaly_feature:
        return spec.fit_classifier(train.x, train.y, seed)
    detector = fit_detector(train.x, seed)
    classifier = spec.fit_classifier(
        with_anomaly(train.x, anomaly_score(detector, train.x)), train.y, seed
    )
    return AnomalyAugmentedClassifier(detector, classifier)


def fraud_report(
    test: Period, scores: np.ndarray, threshold: float, settings: Settings
) -> dict[str, float]:
    """`fraud_metrics` at k=100 (card precision named `card_precision_at_100`)."""
    metrics = fraud_metrics(
        test.frame,
        scores,
        threshold,
        k=DEFAULT_K,
        cost_missed_fraud=settings.fraud_cost_missed_fraud,
        cost_false_alarm=settings.fraud_cost_false_alarm,
    )
    return metrics


def _fold_metrics(folds: list[Fold], scores: list[np.ndarray]) -> dict[str, float]:
    per_fold: dict[str, list[float]] = {SELECTION_METRIC: [], "roc_auc": [], CARD_PRECISION: []}
    for fold, fold_scores in zip(folds, scores, strict=True):
        per_fold[SELECTION_METRIC].append(average_precision_score(fold.valid.y, fold_scores))
        per_fold["roc_auc"].append(roc_auc_score(fold.valid.y, fold_scores))
        cards = fold.valid.frame.assign(**{SCORE_COLUMN: fold_scores})
        per_fold[CARD_PRECISION].append(card_precision_at_k(cards, DEFAULT_K))
    metrics = {f"prequential_{k}": float(np.mean(v)) for k, v in per_fold.items()}
    metrics[f"prequential_{SELECTION_METRIC}_std"] = float(np.std(per_fold[SELECTION_METRIC]))
    return metrics


def _cost_threshold(folds: list[Fold], scores: list[np.ndarray], settings: Settings) -> float:
    """The expected-cost threshold on the folds' validation scores (never the test's)."""
    return cost_threshold(
        np.concatenate([f.valid.y for f in folds]), np.concatenate(scores), settings
    )


def cost_threshold(labels: np.ndarray, scores: np.ndarray, settings: Settings) -> float:
    """The threshold of least expected cost at the settings' costs of a miss and an alarm."""
    return choose_cost_threshold(
        labels,
        scores,
        cost_missed_fraud=settings.fraud_cost_missed_fraud,
        cost_false_alarm=settings.fraud_cost_false_alarm,
    )


def validation_scores(folds: list[Fold], scores: list[np.ndarray]) -> pd.DataFrame:
    """The validation rows of every fold with their score: what the threshold was chosen on."""
    return pd.concat(
        [
            f.valid.frame.assign(fold=i, **{SCORE_COLUMN: s})
            for i, (f, s) in enumerate(zip(folds, scores, strict=True))
        ],
        ignore_index=True,
    )


def prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    """The metrics with `prefix` before each name (`test_` for the test period's)."""
    return {f"{prefix}{k}": v for k, v in metrics.items()}
