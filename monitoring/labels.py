"""Delayed labels: the pending-label feed, its contract, the `labels` table and the join.

Ground truth arrives late (churn: about a billing cycle after the prediction; fraud:
about a week, once the payment is investigated). Until then it waits in the *feed*: CSV
files under `MLOPS_HOME/labels/feed/<model>/`, one per traffic run, each row with the
time it becomes due (`due_at`). `take_due` hands over the rows due by a cut-off and
leaves the others in place, so every row is delivered exactly once; `validate_labels`
checks them as text (bad rows quarantined with a reason, as `features.quarantine` does
for raw data); `write_labels` stores the valid ones in the `labels` table, in the same
database as the prediction log (`mlops.prediction_log`), ignoring a label already
stored, so a delivery that is retried after a crash writes nothing twice.

Join key: the request id. It is the one key the prediction log holds for every
prediction: a churn request that sends a customer's raw fields carries no customer id,
and a shadow or canary model's prediction of the same request shares it. The traffic
simulator sets `X-Request-ID` on each request and files the label under it; a real label
source reports an entity (a transaction id, a customer id), which the log maps to its
request ids. The entity is kept beside the label (`entity_id`, and for fraud the
terminal and the payment's time, which the online terminal histories need).

`labelled_predictions` is what monitoring's quality checks read: the logged predictions
that have a label, one column per feature, with `label`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.fraud_schema import MAX_INTEGER
from features.quarantine import RowChecks, ValidationResult
from mlops.prediction_log import log_engine, predictions
from mlops.settings import Settings

REQUEST_ID = "request_id"
ENTITY_ID = "entity_id"
TERMINAL_ID = "terminal_id"
EVENT_TIME = "event_time"
DUE_AT = "due_at"
LABEL = "label"
# The feed's columns, in file order; TERMINAL_ID is empty for churn.
FEED_COLUMNS = (REQUEST_ID, ENTITY_ID, TERMINAL_ID, EVENT_TIME, DUE_AT, LABEL)
# The serving middleware keeps a client's X-Request-ID only when it looks like this.
_REQUEST_ID_TOKEN = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")

metadata = sa.MetaData()
labels = sa.Table(
    "labels",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column(REQUEST_ID, sa.String(128), nullable=False),
    sa.Column(ENTITY_ID, sa.String(128), nullable=False),
    sa.Column(TERMINAL_ID, sa.BigInteger, nullable=True),
    sa.Column(EVENT_TIME, sa.DateTime(timezone=True), nullable=False),
    sa.Column(DUE_AT, sa.DateTime(timezone=True), nullable=False),
    sa.Column(LABEL, sa.SmallInteger, nullable=False),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    # One label per request: a second delivery of the same label is skipped, not stored.
    sa.UniqueConstraint("model", REQUEST_ID, name="uq_labels_model_request"),
)


def feed_dir(home: Path, model: str) -> Path:
    """Where the pending labels of `model` wait until they are due."""
    return home / "labels" / "feed" / model


def write_feed(folder: Path, name: str, rows: pd.DataFrame) -> Path:
    """File pending labels (FEED_COLUMNS) as one CSV, complete or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    partial = path.with_name(f".{path.name}.partial")
    rows.reindex(columns=list(FEED_COLUMNS)).to_csv(partial, index=False, lineterminator="\n")
    partial.replace(path)
    return path


