"""Online feature reads for serving: one read of the online store per entity, as float32.

`FeatureStore.get_online_features` is Feast's general path: on every call it resolves the
feature service against the registry, validates the entity rows, groups them by view,
reads, runs on-demand transformations and builds a response proto, then a dict of lists.
That costs about 3.5 ms a call on this machine; the read itself costs about 0.3 ms.
The serving hot path knows all of that in advance, so `ViewReader` resolves a view's
join key, value type and feature names once and calls the online store's own
`online_read` (the call `get_online_features` makes underneath, with Feast's entity key
serialization, SQLite or Redis alike). Tests check that both paths return the same values.

On SQLite the reader goes one step further down. `SqliteOnlineStore.online_read` selects
every feature row of the entity with its event timestamp, and sqlite3 turns each timestamp
into a datetime through a Python converter: 35 conversions a churn request, a third of the
read's cost, for a value serving never uses. `ViewReader` runs the same lookup on the
same connection and table (Feast's table name, Feast's entity key serialization) without
the timestamp column; the values are the same `ValueProto` bytes Feast wrote.

`read_async` is what the event loop calls: Feast's asyncio read where the store has one
(Redis), else the SQLite read inline (a local file, ~0.1 ms, its lock wait bounded by
`features.store.bound_serving_reads`). The request then never visits the thread pool, a
trip that cost ~0.15 ms each way on this machine.

Feast does not apply a view's TTL on online reads either, so neither does this.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
from feast import FeatureStore, FeatureView, ValueType
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.online_store import OnlineStore
from feast.infra.online_stores.sqlite import SqliteOnlineStore, _quote_id, _table_id
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from features.store import CANARY_KEYS
from serving.errors import FeatureStoreUnavailable, UnknownEntity

logger = logging.getLogger(__name__)

# Serialized entity keys a reader keeps (`ViewReader.serialized_keys`); it starts over past it.
_KEYS_KEPT = 200_000
# The ValueProto field that holds a join key of each entity value type.
_KEY_FIELDS = {ValueType.STRING: "string_val", ValueType.INT64: "int64_val"}


@dataclass(frozen=True)
class ViewReader:
    """Reads some features of one feature view for given entity ids, straight from the
    online store. Built once per view; `read` is one online-store call."""

    store: FeatureStore
    view: FeatureView
    join_key: str
    key_field: str
    features: tuple[str, ...]
    # The view's table in a SQLite online store (quoted), and the store's file; None for
    # any other store.
    sqlite_table: str | None = None
    sqlite_path: str | None = None

    @classmethod
    def of(cls, store: FeatureStore, view_name: str, features: Sequence[str]) -> ViewReader:
        """The reader of `features` of the view `view_name`; ValueError when it cannot be."""
        view = store.get_feature_view(view_name)
        if len(view.entities) != 1:
            raise ValueError(f"view '{view_name}' has {len(view.entities)} entities, not one")
        entity = store.get_entity(view.entities[0])
        if entity.value_type not in _KEY_FIELDS:
            raise ValueError(f"entity '{entity.name}' has an unsupported key type")
        unknown = sorted(set(features) - {field.name for field in view.features})
        if unknown:
            raise ValueError(f"view '{view_name}' has no features {unknown}")
        sqlite_table = sqlite_path = None
        if isinstance(store.provider.online_store, SqliteOnlineStore):
            # The name and quoting Feast's SQLite store itself uses for the view's table.
            config = store.config
            versioned = config.registry.enable_online_feature_view_versioning
            sqlite_table = _quote_id(_table_id(config.project, view, versioned))
            sqlite_path = SqliteOnlineStore._get_db_path(config)
        return cls(
            store,
            view,
            entity.join_key,
            _KEY_FIELDS[entity.value_type],
            tuple(features),
            sqlite_table,
            sqlite_path,
        )

    def read(self, entity_ids: Sequence[Any]) -> list[dict[str, Any] | None]:
        """Per entity id, {feature: value} (None for a null value), or None if unknown.

        Any failure of the store is a `FeatureStoreUnavailable` (503), never a 500.
        """
        return [
            None if values is None else _known({k: _python(v) for k, v in values.items()})
            for values in self.read_protos(entity_ids)
        ]

    def read_protos(self, entity_ids: Sequence[Any]) -> list[dict[str, ValueProto] | None]:
        """`read`'s values as Feast's `ValueProto`s, for a caller that turns lists into
        arrays without Python lists in between; an entity unknown to SQLite is None
        (Redis gives it a row of empty values)."""
        online = self.store.provider.online_store
        try:
            if self.sqlite_table is not None:
                return self._read_sqlite(online, entity_ids)
            rows = online.online_read(
                self.store.config, self.view, self._keys(entity_ids), list(self.features)
            )
        except Exception as error:  # any store failure is a dependency failure, not a 500
            raise _unavailable(error) from error
        return [values for _, values in rows]

    def _read_sqlite(
        self, online: Any, entity_ids: Sequence[Any]
    ) -> list[dict[str, ValueProto] | None]:
        """Feast's SQLite lookup (a row per entity and feature), less the timestamps."""
        keys = self.serialized_keys(entity_ids)
        marks = ",".join("?" * len(keys))
        rows = (
            online._get_conn(self.store.config)
            .execute(
                f"SELECT entity_key, feature_name, value FROM {self.sqlite_table} "
                f"WHERE entity_key IN ({marks})",
                keys,
            )
            .fetchall()
        )
        wanted = self._wanted
        found: dict[bytes, dict[str, ValueProto]] = {}
        for key, name, value in rows:
            if name in wanted:
                found.setdefault(key, {})[name] = ValueProto.FromString(value)
        return [found.get(key) for key in keys]

    def serialized_keys(self, entity_ids: Sequence[Any]) -> list[bytes]:
        """Feast's serialized entity keys of these ids (what its tables are keyed by), each
        computed once: a scoring path reads and writes the same cards again and again."""
        cache = self._serialized
        found = []
        for entity_id in entity_ids:
            key = cache.get(entity_id)
            if key is None:
                if len(cache) >= _KEYS_KEPT:
                    cache.clear()
                version = self.store.config.entity_key_serialization_version
                [proto] = self._keys([entity_id])
                key = cache[entity_id] = serialize_entity_key(proto, version)
            found.append(key)
        return found

    @cached_property
    def _serialized(self) -> dict[Any, bytes]:
        return {}

    @cached_property
    def _wanted(self) -> frozenset[str]:
        return frozenset(self.features)

    async def read_async(self, entity_ids: Sequence[Any]) -> list[dict[str, Any] | None]:
        """`read` for the event loop: Feast's async read where the store has one."""
        online = self.store.provider.online_store
        if not _reads_async(online):
            return self.read(entity_ids)
        try:
            rows = await online.online_read_async(
                self.store.config, self.view, self._keys(entity_ids), list(self.features)
            )
        except Exception as error:  # any store failure is a dependency failure, not a 500
            raise _unavailable(error) from error
        return _rows(rows)

    def _keys(self, entity_ids: Sequence[Any]) -> list[EntityKeyProto]:
        return [
            EntityKeyProto(
                join_keys=[self.join_key],
                entity_values=[ValueProto(**{self.key_field: entity_id})],
            )
            for entity_id in entity_ids
        ]

    def health(self) -> str | None:
        """None when the store answers and still holds the view's last publish; else why not.

        The view's canary (`features.store.write_canary`) is read like any entity: absent,
        the store answers but lost what was published (a Redis restarted empty), and every
        known entity would be a 404 or, for fraud, an empty history. A SQLite store's file
        is checked too: deleted while open, it still answers reads from the unlinked file
        while every write (fraud's history pushes) fails.
        """
        if self.sqlite_path is not None and not os.path.exists(self.sqlite_path):
            return f"the online store's file {os.path.basename(self.sqlite_path)} is gone"
        try:
            [canary] = self.read([CANARY_KEYS[self.key_field]])
        except FeatureStoreUnavailable as error:
            return error.detail
        if canary is None:
            return f"'{self.view.name}' lost its published data (its canary is missing)"
        return None

    def ping(self) -> bool:
        """True when the store answers and holds the last publish (see `health`)."""
        return self.health() is None


