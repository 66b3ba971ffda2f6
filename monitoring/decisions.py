"""What a check result calls for: nothing, an alert, or retraining, from declared thresholds.

`decide` is a pure function of a `MonitoringResult` (`monitoring.checks`) and the
`Thresholds` (settings `MLOPS_MONITOR_*`); it returns a `Decision` with the reasons
that fired and the evidence they read, so every decision can be logged and audited.

Rules, the strongest action wins:

- **retrain** when the model's quality decayed: on at least `min_labelled_rows`
  labelled predictions, its primary metric (ROC-AUC for churn, average precision for
  fraud) is more than `max_quality_drop` below the model's own test metric;
- **retrain** when the inputs moved a lot: the share of drifted features reaches
  `drift_share_retrain` (Evidently's dataset drift);
- **retrain** when the inputs moved and the model felt it: the share reaches
  `drift_share_alert` *and* the score drifted. Drift in features the model ignores
  leaves the score where it was; this is the drift that matters;
- **alert** on drift the model may not feel (a share at `drift_share_alert`), on
  score drift alone (the population changed, or a feature broke upstream), and on
  failed data-quality tests
  (missing values, values out of the reference's range, new categories). Data-quality
  failures never retrain by themselves: retraining on broken inputs learns the break;
- **nothing** otherwise. Too few labels is said in the reasons, not alerted on: labels
  are late by design. A drop of precision or recall at the model's threshold is noted
  too, not acted on: both move with the share of positives in the window (a new
  population) even when the model ranks as well as ever, and on a few hundred rows they
  move by several points by chance; the primary metric is the decay signal.

Prediction drift is judged here with the declared thresholds, whichever method
Evidently chose for the window's size: a K-S p-value (drifted below `p_value`) up to
1,000 rows, a normed Wasserstein distance (drifted above `distance`) beyond.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.monitoring_results import Action

if TYPE_CHECKING:
    from mlops.settings import Settings
    from monitoring.check_results import MonitoringResult

__all__ = ["Action", "Decision", "Thresholds", "decide", "prediction_drifted"]

_RANK: dict[Action, int] = {"nothing": 0, "alert": 1, "retrain": 2}
_Fired = tuple[Action, str]  # a rule's action and its reason
_THRESHOLD_METRICS = "a metric at the threshold moves with the share of positives"


@dataclass(frozen=True)
class Thresholds:
    """The declared thresholds (see the settings' descriptions)."""

    drift_share_alert: float = 0.1
    drift_share_retrain: float = 0.5
    prediction_drift_p_value: float = 0.05
    prediction_drift_distance: float = 0.1
    max_quality_drop: float = 0.05
    min_labelled_rows: int = 200
    primary_metric: str = "roc_auc"

    def __post_init__(self) -> None:
        if not 0 < self.drift_share_alert <= self.drift_share_retrain <= 1:
            raise ValueError(
                "need 0 < drift_share_alert <= drift_share_retrain <= 1, got "
                f"{self.drift_share_alert} and {self.drift_share_retrain}"
            )

    @classmethod
    def from_settings(cls, settings: Settings, primary_metric: str) -> Thresholds:
        """The `MLOPS_MONITOR_*` settings, judging decay on the case study's primary metric."""
        return cls(
            drift_share_alert=settings.monitor_drift_share_alert,
            drift_share_retrain=settings.monitor_drift_share_retrain,
            prediction_drift_p_value=settings.monitor_prediction_drift_p_value,
            prediction_drift_distance=settings.monitor_prediction_drift_distance,
            max_quality_drop=settings.monitor_max_quality_drop,
            min_labelled_rows=settings.monitor_min_labelled_rows,
            primary_metric=primary_metric,
        )


@dataclass(frozen=True)
class Decision:
    """An action, why (one sentence per rule that fired), and the figures it read."""

    action: Action
    reasons: list[str]
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        """Every reason in one line."""
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prediction_drifted(method: str, score: float, thresholds: Thresholds) -> bool:
    """Whether the score's drift score crosses the declared threshold of its method."""
    if "p_value" in method.lower() or "p-value" in method.lower():
        return score < thresholds.prediction_drift_p_value
    return score >= thresholds.prediction_drift_distance


def decide(result: MonitoringResult, thresholds: Thresholds) -> Decision:
    """The action `result` calls for under `thresholds` (see the module doc): the strongest
    action of the rules that fired, every reason (actions first, notes after), the evidence."""
    score = result.prediction_drift
    score_drifted = prediction_drifted(score.method, score.score, thresholds)
    fired = [
        *_drift_rule(result, thresholds, score_drifted),
        *_quality_rule(result, thresholds),
        *_data_quality_rule(result),
    ]
    action: Action = max((a for a, _ in fired), key=_RANK.__getitem__, default="nothing")
    reasons = [reason for a, reason in fired if a != "nothing"] or ["no threshold crossed"]
    reasons += [reason for a, reason in fired if a == "nothing"]
    return Decision(action, reasons, _evidence(result, thresholds, score_drifted))


def _drift_rule(
    result: MonitoringResult, thresholds: Thresholds, score_drifted: bool
) -> list[_Fired]:
    """Feature drift, and the score's drift with it or alone: one reason at most."""
    drift, score = result.data_drift, result.prediction_drift
    share = drift.drift_share
    drifted = ", ".join(drift.drifted_features[:5]) + (
        "..." if len(drift.drifted_features) > 5 else ""
    )
    if share >= thresholds.drift_share_retrain:
        return [
            (
                "retrain",
                f"{share:.0%} of features drifted (retrain at "
                f"{thresholds.drift_share_retrain:.0%}): {drifted}",
            )
        ]
    if share >= thresholds.drift_share_alert and score_drifted:
        return [
            (
                "retrain",
                f"{share:.0%} of features drifted ({drifted}) and the score drifted with them "
                f"({score.method} {score.score:.3g})",
            )
        ]
    if share >= thresholds.drift_share_alert:
        return [
            (
                "alert",
                f"{share:.0%} of features drifted (alert at "
                f"{thresholds.drift_share_alert:.0%}): {drifted}",
            )
        ]
    if score_drifted:
        return [
            ("alert", f"the score drifted ({score.method} {score.score:.3g}) but few features did")
        ]
    return []


def _quality_rule(result: MonitoringResult, thresholds: Thresholds) -> list[_Fired]:
    """Quality on labels: the primary metric's drop retrains, other drops are noted."""
    quality = result.classification
    if quality is None:
        return [("nothing", f"no quality verdict: {result.classification_skipped}")]
    labelled_rows = quality.labelled_rows
    if labelled_rows < thresholds.min_labelled_rows:
        return [
            (
                "nothing",
                f"no quality verdict: {labelled_rows} labelled predictions, fewer than "
                f"{thresholds.min_labelled_rows}",
            )
        ]
    fired: list[_Fired] = []
    for name, change in sorted(quality.change.items()):
        if change >= -thresholds.max_quality_drop:
            continue
        drop = (
            f"{name} {quality.metrics[name]:.3f} on {labelled_rows} labelled predictions "
            f"is {-change:.3f} below the test {quality.test_metrics[name]:.3f} "
            f"(allowed {thresholds.max_quality_drop:.3f})"
        )
        if name == thresholds.primary_metric:
            fired.append(("retrain", drop))
        else:
            fired.append(("nothing", f"{drop}; noted, not acted on: {_THRESHOLD_METRICS}"))
    return fired


def _data_quality_rule(result: MonitoringResult) -> list[_Fired]:
    """Failed data-quality tests alert; they never retrain by themselves."""
    if result.data_quality.passed:
        return []
    failures = result.data_quality.failures
    return [("alert", f"data quality failed on {len(failures)} checks: {', '.join(failures[:5])}")]


def _evidence(
    result: MonitoringResult, thresholds: Thresholds, score_drifted: bool
) -> dict[str, Any]:
    """The figures the rules read, and the thresholds they read them against."""
    quality = result.classification
    labelled_rows = 0 if quality is None else quality.labelled_rows
    quality_evidence: dict[str, Any] = {}
    if quality is not None and labelled_rows >= thresholds.min_labelled_rows:
        quality_evidence = {
            "metrics": quality.metrics,
            "test_metrics": quality.test_metrics,
            "change": quality.change,
        }
    return {
        "model": result.model_name,
        "model_version": result.model_version,
        "current_rows": result.current_rows,
        "drift_share": result.data_drift.drift_share,
        "drifted_features": result.data_drift.drifted_features,
        "prediction_drift_method": result.prediction_drift.method,
        "prediction_drift_score": result.prediction_drift.score,
        "prediction_drifted": score_drifted,
        "labelled_rows": labelled_rows,
        "quality": quality_evidence,
        "data_quality_failures": result.data_quality.failures,
        "thresholds": asdict(thresholds),
    }
