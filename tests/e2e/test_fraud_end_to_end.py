"""The whole fraud lifecycle for real: file -> flow -> Feast -> MLflow registry -> ONNX -> API.

The session fixture `fraud_run` runs `mlops pipeline fraud --source FILE --json` on a small
simulated file with a few broken rows. These tests check what a user would look at: the
summary line, the quarantine, the MLflow run and registered version, and that scoring
transactions through the API gives what the offline, point-in-time features give.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from features.fraud_schema import (
    CUSTOMER_ID,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
    TX_FRAUD_SCENARIO,
    TX_TIME_DAYS,
    TX_TIME_SECONDS,
)
from features.fraud_windows import FRAUD_FEATURES, fraud_window_features
from features.quarantine import QUARANTINE_REASON
from mlops.model_bundle import download_bundle
from mlops.onnx_scorer import OnnxScorer
from mlops.settings import Settings
from serving.app import create_app
from tests.helpers.runs import FRAUD_RUN_BROKEN

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BROKEN_ROWS = [5, 9, 12]  # see the fraud_run fixture


@pytest.fixture
def api(fraud_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(fraud_settings)) as client:
        yield client


def test_summary_line_names_the_model_metrics_and_the_quarantine(fraud_run: dict[str, Any]) -> None:
    assert fraud_run["model_name"] == "fraud"
    assert fraud_run["model_version"] == "1"
    assert fraud_run["aliases"] == ["champion"]
    metrics = fraud_run["test_metrics"]
    assert {"roc_auc", "average_precision", "card_precision_at_100", "expected_cost"} <= set(
        metrics
    )
    # Small data (a test week of a few hundred cards): a model that learned, not a good one.
    assert metrics["roc_auc"] > 0.65
    assert metrics["average_precision"] > 3 * metrics["fraud_rate"]
    assert fraud_run["parity_max_abs_diff"] < 1e-4

    rows = fraud_run["rows"]
    assert rows["rows_quarantined"] == sum(FRAUD_RUN_BROKEN.values())
    assert rows["rows_valid"] == len(fraud_run["transactions"]) - rows["rows_quarantined"]
    for rule, count in FRAUD_RUN_BROKEN.items():
        assert sum(v for k, v in rows.items() if k.startswith(f"quarantined[{rule}")) == count
    quarantined = pd.read_csv(Path(fraud_run["quarantine_dir"]) / "transactions.csv", dtype=str)
    assert len(quarantined) == rows["rows_quarantined"]
    assert quarantined[QUARANTINE_REASON].str.len().gt(0).all()


def test_mlflow_run_records_the_split_and_the_registered_bundle(
    fraud_run: dict[str, Any], fraud_settings: Settings
) -> None:
    uri = fraud_settings.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(fraud_run["run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "fraud"
    assert run.data.params["feature_service"] == "fraud_model"
    assert run.data.params["train_start"].startswith("2018-05-20")
    assert run.data.params["rows_quarantined"] == str(sum(FRAUD_RUN_BROKEN.values()))
    assert len(run.data.params["data_fingerprint"]) == 64

    version = client.get_model_version_by_alias("fraud", "champion")
    assert str(version.version) == fraud_run["model_version"]
    artifacts = {a.path for a in client.list_artifacts(version.run_id, "onnx")}
    assert {"onnx/model.onnx", "onnx/model_meta.json", "onnx/parity_sample.npz"} <= artifacts


def _with_new_transactions(history: pd.DataFrame, new: list[dict[str, Any]]) -> pd.DataFrame:
    """The valid history plus `new` transactions, in the raw contract's typed columns."""
    origin = history[TX_DATETIME].min().normalize()
    rows = pd.DataFrame(new)
    rows[TRANSACTION_ID] = history[TRANSACTION_ID].max() + 1 + np.arange(len(rows))
    rows[TX_TIME_SECONDS] = (rows[TX_DATETIME] - origin).dt.total_seconds().astype(np.int64)
    rows[TX_TIME_DAYS] = rows[TX_TIME_SECONDS] // 86_400
    rows[TX_FRAUD] = 0  # unknown at scoring time; a transaction's own label is never a feature
    rows[TX_FRAUD_SCENARIO] = 0
    return pd.concat([history, rows[history.columns]], ignore_index=True)


