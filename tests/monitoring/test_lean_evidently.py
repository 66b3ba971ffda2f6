"""The lean drift metrics and dataset give Evidently's own snapshots, figures aside.

Each case runs the check's drift report twice on the same frames: with Evidently's
`ValueDrift`, `DriftedColumnsCount` and `Dataset.from_pandas` (how `run_checks` ran it
before), and with `monitoring.lean_evidently`'s. Every metric id, value, resolved method
and threshold, every test's status and text must be the same; only the widgets differ.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from evidently import Dataset, Report
from evidently.core.report import Snapshot
from evidently.metrics import DriftedColumnsCount, ValueDrift
from evidently.metrics.column_statistics import ValueDriftCalculation

from benchmarks.monitoring import synthetic_frames
from monitoring.check_results import QualityLimits
from monitoring.checks import binary_features, run_checks
from monitoring.data_quality import data_quality_metrics
from monitoring.drift import data_definition, read_column_drift, read_drift
from monitoring.lean_evidently import FrameDataset, LeanDriftedColumnsCount, LeanValueDrift
from tests.monitoring.served_frames import FEATURES, REFERENCE, served_frame

_AT = datetime(2026, 12, 7, 12)


def _drift_snapshot(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    *,
    lean: bool,
    drift_share: float = 0.5,
) -> Snapshot:
    """The check's drift report (`monitoring.checks._drift_check`), stock or lean."""
    categorical = binary_features(reference, features)
    numerical = [name for name in features if name not in categorical]
    definition = data_definition([*numerical, "score"], categorical)
    columns = [*features, "score"]
    value_drift = LeanValueDrift if lean else ValueDrift
    count = LeanDriftedColumnsCount if lean else DriftedColumnsCount
    report = Report(
        [
            count(columns=features, drift_share=drift_share),
            *(value_drift(column=name) for name in features),
            value_drift(column="score"),
        ],
        include_tests=True,
    )
    dataset = FrameDataset if lean else Dataset.from_pandas
    return report.run(
        dataset(current[columns], definition),
        dataset(reference[columns], definition),
        timestamp=_AT,
    )


def _without_widgets(snapshot: Snapshot) -> dict[str, Any]:
    data = json.loads(json.dumps(snapshot.dict(), default=str))
    for metric in data["metrics"]:
        metric.pop("widget", None)
    return data


