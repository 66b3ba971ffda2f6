"""The monitoring deployments: one per model, on the declared interval, built by Prefect."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlops.settings import Settings
from pipelines.monitoring_flow import monitoring_deployments


def test_one_deployment_per_model_hourly_by_default(settings: Settings) -> None:
    entries = monitoring_deployments(settings)
    assert [e["name"] for e in entries] == ["monitor-churn", "monitor-fraud"]
    assert {e["interval"] for e in entries} == {timedelta(hours=1)}
    assert [e["parameters"] for e in entries] == [{"model": "churn"}, {"model": "fraud"}]


def test_the_interval_is_a_setting_and_prefect_builds_the_schedule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.deployments.runner import EntrypointType

    from pipelines.monitoring_flow import monitor_model

    monkeypatch.setenv("MLOPS_MONITOR_INTERVAL_S", "900")
    entry = monitoring_deployments(Settings())[0]
    assert entry["flow"] == "pipelines.monitoring_flow:monitor_model"
    deployment = monitor_model.to_deployment(
        name=entry["name"],
        parameters=entry["parameters"],
        interval=entry["interval"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    assert deployment.entrypoint == entry["flow"].replace(":", ".")
    assert deployment.parameters == {"model": "churn"}
    (schedule,) = deployment.schedules
    assert schedule.schedule.interval == timedelta(minutes=15)
