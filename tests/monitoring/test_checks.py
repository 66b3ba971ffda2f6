"""Monitoring checks on small seeded frames: drift, prediction drift, data and label quality."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score

from mlops.prediction_log import Prediction, PredictionLog, read_predictions
from monitoring.check_results import MonitoringResult
from monitoring.checks import binary_features
from tests.monitoring.served_frames import (
    FEATURES,
    REFERENCE,
    SHIFTED,
    TEST_METRICS,
    THRESHOLD,
    check,
    served_frame,
)


@pytest.fixture(scope="module")
def same() -> MonitoringResult:
    current = served_frame(1500, seed=2)
    return check(current, current)


@pytest.fixture(scope="module")
def shifted() -> MonitoringResult:
    return check(served_frame(1500, seed=3, shifted=True))


def test_flags_are_categorical_by_default() -> None:
    assert binary_features(REFERENCE, FEATURES) == ["paperless", "fiber"]


def test_binary_features_are_those_whose_present_values_are_0_or_1() -> None:
    """As `dropna().isin((0, 1))` says, for every kind of column a reference may hold."""
    frame = pd.DataFrame(
        {
            "flag": [0.0, 1.0, np.nan, 1.0],
            "ints": [0, 1, 1, 0],
            "bools": [True, False, True, True],
            "nullable": pd.array([1, None, 0, 1], dtype="Int64"),
            "all_missing": [np.nan] * 4,
            "fraction": [0.0, 1.0, 0.5, 1.0],
            "infinite": [0.0, 1.0, np.inf, 0.0],
            "text": ["0", "1", "1", "0"],
            "objects": pd.Series([0, 1, None, 1], dtype=object),
        }
    )
    names = list(frame.columns)
    expected = [
        name
        for name in names
        if frame[name].notna().any() and frame[name].dropna().isin((0, 1)).all()
    ]
    assert binary_features(frame, names) == expected
    assert expected == ["flag", "ints", "bools", "nullable", "objects"]


def test_same_distribution_is_neither_data_nor_prediction_drift(same: MonitoringResult) -> None:
    drift = same.data_drift
    assert drift.dataset_drift is False
    assert set(drift.per_feature) == set(FEATURES)
    assert len(drift.drifted_features) <= 1
    assert same.prediction_drift.drifted is False
    # Above 1,000 rows Evidently measures the score's drift as a distance.
    assert same.prediction_drift.method == "Wasserstein distance (normed)"
    assert same.data_quality.passed is True
    assert same.data_quality.failures == []
    assert (same.current_rows, same.reference_rows) == (1500, 3000)


def test_shifted_window_is_data_and_prediction_drift(shifted: MonitoringResult) -> None:
    drift = shifted.data_drift
    assert drift.dataset_drift is True
    assert set(SHIFTED) <= set(drift.drifted_features)
    assert drift.drift_share == pytest.approx(len(drift.drifted_features) / len(FEATURES))
    assert drift.per_feature["fiber"]["column_type"] == "categorical"
    assert drift.per_feature["tenure_months"]["column_type"] == "numerical"
    assert shifted.prediction_drift.drifted is True
    assert shifted.prediction_drift.score > shifted.prediction_drift.threshold
    # No labels in this window: no quality check, and the result says why.
    assert shifted.classification is None
    assert shifted.classification_skipped == "no labelled predictions in the window"


def test_drift_runs_on_a_bounded_sample(shifted: MonitoringResult) -> None:
    sampled = check(served_frame(1500, seed=3, shifted=True), drift_sample_rows=1000)
    assert (sampled.data_drift.current_rows, sampled.data_drift.reference_rows) == (1000, 1000)
    assert set(SHIFTED) <= set(sampled.data_drift.drifted_features)
    # Data quality still sees every row.
    assert sampled.data_quality.rows == 1500


def test_data_quality_flags_missing_out_of_range_and_new_categories() -> None:
    current = served_frame(1000, seed=4)
    current.loc[:49, "sessions"] = np.nan  # 5% missing
    current.loc[100:139, "monthly_charges"] = 500.0  # 4% far above the reference's range
    current.loc[200:204, "paperless"] = 2.0  # a value no reference row had
    result = check(current)
    quality = result.data_quality

    assert quality.passed is False
    assert sorted(quality.failures) == [
        "monthly_charges: out of the reference's range",
        "paperless: values the reference never had",
        "sessions: missing values",
    ]
    sessions = quality.per_feature["sessions"]
    assert (sessions["missing_count"], sessions["missing_share"]) == (50, pytest.approx(0.05))
    charges = quality.per_feature["monthly_charges"]
    assert charges["out_of_reference_count"] == 40
    assert quality.per_feature["paperless"]["out_of_reference_count"] == 5
    assert quality.per_feature["tenure_months"]["failed"] == []
    assert quality.max_missing_share == pytest.approx(0.05)


def test_quality_on_labelled_rows_matches_the_definitions(same: MonitoringResult) -> None:
    labelled = served_frame(1500, seed=2)
    quality = same.classification
    assert quality is not None
    assert quality.labelled_rows == 1500
    assert quality.positives == int(labelled["label"].sum())
    y, score = labelled["label"], labelled["score"]
    decision = score >= THRESHOLD
    assert quality.metrics["roc_auc"] == pytest.approx(roc_auc_score(y, score))
    assert quality.metrics["average_precision"] == pytest.approx(average_precision_score(y, score))
    assert quality.metrics["precision"] == pytest.approx(precision_score(y, decision))
    assert quality.metrics["recall"] == pytest.approx(recall_score(y, decision))
    # Compared with the model's test metrics of the same name.
    assert quality.test_metrics["average_precision"] == TEST_METRICS["average_precision"]
    assert quality.change["roc_auc"] == pytest.approx(quality.metrics["roc_auc"] - 0.8)


def test_a_quality_drop_is_reported_by_evidently_tests() -> None:
    current = served_frame(1500, seed=5)
    # Labels that no longer follow the score: the model lost its skill.
    noise = current.assign(label=np.random.default_rng(6).permutation(current["label"]))
    result = check(current, noise, max_quality_drop=0.05)
    assert result.classification is not None
    assert result.classification.metrics["roc_auc"] < 0.6
    assert "roc_auc" in result.classification.degraded
    assert "average_precision" in result.classification.degraded

    good = check(current, current)
    assert good.classification is not None
    assert "roc_auc" not in good.classification.degraded


@pytest.mark.parametrize(
    ("labelled", "reason"),
    [
        (served_frame(10, seed=7), "10 labelled predictions, fewer than 30"),
        (served_frame(100, seed=7).assign(label=0), "one class only"),
    ],
)
def test_too_few_or_one_class_labels_give_no_quality_check(
    labelled: pd.DataFrame, reason: str
) -> None:
    result = check(served_frame(300, seed=8), labelled)
    assert result.classification is None
    assert result.classification_skipped is not None
    assert reason in result.classification_skipped


def test_result_is_json(shifted: MonitoringResult) -> None:
    data = json.loads(json.dumps(shifted.to_dict(), allow_nan=False))
    assert data["model_name"] == "churn"
    assert data["model_version"] == "3"
    assert data["data_drift"]["drifted_features"] == shifted.data_drift.drifted_features
    assert data["classification"] is None
    assert "reports" not in data
    assert {report.kind for report in shifted.reports} == {"drift", "data_quality"}


def test_bad_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="missing from the current frame"):
        check(served_frame(100, seed=9).drop(columns=["sessions"]))
    with pytest.raises(ValueError, match="no rows"):
        check(served_frame(100, seed=9).iloc[:0])
    with pytest.raises(ValueError, match="non-numeric"):
        check(served_frame(100, seed=9).assign(sessions="many"))


def test_checks_a_window_read_from_the_prediction_log(tmp_path: Path) -> None:
    """The current frame as `read_predictions` gives it: extra columns, NaN stored as null."""
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    log = PredictionLog(url, tmp_path / "spool", flush_s=0.05)
    log.start()
    served = served_frame(400, seed=10)
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    for i, row in served.iterrows():
        values = [float(row[name]) for name in FEATURES]
        if i < 8:
            values[FEATURES.index("sessions")] = float("nan")
        log.append(
            Prediction(
                request_id=f"r{i}",
                endpoint="/v1/churn/predict",
                model_name="churn",
                model_version="3",
                entity={"customer_id": f"c{i}"},
                feature_names=FEATURES,
                feature_values=values,
                score=float(row["score"]),
                decision=bool(row["score"] >= THRESHOLD),
                time=start + timedelta(seconds=int(i)),
            )
        )
    log.close()
    current = read_predictions(url, model="churn")

    result = check(current)
    assert result.current_rows == 400
    assert result.data_quality.per_feature["sessions"]["missing_count"] == 8
    assert result.window_start == start
    assert result.window_end == start + timedelta(seconds=399)
    assert result.data_drift.dataset_drift is False
