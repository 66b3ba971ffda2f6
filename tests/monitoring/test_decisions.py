"""The decision rules on constructed check results: each rule, its boundary, and the ranking."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitoring.check_results import (
    ClassificationCheck,
    DataDrift,
    DataQuality,
    MonitoringResult,
    PredictionDrift,
    QualityLimits,
)
from monitoring.decisions import Thresholds, decide, prediction_drifted

THRESHOLDS = Thresholds(
    drift_share_alert=0.2,
    drift_share_retrain=0.5,
    prediction_drift_p_value=0.05,
    prediction_drift_distance=0.1,
    max_quality_drop=0.05,
    min_labelled_rows=200,
    primary_metric="roc_auc",
)
FEATURES = [f"f{i}" for i in range(10)]
KS, WASSERSTEIN = "K-S p_value", "Wasserstein distance (normed)"


def result(
    drifted: int = 0,
    score: float = 0.5,
    method: str = KS,
    quality: dict[str, float] | None = None,
    labelled_rows: int = 500,
    quality_failures: list[str] | None = None,
) -> MonitoringResult:
    """A check result with `drifted` of 10 features drifted, a score drift `score` by
    `method`, quality metrics (test metrics: roc_auc 0.80, precision 0.60)."""
    test_metrics = {"roc_auc": 0.80, "precision": 0.60}
    classification = None
    if quality is not None:
        classification = ClassificationCheck(
            labelled_rows=labelled_rows,
            positives=labelled_rows // 4,
            threshold=0.3,
            metrics=quality,
            test_metrics=test_metrics,
            change={k: quality[k] - v for k, v in test_metrics.items()},
            max_quality_drop=0.05,
            degraded=[],
        )
    return MonitoringResult(
        model_name="churn",
        model_version="1",
        checked_at=datetime(2025, 1, 1, tzinfo=UTC),
        window_start=None,
        window_end=None,
        current_rows=1000,
        reference_rows=1000,
        data_drift=DataDrift(
            dataset_drift=drifted >= 5,
            drift_share=drifted / len(FEATURES),
            drift_share_threshold=0.5,
            drifted_features=FEATURES[:drifted],
            per_feature={},
            reference_rows=1000,
            current_rows=1000,
        ),
        prediction_drift=PredictionDrift(drifted=False, score=score, method=method, threshold=0.05),
        data_quality=DataQuality(
            rows=1000,
            max_missing_share=0.0,
            passed=not quality_failures,
            failures=quality_failures or [],
            per_feature={},
            limits=QualityLimits(),
        ),
        classification=classification,
        classification_skipped=None if quality is not None else "no labelled predictions",
    )


def test_a_quiet_window_calls_for_nothing() -> None:
    decision = decide(result(quality={"roc_auc": 0.80, "precision": 0.60}), THRESHOLDS)
    assert decision.action == "nothing"
    assert decision.reasons[0] == "no threshold crossed"
    assert decision.evidence["drift_share"] == 0
    assert decision.evidence["thresholds"]["drift_share_retrain"] == 0.5


def test_drift_share_boundary_alert_then_retrain() -> None:
    assert decide(result(drifted=1), THRESHOLDS).action == "nothing"  # 10% < 20%
    at_alert = decide(result(drifted=2), THRESHOLDS)  # exactly 20%
    assert at_alert.action == "alert"
    assert "20% of features drifted" in at_alert.reason
    assert decide(result(drifted=4), THRESHOLDS).action == "alert"  # 40% < 50%
    at_retrain = decide(result(drifted=5), THRESHOLDS)  # exactly 50%
    assert at_retrain.action == "retrain"
    assert "f0, f1, f2, f3, f4" in at_retrain.reason


def test_feature_drift_the_score_feels_retrains() -> None:
    felt = decide(result(drifted=2, score=0.01), THRESHOLDS)
    assert felt.action == "retrain"
    assert "the score drifted with them" in felt.reason
    # Score drift with too little feature drift is an alert, not a retrain.
    assert decide(result(drifted=1, score=0.01), THRESHOLDS).action == "alert"


@pytest.mark.parametrize(
    ("method", "score", "drifted"),
    [
        (KS, 0.049, True),
        (KS, 0.05, False),  # the boundary: a p-value at the threshold is no drift
        (WASSERSTEIN, 0.1, True),  # a distance at the threshold is drift
        (WASSERSTEIN, 0.099, False),
    ],
)
def test_prediction_drift_thresholds_by_method(method: str, score: float, drifted: bool) -> None:
    assert prediction_drifted(method, score, THRESHOLDS) is drifted
    action = decide(result(score=score, method=method), THRESHOLDS).action
    assert action == ("alert" if drifted else "nothing")


def test_a_primary_metric_drop_beyond_the_allowance_retrains() -> None:
    # 0.80 - 0.05 = 0.75 is allowed; below it is decay.
    within = decide(result(quality={"roc_auc": 0.7501, "precision": 0.60}), THRESHOLDS)
    assert within.action == "nothing"
    decayed = decide(result(quality={"roc_auc": 0.74, "precision": 0.60}), THRESHOLDS)
    assert decayed.action == "retrain"
    assert "roc_auc 0.740 on 500 labelled predictions is 0.060 below the test 0.800" in (
        decayed.reason
    )
    assert decayed.evidence["quality"]["change"]["roc_auc"] == pytest.approx(-0.06)


def test_a_threshold_metric_dropping_is_noted_not_acted_on() -> None:
    decision = decide(result(quality={"roc_auc": 0.80, "precision": 0.50}), THRESHOLDS)
    assert decision.action == "nothing"
    assert decision.reasons[0] == "no threshold crossed"
    assert decision.reasons[1].startswith(
        "precision 0.500 on 500 labelled predictions is 0.100 below the test 0.600 "
        "(allowed 0.050); noted, not acted on"
    )


def test_too_few_labels_give_no_quality_verdict() -> None:
    few = result(quality={"roc_auc": 0.50, "precision": 0.10}, labelled_rows=199)
    decision = decide(few, THRESHOLDS)
    assert decision.action == "nothing"
    assert "199 labelled predictions, fewer than 200" in decision.reason
    enough = result(quality={"roc_auc": 0.50, "precision": 0.60}, labelled_rows=200)
    assert decide(enough, THRESHOLDS).action == "retrain"


def test_data_quality_failures_alert_but_never_retrain_alone() -> None:
    broken = result(quality_failures=["f3: missing values", "f4: values the reference never had"])
    decision = decide(broken, THRESHOLDS)
    assert decision.action == "alert"
    assert "data quality failed on 2 checks: f3: missing values" in decision.reason


def test_the_strongest_action_wins_and_every_reason_is_kept() -> None:
    decision = decide(
        result(drifted=2, quality={"roc_auc": 0.70, "precision": 0.60}, quality_failures=["x"]),
        THRESHOLDS,
    )
    assert decision.action == "retrain"
    assert len(decision.reasons) == 3  # drift alert, quality decay, data quality


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="drift_share_alert <= drift_share_retrain"):
        Thresholds(drift_share_alert=0.6, drift_share_retrain=0.5)
