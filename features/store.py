"""The Feast feature store, configured from settings: embedded by default, Redis in the stack.

The definitions live in `features.feature_repo`; this module builds the `RepoConfig`
(no feature_store.yaml needed; one is written beside the offline data for the Feast
CLI), applies the definitions, writes offline data, materializes the online store and
builds point-in-time training sets.

Fraud: the online store holds a state per card and per terminal (recent transactions as
arrays, `features.fraud_online`). `publish_fraud_state` writes the states as of a cut-off
to parquet and materializes them; serving then pushes each new state itself
(`serving.fraud_features`). The fraud model's training rows do not come from Feast: they
are `features.fraud_windows` on the labelled history, which the online path equals.
"""

from __future__ import annotations

import io
import logging
import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from feast import FeatureStore, RepoConfig

from features import fraud_online
from features.feature_repo import churn as churn_repo
from features.feature_repo import fraud as fraud_repo
from features.fraud_windows import DEFAULT_LABEL_DELAY_DAYS
from mlops.settings import Settings

logger = logging.getLogger(__name__)

PROJECT = "mlops"
ENTITY_TIMESTAMP = "event_timestamp"
# The reserved entity id of each view's canary (`write_canary`), by the key's proto field:
# no simulated or real customer, card or terminal has it.
CANARY_KEYS: dict[str, Any] = {"string_val": "__canary__", "int64_val": -2}
# The longest an online read on serving's event loop waits for SQLite's lock: any request
# waits as long, so a few milliseconds; beyond, one read fails with a 503.
SQLITE_READ_BUSY_MS = 5


def repo_config(settings: Settings) -> RepoConfig:
    """Feast's configuration for these settings: the online store and registry they name."""
    fields = _config_fields(settings)
    # The offline store named, not configured: Feast imports a configured store's module
    # while it validates the configuration (the file store's is Dask's, and SciPy with it:
    # ~28 MB), which serving, reading online only, never uses. Named, the same store is
    # built when first used (materializing, a training set).
    fields["offline_store"] = fields["offline_store"]["type"]
    return RepoConfig(repo_path=settings.features_dir, **fields)


def _config_fields(settings: Settings) -> dict[str, Any]:
    """The feature_store.yaml content, under the keys Feast's YAML uses."""
    online: dict[str, object]
    if settings.online_store == "redis":
        online = {"type": "redis", "connection_string": _with_timeouts(settings)}
    else:
        online = {"type": "sqlite", "path": str(settings.feast_dir / "online.db")}
    return {
        "project": PROJECT,
        "provider": "local",
        "registry": _registry(settings),
        "online_store": online,
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }


def _registry(settings: Settings) -> dict[str, object]:
    """A file beside the online store by default; a SQL registry (the stack's Postgres) when
    MLOPS_FEAST_REGISTRY_URL is set, so every process of the stack sees the same definitions."""
    if settings.feast_registry_url:
        return {
            "registry_type": "sql",
            "path": settings.feast_registry_url,
            "cache_ttl_seconds": 60,
            # A database restarted under a long-running API: reconnect instead of failing.
            "sqlalchemy_config_kwargs": {"echo": False, "pool_pre_ping": True},
        }
    return {
        "registry_type": "file",
        "path": str(settings.feast_dir / "registry.db"),
        "cache_ttl_seconds": 60,
    }


def _with_timeouts(settings: Settings) -> str:
    """Every Redis call gets a timeout, so a dead online store fails fast instead of hanging."""
    url = settings.redis_url
    for option in ("socket_timeout", "socket_connect_timeout"):
        if f"{option}=" not in url:
            url += f",{option}={settings.feature_timeout_s}"
    return url


def feature_store(settings: Settings) -> FeatureStore:
    """The Feast store of these settings; on Redis, its client fails fast instead of retrying."""
    store = FeatureStore(config=repo_config(settings))
    if settings.online_store == "redis":
        _fail_without_retries(store)
    return store


def _fail_without_retries(store: FeatureStore) -> None:
    """A dead Redis fails one call within the socket timeout, not after redis-py's retries.

    redis-py 7 retries every failed call three times with exponential, jittered backoff
    (about 3.5 s for a refused connection), and Feast's connection string cannot carry a
    `Retry`. The client Feast builds is set here instead; serving is the one to decide
    whether to retry (it answers 503 and the caller retries), so the client does not.
    """
    from feast.infra.online_stores.redis import RedisOnlineStore
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    online = store.provider.online_store
    assert isinstance(online, RedisOnlineStore)
    # Feast builds its Redis client lazily and keeps it; building it now connects nothing.
    client = online._get_client(store.config.online_store)
    client.set_retry(Retry(NoBackoff(), retries=0))


