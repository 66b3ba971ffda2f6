"""Read a churn customer file (CSV or parquet) exactly as published, every value a string.

`load_churn_file` is the one way raw churn files enter the platform: the public IBM file
`WA_Fn-UseC_-Telco-Customer-Churn.csv`, the simulator's output, or a drop from elsewhere.
It reads with `read_raw_file` and gives the rows an observation time when the file has
none; checking rows against the contract is `validate_churn_frame`'s job.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from features.churn_schema import TIMESTAMP_COLUMN
from features.raw_files import read_raw_file


def load_churn_file(path: Path, *, as_of: datetime | None = None) -> pd.DataFrame:
    """Return the file's rows with every column a string, as the public CSV spells them.

    The blank " " TotalCharges of new customers stays " " (see `read_raw_file`).

    The public file is one snapshot with no time column. When the file has no
    `event_timestamp`, one is added holding `as_of` (a naive datetime is taken as UTC) or,
    when `as_of` is None, the file's modification time in UTC: the best available answer to
    "when were these customers observed". A file's own `event_timestamp` always wins.

    Raises `UnusableSource` for a file that cannot be read (see `read_raw_file`).
    """
    path = Path(path)
    frame = read_raw_file(path)
    if TIMESTAMP_COLUMN not in frame.columns:
        observed = as_of if as_of is not None else _modification_time(path)
        frame[TIMESTAMP_COLUMN] = _iso_utc(observed)
    return frame


def _modification_time(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def _iso_utc(moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
