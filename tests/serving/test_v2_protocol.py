"""The Open Inference Protocol (KServe V2), driven by a real client: tritonclient over HTTP.

Fast: the tensor checks, the protocol's error bodies (/v1's unchanged) and an API that
serves no model yet. Slow, on the demo's home (both models): metadata, readiness and
inference round-trip through `tritonclient.http.InferenceServerClient`, and the
probabilities equal /v1's for the same feature rows, the rows /v1 logged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from tritonclient.utils import InferenceServerException

from mlops.prediction_log import read_predictions
from mlops.settings import Settings
from serving.app import create_app
from serving.errors import InvalidTensor
from serving.open_inference import (
    MAX_INFER_ROWS,
    InferenceRequest,
    RequestInput,
    feature_matrix,
)
from serving.openapi import DEMO_PAYMENT
from tests.helpers.live_api import live_api

CHURN_INFER = "/v2/models/churn/infer"


def _request(data: Any, shape: list[int], datatype: str = "FP32", name: str = "features") -> Any:
    return InferenceRequest(
        inputs=[RequestInput(name=name, shape=shape, datatype=datatype, data=data)]
    )


def _client(url: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=url.removeprefix("http://"))


def test_a_tensor_flat_or_nested_is_one_float32_matrix() -> None:
    flat = feature_matrix(_request([1, 2.5, 3, 4, 5, 6], [2, 3]), 3)
    nested = feature_matrix(_request([[1, 2.5, 3], [4, 5, 6]], [2, 3]), 3)
    assert flat.dtype == np.float32
    assert flat.tolist() == nested.tolist() == [[1, 2.5, 3], [4, 5, 6]]


@pytest.mark.parametrize(
    ("data", "shape", "datatype", "name", "says"),
    [
        ([1.0, 2.0], [1, 2], "FP64", "features", "FP32"),
        ([1.0, 2.0], [1, 2], "FP32", "x", "one input"),
        ([1.0, 2.0], [2, 1], "FP32", "features", "shape"),
        ([1.0, 2.0], [2], "FP32", "features", "shape"),
        ([1.0, 2.0, 3.0], [1, 2], "FP32", "features", "values"),
        ([[1.0], [2.0, 3.0]], [1, 2], "FP32", "features", "tensor"),
        ([[1.0, 2.0, 3.0]], [1, 2], "FP32", "features", "values"),
        (["1", "2"], [1, 2], "FP32", "features", "numbers"),
        ([None, 2.0], [1, 2], "FP32", "features", "numbers"),
        ([float("nan"), 2.0], [1, 2], "FP32", "features", "finite"),
        ([1e39, 2.0], [1, 2], "FP32", "features", "finite"),  # beyond float32
        ([0.0] * 2 * (MAX_INFER_ROWS + 1), [MAX_INFER_ROWS + 1, 2], "FP32", "features", "shape"),
    ],
)
def test_a_tensor_the_model_cannot_read_is_a_400(
    data: Any, shape: list[int], datatype: str, name: str, says: str
) -> None:
    with pytest.raises(InvalidTensor, match=says) as raised:
        feature_matrix(_request(data, shape, datatype, name), 2)
    assert raised.value.status_code == 400


def test_errors_under_v2_are_the_protocols_body_and_v1s_are_unchanged(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        not_json = client.post(
            CHURN_INFER, content=b"features", headers={"content-type": "text/plain"}
        )
        unreadable = client.post(CHURN_INFER, json={"inputs": "no"})
        unknown = client.get("/v2/models/nope")
        not_ready = client.get("/v2/models/churn/ready")
        v1 = client.post("/v1/churn/predict", content=b"x", headers={"content-type": "text/plain"})
    assert (not_json.status_code, unreadable.status_code) == (415, 400)
    assert (unknown.status_code, not_ready.status_code) == (404, 503)
    for response in (not_json, unreadable, unknown, not_ready):
        body = response.json()
        assert list(body) == ["error"] and isinstance(body["error"], str), body
    assert "inputs" in unreadable.json()["error"]
    assert v1.status_code == 415
    assert set(v1.json()) == {"error", "detail"}


def test_an_api_serving_no_model_is_live_not_ready(settings: Settings) -> None:
    with live_api(settings) as url:
        client = _client(url)
        assert client.is_server_live()
        assert not client.is_server_ready()
        assert not client.is_model_ready("churn")
        with pytest.raises(InferenceServerException) as raised:
            client.infer("churn", [_features(np.zeros((1, 3), dtype=np.float32))])
        assert raised.value.status() == "503"
        binary = triton.InferInput("features", [1, 3], "FP32")
        binary.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32), binary_data=True)
        with pytest.raises(InferenceServerException) as raised:
            client.infer("churn", [binary])
        assert raised.value.status() == "415"  # the binary tensor extension is not supported
        assert httpx.get(f"{url}/v2/health/ready").status_code == 503


def _features(rows: np.ndarray, datatype: str = "FP32") -> triton.InferInput:
    tensor = triton.InferInput("features", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows, binary_data=False)
    return tensor


def _outputs() -> list[triton.InferRequestedOutput]:
    return [
        triton.InferRequestedOutput(name, binary_data=False)
        for name in ("probabilities", "decisions")
    ]


def _v1_requests(url: str, customer_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Predictions by /v1 (churn by id, the documented payment), as answered."""
    with httpx.Client(base_url=url) as http:
        churn = [
            http.post("/v1/churn/predict", json={"customer_id": i}).json() for i in customer_ids
        ]
        fraud = [http.post("/v1/fraud/score", json=DEMO_PAYMENT).json()]
    for answer in churn + fraud:
        assert "model" in answer, answer
    return {"churn": churn, "fraud": fraud}


