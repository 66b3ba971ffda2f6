"""A parquet file's typed columns checked directly give the verdict of their text.

Batch scoring checks a parquet file of transactions on its typed columns
(`validate_fraud_table`) instead of turning every value into text first and parsing it
back (`read_raw_file` then `validate_fraud_frame`, the path CSV files take and parquet
files took before). The two must agree row for row: the same valid rows, the same
quarantined rows as read, the same reasons and offending values. Each test builds a file
with rows that break the contract's rules, and compares both paths on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.fraud_schema import (
    LABEL_COLUMNS,
    RAW_COLUMNS,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    typed_checks_apply,
    validate_fraud_frame,
    validate_fraud_table,
)
from features.quarantine import QUARANTINE_REASON, QUARANTINE_VALUE, UnusableSource
from features.raw_files import read_raw_file, read_raw_source, text_frame
from sources.fraud_simulator import simulate_transactions


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return simulate_transactions(60, 120, 20, seed=7)


def broken(simulated: pd.DataFrame) -> pa.Table:
    """The simulation with one row per kind of problem, as Arrow columns that allow
    missing values (integers stay integers where present)."""
    table = pa.Table.from_pandas(simulated, preserve_index=False)
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    n = table.num_rows

    def put(column: str, row: int, value: object) -> None:
        columns[column][row] = value

    put(TX_AMOUNT, 1, -5.0)
    put(TX_AMOUNT, 2, 0.0)
    put(TX_AMOUNT, 3, None)
    put(TX_AMOUNT, 4, float("nan"))
    put(TX_AMOUNT, 5, float("inf"))
    put(TX_AMOUNT, 6, 250_000.0)
    put(TX_AMOUNT, 7, 61.699999999999996)  # valid, rounded to cents
    put("CUSTOMER_ID", 8, -1)
    put("TERMINAL_ID", 9, None)
    put(TRANSACTION_ID, 10, columns[TRANSACTION_ID][11])  # a duplicate id
    put(TX_DATETIME, 12, None)
    put(TX_DATETIME, 13, pd.Timestamp("1969-12-31 23:59:59", tz="UTC").to_pydatetime())
    put("TX_TIME_DAYS", 14, columns["TX_TIME_DAYS"][14] + 1)
    put("TX_FRAUD", 15, 2)
    put("TX_FRAUD", 16, 1 - columns["TX_FRAUD"][16])
    put("TX_FRAUD_SCENARIO", 17, 9)
    put(TRANSACTION_ID, 18, 2**60)  # beyond the ids the contract accepts
    put("CUSTOMER_ID", 19, 2**53 + 1)  # rounds to 2**53 as text and as a number
    put(TX_AMOUNT, 20, None)
    put("CUSTOMER_ID", 20, None)  # two problems: the first rule broken wins
    schema = table.schema
    return pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in schema}).slice(0, n)


def assert_same_verdict(
    table: pa.Table, *, typed_checks: bool, require_label: bool = False
) -> pd.DataFrame:
    """Both paths on `table`; the quarantined rows (identical in both)."""
    present = [c for c in RAW_COLUMNS if c in table.column_names]
    assert typed_checks_apply(table, present) is typed_checks
    typed = validate_fraud_table(table, "typed", require_label=require_label)
    text = validate_fraud_frame(text_frame(table), "typed", require_label=require_label)
    pd.testing.assert_frame_equal(typed.valid, text.valid)
    pd.testing.assert_frame_equal(typed.quarantined, text.quarantined)
    assert typed.counts == text.counts
    return typed.quarantined


def test_bad_rows_get_the_same_reasons_and_values_typed_or_as_text(
    simulated: pd.DataFrame,
) -> None:
    quarantined = assert_same_verdict(broken(simulated), typed_checks=True)
    reasons = quarantined[QUARANTINE_REASON].value_counts()
    assert reasons["TX_AMOUNT: not a number in (0, 100000)"] == 6
    assert reasons["TRANSACTION_ID: duplicate"] == 1
    assert reasons["TX_DATETIME: not a timestamp"] == 1
    assert reasons["TX_DATETIME: not a time from 1970-01-01 to before 2262-01-01"] == 1
    assert reasons["TRANSACTION_ID: not a non-negative integer"] == 1
    # The row with a missing amount and a missing customer is held for the customer
    # (checked first), with the empty text the file's text would show.
    both = quarantined[quarantined[TX_AMOUNT] == ""]
    assert set(both[QUARANTINE_REASON]) >= {"CUSTOMER_ID: not a non-negative integer"}
    assert "" in set(quarantined[QUARANTINE_VALUE].dropna())


def test_a_parquet_file_read_typed_or_as_text_gets_the_same_verdict(
    simulated: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "tx.parquet"
    pq.write_table(broken(simulated), path)
    table = read_raw_source(path)
    assert isinstance(table, pa.Table)
    typed = validate_fraud_table(table, path)
    text = validate_fraud_frame(read_raw_file(path), path)
    pd.testing.assert_frame_equal(typed.valid, text.valid)
    pd.testing.assert_frame_equal(typed.quarantined, text.quarantined)
    assert len(text.quarantined) > 10


def test_unlabelled_naive_and_fractional_times_and_extra_columns_agree(
    simulated: pd.DataFrame,
) -> None:
    frame = simulated.drop(columns=list(LABEL_COLUMNS))
    frame[TX_DATETIME] = frame[TX_DATETIME].dt.tz_localize(None)  # naive: read as UTC
    frame.loc[3, TX_DATETIME] += pd.Timedelta(milliseconds=250)
    frame.loc[4, TX_AMOUNT] = -1.0
    frame["note"] = [f"row {i}" if i % 7 else None for i in range(len(frame))]
    quarantined = assert_same_verdict(
        pa.Table.from_pandas(frame, preserve_index=False), typed_checks=True
    )
    assert quarantined["note"].tolist() == ["row 4"]
    assert "." in quarantined[TX_DATETIME].iloc[0], "fractions kept as the file's text has them"
    with pytest.raises(UnusableSource, match="TX_FRAUD, TX_FRAUD_SCENARIO"):
        validate_fraud_table(pa.Table.from_pandas(frame), "to score")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda f: f.astype({TX_AMOUNT: np.float32}), id="float32 amounts"),
        pytest.param(lambda f: f.astype({"CUSTOMER_ID": str}), id="ids as text"),
        pytest.param(lambda f: f.astype({TX_DATETIME: str}), id="times as text"),
        pytest.param(lambda f: f.assign(flag=True), id="a boolean column"),
    ],
)
def test_columns_of_other_types_are_checked_through_their_text(
    simulated: pd.DataFrame, change: object
) -> None:
    frame = simulated.copy()
    frame.loc[5, "CUSTOMER_ID"] = -3
    frame = change(frame)  # type: ignore[operator]
    quarantined = assert_same_verdict(
        pa.Table.from_pandas(frame, preserve_index=False), typed_checks=False
    )
    assert len(quarantined) >= 1


def test_a_file_in_time_order_and_the_same_rows_shuffled_give_the_same_valid_rows(
    simulated: pd.DataFrame,
) -> None:
    # The simulator's file is in time order with increasing ids: its rows are taken as
    # they are, without sorting or looking for repeats. Shuffled, they are sorted and
    # checked for repeated ids, to the same valid rows; a repeat of the last id in an
    # otherwise increasing file is still caught.
    in_order = validate_fraud_table(pa.Table.from_pandas(simulated, preserve_index=False), "x")
    shuffled = simulated.sample(frac=1.0, random_state=5)
    mixed = validate_fraud_table(pa.Table.from_pandas(shuffled, preserve_index=False), "x")
    assert in_order.quarantined.empty and mixed.quarantined.empty
    pd.testing.assert_frame_equal(in_order.valid, mixed.valid, check_exact=True)
    pd.testing.assert_frame_equal(
        in_order.valid, simulated.reset_index(drop=True), check_exact=True
    )
    repeated = pd.concat([simulated, simulated.iloc[[-1]]], ignore_index=True)
    checked = assert_same_verdict(
        pa.Table.from_pandas(repeated, preserve_index=False), typed_checks=True
    )
    assert checked[QUARANTINE_REASON].tolist() == ["TRANSACTION_ID: duplicate"]
