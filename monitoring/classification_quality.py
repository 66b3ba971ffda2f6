"""The quality check on labelled predictions: when it can run, its Evidently report, its reading.

On labelled rows holding both classes: `RocAuc`, `Precision` and `Recall` at the model's
threshold, and average precision (`monitoring.evidently_metrics.AveragePrecision`, so it
lands in the snapshot and the dashboard like the others). Each has an Evidently test: at
most `max_quality_drop` below the model's test metric. `monitoring.checks` runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import pandas as pd
from evidently import BinaryClassification, DataDefinition, Dataset
from evidently.metrics import Precision, Recall, RocAuc, RowCount
from evidently.tests import gte

from mlops.reference import LABEL_COLUMN, SCORE_COLUMN
from monitoring.check_results import ClassificationCheck
from monitoring.drift import failed, test_statuses
from monitoring.evidently_metrics import AveragePrecision

__all__ = [
    "MIN_LABELLED_ROWS",
    "QUALITY_METRICS",
    "classification_datasets",
    "classification_quality_metrics",
    "compared_test_metrics",
    "read_classification",
    "why_no_quality_check",
]

MIN_LABELLED_ROWS: Final = 30
"""Fewer labelled rows than this give no quality check: the metrics would be noise."""
QUALITY_METRICS: Final = ("roc_auc", "average_precision", "precision", "recall")

_QUALITY_TYPES: Final = {
    "evidently:metric_v2:RocAuc": "roc_auc",
    AveragePrecision.__get_type__(): "average_precision",
    "evidently:metric_v2:Precision": "precision",
    "evidently:metric_v2:Recall": "recall",
}


def why_no_quality_check(labelled: pd.DataFrame | None) -> str | None:
    """Why the labelled rows give no quality check (none, too few, one class), or None.

    Raises:
        ValueError: the labelled frame lacks the `score` or `label` column.
    """
    if labelled is None or labelled.empty:
        return "no labelled predictions in the window"
    missing = [col for col in (SCORE_COLUMN, LABEL_COLUMN) if col not in labelled.columns]
    if missing:
        raise ValueError(f"columns missing from the labelled frame: {missing}")
    if len(labelled) < MIN_LABELLED_ROWS:
        return f"{len(labelled)} labelled predictions, fewer than {MIN_LABELLED_ROWS}"
    if labelled[LABEL_COLUMN].nunique() < 2:
        return "the labelled predictions have one class only"
    return None


def compared_test_metrics(test_metrics: Mapping[str, float]) -> dict[str, float]:
    """The model's test metrics that a quality metric of the check is compared with."""
    return {name: float(test_metrics[name]) for name in QUALITY_METRICS if name in test_metrics}


def classification_quality_metrics(
    threshold: float, test_metrics: dict[str, float], max_drop: float
) -> list[Any]:
    """The report's metrics: the row count, then each quality metric with its test."""

    def tests(name: str) -> list[Any] | None:
        # No test metric to compare with: Evidently's own default (better than a dummy model).
        return [gte(test_metrics[name] - max_drop)] if name in test_metrics else None

    return [
        RowCount(),
        RocAuc(probas_threshold=threshold, tests=tests("roc_auc")),
        AveragePrecision(tests=tests("average_precision")),
        Precision(probas_threshold=threshold, tests=tests("precision")),
        Recall(probas_threshold=threshold, tests=tests("recall")),
    ]


def classification_datasets(
    labelled: pd.DataFrame, reference: pd.DataFrame
) -> tuple[Dataset, Dataset | None]:
    """The labelled rows' scores and labels, and the reference's beside them in the report
    when the reference has both classes (else None)."""
    definition = DataDefinition(
        numerical_columns=[SCORE_COLUMN],
        categorical_columns=[LABEL_COLUMN],
        classification=[
            BinaryClassification(target=LABEL_COLUMN, prediction_probas=SCORE_COLUMN, pos_label=1)
        ],
    )
    columns = [SCORE_COLUMN, LABEL_COLUMN]
    rows = labelled[columns].astype({SCORE_COLUMN: "float64", LABEL_COLUMN: "int64"})
    reference_dataset = None
    if LABEL_COLUMN in reference.columns and reference[LABEL_COLUMN].nunique() == 2:
        reference_rows = reference[columns].astype({SCORE_COLUMN: "float64", LABEL_COLUMN: "int64"})
        reference_dataset = Dataset.from_pandas(reference_rows.reset_index(drop=True), definition)
    return Dataset.from_pandas(rows.reset_index(drop=True), definition), reference_dataset


def read_classification(
    snapshot: dict[str, Any],
    labelled: pd.DataFrame,
    threshold: float,
    test_metrics: dict[str, float],
    max_drop: float,
) -> ClassificationCheck:
    """The quality metrics of the report's `Snapshot.dict()`, their change from the test
    metrics, and those whose test failed.

    Raises:
        RuntimeError: the snapshot lacks one of `QUALITY_METRICS`.
    """
    statuses = test_statuses(snapshot)
    metrics: dict[str, float] = {}
    degraded: list[str] = []
    for metric in snapshot["metrics"]:
        name = _QUALITY_TYPES.get(metric["config"]["type"])
        if name is None:
            continue
        metrics[name] = float(metric["value"])
        if name in test_metrics and failed(statuses, metric["id"], name):
            degraded.append(name)
    if set(metrics) != set(QUALITY_METRICS):
        raise RuntimeError(f"Evidently's snapshot lacks quality metrics: found {sorted(metrics)}")
    return ClassificationCheck(
        labelled_rows=len(labelled),
        positives=int((labelled[LABEL_COLUMN] == 1).sum()),
        threshold=threshold,
        metrics=metrics,
        test_metrics=test_metrics,
        change={name: metrics[name] - value for name, value in test_metrics.items()},
        max_quality_drop=max_drop,
        degraded=degraded,
    )
