"""Delayed labels as events: one Redis stream per model, read by the label flow.

A label source that is itself a stream (chargebacks, investigation outcomes) publishes
each label as an entry of `<stream_prefix>:labels:<model>` on the payments stream's Redis,
with the feed's fields (`monitoring.labels.FEED_COLUMNS`, as text). The label flow takes
them exactly as it takes the feed's files (`monitoring.labels.PendingLabels`): the entries
due by a cut-off, validated, stored, then deleted from the stream.

Why no consumer group: the label flow is the stream's only reader and runs once at a
time, and what it takes is "everything due by the cut-off", not "the next entries": a
label not yet due must stay for a later run, which a group's acknowledgement cannot
express. So the flow reads the whole stream (`XRANGE`, in pages) and deletes
(`XDEL`) what it delivered, after storing it. A flow that dies in between reads the
same entries again next time, and the `labels` table stores each request's label once
(`monitoring.labels.write_labels`): delivered exactly once in effect. An acknowledged
`XADD` survives a Redis restart with the stack's `appendonly yes`, `appendfsync always`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.payment_stream import stream_redis
from monitoring.labels import (
    EVENT_TIME,
    FEED_COLUMNS,
    DueLabels,
    cut_off_of,
    due_mask,
    empty_rows,
)

if TYPE_CHECKING:
    from mlops.settings import Settings

# Entries read or deleted in one round trip.
_PAGE = 5000


@dataclass(frozen=True)
class LabelStream:
    """The pending labels of one model as the entries of one Redis stream."""

    # redis-py types each reply as sync-or-awaitable; this client is synchronous.
    client: Any
    key: str

    @classmethod
    def of(cls, settings: Settings, model_name: str) -> LabelStream:
        return cls(stream_redis(settings), f"{settings.stream_prefix}:labels:{model_name}")

    @property
    def where(self) -> str:
        return f"redis stream {self.key}"

    def file(self, name: str, rows: pd.DataFrame) -> str:
        """Publish `rows` as one entry each, in one pipelined round trip per page. `name`
        (the traffic run) is kept in each entry for people reading the stream."""
        text = rows.reindex(columns=list(FEED_COLUMNS)).astype(object).fillna("").astype(str)
        records = text.to_dict("records")
        for first in range(0, len(records), _PAGE):
            pipe: Any = self.client.pipeline(transaction=False)
            for record in records[first : first + _PAGE]:
                pipe.xadd(self.key, {**record, "batch": name})
            pipe.execute()
        return self.where

    def clock(self) -> datetime | None:
        _, rows = self._read()
        times = pd.to_datetime(rows[EVENT_TIME], errors="coerce", utc=True, format="ISO8601")
        latest = times.max()
        return None if pd.isna(latest) else latest.to_pydatetime()

    def pending_count(self) -> int:
        return int(self.client.xlen(self.key))

    def take_due(self, until: datetime) -> DueLabels:
        """The entries due by `until` (see `monitoring.labels.due_mask`); `commit` deletes them."""
        cut_off = cut_off_of(until)
        ids, rows = self._read()
        due = due_mask(rows, cut_off)
        taken = [entry for entry, is_due in zip(ids, due, strict=True) if is_due]

        def commit() -> None:
            for first in range(0, len(taken), _PAGE):
                self.client.xdel(self.key, *taken[first : first + _PAGE])

        return DueLabels(
            rows=rows[due].reset_index(drop=True),
            until=cut_off.to_pydatetime(),
            _commit=commit,
        )

    def _read(self) -> tuple[list[bytes], pd.DataFrame]:
        """Every entry's id and its feed fields as text (a missing field is empty)."""
        ids: list[bytes] = []
        records: list[dict[str, str]] = []
        for entry, fields in self._entries():
            ids.append(entry)
            records.append({c: fields.get(c.encode(), b"").decode() for c in FEED_COLUMNS})
        if not records:
            return ids, empty_rows()
        return ids, pd.DataFrame(records, columns=list(FEED_COLUMNS), dtype=str)

    def _entries(self) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
        start = "-"
        while True:
            page = self.client.xrange(self.key, min=start, count=_PAGE)
            yield from page
            if len(page) < _PAGE:
                return
            start = "(" + page[-1][0].decode()
