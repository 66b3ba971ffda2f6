"""The files a batch scoring run writes: the scores and the quarantined rows beside them.

Outputs appear complete or not at all: each is written to a hidden partial file beside
its target and renamed. Scores go out one chunk at a time, as CSV or parquet by the
output's suffix; Arrow writes the parquet and formats the CSV's timestamps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.quarantine import QUARANTINE_REASON
from serving.batch.stages import StageClock

logger = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".csv", ".parquet")
_CSV_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def check_output_suffix(output: Path) -> None:
    """Raise `ValueError` unless `output` is a .csv or .parquet file."""
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(
            f"{output}: unsupported output type {output.suffix or '(no suffix)'!r}; "
            f"use one of {', '.join(OUTPUT_SUFFIXES)}"
        )


def quarantine_path_for(output: Path) -> Path:
    """Where the rows of `output`'s source that failed validation are written."""
    return output.with_name(f"{output.stem}.quarantine.csv")


def write_quarantine(quarantined: pd.DataFrame, path: Path, clock: StageClock) -> Path | None:
    """Write the rejected rows (raw, with reason and value) to `path`; the path, or None
    when there are none.

    A quarantine file left by an earlier run on the same output is removed: it would
    describe rows that are not in this output's source.
    """
    if quarantined.empty:
        path.unlink(missing_ok=True)
        return None
    with clock.timed("write"):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = _partial_path(path)
        quarantined.to_csv(partial, index=False, lineterminator="\n")
        partial.replace(path)
    top = quarantined[QUARANTINE_REASON].value_counts().head(5).to_dict()
    logger.warning("quarantined %d rows -> %s; top reasons %s", len(quarantined), path, top)
    return path


@contextmanager
def chunk_writer(
    output: Path, schema: pa.Schema, clock: StageClock
) -> Iterator[Callable[[pa.Table], None]]:
    """Yield a function that appends a scored chunk (a table of `schema`) to `output`'s
    partial file.

    On a clean exit the partial file replaces `output`; on an error it is removed, so a
    failed run never leaves a truncated output behind.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial_path(output)
    as_csv = output.suffix.lower() == ".csv"
    timestamps = [f.name for f in schema if pa.types.is_timestamp(f.type)]
    # Dictionary pages for the text columns only (the model's name and version repeat on
    # every row): trying them on ids and probabilities, which rarely repeat, cost more
    # than encoding them.
    strings = [f.name for f in schema if pa.types.is_string(f.type)]
    parquet_writer: pq.ParquetWriter | None = None
    wrote_header = False

    def write(table: pa.Table) -> None:
        nonlocal parquet_writer, wrote_header
        with clock.timed("write"):
            if as_csv:
                scored = table.to_pandas()
                for column in timestamps:
                    scored[column] = _timestamp_text(scored[column])
                scored.to_csv(
                    partial,
                    mode="a" if wrote_header else "w",
                    header=not wrote_header,
                    index=False,
                    lineterminator="\n",
                )
                wrote_header = True
                return
            if parquet_writer is None:
                parquet_writer = pq.ParquetWriter(partial, schema, use_dictionary=strings)
            parquet_writer.write_table(table)

    try:
        yield write
        if parquet_writer is not None:
            parquet_writer.close()
            parquet_writer = None
        with clock.timed("write"):
            partial.replace(output)
    finally:
        if parquet_writer is not None:
            parquet_writer.close()
        partial.unlink(missing_ok=True)


def _timestamp_text(stamps: pd.Series) -> np.ndarray:
    """UTC stamps as "2025-01-01T00:00:00Z", the raw files' spelling, formatted by Arrow.

    pandas formats each stamp in Python (3 s per million rows). Fractions of a second
    are kept only when a chunk has any, as `read_raw_file` does.
    """
    arrow = pa.array(stamps.array).cast(pa.timestamp("ns", tz="UTC"))
    whole = pc.all(pc.equal(arrow, pc.floor_temporal(arrow, unit="second"))).as_py()
    if whole is not False:
        arrow = arrow.cast(pa.timestamp("s", tz="UTC"))
    text: np.ndarray = pc.strftime(arrow, format=_CSV_TIMESTAMP_FORMAT).to_numpy(
        zero_copy_only=False
    )
    return text


def _partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")
