"""`mlops ui mlflow|prefect|monitoring` serve the tools' UIs on a home's own stores.

MLflow shows the session's churn run (its registry and artifacts); Prefect the flow run a
temporary server recorded under the home, as the demo's flows do; the Evidently UI each
model's dashboard, rendered in Chromium.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.serving import free_port
from mlops.settings import Settings
from monitoring.checks import run_checks
from monitoring.workspace import DASHBOARD_PANELS, record_check
from tests.helpers.services import require_chromium
from tests.monitoring.served_frames import FEATURES, served_frame

FIRST_CHECK = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def evidently_ui(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """Two hourly checks per model in the workspace, then the UI as a user starts it."""
    reference = served_frame(2000, seed=21)
    for model in ("churn", "fraud"):
        for hour, shifted in enumerate((False, True)):
            current = served_frame(500, seed=22 + hour, shifted=shifted)
            record_check(
                settings,
                run_checks(
                    model,
                    "1",
                    reference,
                    current,
                    current,
                    feature_names=FEATURES,
                    threshold=0.35,
                    test_metrics={"roc_auc": 0.8},
                    checked_at=FIRST_CHECK + timedelta(hours=hour),
                ),
            )
    with running_ui("monitoring", settings.home, "/api/projects", tmp_path) as base:
        yield base


@contextmanager
def running_ui(ui: str, home: Path, ready_path: str, tmp_path: Path) -> Iterator[str]:
    """`mlops ui <ui>` on `home` in its own process, as a user starts it; yields its base URL
    once `ready_path` answers 200, and stops it after."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    env = {**clean, "MLOPS_HOME": str(home), "DO_NOT_TRACK": "1"}
    log = (tmp_path / "ui.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "ui", ui, "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group: the server's workers stop with it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # the UI imports a lot; a busy 2-core box is slow
        while True:
            if process.poll() is not None:
                pytest.fail(f"the UI exited with {process.returncode}: {_tail(tmp_path)}")
            try:
                if httpx.get(f"{base}{ready_path}", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the UI did not answer within 180 s: {_tail(tmp_path)}")
            time.sleep(1)
        yield base
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _tail(tmp_path: Path) -> str:
    return (tmp_path / "ui.log").read_text(encoding="utf-8")[-3000:]


@pytest.mark.slow
def test_each_models_dashboard_loads_in_chromium(evidently_ui: str, tmp_path: Path) -> None:
    chromium = require_chromium()
    projects = {p["name"]: p["id"] for p in httpx.get(f"{evidently_ui}/api/projects").json()}
    assert set(projects) == {"churn", "fraud"}
    titles = [title for _, title, _, _ in DASHBOARD_PANELS]

    for name, project_id in projects.items():
        # The UI's own API: the dashboard as saved, and the data behind one of its panels.
        dashboard = httpx.get(f"{evidently_ui}/api/v2/dashboards/{project_id}").json()
        assert [panel["title"] for panel in dashboard["panels"]] == titles

        page = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={tmp_path / f'chromium-{name}'}",
                "--virtual-time-budget=30000",
                "--dump-dom",
                f"{evidently_ui}/projects/{project_id}",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env={**os.environ, "TZ": "UTC"},
        )
        assert page.returncode == 0, page.stderr[-2000:]
        dom = page.stdout
        for title in titles:
            assert title in dom, f"{name}: panel {title!r} not rendered"
        # The charts drew the snapshots: their time axis carries both checks' times.
        for hour in (0, 1):
            stamp = FIRST_CHECK + timedelta(hours=hour)
            assert f"{stamp:%Y-%m-%d %H:%M}" in dom, f"{name}: no point at {stamp}"
        assert "ROC-AUC" in dom and "drifted share" in dom


@pytest.mark.slow
def test_mlflow_ui_shows_the_homes_runs_registry_and_artifacts(
    churn_run: dict[str, Any], tmp_path: Path
) -> None:
    with running_ui("mlflow", Path(str(churn_run["home"])), "/health", tmp_path) as base:
        model = httpx.get(
            f"{base}/api/2.0/mlflow/registered-models/get", params={"name": "churn"}
        ).json()["registered_model"]
        assert {"alias": "champion", "version": str(churn_run["model_version"])} in model["aliases"]
        run = httpx.get(
            f"{base}/api/2.0/mlflow/runs/get", params={"run_id": churn_run["run_id"]}
        ).json()["run"]
        assert run["info"]["status"] == "FINISHED"
        # The registered version's run holds the exported model and the plots.
        version = httpx.get(
            f"{base}/api/2.0/mlflow/model-versions/get",
            params={"name": "churn", "version": str(churn_run["model_version"])},
        ).json()["model_version"]
        listed = httpx.get(
            f"{base}/ajax-api/2.0/mlflow/artifacts/list", params={"run_id": version["run_id"]}
        ).json()
        assert {"onnx", "plots"} <= {entry["path"] for entry in listed["files"]}
        assert "<!doctype html>" in httpx.get(f"{base}/").text.lower()


@pytest.mark.slow
def test_prefect_ui_shows_the_flow_runs_recorded_under_the_home(
    isolated_env: Path, tmp_path: Path
) -> None:
    # As the demo's flows run: no PREFECT_API_URL, so Prefect starts a temporary server
    # that records the run in the home's PREFECT_HOME database.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PREFECT_"))}
    (isolated_env / "prefect").mkdir(parents=True)  # as `mlops` commands make it
    flow = subprocess.run(
        [
            sys.executable,
            "-c",
            "from prefect import flow\n"
            "@flow(name='ui-check', flow_run_name='recorded-under-the-home')\n"
            "def ui_check() -> int:\n    return 1\n"
            "ui_check()",
        ],
        env={
            **clean,
            "PREFECT_HOME": str(isolated_env / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert flow.returncode == 0, flow.stderr[-3000:]

    with running_ui("prefect", isolated_env, "/api/health", tmp_path) as base:
        runs = httpx.post(f"{base}/api/flow_runs/filter", json={"limit": 10}).json()
        assert [(r["name"], r["state_name"]) for r in runs] == [
            ("recorded-under-the-home", "Completed")
        ]
        assert httpx.get(f"{base}/ui-settings").json()["api_url"] == f"{base}/api"
        assert "<!doctype html>" in httpx.get(f"{base}/").text.lower()


def test_a_ui_without_its_store_stops_in_one_line(isolated_env: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["ui", "prefect", "--port", "18253"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "no Prefect database at" in result.stderr
    assert not isolated_env.exists(), "nothing is made in the home to say it is empty"
