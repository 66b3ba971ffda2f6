"""Where check results go: the Evidently workspace, HTML reports and the latest figures.

- **Workspace** (`MLOPS_HOME/monitoring/workspace`): a local Evidently workspace with one
  project per model, created once with its dashboard (drift share and prediction drift
  over time, quality on labelled predictions, missing and out-of-range values). Every
  check run adds its snapshots, stamped with the check's time, so `evidently ui` (or
  `mlops ui monitoring`) draws each model over time.
- **HTML reports** (`MLOPS_HOME/monitoring/reports/<model>/`): Evidently's self-contained
  report of each snapshot.
- **Latest figures** (`MLOPS_HOME/monitoring/latest/<model>.json`): the last check's
  result and the last decision, written atomically; `mlops.monitoring_results` exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mlops.monitoring_results import ACTIONS, Action, read_latest, write_latest

if TYPE_CHECKING:
    from evidently.ui.workspace import Project, Workspace

    from mlops.settings import Settings
    from monitoring.check_results import MonitoringResult

__all__ = [
    "DASHBOARD_PANELS",
    "RecordedCheck",
    "ensure_project",
    "open_workspace",
    "record_check",
    "record_decision",
    "reports_dir",
    "workspace_dir",
]

# (tab, title, plot type, [(metric, labels, legend, snapshot tags)]): the dashboard of every
# model. Panels select values by metric type and labels, so a panel follows its metric
# across every snapshot of the project. The drift share and the score's drift are bars: the
# UI's line chart scales its axis to the values alone and labels its ticks in whole
# numbers, so one check's share of 0.28 showed on a single tick labelled 0; bars start
# at 0, and the axis shows the value.
_Series = tuple[str, dict[str, str], str, list[str]]
DASHBOARD_PANELS: Final[list[tuple[str, str, str, list[_Series]]]] = [
    (
        "Drift",
        "Share of drifted features",
        "bar",
        [("DriftedColumnsCount", {"value_type": "share"}, "drifted share", [])],
    ),
    (
        "Drift",
        "Prediction drift (drift score of the model's score)",
        "bar",
        [("ValueDrift", {"column": "score"}, "score drift", [])],
    ),
    (
        "Drift",
        "Drifted features",
        "counter",
        [("DriftedColumnsCount", {"value_type": "count"}, "drifted features", [])],
    ),
    (
        "Model quality",
        "Quality on labelled predictions",
        "line",
        [
            ("RocAuc", {}, "ROC-AUC", []),
            ("mlops.AveragePrecision", {}, "average precision", []),
            ("Precision", {}, "precision at the threshold", []),
            ("Recall", {}, "recall at the threshold", []),
        ],
    ),
    (
        "Model quality",
        "Labelled predictions",
        "line",
        [("RowCount", {}, "labelled rows", ["classification"])],
    ),
    (
        "Data quality",
        "Missing values (share per feature)",
        "line",
        [("MissingValueCount", {"value_type": "share"}, "missing share", [])],
    ),
    (
        "Data quality",
        "Out-of-range share per feature",
        "bar",
        [("OutRangeValueCount", {"value_type": "share"}, "out of range", [])],
    ),
    (
        "Data quality",
        "Rows checked",
        "line",
        [("RowCount", {}, "rows", ["data_quality"])],
    ),
]


@dataclass(frozen=True)
class RecordedCheck:
    """Where one check run was recorded."""

    project_id: str
    snapshot_ids: dict[str, str]  # kind -> snapshot id
    html_reports: dict[str, Path]  # kind -> file
    latest: Path


def workspace_dir(settings: Settings) -> Path:
    """The Evidently workspace's folder under MLOPS_HOME (not created here)."""
    return settings.monitoring_dir / "workspace"


def reports_dir(settings: Settings) -> Path:
    """The folder of the checks' HTML reports, one subfolder per model (not created here)."""
    return settings.monitoring_dir / "reports"


def open_workspace(settings: Settings) -> Workspace:
    """The local Evidently workspace under MLOPS_HOME, created if needed."""
    from evidently.ui.workspace import Workspace

    folder = workspace_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    return Workspace(str(folder))


