"""The Feast store as the pipeline uses it: apply, offline write, point-in-time join,
materialize, online read. Embedded (SQLite) always; Redis when the service runs."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import store as feature_store
from features.churn_frames import ENTITY_KEY, feature_frame, label_frame
from features.churn_schema import TIMESTAMP_COLUMN, validate_churn_frame
from features.churn_transforms import CHURN_FEATURES
from features.feature_repo.churn import CHURN_FEATURES_FILE
from mlops.settings import Settings
from serving.errors import UnknownEntity
from serving.online_features import OnlineFeatures
from sources.churn_simulator import simulate_customers


def snapshots() -> pd.DataFrame:
    """Two snapshots of the same 60 customers, three months apart, the later one changed."""
    first = simulate_customers(60, seed=11, months=1)
    later = first.copy()
    later["tenure"] = (later["tenure"].astype(int) + 3).astype(str)
    later["TotalCharges"] = [
        f"{float(m) * int(t):.2f}"
        for m, t in zip(later["MonthlyCharges"], later["tenure"], strict=True)
    ]
    later["event_timestamp"] = (
        pd.to_datetime(first["event_timestamp"], utc=True) + pd.Timedelta(days=90)
    ).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return validate_churn_frame(pd.concat([first, later], ignore_index=True), "two snapshots").valid


def publish(settings: Settings, valid: pd.DataFrame) -> pd.DataFrame:
    features = feature_frame(valid)
    store = feature_store.feature_store(settings)
    feature_store.apply_churn_definitions(store, settings)
    feature_store.write_churn_offline(features, settings)
    feature_store.publish_churn_online(store, features)
    return features


def check_online_equals_latest_offline(settings: Settings, features: pd.DataFrame) -> None:
    store = feature_store.feature_store(settings)
    latest = features.sort_values(TIMESTAMP_COLUMN).drop_duplicates(ENTITY_KEY, keep="last")
    service = store.get_feature_service("churn_model")
    ids = latest[ENTITY_KEY].tolist()[:10]
    online = store.get_online_features(
        features=service, entity_rows=[{ENTITY_KEY: i} for i in ids]
    ).to_df()
    expected = latest.set_index(ENTITY_KEY).loc[ids, list(CHURN_FEATURES)]
    got = online.set_index(ENTITY_KEY).loc[ids, list(CHURN_FEATURES)]
    np.testing.assert_allclose(got.to_numpy(float), expected.to_numpy(float), rtol=0, atol=1e-9)
    check_serving_reads_equal_feast(settings, ids, got.to_numpy(np.float32))


def check_serving_reads_equal_feast(settings: Settings, ids: list[str], feast: np.ndarray) -> None:
    """Serving's direct reads (sync, async, many) return what get_online_features returns."""
    import asyncio

    store = feature_store.feature_store(settings)

    async def read_async() -> list[np.ndarray]:
        await feature_store.bound_serving_reads(store, settings)
        return [await reads.row_async(i, CHURN_FEATURES) for i in ids]

    reads = OnlineFeatures(store, "churn_model", ENTITY_KEY)
    np.testing.assert_array_equal(np.stack([reads.row(i, CHURN_FEATURES) for i in ids]), feast)
    np.testing.assert_array_equal(np.stack(asyncio.run(read_async())), feast)
    matrix, known = reads.rows([*ids, "no-such-customer"], CHURN_FEATURES)
    np.testing.assert_array_equal(matrix[:-1], feast)
    assert known.tolist() == [True] * len(ids) + [False]
    with pytest.raises(UnknownEntity):
        reads.row("no-such-customer", CHURN_FEATURES)
    assert reads.ping()