def test_scoring_through_the_api_equals_offline_point_in_time_features(
    api: TestClient, fraud_run: dict[str, Any], fraud_settings: Settings
) -> None:
    """Two payments of one card, a minute apart: the second must see the first (the API
    recorded it online), and both must score what the offline features score."""
    history = fraud_run["transactions"].drop(index=BROKEN_ROWS).reset_index(drop=True)
    busiest = history[CUSTOMER_ID].value_counts().index[0]
    usual_terminal = history.loc[history[CUSTOMER_ID] == busiest, TERMINAL_ID].mode()[0]
    first_time = history[TX_DATETIME].max() + timedelta(hours=1)
    new = [
        {
            TX_DATETIME: first_time + timedelta(minutes=minutes),
            CUSTOMER_ID: int(busiest),
            TERMINAL_ID: int(usual_terminal),
            TX_AMOUNT: amount,
        }
        for minutes, amount in ((0, 42.5), (1, 980.0))
    ]
    offline = fraud_window_features(_with_new_transactions(history, new)).iloc[-len(new) :]
    bundle = download_bundle(
        fraud_settings.tracking_uri, "fraud", fraud_settings.models_dir, alias="champion"
    )
    expected = OnnxScorer(bundle.onnx_path).predict_proba(
        offline[list(FRAUD_FEATURES)].to_numpy(dtype=np.float32)
    )
    assert offline["customer_nb_tx_1d"].iloc[1] == offline["customer_nb_tx_1d"].iloc[0] + 1

    for tx, want in zip(new, expected, strict=True):
        body = {
            "customer_id": tx[CUSTOMER_ID],
            "terminal_id": tx[TERMINAL_ID],
            "amount": tx[TX_AMOUNT],
            "tx_datetime": tx[TX_DATETIME].isoformat(),
        }
        response = api.post("/v1/fraud/score", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["fraud_probability"] == pytest.approx(float(want), abs=1e-6)
        assert answer["is_fraud"] == (answer["fraud_probability"] >= bundle.meta.threshold)
        assert answer["model"] == {"name": "fraud", "version": fraud_run["model_version"]}


def test_a_card_never_seen_is_scored_not_refused(
    api: TestClient, fraud_run: dict[str, Any]
) -> None:
    stamp = fraud_run["transactions"][TX_DATETIME].max() + timedelta(hours=2)
    body = {
        "transaction_id": 10**9,
        "customer_id": 10**9,
        "terminal_id": 10**9,
        "amount": 12.0,
        "tx_datetime": stamp.isoformat(),
    }
    response = api.post("/v1/fraud/score", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["transaction_id"] == 10**9


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": -5.0}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": "many"}, "amount"),
        ({"customer_id": -1}, "customer_id"),
        ({"customer_id": "abc"}, "customer_id"),
        ({"tx_datetime": "2018-06-10T12:00:00"}, "tx_datetime"),  # no offset
        ({"tx_datetime": "2999-01-01T00:00:00Z"}, "tx_datetime"),  # far in the future
        ({"tx_datetime": "yesterday"}, "tx_datetime"),
        ({"currency": "EUR"}, "currency"),
    ],
)
def test_malformed_or_impossible_transactions_are_422(
    api: TestClient, change: dict[str, Any], field: str
) -> None:
    body = {
        "customer_id": 1,
        "terminal_id": 2,
        "amount": 10.0,
        "tx_datetime": "2018-06-10T12:00:00Z",
        **change,
    }
    response = api.post("/v1/fraud/score", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert field in {problem["field"] for problem in response.json()["detail"]}


def test_a_missing_field_is_422_and_readiness_names_the_fraud_model(api: TestClient) -> None:
    response = api.post("/v1/fraud/score", json={"customer_id": 1, "amount": 3.0})
    assert response.status_code == 422
    fields = {problem["field"] for problem in response.json()["detail"]}
    assert {"terminal_id", "tx_datetime"} <= fields
    ready = api.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "fraud_model": True,
        "fraud_features": True,
        "prediction_log": True,
    }
    info = api.get("/v1/fraud/model").json()
    assert info["features"] == list(FRAUD_FEATURES)
    assert info["feature_service"] == "fraud_model"
