"""The latest monitoring results of each model: a file monitoring writes, gauges serving exports.

The contract between two stages. The monitoring flow writes each model's last check and
last decision to `<monitoring_dir>/latest/<model>.json` (`write_latest`, atomically);
the API's `/metrics` exports them with `MonitoringCollector`, a custom Prometheus
collector that reads the files at each scrape, so the serving process needs no Evidently
and no state of its own, and a check run in another process shows up at the next scrape.
A file that cannot be read is skipped and counted in `mlops_monitoring_read_errors`.

Gauges, all labelled by `model`:
- `mlops_drift_share`: share of drifted features in the last check;
- `mlops_dataset_drift`: 1 when that share reached its threshold;
- `mlops_prediction_drift_score`: the score's drift score against the reference, as
  Evidently's method for the window size gives it (a K-S p-value up to 1,000 rows, a
  normed Wasserstein distance above);
- `mlops_prediction_drift`: 1 when that score crossed its method's threshold (what to
  alert on: it means the same whatever the method);
- `mlops_missing_value_share`: the largest share of missing values of a feature in the window;
- `mlops_model_quality{metric}`: ROC-AUC, average precision, precision and recall on the
  labelled predictions of the last check (absent when it had too few labels);
- `mlops_monitoring_last_check_timestamp_seconds`;
- `mlops_monitoring_decision{decision}`: 1 for the latest decision (nothing, alert,
  retrain), 0 for the others.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "ACTIONS",
    "Action",
    "MonitoringCollector",
    "latest_path",
    "read_latest",
    "write_latest",
]

Action = Literal["nothing", "alert", "retrain"]
"""What a monitoring decision calls for (`monitoring.decisions`)."""
ACTIONS: Final[tuple[Action, ...]] = ("nothing", "alert", "retrain")


def latest_path(monitoring_dir: Path, model_name: str) -> Path:
    """Where the latest results of `model_name` are kept."""
    return monitoring_dir / "latest" / f"{model_name}.json"


def read_latest(monitoring_dir: Path, model_name: str) -> dict[str, Any] | None:
    """The latest results of a model, or None before its first check."""
    try:
        data: dict[str, Any] = json.loads(
            latest_path(monitoring_dir, model_name).read_text(encoding="utf-8")
        )
    except FileNotFoundError:
        return None
    return data


def write_latest(monitoring_dir: Path, model_name: str, data: dict[str, Any]) -> Path:
    """Replace the latest results of a model. Written then renamed, so a reader (the
    metrics endpoint) never sees half a file; NaN is refused (strict JSON has none)."""
    path = latest_path(monitoring_dir, model_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8"
    ) as handle:
        json.dump(data, handle, indent=2, sort_keys=True, allow_nan=False)
        handle.write("\n")
    os.replace(handle.name, path)
    return path


class MonitoringCollector(Collector):
    """Gauges of the latest monitoring results under `monitoring_dir` (see the module doc)."""

    def __init__(self, monitoring_dir: Path) -> None:
        self.latest_dir = monitoring_dir / "latest"

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only: registering the collector must not read the files.
        yield from self._families().values()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = self._families()
        errors = 0
        for path in sorted(self.latest_dir.glob("*.json")):
            try:
                latest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
                self._add(families, path.stem, latest)
            except (OSError, ValueError, TypeError, AttributeError):
                errors += 1
        families["read_errors"].add_metric([], errors)
        yield from families.values()

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        return {
            "drift_share": GaugeMetricFamily(
                "mlops_drift_share",
                "Share of the model's features Evidently found drifted in the last check.",
                labels=["model"],
            ),
            "dataset_drift": GaugeMetricFamily(
                "mlops_dataset_drift",
                "1 when the drifted share reached its threshold in the last check.",
                labels=["model"],
            ),
            "prediction_drift": GaugeMetricFamily(
                "mlops_prediction_drift_score",
                "Drift score of the model's score against its training reference "
                "(K-S p-value up to 1,000 rows, normed Wasserstein distance above).",
                labels=["model"],
            ),
            "prediction_drifted": GaugeMetricFamily(
                "mlops_prediction_drift",
                "1 when the model's score drifted from its training reference in the last check.",
                labels=["model"],
            ),
            "missing_share": GaugeMetricFamily(
                "mlops_missing_value_share",
                "Largest share of missing values of one feature in the last checked window.",
                labels=["model"],
            ),
            "quality": GaugeMetricFamily(
                "mlops_model_quality",
                "Quality on the labelled predictions of the last check.",
                labels=["model", "metric"],
            ),
            "checked_at": GaugeMetricFamily(
                "mlops_monitoring_last_check_timestamp_seconds",
                "When the model was last checked (Unix time).",
                labels=["model"],
            ),
            "decision": GaugeMetricFamily(
                "mlops_monitoring_decision",
                "1 for the latest monitoring decision of the model, 0 for the others.",
                labels=["model", "decision"],
            ),
            "read_errors": GaugeMetricFamily(
                "mlops_monitoring_read_errors",
                "Latest-results files that could not be read at this scrape.",
            ),
        }

    @staticmethod
    def _add(families: dict[str, GaugeMetricFamily], model: str, latest: dict[str, Any]) -> None:
        for key, name in (
            ("drift_share", "drift_share"),
            ("prediction_drift_score", "prediction_drift"),
            ("max_missing_share", "missing_share"),
        ):
            if isinstance(latest.get(key), int | float):
                families[name].add_metric([model], float(latest[key]))
        for key, name in (
            ("dataset_drift", "dataset_drift"),
            ("prediction_drift", "prediction_drifted"),
        ):
            if isinstance(latest.get(key), bool):
                families[name].add_metric([model], float(latest[key]))
        for metric, value in (latest.get("quality") or {}).items():
            if isinstance(value, int | float):
                families["quality"].add_metric([model, metric], float(value))
        if isinstance(latest.get("checked_at"), str):
            checked_at = datetime.fromisoformat(latest["checked_at"])
            families["checked_at"].add_metric([model], checked_at.timestamp())
        decision = (latest.get("decision") or {}).get("decision")
        if decision in ACTIONS:
            for known in ACTIONS:
                families["decision"].add_metric([model, known], float(known == decision))
