"""Operating the API on the real churn run: predictions logged with their request ids, metrics.

The API fuzzed against its OpenAPI document: tests/serving/test_openapi_contract.py.
"""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.feature_repo.churn import CHURN_FEATURES_FILE
from mlops.prediction_log import read_predictions
from mlops.settings import Settings
from serving.app import create_app

pytestmark = pytest.mark.slow


def test_every_prediction_is_logged_with_its_request_id_and_features(
    churn_settings: Settings,
) -> None:
    ids = pd.read_parquet(churn_settings.features_dir / CHURN_FEATURES_FILE)["customer_id"]
    served = churn_settings.model_copy(update={"model_refresh_s": 0})
    answers = {}
    with TestClient(create_app(served)) as client:
        for i, customer_id in enumerate(ids.unique()[:5]):
            response = client.post(
                "/v1/churn/predict",
                json={"customer_id": customer_id},
                headers={"X-Request-ID": f"r{i}"},
            )
            answers[f"r{i}"] = response.json()
        metrics = client.get("/metrics").text
    # Leaving the client shut the app down, which wrote the queue: no waiting needed.
    logged = read_predictions(served.prediction_log_uri, model="churn")
    logged = logged[logged["request_id"].isin(answers)].set_index("request_id")
    assert sorted(logged.index) == sorted(answers)
    for request_id, answer in answers.items():
        row = logged.loc[request_id]
        assert row["score"] == pytest.approx(answer["churn_probability"])
        assert row["customer_id"] == answer["customer_id"]
        assert row["model_version"] == answer["model"]["version"]
        assert not pd.isna(row["tenure_months"])
    assert 'mlops_prediction_score_count{model="churn"} 5.0' in metrics
    assert 'mlops_feature_read_duration_seconds_count{model="churn"} 5.0' in metrics
    version = answers["r0"]["model"]["version"]
    assert f'endpoint="/v1/churn/predict",model_version="{version}",status="200"' in metrics
