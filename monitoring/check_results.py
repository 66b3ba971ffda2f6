"""What a monitoring check run found (`monitoring.checks.run_checks`), and its JSON form.

`MonitoringResult` holds one figure set per check (data drift, prediction drift, data
quality, quality on labelled predictions) and the Evidently snapshots they were read from.
The decision rules (`monitoring.decisions`), the workspace (`monitoring.workspace`) and the
monitoring flow read these types; `json_ready` makes their figures strict JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypedDict

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

    from monitoring.drift import ColumnDrift

__all__ = [
    "CheckKind",
    "CheckReport",
    "ClassificationCheck",
    "DataDrift",
    "DataQuality",
    "FeatureQuality",
    "MonitoringResult",
    "PredictionDrift",
    "QualityLimits",
    "json_ready",
]

CheckKind = Literal["drift", "data_quality", "classification"]


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
    """Evidently's feature drift: the dataset verdict, the drifted share, each feature's test."""

    dataset_drift: bool
    drift_share: float
    drift_share_threshold: float
    drifted_features: list[str]
    per_feature: dict[str, ColumnDrift]
    reference_rows: int
    current_rows: int  # the sample the drift report saw


@dataclass(frozen=True)
class PredictionDrift:
    """Evidently's drift test of the model's score between the reference and the window."""

    drifted: bool
    # A p-value (drift below the threshold) or a distance (drift above it): see `method`.
    score: float
    method: str
    threshold: float


@dataclass(frozen=True)
class DataQuality:
    """The data-quality tests of the window: each feature's figures and the failed tests."""

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
    """Quality on the labelled predictions against the model's test metrics."""

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

    kind: CheckKind
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
        """Every figure but the snapshots, as strict JSON (times in ISO 8601)."""
        # Field by field: `asdict(self)` would deep-copy the snapshots too, and with them
        # the frames their reports ran on (at a million rows, 750 MB and 2.5 s).
        data = {
            item.name: _plain(getattr(self, item.name))
            for item in fields(self)
            if item.name not in ("reports", "checked_at", "window_start", "window_end")
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


def json_ready(value: Any) -> Any:
    """NaN and infinities as null: strict JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    """A dataclass's `asdict`; any other value as it is."""
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