def _bench_frames(rows: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    reference, current, names, _ = synthetic_frames(rows, 10)
    return reference, current, names


def _with_missing(rows: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    reference, current, names = _bench_frames(rows)
    current.loc[: rows // 10, names[1]] = np.nan
    reference.loc[rows // 2 :, names[4]] = np.nan  # a flag, half missing in the reference
    return reference, current, names


def _with_infinities(rows: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Infinities in a column without missing values: Evidently's count keeps them, its
    per-column test drops them, so the count is Evidently's own here."""
    reference, current, names = _bench_frames(rows)
    current.loc[: rows // 3, names[3]] = np.inf
    return reference, current, names


def _served(rows: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    return REFERENCE, served_frame(rows, seed=3, shifted=True), FEATURES


@pytest.mark.parametrize(
    ("frames", "rows", "drift_share"),
    [
        # Above 1,000 rows: normed Wasserstein and Jensen-Shannon distances.
        (_bench_frames, 3000, 0.5),
        (_bench_frames, 3000, 0.3),  # the dataset drifts
        # Up to 1,000 rows: K-S p-values and the categorical tests.
        (_bench_frames, 600, 0.5),
        (_with_missing, 2000, 0.5),
        (_with_infinities, 2000, 0.5),
        (_served, 800, 0.5),
    ],
    ids=["distances", "dataset-drift", "p-values", "missing", "infinities", "served"],
)
def test_lean_drift_report_is_evidentlys_but_for_the_figures(
    frames: Any, rows: int, drift_share: float
) -> None:
    reference, current, features = frames(rows)
    stock = _drift_snapshot(reference, current, features, lean=False, drift_share=drift_share)
    lean = _drift_snapshot(reference, current, features, lean=True, drift_share=drift_share)

    assert _without_widgets(lean) == _without_widgets(stock)
    # What the check reads from them, verdicts first.
    categorical = binary_features(reference, features)
    numerical = [name for name in features if name not in categorical]
    assert read_drift(lean.dict(), numerical, categorical) == read_drift(
        stock.dict(), numerical, categorical
    )
    assert read_column_drift(lean.dict(), "score", "numerical") == read_column_drift(
        stock.dict(), "score", "numerical"
    )


def test_the_cases_cover_drift_and_no_drift() -> None:
    """The equivalence above is worth something only if its verdicts are not all alike."""
    reference, current, features = _bench_frames(3000)
    snapshot = _drift_snapshot(reference, current, features, lean=True, drift_share=0.3)
    categorical = binary_features(reference, features)
    numerical = [name for name in features if name not in categorical]
    dataset_drift, share, per_column = read_drift(snapshot.dict(), numerical, categorical)
    verdicts = {drift["drifted"] for drift in per_column.values()}
    assert dataset_drift is True and 0 < share < 1 and verdicts == {True, False}


def test_lean_metrics_keep_evidentlys_tags_and_ids_and_leave_its_classes_alone() -> None:
    for stock, lean in [
        (ValueDrift(column="x"), LeanValueDrift(column="x")),
        (DriftedColumnsCount(columns=["x"]), LeanDriftedColumnsCount(columns=["x"])),
    ]:
        assert lean.metric_id == stock.metric_id
        assert lean.dict()["type"] == stock.dict()["type"]
    # The training-time report still gets Evidently's calculation, figures and all.
    assert ValueDrift.__calculation_type__ is ValueDriftCalculation


def test_a_stored_lean_snapshot_reads_back_as_evidentlys() -> None:
    """As the workspace stores it (`Snapshot.dumps`) and the UI loads it."""
    reference, current, features = _bench_frames(600)
    stock = _drift_snapshot(reference, current, features, lean=False)
    lean = _drift_snapshot(reference, current, features, lean=True)
    assert _without_widgets(Snapshot.loads(lean.dumps())) == _without_widgets(stock)


def test_data_quality_report_on_a_frame_dataset_is_the_same_snapshot() -> None:
    current = served_frame(1000, seed=4)
    current.loc[:49, "sessions"] = np.nan
    current.loc[100:139, "monthly_charges"] = 500.0
    current.loc[200:204, "paperless"] = 2.0
    reference = REFERENCE.copy()
    reference.loc[:9, "support_calls"] = np.inf
    categorical = binary_features(reference, FEATURES)
    numerical = [name for name in FEATURES if name not in categorical]
    definition = data_definition(numerical, categorical)

    def snapshot(dataset: Any) -> dict[str, Any]:
        metrics = data_quality_metrics(reference, numerical, categorical, QualityLimits())
        report = Report(metrics, include_tests=True)
        run = report.run(
            dataset(current[FEATURES], definition),
            dataset(reference[FEATURES], definition),
            timestamp=_AT,
        )
        return json.loads(json.dumps(run.dict(), default=str))

    assert snapshot(FrameDataset) == snapshot(Dataset.from_pandas)


def test_data_quality_bounds_are_those_of_the_present_values() -> None:
    """As `dropna()` then min, max and unique said, NaN, infinities and all-missing included."""
    reference = pd.DataFrame(
        {
            "spread": [np.nan, 3.0, -2.5, np.inf, 1.0],
            "all_missing": [np.nan] * 5,
            "flag": [1.0, np.nan, 0.0, 1.0, 1.0],
            "codes": pd.array([2, None, 7, 2, 3], dtype="Int64"),
        }
    )
    metrics = data_quality_metrics(
        reference, ["spread", "all_missing"], ["flag", "codes"], QualityLimits()
    )
    ranges = {m.column: (m.left, m.right) for m in metrics if hasattr(m, "left")}
    lists = {m.column: m.values for m in metrics if hasattr(m, "values")}
    assert ranges == {"spread": (-2.5, float("inf"))}
    assert lists == {"flag": [0.0, 1.0], "codes": [2.0, 3.0, 7.0]}


def test_model_frame_takes_float_columns_as_they_are_and_converts_the_others() -> None:
    """The check reads float64 columns in place, and converts others as `astype` does."""
    current = served_frame(300, seed=5)
    current["support_calls"] = current["support_calls"].astype("int64")
    current["sessions"] = pd.array([None, *current["sessions"][1:]], dtype="Float64")
    current["paperless"] = pd.Series([None, *current["paperless"][1:]], dtype=object)
    result = run_checks(
        "churn",
        "3",
        REFERENCE,
        current,
        feature_names=FEATURES,
        threshold=0.35,
        test_metrics={"roc_auc": 0.8},
    )
    expected = run_checks(
        "churn",
        "3",
        REFERENCE,
        current[[*FEATURES, "score"]].astype("float64"),
        feature_names=FEATURES,
        threshold=0.35,
        test_metrics={"roc_auc": 0.8},
        checked_at=result.checked_at,
    )
    assert result.to_dict() == expected.to_dict()
    assert result.data_quality.per_feature["sessions"]["missing_count"] == 1
    quality_report = next(r for r in result.reports if r.kind == "data_quality")
    checked = quality_report.snapshot.context._input_data[0].as_dataframe()
    assert np.shares_memory(
        checked["monthly_charges"].to_numpy(), current["monthly_charges"].to_numpy()
    )