def _read_feed_file(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _times(text: pd.Series) -> pd.Series:
    return pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")


def feed_clock(folder: Path) -> datetime | None:
    """The simulated present of a feed: its latest event time (None for an empty feed).

    Nothing later than the last thing that happened can be known, so without an explicit
    cut-off labels are due up to here.
    """
    latest: pd.Timestamp | None = None
    for path in sorted(folder.glob("*.csv")):
        times = _times(_read_feed_file(path)[EVENT_TIME]).dropna()
        if len(times) and (latest is None or times.max() > latest):
            latest = times.max()
    return None if latest is None else latest.to_pydatetime()


def pending_count(folder: Path) -> int:
    """How many labels wait in the feed."""
    return sum(len(_read_feed_file(path)) for path in folder.glob("*.csv"))


@dataclass(frozen=True)
class DueLabels:
    """Pending rows due by a cut-off (raw text), and how to take them off where they wait."""

    rows: pd.DataFrame
    until: datetime
    _commit: Callable[[], None]

    def commit(self) -> None:
        """Remove the delivered rows; call once they are stored or quarantined."""
        self._commit()


def cut_off_of(until: datetime) -> pd.Timestamp:
    """`until` as a UTC timestamp (a naive one is taken as UTC)."""
    return pd.Timestamp(until).tz_convert(UTC) if until.tzinfo else pd.Timestamp(until, tz=UTC)


def due_mask(raw: pd.DataFrame, cut_off: pd.Timestamp) -> np.ndarray:
    """Rows with `due_at <= cut_off`, and rows whose `due_at` is unreadable.

    An unreadable due time can never become due: it is handed over now, for validation
    to quarantine, rather than left pending for ever.
    """
    due_at = _times(raw[DUE_AT]) if DUE_AT in raw.columns else pd.Series(pd.NaT, index=raw.index)
    return (due_at.isna() | (due_at <= cut_off)).to_numpy()


def empty_rows() -> pd.DataFrame:
    return pd.DataFrame(columns=list(FEED_COLUMNS), dtype=str)


def take_due(folder: Path, until: datetime) -> DueLabels:
    """The feed's rows due by `until` (see `due_mask`)."""
    cut_off = cut_off_of(until)
    taken: list[pd.DataFrame] = []
    remaining: dict[Path, pd.DataFrame] = {}
    for path in sorted(folder.glob("*.csv")):
        frame = _read_feed_file(path)
        due = due_mask(frame, cut_off)
        if due.any():
            taken.append(frame[due])
            remaining[path] = frame[~due]

    def commit() -> None:
        for path, rest in remaining.items():
            if rest.empty:
                path.unlink(missing_ok=True)
            else:
                write_feed(path.parent, path.stem, rest)

    rows = pd.concat(taken, ignore_index=True) if taken else empty_rows()
    return DueLabels(rows=rows, until=cut_off.to_pydatetime(), _commit=commit)


class PendingLabels(Protocol):
    """Where delayed labels wait until they are due: the feed's files or a Redis stream."""

    @property
    def where(self) -> str:
        """Where they wait, for people: a folder or a stream key."""
        ...

    def file(self, name: str, rows: pd.DataFrame) -> str:
        """Add pending labels (FEED_COLUMNS); `name` names the batch (a traffic run)."""
        ...

    def clock(self) -> datetime | None:
        """The latest event time pending (None when nothing is)."""
        ...

    def pending_count(self) -> int: ...

    def take_due(self, until: datetime) -> DueLabels: ...


@dataclass(frozen=True)
class LabelFeed:
    """The pending labels of one model as CSV files in a folder (`feed_dir`)."""

    folder: Path

    @property
    def where(self) -> str:
        return str(self.folder)

    def file(self, name: str, rows: pd.DataFrame) -> str:
        return str(write_feed(self.folder, name, rows))

    def clock(self) -> datetime | None:
        return feed_clock(self.folder)

    def pending_count(self) -> int:
        return pending_count(self.folder)

    def take_due(self, until: datetime) -> DueLabels:
        return take_due(self.folder, until)


def pending_labels(settings: Settings, model_name: str) -> PendingLabels:
    """Where `model_name`'s delayed labels wait, by `settings.label_source`."""
    if settings.label_source == "stream":
        from monitoring.label_stream import LabelStream

        return LabelStream.of(settings, model_name)
    return LabelFeed(feed_dir(settings.home, model_name))


def validate_labels(raw: pd.DataFrame, *, with_terminal: bool) -> ValidationResult:
    """Check delivered label rows (all text) against the feed's contract.

    `with_terminal`: the rows are payments (fraud), whose entity is a transaction id and
    which name their terminal. Each bad row keeps its first problem as
    `quarantine_reason`. The valid frame is typed: times UTC, `label` and (fraud)
    `terminal_id` int64, and holds one row per request id.
    """
    raw = raw.reindex(columns=list(FEED_COLUMNS)).fillna("")
    text = {c: raw[c].astype("string").str.strip() for c in FEED_COLUMNS}
    checks = RowChecks(text, raw.index)
    flag = checks.flag

    request_id = text[REQUEST_ID]
    flag(~request_id.str.fullmatch(_REQUEST_ID_TOKEN), "request_id: not a request id", REQUEST_ID)
    flag(request_id.duplicated(keep="first"), "request_id: duplicate", REQUEST_ID)
    flag(text[ENTITY_ID] == "", "entity_id: missing", ENTITY_ID)
    if with_terminal:
        ids = pd.to_numeric(text[ENTITY_ID], errors="coerce")
        flag(~((ids % 1 == 0) & (ids >= 0)), "entity_id: not a transaction id", ENTITY_ID)
        terminal = pd.to_numeric(text[TERMINAL_ID], errors="coerce")
        flag(
            ~((terminal % 1 == 0) & (terminal >= 0) & (terminal <= MAX_INTEGER)),
            "terminal_id: not a non-negative integer",
            TERMINAL_ID,
        )
    event_time, due_at = _times(text[EVENT_TIME]), _times(text[DUE_AT])
    flag(event_time.isna(), "event_time: not a time", EVENT_TIME)
    flag(due_at.isna(), "due_at: not a time", DUE_AT)
    flag(due_at < event_time, "due_at: before event_time", DUE_AT)
    label = pd.to_numeric(text[LABEL], errors="coerce")
    flag(~label.isin([0, 1]), "label: not 0 or 1", LABEL)

    ok = ~checks.failed
    valid = pd.DataFrame(
        {
            REQUEST_ID: request_id[ok].astype(str),
            ENTITY_ID: text[ENTITY_ID][ok].astype(str),
            TERMINAL_ID: (
                pd.to_numeric(text[TERMINAL_ID][ok]).astype("int64")
                if with_terminal
                else pd.Series(pd.NA, index=raw.index[ok], dtype="Int64")
            ),
            EVENT_TIME: event_time[ok],
            DUE_AT: due_at[ok],
            LABEL: label[ok].astype("int64"),
        }
    ).reset_index(drop=True)
    return ValidationResult(valid=valid, quarantined=checks.quarantine(raw))


def create_tables(engine: sa.Engine) -> None:
    """The labels table, and the prediction log's table it joins to, if they are missing."""
    metadata.create_all(engine)
    predictions.metadata.create_all(engine)


def write_labels(url: str, model: str, valid: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Store valid labels; returns the rows newly stored and how many were already there."""
    engine = log_engine(url)
    try:
        create_tables(engine)
        with engine.begin() as connection:
            known = _stored_request_ids(connection, model, valid[REQUEST_ID].tolist())
            new = valid[~valid[REQUEST_ID].isin(known)].reset_index(drop=True)
            if len(new):
                now = datetime.now(UTC)
                connection.execute(
                    labels.insert(),
                    [
                        {
                            "model": model,
                            REQUEST_ID: row.request_id,
                            ENTITY_ID: row.entity_id,
                            TERMINAL_ID: None if pd.isna(row.terminal_id) else int(row.terminal_id),
                            EVENT_TIME: row.event_time.to_pydatetime(),
                            DUE_AT: row.due_at.to_pydatetime(),
                            LABEL: int(row.label),
                            "ingested_at": now,
                        }
                        for row in new.itertuples(index=False)
                    ],
                )
    finally:
        engine.dispose()
    return new, len(valid) - len(new)


def _chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    # SQLite caps the parameters of one statement; an IN list is sent in pieces.
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _stored_request_ids(connection: sa.Connection, model: str, request_ids: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(request_ids):
        query = sa.select(labels.c.request_id).where(
            labels.c.model == model, labels.c.request_id.in_(chunk)
        )
        found.update(connection.execute(query).scalars())
    return found


def logged_request_ids(url: str, model: str, request_ids: list[str]) -> set[str]:
    """Which of these request ids the prediction log holds a prediction of `model` for."""
    engine = log_engine(url)
    try:
        create_tables(engine)
        found: set[str] = set()
        with engine.connect() as connection:
            for chunk in _chunks(request_ids):
                query = sa.select(predictions.c.request_id).where(
                    predictions.c.model_name == model, predictions.c.request_id.in_(chunk)
                )
                found.update(connection.execute(query).scalars())
    finally:
        engine.dispose()
    return found


def read_labels(url: str, model: str) -> pd.DataFrame:
    """Every stored label of `model`, oldest event first."""
    engine = log_engine(url)
    try:
        create_tables(engine)
        query = sa.select(labels).where(labels.c.model == model).order_by(labels.c.event_time)
        with engine.connect() as connection:
            frame = pd.DataFrame(connection.execute(query).mappings().all())
    finally:
        engine.dispose()
    if frame.empty:
        return pd.DataFrame(columns=[c.name for c in labels.columns])
    for column in (EVENT_TIME, DUE_AT, "ingested_at"):
        # SQLite stores times without their offset; they are UTC either way.
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def labelled_predictions(
    url: str,
    model: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """The logged predictions of `model` in [since, until) that have a label, oldest first.

    One row per prediction: `time`, `request_id`, `model_version`, `score`, `decision`,
    the entity keys and one column per feature (as `mlops.prediction_log.read_predictions`
    gives them), then `label` (0/1) and `label_event_time`. Predictions still waiting for
    their label are left out.
    """
    from mlops.prediction_log import read_predictions

    logged = read_predictions(url, model=model, since=since, until=until)
    stored = read_labels(url, model)[[REQUEST_ID, LABEL, EVENT_TIME]]
    stored = stored.rename(columns={EVENT_TIME: "label_event_time"})
    joined = logged.merge(stored, on=REQUEST_ID, how="inner", validate="many_to_one")
    joined[LABEL] = joined[LABEL].astype("int64")
    return joined.sort_values("time", kind="stable").reset_index(drop=True)
