"""The fraud features through Feast: apply, publish the states, read and record online.

The skew test replays a week of transactions through the serving path and checks every
feature of every replayed transaction against the offline computation used for training.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from features import store as feature_store
from features.fraud_online import (
    CUSTOMER_AMOUNTS,
    CUSTOMER_KEY,
    CUSTOMER_TERMINALS,
    CUSTOMER_TIMES,
    REQUEST_AMOUNT,
    REQUEST_TIME,
    TERMINAL_KEY,
    CustomerHistory,
    epoch_ns,
)
from features.fraud_windows import FRAUD_FEATURES, SECONDS_SINCE_PREV_CAP, fraud_window_features
from mlops.settings import Settings
from serving.errors import FeatureStoreUnavailable, InvalidInput
from serving.fraud_features import FraudOnlineFeatures, Payment
from sources.fraud_simulator import simulate_transactions

START = pd.Timestamp("2018-04-01", tz="UTC")
CUT_OFF = START + pd.Timedelta(days=38)
REPLAY_END = CUT_OFF + pd.Timedelta(days=7)


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    # A wide radius shares each terminal among many cards, so terminal windows are busy;
    # 20 cards keep the replayed week to a few hundred transactions.
    return simulate_transactions(20, 200, 45, seed=7, radius=15)


@pytest.fixture(scope="module")
def offline(history: pd.DataFrame) -> pd.DataFrame:
    return fraud_window_features(history)


def published(settings: Settings, history: pd.DataFrame) -> FraudOnlineFeatures:
    store = feature_store.feature_store(settings)
    feature_store.apply_churn_definitions(store, settings)
    feature_store.apply_fraud_definitions(store, settings)
    feature_store.publish_fraud_state(store, settings, history, CUT_OFF)
    return FraudOnlineFeatures(feature_store.feature_store(settings))


def first_after_cut_off(history: pd.DataFrame) -> pd.Series:
    return history[history["TX_DATETIME"] >= CUT_OFF].iloc[0]


def check_round_trip(settings: Settings, history: pd.DataFrame, offline: pd.DataFrame) -> None:
    published(settings, history)
    store = feature_store.feature_store(settings)
    tx = first_after_cut_off(history)
    response = store.get_online_features(
        features=store.get_feature_service("fraud_model"),
        entity_rows=[
            {
                CUSTOMER_KEY: int(tx["CUSTOMER_ID"]),
                TERMINAL_KEY: int(tx["TERMINAL_ID"]),
                REQUEST_TIME: epoch_ns(tx["TX_DATETIME"]),
                REQUEST_AMOUNT: float(tx["TX_AMOUNT"]),
            }
        ],
    ).to_dict()
    got = [response[name][0] for name in FRAUD_FEATURES]
    expected = offline.loc[tx.name, list(FRAUD_FEATURES)].to_numpy(dtype=float)
    assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    # Serving reads the two states itself and runs the view's function: the same row.
    served = FraudOnlineFeatures(store).row(
        int(tx["CUSTOMER_ID"]),
        int(tx["TERMINAL_ID"]),
        tx["TX_DATETIME"],
        float(tx["TX_AMOUNT"]),
        FRAUD_FEATURES,
    )
    np.testing.assert_array_equal(served, np.asarray(got, dtype=np.float32))
    # A card and a terminal never seen: empty histories both ways.
    unseen = {CUSTOMER_KEY: 999_999, TERMINAL_KEY: 999_998}
    when = tx["TX_DATETIME"]
    feast_unseen = store.get_online_features(
        features=store.get_feature_service("fraud_model"),
        entity_rows=[{**unseen, REQUEST_TIME: epoch_ns(when), REQUEST_AMOUNT: 42.0}],
    ).to_dict()
    served_unseen = FraudOnlineFeatures(store).row(999_999, 999_998, when, 42.0, FRAUD_FEATURES)
    np.testing.assert_array_equal(
        served_unseen, np.asarray([feast_unseen[n][0] for n in FRAUD_FEATURES], dtype=np.float32)
    )


def test_round_trip_through_the_fraud_model_service(
    settings: Settings, history: pd.DataFrame, offline: pd.DataFrame
) -> None:
    check_round_trip(settings, history, offline)
    store = feature_store.feature_store(settings)
    # Fraud and churn definitions share one registry; applying one keeps the other.
    assert {s.name for s in store.list_feature_services()} == {"churn_model", "fraud_model"}
    assert "churn_customer_features" in {v.name for v in store.list_feature_views()}
    service = store.get_feature_service("fraud_model")
    assert [f.name for p in service.feature_view_projections for f in p.features] == list(
        FRAUD_FEATURES
    )


@pytest.mark.services
def test_redis_round_trip_and_same_second_records(
    settings: Settings, redis_url: str, history: pd.DataFrame, offline: pd.DataFrame
) -> None:
    redis_settings = settings.model_copy(update={"online_store": "redis", "redis_url": redis_url})
    check_round_trip(redis_settings, history, offline)
    # Redis keeps a write only if its stamp is newer: two payments in one second must both
    # land in the card's state.
    features = FraudOnlineFeatures(feature_store.feature_store(redis_settings))
    when = REPLAY_END + pd.Timedelta(days=1)
    for amount in (10.0, 20.0):
        features.record(900_001, 5, when, amount)
    row = features.row(900_001, 5, when + pd.Timedelta(seconds=1), 30.0, FRAUD_FEATURES)
    assert dict(zip(FRAUD_FEATURES, row.tolist(), strict=True))["customer_nb_tx_1d"] == 2.0


def _replay(history: pd.DataFrame) -> pd.DataFrame:
    return history[(history["TX_DATETIME"] >= CUT_OFF) & (history["TX_DATETIME"] < REPLAY_END)]


def _check_replay(served: np.ndarray, replay: pd.DataFrame, offline: pd.DataFrame) -> None:
    expected = offline.loc[replay.index, list(FRAUD_FEATURES)].to_numpy()
    assert 200 < len(replay) < 400
    # Terminal risks must be exercised, not all zero, for the test to mean anything.
    assert expected[:, FRAUD_FEATURES.index("terminal_risk_7d")].max() > 0
    # The model gets float32; compare at float32 precision.
    assert_allclose(served, expected.astype(np.float32), rtol=1e-6, atol=0)


def test_skew_serving_replay_equals_offline_features(
    settings: Settings, history: pd.DataFrame, offline: pd.DataFrame
) -> None:
    """Training/serving skew: the serving path reproduces the training features exactly.

    The states are published as of T0 from the labelled history; then every transaction of
    [T0, T0 + 7 days) goes through serving in time order as the API scores it: `payment`
    (one read; scored), then its `record` (appended online, label pending). The replay
    stays within one label delay: a recorded transaction enters a terminal window only
    `delay` (7) days after it happened, i.e. after T0 + 7 days, so no pending label is
    ever read; offline, every label is known. Past that horizon, equality needs the label
    flow to republish the terminal states.
    """
    features = published(settings, history)
    replay = _replay(history)
    served = np.empty((len(replay), len(FRAUD_FEATURES)))
    for i, tx in enumerate(replay.itertuples(index=False)):
        with features.payment(
            tx.CUSTOMER_ID, tx.TERMINAL_ID, tx.TX_DATETIME, tx.TX_AMOUNT, FRAUD_FEATURES
        ) as payment:
            served[i] = payment.row
            payment.record()
    _check_replay(served, replay, offline)
    # `row` then `record`, the two steps apart, read what `payment` wrote.
    last = replay.iloc[-1]
    later = last["TX_DATETIME"] + pd.Timedelta(minutes=1)
    card, terminal = int(last["CUSTOMER_ID"]), int(last["TERMINAL_ID"])
    before = features.row(card, terminal, later, 10.0, FRAUD_FEATURES)
    features.record(card, terminal, later, 10.0)
    after = features.row(card, terminal, later + pd.Timedelta(seconds=1), 10.0, FRAUD_FEATURES)
    nb_1d = FRAUD_FEATURES.index("customer_nb_tx_1d")
    assert after[nb_1d] == before[nb_1d] + 1


def test_skew_batches_of_payments_equal_offline_features(
    settings: Settings, history: pd.DataFrame, offline: pd.DataFrame
) -> None:
    """A stream consumer's path: the same replay in batches (`payments`), each batch read
    once and written once, gives the same features; a batch not recorded leaves the
    states as they were."""
    features = published(settings, history)
    replay = _replay(history)
    payments = [
        Payment(tx.CUSTOMER_ID, tx.TERMINAL_ID, tx.TX_DATETIME, tx.TX_AMOUNT)
        for tx in replay.itertuples(index=False)
    ]
    with features.payments(payments[:40], FRAUD_FEATURES) as unrecorded:
        first_rows = unrecorded.rows.copy()
    served = []
    for start in range(0, len(payments), 40):
        with features.payments(payments[start : start + 40], FRAUD_FEATURES) as batch:
            served.append(batch.rows)
            batch.record()
    np.testing.assert_array_equal(served[0], first_rows)
    _check_replay(np.concatenate(served), replay, offline)


def test_a_card_and_terminal_never_seen_get_the_empty_window_features(
    settings: Settings, history: pd.DataFrame
) -> None:
    features = published(settings, history)
    saturday_night = pd.Timestamp("2018-05-12 02:30", tz="UTC")
    row = features.row(999_999, 999_999, saturday_night, 12.5, FRAUD_FEATURES)
    got = dict(zip(FRAUD_FEATURES, row.tolist(), strict=True))
    assert got == dict.fromkeys(FRAUD_FEATURES, 0.0) | {
        "tx_amount": 12.5,
        "tx_during_weekend": 1.0,
        "tx_during_night": 1.0,
        "amount_to_customer_avg_30d": 1.0,
        "seconds_since_customer_prev_tx": SECONDS_SINCE_PREV_CAP,
    }
    assert features.ping()


def test_record_appends_to_both_states_and_trims(settings: Settings, history: pd.DataFrame) -> None:
    features = published(settings, history)
    tx = first_after_cut_off(history)
    customer, terminal = int(tx["CUSTOMER_ID"]), int(tx["TERMINAL_ID"])
    later = CUT_OFF + pd.Timedelta(days=31)  # everything published is out of 30-day reach
    features.record(customer, terminal, later, 50.0)
    store = feature_store.feature_store(settings)
    state = store.get_online_features(
        features=[f"fraud_customer_state:{CUSTOMER_TIMES}"],
        entity_rows=[{CUSTOMER_KEY: customer}],
    ).to_dict()
    assert state[CUSTOMER_TIMES][0] == [epoch_ns(later)]
    got = dict(
        zip(
            FRAUD_FEATURES,
            features.row(customer, terminal, later, 25.0, FRAUD_FEATURES).tolist(),
            strict=True,
        )
    )
    assert got["customer_nb_tx_1d"] == 0.0  # the same instant: not in its own window
    assert got["customer_nb_tx_at_terminal_30d"] == 0.0


def test_a_store_that_does_not_answer_is_unavailable(
    settings: Settings, history: pd.DataFrame
) -> None:
    features = published(settings, history)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        features.row(1, 1, CUT_OFF.tz_localize(None), 10.0, FRAUD_FEATURES)
    # An online database that cannot be opened (a lost volume, a permissions change).
    online_db = settings.feast_dir / "online.db"
    online_db.unlink()
    online_db.mkdir()
    unreachable = FraudOnlineFeatures(feature_store.feature_store(settings))
    with pytest.raises(FeatureStoreUnavailable):
        unreachable.row(1, 1, CUT_OFF, 10.0, FRAUD_FEATURES)
    with pytest.raises(FeatureStoreUnavailable):
        unreachable.record(1, 1, CUT_OFF, 10.0)
    assert not unreachable.ping()


def test_serving_writes_the_states_without_waiting_for_the_disk(
    settings: Settings, history: pd.DataFrame
) -> None:
    """Serving's connection: write-ahead log, commits synced at checkpoints (NORMAL, 1),
    not each (FULL, 2): a payment's two state writes then cost no fsync."""
    import asyncio

    features = published(settings, history)
    store = feature_store.feature_store(settings)
    asyncio.run(feature_store.bound_serving_reads(store, settings))
    connection = store.provider.online_store._get_conn(store.config)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert connection.execute("PRAGMA synchronous").fetchone() == (1,)
    assert FraudOnlineFeatures(store).local
    # Another process's connection (the label flow's) keeps SQLite's default.
    assert features._store.provider.online_store._get_conn(store.config).execute(
        "PRAGMA synchronous"
    ).fetchone() == (2,)


