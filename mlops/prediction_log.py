"""The prediction log: every served prediction, spooled to disk before it is answered,
shipped to SQL in the background, read by monitoring.

Delivery. `append` writes the record as one line (`<crc32> <orjson payload>`, in one
`write()`) to an append-only segment file of the spool, `<home>/spool/predictions/*.seg`,
before the request is answered; it costs a few microseconds. A line written is in the
page cache, which survives a crash of the process (kill -9, an OOM kill); it survives a
crash of the machine only with `MLOPS_PREDICTION_LOG_FSYNC` (an fsync per record, costly
on most disks). A background thread, the shipper, seals the segment being written every
`MLOPS_PREDICTION_LOG_FLUSH_S` and inserts the sealed segments' records in batches into
one SQL table (SQLite under `MLOPS_HOME` by default, Postgres in the stack); a segment is
deleted only once each of its records is committed or rejected. Inserts are idempotent
by the record's id (a unique column, insert-or-ignore): a segment shipped twice, after a
crash between the commit and the delete, logs each record once. While the database is
down the shipper retries with a growing wait and the spool keeps the records. Any
shipper ships every segment no writer holds locked, so the segments a crashed process
left are shipped by the next start.

A record the database refuses (a non-finite score, a constraint) is rejected alone:
when a batch fails for another reason than the database being unreachable, its rows are
inserted one by one, and each refused one is written with the reason to
`rejected.jsonl` beside the segments (to the error log when that file cannot be written,
a full disk) and counted.

The spool is bounded (`MLOPS_PREDICTION_LOG_SPOOL_MAX_MB`). A record that cannot be
spooled (the bound reached, a disk error) raises `PredictionNotPersisted`, counted: the
API answers 503 rather than acknowledge a prediction it would lose, and `persisting` is
false with the reason (readiness, metrics) until a record can be spooled again.

`read_predictions` gives monitoring the log as a DataFrame, one column per entity key and
per feature, to join the delayed labels to.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import logging
import math
import os
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
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
    # Unique per record, made when it is spooled: shipping a record twice logs it once. A
    # request id is not unique (a shadow prediction shares its request's; clients may
    # repeat theirs). Null only in rows logged before the spool existed.
    sa.Column("record_id", sa.String(64), nullable=True),
    # Monitoring reads one model over a time window.
    sa.Index("ix_predictions_model_time", "model_name", "time"),
    sa.Index("ux_predictions_record_id", "record_id", unique=True),
)
RECORD_ID_INDEX = "ux_predictions_record_id"

SHADOW_KEY = "shadow"
"""Set to true in the entity of a prediction that was scored in shadow and never answered
(`serving.challenger`); monitoring leaves such rows out of the served traffic."""

# Records decoded and written together, in one transaction; the shipper then pauses so the
# requests' thread holds the GIL alone for a moment. One burst per segment (a second of
# traffic) held the GIL long enough to triple the p99 at 16 connections (docs/benchmarks.md).
_BATCH = 100
_PAUSE_S = 0.001
# A flood of failures gives one warning per interval, not one per request or retry.
_WARNING_INTERVAL_S = 10.0
# The longest wait between two attempts while the log database is down: ten flush
# intervals, at most this (one failed connection attempt is cheap; a long wait delays
# the drain after the database is back, and readiness with it when the spool is full).
_MAX_RETRY_WAIT_S = 10.0
_SEGMENT_SUFFIX = ".seg"
REJECTED_FILE = "rejected.jsonl"
# When the rejected file cannot be written, the records go to the error log, this long at most.
_REJECTS_LOGGED_CHARS = 20_000
"""Beside the segments: one JSON line per record the database refused, with the reason."""
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
    # Names and values apart: the request only keeps references, the shipper builds the dict.
    feature_names: Sequence[str]
    feature_values: Sequence[float]
    score: float
    decision: bool
    time: datetime = field(default_factory=lambda: datetime.now(UTC))


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


class PredictionNotPersisted(RuntimeError):
    """The spool could not take a prediction (full, or the disk failed): it must not be
    acknowledged as logged. The message says why."""


class _RetryLater(Exception):
    """The log database cannot be reached or written as a whole: ship again later."""


class PredictionSpool:
    """Append-only segment files in one folder: the durable half of the prediction log.

    A writer appends to its own segment, locked (`flock`) while it is written; `seal`
    closes it so the shipper may take it. Any process's shipper ships every segment it
    can lock, so the segments a crashed process left are shipped by the next one.
    """

    def __init__(self, folder: Path, max_bytes: int, fsync: bool = False) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.problem: str | None = None
        """Why the last append failed; None once a record is spooled again."""
        self.full = False
        """Whether the last append failed for the bound (then `problem` says so)."""
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._written_to_segment = 0
        self._bytes = 0
        self._sequence = itertools.count()

    @property
    def size(self) -> int:
        """Bytes the segments in the folder hold (as of the last append or recount)."""
        return self._bytes

    def open(self) -> None:
        """Create the folder if needed and count what earlier processes left in it."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            self.problem = f"cannot create the spool folder: {error.strerror}"
            return
        self.recount()

    def append(self, line: bytes) -> None:
        """Write one record line to the current segment, in one write(). Raises
        `PredictionNotPersisted` when the spool is full or the write fails."""
        with self._lock:
            if self._bytes + len(line) > self.max_bytes:
                self.full = True
                self.problem = (
                    f"spool full: {self._bytes:,} bytes of {self.max_bytes:,} "
                    "(MLOPS_PREDICTION_LOG_SPOOL_MAX_MB); the log database is behind or down"
                )
                raise PredictionNotPersisted(self.problem)
            try:
                if self._fd is None:
                    self._fd = self._new_segment()
                written = os.write(self._fd, line)
                if written != len(line):
                    raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (short write)")
                if self.fsync:
                    os.fsync(self._fd)
            except OSError as error:
                # The segment may end with a torn line: later lines go to a new segment.
                self._close_segment()
                self.full = False
                self.problem = f"spool write failed: {error.strerror or error}"
                raise PredictionNotPersisted(self.problem) from error
            self._bytes += written
            self._written_to_segment += written
            self.problem, self.full = None, False

    def seal(self) -> None:
        """Close the segment being written (when it holds anything): the shipper may take it."""
        with self._lock:
            if self._written_to_segment:
                self._close_segment()

    def close(self) -> None:
        with self._lock:
            self._close_segment()

    def segments(self) -> list[Path]:
        """Every segment in the folder, oldest first (its own open one included: locked)."""
        try:
            return sorted(self.folder.glob(f"*{_SEGMENT_SUFFIX}"))
        except OSError:
            return []

    def recount(self) -> None:
        """Count the bytes of the folder's segments again (other processes write there too)."""
        with self._lock:
            total = 0
            for path in self.segments():
                with contextlib.suppress(FileNotFoundError):
                    total += path.stat().st_size
            self._bytes = total
            if self.full and total < self.max_bytes:
                self.problem, self.full = None, False

    def check(self) -> None:
        """While appends fail for a disk error, see whether the folder takes a write again
        (a probe of one page), and clear the problem if it does."""
        if self.problem is None or self.full:
            return
        probe = self.folder / ".probe"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with probe.open("wb") as file:
                file.write(bytes(4096))
            probe.unlink()
        except OSError:
            with contextlib.suppress(OSError):
                probe.unlink(missing_ok=True)
            return
        with self._lock:
            self.problem = None

    @contextlib.contextmanager
    def claim(self, path: Path) -> Iterator[bytes | None]:
        """A sealed segment's bytes, locked while the caller ships them; None when a writer
        holds it (or it is gone). The caller deletes it with `release(path)`."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            yield None
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
            if not path.exists():  # shipped and deleted by another process meanwhile
                yield None
                return
            with os.fdopen(os.dup(fd), "rb") as file:
                data = file.read()
            yield data
        finally:
            os.close(fd)

    def _new_segment(self) -> int:
        # Created under a name the shipper does not list, locked, then renamed: a shipper
        # never sees a segment that a writer is about to write.
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._sequence):06d}{_SEGMENT_SUFFIX}"
        fresh = self.folder / f".{name}.new"
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(fresh, self.folder / name)
        self._written_to_segment = 0
        return fd

    def _close_segment(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # also releases the lock
            self._fd = None
            self._written_to_segment = 0


class PredictionLog:
    """Spools each prediction before it is acknowledged; one thread ships the spool to SQL."""

    def __init__(
        self,
        url: str,
        spool_dir: Path,
        max_spool_bytes: int = 256 * 1024 * 1024,
        flush_s: float = 1.0,
        fsync: bool = False,
    ) -> None:
        self.url = url
        self.spool = PredictionSpool(spool_dir, max_spool_bytes, fsync)
        self.rejected_file = spool_dir / REJECTED_FILE
        self._flush_s = flush_s
        self._engine: sa.Engine | None = None
        self._insert: Callable[[sa.Connection, list[dict[str, Any]]], object] | None = None
        self._schema_ready = False
        self._shipper: threading.Thread | None = None
        self._stop = threading.Event()
        # Record ids: unique across processes (a random prefix) and cheap (a counter).
        self._id_prefix = secrets.token_hex(6)
        self._ids = itertools.count()
        self.spooled = 0
        self.written = 0
        """Records committed to the database (a record shipped again after a crash counts again)."""
        # Not logged, by reason: "spool_full" and "spool_error" (refused before the answer:
        # the API answered 503), "rejected" (the database refused the record alone).
        self.dropped = {"spool_full": 0, "spool_error": 0, "rejected": 0}
        self.ship_failures = 0
        self.ship_error: str | None = None
        """Why the last shipping attempt failed (the database down); None once it succeeds."""
        self._last_warning = 0.0

    @property
    def persisting(self) -> bool:
        """Whether predictions can be spooled: false when the spool is full or failing."""
        return self.spool.problem is None

    @property
    def problem(self) -> str | None:
        """Why predictions cannot be spooled, or None."""
        return self.spool.problem

    def start(self) -> None:
        """Open the spool and start the shipper. Idempotent. Does not connect: the shipper
        does, and retries, so a log database that is down does not stop the caller."""
        if self._shipper is not None:
            return
        self.spool.open()
        self._engine = log_engine(self.url)
        self._insert = _batch_insert(self._engine)
        self._stop.clear()
        # A daemon: a process that exits without `close` must not hang; the spool keeps
        # what it did not ship.
        self._shipper = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._shipper.start()

    def append(self, prediction: Prediction, record_id: str | None = None) -> None:
        """Spool a prediction, before its answer is sent. Raises `PredictionNotPersisted`
        (counted) when it cannot: the caller must not acknowledge it.

        `record_id` (at most 64 characters) makes appending the same prediction again
        idempotent: the stream scorer passes one per transaction, so a payment decided
        again after a crash is logged once. By default each append is a new record."""
        if record_id is None:
            record_id = f"{self._id_prefix}-{next(self._ids)}"
        try:
            self.spool.append(_encode(prediction, record_id))
        except PredictionNotPersisted:
            reason = "spool_full" if self.spool.full else "spool_error"
            self.dropped[reason] += 1
            self._warn("prediction log cannot spool: %s", self.spool.problem)
            raise
        self.spooled += 1

    def close(self, timeout_s: float = 10.0) -> None:
        """Ship what is spooled (when the database answers), then stop the shipper; what is
        not shipped stays in the spool for the next start."""
        shipper, self._shipper = self._shipper, None
        if shipper is None:
            return
        self._stop.set()
        shipper.join(timeout_s)
        if shipper.is_alive():
            logger.warning("prediction log: shipping did not finish; the spool keeps the rest")
        self.spool.close()
        if self._engine is not None:
            self._engine.dispose()

    def ship(self) -> bool:
        """Ship every sealed segment now; false when the database could not be written (the
        records stay spooled). The shipper calls it on its clock; tests may call it."""
        assert self._engine is not None, "start() first"
        self.spool.seal()
        try:
            self._ensure_schema()
            for path in self.spool.segments():
                self._ship_segment(path)
        except _RetryLater as error:
            self._schema_ready = False  # a table dropped or a new server: create it again
            self.ship_failures += 1
            self.ship_error = str(error)
            self._warn("prediction log cannot ship, retrying: %s", error)
            return False
        finally:
            self.spool.recount()
            self.spool.check()
        self.ship_error = None
        return True

    def _run(self) -> None:
        # Ship on a clock, not per record: a commit per request would take the GIL from
        # the request threads as often as requests arrive. While the database is down, wait
        # longer each time, up to a bound.
        wait, longest = (
            self._flush_s,
            max(self._flush_s, min(10 * self._flush_s, _MAX_RETRY_WAIT_S)),
        )
        while not self._stop.wait(wait):
            wait = self._flush_s if self._ship_safely() else min(2 * wait, longest)
        self._ship_safely()  # stopping: ship what is left, if the database answers

    def _ship_safely(self) -> bool:
        # The shipper must outlive any surprise: what it did not ship stays spooled.
        try:
            return self.ship()
        except Exception as error:
            self.ship_failures += 1
            self.ship_error = f"unexpected: {error!r}"
            logger.exception("prediction log: shipping failed; retrying")
            return False

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        assert self._engine is not None
        try:
            metadata.create_all(self._engine)
            _add_record_id(self._engine)
        except sa.exc.SQLAlchemyError as error:
            raise _RetryLater(_reason(error)) from error
        self._schema_ready = True

    def _ship_segment(self, path: Path) -> None:
        with self.spool.claim(path) as data:
            if data is None:
                return  # being written, or shipped by another process
            rejects: list[tuple[str, Any]] = []
            lines = data.splitlines(keepends=True)
            for start in range(0, len(lines), _BATCH):
                if start:
                    time.sleep(_PAUSE_S)
                rows = []
                for line in lines[start : start + _BATCH]:
                    try:
                        rows.append(_decode(line))
                    except (ValueError, TypeError) as error:
                        rejects.append(
                            (f"unreadable spool line: {error}", line.decode(errors="replace"))
                        )
                self._write(rows, rejects)
            # Every record is committed or rejected: only now may the segment go.
            self._reject(rejects)
            path.unlink(missing_ok=True)

    def _write(self, rows: list[dict[str, Any]], rejects: list[tuple[str, Any]]) -> None:
        assert self._engine is not None
        valid = []
        for row in rows:
            score = row["score"]
            if not isinstance(score, float) or not math.isfinite(score):
                rejects.append(("the score is not a finite number", row))
            else:
                valid.append(row)
        if not valid:
            return
        try:
            self._execute(valid)
        except sa.exc.SQLAlchemyError:
            # One bad record must not take its batch with it: row by row, each refused
            # record is rejected alone.
            for row in valid:
                try:
                    self._execute([row])
                except sa.exc.SQLAlchemyError as error:
                    rejects.append((_reason(error), row))
                else:
                    self.written += 1
            return
        self.written += len(valid)

    def _execute(self, rows: list[dict[str, Any]]) -> None:
        assert self._engine is not None and self._insert is not None
        try:
            with self._engine.begin() as connection:
                self._insert(connection, rows)
        except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError) as error:
            # The database, not the record: connection refused or lost, locked, no table.
            raise _RetryLater(_reason(error)) from error

    def _reject(self, rejects: list[tuple[str, Any]]) -> None:
        if not rejects:
            return
        lines = b"".join(
            orjson.dumps({"reason": reason, "record": record}, default=str) + b"\n"
            for reason, record in rejects
        )
        self.dropped["rejected"] += len(rejects)
        try:
            with open(self.rejected_file, "ab") as file:
                file.write(lines)
        except OSError as error:
            # A full disk: keeping the segment until the file can be written would keep the
            # disk full. The error log carries the records instead.
            logger.error(
                "prediction log rejected %d records (%s) and cannot write %s (%s): %s",
                len(rejects),
                rejects[0][0],
                self.rejected_file,
                error.strerror,
                lines.decode(errors="replace")[:_REJECTS_LOGGED_CHARS],
            )
            return
        logger.error(
            "prediction log rejected %d records (%s); kept in %s",
            len(rejects),
            rejects[0][0],
            self.rejected_file,
        )

    def _warn(self, message: str, *args: Any) -> None:
        # A flood gives one warning per interval, not one per request or retry.
        now = time.monotonic()
        if now - self._last_warning >= _WARNING_INTERVAL_S:
            self._last_warning = now
            logger.warning(message, *args)


def _encode(prediction: Prediction, record_id: str) -> bytes:
    """One spool line: the CRC-32 of the payload in hex, a space, the payload (an orjson
    array; NaN becomes null), a newline."""
    p = prediction
    payload = orjson.dumps(
        (
            record_id,
            p.time,
            p.request_id,
            p.endpoint,
            p.model_name,
            p.model_version,
            p.entity,
            p.feature_names,
            p.feature_values,
            p.score,
            p.decision,
        ),
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def _decode(line: bytes) -> dict[str, Any]:
    """The table row of a spool line; ValueError when the line is torn or corrupt."""
    if not line.endswith(b"\n"):
        raise ValueError("torn (no end of line)")
    checksum, _, payload = line[:-1].partition(b" ")
    if len(checksum) != 8 or int(checksum, 16) != zlib.crc32(payload):
        raise ValueError("checksum mismatch")
    (record_id, at, request_id, endpoint, name, version, entity, names, values, score, decision) = (
        orjson.loads(payload)
    )
    return {
        "record_id": record_id,
        "time": datetime.fromisoformat(at),
        "request_id": request_id,
        "endpoint": endpoint,
        "model_name": name,
        "model_version": version,
        "entity": entity,
        "features": dict(zip(names, values, strict=True)),
        "score": score,
        "decision": decision,
    }


# SQLite's batch: the whole batch is one JSON parameter of one statement, which SQLite
# expands itself (json_each). sqlite3 releases the GIL around each step of a statement, and
# an executemany steps once per row: every row was a hand-over of the GIL to and from the
# requests' thread. Values are stored as SQLAlchemy's types store them on SQLite (tested).
_BATCH_COLUMNS = tuple(column.name for column in predictions.columns if column.name != "id")
_SQLITE_BATCH = (
    f"INSERT INTO predictions ({', '.join(_BATCH_COLUMNS)}) SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(_BATCH_COLUMNS)))
    + " FROM json_each(?) WHERE true ON CONFLICT (record_id) DO NOTHING"
)
# SQLAlchemy's DateTime on SQLite: the wall time, always with microseconds, no offset.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _sqlite_batch(rows: list[dict[str, Any]]) -> str:
    """The rows as `_SQLITE_BATCH`'s JSON parameter: one array per row, in its columns.
    Decoded rows hold one datetime, their `time`, which goes out in SQLite's format."""
    return orjson.dumps(
        [[row[column] for column in _BATCH_COLUMNS] for row in rows],
        option=orjson.OPT_PASSTHROUGH_DATETIME,
        default=lambda moment: moment.strftime(_SQLITE_TIME),
    ).decode()