async def bound_serving_reads(store: FeatureStore, settings: Settings) -> None:
    """Bound the online reads serving makes on its event loop (`serving.online_features`).

    Redis: Feast's asyncio client, like the sync one, gets no retries (its socket timeouts
    come from the connection string). SQLite is a local file read inline on the event loop,
    where a reader waiting for a lock stops every other request. In write-ahead-log mode
    (set here; it stays with the file) readers never wait for a writer, even one holding an
    exclusive transaction (a materialization), and what can still lock them out (another
    process in exclusive locking mode, a checkpoint's brief lock) is waited for at most
    `SQLITE_READ_BUSY_MS`, after which the read fails with a 503.
    """
    online = store.provider.online_store
    if settings.online_store == "redis":
        from feast.infra.online_stores.redis import RedisOnlineStore
        from redis.asyncio.retry import Retry as AsyncRetry
        from redis.backoff import NoBackoff

        assert isinstance(online, RedisOnlineStore)
        client = await online._get_client_async(store.config.online_store)
        client.set_retry(AsyncRetry(NoBackoff(), retries=0))
    else:
        from feast.infra.online_stores.sqlite import SqliteOnlineStore

        assert isinstance(online, SqliteOnlineStore)
        online._get_conn(store.config).execute(f"PRAGMA busy_timeout = {SQLITE_READ_BUSY_MS}")
        sqlite_write_ahead(store)


def sqlite_write_ahead(store: FeatureStore) -> bool:
    """Put a SQLite online store in write-ahead-log mode (it stays with the file), its
    commits written without waiting for the disk; True when it is in WAL mode.

    Serving writes (each fraud payment joins two states), and so does the stream scorer:
    in WAL mode, `synchronous = NORMAL` writes a commit to the log file without an fsync
    (one cost ~9 ms a payment on this machine's busy disk) and syncs at checkpoints. A
    commit then survives the process's crash (kill -9), as the prediction log's spool
    does, not a power cut; the database stays consistent either way.
    """
    online = store.provider.online_store
    connection = online._get_conn(store.config)  # type: ignore[attr-defined]
    try:
        [mode] = connection.execute("PRAGMA journal_mode = WAL").fetchone()
    except sqlite3.OperationalError as error:  # locked now: readers may wait, bounded
        logger.warning("online store left in its journal mode (%s)", error)
        return False
    if mode != "wal":
        return False
    connection.execute("PRAGMA synchronous = NORMAL")
    return True


def apply_churn_definitions(store: FeatureStore, settings: Settings) -> None:
    """Register the churn entity, view and service; write feature_store.yaml for the CLI."""
    store.apply(
        [
            churn_repo.customer,
            churn_repo.churn_customer_source,
            churn_repo.churn_customer_features,
            churn_repo.churn_model,
        ]
    )
    _write_cli_config(settings)


def _write_cli_config(settings: Settings) -> None:
    """Let users inspect the store with `feast -c $MLOPS_HOME/features feature-views list`."""
    # (RepoConfig.write_to_path writes field names Feast cannot read back, so not that.)
    fields = _config_fields(settings)
    if settings.feast_registry_url:
        # Feast expands ${VARS} when it reads the file: the database password stays off disk.
        fields["registry"] = {**fields["registry"], "path": "${MLOPS_FEAST_REGISTRY_URL}"}
    config = settings.features_dir / "feature_store.yaml"
    config.write_text(yaml.safe_dump(fields, sort_keys=False))


def apply_fraud_definitions(store: FeatureStore, settings: Settings) -> None:
    """Register the fraud entities, state views, push sources, on-demand view and service;
    write feature_store.yaml for the CLI.

    Feast's apply is partial: the churn definitions in the same registry stay.
    """
    store.apply(
        [
            fraud_repo.card_customer,
            fraud_repo.terminal,
            fraud_repo.fraud_customer_state_source,
            fraud_repo.fraud_terminal_state_source,
            fraud_repo.fraud_customer_state_push,
            fraud_repo.fraud_terminal_state_push,
            fraud_repo.fraud_customer_state,
            fraud_repo.fraud_terminal_state,
            fraud_repo.fraud_transaction_features,
            fraud_repo.fraud_model,
        ]
    )
    _write_cli_config(settings)


