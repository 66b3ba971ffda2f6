"""Bad model versions in a real registry: the API keeps serving and says so, and recovers.

Each fault is a registered version whose bundle is broken the way a real one breaks: its
ONNX file truncated (onnxruntime's InvalidProtobuf), its artifacts missing (nothing to
download: ArtifactsMissing), its parity sample a truncated zip (BadZipFile), or its ONNX
file replaced in the artifact store after registration by another valid model that would
pass parity (only the digest registered in the version's tags catches it: DigestMismatch).
Promoted while the API serves, the version is refused, the old one keeps answering, readiness, the
model-info route and the metrics say which version failed and why, and the next good
promotion is followed. At startup, a bad champion leaves the API up with the other model
serving.

The registry is a copy of the session churn run's home (SQLite and its artifacts); the
broken versions are real runs with real artifacts, registered beside the champion.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from features.feature_repo.churn import CHURN_FEATURES_FILE
from mlops.model_bundle import BUNDLE_ARTIFACT_PATH, ONNX_FILE, PARITY_FILE, download_bundle
from mlops.names import CHAMPION
from mlops.settings import Settings
from serving.app import create_app
from tests.helpers.live_api import live_api
from tests.helpers.runs import forget_mlflow_uris
from tests.helpers.tampering import register_then_tamper

pytestmark = pytest.mark.slow

# What each fault makes the load fail with: the error's type, as the metric labels it.
FAULT_ERRORS = {
    "truncated_onnx": "InvalidProtobuf",
    "missing_artifacts": "ArtifactsMissing",
    "corrupt_parity_sample": "BadZipFile",
    "tampered_onnx": "DigestMismatch",
}
FAULTS = list(FAULT_ERRORS)
# The alias poll of the served apps: fast, so that each wait below is short.
REFRESH_S = 0.1
WAIT_S = 15.0


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def home(churn_run: dict[str, Any], tmp_path: Path) -> Path:
    """A copy of the session churn run's stores: its registry, features and online store."""
    skip = shutil.ignore_patterns("prefect", "raw", "predictions.db*", "labels", "monitoring")
    target = tmp_path / "home"
    shutil.copytree(Path(str(churn_run["home"])), target, ignore=skip)
    return target


