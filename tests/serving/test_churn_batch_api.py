"""`POST /v1/churn/predict/batch` against the session's churn run: real Feast and MLflow."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.feature_repo.churn import CHURN_FEATURES_FILE
from mlops.prediction_log import read_predictions
from mlops.settings import Settings
from serving.app import create_app
from serving.routes.churn_batch import MAX_BATCH_ROWS

pytestmark = pytest.mark.slow

BATCH = "/v1/churn/predict/batch"


@pytest.fixture
def known_ids(churn_settings: Settings) -> list[str]:
    frame = pd.read_parquet(churn_settings.features_dir / CHURN_FEATURES_FILE)
    return [str(i) for i in frame["customer_id"].drop_duplicates().head(20)]


def test_batch_by_id_equals_the_single_row_endpoint(
    churn_client: TestClient, known_ids: list[str]
) -> None:
    response = churn_client.post(BATCH, json={"customer_ids": known_ids})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["feature_source"] == "online_store"
    assert [row["customer_id"] for row in body["predictions"]] == known_ids
    for row in body["predictions"]:
        single = churn_client.post("/v1/churn/predict", json={"customer_id": row["customer_id"]})
        assert row["churn_probability"] == pytest.approx(
            single.json()["churn_probability"], abs=1e-6
        )
        assert row["will_churn"] == single.json()["will_churn"]
        assert row["error"] is None


def test_unknown_ids_are_per_row_errors_and_the_rest_is_scored(
    churn_client: TestClient, known_ids: list[str]
) -> None:
    ids = [known_ids[0], "no-such-customer", known_ids[1]]
    response = churn_client.post(BATCH, json={"customer_ids": ids})
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    assert [r["error"] for r in rows] == [None, "unknown_entity", None]
    assert rows[1]["churn_probability"] is None and rows[1]["will_churn"] is None
    assert all(0 <= rows[i]["churn_probability"] <= 1 for i in (0, 2))


def test_raw_customers_in_a_batch_score_like_one_at_a_time(churn_client: TestClient) -> None:
    customer = {
        "gender": "Female",
        "SeniorCitizen": 0,
        "Partner": "Yes",
        "Dependents": "No",
        "tenure": 1,
        "PhoneService": "No",
        "MultipleLines": "No phone service",
        "InternetService": "DSL",
        "OnlineSecurity": "No",
        "OnlineBackup": "Yes",
        "DeviceProtection": "No",
        "TechSupport": "No",
        "StreamingTV": "No",
        "StreamingMovies": "No",
        "Contract": "Month-to-month",
        "PaperlessBilling": "Yes",
        "PaymentMethod": "Electronic check",
        "MonthlyCharges": 29.85,
        "TotalCharges": 29.85,
    }
    newcomer = {**customer, "tenure": 0, "TotalCharges": None}
    response = churn_client.post(BATCH, json={"customers": [customer, newcomer]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["feature_source"] == "request"
    for row, fields in zip(body["predictions"], (customer, newcomer), strict=True):
        single = churn_client.post("/v1/churn/predict", json={"customer": fields}).json()
        assert row["churn_probability"] == pytest.approx(single["churn_probability"], abs=1e-6)


@pytest.mark.parametrize(
    "body",
    [
        {"customer_ids": []},
        {"customer_ids": ["x"] * (MAX_BATCH_ROWS + 1)},
        {},
        {"customer_ids": ["a"], "customers": []},
        {"customer_ids": [""]},
    ],
    ids=["empty", "too-many", "neither", "both", "empty-id"],
)
def test_bad_batches_are_refused_with_422(
    churn_client: TestClient, body: dict[str, object]
) -> None:
    response = churn_client.post(BATCH, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"


def test_each_scored_row_of_a_batch_is_logged_under_the_request_id(
    churn_settings: Settings, known_ids: list[str]
) -> None:
    served = churn_settings.model_copy(update={"model_refresh_s": 0})
    with TestClient(create_app(served)) as client:
        response = client.post(
            BATCH,
            json={"customer_ids": [*known_ids[:3], "0000-NOONE"]},
            headers={"X-Request-ID": "batch-logged"},
        )
    assert response.status_code == 200, response.text
    # Leaving the client shut the app down, which shipped the spool.
    logged = read_predictions(served.prediction_log_uri, model="churn")
    logged = logged[logged["request_id"] == "batch-logged"]
    answered = {row["customer_id"]: row for row in response.json()["predictions"]}
    assert sorted(logged["customer_id"]) == sorted(known_ids[:3])  # not the unknown id
    assert set(logged["endpoint"]) == {BATCH}
    for _, row in logged.iterrows():
        assert row["score"] == pytest.approx(answered[row["customer_id"]]["churn_probability"])
        assert row["decision"] == answered[row["customer_id"]]["will_churn"]
        assert not pd.isna(row["tenure_months"])
