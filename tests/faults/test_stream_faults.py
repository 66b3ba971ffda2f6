"""The stream scorer killed mid-stream, and Redis with it: each payment decided exactly once.

A few thousand payments continue the fraud run's world on a Redis of the test's own
(append-only, fsync always). The scorer runs as `mlops stream fraud` in its own process
and is killed with SIGKILL mid-stream; restarted, it finishes the batch it had decided
(its intent) and the entries it had not acknowledged. Then Redis itself is killed with
SIGKILL while the producer publishes the second half and the scorer decides; both carry
on once it is back. At the end: one decision per transaction id, none missing; the
prediction log holds one record per payment, whose features equal the offline window
features computed on the same payments (the skew check); the cards' online states equal
the offline states.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from features.fraud_online import customer_states
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
from mlops.payment_stream import GROUP, Payment, StreamKeys, stream_redis
from mlops.prediction_log import read_predictions
from mlops.settings import Settings
from stack.payment_producer import publish
from tests.helpers.redis_server import RedisServer, own_redis
from tests.helpers.runs import run_mlops
from tests.helpers.stream_home import stream_home, valid_history

pytestmark = [pytest.mark.services, pytest.mark.slow]

PAYMENTS = 3_000
# Generous: the scorer's process imports Feast, MLflow and onnxruntime, on a shared machine.
DEADLINE_S = 400


def published(client: Any, keys: StreamKeys) -> list[Payment]:
    """Every payment on the stream's partitions, by transaction id."""
    payments = [
        Payment.from_fields(fields)
        for stream in keys.all_payments()
        for _, fields in client.xrange(stream)
    ]
    return sorted(payments, key=lambda p: p.transaction_id)


def as_transactions(payments: list[Payment], history: pd.DataFrame) -> pd.DataFrame:
    """The payments in the transactions' columns, with no known label (the scorer never
    sees one)."""
    frame = pd.DataFrame(
        {
            TRANSACTION_ID: [p.transaction_id for p in payments],
            TX_DATETIME: pd.to_datetime([p.time_ns for p in payments], unit="ns", utc=True),
            CUSTOMER_ID: [p.customer_id for p in payments],
            TERMINAL_ID: [p.terminal_id for p in payments],
            TX_AMOUNT: [p.amount for p in payments],
        }
    )
    origin = history[TX_DATETIME].min().normalize()
    frame[TX_TIME_SECONDS] = (frame[TX_DATETIME] - origin).dt.total_seconds().astype(np.int64)
    frame[TX_TIME_DAYS] = frame[TX_TIME_SECONDS] // 86_400
    frame[TX_FRAUD] = 0
    frame[TX_FRAUD_SCENARIO] = 0
    return frame[history.columns]