@pytest.fixture
def registry(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_MODEL_REFRESH_S", str(REFRESH_S))
    settings = Settings().prepare()
    # MLflow's registry looks a `models:/m-...` source up through the process-wide
    # tracking URI, not the client's: point it at this home for the test, then forget it.
    mlflow.set_tracking_uri(settings.tracking_uri)
    try:
        yield Registry(settings)
    finally:
        forget_mlflow_uris()


class Registry:
    """The copied home's MLflow registry, with versions broken on purpose."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        uri = settings.tracking_uri
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        self.champion = self.client.get_model_version_by_alias("churn", CHAMPION)
        # New runs store their artifacts in this home, not in the session run's.
        self.experiment = self.client.create_experiment(
            "bad-versions", artifact_location=settings.artifact_root
        )

    def register_bad(self, name: str, fault: str, tmp_path: Path) -> str:
        """A new version of `name`, from a run whose bundle is the champion's broken by `fault`."""
        run = self.client.create_run(self.experiment)
        if fault == "tampered_onnx":
            uri = self.settings.tracking_uri
            run_id = run.info.run_id
            return register_then_tamper(self.client, uri, name, self.champion, run_id, tmp_path)
        if fault != "missing_artifacts":
            champion = str(self.champion.version)
            uri = self.settings.tracking_uri
            good = download_bundle(uri, "churn", tmp_path / "good", version=champion)
            broken = tmp_path / f"{name}-{fault}"
            shutil.copytree(good.folder, broken)
            _truncate(broken / (ONNX_FILE if fault == "truncated_onnx" else PARITY_FILE))
            self.client.log_artifacts(run.info.run_id, str(broken), BUNDLE_ARTIFACT_PATH)
        self.client.set_terminated(run.info.run_id)
        if name != "churn" and not self.client.search_registered_models(f"name = '{name}'"):
            self.client.create_registered_model(name)
        version = self.client.create_model_version(
            name, self.champion.source, run_id=run.info.run_id
        )
        return str(version.version)

    def register_good(self) -> str:
        """A new version of churn from the champion's own run: it loads."""
        version = self.client.create_model_version(
            "churn", self.champion.source, run_id=self.champion.run_id
        )
        return str(version.version)

    def promote(self, name: str, version: str) -> None:
        self.client.set_registered_model_alias(name, CHAMPION, version)


def _wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        time.sleep(REFRESH_S)


def _metric(client: TestClient, line_start: str) -> float | None:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return None


def _admin(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.admin_token.get_secret_value()}"}


def _a_customer(settings: Settings) -> str:
    frame = pd.read_parquet(settings.features_dir / CHURN_FEATURES_FILE, columns=["customer_id"])
    return str(frame["customer_id"].iloc[0])


def _load_warnings(caplog: pytest.LogCaptureFixture, version: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and f"v{version} failed to load" in r.getMessage()
    ]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_bad_promotion_keeps_the_old_version_and_the_next_good_one_is_followed(
    fault: str, registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = registry.settings.model_copy(update={"served_models": ["churn"]})
    old = str(registry.champion.version)
    customer = {"customer_id": _a_customer(settings)}
    error = FAULT_ERRORS[fault]
    failures = f'mlops_model_load_failures_total{{error="{error}",model="churn"}}'
    caplog.set_level(logging.WARNING, logger="serving")
    with TestClient(create_app(settings)) as api:
        assert api.get("/v1/churn/model").json()["version"] == old
        bad = registry.register_bad("churn", fault, tmp_path)
        registry.promote("churn", bad)

        _wait_for(lambda: _metric(api, failures) == 1.0, f"the failure of v{bad} counted")
        # The old version answers, and every place that reports the model says why.
        assert api.post("/v1/churn/predict", json=customer).json()["model"]["version"] == old
        info = api.get("/v1/churn/model").json()
        assert info["version"] == old
        assert info["alias_version"] == bad
        assert info["last_load_error"]["version"] == bad
        assert info["last_load_error"]["reason"].startswith(f"{error}: ")
        ready = api.get("/health/ready")
        assert ready.status_code == 200, "the old version still answers: still ready"
        state = ready.json()["models"]["churn"]
        assert state["version"] == old
        assert state["alias_version"] == bad
        assert state["matches_alias"] is False
        assert state["last_load_error"]["version"] == bad
        assert f"churn v{bad} failed to load: {error}" in ready.json()["model_errors"]["churn"]
        assert _metric(api, 'mlops_model_matches_alias{alias="champion",model="churn"}') == 0.0

        # The poll goes on without trying the broken version again: one warning, one count.
        time.sleep(10 * REFRESH_S)
        assert _metric(api, failures) == 1.0
        assert len(_load_warnings(caplog, bad)) == 1

        # An operator's reload tries it again and answers why it cannot, in the one shape.
        reload = api.post("/admin/reload", headers=_admin(settings))
        assert reload.status_code == 502
        assert reload.json()["error"] == "model_load_failed"
        assert f"churn v{bad} failed to load: {error}" in reload.json()["detail"]
        assert f"Serving now: churn v{old}." in reload.json()["detail"]
        assert _metric(api, failures) == 2.0
        assert api.get("/v1/churn/model").json()["version"] == old

        good = registry.register_good()
        registry.promote("churn", good)
        _wait_for(
            lambda: api.get("/v1/churn/model").json()["version"] == good,
            f"the good promotion v{good} served",
        )
        assert api.post("/v1/churn/predict", json=customer).json()["model"]["version"] == good
        info = api.get("/v1/churn/model").json()
        assert info["alias_version"] == good
        assert info["last_load_error"] is None
        ready = api.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["models"]["churn"]["matches_alias"] is True
        assert "model_errors" not in ready.json()
        assert _metric(api, 'mlops_model_matches_alias{alias="champion",model="churn"}') == 1.0


@pytest.mark.parametrize("fault", FAULTS)
def test_a_bad_champion_at_startup_leaves_the_other_model_serving(
    fault: str, registry: Registry, tmp_path: Path
) -> None:
    settings = registry.settings.model_copy(update={"served_models": ["churn", "fraud"]})
    bad = registry.register_bad("fraud", fault, tmp_path)
    registry.promote("fraud", bad)
    error = FAULT_ERRORS[fault]
    with TestClient(create_app(settings)) as api:
        churn = api.post("/v1/churn/predict", json={"customer_id": _a_customer(settings)})
        assert churn.status_code == 200, churn.text
        assert api.get("/v1/churn/model").status_code == 200

        fraud = api.get("/v1/fraud/model")
        assert fraud.status_code == 503
        assert fraud.json()["error"] == "model_not_ready"
        assert f"fraud v{bad} failed to load: {error}: " in fraud.json()["detail"]

        ready = api.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["churn_model"] is True
        assert ready.json()["checks"]["fraud_model"] is False
        state = ready.json()["models"]["fraud"]
        assert state["version"] is None
        assert state["last_load_error"]["version"] == bad
        assert ready.json()["models"]["churn"]["matches_alias"] is True
        failures = f'mlops_model_load_failures_total{{error="{error}",model="fraud"}}'
        assert _metric(api, failures) == 1.0


def test_a_bad_champion_at_startup_is_replaced_by_the_next_good_promotion(
    registry: Registry, tmp_path: Path
) -> None:
    settings = registry.settings.model_copy(update={"served_models": ["churn"]})
    bad = registry.register_bad("churn", "truncated_onnx", tmp_path)
    registry.promote("churn", bad)
    with TestClient(create_app(settings)) as api:
        not_ready = api.get("/v1/churn/model")
        assert not_ready.status_code == 503
        assert f"churn v{bad} failed to load: InvalidProtobuf" in not_ready.json()["detail"]
        assert api.get("/health/ready").status_code == 503
        reload = api.post("/admin/reload", headers=_admin(settings))
        assert reload.status_code == 502
        assert "Serving now: churn none." in reload.json()["detail"]

        good = registry.register_good()
        registry.promote("churn", good)
        _wait_for(lambda: api.get("/health/ready").status_code == 200, "ready on the good one")
        assert api.get("/v1/churn/model").json()["version"] == good


@pytest.mark.parametrize("fault", ["truncated_onnx", "tampered_onnx"])
def test_bad_and_good_promotions_under_load_fail_no_request(
    fault: str, registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Clients score over HTTP without a pause while a broken version and then a good one
    # are promoted: every request is answered 200, by the old version or the good one.
    settings = registry.settings.model_copy(update={"served_models": ["churn"]})
    old = str(registry.champion.version)
    customer = {"customer_id": _a_customer(settings)}
    error = FAULT_ERRORS[fault]
    failures = f'mlops_model_load_failures_total{{error="{error}",model="churn"}}'
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def client_loop(url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while not stop.is_set():
                answer = client.post("/v1/churn/predict", json=customer)
                statuses.append(answer.status_code)
                if answer.status_code == 200:
                    versions.add(answer.json()["model"]["version"])

    with live_api(settings) as url, httpx.Client(base_url=url, timeout=10) as api:
        clients = [threading.Thread(target=client_loop, args=(url,)) for _ in range(4)]
        for thread in clients:
            thread.start()
        try:
            caplog.set_level(logging.WARNING, logger="serving")
            bad = registry.register_bad("churn", fault, tmp_path)
            registry.promote("churn", bad)
            _wait_for(lambda: _metric_over_http(api, failures) == 1.0, "the bad version refused")
            ready = api.get("/health/ready").json()
            assert f"churn v{bad} failed to load: {error}" in ready["model_errors"]["churn"]
            good = registry.register_good()
            registry.promote("churn", good)
            _wait_for(
                lambda: api.get("/v1/churn/model").json()["version"] == good, "the good one served"
            )
            time.sleep(0.5)  # some requests answered by the good version
        finally:
            stop.set()
            for thread in clients:
                thread.join(30)
    failed = [status for status in statuses if status != 200]
    print(f"sent {len(statuses)}, answered 200 {len(statuses) - len(failed)}, failed {len(failed)}")
    assert len(statuses) > 100
    assert failed == []
    assert versions == {old, good}
    if fault == "tampered_onnx":
        # The log line names the file, the version and that it changed after registration.
        assert any(
            f"churn v{bad}: {ONNX_FILE} changed after registration" in line
            and f"keeps serving v{old}" in line
            for line in _load_warnings(caplog, bad)
        ), caplog.text


def _metric_over_http(api: httpx.Client, line_start: str) -> float | None:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return None
