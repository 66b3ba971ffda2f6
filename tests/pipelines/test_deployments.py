"""The scheduled deployments (monitoring, labels): one per model, on the declared interval,
built by Prefect."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mlops.settings import Settings
from pipelines.deployments import scheduled_deployments


def test_one_deployment_per_model_hourly_by_default(settings: Settings) -> None:
    entries = scheduled_deployments(settings)
    assert [e.name for e in entries] == [
        "monitor-churn",
        "monitor-fraud",
        "labels-churn",
        "labels-fraud",
    ]
    assert {e.interval for e in entries} == {timedelta(hours=1)}
    assert [e.parameters for e in entries] == [{"model": "churn"}, {"model": "fraud"}] * 2


def test_the_runner_serves_them_on_the_interval_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.deployments import DEPLOYMENTS, all_deployments, build

    monkeypatch.setenv("MLOPS_MONITOR_INTERVAL_S", "900")
    served = all_deployments()
    assert served[: len(DEPLOYMENTS)] == DEPLOYMENTS
    spec = served[len(DEPLOYMENTS)]
    assert spec.name == "monitor-churn"
    deployment = build(spec)
    assert deployment.entrypoint == "pipelines.monitoring_flow.monitor_model"
    assert deployment.parameters == {"model": "churn"}
    (schedule,) = deployment.schedules
    assert schedule.schedule.interval == timedelta(minutes=15)


def test_the_bootstrap_trains_each_case_study_at_its_deployment_size() -> None:
    import typer

    from cli.main import app
    from pipelines.deployments import DEPLOYMENTS
    from stack.services import BOOTSTRAP_STEPS

    group: Any = typer.main.get_command(app).get_command(None, "pipeline")
    for spec, (name, argv) in zip(DEPLOYMENTS, BOOTSTRAP_STEPS, strict=True):
        assert spec.name == name and argv[:3] == ("mlops", "pipeline", name)
        command = group.get_command(None, name)
        options = command.make_context(name, list(argv[3:])).params
        for key, value in spec.parameters.get("simulation", {}).items():
            assert options[key] == value, f"{name}: --{key}"


def test_in_the_stack_monitoring_and_labels_run_every_few_minutes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stack's worker (its environment from the service table) builds the monitoring
    and label deployments on MLOPS_STACK_MONITOR_INTERVAL_S, 3 minutes by default."""
    from pipelines.deployments import DEPLOYMENTS, all_deployments, build
    from stack.services import Topology, service_table

    assert Settings().stack_monitor_interval_s == 180
    topology = Topology.native(Settings(), admin_token="a" * 32, prefect_auth_string="u:p")
    for key, value in service_table(topology)["prefect-worker"].environment.items():
        if key.startswith("MLOPS_"):
            monkeypatch.setenv(key, value)
    scheduled = all_deployments()[len(DEPLOYMENTS) :]
    assert [spec.name for spec in scheduled] == [
        "monitor-churn",
        "monitor-fraud",
        "labels-churn",
        "labels-fraud",
    ]
    for spec in scheduled:
        deployment = build(spec)
        (schedule,) = deployment.schedules
        assert schedule.schedule.interval == timedelta(minutes=3), spec.name
        assert deployment.parameters == {"model": spec.name.split("-")[1]}
    labels = build(scheduled[2])
    assert labels.entrypoint == "pipelines.label_flow.ingest_labels"


def test_the_prefect_server_turns_a_schedule_into_flow_runs(tmp_path: Path) -> None:
    """Prefect's own scheduler code (what its server runs every minute) on a database of
    its own: with SQLAlchemy 2.1 it failed on every deployment, and no schedule ran."""
    import asyncio

    from prefect.server import models, schemas
    from prefect.server.database import provide_database_interface
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, temporary_settings

    async def schedule() -> int:
        db = provide_database_interface()
        await db.create_db()
        async with db.session_context(begin_transaction=True) as session:
            flow = await models.flows.create_flow(session=session, flow=schemas.core.Flow(name="f"))
            every = schemas.schedules.IntervalSchedule(interval=timedelta(minutes=3))
            deployment = await models.deployments.create_deployment(
                session=session,
                deployment=schemas.core.Deployment(
                    name="d",
                    flow_id=flow.id,
                    schedules=[schemas.core.DeploymentSchedule(schedule=every, active=True)],
                ),
            )
            assert deployment is not None
            runs = await models.deployments.schedule_runs(
                session=session, deployment_id=deployment.id
            )
        return len(runs)

    url = f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}"
    with temporary_settings(updates={PREFECT_API_DATABASE_CONNECTION_URL: url}):
        assert asyncio.run(schedule()) > 0