def ensure_project(workspace: Workspace, model_name: str) -> Project:
    """The model's project; created with its dashboard the first time, left as it is after."""
    found = workspace.search_project(model_name)
    if found:
        return found[0]
    project = workspace.create_project(
        model_name,
        description=(
            f"Monitoring of the '{model_name}' model: served predictions against its "
            "training reference, and quality once labels arrive."
        ),
    )
    workspace.save_dashboard(project.id, _dashboard())
    return project


def record_check(settings: Settings, result: MonitoringResult) -> RecordedCheck:
    """Add the result's snapshots to the model's project, write their HTML and the latest
    figures; a decision recorded earlier for the model is kept until the next one."""
    from monitoring.check_results import json_ready

    workspace = open_workspace(settings)
    project = ensure_project(workspace, result.model_name)
    stamp = result.checked_at.strftime("%Y%m%dT%H%M%SZ")
    out_dir = reports_dir(settings) / result.model_name
    out_dir.mkdir(parents=True, exist_ok=True)
    snapshot_ids: dict[str, str] = {}
    html_reports: dict[str, Path] = {}
    for report in result.reports:
        ref = workspace.add_run(project.id, report.snapshot)
        snapshot_ids[report.kind] = str(ref.id)
        html = out_dir / f"{stamp}-v{result.model_version}-{report.kind}.html"
        # Evidently's save_* silently write nothing unless given a str.
        report.snapshot.save_html(str(html))
        html_reports[report.kind] = html
    previous = read_latest(settings.monitoring_dir, result.model_name) or {}
    path = write_latest(
        settings.monitoring_dir,
        result.model_name,
        {
            **json_ready(_headline(result)),
            "decision": previous.get("decision"),
            "project_id": str(project.id),
            "snapshots": snapshot_ids,
            "html_reports": {kind: str(file) for kind, file in html_reports.items()},
            "result": result.to_dict(),
        },
    )
    return RecordedCheck(str(project.id), snapshot_ids, html_reports, path)


def record_decision(
    settings: Settings,
    model_name: str,
    decision: Action,
    reason: str,
    *,
    decided_at: datetime | None = None,
) -> Path:
    """Keep the latest decision for the model beside its latest check (for Prometheus)."""
    if decision not in ACTIONS:
        raise ValueError(f"unknown decision {decision!r}; known: {', '.join(ACTIONS)}")
    latest = read_latest(settings.monitoring_dir, model_name) or {"model": model_name}
    latest["decision"] = {
        "decision": decision,
        "reason": reason,
        "decided_at": (decided_at or datetime.now(UTC)).astimezone(UTC).isoformat(),
    }
    return write_latest(settings.monitoring_dir, model_name, latest)


def _headline(result: MonitoringResult) -> dict[str, Any]:
    """The figures dashboards and alerts read, flat."""
    classification = result.classification
    return {
        "model": result.model_name,
        "model_version": result.model_version,
        "checked_at": result.checked_at.isoformat(),
        "current_rows": result.current_rows,
        "dataset_drift": result.data_drift.dataset_drift,
        "drift_share": result.data_drift.drift_share,
        "prediction_drift_score": result.prediction_drift.score,
        "prediction_drift_method": result.prediction_drift.method,
        "prediction_drift": result.prediction_drift.drifted,
        "prediction_drift_threshold": result.prediction_drift.threshold,
        "max_missing_share": result.data_quality.max_missing_share,
        "data_quality_passed": result.data_quality.passed,
        "quality": None if classification is None else classification.metrics,
        "labelled_rows": 0 if classification is None else classification.labelled_rows,
    }


def _dashboard() -> Any:
    from evidently.sdk.models import DashboardModel, DashboardTabModel, PanelMetric
    from evidently.sdk.panels import bar_plot_panel, counter_panel, line_plot_panel

    makers = {"line": line_plot_panel, "bar": bar_plot_panel, "counter": counter_panel}
    tabs: dict[str, list[Any]] = {}
    panels = []
    for tab, title, kind, series in DASHBOARD_PANELS:
        panel = makers[kind](
            title=title,
            values=[
                PanelMetric(legend=legend, metric=metric, metric_labels=labels, tags=tags)
                for metric, labels, legend, tags in series
            ],
            size="half",
        )
        panels.append(panel)
        tabs.setdefault(tab, []).append(panel.id)
    return DashboardModel(
        tabs=[DashboardTabModel(title=title, panels=ids) for title, ids in tabs.items()],
        panels=panels,
    )
