"""Check results in the Evidently workspace, as HTML, as latest figures and as Prometheus gauges."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from evidently.ui.workspace import Workspace
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlops.monitoring_results import MonitoringCollector, latest_path, read_latest
from mlops.settings import Settings
from monitoring.check_results import MonitoringResult
from monitoring.workspace import (
    DASHBOARD_PANELS,
    record_check,
    record_decision,
    workspace_dir,
)
from tests.monitoring.served_frames import check, served_frame

CHECKED_AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def results() -> list[MonitoringResult]:
    """Two hourly checks of the churn model: a quiet window with labels, then a shifted one."""
    quiet = served_frame(600, seed=11)
    return [
        check(quiet, quiet, checked_at=CHECKED_AT),
        check(served_frame(600, seed=12, shifted=True), checked_at=CHECKED_AT + timedelta(hours=1)),
    ]


def test_each_check_lands_in_the_models_project(
    settings: Settings, results: list[MonitoringResult]
) -> None:
    recorded = [record_check(settings, result) for result in results]

    workspace = Workspace(str(workspace_dir(settings)))
    projects = workspace.search_project("churn")
    assert len(projects) == 1  # created once, reused by the second check
    project = projects[0]
    assert {r.project_id for r in recorded} == {str(project.id)}
    # The quiet window had labels (three reports), the shifted one had none (two).
    assert [set(r.snapshot_ids) for r in recorded] == [
        {"drift", "data_quality", "classification"},
        {"drift", "data_quality"},
    ]
    stored = workspace.list_runs(project.id)
    assert len(stored) == 5
    timestamps = sorted({workspace.get_run(project.id, sid).timestamp for sid in stored})
    assert timestamps == [
        CHECKED_AT.replace(tzinfo=None),
        (CHECKED_AT + timedelta(hours=1)).replace(tzinfo=None),
    ]

    dashboard = workspace.get_dashboard(project.id)
    assert [panel.title for panel in dashboard.panels] == [
        title for _, title, _, _ in DASHBOARD_PANELS
    ]
    assert {tab.title for tab in dashboard.tabs} == {"Drift", "Model quality", "Data quality"}


def test_html_reports_and_latest_figures(
    settings: Settings, results: list[MonitoringResult]
) -> None:
    recorded = record_check(settings, results[1])

    for kind, html in recorded.html_reports.items():
        assert html.parent == settings.monitoring_dir / "reports" / "churn"
        assert html.name == f"20260302T110000Z-v3-{kind}.html"
        assert "<html" in html.read_text(encoding="utf-8")[:2000]

    latest = read_latest(settings.monitoring_dir, "churn")
    assert latest is not None
    assert recorded.latest == latest_path(settings.monitoring_dir, "churn")
    assert latest["drift_share"] == results[1].data_drift.drift_share
    assert latest["dataset_drift"] is True
    assert latest["prediction_drift_score"] == results[1].prediction_drift.score
    assert latest["quality"] is None
    assert latest["decision"] is None
    assert latest["result"] == json.loads(json.dumps(results[1].to_dict()))


def test_a_decision_is_kept_until_the_next_one(
    settings: Settings, results: list[MonitoringResult]
) -> None:
    record_check(settings, results[0])
    record_decision(settings, "churn", "retrain", "6 of 6 features drifted")
    record_check(settings, results[1])  # a later check keeps the decision
    latest = read_latest(settings.monitoring_dir, "churn")
    assert latest is not None
    assert latest["decision"]["decision"] == "retrain"
    assert latest["decision"]["reason"] == "6 of 6 features drifted"
    with pytest.raises(ValueError, match="unknown decision"):
        record_decision(settings, "churn", "panic", "no")  # type: ignore[arg-type]


def _scrape(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }


def test_prometheus_gauges_follow_the_latest_files(
    settings: Settings, results: list[MonitoringResult]
) -> None:
    registry = CollectorRegistry()
    registry.register(MonitoringCollector(settings.monitoring_dir))
    assert _scrape(registry) == {("mlops_monitoring_read_errors", frozenset()): 0.0}

    record_check(settings, results[0])
    record_decision(settings, "churn", "nothing", "quiet")
    churn = frozenset({("model", "churn")})
    samples = _scrape(registry)
    assert samples[("mlops_drift_share", churn)] == results[0].data_drift.drift_share
    assert samples[("mlops_dataset_drift", churn)] == 0.0
    assert samples[("mlops_prediction_drift", churn)] == float(results[0].prediction_drift.drifted)
    assert samples[("mlops_prediction_drift_score", churn)] == pytest.approx(
        results[0].prediction_drift.score
    )
    assert results[0].classification is not None
    roc_auc = frozenset({("model", "churn"), ("metric", "roc_auc")})
    assert samples[("mlops_model_quality", roc_auc)] == results[0].classification.metrics["roc_auc"]
    assert (
        samples[("mlops_monitoring_last_check_timestamp_seconds", churn)] == CHECKED_AT.timestamp()
    )
    decisions = {
        dict(labels)["decision"]: value
        for (name, labels), value in samples.items()
        if name == "mlops_monitoring_decision"
    }
    assert decisions == {"nothing": 1.0, "alert": 0.0, "retrain": 0.0}

    # The next scrape reads the files again: a new check and decision show up at once.
    record_check(settings, results[1])
    record_decision(settings, "churn", "retrain", "drift")
    samples = _scrape(registry)
    assert samples[("mlops_dataset_drift", churn)] == 1.0
    assert samples[("mlops_monitoring_decision", churn | {("decision", "retrain")})] == 1.0
    assert ("mlops_model_quality", roc_auc) not in samples  # that window had no labels

    # A broken file is counted, not fatal, and the other models still export.
    latest_path(settings.monitoring_dir, "fraud").write_text("{not json", encoding="utf-8")
    samples = _scrape(registry)
    assert samples[("mlops_monitoring_read_errors", frozenset())] == 1.0
    assert samples[("mlops_dataset_drift", churn)] == 1.0
