"""Read a raw data file (CSV or parquet) exactly as written: every value a string.

The one way raw files enter the platform, whatever the case study: it only reads.
Checking rows against a contract is the contract's job, which the caller runs next.
A file that cannot be read at all raises `UnusableSource` naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.quarantine import UnusableSource

SUPPORTED_SUFFIXES = (".csv", ".parquet")
# A NUL byte never appears in a text CSV; finding one early means the file is binary.
_SNIFF_BYTES = 8192


def read_raw_file(path: Path) -> pd.DataFrame:
    """Return the file's rows with every column a string (`read_raw_source`, then
    `text_frame` for a parquet file).

    CSV is read with no type inference and no missing-value guessing (a blank " " stays
    " "). Parquet columns are turned into the strings a CSV of them would hold: integers
    "34", decimals in their shortest form "1889.5", timestamps "2025-01-01T00:00:00Z",
    missing values "".

    Raises `UnusableSource` for a missing, unreadable, corrupt or empty file, or a
    suffix other than .csv or .parquet.
    """
    raw = read_raw_source(path)
    return raw if isinstance(raw, pd.DataFrame) else text_frame(raw)


def check_source_path(path: Path) -> str:
    """The file's lower-case suffix, once it is a regular file of a supported type; else
    `UnusableSource`. Commands call it before they start a flow, to fail at once."""
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
    return suffix


def read_raw_source(path: Path) -> pd.DataFrame | pa.Table:
    """The file's rows as stored: a CSV's as strings (see `read_raw_file`), a parquet
    file's as its Arrow table, typed, for a contract that checks typed columns without
    turning millions of values into Python strings first (`text_frame` gives the strings
    `read_raw_file` would).

    Raises `UnusableSource` as `read_raw_file` does.
    """
    path = Path(path)
    suffix = check_source_path(path)

    raw = _read_csv(path) if suffix == ".csv" else _read_parquet(path)
    empty = raw.empty if isinstance(raw, pd.DataFrame) else not (raw.num_rows and raw.num_columns)
    if empty:
        raise UnusableSource(path, "no data rows (the file holds at most a header)")
    return raw


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


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except Exception as error:
        # pyarrow signals a corrupt file with several unrelated exception types
        # (ArrowInvalid, OSError, ...); any failure here means the same thing to the caller.
        raise UnusableSource(path, f"not a readable parquet file: {error}") from error


def text_frame(table: pa.Table, rows: npt.NDArray[np.intp] | None = None) -> pd.DataFrame:
    """The strings a CSV of `table` would hold, every column (see `read_raw_file`); only
    the rows at positions `rows` when given, spelled as they are in the whole table's text.

    Arrow formats whole columns in C: a per-value Python formatter took ~10 s for the
    1.76 M rows of a default fraud simulation.
    """
    text = pa.table({name: _as_text(table.column(name), rows) for name in table.column_names})
    return text.to_pandas()


def utc_stamps(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A timestamp column as UTC nanoseconds (a time without an offset is UTC)."""
    if column.type.tz is None:
        column = pc.assume_timezone(column, "UTC")
    return column.cast(pa.timestamp("ns", tz="UTC"))


def _as_text(column: pa.ChunkedArray, rows: npt.NDArray[np.intp] | None) -> pa.ChunkedArray:
    """One parquet column as the strings a CSV of it would hold ("" where missing), at
    positions `rows` (every row when None)."""
    if pa.types.is_timestamp(column.type):
        stamps = utc_stamps(column)
        # Whole seconds, as the simulators write them, unless that would drop precision
        # (Arrow's %S prints the fraction the timestamp unit carries); decided on the
        # whole column, so a row reads the same whichever rows are formatted.
        floored = pc.floor_temporal(stamps, unit="second")
        whole = pc.all(pc.or_kleene(pc.equal(stamps, floored), pc.is_null(stamps))).as_py()
        if rows is not None:
            stamps = stamps.take(rows)
        if whole is not False:
            stamps = stamps.cast(pa.timestamp("s", tz="UTC"))
        text = pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%SZ")
    else:
        if rows is not None:
            column = column.take(rows)
        # Floats in their shortest round-trip form, no trailing zeros: 1889.5, 29.85, 0.
        text = column.cast(pa.string())
    return pc.fill_null(text, "")
