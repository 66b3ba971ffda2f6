"""Read a churn customer file (CSV or parquet) exactly as published, every value a string.

`load_churn_file` is the one way raw churn files enter the platform: the public IBM file
`WA_Fn-UseC_-Telco-Customer-Churn.csv`, the simulator's output, or a drop from elsewhere.
It only reads; checking rows against the contract is `validate_churn_frame`'s job, which
the caller runs next. A file that cannot be read at all raises `UnusableSource` naming it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from features.churn_schema import TIMESTAMP_COLUMN, UnusableSource

SUPPORTED_SUFFIXES = (".csv", ".parquet")
# A NUL byte never appears in a text CSV; finding one early means the file is binary.
_SNIFF_BYTES = 8192


def load_churn_file(path: Path, *, as_of: datetime | None = None) -> pd.DataFrame:
    """Return the file's rows with every column a string, as the public CSV spells them.

    CSV is read with no type inference and no missing-value guessing, so the blank " "
    TotalCharges of new customers stays " ". Parquet columns are turned into the same
    strings: integers "34", decimals in their shortest form "1889.5", timestamps
    "2025-01-01T00:00:00Z", missing values "".

    The public file is one snapshot with no time column. When the file has no
    `event_timestamp`, one is added holding `as_of` (a naive datetime is taken as UTC) or,
    when `as_of` is None, the file's modification time in UTC: the best available answer to
    "when were these customers observed". A file's own `event_timestamp` always wins.

    Raises `UnusableSource` for a missing, unreadable, corrupt or empty file, or a
    suffix other than .csv or .parquet.
    """
    path = Path(path)
    if not path.exists():
        raise UnusableSource(path, "file not found")
    if not path.is_file():
        raise UnusableSource(path, "not a regular file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnusableSource(
            path,
            f"unsupported file type {path.suffix or '(no suffix)'!r}; "
            f"expected one of {', '.join(SUPPORTED_SUFFIXES)}",
        )

    frame = _read_csv(path) if suffix == ".csv" else _read_parquet(path)
    if frame.empty:
        raise UnusableSource(path, "no data rows (the file holds at most a header)")

    if TIMESTAMP_COLUMN not in frame.columns:
        observed = as_of if as_of is not None else _modification_time(path)
        frame[TIMESTAMP_COLUMN] = _iso_utc(observed)
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as error:
        raise UnusableSource(path, f"cannot read the file: {error}") from error
    if not head.strip():
        raise UnusableSource(path, "empty file (no header, no rows)")
    if b"\x00" in head:
        raise UnusableSource(path, "binary content, not a CSV text file")
    try:
        # utf-8-sig: a CSV re-saved from a spreadsheet often starts with a byte-order mark,
        # which would otherwise become part of the first column's name.
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise UnusableSource(path, f"not UTF-8 text, so not a CSV: {error.reason}") from error
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as error:
        raise UnusableSource(path, f"not a readable CSV: {error}") from error


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as error:
        # pyarrow signals a corrupt file with several unrelated exception types
        # (ArrowInvalid, OSError, ...); any failure here means the same thing to the caller.
        raise UnusableSource(path, f"not a readable parquet file: {error}") from error
    if frame.empty:
        return frame
    return frame.apply(_as_text).reset_index(drop=True)


def _as_text(column: pd.Series) -> pd.Series:
    """One parquet column as the strings a CSV of it would hold."""
    missing = column.isna()
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        stamps = column.dt.tz_localize(UTC) if column.dt.tz is None else column.dt.tz_convert(UTC)
        # Whole seconds, as the simulator writes them, unless that would drop precision.
        whole_seconds = (stamps.dropna() == stamps.dropna().dt.floor("s")).all()
        text = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S" + ("Z" if whole_seconds else ".%fZ"))
    elif pd.api.types.is_float_dtype(column.dtype):
        # Shortest round-trip form, no trailing zeros: 1889.5, 29.85, 0 (not 0.0).
        text = column.map(
            lambda value: np.format_float_positional(value, trim="-"), na_action="ignore"
        )
    else:
        text = column.astype(str)
    return text.where(~missing, "").astype(object)


def _modification_time(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def _iso_utc(moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
