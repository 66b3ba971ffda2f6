"""The prediction log: every served prediction, written off the request path, read by monitoring.

A request appends a `Prediction` to a bounded in-memory queue and returns; a background
thread writes the queue in batches to one SQL table (SQLite under `MLOPS_HOME` by
default, Postgres in the stack). A full queue drops the record and counts it: a slow or
dead log database must never slow down or fail a prediction. `close` writes what is
queued, so a graceful shutdown loses nothing.

`read_predictions` gives monitoring the log as a DataFrame, one column per entity key and
per feature, to join the delayed labels to.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger("mlops.prediction_log")

metadata = sa.MetaData()
predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("endpoint", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("entity", sa.JSON, nullable=False),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("decision", sa.Boolean, nullable=False),
    # Monitoring reads one model over a time window.
    sa.Index("ix_predictions_model_time", "model_name", "time"),
)

SHADOW_KEY = "shadow"
"""Set to true in the entity of a prediction that was scored in shadow and never answered
(`serving.challenger`); monitoring leaves such rows out of the served traffic."""

# Written together in one transaction; larger batches gain little and hold the GIL longer.
_BATCH = 500
# A flood of drops gives one warning per interval, not one per dropped request.
_DROP_WARNING_INTERVAL_S = 10.0
# Every call to the log database is bounded: connecting, waiting for a pooled connection.
_CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True, slots=True)
class Prediction:
    """One served prediction, as the log stores it."""

    request_id: str
    endpoint: str
    model_name: str
    model_version: str
    entity: Mapping[str, Any]
    # Names and values apart: the request only keeps references, the writer builds the dict.
    feature_names: Sequence[str]
    feature_values: Sequence[float]
    score: float
    decision: bool
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> dict[str, Any]:
        # JSON has no NaN (Postgres refuses it): a missing value is null.
        values: Sequence[float | None] = self.feature_values
        if not all(map(math.isfinite, self.feature_values)):
            values = [v if math.isfinite(v) else None for v in self.feature_values]
        features = dict(zip(self.feature_names, values, strict=True))
        return {
            "time": self.time,
            "request_id": self.request_id,
            "endpoint": self.endpoint,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "entity": self.entity,
            "features": features,
            "score": self.score,
            "decision": self.decision,
        }


def _json(value: Any) -> str:
    # The writer shares the GIL with the requests, and encoding a row's floats was its
    # largest cost with the stdlib encoder; orjson writes the same shortest float repr.
    return orjson.dumps(value).decode()


def log_engine(url: str) -> sa.Engine:
    """An engine with bounded waits; SQLite in WAL mode so readers do not block the writer."""
    backend = sa.make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(
            url, connect_args={"timeout": _CONNECT_TIMEOUT_S}, json_serializer=_json
        )

        @sa.event.listens_for(engine, "connect")
        def _wal(connection: Any, _: Any) -> None:
            connection.execute("PRAGMA journal_mode=WAL")
            # In WAL mode, NORMAL cannot corrupt the file; a power cut may lose the last batch.
            connection.execute("PRAGMA synchronous=NORMAL")

        return engine
    connect_args = {"connect_timeout": _CONNECT_TIMEOUT_S} if backend == "postgresql" else {}
    return sa.create_engine(
        url,
        connect_args=connect_args,
        pool_timeout=_CONNECT_TIMEOUT_S,
        pool_pre_ping=True,
        json_serializer=_json,
    )


class PredictionLog:
    """Queues predictions and writes them in batches from one background thread."""

    def __init__(self, url: str, capacity: int = 10_000, flush_s: float = 1.0) -> None:
        self.url = url
        self._queue: queue.Queue[Prediction] = queue.Queue(maxsize=capacity)
        self._flush_s = flush_s
        self._engine: sa.Engine | None = None
        self._writer: threading.Thread | None = None
        self._stop = threading.Event()
        self.written = 0
        # Drops by reason: "queue_full" (the writer is behind), "write_error" (the database).
        self.dropped = {"queue_full": 0, "write_error": 0}
        self._last_drop_warning = 0.0

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        """Create the table if needed and start the writer. Idempotent."""
        if self._writer is not None:
            return
        self._engine = log_engine(self.url)
        metadata.create_all(self._engine)
        self._stop.clear()
        # A daemon: a process that exits without `close` must not hang on the log.
        self._writer = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._writer.start()

    def append(self, prediction: Prediction) -> None:
        """Queue a prediction for writing. Never blocks; a full queue drops it, counted."""
        try:
            self._queue.put_nowait(prediction)
        except queue.Full:
            self._count_drops("queue_full", 1)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write everything queued, then stop the writer and release the database."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        self._stop.set()
        writer.join(timeout_s)
        if writer.is_alive():
            logger.warning("prediction log: %d queued predictions not written", self.depth)
        if self._engine is not None:
            self._engine.dispose()

    def _run(self) -> None:
        # Write on a clock, not per record: a write per request would take the GIL (and a
        # commit) from the request threads as often as requests arrive.
        while not self._stop.wait(self._flush_s):
            self._drain()
        self._drain()  # stopping: write what is left

    def _drain(self) -> None:
        while batch := self._take():
            self._write(batch)

    def _take(self) -> list[Prediction]:
        batch: list[Prediction] = []
        while len(batch) < _BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[Prediction]) -> None:
        assert self._engine is not None
        try:
            with self._engine.begin() as connection:
                connection.execute(predictions.insert(), [p.row() for p in batch])
        except sa.exc.SQLAlchemyError as error:
            # The writer keeps going: the database may come back; these records are lost.
            logger.error("prediction log: cannot write %d predictions: %s", len(batch), error)
            self._count_drops("write_error", len(batch))
            return
        self.written += len(batch)

    def _count_drops(self, reason: str, count: int) -> None:
        self.dropped[reason] += count
        now = time.monotonic()
        if now - self._last_drop_warning >= _DROP_WARNING_INTERVAL_S:
            self._last_drop_warning = now
            logger.warning(
                "prediction log dropped predictions (%s); %d so far", reason, self.dropped[reason]
            )


def read_predictions(
    url: str,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """The logged predictions, oldest first, optionally of one model and in [since, until).

    One row per prediction: `time` (UTC), request id, endpoint, model name and version,
    score, decision, then a column per entity key and per feature.
    """
    import pandas as pd

    query = sa.select(predictions).order_by(predictions.c.time, predictions.c.id)
    if model is not None:
        query = query.where(predictions.c.model_name == model)
    if since is not None:
        query = query.where(predictions.c.time >= since.astimezone(UTC))
    if until is not None:
        query = query.where(predictions.c.time < until.astimezone(UTC))
    engine = log_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
    finally:
        engine.dispose()
    frame = pd.DataFrame(
        [{k: v for k, v in row.items() if k not in ("id", "entity", "features")} for row in rows],
        columns=[c.name for c in predictions.columns if c.name not in ("id", "entity", "features")],
    )
    # SQLite stores times without their offset; they are UTC either way.
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    entities = pd.DataFrame([row["entity"] for row in rows], index=frame.index)
    features = pd.DataFrame([row["features"] for row in rows], index=frame.index)
    return pd.concat([frame, entities, features], axis=1)
