"""`mlops ui monitoring` serves the Evidently UI, and each model's dashboard renders in Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from benchmarks.serving import free_port
from mlops.settings import Settings
from monitoring.checks import run_checks
from monitoring.workspace import DASHBOARD_PANELS, record_check
from tests.helpers.services import require_chromium
from tests.monitoring.served_frames import FEATURES, served_frame

pytestmark = pytest.mark.slow

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
    port = free_port()
    env = {**os.environ, "MLOPS_HOME": str(settings.home), "DO_NOT_TRACK": "1"}
    log = (tmp_path / "evidently-ui.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "ui", "monitoring", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # the UI imports a lot; a busy 2-core box is slow
        while True:
            if process.poll() is not None:
                pytest.fail(f"the UI exited with {process.returncode}: {_tail(tmp_path)}")
            try:
                if httpx.get(f"{base}/api/projects", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the UI did not answer within 180 s: {_tail(tmp_path)}")
            time.sleep(1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _tail(tmp_path: Path) -> str:
    return (tmp_path / "evidently-ui.log").read_text(encoding="utf-8")[-3000:]


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
