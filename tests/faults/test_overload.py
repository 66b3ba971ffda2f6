"""Overload and slow clients: the API sheds early and no client can hold it.

Each test drives the real app under uvicorn as `mlops serve` runs it (`live_api`), with
raw sockets where a slow client has to be slow on purpose. The app needs no champion:
the limits act before any route runs.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from features.feature_repo.churn import CHURN_FEATURES_FILE
from mlops.settings import Settings
from serving.app import create_app
from tests.helpers.live_api import live_api


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes `sock` within `seconds` (reads until EOF or timeout)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    return True


@pytest.fixture
def bounded(settings: Settings) -> Settings:
    """One request in progress at most, short read deadlines, a 50 ms queue budget."""
    return settings.model_copy(
        update={
            "model_refresh_s": 0,
            "max_concurrent_requests": 1,
            "body_read_timeout_s": 0.5,
            "header_read_timeout_s": 0.5,
            "max_queue_ms": 50.0,
        }
    )


def _raw_get(sock: socket.socket, path: str) -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())


def _status_and_body(sock: socket.socket) -> tuple[int, bytes]:
    """The status and body of one response with a Content-Length."""
    sock.settimeout(10)
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), body


def test_a_standing_queue_on_the_event_loop_sheds_what_arrives_and_never_the_probes(
    bounded: Settings,
) -> None:
    # The scoring routes run inline on the event loop: under overload, requests wait in the
    # loop's queue and the in-flight count stays at one. Two inline requests that hold the
    # loop for 0.6 s each, one after the other, stand for a queue that stays: the loop is
    # late tick after tick, and what arrives meanwhile is refused. (One stall alone is a
    # pause that has passed: `test_a_single_pause_of_the_loop_sheds_nothing`.)
    # What sheds here is the queue time, not the in-flight count: enough slots for all,
    # and time for the idle connections to send their headers.
    bounded = bounded.model_copy(
        update={"max_concurrent_requests": 32, "header_read_timeout_s": 30.0}
    )
    app, stalls = _app_with_stalls(bounded, seconds=0.6)
    with live_api(bounded, app) as url:
        # Connected first, so the requests are on their way the moment a stall begins,
        # however slowly this process's threads are scheduled on a busy machine.
        first, second, *queued, probe = (socket.create_connection(_address(url)) for _ in range(11))
        _raw_get(first, "/stall")
        assert stalls[0].wait(10)
        _raw_get(second, "/stall")
        assert stalls[1].wait(10)
        for sock in queued:
            _raw_get(sock, "/reports/")
        _raw_get(probe, "/health/ready")
        assert _status_and_body(first)[0] == _status_and_body(second)[0] == 200
        answers = [_status_and_body(sock) for sock in queued]
        probed, _ = _status_and_body(probe)
        # Once the loop has caught up, requests are served again.
        deadline = time.monotonic() + 10
        while (after := httpx.get(f"{url}/reports/", timeout=10)).status_code == 429:
            assert time.monotonic() < deadline, after.text
            time.sleep(0.05)
        for sock in (first, second, *queued, probe):
            sock.close()
    assert [status for status, _ in answers] == [429] * len(queued), answers
    assert all(b'"error":"overloaded"' in body and b"behind" in body for _, body in answers)
    assert probed != 429
    assert after.status_code == 200


def test_a_single_pause_of_the_loop_sheds_nothing(bounded: Settings) -> None:
    # One 0.6 s stall (a long garbage collection, the process waiting for a core): the
    # requests that waited behind it are served, late, not refused.
    # Enough slots for all, and time for the idle connections to send their headers.
    bounded = bounded.model_copy(
        update={"max_concurrent_requests": 32, "header_read_timeout_s": 30.0}
    )
    app, stalls = _app_with_stalls(bounded, seconds=0.6)
    with live_api(bounded, app) as url:
        staller, *queued = (socket.create_connection(_address(url)) for _ in range(9))
        _raw_get(staller, "/stall")
        assert stalls[0].wait(10)
        for sock in queued:
            _raw_get(sock, "/reports/")
        statuses = [_status_and_body(sock)[0] for sock in (staller, *queued)]
        for sock in (staller, *queued):
            sock.close()
    assert statuses == [200] * len(statuses)


def _app_with_stalls(settings: Settings, seconds: float) -> tuple[FastAPI, list[threading.Event]]:
    """The real app plus `GET /stall`, an inline route that holds the event loop for
    `seconds`; the n-th call sets the n-th event when it starts."""
    app = create_app(settings)
    stalls = [threading.Event() for _ in range(8)]
    calls = iter(stalls)

    async def stall() -> dict[str, bool]:
        next(calls).set()
        time.sleep(seconds)
        return {"stalled": True}

    app.add_api_route("/stall", stall, methods=["GET"])
    return app, stalls


def test_a_slow_body_gets_408_and_holds_no_slot_of_work(bounded: Settings) -> None:
    with live_api(bounded) as url:
        slow = socket.create_connection(_address(url))
        slow.sendall(
            b"POST /v1/churn/score HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"customer_id"'
        )
        time.sleep(0.1)  # the slow request has started reading its body
        # One request in progress at most, and the slow one is not one: this one is served.
        meanwhile = httpx.get(f"{url}/reports/", timeout=10)
        slow.settimeout(5)
        answer = slow.recv(4096)
        slow.close()
    assert meanwhile.status_code == 200
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"error":"request_timeout"' in answer


def test_headers_that_do_not_arrive_close_the_connection(bounded: Settings) -> None:
    with live_api(bounded) as url:
        silent = socket.create_connection(_address(url))
        partial = socket.create_connection(_address(url))
        partial.sendall(b"GET /health/live HTTP/1.1\r\nHost: te")
        # A keep-alive connection: its first request is answered, its second is too slow.
        kept = socket.create_connection(_address(url))
        kept.sendall(b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n")
        kept.settimeout(5)
        first = kept.recv(4096)
        kept.sendall(b"GET /health/live HTTP/1.1\r\nHo")
        assert _closed_within(silent, 5)
        assert _closed_within(partial, 5)
        assert _closed_within(kept, 5)
        # A request whose headers come in time is unaffected, on a fresh connection.
        assert httpx.get(f"{url}/health/live", timeout=10).status_code == 200
    assert first.startswith(b"HTTP/1.1 200 ")


def test_a_slow_client_does_not_close_a_request_it_sent_in_time(bounded: Settings) -> None:
    # The header deadline stops at the headers: a response that takes longer is not cut.
    app = create_app(bounded)

    async def slow_answer() -> dict[str, bool]:
        time.sleep(0.8)
        return {"answered": True}

    app.add_api_route("/slow", slow_answer, methods=["GET"])
    with live_api(bounded, app) as url:
        answer = httpx.get(f"{url}/slow", timeout=10)
    assert answer.json() == {"answered": True}


@pytest.fixture
def churn_api(churn_settings: Settings) -> Iterator[TestClient]:
    """The churn API on the session's churn run (its online store is SQLite)."""
    settings = churn_settings.model_copy(update={"model_refresh_s": 0})
    with TestClient(create_app(settings)) as client:
        yield client


def _a_published_customer(settings: Settings) -> str:
    frame = pd.read_parquet(settings.features_dir / CHURN_FEATURES_FILE, columns=["customer_id"])
    return str(frame["customer_id"].iloc[0])


@pytest.mark.slow
def test_a_writer_holding_the_online_store_does_not_stop_reads(
    churn_settings: Settings, churn_api: TestClient
) -> None:
    # A materialization holds an exclusive transaction on the file for its whole write.
    # Readers on the event loop must neither wait for it (every request would wait) nor fail.
    customer = {"customer_id": _a_published_customer(churn_settings)}
    assert churn_api.post("/v1/churn/predict", json=customer).status_code == 200
    writer = sqlite3.connect(churn_settings.feast_dir / "online.db", isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        start = time.monotonic()
        during = churn_api.post("/v1/churn/predict", json=customer)
        took = time.monotonic() - start
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert during.status_code == 200, during.text
    with sqlite3.connect(churn_settings.feast_dir / "online.db") as store:
        assert store.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    # Before, the read waited for the lock up to sqlite3's busy timeout (5.8 s measured for
    # /health/live behind it); a second here is a bound no lock wait fits in.
    assert took < 1.0