@dataclass(frozen=True)
class SqliteViewWriter:
    """Writes whole entities of one view of a SQLite online store: Feast's upsert into
    Feast's table, the same rows, in one `executemany` per call.

    `SqliteOnlineStore.online_write_batch` runs one statement per entity and feature, each
    with its own key serialization, timestamp conversion and type dispatch: 177 µs of CPU
    for a fraud payment's two states on this machine, the stream scorer's largest cost.
    Built only where Feast's table has just its default columns (no vector or numeric
    search columns); `of` is None otherwise and the caller keeps Feast's path.
    """

    store: FeatureStore
    table: str
    """The view's table, quoted, as Feast names it."""

    @classmethod
    def of(cls, store: FeatureStore, view: FeatureView) -> SqliteViewWriter | None:
        online = store.provider.online_store
        options = store.config.online_store
        if (
            not isinstance(online, SqliteOnlineStore)
            or getattr(options, "vector_enabled", False)
            or getattr(options, "enable_openai_compatible_store", False)
        ):
            return None
        versioned = store.config.registry.enable_online_feature_view_versioning
        return cls(store, _quote_id(_table_id(store.config.project, view, versioned)))

    def write(self, rows: Sequence[tuple[bytes, str, bytes]], stamp: datetime) -> None:
        """Upsert (serialized entity key, feature name, serialized `ValueProto`) rows, all
        with event and created time `stamp`, in one transaction. The values are lists,
        which Feast keeps no text form of (`value_text` NULL)."""
        moment = stamp.astimezone(UTC).replace(tzinfo=None)  # Feast stores naive UTC
        connection = self.store.provider.online_store._get_conn(self.store.config)  # type: ignore[attr-defined]
        with connection:
            connection.executemany(
                f"INSERT INTO {self.table} "
                "(entity_key, feature_name, value, value_text, event_ts, created_ts) "
                "VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE "
                "SET value = excluded.value, value_text = excluded.value_text, "
                "event_ts = excluded.event_ts, created_ts = excluded.created_ts",
                [(key, name, value, moment, moment) for key, name, value in rows],
            )


