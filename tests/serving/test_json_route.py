"""JsonRoute: the hot routes' lean handler keeps FastAPI's contract (schema, 422s, responses)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from mlops.settings import Settings
from serving.app import create_app
from serving.errors import install_error_handlers
from serving.json_route import NOT_JSON, JsonRoute


class Question(BaseModel):
    text: str = Field(min_length=1)
    times: int = Field(default=1, ge=1)


class Answer(BaseModel):
    echo: str


def _app(endpoint: Callable[..., Any], **route: Any) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.router.add_api_route(
        "/ask", endpoint, methods=["POST"], route_class_override=JsonRoute, **route
    )
    return app


async def ask(body: Question, request: Request) -> Answer:
    return Answer(echo=body.text * body.times)


def test_a_valid_body_reaches_the_endpoint_and_the_answer_is_the_response_model() -> None:
    client = TestClient(_app(ask))
    response = client.post("/ask", json={"text": "ab", "times": 2})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"echo": "abab"}


@pytest.mark.parametrize(
    ("content", "headers", "field"),
    [
        ('{"text": ""}', {"content-type": "application/json"}, "text"),
        ('{"text": "a", "times": 0}', {"content-type": "application/json"}, "times"),
        ('{"text": "a"', {"content-type": "application/json"}, None),
        ("[1, 2]", {"content-type": "application/json"}, None),
    ],
)
def test_a_bad_body_is_a_422_in_the_one_error_shape(
    content: str, headers: dict[str, str], field: str | None
) -> None:
    client = TestClient(_app(ask), raise_server_exceptions=False)
    response = client.post("/ask", content=content, headers=headers)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert all(set(problem) == {"field", "problem"} for problem in body["detail"])
    if field is not None:
        assert field in [problem["field"] for problem in body["detail"]]


@pytest.mark.parametrize("headers", [{"content-type": "text/plain"}, {}])
def test_a_body_not_sent_as_json_is_a_415_in_the_one_error_shape(headers: dict[str, str]) -> None:
    client = TestClient(_app(ask), raise_server_exceptions=False)
    response = client.post("/ask", content='{"text": "a"}', headers=headers)
    assert response.status_code == 415
    assert response.json() == {"error": "unsupported_media_type", "detail": NOT_JSON}


def test_a_json_subtype_is_accepted() -> None:
    client = TestClient(_app(ask))
    response = client.post(
        "/ask", content='{"text": "a"}', headers={"content-type": "application/vnd.x+json"}
    )
    assert response.status_code == 200


async def _needs_a_dependency(
    body: Question, request: Request, extra: int = Depends(lambda: 1)
) -> Any:
    return Answer(echo=body.text)


async def _no_request(body: Question) -> Answer:
    return Answer(echo=body.text)


async def _no_response_model(body: Question, request: Request) -> dict[str, str]:
    return {"echo": body.text}


@pytest.mark.parametrize("endpoint", [_needs_a_dependency, _no_request, _no_response_model])
def test_an_endpoint_of_another_shape_is_refused_when_the_app_is_built(
    endpoint: Callable[..., Any],
) -> None:
    with pytest.raises(TypeError, match="JsonRoute"):
        _app(endpoint)


def test_the_scoring_routes_keep_their_schema_in_openapi(settings: Settings) -> None:
    schema = create_app(settings).openapi()
    for path, request, response in (
        ("/v1/churn/predict", "ChurnPredictRequest", "ChurnPrediction"),
        ("/v1/fraud/score", "FraudTransaction", "FraudScore"),
    ):
        post = schema["paths"][path]["post"]
        body = post["requestBody"]["content"]["application/json"]["schema"]
        assert body["$ref"].endswith(f"/{request}")
        answer = post["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer["$ref"].endswith(f"/{response}")
        assert {"413", "415", "422", "429", "503"} <= set(post["responses"])