def test_the_direct_sqlite_write_leaves_the_rows_feast_writes(
    settings: Settings, history: pd.DataFrame
) -> None:
    """`SqliteViewWriter` replaces Feast's `online_write_batch` on the scoring paths: Feast's
    own write of the same states at the same time must change no byte of what it left."""
    from features.feature_repo import fraud as fraud_repo
    from serving.fraud_features import _entity_key_proto, _list_value
    from serving.online_features import SqliteViewWriter

    features = published(settings, history)
    store = features._store
    view = store.get_feature_view(fraud_repo.fraud_customer_state.name)
    writer = SqliteViewWriter.of(store, view)
    assert writer is not None
    known = int(first_after_cut_off(history)["CUSTOMER_ID"])
    states = {
        key: CustomerHistory(
            np.asarray([epoch_ns(CUT_OFF), epoch_ns(CUT_OFF) + 5], np.int64),
            np.asarray([12.5, 0.1 + key], np.float64),
            np.asarray([3, key], np.int64),
        )
        for key in (known, 10**6)  # a card published before, and one never seen
    }
    # In the future, so that the write's stamp (never before the last one) is this one.
    stamp = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    features._last_stamp = stamp - timedelta(microseconds=1)
    features._write_states(states, {})
    connection = store.provider.online_store._get_conn(store.config)

    keys = features._serialized_keys(CUSTOMER_KEY, list(states))

    def table() -> list[tuple[object, ...]]:
        # The times as stored (Feast's adapter keeps epoch seconds), not converted back.
        query = (
            "SELECT entity_key, feature_name, value, value_text, CAST(event_ts AS TEXT), "
            f"CAST(created_ts AS TEXT) FROM {writer.table} WHERE entity_key IN (?, ?) "
            "ORDER BY 1, 2"
        )
        return connection.execute(query, keys).fetchall()

    ours = table()
    assert len(ours) == 2 * 3  # two cards, three features each
    assert {row[-2:] for row in ours} == {(str(int(stamp.timestamp())),) * 2}
    store.provider.online_store.online_write_batch(
        store.config,
        view,
        [
            (
                _entity_key_proto(CUSTOMER_KEY, key),
                {
                    CUSTOMER_TIMES: _list_value(state.times_ns),
                    CUSTOMER_AMOUNTS: _list_value(state.amounts),
                    CUSTOMER_TERMINALS: _list_value(state.terminal_ids),
                },
                stamp,
                stamp,
            )
            for key, state in states.items()
        ],
        progress=None,
    )
    assert table() == ours