def test_point_in_time_join_returns_the_snapshot_known_at_each_time(settings: Settings) -> None:
    valid = snapshots()
    features = publish(settings, valid)
    labels = label_frame(valid)
    # Ask just before the second snapshot too: the join must not see the future.
    before_second = labels.iloc[60:].copy()
    before_second[TIMESTAMP_COLUMN] -= pd.Timedelta(days=1)
    entities = pd.concat([labels, before_second], ignore_index=True)

    joined = feature_store.churn_training_frame(feature_store.feature_store(settings), entities)
    joined = joined.sort_values([ENTITY_KEY, TIMESTAMP_COLUMN]).reset_index(drop=True)
    first_tenure = features.iloc[:60].set_index(ENTITY_KEY)["tenure_months"]
    later_tenure = features.iloc[60:].set_index(ENTITY_KEY)["tenure_months"]
    for customer_id, rows in joined.groupby(ENTITY_KEY):
        # three rows per customer: first snapshot, a day before the second, the second
        assert rows["tenure_months"].tolist() == [
            first_tenure[customer_id],
            first_tenure[customer_id],
            later_tenure[customer_id],
        ]


def test_online_store_serves_the_latest_snapshot(settings: Settings) -> None:
    features = publish(settings, snapshots())
    check_online_equals_latest_offline(settings, features)


@pytest.mark.services
def test_redis_online_store_serves_the_latest_snapshot(settings: Settings, redis_url: str) -> None:
    redis_settings = settings.model_copy(update={"online_store": "redis", "redis_url": redis_url})
    features = publish(redis_settings, snapshots())
    check_online_equals_latest_offline(redis_settings, features)


def test_a_store_that_lost_its_publish_is_not_healthy(settings: Settings) -> None:
    publish(settings, snapshots())
    reads = OnlineFeatures(feature_store.feature_store(settings), "churn_model", ENTITY_KEY)
    assert reads.health() is None
    # The canary is in the online store alone: no training set sees it.
    offline = pd.read_parquet(settings.features_dir / CHURN_FEATURES_FILE)
    assert "__canary__" not in set(offline[ENTITY_KEY])
    # Deleted while open, the file still answers reads; the store is gone all the same.
    (settings.feast_dir / "online.db").unlink()
    assert "online.db is gone" in str(reads.health())
    assert not reads.ping()


@pytest.mark.services
def test_a_redis_store_restarted_empty_is_not_healthy(settings: Settings, redis_url: str) -> None:
    import redis

    redis_settings = settings.model_copy(update={"online_store": "redis", "redis_url": redis_url})
    publish(redis_settings, snapshots())
    store = feature_store.feature_store(redis_settings)
    reads = OnlineFeatures(store, "churn_model", ENTITY_KEY)
    assert reads.health() is None
    host, rest = redis_url.split(":", 1)
    port, db = rest.split(",db=")
    redis.Redis(host=host, port=int(port), db=int(db)).flushdb()  # a restart without its data
    assert reads.health() == (
        "'churn_customer_features' lost its published data (its canary is missing)"
    )


def test_the_feast_cli_reads_the_written_config(settings: Settings) -> None:
    """The README's `feast -c var/features feature-views list` works on what we write."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    publish(settings, snapshots())
    feast = shutil.which("feast", path=str(Path(sys.executable).parent))
    assert feast is not None
    listed = subprocess.run(
        [feast, "-c", str(settings.features_dir), "feature-views", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "churn_customer_features" in listed


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A redis-server of this test's own on a free port, with `requirepass` (the machine's
    shared Redis keeps no password): its `host:port` and the password."""
    import shutil
    import socket
    import subprocess

    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    password = secrets.token_hex(16)
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(tmp_path), "--requirepass", password]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, password=password)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        yield f"127.0.0.1:{port}", password
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.services
def test_redis_with_requirepass_refuses_the_online_store_without_it(
    settings: Settings, redis_with_password: tuple[str, str]
) -> None:
    import redis

    address, password = redis_with_password
    anonymous = settings.model_copy(update={"online_store": "redis", "redis_url": address})
    with pytest.raises(redis.AuthenticationError):
        publish(anonymous, snapshots())
    # The password in Feast's connection string, as compose's MLOPS_REDIS_URL carries it.
    with_password = anonymous.model_copy(update={"redis_url": f"{address},password={password}"})
    features = publish(with_password, snapshots())
    check_online_equals_latest_offline(with_password, features)
