"""Error bodies quote a bounded excerpt of the request and no internal address
(`serving.errors`), and the feature store's failures are logged whole, answered short."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from serving.errors import (
    MAX_PROBLEMS,
    MAX_QUOTED_CHARS,
    FeatureStoreUnavailable,
    ModelNotReady,
    excerpt,
    install_error_handlers,
    validation_problems,
    without_addresses,
)
from serving.online_features import OnlineFeatures


def test_an_excerpt_is_the_text_or_its_start_and_an_ellipsis() -> None:
    assert excerpt("short") == "short"
    assert excerpt("y" * MAX_QUOTED_CHARS) == "y" * MAX_QUOTED_CHARS
    assert excerpt("y" * 10_000) == "y" * MAX_QUOTED_CHARS + "…"


def test_validation_problems_are_bounded_in_length_and_number() -> None:
    errors = [{"loc": ("body", "x" * 500), "msg": "m" * 500}] * (MAX_PROBLEMS + 5)
    problems = validation_problems(errors)
    assert len(problems) == MAX_PROBLEMS + 1
    assert all(len(p["field"]) <= MAX_QUOTED_CHARS + 1 for p in problems)
    assert all(len(p["problem"]) <= MAX_QUOTED_CHARS + 1 for p in problems)
    assert problems[-1] == {"field": "body", "problem": "and 5 more problem(s)"}
    assert validation_problems([{"loc": ("body",), "msg": "bad"}]) == [
        {"field": "body", "problem": "bad"}
    ]


@pytest.mark.parametrize(
    ("detail", "hidden"),
    [
        ('connection to server at "db" (10.0.3.4), port 5432 failed', "10.0.3.4"),
        ("Error 111 connecting to redis:6379. Connection refused.", "redis:6379"),
        ("postgresql+psycopg://mlops:pw@postgres:5432/feast is down", "pw@postgres"),
        ("cannot reach http://mlflow.internal:5000/api", "mlflow.internal"),
    ],
)
def test_addresses_are_taken_out_of_a_detail(detail: str, hidden: str) -> None:
    assert hidden not in without_addresses(detail)
    assert "<address>" in without_addresses(detail)


def test_a_detail_without_an_address_is_left_as_it_is() -> None:
    detail = "no 'champion' model of 'churn' is loaded: version 3 lacks ['tenure']"
    assert without_addresses(detail) == detail


def _app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail")
    async def fail() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    "error",
    [
        FeatureStoreUnavailable("online feature store did not answer: redis:6379 refused"),
        ModelNotReady("no 'champion' model: MLflow at http://10.1.2.3:5000 did not answer"),
    ],
)
def test_a_5xx_answers_without_the_address_and_logs_it_whole(
    error: FeatureStoreUnavailable, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="serving"):
        response = TestClient(_app_raising(error)).get("/fail")
    assert response.status_code == 503
    assert response.json()["error"] == error.error
    assert "<address>" in response.json()["detail"]
    assert not any(leak in response.text for leak in ("6379", "10.1.2.3"))
    assert error.detail in caplog.text


class _UnreachableRegistry:
    """A feature store whose registry is a database that does not answer."""

    def get_feature_service(self, name: str) -> Any:
        raise ConnectionError('connection to server at "postgres" (172.18.0.4), port 5432 failed')


def test_an_unreadable_registry_is_a_503_naming_the_failure_not_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    features = OnlineFeatures(_UnreachableRegistry(), "churn_model", "customer_id")  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING), pytest.raises(FeatureStoreUnavailable) as raised:
        features.row("0001-AAAAA", ["tenure"])
    assert raised.value.detail == "cannot resolve feature service 'churn_model': ConnectionError"
    assert "172.18.0.4" in caplog.text
