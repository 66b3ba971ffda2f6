"""Monitoring checks of a served model: drift, prediction drift, data quality, quality on labels.

`run_checks` compares a window of served predictions (`current`, from the prediction log)
with the model version's training reference (`mlops.reference`) and, once delayed
labels have arrived, scores the labelled predictions against the model's test metrics. It
runs up to three Evidently reports, and every number and pass/fail in the result
(`monitoring.check_results`) is read from their snapshots:

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
  preset computes every column's drift a third time to render its summary table. The
  metrics are `monitoring.lean_evidently`'s: Evidently's stattests, ids, values and tests,
  without the figures it would render, and each column's drift computed once.
- **data quality** (every current row, `monitoring.data_quality`): missing values per
  feature, values out of the reference's range or never seen in it, each tested at the
  declared `QualityLimits`. The reports read the frames in place (`FrameDataset`), not
  a copy with statistics no metric reads.
- **classification** (labelled rows, both classes present, `monitoring.classification_quality`):
  `RocAuc`, `Precision` and `Recall` at the model's threshold, and average precision, which
  Evidently 0.7 does not have, as a small Evidently metric of our own
  (`monitoring.evidently_metrics.AveragePrecision`, scikit-learn's `average_precision_score`)
  so it lands in the snapshot and the dashboard like the others. Each has a test: at most
  `max_quality_drop` below the model's test metric.

Column types: numerical unless declared categorical; by default a feature whose reference
values are all 0 or 1 (flags and one-hot columns) is categorical.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import pandas as pd
from evidently import Dataset, Report

from mlops.reference import SCORE_COLUMN
from monitoring.check_results import (
    CheckKind,
    CheckReport,
    ClassificationCheck,
    DataDrift,
    DataQuality,
    MonitoringResult,
    PredictionDrift,
    QualityLimits,
)
from monitoring.classification_quality import (
    classification_datasets,
    classification_quality_metrics,
    compared_test_metrics,
    read_classification,
    why_no_quality_check,
)
from monitoring.data_quality import data_quality_metrics, read_data_quality
from monitoring.drift import (
    DRIFT_SHARE_THRESHOLD,
    data_definition,
    read_column_drift,
    read_drift,
)
from monitoring.lean_evidently import FrameDataset, LeanDriftedColumnsCount, LeanValueDrift

__all__ = ["DRIFT_SAMPLE_ROWS", "binary_features", "run_checks"]

DRIFT_SAMPLE_ROWS: Final = 20_000
"""Rows of each side the drift report sees at most (see the module doc)."""
_SAMPLE_SEED: Final = 0


def binary_features(reference: pd.DataFrame, feature_names: Sequence[str]) -> list[str]:
    """Features whose reference values are all 0 or 1: flags and one-hot columns."""
    return [name for name in feature_names if _is_binary(reference[name])]


def _is_binary(column: pd.Series) -> bool:
    """Whether `column` has a value and every value present is 0 or 1. A numeric column is
    compared as float64 in NumPy: `dropna().isin` hashed a million values per column
    (3.6 of 44 s of a 300,000-row check, profiled)."""
    if not pd.api.types.is_numeric_dtype(column):
        return bool(column.notna().any() and column.dropna().isin((0, 1)).all())
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    present = values[~np.isnan(values)]
    return bool(present.size and np.all((present == 0) | (present == 1)))


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
    Returns the figures and verdicts of each check, with the Evidently snapshots
    (`MonitoringResult.reports`) stamped with `checked_at` (now by default).

    Raises:
        ValueError: an empty reference or window, a feature missing from either, a
            non-numeric feature, or a threshold out of range.
    """
    if not 0 < drift_share_threshold <= 1:
        raise ValueError(f"drift_share_threshold must be in (0, 1], got {drift_share_threshold}")
    if drift_sample_rows < 1:
        raise ValueError(f"drift_sample_rows must be positive, got {drift_sample_rows}")
    limits = limits or QualityLimits()
    run = _ReportRun(model_name, str(version), (checked_at or datetime.now(UTC)).astimezone(UTC))
    ref = _model_frame(reference, feature_names, "reference")
    cur = _model_frame(current, feature_names, "current")
    columns = _Columns.of(ref, feature_names, categorical_features)

    data_drift, prediction_drift, drift_report = _drift_check(
        run, ref, cur, columns, drift_share_threshold, drift_sample_rows
    )
    data_quality, quality_report = _data_quality_check(run, ref, cur, columns, limits)
    reports = [drift_report, quality_report]
    classification, skipped = None, why_no_quality_check(labelled)
    if labelled is not None and skipped is None:
        classification, classification_report = _classification_check(
            run, labelled, reference, threshold, test_metrics, max_quality_drop
        )
        reports.append(classification_report)

    window_start, window_end = _window(current)
    return MonitoringResult(
        model_name=model_name,
        model_version=run.version,
        checked_at=run.checked_at,
        window_start=window_start,
        window_end=window_end,
        current_rows=len(cur),
        reference_rows=len(ref),
        data_drift=data_drift,
        prediction_drift=prediction_drift,
        data_quality=data_quality,
        classification=classification,
        classification_skipped=skipped,
        reports=tuple(reports),
    )


@dataclass(frozen=True)
class _Columns:
    """The features, split by the type Evidently is told they have."""

    features: list[str]
    numerical: list[str]
    categorical: list[str]

    @classmethod
    def of(
        cls,
        reference: pd.DataFrame,
        feature_names: Sequence[str],
        categorical_features: Sequence[str] | None,
    ) -> _Columns:
        features = list(feature_names)
        categorical = (
            binary_features(reference, features)
            if categorical_features is None
            else [name for name in features if name in set(categorical_features)]
        )
        numerical = [name for name in features if name not in set(categorical)]
        return cls(features, numerical, categorical)