def _batch_insert(engine: sa.Engine) -> Callable[[sa.Connection, list[dict[str, Any]]], object]:
    """How a batch of rows is inserted, skipping a record already logged (same record id)."""
    backend = engine.dialect.name
    if backend == "sqlite":
        return lambda connection, rows: connection.exec_driver_sql(
            _SQLITE_BATCH, (_sqlite_batch(rows),)
        )
    if backend == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgres_insert

        statement: Any = postgres_insert(predictions).on_conflict_do_nothing(
            index_elements=["record_id"]
        )
    else:
        statement = predictions.insert()  # elsewhere the unique index refuses a record twice
    return lambda connection, rows: connection.execute(statement, rows)


def _add_record_id(engine: sa.Engine) -> None:
    """Give a table made before the spool its record id column and unique index."""
    with engine.begin() as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns(predictions.name)}
        if "record_id" in columns:
            return
        connection.execute(sa.text("ALTER TABLE predictions ADD COLUMN record_id VARCHAR(64)"))
        for index in predictions.indexes:
            if index.name == RECORD_ID_INDEX:
                index.create(connection, checkfirst=True)


def _reason(error: sa.exc.SQLAlchemyError) -> str:
    """The database's own message, on one line, without the statement and parameters."""
    original = getattr(error, "orig", None)
    return " ".join(str(original if original is not None else error).split())[:500]


# Table columns the reader does not give as columns of their own (entity and features
# are spread into theirs).
_NOT_COLUMNS = ("id", "record_id", "entity", "features")


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
        [{k: v for k, v in row.items() if k not in _NOT_COLUMNS} for row in rows],
        columns=[c.name for c in predictions.columns if c.name not in _NOT_COLUMNS],
    )
    # SQLite stores times without their offset; they are UTC either way.
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    entities = pd.DataFrame([row["entity"] for row in rows], index=frame.index)
    features = pd.DataFrame([row["features"] for row in rows], index=frame.index)
    return pd.concat([frame, entities, features], axis=1)