@pytest.mark.slow
def test_tritonclient_round_trips_metadata_readiness_and_inference(
    demo_settings: Settings,
) -> None:
    from mlops.demo_population import demo_customer_ids

    ids = demo_customer_ids(demo_settings.seed)[-5:]
    # On a machine shared with other work the loop can lag: this test is not about shedding.
    demo_settings = demo_settings.model_copy(update={"max_queue_ms": 5000.0})
    # The demo home is the session's: other tests log V2 rows there too (the contract's).
    started = datetime.now(UTC)
    with live_api(demo_settings) as url:
        answered = _v1_requests(url, ids)
    # Leaving the API wrote its prediction log: the rows /v1 scored, with their features.
    logged = read_predictions(demo_settings.prediction_log_uri)
    with live_api(demo_settings) as url:
        client = _client(url)
        assert client.is_server_live() and client.is_server_ready()
        for name, endpoint in (("churn", "/v1/churn/predict"), ("fraud", "/v1/fraud/score")):
            assert client.is_model_ready(name)
            metadata = client.get_model_metadata(name)
            version = answered[name][0]["model"]["version"]
            assert metadata["versions"] == [version]
            assert metadata["platform"] == "onnxruntime"
            [features] = metadata["inputs"]
            names = features["parameters"]["feature_names"]
            assert (features["name"], features["datatype"]) == ("features", "FP32")
            assert features["shape"] == [-1, len(names)]
            assert [(o["name"], o["datatype"]) for o in metadata["outputs"]] == [
                ("probabilities", "FP32"),
                ("decisions", "BOOL"),
            ]
            assert client.is_model_ready(name, model_version=version)
            assert not client.is_model_ready(name, model_version="999")

            rows = logged[logged["endpoint"] == endpoint].tail(len(answered[name]))
            matrix = rows[names].to_numpy(dtype=np.float32)
            result = client.infer(name, [_features(matrix)], outputs=_outputs(), request_id="r-1")
            response = result.get_response()
            assert (response["model_name"], response["model_version"]) == (name, version)
            assert response["id"] == "r-1"
            probabilities = result.as_numpy("probabilities")
            decisions = result.as_numpy("decisions")
            v1_scores = [
                a["churn_probability" if name == "churn" else "fraud_probability"]
                for a in answered[name]
            ]
            np.testing.assert_allclose(probabilities, v1_scores, atol=1e-6, rtol=0)
            np.testing.assert_allclose(probabilities, rows["score"], atol=1e-6, rtol=0)
            v1_decisions = [
                a["will_churn" if name == "churn" else "is_fraud"] for a in answered[name]
            ]
            assert decisions.tolist() == v1_decisions

            # The version's own route answers the same; a version not served is unknown.
            again = client.infer(name, [_features(matrix)], model_version=version)
            np.testing.assert_allclose(again.as_numpy("probabilities"), probabilities)
            with pytest.raises(InferenceServerException) as unknown_version:
                client.infer(name, [_features(matrix)], model_version="999")
            with pytest.raises(InferenceServerException) as wrong_datatype:
                client.infer(name, [_features(matrix.astype(np.float64), "FP64")])
            with pytest.raises(InferenceServerException) as wrong_shape:
                client.infer(name, [_features(matrix[:, :-1])])
            with pytest.raises(InferenceServerException) as unknown_model:
                client.get_model_metadata("no-such-model")
            statuses = [
                raised.value.status()
                for raised in (unknown_version, wrong_datatype, wrong_shape, unknown_model)
            ]
            assert statuses == ["404", "400", "400", "404"]
            assert "FP32" in wrong_datatype.value.message()
    # Each V2 row is logged like a /v1 prediction, under the V2 route it was sent to.
    v2 = read_predictions(demo_settings.prediction_log_uri, since=started)
    v2 = v2[v2["endpoint"].str.startswith("/v2/models/churn/")]
    assert v2["endpoint"].value_counts().to_dict() == {
        CHURN_INFER: len(ids),
        "/v2/models/churn/versions/{version}/infer": len(ids),
    }
    assert set(v2["model_name"]) == {demo_settings.churn_model_name}