def _write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    tmp = path.with_suffix(".tmp.parquet")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def write_fraud_state(
    transactions: pd.DataFrame,
    as_of: datetime,
    settings: Settings,
    *,
    written_at: datetime,
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write the customer and terminal states just before `as_of` as the views' parquet
    files; returns the two frames as written.

    Every row is stamped `written_at`: the state is a snapshot, and a later write (a push
    at serving, the next publish) must replace it whatever transaction times it covers.
    """
    customers = fraud_online.customer_states(transactions, as_of)
    terminals = fraud_online.terminal_states(transactions, as_of, label_delay_days=label_delay_days)
    for frame, name in (
        (customers, fraud_repo.CUSTOMER_STATE_FILE),
        (terminals, fraud_repo.TERMINAL_STATE_FILE),
    ):
        frame[fraud_repo.STATE_TIMESTAMP] = pd.Timestamp(written_at)
        _write_parquet(frame, settings.features_dir / name)
    return customers, terminals


def publish_fraud_state(
    store: FeatureStore,
    settings: Settings,
    transactions: pd.DataFrame,
    as_of: datetime,
    *,
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
) -> datetime:
    """Write the states as of `as_of` and load them into the online store; returns the stamp.

    Use the labelled history: a state's labels of the last `label_delay_days` are used
    only once due, so the label flow republishing with fresh labels keeps serving exact.
    """
    written_at = datetime.now(UTC)
    customers, terminals = write_fraud_state(
        transactions, as_of, settings, written_at=written_at, label_delay_days=label_delay_days
    )
    with _without_feast_banner():
        store.materialize(
            start_date=written_at - timedelta(seconds=1),
            end_date=written_at + timedelta(seconds=1),
            feature_views=[
                fraud_repo.fraud_customer_state.name,
                fraud_repo.fraud_terminal_state.name,
            ],
        )
    for view, states, key in (
        (fraud_repo.fraud_customer_state, customers, fraud_online.CUSTOMER_KEY),
        (fraud_repo.fraud_terminal_state, terminals, fraud_online.TERMINAL_KEY),
    ):
        write_canary(store, view.name, states.head(1), key)
    return written_at


def write_churn_offline(features: pd.DataFrame, settings: Settings) -> Path:
    """Write the offline churn features (customer_id, event_timestamp, features) as parquet."""
    return _write_parquet(features, settings.features_dir / churn_repo.CHURN_FEATURES_FILE)


def publish_churn_online(store: FeatureStore, features: pd.DataFrame) -> None:
    """Load the online store with the latest values per customer of `features` (the offline
    table just written), then the view's canary."""
    stamps = pd.to_datetime(features[ENTITY_TIMESTAMP], utc=True)
    with _without_feast_banner():
        store.materialize(
            start_date=stamps.min() - timedelta(seconds=1),
            end_date=stamps.max() + timedelta(seconds=1),
            feature_views=[churn_repo.churn_customer_features.name],
        )
    view = churn_repo.churn_customer_features.name
    write_canary(store, view, features.head(1), churn_repo.customer.join_key)


def write_canary(store: FeatureStore, view_name: str, row: pd.DataFrame, join_key: str) -> None:
    """Write `row`, one published entity's row, again under the view's canary key.

    The canary is how serving's readiness knows the online store still holds what was
    published: a read of any unknown key answers the same whether the store is full or
    was emptied (a Redis restarted without its data, a SQLite file replaced), while the
    canary is there only if the last publish is. It lives in the online store alone, so
    no training set or monitoring frame ever sees it.
    """
    canary = row.copy()
    key = canary[join_key]
    canary[join_key] = CANARY_KEYS["int64_val" if key.dtype.kind in "iu" else "string_val"]
    with warnings.catch_warnings():
        # Feast warns that it converts the frame's dtypes to its protos: what it is for.
        warnings.simplefilter("ignore")
        store.write_to_online_store(view_name, canary)


@contextmanager
def _without_feast_banner() -> Iterator[None]:
    """Drop what Feast's materialize prints on stdout: "Materializing 2 feature views from
    ... into the sqlite online store." and each view's name, in terminal colour codes even
    in a file, on the stdout where `--json` promises one JSON line. The callers log what
    they published. (A print sent to a Prefect run logger is not caught: see the tasks.)
    """
    with redirect_stdout(io.StringIO()):
        yield


def churn_training_frame(store: FeatureStore, entities: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join: for each (customer_id, event_timestamp) the features known then."""
    service = store.get_feature_service(churn_repo.churn_model.name)
    job = store.get_historical_features(entity_df=entities, features=service)
    return job.to_df()
