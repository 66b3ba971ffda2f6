"""The fraud flow on a two-worker Dask cluster, by configuration only.

The flow of the session's `fraud_run` (in-process, `mlops pipeline fraud --source FILE`)
runs again on the same file with MLOPS_TASK_RUNNER=dask and MLOPS_DASK_ADDRESS set to the
session's LocalCluster: its window features are computed there, partitioned, and must be
identical (same fingerprint of the training frame); XGBoost trains there and the model is
registered and exported like the in-process one.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow import MlflowClient
from prefect import flow, task

from features.fraud_schema import CUSTOMER_ID, TERMINAL_ID, TX_DATETIME
from features.fraud_windows import FRAUD_FEATURES
from mlops.model_bundle import download_bundle
from mlops.onnx_scorer import OnnxScorer
from mlops.settings import Settings
from pipelines.fraud_flow import Periods, fraud_pipeline
from pipelines.task_runners import cluster_client, runner_from_settings, task_runner
from tests.helpers.runs import FRAUD_RUN_TRAIN_START, isolated_home
from training.fraud_train_dask import CLUSTER_CANDIDATE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dask_run(
    fraud_run: dict[str, Any], dask_cluster: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("fraud-dask-run")
    with isolated_home(home) as patch:
        patch.setenv("MLOPS_SEED", "7")
        patch.setenv("MLOPS_TASK_RUNNER", "dask")
        patch.setenv("MLOPS_DASK_ADDRESS", dask_cluster)
        summary = fraud_pipeline(
            source=Path(fraud_run["source"]), periods=Periods(train_start=FRAUD_RUN_TRAIN_START)
        )
    return {**summary, "home": home}


def _parent_params(run: dict[str, Any]) -> dict[str, str]:
    return MlflowClient(tracking_uri=run["tracking_uri"]).get_run(run["run_id"]).data.params


def test_features_on_the_cluster_are_those_of_the_in_process_run(
    fraud_run: dict[str, Any], dask_run: dict[str, Any]
) -> None:
    in_process, on_dask = _parent_params(fraud_run), _parent_params(dask_run)
    assert dask_run["tracking_uri"].endswith(f"{dask_run['home']}/mlflow.db")
    assert on_dask["rows_in"] == in_process["rows_in"]
    assert on_dask["rows_quarantined"] == in_process["rows_quarantined"]
    # The fingerprint of the whole training frame: every feature value, every row.
    assert on_dask["data_fingerprint"] == in_process["data_fingerprint"]


def test_the_cluster_trains_a_model_served_like_the_in_process_one(
    dask_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert dask_run["winner"] == CLUSTER_CANDIDATE
    assert dask_run["trained_on"] == "dask"
    monkeypatch.setenv("MLOPS_HOME", str(dask_run["home"]))
    settings = Settings()
    bundle = download_bundle(
        settings.tracking_uri, settings.fraud_model_name, settings.models_dir, alias="champion"
    )
    assert bundle.version == dask_run["model_version"]
    assert bundle.meta.feature_names == list(FRAUD_FEATURES)
    rows, native = bundle.parity_sample()
    assert np.abs(OnnxScorer(bundle.onnx_path).predict_proba(rows) - native).max() <= (
        settings.parity_tolerance
    )
    # Learnt something (parity with the in-process fit: tests/training/test_fraud_train_dask).
    metrics = dask_run["test_metrics"]
    assert metrics["roc_auc"] > 0.65
    assert metrics["average_precision"] > 2 * metrics["fraud_rate"]


def test_the_runner_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    assert type(task_runner(Settings())) is ThreadPoolTaskRunner
    monkeypatch.setenv("MLOPS_TASK_RUNNER", "dask")
    monkeypatch.setenv("MLOPS_DASK_WORKERS", "3")
    monkeypatch.setenv("MLOPS_DASK_MEMORY_LIMIT", "2GB")
    local = task_runner(Settings())
    assert isinstance(local, DaskTaskRunner)
    assert local.address is None
    assert local.cluster_kwargs["n_workers"] == 3
    assert local.cluster_kwargs["memory_limit"] == "2GB"
    monkeypatch.setenv("MLOPS_DASK_ADDRESS", "tcp://scheduler:8786")
    remote = task_runner(Settings())
    assert isinstance(remote, DaskTaskRunner)
    assert remote.address == "tcp://scheduler:8786"


def test_the_api_serves_the_cluster_model(
    dask_run: dict[str, Any], fraud_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from serving.app import create_app

    monkeypatch.setenv("MLOPS_HOME", str(dask_run["home"]))
    monkeypatch.setenv("MLOPS_SERVED_MODELS", "fraud")
    history = fraud_run["transactions"]
    card = history[CUSTOMER_ID].value_counts().index[0]
    body = {
        "customer_id": int(card),
        "terminal_id": int(history.loc[history[CUSTOMER_ID] == card, TERMINAL_ID].mode()[0]),
        "amount": 42.5,
        "tx_datetime": (history[TX_DATETIME].max() + timedelta(hours=1)).isoformat(),
    }
    with TestClient(create_app(Settings())) as api:
        response = api.post("/v1/fraud/score", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == {"name": "fraud", "version": dask_run["model_version"]}
    assert 0.0 <= answer["fraud_probability"] <= 1.0


@task
def _worker_address() -> str:
    from distributed import get_worker

    return str(get_worker().address)


@flow(task_runner=runner_from_settings())
def _probe() -> dict[str, Any]:
    client = cluster_client()
    assert client is not None
    return {
        "task_ran_on": _worker_address.submit().result(),
        "workers": client.scheduler_info()["workers"],
    }


def test_without_an_address_a_run_starts_its_own_cluster(
    prefect_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_TASK_RUNNER", "dask")
    monkeypatch.setenv("MLOPS_DASK_WORKERS", "1")
    monkeypatch.setenv("MLOPS_DASK_MEMORY_LIMIT", "1GB")
    probe = _probe()
    (address, worker), *others = probe["workers"].items()
    assert others == []
    assert probe["task_ran_on"] == address  # submitted tasks run on the cluster's worker
    assert address.startswith("tcp://127.0.0.1:")  # a worker process, not a thread
    assert worker["memory_limit"] == 10**9
