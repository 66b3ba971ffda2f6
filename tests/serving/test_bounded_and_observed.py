"""Request middleware with the real app (no champion needed): ids, log lines, metrics, limits."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlops.settings import Settings
from serving.app import create_app
from serving.middleware import BoundedRequests


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    small = settings.model_copy(
        update={"max_body_bytes": 1000, "model_refresh_s": 0, "access_log_flush_s": 0}
    )
    with TestClient(create_app(small)) as test_client:
        yield test_client


def test_the_request_id_is_echoed_or_made_and_logged_as_json(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="serving.access"):
        given = client.get("/health/live", headers={"X-Request-ID": "trace-42"})
        made = client.get("/health/live")
        forged = client.get("/health/live", headers={"X-Request-ID": 'x"\n{"status": 200'})
    assert given.headers["x-request-id"] == "trace-42"
    assert len(made.headers["x-request-id"]) == 32
    assert forged.headers["x-request-id"] not in ('x"\n{"status": 200', "")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "serving.access"]
    assert [line["request_id"] for line in lines] == [
        "trace-42",
        made.headers["x-request-id"],
        forged.headers["x-request-id"],
    ]
    assert lines[0] | {"duration_ms": 0} == {
        "request_id": "trace-42",
        "method": "GET",
        "path": "/health/live",
        "status": 200,
        "duration_ms": 0,
        "model_version": None,
        "error": None,
    }


def test_access_lines_are_logged_in_batches_and_none_is_lost_at_shutdown(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    buffered = settings.model_copy(update={"model_refresh_s": 0, "access_log_flush_s": 60})
    with caplog.at_level(logging.INFO, logger="serving.access"):
        with TestClient(create_app(buffered)) as client:
            ids = [client.get("/health/live").headers["x-request-id"] for _ in range(5)]
            assert not [r for r in caplog.records if r.name == "serving.access"]
        records = [r for r in caplog.records if r.name == "serving.access"]
    assert len(records) == 1, "the five lines leave in one record, at shutdown"
    lines = [json.loads(line) for line in records[0].getMessage().splitlines()]
    assert [line["request_id"] for line in lines] == ids


def _error_counts(client: TestClient) -> dict[str, float]:
    """The error types counted at least once (every known type is exported from 0)."""
    metrics = client.get("/metrics").text
    found = re.findall(r'^mlops_http_errors_total\{error="(\w+)"\} (\S+)$', metrics, re.M)
    assert "overloaded" in {error for error, _ in found}
    return {error: float(count) for error, count in found if float(count) > 0}


def test_errors_keep_the_one_body_shape_and_are_counted(client: TestClient) -> None:
    before = _error_counts(client)
    not_ready = client.post("/v1/churn/predict", json={"customer_id": "C1"})
    assert not_ready.status_code == 503
    # Not under /v2: the Open Inference Protocol's paths answer its own error body.
    unknown = client.get("/v9/nothing")
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "not_found", "detail": "Not Found"}
    wrong_method = client.get("/v1/churn/predict")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"

    assert before == {}
    assert _error_counts(client) == {
        "model_not_ready": 1.0,
        "not_found": 1.0,
        "method_not_allowed": 1.0,
    }
    metrics = client.get("/metrics").text
    assert (
        'mlops_http_requests_total{endpoint="/v1/churn/predict",model_version="",status="503"} 1.0'
        in metrics
    )
    # Unknown paths share one label value: scanners cannot grow the series without end.
    assert 'endpoint="unmatched",model_version="",status="404"' in metrics
    assert 'mlops_model_loads_total{model="churn",outcome="rejected"} 1.0' in metrics
    assert "mlops_prediction_log_persisting 1.0" in metrics


def test_two_apps_in_one_process_count_only_their_own_requests(settings: Settings) -> None:
    """Feast switches prometheus_client to multi-process mode on import; we must not share."""
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        assert first.get("/v2/nothing").status_code == 404
        assert _error_counts(first) == {"not_found": 1.0}
        assert _error_counts(second) == {}


def test_a_body_over_the_limit_is_413_announced_or_chunked(client: TestClient) -> None:
    announced = client.post("/v1/churn/predict", content=b"x" * 1001)
    assert announced.status_code == 413
    assert announced.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield from (b"x" * 400 for _ in range(3))

    chunked = client.post("/v1/churn/predict", content=chunks())
    assert chunked.status_code == 413
    small_chunked = client.post(
        "/v1/churn/predict",
        content=iter([b'{"customer_id":', b' "C1"}']),
        headers={"content-type": "application/json"},
    )
    assert small_chunked.status_code == 503  # read whole, validated, then no model


def test_beyond_the_concurrency_limit_requests_are_shed_with_429() -> None:
    """Two requests in flight against a limit of one: the second is refused, not queued."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        entered.set()
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    bounded = BoundedRequests(slow_app, max_body_bytes=1000, max_concurrent=1)

    async def call(path: str) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": path, "headers": []}
        await bounded(scope, receive, send)
        return sent

    async def scenario() -> tuple[list[dict[str, Any]], ...]:
        first = asyncio.create_task(call("/v1/churn/model"))
        await entered.wait()
        shed = await call("/v1/churn/model")
        live = asyncio.create_task(call("/health/live"))  # probes are never shed
        await asyncio.sleep(0)
        release.set()
        return await first, shed, await live

    first, shed, live = asyncio.run(scenario())
    assert first[0]["status"] == 200
    assert live[0]["status"] == 200
    assert shed[0]["status"] == 429
    assert json.loads(shed[1]["body"])["error"] == "overloaded"
    assert bounded.in_flight == 0


def test_admin_reload_needs_the_token(client: TestClient) -> None:
    assert client.post("/admin/reload").status_code == 401
    wrong = client.post("/admin/reload", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "unauthorized"
    assert wrong.headers["www-authenticate"] == "Bearer"
    token = Settings().admin_token.get_secret_value()
    right = client.post("/admin/reload", headers={"Authorization": f"Bearer {token}"})
    assert right.status_code == 200
    # No champion registered: nothing to load, and it says why.
    assert right.json()["churn"]["version"] is None
    assert "churn@champion" in right.json()["churn"]["error"]


def test_metrics_carry_the_monitoring_figures(settings: Settings, client: TestClient) -> None:
    """One scrape of the API gives Prometheus the latest monitoring decision too."""
    from monitoring.workspace import record_decision

    assert "mlops_monitoring_decision{" not in client.get("/metrics").text
    record_decision(settings, "churn", "alert", "drift share 0.4 over 0.3")
    metrics = client.get("/metrics").text
    assert 'mlops_monitoring_decision{decision="alert",model="churn"} 1.0' in metrics
