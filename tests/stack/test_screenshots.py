"""`mlops screenshots`: the services it starts are the table's, blank pictures are not kept,
and on a trained home it takes every page as a real picture, the API docs included."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mlops.settings import Settings
from stack.mlflow_auth import without_auth
from stack.screenshots import (
    MAX_PNG_BYTES,
    MIN_COLOURS,
    WINDOW,
    Shot,
    _checked,
    free_ports,
    screenshot_services,
)
from stack.services import Topology, service_table
from tests.helpers.runs import run_mlops
from tests.helpers.services import require_chromium

PORTS = {"api": 18471, "mlflow": 18472, "evidently-ui": 18473}


def test_the_services_are_the_tables_on_the_homes_own_stores(settings: Settings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "mlflow.db").touch()  # a home where something was tracked
    taken = {s.name: s for s in screenshot_services(settings, PORTS, ["churn"])}
    ported = settings.model_copy(
        update={"api_port": 18471, "stack_mlflow_port": 18472, "stack_evidently_port": 18473}
    )
    table = service_table(Topology.native(ported, admin_token="", prefect_auth_string=""))
    assert set(taken) == {"api", "mlflow", "evidently-ui"}
    for name, service in taken.items():
        # MLflow on the home's store runs without the stack's auth app (no users there).
        expected = without_auth(table[name].command) if name == "mlflow" else table[name].command
        assert service.command == expected, name
        assert service.health_path == table[name].health_path
        assert service.port == PORTS[name]
    # MLflow serves the home's SQLite file, not the stack's PostgreSQL database.
    assert taken["mlflow"].environment["MLFLOW_BACKEND_STORE_URI"] == settings.tracking_uri
    # The API reads the home as `mlops serve` does: no stack profile, Redis nor PostgreSQL.
    assert taken["api"].environment == {
        "MLOPS_HOME": str(settings.home),
        "MLOPS_SERVED_MODELS": "churn",
    }
    assert f"{settings.home}/monitoring/workspace" in taken["evidently-ui"].command


def test_free_ports_skip_a_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = free_ports(3, taken)
    assert taken not in ports and len(set(ports)) == 3
    assert all(port > taken for port in ports)


def _picture(path: Path, *, blank: bool) -> Path:
    image = Image.new("RGB", WINDOW, "white")
    if not blank:
        image = Image.effect_noise(WINDOW, 60).convert("RGB")
    image.save(path)
    return path


def test_a_blank_page_is_not_kept(tmp_path: Path) -> None:
    path = _picture(tmp_path / "blank.png", blank=True)
    result = _checked(Shot("blank", "http://127.0.0.1:1/"), path)
    assert result.problem and result.path is None and not path.exists()


def test_a_picture_is_kept_as_a_palette_png_of_the_same_size(tmp_path: Path) -> None:
    path = _picture(tmp_path / "page.png", blank=False)
    result = _checked(Shot("page", "http://127.0.0.1:1/"), path)
    assert result.problem is None and result.path == path and result.size == WINDOW
    with Image.open(path) as image:
        assert image.mode == "P" and image.size == WINDOW
    assert result.bytes == path.stat().st_size


def _copy_home(churn_run: dict[str, Any], target: Path) -> Path:
    # MLflow's artifacts stay where the session's run put them (their URIs are absolute).
    skip = shutil.ignore_patterns("prefect", "raw", "predictions.db*", "labels", "monitoring")
    shutil.copytree(Path(str(churn_run["home"])), target, ignore=skip)
    return target


@pytest.mark.slow
def test_screenshots_of_a_trained_home(
    churn_run: dict[str, Any], prefect_api: str, tmp_path: Path
) -> None:
    require_chromium()
    home = _copy_home(churn_run, tmp_path / "home")
    built = run_mlops("report", "churn", home=home, prefect_api=prefect_api)
    assert built.returncode == 0, built.stderr[-3000:]
    out = tmp_path / "images"

    result = run_mlops(
        "screenshots",
        "--home",
        str(home),
        "--out",
        str(out),
        "--first-port",
        "18460",
        "--json",
        home=home,
        prefect_api=prefect_api,
    )

    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    shots = {shot["name"]: shot for shot in summary["shots"]}
    assert set(shots) == {"churn-walkthrough", "churn-monitoring", "churn-mlflow-run", "api-docs"}
    # Swagger UI's scripts are the API's own (serving/routes/api_docs.py): drawn offline too.
    for name, shot in shots.items():
        path = Path(shot["path"])
        assert path == out / f"{name}.png"
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == WINDOW, name
            found = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert found is None or len(found) >= MIN_COLOURS, f"{name}: {found and len(found)} colours"
        assert path.stat().st_size < MAX_PNG_BYTES, name
    # The dashboard had no check: two ran on simulated traffic, and the home keeps them.
    decisions = home / "monitoring" / "decisions" / "churn.jsonl"
    assert len(decisions.read_text().splitlines()) == 2
    # Every process it started is stopped.
    assert "stopping screenshots-api" in result.stdout
