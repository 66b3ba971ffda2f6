"""Loading card-transaction files, and the fraud contract's verdict on what was loaded.

Covers `load_fraud_file` (round trips of simulator output, files exported from the
handbook's simulator with their index column) and the row checks of `validate_fraud_frame`
on hand-made rows in the handbook's format.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.fraud_schema import (
    LABEL_COLUMNS,
    RAW_COLUMNS,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    validate_fraud_frame,
)
from features.quarantine import QUARANTINE_REASON, QUARANTINE_VALUE, UnusableSource
from sources.fraud_files import load_fraud_file
from sources.fraud_simulator import simulate_transactions, write_transactions

SMALL = (300, 600, 40)  # customers, terminals, days
HEADER = ",".join(RAW_COLUMNS)
# Rows as the handbook's files spell them: a genuine one, one per fraud scenario, and a
# scenario-3 amount with the float noise the handbook's x5 leaves (61.699999999999996).
HANDBOOK_ROWS = {
    0: "0,2018-04-01 00:00:31,596,3156,57.16,31,0,0,0",
    1: "1,2018-04-01 00:02:10,4961,3412,81.51,130,0,0,0",
    2: "2,2018-04-01 00:07:56,2,1365,146.00,476,0,0,0",
    3: "3,2018-04-01 00:09:29,4128,8737,226.40,569,0,1,1",
    4: "4,2018-04-02 10:09:23,927,9906,35.12,122963,1,1,2",
    5: "5,2018-04-03 12:00:00,1534,5054,61.699999999999996,216000,2,1,3",
}


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return simulate_transactions(*SMALL, seed=42, scenario="new_fraud_pattern")


def handbook_csv(path: Path, rows: list[str], *, header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def handbook_row(number: int, **changes: str) -> str:
    """A handbook row with some fields replaced, e.g. handbook_row(0, TX_AMOUNT="-1")."""
    values = dict(zip(RAW_COLUMNS, HANDBOOK_ROWS[number].split(","), strict=True))
    return ",".join({**values, **changes}.values())


def validate_rows(tmp_path: Path, rows: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = handbook_csv(tmp_path / "tx.csv", rows)
    result = validate_fraud_frame(load_fraud_file(path), path)
    return result.valid, result.quarantined


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_simulator_output_round_trips_and_passes_the_contract(
    tmp_path: Path, simulated: pd.DataFrame, suffix: str
) -> None:
    assert set(simulated["TX_FRAUD_SCENARIO"]) == {0, 1, 2, 3, 4}
    loaded = load_fraud_file(write_transactions(simulated, tmp_path / f"tx{suffix}"))
    assert list(loaded.columns) == list(RAW_COLUMNS)
    assert all(loaded[column].map(type).eq(str).all() for column in loaded.columns)
    result = validate_fraud_frame(loaded, suffix)
    assert len(result.quarantined) == 0
    pd.testing.assert_frame_equal(result.valid, simulated)


def test_handbook_rows_load_and_validate(tmp_path: Path) -> None:
    valid, quarantined = validate_rows(tmp_path, list(HANDBOOK_ROWS.values()))
    assert len(quarantined) == 0
    assert len(valid) == len(HANDBOOK_ROWS)
    first = valid.iloc[0]
    assert first[TX_DATETIME] == pd.Timestamp("2018-04-01 00:00:31", tz="UTC")
    assert first[TX_AMOUNT] == 57.16
    assert valid.set_index(TRANSACTION_ID).loc[5, TX_AMOUNT] == 61.7, "rounded to cents"
    assert valid[TX_DATETIME].dtype == "datetime64[ns, UTC]"


def test_the_handbooks_index_column_is_dropped(tmp_path: Path) -> None:
    # pandas' to_csv() writes the index first, under an empty name.
    rows = [f"{i},{row}" for i, row in enumerate(HANDBOOK_ROWS.values())]
    path = handbook_csv(tmp_path / "exported.csv", rows, header="," + HEADER)
    loaded = load_fraud_file(path)
    assert list(loaded.columns) == list(RAW_COLUMNS)
    assert len(validate_fraud_frame(loaded, path).valid) == len(HANDBOOK_ROWS)


def test_an_unnamed_index_column_in_parquet_is_dropped(
    tmp_path: Path, simulated: pd.DataFrame
) -> None:
    exported = simulated.head(50).reset_index().rename(columns={"index": "Unnamed: 0"})
    path = tmp_path / "exported.parquet"
    exported.to_parquet(path, index=False)
    loaded = load_fraud_file(path)
    assert list(loaded.columns) == list(RAW_COLUMNS)
    assert len(validate_fraud_frame(loaded, path).quarantined) == 0


def test_valid_rows_are_sorted_by_time_then_id(tmp_path: Path) -> None:
    same_time = handbook_row(1, TRANSACTION_ID="9", TX_DATETIME="2018-04-01 00:00:31")
    rows = [HANDBOOK_ROWS[4], HANDBOOK_ROWS[2], same_time, HANDBOOK_ROWS[0]]
    valid, _ = validate_rows(tmp_path, rows)
    assert valid[TRANSACTION_ID].tolist() == [0, 9, 2, 4]


def test_labels_are_optional_for_data_to_score(tmp_path: Path) -> None:
    unlabelled = [c for c in RAW_COLUMNS if c not in LABEL_COLUMNS]
    frame = pd.read_csv(handbook_csv(tmp_path / "tx.csv", list(HANDBOOK_ROWS.values())), dtype=str)[
        unlabelled
    ]
    result = validate_fraud_frame(frame, "to score", require_label=False)
    assert list(result.valid.columns) == unlabelled
    assert len(result.valid) == len(HANDBOOK_ROWS)
    with pytest.raises(UnusableSource, match="TX_FRAUD, TX_FRAUD_SCENARIO"):
        validate_fraud_frame(frame, "to score")


# --- the contract's row checks ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "rule", "value"),
    [
        (handbook_row(0, TX_AMOUNT="-5.00"), "TX_AMOUNT: not a number in (0, 100000)", "-5.00"),
        (handbook_row(0, TX_AMOUNT="0"), "TX_AMOUNT: not a number in (0, 100000)", "0"),
        (handbook_row(0, TX_AMOUNT="250000"), "TX_AMOUNT: not a number in (0, 100000)", "250000"),
        (handbook_row(0, TX_AMOUNT=""), "TX_AMOUNT: not a number in (0, 100000)", ""),
        (handbook_row(0, TX_DATETIME="2018-04-31 10:00:00"), "TX_DATETIME: not a timestamp", None),
        (handbook_row(0, TX_DATETIME="yesterday"), "TX_DATETIME: not a timestamp", "yesterday"),
        (handbook_row(0, CUSTOMER_ID="-1"), "CUSTOMER_ID: not a non-negative integer", "-1"),
        (handbook_row(0, TERMINAL_ID="7.5"), "TERMINAL_ID: not a non-negative integer", "7.5"),
        (handbook_row(0, TRANSACTION_ID="abc"), "TRANSACTION_ID: not a non-negative integer", None),
        (handbook_row(0, TX_TIME_DAYS="1"), "TX_TIME_DAYS: not TX_TIME_SECONDS // 86400", "1"),
        (
            handbook_row(4, TX_TIME_SECONDS="86399"),
            "TX_TIME_DAYS: not TX_TIME_SECONDS // 86400",
            None,
        ),
        (handbook_row(0, TX_FRAUD="2"), "TX_FRAUD: not 0 or 1", "2"),
        (handbook_row(4, TX_FRAUD="0"), "TX_FRAUD_SCENARIO: not 0 exactly when TX_FRAUD is 0", "2"),
        (handbook_row(0, TX_FRAUD="1"), "TX_FRAUD_SCENARIO: not 0 exactly when TX_FRAUD is 0", "0"),
        (
            handbook_row(4, TX_FRAUD_SCENARIO="5"),
            "TX_FRAUD_SCENARIO: not one of [0, 1, 2, 3, 4]",
            "5",
        ),
    ],
)
def test_a_bad_row_is_quarantined_with_its_rule(
    tmp_path: Path, row: str, rule: str, value: str | None
) -> None:
    good = [HANDBOOK_ROWS[n] for n in (1, 2, 3)]
    valid, quarantined = validate_rows(tmp_path, [*good, row])
    assert valid[TRANSACTION_ID].tolist() == [1, 2, 3], "good rows survive"
    assert len(quarantined) == 1
    assert quarantined.loc[0, QUARANTINE_REASON] == rule
    if value is not None:
        assert quarantined.loc[0, QUARANTINE_VALUE] == value
    # The quarantined row is kept as read.
    assert ",".join(quarantined.loc[0, list(RAW_COLUMNS)]) == row


def test_a_repeated_transaction_id_is_quarantined_once(tmp_path: Path) -> None:
    repeated = handbook_row(1, TRANSACTION_ID="0")
    valid, quarantined = validate_rows(tmp_path, [HANDBOOK_ROWS[0], repeated, HANDBOOK_ROWS[2]])
    assert valid[TRANSACTION_ID].tolist() == [0, 2]
    assert quarantined[QUARANTINE_REASON].tolist() == ["TRANSACTION_ID: duplicate"]
    assert quarantined.loc[0, "CUSTOMER_ID"] == "4961", "the later row is the one held back"


def test_counts_summarise_the_verdict(tmp_path: Path) -> None:
    rows = [
        *HANDBOOK_ROWS.values(),
        handbook_row(0, TRANSACTION_ID="10", TX_AMOUNT="-1"),
        handbook_row(0, TRANSACTION_ID="11", TX_AMOUNT="-2"),
        handbook_row(0, TRANSACTION_ID="12", TX_DATETIME="not a date"),
    ]
    path = handbook_csv(tmp_path / "tx.csv", rows)
    counts = validate_fraud_frame(load_fraud_file(path), path).counts
    assert counts["rows_in"] == len(rows)
    assert counts["rows_valid"] == len(HANDBOOK_ROWS)
    assert counts["quarantined[TX_AMOUNT: not a number in (0, 100000)]"] == 2
    assert counts["quarantined[TX_DATETIME: not a timestamp]"] == 1


# --- unusable files -------------------------------------------------------------------------


def test_a_missing_column_makes_the_file_unusable(tmp_path: Path) -> None:
    header = HEADER.replace("TERMINAL_ID,", "")
    rows = [row.replace(",3156,", ",") for row in [HANDBOOK_ROWS[0]]]
    path = handbook_csv(tmp_path / "tx.csv", rows, header=header)
    with pytest.raises(UnusableSource, match="missing column\\(s\\) TERMINAL_ID") as caught:
        validate_fraud_frame(load_fraud_file(path), path)
    assert caught.value.path == str(path)


def test_a_frame_with_no_rows_is_unusable() -> None:
    with pytest.raises(UnusableSource, match="no data rows"):
        validate_fraud_frame(pd.DataFrame(columns=list(RAW_COLUMNS)), "empty")


def test_a_header_only_file_is_unusable(tmp_path: Path) -> None:
    with pytest.raises(UnusableSource, match="no data rows"):
        load_fraud_file(handbook_csv(tmp_path / "tx.csv", []))
