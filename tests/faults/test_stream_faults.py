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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from features.fraud_online import customer_states
from features.fraud_schema import TRANSACTION_ID, TX_DATETIME, TX_FRAUD
from features.fraud_windows import FRAUD_FEATURES, fraud_window_features
from mlops.payment_stream import GROUP, Payment, StreamKeys, stream_redis
from mlops.prediction_log import read_predictions
from mlops.settings import Settings
from sources.fraud_simulator import simulate_transactions
from stack.payment_producer import publish
from tests.helpers.redis_server import RedisServer, own_redis
from tests.helpers.runs import FRAUD_RUN_SIMULATION
from tests.helpers.stream_home import stream_home, valid_history

pytestmark = [pytest.mark.services, pytest.mark.slow]

PAYMENTS = 3_000
DEADLINE_S = 90


def continuation(history: pd.DataFrame, count: int) -> pd.DataFrame:
    """The next `count` payments of the fraud run's world, with new transaction ids and no
    known label (the scorer never sees one)."""
    more = simulate_transactions(
        **{**FRAUD_RUN_SIMULATION, "n_days": FRAUD_RUN_SIMULATION["n_days"] + 12}
    )
    later = more[more[TX_DATETIME] > history[TX_DATETIME].max()].iloc[:count].copy()
    assert len(later) == count, "the simulator made too few payments"
    later[TRANSACTION_ID] = history[TRANSACTION_ID].max() + 1 + np.arange(count)
    later[TX_FRAUD] = 0
    return later.reset_index(drop=True)


def payments_of(frame: pd.DataFrame) -> list[Payment]:
    return [
        Payment(
            transaction_id=int(row.TRANSACTION_ID),
            customer_id=int(row.CUSTOMER_ID),
            terminal_id=int(row.TERMINAL_ID),
            amount=float(row.TX_AMOUNT),
            time_ns=int(pd.Timestamp(row.TX_DATETIME).value),
        )
        for row in frame.itertuples(index=False)
    ]


def start_scorer(home: Path, redis: RedisServer, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    env |= {
        "MLOPS_HOME": str(home),
        "MLOPS_STREAM_REDIS_URL": redis.url,
        "MLOPS_STREAM_BATCH": "64",
        "MLOPS_MODEL_REFRESH_S": "0",
        "MLOPS_PREDICTION_LOG_FLUSH_S": "0.2",
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
    fraud_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = valid_history(fraud_run)
    new = continuation(history, PAYMENTS)
    home = tmp_path / "home"
    stream_home(
        fraud_run, home, monkeypatch, history, history[TX_DATETIME].max() + pd.Timedelta(seconds=1)
    )
    payments = payments_of(new)
    first, second = payments[: PAYMENTS // 2], payments[PAYMENTS // 2 :]
    log = tmp_path / "scorer.log"
    deadline = time.monotonic() + DEADLINE_S

    with own_redis(tmp_path / "redis") as redis:
        monkeypatch.setenv("MLOPS_STREAM_REDIS_URL", redis.url)
        settings = Settings()
        keys = StreamKeys.of(settings)
        client = stream_redis(settings)
        publish(client, keys, first)

        # 1. The scorer killed with SIGKILL after a few batches, mid-stream.
        scorer = start_scorer(home, redis, log)
        wait_for(lambda: decided(settings) >= 300, "the first decisions", deadline, log)
        scorer.send_signal(signal.SIGKILL)
        scorer.wait(10)
        killed_at = decided(settings)
        assert killed_at < len(first), "the scorer finished before it was killed"

        # 2. Restarted; the second half published meanwhile; Redis killed mid-stream.
        scorer = start_scorer(home, redis, log)
        producer = threading.Thread(
            target=publish, args=(client, keys, second), kwargs={"rate": 1_500.0}
        )
        producer.start()
        wait_for(
            lambda: decided(settings) >= killed_at + 600, "decisions after restart", deadline, log
        )
        redis.kill()
        time.sleep(0.3)
        redis.start()
        producer.join(DEADLINE_S)
        assert not producer.is_alive()

        # 3. Every payment decided; nothing pending, nothing left unread.
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
        scorer.send_signal(signal.SIGTERM)  # a clean stop ships the prediction log
        assert scorer.wait(30) == 0, log.read_text()[-3000:]

        decisions = client.xrange(keys.decisions)
        decided_ids = [int(fields[b"tx"]) for _, fields in decisions]
        client.close()

    # Exactly one decision per transaction id, none missing.
    assert len(decided_ids) == PAYMENTS, "a payment decided twice, or one missing"
    assert sorted(decided_ids) == [p.transaction_id for p in payments]

    # One logged prediction per payment, whose features are the offline windows.
    logged = read_predictions(settings.prediction_log_uri, model="fraud")
    assert logged["transaction_id"].is_unique and len(logged) == PAYMENTS
    offline = fraud_window_features(pd.concat([history, new[history.columns]], ignore_index=True))
    offline = offline.set_index(TRANSACTION_ID).loc[logged["transaction_id"], list(FRAUD_FEATURES)]
    assert_allclose(
        logged[list(FRAUD_FEATURES)].to_numpy(dtype=np.float32),
        offline.to_numpy(dtype=np.float32),
        rtol=1e-6,
    )

    # The cards' online states hold the offline states' payments (and maybe older ones,
    # trimmed only as newer payments come).
    from features.fraud_online import customer_retention_ns
    from features.store import feature_store
    from serving.fraud_features import FraudOnlineFeatures

    everything = pd.concat([history, new[history.columns]], ignore_index=True)
    as_of = new[TX_DATETIME].max() + pd.Timedelta(seconds=1)
    expected = customer_states(everything, as_of)
    online, _ = FraudOnlineFeatures(feature_store(settings)).read_states(
        expected["customer_id"].tolist(), []
    )
    oldest = as_of.value - customer_retention_ns()
    for row in expected.itertuples(index=False):
        times = online[row.customer_id].times_ns
        assert times[times >= oldest].tolist() == list(row.customer_tx_times_ns), row.customer_id
