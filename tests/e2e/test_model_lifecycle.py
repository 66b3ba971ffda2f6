"""Promotion, rollback and the API following the champion alias, on a real registry.

Two real pipeline runs: a small-data champion (v1), then a model trained on more data
that beats it and takes the alias (v2). Serving's model holder follows the alias; a
version whose ONNX file fails its parity sample never replaces a working model.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from typer.testing import CliRunner

from benchmarks.serving import free_port, wait_ready
from cli.main import app as cli
from features.churn_frames import ENTITY_KEY
from features.feature_repo.churn import CHURN_FEATURES_FILE
from mlops.model_bundle import download_bundle
from mlops.prediction_log import read_predictions
from mlops.registry import champion_history
from mlops.settings import Settings
from serving.app import create_app
from serving.model_holder import ModelHolder
from tests.helpers.runs import CHURN_RUN_CUSTOMERS, isolated_home

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
runner = CliRunner()


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory, prefect_server: None) -> Iterator[Path]:
    from pipelines.churn_flow import churn_pipeline

    home = tmp_path_factory.mktemp("lifecycle")
    with isolated_home(home):
        first = churn_pipeline(customers=300)
        second = churn_pipeline(customers=CHURN_RUN_CUSTOMERS)
    assert first["aliases"] == ["champion"]
    assert second["aliases"] == ["champion"], second["gate_reason"]
    assert "beats champion v1" in second["gate_reason"]
    yield home


@pytest.fixture
def lifecycle_settings(two_versions: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MLOPS_HOME", str(two_versions))
    monkeypatch.setenv("MLOPS_SERVED_MODELS", "churn")
    return Settings()


def champion(settings: Settings) -> str:
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    return str(client.get_model_version_by_alias("churn", "champion").version)


def test_promote_rollback_and_the_holder_follows(lifecycle_settings: Settings) -> None:
    settings = lifecycle_settings
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    holder = ModelHolder("churn")
    assert holder.refresh(settings)
    assert holder.current.version == "2"
    assert not holder.refresh(settings), "same alias, same version: nothing to load"

    result = runner.invoke(cli, ["rollback", "churn"])
    assert result.exit_code == 0, result.output
    assert champion(settings) == "1"
    assert holder.refresh(settings)
    assert holder.current.version == "1"

    result = runner.invoke(cli, ["promote", "churn", "--version", "2", "--reason", "test"])
    assert result.exit_code == 0, result.output
    assert holder.refresh(settings)
    assert holder.current.version == "2"
    assert client.get_model_version("churn", "2").tags["promotion_reason"] == "test"
    assert champion_history(client, "churn")[-1] == "2"

    result = runner.invoke(cli, ["promote", "churn", "--version", "99"])
    assert result.exit_code == 2
    assert "no version 99" in result.stderr


def test_a_version_failing_parity_never_replaces_the_working_model(
    lifecycle_settings: Settings,
) -> None:
    settings = lifecycle_settings
    holder = ModelHolder("churn")
    assert holder.refresh(settings)
    working = holder.current.version
    other = "1" if working == "2" else "2"
    # Corrupt the other version's cached ONNX file: it now scores like the working one, so
    # it could not reproduce its own native probabilities; its digest, checked first, no
    # longer matches the version's tag either.
    cache = settings.models_dir
    download_bundle(settings.tracking_uri, "churn", cache, version=other)  # fill the cache
    shutil.copy(
        cache / f"churn-v{working}" / "model.onnx", cache / f"churn-v{other}" / "model.onnx"
    )

    assert runner.invoke(cli, ["promote", "churn", "--version", other]).exit_code == 0
    assert not holder.refresh(settings)
    assert holder.current.version == working
    assert "model.onnx changed after registration" in (holder.last_error or "")
    # Put the alias back for the other tests of this module.
    assert runner.invoke(cli, ["promote", "churn", "--version", working]).exit_code == 0
    shutil.rmtree(cache / f"churn-v{other}")


def test_the_api_follows_the_alias_without_a_restart(
    lifecycle_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_MODEL_REFRESH_S", "0.2")
    settings = Settings()
    with TestClient(create_app(settings)) as api:
        before = api.get("/v1/churn/model").json()["version"]
        target = "1" if before == "2" else "2"
        assert runner.invoke(cli, ["promote", "churn", "--version", target]).exit_code == 0
        deadline = time.monotonic() + 60
        while api.get("/v1/churn/model").json()["version"] != target:
            assert time.monotonic() < deadline, "the API did not follow the alias in 60 s"
            time.sleep(0.2)
        assert api.get("/health/ready").status_code == 200


def test_rolling_back_past_the_first_champion_is_refused(lifecycle_settings: Settings) -> None:
    client = MlflowClient(tracking_uri=lifecycle_settings.tracking_uri)
    while len(champion_history(client, "churn")) > 1:
        assert runner.invoke(cli, ["rollback", "churn"]).exit_code == 0
    result = runner.invoke(cli, ["rollback", "churn"])
    assert result.exit_code == 2
    assert "no earlier champion" in result.stderr


def test_load_through_reloads_and_a_graceful_shutdown_loses_nothing(
    lifecycle_settings: Settings, tmp_path: Path
) -> None:
    """A real server under steady load: the champion moves twice, then the server gets
    SIGTERM. No request fails, answers switch version without a gap, and every answered
    prediction is in the prediction log after the shutdown."""
    settings = lifecycle_settings
    ids = customer_ids(settings)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    env |= {
        "MLOPS_HOME": str(settings.home),
        "MLOPS_SERVED_MODELS": "churn",
        "MLOPS_MODEL_REFRESH_S": "0.2",
        # Writes on a slow clock: the shutdown, not the clock, must write the tail.
        "MLOPS_PREDICTION_LOG_FLUSH_S": "30",
    }
    command = [sys.executable, "-m", "cli", "serve", "--port", str(port)]
    server_log = tmp_path / "server.log"
    with server_log.open("wb") as sink:
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=sink)
    base = f"http://127.0.0.1:{port}"
    load = Load(base, ids, workers=4)
    try:
        wait_ready(server, f"{base}/health/ready", server_log)
        load.start()
        start_version = champion(settings)
        for target in ("1" if start_version == "2" else "2", start_version):
            assert runner.invoke(cli, ["promote", "churn", "--version", target]).exit_code == 0
            load.wait_for_version(target, timeout_s=60)
        load.serving = False  # from here, a refused connection is the shutdown's doing
        answered_before_term = len(load.answers)
        server.send_signal(signal.SIGTERM)
        # Uvicorn shuts down gracefully, then re-raises the signal: killed by SIGTERM.
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
        load.stop()
    assert load.transport_errors_while_serving == []
    assert len(load.answers) > 50, "too little load to prove anything"
    assert [status for status, _, _ in load.answers if status != 200] == []
    # Both versions answered, and the load ended on the one promoted back.
    versions = [version for _, version, _ in load.answers[:answered_before_term]]
    assert set(versions) == {"1", "2"}
    assert versions[-1] == start_version
    logged = set(read_predictions(settings.prediction_log_uri, model="churn")["request_id"])
    answered = {request_id for status, _, request_id in load.answers if status == 200}
    assert answered <= logged, f"{len(answered - logged)} answered predictions not logged"


def customer_ids(settings: Settings) -> list[str]:
    table = pd.read_parquet(settings.features_dir / CHURN_FEATURES_FILE)
    return [str(i) for i in table[ENTITY_KEY].drop_duplicates().head(50)]


class Load:
    """Closed-loop clients posting predictions, each with its own request id."""

    def __init__(self, base: str, ids: list[str], workers: int) -> None:
        self._base, self._ids, self._workers = base, ids, workers
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(w,)) for w in range(workers)]
        self.serving = True
        self.answers: list[tuple[int, str | None, str]] = []  # status, model version, id
        self.transport_errors_while_serving: list[str] = []

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def wait_for_version(self, version: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not (self.answers and self.answers[-1][1] == version):
            assert time.monotonic() < deadline, f"answers did not switch to v{version}"
            time.sleep(0.1)

    def _run(self, worker: int) -> None:
        with httpx.Client(base_url=self._base, timeout=10) as client:
            i = worker
            while not self._stop.is_set():
                request_id = f"load-{worker}-{i}"
                try:
                    answer = client.post(
                        "/v1/churn/predict",
                        json={"customer_id": self._ids[i % len(self._ids)]},
                        headers={"X-Request-ID": request_id},
                    )
                except httpx.TransportError as error:
                    if self.serving:
                        self.transport_errors_while_serving.append(repr(error))
                    return  # the server is going away: stop sending
                version = answer.json().get("model", {}).get("version")
                self.answers.append((answer.status_code, version, request_id))
                i += self._workers
