"""The whole churn lifecycle for real: flow -> Feast -> MLflow registry -> ONNX -> HTTP API.

Runs the Prefect flow (session fixture `churn_run`), then checks what a user would look
at: the MLflow run and its lineage, the registered version and its alias, the drift
report, and predictions from `mlops serve` over HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from benchmarks.serving import free_port
from mlops.settings import Settings
from tests.helpers.runs import CHURN_RUN_CUSTOMERS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_summary_names_run_version_alias_and_metrics(churn_run: dict[str, Any]) -> None:
    assert churn_run["model_name"] == "churn"
    assert churn_run["model_version"] == "1"
    assert churn_run["aliases"] == ["champion"]
    assert churn_run["gate_reason"] == "no champion yet"
    metrics = churn_run["test_metrics"]
    assert 0.75 < metrics["roc_auc"] < 0.97
    assert 0 < metrics["recall"] <= 1
    assert churn_run["parity_max_abs_diff"] < 1e-4
    assert churn_run["rows"]["rows_quarantined"] == 0


def test_mlflow_run_records_lineage(churn_run: dict[str, Any], churn_settings: Settings) -> None:
    client = MlflowClient(tracking_uri=churn_settings.tracking_uri)
    run = client.get_run(churn_run["run_id"])
    params = run.data.params
    assert len(params["data_fingerprint"]) == 64
    assert params["feature_service"] == "churn_model"
    assert params["split_strategy"] == "time_ordered"
    assert client.get_experiment(run.info.experiment_id).name == "churn"
    assert run.info.artifact_uri.startswith((churn_run["home"] / "mlartifacts").as_uri())
    assert run.data.tags["code_version"]
    assert "drift_share" in run.data.metrics
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"environment.json", "feature_service.json", "drift", "registration.json"} <= top

    version = client.get_model_version_by_alias("churn", "champion")
    assert str(version.version) == churn_run["model_version"]
    assert len(version.tags["onnx_sha256"]) == 64
    winner_artifacts = {a.path for a in client.list_artifacts(version.run_id, "onnx")}
    assert winner_artifacts == {
        "onnx/model.onnx",
        "onnx/model_meta.json",
        "onnx/parity_sample.npz",
    }
    plots = {a.path for a in client.list_artifacts(version.run_id, "plots")}
    assert {"plots/roc.png", "plots/pr.png", "plots/calibration.png"} <= plots


def test_drift_report_flags_the_price_rise(churn_run: dict[str, Any]) -> None:
    drift = churn_run["drift"]
    assert Path(drift["html"]).stat().st_size > 10_000
    assert "monthly_charges" in drift["drifted_columns"]
    assert json.loads(Path(drift["json"]).read_text())


@pytest.fixture
def served_api(churn_run: dict[str, Any]) -> Iterator[str]:
    """`mlops serve` in its own process, as a user would start it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    env["MLOPS_HOME"] = str(churn_run["home"])
    env["MLOPS_SERVED_MODELS"] = "churn"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"mlops serve exited with {process.returncode}:\n{output}")
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("mlops serve did not become ready in 90 s")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout:
            process.stdout.close()


def test_served_api_answers_over_http(served_api: str, churn_settings: Settings) -> None:
    import pandas as pd

    ids = pd.read_parquet(
        churn_settings.features_dir / "churn_customer_features.parquet", columns=["customer_id"]
    )["customer_id"]
    with httpx.Client(base_url=served_api, timeout=10) as http:
        for customer_id in ids.iloc[:10]:
            response = http.post("/v1/churn/predict", json={"customer_id": customer_id})
            assert response.status_code == 200, response.text
            assert 0 <= response.json()["churn_probability"] <= 1
        assert http.post("/v1/churn/predict", json={"customer_id": "nope"}).status_code == 404
        assert http.get("/docs").status_code == 200
        assert "/v1/churn/predict" in http.get("/openapi.json").json()["paths"]


def test_retraining_on_the_same_data_registers_a_challenger(
    churn_run: dict[str, Any], churn_settings: Settings
) -> None:
    """The gate: a model no better than the champion on the same test rows is not promoted."""
    from pipelines.churn_flow import churn_pipeline

    second = churn_pipeline(customers=CHURN_RUN_CUSTOMERS)
    assert second["model_version"] == "2"
    assert second["aliases"] == ["challenger"]
    assert "does not beat" in second["gate_reason"]
    client = MlflowClient(tracking_uri=churn_settings.tracking_uri)
    assert str(client.get_model_version_by_alias("churn", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("churn", "challenger").version) == "2"