def start_scorer(home: Path, redis: RedisServer, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    env |= {
        "MLOPS_HOME": str(home),
        "MLOPS_STREAM_REDIS_URL": redis.url,
        "MLOPS_STREAM_BATCH": "64",
        "MLOPS_MODEL_REFRESH_S": "0",
        "MLOPS_PREDICTION_LOG_FLUSH_S": "0.2",
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", "stream", "fraud", "--metrics-port", "0"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def decided(settings: Settings) -> int:
    """Transactions decided so far; 0 while Redis is down."""
    try:
        client = stream_redis(settings, timeout_s=1)
        try:
            return int(client.hlen(StreamKeys.of(settings).decided))
        finally:
            client.close()
    except Exception:
        return 0


def wait_for(condition: Any, what: str, deadline: float, log: Path) -> None:
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; scorer log:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)


def test_sigkill_of_the_scorer_and_of_redis_mid_stream_decide_each_payment_once(
    fraud_run: dict[str, Any], prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = valid_history(fraud_run)
    home = tmp_path / "home"
    as_of = history[TX_DATETIME].max() + pd.Timedelta(seconds=1)
    stream_home(fraud_run, home, monkeypatch, history, as_of)
    log = tmp_path / "scorer.log"
    scorers: list[subprocess.Popen[bytes]] = []

    with own_redis(tmp_path / "redis") as redis:
        monkeypatch.setenv("MLOPS_STREAM_REDIS_URL", redis.url)
        settings = Settings()
        keys = StreamKeys.of(settings)
        client = stream_redis(settings)
        # The next payments of the run's world, published by the producer's command.
        sent = run_mlops(
            *("simulate", "traffic", "--model", "fraud", "--to", "stream"),
            *("--rate", "3000", "--duration", "1", "--history", str(fraud_run["source"])),
            "--json",
            home=home,
            prefect_api=prefect_api,
            # Their labels as events too, on the same Redis (`monitoring.label_stream`).
            env={"MLOPS_STREAM_REDIS_URL": redis.url, "MLOPS_LABEL_SOURCE": "stream"},
        )
        assert sent.returncode == 0, sent.stderr[-3000:]
        payments = published(client, keys)
        assert len(payments) == PAYMENTS
        label_stream = f"{keys.prefix}:labels:{settings.fraud_model_name}"
        assert client.xlen(label_stream) == PAYMENTS
        deadline = time.monotonic() + DEADLINE_S
        try:
            # 1. The scorer killed with SIGKILL after a few batches, mid-stream.
            scorers.append(start_scorer(home, redis, log))
            wait_for(lambda: decided(settings) >= 300, "the first decisions", deadline, log)
            scorers[-1].send_signal(signal.SIGKILL)
            scorers[-1].wait(10)
            killed_at = decided(settings)
            assert killed_at < PAYMENTS, "the scorer finished before it was killed"

            # 2. Restarted, while a producer that retried publishes the last 1,000 payments
            # again; then Redis killed with SIGKILL mid-stream, and started again.
            scorers.append(start_scorer(home, redis, log))
            again = threading.Thread(
                target=publish, args=(client, keys, payments[-1_000:]), kwargs={"rate": 1_500.0}
            )
            again.start()
            wait_for(
                lambda: decided(settings) >= min(killed_at + 600, PAYMENTS - 200),
                "decisions after the restart",
                deadline,
                log,
            )
            redis.kill()
            time.sleep(0.3)
            redis.start()
            again.join(DEADLINE_S)
            assert not again.is_alive()

            # 3. Every payment decided; nothing pending.
            client = stream_redis(settings)
            wait_for(lambda: decided(settings) >= PAYMENTS, "every decision", deadline, log)
            wait_for(
                lambda: all(
                    client.xpending(stream, GROUP)["pending"] == 0 for stream in keys.all_payments()
                ),
                "the last acknowledgements",
                deadline,
                log,
            )
            scorers[-1].send_signal(signal.SIGTERM)  # a clean stop ships the prediction log
            assert scorers[-1].wait(60) == 0, log.read_text()[-3000:]
        finally:
            for scorer in scorers:
                if scorer.poll() is None:
                    scorer.kill()
                    scorer.wait(10)
        decided_ids = [int(fields[b"tx"]) for _, fields in client.xrange(keys.decisions)]

        # 4. The labels, published before Redis was killed, delivered from their stream by
        # the label flow: each joins its logged prediction and amends its terminal online.
        from pipelines.label_flow import ingest_labels

        monkeypatch.setenv("MLOPS_LABEL_SOURCE", "stream")
        delivered = ingest_labels(model="fraud", until=datetime(2100, 1, 1, tzinfo=UTC))
        assert delivered["delivered"] == delivered["stored"] == delivered["joined"] == PAYMENTS
        assert delivered["rows_quarantined"] == delivered["frauds_not_online"] == 0
        assert delivered["pending"] == client.xlen(label_stream) == 0
        client.close()

    # Exactly one decision per transaction id, none missing.
    assert len(decided_ids) == PAYMENTS, "a payment decided twice, or one missing"
    assert sorted(decided_ids) == [p.transaction_id for p in payments]
    recovery = log.read_text()
    print(f"killed after {killed_at} decisions; scorer log:\n{recovery[-1500:]}")

    # One logged prediction per payment, whose features are the offline windows.
    new = as_transactions(payments, history)
    everything = pd.concat([history, new], ignore_index=True)
    logged = read_predictions(settings.prediction_log_uri, model="fraud")
    assert logged["transaction_id"].is_unique and len(logged) == PAYMENTS
    offline = fraud_window_features(everything).set_index(TRANSACTION_ID)
    expected = offline.loc[logged["transaction_id"], list(FRAUD_FEATURES)]
    assert_allclose(
        logged[list(FRAUD_FEATURES)].to_numpy(dtype=np.float32),
        expected.to_numpy(dtype=np.float32),
        rtol=1e-6,
    )

    # The cards' online states hold the offline states' payments (and maybe older ones,
    # trimmed only as newer payments come).
    from features.fraud_online import customer_retention_ns
    from features.store import feature_store
    from serving.fraud_features import FraudOnlineFeatures

    end = new[TX_DATETIME].max() + pd.Timedelta(seconds=1)
    states = customer_states(everything, end)
    online, _ = FraudOnlineFeatures(feature_store(settings)).read_states(
        states["customer_id"].tolist(), []
    )
    oldest = end.value - customer_retention_ns()
    for row in states.itertuples(index=False):
        times = online[row.customer_id].times_ns
        assert times[times >= oldest].tolist() == list(row.customer_tx_times_ns), row.customer_id