@dataclass(frozen=True)
class _ReportRun:
    """Runs the reports of one check run, each stamped with the model, version and time."""

    model_name: str
    version: str
    checked_at: datetime  # UTC

    def __call__(
        self, report: Report, current: Dataset, reference: Dataset | None, kind: CheckKind
    ) -> CheckReport:
        snapshot = report.run(
            current,
            reference,
            # Evidently's local storage compares naive timestamps: UTC, without the offset.
            timestamp=self.checked_at.replace(tzinfo=None),
            metadata={"model": self.model_name, "model_version": self.version, "check": kind},
            tags=[self.model_name, f"v{self.version}", kind],
            name=f"{self.model_name} v{self.version} {kind} {self.checked_at:%Y-%m-%d %H:%M} UTC",
        )
        return CheckReport(kind, snapshot)


def _drift_check(
    run: _ReportRun,
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    columns: _Columns,
    drift_share_threshold: float,
    sample_rows: int,
) -> tuple[DataDrift, PredictionDrift, CheckReport]:
    """Feature drift and the score's drift, on a seeded sample of each side."""
    features = columns.features
    drift_columns = [*features, SCORE_COLUMN]
    definition = data_definition([*columns.numerical, SCORE_COLUMN], columns.categorical)
    report = Report(
        [
            LeanDriftedColumnsCount(columns=features, drift_share=drift_share_threshold),
            *(LeanValueDrift(column=name) for name in features),
            LeanValueDrift(column=SCORE_COLUMN),
        ],
        include_tests=True,
    )
    checked = run(
        report,
        FrameDataset(_sample(cur, sample_rows)[drift_columns], definition),
        FrameDataset(_sample(ref, sample_rows)[drift_columns], definition),
        "drift",
    )
    snapshot = checked.snapshot.dict()
    dataset_drift, drift_share, per_feature = read_drift(
        snapshot, columns.numerical, columns.categorical
    )
    score_drift = read_column_drift(snapshot, SCORE_COLUMN, "numerical")
    data_drift = DataDrift(
        dataset_drift=dataset_drift,
        drift_share=drift_share,
        drift_share_threshold=drift_share_threshold,
        drifted_features=[name for name, drift in per_feature.items() if drift["drifted"]],
        per_feature=per_feature,
        reference_rows=min(len(ref), sample_rows),
        current_rows=min(len(cur), sample_rows),
    )
    prediction_drift = PredictionDrift(
        drifted=score_drift["drifted"],
        score=score_drift["drift_score"],
        method=score_drift["method"],
        threshold=score_drift["threshold"],
    )
    return data_drift, prediction_drift, checked


def _data_quality_check(
    run: _ReportRun, ref: pd.DataFrame, cur: pd.DataFrame, columns: _Columns, limits: QualityLimits
) -> tuple[DataQuality, CheckReport]:
    """Missing, out-of-range and never-seen values of every current row."""
    numerical, categorical = columns.numerical, columns.categorical
    definition = data_definition(numerical, categorical)
    checked = run(
        Report(data_quality_metrics(ref, numerical, categorical, limits), include_tests=True),
        FrameDataset(cur, definition),
        FrameDataset(ref, definition),
        "data_quality",
    )
    return read_data_quality(checked.snapshot.dict(), numerical, categorical, limits), checked


def _classification_check(
    run: _ReportRun,
    labelled: pd.DataFrame,
    reference: pd.DataFrame,
    threshold: float,
    test_metrics: Mapping[str, float],
    max_quality_drop: float,
) -> tuple[ClassificationCheck, CheckReport]:
    """Quality of the labelled predictions against the model's test metrics."""
    compared = compared_test_metrics(test_metrics)
    metrics = classification_quality_metrics(threshold, compared, max_quality_drop)
    current_rows, reference_rows = classification_datasets(labelled, reference)
    checked = run(
        Report(metrics, include_tests=True), current_rows, reference_rows, "classification"
    )
    classification = read_classification(
        checked.snapshot.dict(), labelled, threshold, compared, max_quality_drop
    )
    return classification, checked


def _model_frame(frame: pd.DataFrame, features: Sequence[str], name: str) -> pd.DataFrame:
    """The features and the score as float64 (the log's nulls become NaN).

    A float64 column is taken as it is, not copied: at a million rows a copy of both
    frames was half a gigabyte and a third of the check's time (profiled)."""
    if frame.empty:
        raise ValueError(f"the {name} frame has no rows")
    missing = [col for col in [*features, SCORE_COLUMN] if col not in frame.columns]
    if missing:
        raise ValueError(f"columns missing from the {name} frame: {missing}")
    columns: dict[str, np.ndarray] = {}
    for col in [*features, SCORE_COLUMN]:
        values = frame[col]
        try:
            columns[col] = (
                values.to_numpy(copy=False)
                if values.dtype == np.float64
                else values.astype("float64").to_numpy()
            )
        except (TypeError, ValueError) as error:
            raise ValueError(f"the {name} frame has non-numeric feature values: {error}") from error
    # copy=False keeps one block per column: pandas would otherwise stack them into a copy.
    return pd.DataFrame(columns, copy=False)


def _sample(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    return frame if len(frame) <= rows else frame.sample(rows, random_state=_SAMPLE_SEED)


def _window(current: pd.DataFrame) -> tuple[datetime | None, datetime | None]:
    """The first and last prediction time of the window, when the frame has times."""
    if "time" not in current.columns:
        return None, None
    times = pd.to_datetime(current["time"], utc=True)
    return times.min().to_pydatetime(), times.max().to_pydatetime()