def _reads_async(online: OnlineStore) -> bool:
    return type(online).online_read_async is not OnlineStore.online_read_async


def _unavailable(error: Exception) -> FeatureStoreUnavailable:
    return FeatureStoreUnavailable(f"online feature store did not answer: {type(error).__name__}")


def _rows(rows: Sequence[tuple[Any, dict[str, ValueProto] | None]]) -> list[dict[str, Any] | None]:
    return [
        None if values is None else _known({k: _python(v) for k, v in values.items()})
        for _, values in rows
    ]


def _known(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """None for an entity the store does not hold: SQLite gives no row for it, Redis a row
    of empty values."""
    return values if values and any(v is not None for v in values.values()) else None


def _python(value: ValueProto) -> Any:
    """The Python value of a Feast value; None for null."""
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    if kind.endswith("_list_val"):
        return list(getattr(value, kind).val)
    return getattr(value, kind)


class OnlineFeatures:
    """A feature service's values for one entity, read from the online store.

    The service is resolved into one `ViewReader` per feature view the first time it is
    needed, and again when a model asks for a feature the resolved service lacks (the
    definitions changed while serving).
    """

    def __init__(self, store: FeatureStore, feature_service: str, entity_key: str) -> None:
        self._store = store
        self._service_name = feature_service
        self._readers: list[ViewReader] | None = None
        self._available: frozenset[str] = frozenset()
        self.entity_key = entity_key

    def _resolve(self, feature_names: Sequence[str]) -> list[ViewReader]:
        readers = self._readers
        if readers is not None and self._available.issuperset(feature_names):
            return readers  # every request but the first
        try:
            service = self._store.get_feature_service(self._service_name)
            readers = [
                ViewReader.of(self._store, projection.name, [f.name for f in projection.features])
                for projection in service.feature_view_projections
            ]
        except Exception as error:  # registry unreadable: a dependency failure
            # Logged whole; the answer names the service, not the registry's address.
            logger.warning("cannot resolve feature service '%s': %s", self._service_name, error)
            raise FeatureStoreUnavailable(
                f"cannot resolve feature service '{self._service_name}': {type(error).__name__}"
            ) from error
        if any(reader.join_key != self.entity_key for reader in readers):
            raise FeatureStoreUnavailable(
                f"feature service '{self._service_name}' is not keyed by {self.entity_key}"
            )
        self._readers = readers
        self._available = frozenset(name for reader in readers for name in reader.features)
        missing = [name for name in feature_names if name not in self._available]
        if missing:
            raise FeatureStoreUnavailable(
                f"feature service '{self._service_name}' lacks {missing[:5]}"
            )
        return readers

    def _values(
        self, entity_ids: Sequence[str], feature_names: Sequence[str]
    ) -> list[dict[str, Any] | None]:
        merged: list[dict[str, Any] | None] = [None] * len(entity_ids)
        for reader in self._resolve(feature_names):
            for i, values in enumerate(reader.read(entity_ids)):
                if values is not None:
                    merged[i] = {**(merged[i] or {}), **values}
        return merged

    def row(self, entity_id: str, feature_names: Sequence[str]) -> np.ndarray:
        """The entity's features in `feature_names` order; 404 if the store has none."""
        [values] = self._values([entity_id], feature_names)
        return self._row(entity_id, values, feature_names)

    async def row_async(self, entity_id: str, feature_names: Sequence[str]) -> np.ndarray:
        """`row` for the event loop (see `ViewReader.read_async`)."""
        readers = self._resolve(feature_names)
        values: dict[str, Any] | None = None
        for reader in readers:
            [read] = await reader.read_async([entity_id])
            if read is not None:
                values = {**(values or {}), **read}
        return self._row(entity_id, values, feature_names)

    def _row(
        self, entity_id: str, values: dict[str, Any] | None, feature_names: Sequence[str]
    ) -> np.ndarray:
        if values is None:
            raise UnknownEntity(f"no features for {self.entity_key} '{entity_id}'")
        row = [values.get(name) for name in feature_names]
        if any(value is None for value in row):
            raise FeatureStoreUnavailable(f"incomplete features for '{entity_id}'")
        return np.asarray(row, dtype=np.float32)

    def rows(
        self, entity_ids: Sequence[str], feature_names: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Many entities in one read per view: a float32 matrix in `feature_names` order,
        and a mask of the entities the store knows (their rows are valid; others are NaN)."""
        matrix = np.full((len(entity_ids), len(feature_names)), np.nan, dtype=np.float32)
        known = np.zeros(len(entity_ids), dtype=bool)
        for i, values in enumerate(self._values(entity_ids, feature_names)):
            if values is None:
                continue
            row = [values.get(name) for name in feature_names]
            if any(value is None for value in row):
                raise FeatureStoreUnavailable("incomplete features for some entities")
            matrix[i] = row
            known[i] = True
        return matrix, known

    def health(self) -> str | None:
        """None when every view's store answers and holds its publish; else why not."""
        try:
            readers = self._readers or self._resolve([])
        except FeatureStoreUnavailable as error:
            return error.detail
        if not readers:
            return f"feature service '{self._service_name}' has no views"
        return next(filter(None, (reader.health() for reader in readers)), None)

    def ping(self) -> bool:
        """True when the online store is healthy (for readiness; see `health`)."""
        return self.health() is None
