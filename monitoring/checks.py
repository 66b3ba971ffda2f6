"""Monitoring checks of a served model: drift, prediction drift, data quality, quality on labels.

`run_checks` compares a window of served predictions (`current`, from the prediction log)
with the model version's training reference (`mlops.reference`) and, once delayed
labels have arrived, scores the labelled predictions against the model's test metrics. It
runs up to three Evidently reports, and every number and pass/fail in the result is read
from their snapshots:

- **drift** (on a seeded sample of at most `drift_sample_rows` rows of each side): one
  `ValueDrift` per feature and `DriftedColumnsCount` (the share of drifted features,
  Evidently's per-column method choice), and a `ValueDrift` of the `score` column
  (prediction drift), with Evidently's choice too: a K-S p-value up to 1,000 rows, the normed
  Wasserstein distance above. A fixed distance is no test on small windows: between two
  samples of one distribution it is about 1/sqrt(n) (0.1 to 0.15 at 200 rows, the threshold
  itself), so it would cry drift on every quiet hour; the p-value's false-alarm rate does
  not depend on n. The sample bounds the cost: the drift methods Evidently picks
  above 1,000 rows are distances with fixed thresholds (normed Wasserstein, Jensen-Shannon),
  whose estimates move by about 1/sqrt(n), so 20,000 rows give the verdict of 100,000 at a
  fifth of the cost (docs/benchmarks.md). The per-metric set, not `DataDriftPreset`: the
  preset computes every column's drift a third time to render its summary table.
- **data quality** (every current row): `MissingValueCount` per feature, `OutRangeValueCount`
  against the reference's [min, max] of each numerical feature, `OutListValueCount` against
  the reference's values of each categorical feature (new categories), each with an
  Evidently test on its share at the declared `QualityLimits`.
- **classification** (labelled rows, both classes present): `RocAuc`, `Precision` and
  `Recall` at the model's threshold, and average precision, which Evidently 0.7 does not
  have, as a small Evidently metric of our own (`AveragePrecision`, scikit-learn's
  `average_precision_score`) so it lands in the snapshot and the dashboard like the others.
  Each has a test: at most `max_quality_drop` below the model's test metric.

Column types: numerical unless declared categorical; by default a feature whose reference
values are all 0 or 1 (flags and one-hot columns) is categorical.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal, TypedDict

import numpy as np
import pandas as pd
from evidently import BinaryClassification, DataDefinition, Dataset, Report
from evidently.core.metric_types import SingleValue, SingleValueCalculation, SingleValueMetric
from evidently.core.report import Context, Snapshot
from evidently.metrics import (
    DriftedColumnsCount,
    MissingValueCount,
    OutListValueCount,
    OutRangeValueCount,
    Precision,
    Recall,
    RocAuc,
    RowCount,
    ValueDrift,
)
from evidently.tests import gte, lte
from sklearn.metrics import average_precision_score

from mlops.reference import LABEL_COLUMN, SCORE_COLUMN
from monitoring.drift import (
    DRIFT_SHARE_THRESHOLD,
    ColumnDrift,
    data_definition,
    failed,
    read_column_drift,
    read_drift,
    test_statuses,
)

__all__ = [
    "DRIFT_SAMPLE_ROWS",
    "AveragePrecision",
    "CheckReport",
    "ClassificationCheck",
    "DataDrift",
    "DataQuality",
    "FeatureQuality",
    "MonitoringResult",
    "PredictionDrift",
    "QualityLimits",
    "binary_features",
    "json_ready",
    "run_checks",
]

DRIFT_SAMPLE_ROWS: Final = 20_000
"""Rows of each side the drift report sees at most (see the module doc)."""
MIN_LABELLED_ROWS: Final = 30
"""Fewer labelled rows than this give no quality check: the metrics would be noise."""
QUALITY_METRICS: Final = ("roc_auc", "average_precision", "precision", "recall")
_SAMPLE_SEED: Final = 0


class AveragePrecision(SingleValueMetric):
    """Average precision of the probabilities of a binary classification (scikit-learn's)."""

    class Config:
        # Starts with Evidently's prefix so dashboard panels accept it; the dot keeps it
        # apart from any metric Evidently may add under the plain name.
        type_alias = "evidently:metric_v2:mlops.AveragePrecision"

    classification_name: str = "default"


class AveragePrecisionCalculation(SingleValueCalculation[AveragePrecision]):
    def calculate(
        self, context: Context, current_data: Dataset, reference_data: Dataset | None
    ) -> tuple[SingleValue, SingleValue | None]:
        return self._on(current_data), None if reference_data is None else self._on(reference_data)

    def display_name(self) -> str:
        return "Average precision"

    def _on(self, dataset: Dataset) -> SingleValue:
        task = dataset.data_definition.get_classification(self.metric.classification_name)
        if not isinstance(task, BinaryClassification) or task.prediction_probas is None:
            raise ValueError("AveragePrecision needs a binary classification with probabilities")
        frame = dataset.as_dataframe()
        actual = (frame[task.target] == task.pos_label).to_numpy()
        probas = frame[str(task.prediction_probas)].to_numpy(dtype=np.float64)
        return self.result(float(average_precision_score(actual, probas)))


@dataclass(frozen=True)
class QualityLimits:
    """Largest share of a feature's current values allowed to be missing, out of the
    reference's range, or a value the reference never had, before its test fails."""

    missing_share: float = 0.01
    # A 5,000-row reference's min and max are exceeded by about 0.04% of new draws from
    # the same distribution; 1% means the range itself moved.
    out_of_range_share: float = 0.01
    new_category_share: float = 0.0


class FeatureQuality(TypedDict):
    """Evidently's data-quality figures for one feature of the current window."""

    column_type: Literal["numerical", "categorical"]
    missing_count: int
    missing_share: float
    # Numerical features: outside the reference's [min, max]; categorical: values it never had.
    out_of_reference_count: int
    out_of_reference_share: float
    failed: list[str]


@dataclass(frozen=True)
class DataDrift:
    dataset_drift: bool
    drift_share: float
    drift_share_threshold: float
    drifted_features: list[str]
    per_feature: dict[str, ColumnDrift]
    reference_rows: int
    current_rows: int  # the sample the drift report saw


@dataclass(frozen=True)
class PredictionDrift:
    drifted: bool
    # A p-value (drift below the threshold) or a distance (drift above it): see `method`.
    score: float
    method: str
    threshold: float


@dataclass(frozen=True)
class DataQuality:
    rows: int
    # The worst feature's: one feature gone missing is the usual failure, and averaged over
    # every feature it would look harmless.
    max_missing_share: float
    passed: bool
    failures: list[str]  # "<feature>: <check>"
    per_feature: dict[str, FeatureQuality]
    limits: QualityLimits


@dataclass(frozen=True)
class ClassificationCheck:
    labelled_rows: int
    positives: int
    threshold: float
    metrics: dict[str, float]
    test_metrics: dict[str, float]  # the same names, from the model's test window
    change: dict[str, float]  # metrics - test_metrics
    max_quality_drop: float
    degraded: list[str]  # metrics whose Evidently test failed (more than the allowed drop)


@dataclass(frozen=True)
class CheckReport:
    """One Evidently snapshot a check run produced, and what it covers."""

    kind: Literal["drift", "data_quality", "classification"]
    snapshot: Snapshot


@dataclass(frozen=True)
class MonitoringResult:
    """What one check run found. `to_dict()` is its JSON form; `reports` stay in memory."""

    model_name: str
    model_version: str
    checked_at: datetime  # UTC
    window_start: datetime | None
    window_end: datetime | None
    current_rows: int
    reference_rows: int
    data_drift: DataDrift
    prediction_drift: PredictionDrift
    data_quality: DataQuality
    classification: ClassificationCheck | None
    # Why no quality check ran, when it did not (no labels yet, too few, one class only).
    classification_skipped: str | None = None
    reports: tuple[CheckReport, ...] = field(default=(), repr=False, compare=False)

    SCHEMA_VERSION: ClassVar[int] = 1

    def to_dict(self) -> dict[str, Any]:
        data = {
            name: value
            for name, value in asdict(self).items()
            if name not in ("reports", "checked_at", "window_start", "window_end")
        }
        return json_ready(
            {
                "schema_version": self.SCHEMA_VERSION,
                **data,
                "checked_at": self.checked_at.isoformat(),
                "window_start": _iso(self.window_start),
                "window_end": _iso(self.window_end),
            }
        )


def binary_features(reference: pd.DataFrame, feature_names: Sequence[str]) -> list[str]:
    """Features whose reference values are all 0 or 1: flags and one-hot columns."""
    return [
        name
        for name in feature_names
        if reference[name].notna().any() and reference[name].dropna().isin((0, 1)).all()
    ]


def run_checks(
    model_name: str,
    version: str,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    labelled: pd.DataFrame | None = None,
    *,
    feature_names: Sequence[str],
    threshold: float,
    test_metrics: Mapping[str, float],
    categorical_features: Sequence[str] | None = None,
    drift_share_threshold: float = DRIFT_SHARE_THRESHOLD,
    limits: QualityLimits | None = None,
    max_quality_drop: float = 0.05,
    drift_sample_rows: int = DRIFT_SAMPLE_ROWS,
    checked_at: datetime | None = None,
) -> MonitoringResult:
    """Check a window of served predictions of `model_name` v`version` (see the module doc).

    `reference` is the version's reference (features, `score`, `label`); `current` the
    prediction log's window (one column per feature, `score`, and `time` if known; other
    columns are ignored); `labelled` its predictions that have a label (`score`, `label`).
    `feature_names`, `threshold` and `test_metrics` are the bundle's (`BundleMeta`).

    Raises:
        ValueError: an empty reference or window, a feature missing from either, a
            non-numeric feature, or a threshold out of range.
    """
    features = list(feature_names)
    if not 0 < drift_share_threshold <= 1:
        raise ValueError(f"drift_share_threshold must be in (0, 1], got {drift_share_threshold}")
    if drift_sample_rows < 1:
        raise ValueError(f"drift_sample_rows must be positive, got {drift_sample_rows}")
    limits = limits or QualityLimits()
    checked_at = (checked_at or datetime.now(UTC)).astimezone(UTC)
    ref = _model_frame(reference, features, "reference")
    cur = _model_frame(current, features, "current")
    categorical = (
        binary_features(ref, features)
        if categorical_features is None
        else [name for name in features if name in set(categorical_features)]
    )
    numerical = [name for name in features if name not in set(categorical)]
    tags = [model_name, f"v{version}"]
    metadata = {"model": model_name, "model_version": str(version)}
    # Evidently's local storage compares naive timestamps: UTC, without the offset.
    timestamp = checked_at.replace(tzinfo=None)

    def run(
        report: Report, current_rows: Dataset, reference_rows: Dataset | None, kind: str
    ) -> Snapshot:
        return report.run(
            current_rows,
            reference_rows,
            timestamp=timestamp,
            metadata={**metadata, "check": kind},
            tags=[*tags, kind],
            name=f"{model_name} v{version} {kind} {checked_at:%Y-%m-%d %H:%M} UTC",
        )

    drift_columns = [*features, SCORE_COLUMN]
    drift_definition = data_definition([*numerical, SCORE_COLUMN], categorical)
    drift_snapshot = run(
        Report(
            [
                DriftedColumnsCount(columns=features, drift_share=drift_share_threshold),
                *(ValueDrift(column=name) for name in features),
                ValueDrift(column=SCORE_COLUMN),
            ],
            include_tests=True,
        ),
        Dataset.from_pandas(_sample(cur, drift_sample_rows)[drift_columns], drift_definition),
        Dataset.from_pandas(_sample(ref, drift_sample_rows)[drift_columns], drift_definition),
        "drift",
    )
    drift_dict = drift_snapshot.dict()
    dataset_drift, drift_share, per_feature = read_drift(drift_dict, numerical, categorical)
    score_drift = read_column_drift(drift_dict, SCORE_COLUMN, "numerical")

    quality_definition = data_definition(numerical, categorical)
    quality_snapshot = run(
        Report(_quality_metrics(ref, numerical, categorical, limits), include_tests=True),
        Dataset.from_pandas(cur[features], quality_definition),
        Dataset.from_pandas(ref[features], quality_definition),
        "data_quality",
    )
    data_quality = _read_quality(quality_snapshot.dict(), numerical, categorical, limits)

    reports = [CheckReport("drift", drift_snapshot), CheckReport("data_quality", quality_snapshot)]
    classification, skipped = None, _why_no_quality_check(labelled)
    if labelled is not None and skipped is None:
        compared = _compared_test_metrics(test_metrics)
        classification_snapshot = _classification_report(
            labelled, reference, threshold, compared, max_quality_drop, run
        )
        classification = _read_classification(
            classification_snapshot.dict(), labelled, threshold, compared, max_quality_drop
        )
        reports.append(CheckReport("classification", classification_snapshot))

    times = pd.to_datetime(current["time"], utc=True) if "time" in current.columns else None
    return MonitoringResult(
        model_name=model_name,
        model_version=str(version),
        checked_at=checked_at,
        window_start=None if times is None else times.min().to_pydatetime(),
        window_end=None if times is None else times.max().to_pydatetime(),
        current_rows=len(cur),
        reference_rows=len(ref),
        data_drift=DataDrift(
            dataset_drift=dataset_drift,
            drift_share=drift_share,
            drift_share_threshold=drift_share_threshold,
            drifted_features=[name for name, drift in per_feature.items() if drift["drifted"]],
            per_feature=per_feature,
            reference_rows=min(len(ref), drift_sample_rows),
            current_rows=min(len(cur), drift_sample_rows),
        ),
        prediction_drift=PredictionDrift(
            drifted=score_drift["drifted"],
            score=score_drift["drift_score"],
            method=score_drift["method"],
            threshold=score_drift["threshold"],
        ),
        data_quality=data_quality,
        classification=classification,
        classification_skipped=skipped,
        reports=tuple(reports),
    )


def _model_frame(frame: pd.DataFrame, features: list[str], name: str) -> pd.DataFrame:
    """The features and the score as float64 (the log's nulls become NaN)."""
    if frame.empty:
        raise ValueError(f"the {name} frame has no rows")
    missing = [col for col in [*features, SCORE_COLUMN] if col not in frame.columns]
    if missing:
        raise ValueError(f"columns missing from the {name} frame: {missing}")
    try:
        return frame[[*features, SCORE_COLUMN]].astype("float64").reset_index(drop=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f"the {name} frame has non-numeric feature values: {error}") from error


def _sample(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    return frame if len(frame) <= rows else frame.sample(rows, random_state=_SAMPLE_SEED)


def _quality_metrics(
    reference: pd.DataFrame, numerical: list[str], categorical: list[str], limits: QualityLimits
) -> list[Any]:
    features = numerical + categorical
    metrics: list[Any] = [RowCount()]
    for name in features:
        metrics.append(MissingValueCount(column=name, share_tests=[lte(limits.missing_share)]))
    for name in numerical:
        values = reference[name].dropna()
        if not values.empty:
            metrics.append(
                OutRangeValueCount(
                    column=name,
                    left=float(values.min()),
                    right=float(values.max()),
                    share_tests=[lte(limits.out_of_range_share)],
                )
            )
    for name in categorical:
        known = sorted(float(v) for v in reference[name].dropna().unique())
        metrics.append(
            OutListValueCount(
                column=name, values=known, share_tests=[lte(limits.new_category_share)]
            )
        )
    return metrics


_MISSING: Final = "evidently:metric_v2:MissingValueCount"
_OUT_OF_RANGE: Final = "evidently:metric_v2:OutRangeValueCount"
_OUT_OF_LIST: Final = "evidently:metric_v2:OutListValueCount"
_ROW_COUNT: Final = "evidently:metric_v2:RowCount"
_CHECK_NAMES: Final = {
    _MISSING: "missing values",
    _OUT_OF_RANGE: "out of the reference's range",
    _OUT_OF_LIST: "values the reference never had",
}


def _read_quality(
    snapshot: dict[str, Any], numerical: list[str], categorical: list[str], limits: QualityLimits
) -> DataQuality:
    statuses = test_statuses(snapshot)
    per_feature: dict[str, FeatureQuality] = {
        name: FeatureQuality(
            column_type="numerical" if name in numerical else "categorical",
            missing_count=0,
            missing_share=0.0,
            out_of_reference_count=0,
            out_of_reference_share=0.0,
            failed=[],
        )
        for name in numerical + categorical
    }
    rows = 0
    for metric in snapshot["metrics"]:
        kind, value = metric["config"]["type"], metric["value"]
        if kind == _ROW_COUNT:
            rows = int(value)
        elif kind in _CHECK_NAMES:
            name = metric["config"]["column"]
            quality = per_feature[name]
            count, share = int(value["count"]), _share(value["share"])
            if kind == _MISSING:
                quality["missing_count"], quality["missing_share"] = count, share
            else:
                quality["out_of_reference_count"] = count
                quality["out_of_reference_share"] = share
            if failed(statuses, metric["id"], f"{_CHECK_NAMES[kind]} of {name!r}"):
                quality["failed"].append(_CHECK_NAMES[kind])
    failures = [f"{name}: {check}" for name, q in per_feature.items() for check in q["failed"]]
    return DataQuality(
        rows=rows,
        max_missing_share=max(quality["missing_share"] for quality in per_feature.values()),
        passed=not failures,
        failures=failures,
        per_feature=per_feature,
        limits=limits,
    )


def _why_no_quality_check(labelled: pd.DataFrame | None) -> str | None:
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


def _compared_test_metrics(test_metrics: Mapping[str, float]) -> dict[str, float]:
    """The model's test metrics that a quality metric of the check is compared with."""
    return {name: float(test_metrics[name]) for name in QUALITY_METRICS if name in test_metrics}


def _classification_report(
    labelled: pd.DataFrame,
    reference: pd.DataFrame,
    threshold: float,
    test_metrics: dict[str, float],
    max_drop: float,
    run: Any,
) -> Snapshot:
    def tests(name: str) -> list[Any] | None:
        # No test metric to compare with: Evidently's own default (better than a dummy model).
        return [gte(test_metrics[name] - max_drop)] if name in test_metrics else None

    definition = DataDefinition(
        numerical_columns=[SCORE_COLUMN],
        categorical_columns=[LABEL_COLUMN],
        classification=[
            BinaryClassification(target=LABEL_COLUMN, prediction_probas=SCORE_COLUMN, pos_label=1)
        ],
    )
    columns = [SCORE_COLUMN, LABEL_COLUMN]
    rows = labelled[columns].astype({SCORE_COLUMN: "float64", LABEL_COLUMN: "int64"})
    metrics = [
        RowCount(),
        RocAuc(probas_threshold=threshold, tests=tests("roc_auc")),
        AveragePrecision(tests=tests("average_precision")),
        Precision(probas_threshold=threshold, tests=tests("precision")),
        Recall(probas_threshold=threshold, tests=tests("recall")),
    ]
    # The reference's own figures, beside the window's in the report, when it has both classes.
    reference_dataset = None
    if LABEL_COLUMN in reference.columns and reference[LABEL_COLUMN].nunique() == 2:
        reference_rows = reference[columns].astype({SCORE_COLUMN: "float64", LABEL_COLUMN: "int64"})
        reference_dataset = Dataset.from_pandas(reference_rows.reset_index(drop=True), definition)
    return run(
        Report(metrics, include_tests=True),
        Dataset.from_pandas(rows.reset_index(drop=True), definition),
        reference_dataset,
        "classification",
    )


_QUALITY_TYPES: Final = {
    "evidently:metric_v2:RocAuc": "roc_auc",
    AveragePrecision.__get_type__(): "average_precision",
    "evidently:metric_v2:Precision": "precision",
    "evidently:metric_v2:Recall": "recall",
}


def _read_classification(
    snapshot: dict[str, Any],
    labelled: pd.DataFrame,
    threshold: float,
    test_metrics: dict[str, float],
    max_drop: float,
) -> ClassificationCheck:
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


def _share(value: Any) -> float:
    share = float(value)
    return 0.0 if math.isnan(share) else share  # an all-missing column: no values to judge


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def json_ready(value: Any) -> Any:
    """NaN and infinities as null: strict JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value
