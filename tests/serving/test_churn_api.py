"""The prediction API against real stores: a Feast online store and an MLflow registry
filled by the real churn flow (the session's `churn_run`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.churn_transforms import CHURN_FEATURES
from features.feature_repo.churn import CHURN_FEATURES_FILE
from mlops.model_bundle import download_bundle
from mlops.onnx_scorer import OnnxScorer
from mlops.settings import Settings
from serving.app import create_app

pytestmark = pytest.mark.slow


@pytest.fixture
def offline_features(churn_settings: Settings) -> pd.DataFrame:
    frame = pd.read_parquet(churn_settings.features_dir / CHURN_FEATURES_FILE)
    return frame.sort_values("event_timestamp").drop_duplicates("customer_id", keep="last")


def raw_fields(row: pd.Series) -> dict[str, Any]:
    fields = {k: row[k] for k in row.index if k not in ("customerID", "Churn", "event_timestamp")}
    fields["SeniorCitizen"] = int(fields["SeniorCitizen"])
    fields["tenure"] = int(fields["tenure"])
    fields["MonthlyCharges"] = float(fields["MonthlyCharges"])
    total = str(fields["TotalCharges"]).strip()
    fields["TotalCharges"] = float(total) if total else None
    return fields


def test_liveness_and_readiness(churn_client: TestClient) -> None:
    assert churn_client.get("/health/live").json() == {"status": "ok"}
    ready = churn_client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "churn_model": True,
        "churn_features": True,
        "prediction_log": True,
    }


def test_model_info_names_the_champion(churn_client: TestClient, churn_run: dict[str, Any]) -> None:
    info = churn_client.get("/v1/churn/model").json()
    assert info["version"] == churn_run["model_version"]
    assert info["alias"] == "champion"
    assert info["features"] == list(CHURN_FEATURES)
    assert info["feature_service"] == "churn_model"


def test_predict_by_id_matches_offline_features_scored_offline(
    churn_client: TestClient, churn_settings: Settings, offline_features: pd.DataFrame
) -> None:
    """Online read + ONNX in the API == offline features + ONNX outside it."""
    bundle = download_bundle(
        churn_settings.tracking_uri, "churn", churn_settings.models_dir, alias="champion"
    )
    scorer = OnnxScorer(bundle.onnx_path)
    sample = offline_features.sample(25, random_state=0)
    expected = scorer.predict_proba(sample[list(CHURN_FEATURES)].to_numpy(dtype=np.float32))
    for customer_id, want in zip(sample["customer_id"], expected, strict=True):
        response = churn_client.post("/v1/churn/predict", json={"customer_id": customer_id})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["feature_source"] == "online_store"
        assert body["churn_probability"] == pytest.approx(float(want), abs=1e-6)
        assert body["will_churn"] == (body["churn_probability"] >= body["threshold"])
        assert body["model"] == {"name": "churn", "version": bundle.version}


def test_raw_fields_give_the_same_answer_as_the_customer_id(
    churn_client: TestClient, raw_customers: pd.DataFrame
) -> None:
    """Request-time transforms equal the batch transforms the online store was filled from."""
    latest = raw_customers.sort_values("event_timestamp").drop_duplicates("customerID", keep="last")
    for _, row in latest.sample(20, random_state=1).iterrows():
        by_id = churn_client.post(
            "/v1/churn/predict", json={"customer_id": row["customerID"]}
        ).json()
        by_fields = churn_client.post("/v1/churn/predict", json={"customer": raw_fields(row)})
        assert by_fields.status_code == 200, by_fields.text
        assert by_fields.json()["feature_source"] == "request"
        assert by_fields.json()["churn_probability"] == pytest.approx(
            by_id["churn_probability"], abs=1e-6
        )


def test_unknown_customer_is_404(churn_client: TestClient) -> None:
    response = churn_client.post("/v1/churn/predict", json={"customer_id": "0000-NOONE"})
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_entity"
    assert "0000-NOONE" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "expect_in_detail"),
    [
        ({}, "exactly one"),
        ({"customer_id": "a", "customer": None, "extra": 1}, "extra"),
        ({"customer_id": 12}, "customer_id"),
        ({"customer_id": ""}, "customer_id"),
        ({"customer": {"gender": "Male"}}, "customer.tenure"),
        ({"customer": {"Contract": "Three year"}}, "customer.Contract"),
    ],
)
def test_malformed_requests_are_422_with_the_field(
    churn_client: TestClient, body: dict[str, Any], expect_in_detail: str
) -> None:
    response = churn_client.post("/v1/churn/predict", json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["error"] == "invalid_request"
    assert expect_in_detail in str(payload["detail"])


def test_inconsistent_fields_and_non_json_are_422(
    churn_client: TestClient, raw_customers: pd.DataFrame
) -> None:
    fields = raw_fields(raw_customers.iloc[0])
    fields["PhoneService"] = "No"
    fields["MultipleLines"] = "Yes"
    response = churn_client.post("/v1/churn/predict", json={"customer": fields})
    assert response.status_code == 422
    assert "MultipleLines" in str(response.json()["detail"])

    fields = raw_fields(raw_customers.iloc[0]) | {"tenure": -3}
    assert churn_client.post("/v1/churn/predict", json={"customer": fields}).status_code == 422

    response = churn_client.post(
        "/v1/churn/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "Traceback" not in response.text


def test_without_a_champion_the_api_lives_but_is_not_ready(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/health/live").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["churn_model"] is False
        response = client.post("/v1/churn/predict", json={"customer_id": "x"})
        assert response.status_code == 503
        assert response.json()["error"] == "model_not_ready"


def test_a_dead_online_store_gives_503_fast_and_not_ready(
    churn_settings: Settings, raw_customers: pd.DataFrame
) -> None:
    """Real Feast pointed at a Redis port where nothing listens: a dependency failure."""
    from features.store import feature_store
    from serving.online_features import OnlineFeatures

    dead = churn_settings.model_copy(
        update={"online_store": "redis", "redis_url": "127.0.0.1:9", "feature_timeout_s": 0.5}
    )
    store = feature_store(dead)
    # The bound on a dead store's answer is the socket timeout, once: no retries, no backoff.
    redis_client = store.provider.online_store._get_client(store.config.online_store)
    assert redis_client.get_retry().get_retries() == 0
    assert redis_client.get_connection_kwargs()["socket_connect_timeout"] == 0.5
    features = OnlineFeatures(store, "churn_model", "customer_id")
    with TestClient(create_app(churn_settings, churn_features_client=features)) as client:
        response = client.post("/v1/churn/predict", json={"customer_id": "0001-AAAAA"})
        assert response.status_code == 503
        assert response.json()["error"] == "feature_store_unavailable"
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {
            "churn_model": True,
            "churn_features": False,
            "prediction_log": True,
        }
        assert client.get("/health/live").status_code == 200
        # Raw fields need no feature store: those predictions still work.
        fields = raw_fields(raw_customers.iloc[0])
        assert client.post("/v1/churn/predict", json={"customer": fields}).status_code == 200


def test_an_api_serving_both_is_not_ready_without_a_fraud_champion(
    churn_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The churn run has no fraud model: churn still answers, fraud says why it cannot."""
    monkeypatch.setenv("MLOPS_SERVED_MODELS", "churn,fraud")
    with TestClient(create_app(Settings())) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        # The churn run published no fraud definitions either: both checks say so.
        assert ready.json()["checks"] == {
            "churn_model": True,
            "churn_features": True,
            "fraud_model": False,
            "fraud_features": False,
            "prediction_log": True,
        }
        assert "fraud" in ready.json()["model_errors"]
        tx = {
            "customer_id": 1,
            "terminal_id": 2,
            "amount": 5.0,
            "tx_datetime": "2018-06-01T00:00:00Z",
        }
        response = client.post("/v1/fraud/score", json=tx)
        assert response.status_code == 503
        assert response.json()["error"] == "model_not_ready"
