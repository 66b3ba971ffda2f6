"""Read a card-transaction file (CSV or parquet) as written, every value a string.

`load_fraud_file` is the one way raw fraud files enter the platform: this platform's
simulator output, or files exported from the Fraud Detection Handbook's original simulator.
It reads with `read_raw_file`; checking rows against the contract is `validate_fraud_frame`'s
job, which the caller runs next.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from features.fraud_schema import RAW_COLUMNS
from features.raw_files import read_raw_file

# How pandas names a header-less column on read ("Unnamed: 0"), or how a file written
# with the index and no index name spells it in the header (an empty name).
_UNNAMED_COLUMN = re.compile(r"^(Unnamed: \d+)?$")


def load_fraud_file(path: Path) -> pd.DataFrame:
    """Return the file's rows with every column a string.

    A handbook frame saved with `to_csv()` (index included) starts with an unnamed index
    column; that leading column is dropped so the contract sees only its own columns. Any
    other column is kept, for the contract to ignore.

    Raises `UnusableSource` for a file that cannot be read (see `read_raw_file`).
    """
    frame = read_raw_file(Path(path))
    first = str(frame.columns[0])
    if first not in RAW_COLUMNS and _UNNAMED_COLUMN.match(first):
        frame = frame.drop(columns=frame.columns[0])
    return frame
