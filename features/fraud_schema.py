"""The raw fraud data contract: card transactions as the Fraud Detection Handbook simulates them.

The schema is the one of the handbook's "Simulated dataset" (Le Borgne et al.): one row per
card transaction, with its time, customer, terminal, amount and fraud label.
`validate_fraud_frame` splits a raw frame (every value a string, as `read_raw_file` gives)
into typed valid rows and quarantined rows, each quarantined row carrying the rule it broke.
Problems that make a whole file unusable (missing columns, no rows) raise `UnusableSource`
naming the file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from features.input_contract import NumberRule, TimeRule
from features.quarantine import (
    FirstFailures,
    RowChecks,
    ValidationResult,
    check_columns_and_rows,
    check_usable,
)
from features.raw_files import text_frame, utc_stamps

TRANSACTION_ID = "TRANSACTION_ID"
TX_DATETIME = "TX_DATETIME"
CUSTOMER_ID = "CUSTOMER_ID"
TERMINAL_ID = "TERMINAL_ID"
TX_AMOUNT = "TX_AMOUNT"
TX_TIME_SECONDS = "TX_TIME_SECONDS"
TX_TIME_DAYS = "TX_TIME_DAYS"
TX_FRAUD = "TX_FRAUD"
TX_FRAUD_SCENARIO = "TX_FRAUD_SCENARIO"

ID_COLUMN = TRANSACTION_ID
TIMESTAMP_COLUMN = TX_DATETIME
LABEL_COLUMN = TX_FRAUD

# The handbook's columns, in its order.
RAW_COLUMNS: tuple[str, ...] = (
    TRANSACTION_ID,
    TX_DATETIME,
    CUSTOMER_ID,
    TERMINAL_ID,
    TX_AMOUNT,
    TX_TIME_SECONDS,
    TX_TIME_DAYS,
    TX_FRAUD,
    TX_FRAUD_SCENARIO,
)
# Known only after the fact (chargebacks, investigations): absent from scoring-time data.
LABEL_COLUMNS: tuple[str, ...] = (TX_FRAUD, TX_FRAUD_SCENARIO)
ID_COLUMNS: tuple[str, ...] = (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID)
INTEGER_COLUMNS: tuple[str, ...] = (*ID_COLUMNS, TX_TIME_SECONDS, TX_TIME_DAYS, *LABEL_COLUMNS)

# How the handbook's files spell TX_DATETIME; always UTC. ISO-8601 with "T"/"Z" (what
# `read_raw_file` makes of a parquet timestamp) is accepted as well.
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
SECONDS_PER_DAY = 86_400
# The simulator's largest amounts are a few thousand (a scenario-3 fraud is five times a
# customer's spending); anything near this bound is a unit or parsing error, not a purchase.
MAX_TX_AMOUNT = 100_000.0
# The contract parses ids as float64: from 2**53 on, two integers read as one (2**53 + 1
# reads as 2**53), so the API and the pipeline could disagree there. No id gets near it.
MAX_INTEGER = 2**53 - 1

# The rules of the columns a payment brings: the pipeline's row checks below and the
# API's request fields (`serving.schemas.FraudTransaction`) are both built from them.
_ID_RULE = NumberRule(0, MAX_INTEGER, integer=True, says="a non-negative integer")
NUMBERS: dict[str, NumberRule] = {
    **{column: _ID_RULE for column in (*ID_COLUMNS, TX_TIME_SECONDS, TX_TIME_DAYS)},
    TX_AMOUNT: NumberRule(0, MAX_TX_AMOUNT, low_open=True, high_open=True),
}
# No payment this system holds is older than the epoch; the windows count time in int64
# nanoseconds since it, which end in 2262, so any accepted time is convertible.
TX_DATETIME_RANGE = TimeRule(datetime(1970, 1, 1, tzinfo=UTC), datetime(2262, 1, 1, tzinfo=UTC))

GENUINE = 0
# What each TX_FRAUD_SCENARIO number means. 1..3 are the handbook's; 4 is this platform's own
# addition, produced only by the simulator's `new_fraud_pattern` drift scenario.
FRAUD_SCENARIOS: dict[int, str] = {
    GENUINE: "genuine",
    1: "amount above 220",
    2: "compromised terminal (28 days)",
    3: "compromised customer (14 days, a third of the amounts x5)",
    4: "card testing (bursts of small amounts at a new terminal within an hour)",
}


def validate_fraud_frame(
    raw: pd.DataFrame, source: Path | str, *, require_label: bool = True
) -> ValidationResult:
    """Check every row against the contract; never drop a row without a reason.

    `raw` holds the file as read, every column a string. A row fails on its first problem:
    `quarantine_reason` names the column and the rule, `quarantine_value` the offending value.
    With `require_label=False` the label columns may be absent (data to score); when present
    they are checked all the same.

    The valid frame holds the contract's columns that are present, typed: the integer
    columns int64, TX_AMOUNT float64 rounded to cents (the handbook's own scenario-3 amounts
    carry float noise such as 61.699999999999996), TX_DATETIME datetime64[ns, UTC] (a time
    without an offset is UTC). Its rows are sorted by TX_DATETIME, then TRANSACTION_ID, so
    time-based splits and rolling windows can rely on the order whatever the file's order.
    """
    check_usable(raw, source, [c for c in RAW_COLUMNS if require_label or c not in LABEL_COLUMNS])
    present = [c for c in RAW_COLUMNS if c in raw.columns]
    text = {c: raw[c].astype("string[pyarrow]").str.strip() for c in present}
    numbers = {c: _numbers(text[c]) for c in present if c != TX_DATETIME}
    stamps = pd.to_datetime(text[TX_DATETIME], errors="coerce", utc=True, format="ISO8601")
    checks = RowChecks(text, raw.index)
    _flag_broken_rows(checks, numbers, stamps)
    quarantined = checks.quarantine(raw)
    valid = _typed_valid_rows(raw.index, ~checks.failed, present, numbers, stamps)
    return ValidationResult(valid=valid, quarantined=quarantined)


def validate_fraud_table(
    table: pa.Table, source: Path | str, *, require_label: bool = True
) -> ValidationResult:
    """`validate_fraud_frame` of a parquet file's typed table (`read_raw_source`): the same
    valid rows, quarantined rows, reasons and values as `validate_fraud_frame` gives for
    `text_frame(table)`, the strings `read_raw_file` reads from the same file.

    When the contract's columns are integers, float64 and a timestamp (what the
    simulator and pandas write), the rules run on the typed columns and only the failed
    rows are turned into text: parsing the text back gives exactly these numbers (Arrow
    prints floats in their shortest round-trip form) and times. Any other column type is
    checked through its text, as `validate_fraud_frame` does.
    """
    check_columns_and_rows(
        table.column_names,
        table.num_rows,
        source,
        [c for c in RAW_COLUMNS if require_label or c not in LABEL_COLUMNS],
    )
    present = [c for c in RAW_COLUMNS if c in table.column_names]
    if not typed_checks_apply(table, present):
        return validate_fraud_frame(text_frame(table), source, require_label=require_label)
    index = pd.RangeIndex(table.num_rows)
    numbers = {
        c: pd.Series(_float_values(table.column(c)), index=index)
        for c in present
        if c != TX_DATETIME
    }
    stamps = pd.Series(utc_stamps(table.column(TX_DATETIME)).to_pandas(), index=index).astype(
        "datetime64[ns, UTC]"
    )
    checks = FirstFailures(table.num_rows)
    _flag_broken_rows(checks, numbers, stamps)
    failed = checks.failed
    quarantined = checks.quarantine(text_frame(table, np.flatnonzero(failed)))
    valid = _typed_valid_rows(index, pd.Series(~failed, index=index), present, numbers, stamps)
    return ValidationResult(valid=valid, quarantined=quarantined)


def typed_checks_apply(table: pa.Table, present: list[str]) -> bool:
    """Whether the rules can read `table`'s columns typed: the contract's are integers,
    float64 and (TX_DATETIME) a timestamp, and every column (extra ones too) has a
    type Arrow can print for the quarantine."""
    for field in table.schema:
        kind = field.type
        text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
        number = pa.types.is_integer(kind) or pa.types.is_float64(kind)
        stamp = pa.types.is_timestamp(kind)
        if field.name == TX_DATETIME and not stamp:
            return False
        if field.name in present and field.name != TX_DATETIME and not number:
            return False
        if not (text or number or stamp):
            return False
    return True


def _float_values(column: pa.ChunkedArray) -> np.ndarray:
    """An integer or float64 column as float64, NaN where missing: the numbers `_numbers`
    parses from its text (an integer rounds to the nearest float64 either way)."""
    values = column.to_numpy()
    return np.asarray(values, dtype=np.float64)


def _flag_broken_rows(
    checks: RowChecks | FirstFailures, numbers: dict[str, pd.Series], stamps: pd.Series
) -> None:
    """The contract's row rules, in the order a row is checked (it keeps the first it
    breaks). A flat list of rules: long, and meant to be read top to bottom."""
    flag = checks.flag
    for column in (c for c in INTEGER_COLUMNS if c in numbers and c not in LABEL_COLUMNS):
        rule = NUMBERS[column]
        flag(~rule.holds_in(numbers[column]), f"{column}: not {rule.meaning}", column)
    ids = numbers[TRANSACTION_ID]
    flag(_repeated(ids), "TRANSACTION_ID: duplicate", TRANSACTION_ID)

    flag(stamps.isna(), "TX_DATETIME: not a timestamp", TX_DATETIME)
    flag(
        ~TX_DATETIME_RANGE.holds(stamps),
        f"TX_DATETIME: not {TX_DATETIME_RANGE.meaning}",
        TX_DATETIME,
    )

    amount_rule = NUMBERS[TX_AMOUNT]
    flag(
        ~amount_rule.holds_in(numbers[TX_AMOUNT]),
        f"TX_AMOUNT: not {amount_rule.meaning}",
        TX_AMOUNT,
    )

    # Both count from the start of the simulation; a day number that disagrees with the
    # seconds means one of them was edited or shifted.
    flag(
        numbers[TX_TIME_DAYS] != numbers[TX_TIME_SECONDS] // SECONDS_PER_DAY,
        "TX_TIME_DAYS: not TX_TIME_SECONDS // 86400",
        TX_TIME_DAYS,
    )

    if TX_FRAUD in numbers:
        flag(~_one_of(numbers[TX_FRAUD], [0, 1]), "TX_FRAUD: not 0 or 1", TX_FRAUD)
    if TX_FRAUD_SCENARIO in numbers:
        scenario = numbers[TX_FRAUD_SCENARIO]
        flag(
            ~_one_of(scenario, list(FRAUD_SCENARIOS)),
            f"TX_FRAUD_SCENARIO: not one of {list(FRAUD_SCENARIOS)}",
            TX_FRAUD_SCENARIO,
        )
        if TX_FRAUD in numbers:
            flag(
                (scenario == GENUINE) != (numbers[TX_FRAUD] == 0),
                "TX_FRAUD_SCENARIO: not 0 exactly when TX_FRAUD is 0",
                TX_FRAUD_SCENARIO,
            )


def _typed_valid_rows(
    index: pd.Index,
    good: pd.Series,
    present: list[str],
    numbers: dict[str, pd.Series],
    stamps: pd.Series,
) -> pd.DataFrame:
    """The rows that broke no rule, each column in its type, sorted by time then id.

    Built from NumPy arrays taken once in the final order: selecting, sorting and
    re-indexing a frame copied every column three times (seconds on millions of rows).
    """
    keep = np.asarray(good, dtype=bool)
    every = bool(keep.all())
    times = stamps.astype("datetime64[ns, UTC]").to_numpy(dtype="datetime64[ns]")
    ids = numbers[TRANSACTION_ID].to_numpy()
    if not every:
        times, ids = times[keep], ids[keep]
    ids = ids.astype(np.int64)
    # A file already in that order (the simulator writes one) is taken as it is.
    order: npt.NDArray[np.intp] | slice = (
        slice(None) if _in_time_then_id_order(times, ids) else np.lexsort((ids, times))
    )

    def rows(values: np.ndarray) -> np.ndarray:
        return (values if every else values[keep])[order]

    # Column by column: one block each, not stacked into a 2-D block (another copy).
    valid = pd.DataFrame(index=pd.RangeIndex(len(ids)))
    for column in present:
        if column == TX_DATETIME:
            valid[column] = pd.DatetimeIndex(times[order]).tz_localize("UTC")
        elif column == TX_AMOUNT:
            valid[column] = np.round(rows(numbers[TX_AMOUNT].to_numpy()), 2)
        else:
            valid[column] = rows(numbers[column].to_numpy()).astype(np.int64)
    return valid


def _in_time_then_id_order(times: np.ndarray, ids: npt.NDArray[np.int64]) -> bool:
    """Whether the rows are sorted by time, ties by id: the order `np.lexsort` gives."""
    if not (times[1:] >= times[:-1]).all():
        return False
    tied = times[1:] == times[:-1]
    return bool((ids[1:][tied] >= ids[:-1][tied]).all())


def _repeated(ids: pd.Series) -> pd.Series:
    """Per row, whether its id (not missing) appeared in an earlier row. Strictly
    increasing ids (a file written in time order usually has them) have no repeat, which
    one comparison shows: hashing millions of ids was a third of the check."""
    values = ids.to_numpy(dtype=np.float64)
    if (values[1:] > values[:-1]).all() and not np.isnan(values[:1]).any():
        return pd.Series(np.zeros(values.shape, dtype=bool), index=ids.index)
    return ids.duplicated(keep="first") & ids.notna()


def _one_of(numbers: pd.Series, allowed: list[int]) -> pd.Series:
    """Per value, whether it is one of a few `allowed` numbers (NaN is not): `isin`
    without its sort, several times faster on millions of rows."""
    values = numbers.to_numpy(dtype=np.float64)
    hit = np.zeros(values.shape, dtype=bool)
    for number in allowed:
        hit |= values == number
    return pd.Series(hit, index=numbers.index)


def _numbers(text: pd.Series) -> pd.Series:
    """The column as float64, NaN where a value is missing or not a number.

    Plain float64 rather than nullable Float64: NaN fails every comparison, which is what a
    missing or garbled value should do in the checks. A column of well-formed numbers (the
    usual case) is parsed by Arrow, several times faster than pandas on millions of rows;
    one bad value sends the whole column through pandas, which turns it into NaN.
    """
    try:
        parsed = pa.array(text, from_pandas=True).cast(pa.float64())
        return pd.Series(parsed.to_numpy(zero_copy_only=False), index=text.index)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
        return pd.to_numeric(text, errors="coerce").astype(np.float64)
