"""Promotion, rollback and the API following the champion alias, on a real registry.

Two real pipeline runs: a small-data champion (v1), then a model trained on more data
that beats it and takes the alias (v2). Serving's model holder follows the alias; a
version whose ONNX file fails its parity sample never replaces a working model.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from typer.testing import CliRunner

from mlops.model_bundle import download_bundle
from mlops.settings import Settings
from pipelines.cli import app as cli
from serving.app import create_app
from serving.model_holder import ModelHolder
from tests.conftest import CHURN_RUN_CUSTOMERS
from training.registry import champion_history

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
runner = CliRunner()


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory, prefect_server: None) -> Iterator[Path]:
    from pipelines.churn_flow import churn_pipeline

    home = tmp_path_factory.mktemp("lifecycle")
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith(("MLOPS_", "MLFLOW_")):
                patch.delenv(key)
        patch.setenv("MLOPS_HOME", str(home))
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
    # Corrupt the other version's cached ONNX file: it now scores like the working one,
    # so it cannot reproduce its own native probabilities.
    cache = settings.models_dir
    download_bundle(settings.tracking_uri, "churn", cache, version=other)  # fill the cache
    shutil.copy(
        cache / f"churn-v{working}" / "model.onnx", cache / f"churn-v{other}" / "model.onnx"
    )

    assert runner.invoke(cli, ["promote", "churn", "--version", other]).exit_code == 0
    assert not holder.refresh(settings)
    assert holder.current.version == working
    assert "parity" in (holder.last_error or "")
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
