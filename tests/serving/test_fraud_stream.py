"""The stream scorer decides as the HTTP route scores, and says why it skips an entry.

The replay: the fraud run's last week, from the same published states (as of the week's
start), once through `POST /v1/fraud/score` in time order, once through the payments
stream and the scorer (batches, partitions by card, one onnxruntime call per batch).
Every payment must get the same probability and decision both ways.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.fraud_schema import TX_DATETIME
from mlops.payment_stream import GROUP, Payment, StreamKeys, stream_redis
from mlops.settings import Settings
from serving.app import create_app
from serving.fraud_stream import StreamScorer, build_stream_scorer
from stack.payment_producer import payment_of, publish
from stack.traffic import fraud_plan
from tests.helpers.stream_home import stream_home, valid_history

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_stream_decisions_of_a_replayed_week_equal_the_http_route_scores(
    fraud_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    history = valid_history(fraud_run)
    cut = history[TX_DATETIME].max() - pd.Timedelta(days=7)
    before, week = history[history[TX_DATETIME] < cut], history[history[TX_DATETIME] >= cut]
    plan = fraud_plan(week, "replay")
    assert len(plan) > 1_000

    stream_home(fraud_run, tmp_path / "http", monkeypatch, before, cut)
    monkeypatch.setenv("MLOPS_SERVED_MODELS", "fraud")
    with TestClient(create_app(Settings())) as api:
        answers = [api.post(request.path, json=request.body).json() for request in plan]
    http = {a["transaction_id"]: (a["fraud_probability"], a["is_fraud"]) for a in answers}

    stream_home(fraud_run, tmp_path / "stream", monkeypatch, before, cut)
    monkeypatch.setenv("MLOPS_STREAM_REDIS_URL", redis_url)
    settings = Settings()
    scorer = build_stream_scorer(settings)
    # Its SQLite states are written as serving writes them: WAL, commits not synced (1).
    store = scorer.features._store
    connection = store.provider.online_store._get_conn(store.config)
    assert connection.execute("PRAGMA synchronous").fetchone() == (1,)
    scorer.ensure_groups()
    scorer.log.start()
    scorer.holder.load_from_registry(settings)
    client = stream_redis(settings)
    keys = StreamKeys.of(settings)
    publish(client, keys, [payment_of(request) for request in plan])
    try:
        assert scorer.drain() == len(plan)
    finally:
        scorer.log.close()
    stream = {
        int(fields[b"tx"]): (float(fields[b"fraud_probability"]), fields[b"is_fraud"] == b"1")
        for _, fields in client.xrange(keys.decisions)
    }

    assert len(stream) == len(plan)
    assert stream.keys() == http.keys()
    for tx, (probability, is_fraud) in http.items():
        assert stream[tx][0] == pytest.approx(probability, abs=1e-6), tx
        assert stream[tx][1] == is_fraud, tx
    # Frauds were flagged both ways: the comparison covers both decisions.
    assert 0 < sum(d for _, d in stream.values()) < len(stream)
    # Nothing is left pending, and each decision is logged once under its record id.
    assert all(client.xpending(s, GROUP)["pending"] == 0 for s in keys.all_payments())
    assert client.hlen(keys.decided) == len(plan)


def test_a_payment_published_twice_or_malformed_is_acknowledged_not_decided_again(
    fraud_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    history = valid_history(fraud_run)
    end = history[TX_DATETIME].max()
    stream_home(fraud_run, tmp_path / "home", monkeypatch, history, end + pd.Timedelta(seconds=1))
    monkeypatch.setenv("MLOPS_STREAM_REDIS_URL", redis_url)
    settings = Settings()
    scorer = build_stream_scorer(settings)
    scorer.ensure_groups()
    scorer.log.start()
    scorer.holder.load_from_registry(settings)
    client = stream_redis(settings)
    keys = StreamKeys.of(settings)
    payment = Payment(10**9, 7, 11, 42.5, (end + pd.Timedelta(hours=1)).value)
    # Each reason is exported from the start, at 0 (a dashboard panel with data).
    assert _skipped(scorer) == {"duplicate": 0, "rejected": 0, "deleted": 0}
    publish(client, keys, [payment, payment])
    client.xadd(keys.payments(0), {"tx": "1", "amount": "lots"})
    try:
        outcomes = [scorer.step(block_ms=50) for _ in range(3)]
    finally:
        scorer.log.close()
    assert sum(o.decided for o in outcomes) == 1
    assert sum(o.duplicates for o in outcomes) == 1
    assert sum(o.rejected for o in outcomes) == 1
    assert _skipped(scorer) == {"duplicate": 1, "rejected": 1, "deleted": 0}
    assert client.xlen(keys.decisions) == 1
    [(_, rejected)] = client.xrange(f"{keys.prefix}:rejected")
    assert rejected[b"reason"].startswith(b"KeyError")
    # The card's window counts the payment once.
    customers, _ = scorer.features.read_states([7], [])
    assert customers[7].times_ns.tolist().count(payment.time_ns) == 1


def _skipped(scorer: StreamScorer) -> dict[str, float]:
    """mlops_stream_skipped_total by reason, as the scorer's /metrics exports it."""
    return {
        sample.labels["reason"]: sample.value
        for metric in scorer.metrics.registry.collect()
        if metric.name == "mlops_stream_skipped"
        for sample in metric.samples
        if sample.name == "mlops_stream_skipped_total"
    }
