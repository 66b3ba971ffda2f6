"""Loading churn files as published, and the contract's verdict on what was loaded.

Covers `load_churn_file` (round trips, the added snapshot time, unusable files) and the
row-level checks of `validate_churn_frame` on hand-made rows in the public file's format.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.churn_schema import RAW_COLUMNS, TIMESTAMP_COLUMN, validate_churn_frame
from features.quarantine import QUARANTINE_REASON, QUARANTINE_VALUE, UnusableSource
from sources.churn_files import load_churn_file
from sources.churn_simulator import simulate_customers, write_customers

HEADER = ",".join(RAW_COLUMNS)
# The first rows of the public file, and a tenure-0 customer with its blank TotalCharges.
PUBLIC_ROWS = {
    "7590-VHVEG": "7590-VHVEG,Female,0,Yes,No,1,No,No phone service,DSL,No,Yes,No,No,No,No,"
    "Month-to-month,Yes,Electronic check,29.85,29.85,No",
    "5575-GNVDE": "5575-GNVDE,Male,0,No,No,34,Yes,No,DSL,Yes,No,Yes,No,No,No,"
    "One year,No,Mailed check,56.95,1889.5,No",
    "3668-QPYBK": "3668-QPYBK,Male,0,No,No,2,Yes,No,DSL,Yes,Yes,No,No,No,No,"
    "Month-to-month,Yes,Mailed check,53.85,108.15,Yes",
    "7795-CFOCW": "7795-CFOCW,Male,0,No,No,45,No,No phone service,DSL,Yes,No,Yes,Yes,No,No,"
    "One year,No,Bank transfer (automatic),42.3,1840.75,No",
    "4472-LVYGI": "4472-LVYGI,Female,0,Yes,Yes,0,No,No phone service,DSL,Yes,No,Yes,Yes,Yes,No,"
    "Two year,Yes,Bank transfer (automatic),52.55, ,No",
}


def write_public_style_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def public_row(customer_id: str, **changes: str) -> str:
    """A public row with some fields replaced, e.g. public_row("5575-GNVDE", tenure="abc")."""
    values = dict(zip(RAW_COLUMNS, PUBLIC_ROWS[customer_id].split(","), strict=True))
    return ",".join({**values, **changes}.values())


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_loader_round_trips_simulator_output(tmp_path: Path, suffix: str) -> None:
    frame = simulate_customers(3000, seed=42)
    assert (frame["TotalCharges"] == " ").any(), "want blank TotalCharges in the round trip"
    loaded = load_churn_file(write_customers(frame, tmp_path / f"customers{suffix}"))
    pd.testing.assert_frame_equal(loaded, frame)
    assert len(validate_churn_frame(loaded, "round trip").quarantined) == 0


def test_public_rows_load_as_published_strings(tmp_path: Path) -> None:
    path = write_public_style_csv(tmp_path / "telco.csv", list(PUBLIC_ROWS.values()))
    loaded = load_churn_file(path, as_of=datetime(2024, 6, 1, tzinfo=UTC))
    assert list(loaded.columns) == [*RAW_COLUMNS, TIMESTAMP_COLUMN]
    by_id = loaded.set_index("customerID")
    assert by_id.loc["4472-LVYGI", "TotalCharges"] == " "
    assert by_id.loc["7795-CFOCW", "MonthlyCharges"] == "42.3"
    assert by_id.loc["5575-GNVDE", "SeniorCitizen"] == "0"
    result = validate_churn_frame(loaded, path)
    assert len(result.valid) == len(PUBLIC_ROWS)
    assert len(result.quarantined) == 0
    new_customer = result.valid.set_index("customerID").loc["4472-LVYGI"]
    assert new_customer["tenure"] == 0
    assert np.isnan(new_customer["TotalCharges"])


def test_a_byte_order_mark_does_not_rename_the_first_column(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\n{PUBLIC_ROWS['5575-GNVDE']}\n".encode())
    assert load_churn_file(path).columns[0] == "customerID"


def test_typed_parquet_is_turned_into_the_csv_strings(tmp_path: Path) -> None:
    frame = simulate_customers(5, seed=1).drop(columns=[TIMESTAMP_COLUMN])
    typed = frame.assign(
        SeniorCitizen=frame["SeniorCitizen"].astype(int),
        tenure=[34, 0, 2, 45, 72],
        MonthlyCharges=[56.95, 20.0, 53.85, 42.3, 118.75],
        TotalCharges=[1889.5, np.nan, 108.15, 1840.75, 8684.8],
        event_timestamp=pd.to_datetime(["2025-01-02T03:04:05Z"] * 5, utc=True),
    )
    path = tmp_path / "typed.parquet"
    typed.to_parquet(path, index=False)
    loaded = load_churn_file(path)
    assert list(loaded["tenure"]) == ["34", "0", "2", "45", "72"]
    assert list(loaded["MonthlyCharges"]) == ["56.95", "20", "53.85", "42.3", "118.75"]
    assert list(loaded["TotalCharges"]) == ["1889.5", "", "108.15", "1840.75", "8684.8"]
    assert set(loaded[TIMESTAMP_COLUMN]) == {"2025-01-02T03:04:05Z"}
    assert loaded["SeniorCitizen"].isin(["0", "1"]).all()


# --- the snapshot time --------------------------------------------------------------------------


def test_missing_event_timestamp_is_filled_with_as_of(tmp_path: Path) -> None:
    path = write_public_style_csv(tmp_path / "telco.csv", list(PUBLIC_ROWS.values()))
    loaded = load_churn_file(path, as_of=datetime(2024, 6, 1, 12, 30, tzinfo=UTC))
    assert set(loaded[TIMESTAMP_COLUMN]) == {"2024-06-01T12:30:00Z"}
    naive = load_churn_file(path, as_of=datetime(2024, 6, 1, 12, 30))
    assert set(naive[TIMESTAMP_COLUMN]) == {"2024-06-01T12:30:00Z"}


def test_without_as_of_the_snapshot_time_is_the_file_modification_time(tmp_path: Path) -> None:
    path = write_public_style_csv(tmp_path / "telco.csv", list(PUBLIC_ROWS.values()))
    modified = datetime(2023, 9, 14, 7, 5, 3, tzinfo=UTC).timestamp()
    os.utime(path, (modified, modified))
    loaded = load_churn_file(path)
    assert set(loaded[TIMESTAMP_COLUMN]) == {"2023-09-14T07:05:03Z"}


def test_a_file_with_its_own_event_timestamp_keeps_it(tmp_path: Path) -> None:
    frame = simulate_customers(10, seed=2)
    path = write_customers(frame, tmp_path / "customers.csv")
    loaded = load_churn_file(path, as_of=datetime(2030, 1, 1, tzinfo=UTC))
    assert loaded[TIMESTAMP_COLUMN].equals(frame[TIMESTAMP_COLUMN])


# --- unusable files ----------------------------------------------------------------------------


def assert_unusable(path: Path, problem_words: str) -> None:
    with pytest.raises(UnusableSource) as raised:
        load_churn_file(path)
    assert raised.value.path == str(path)
    assert path.name in str(raised.value)
    assert problem_words in raised.value.problem


def test_missing_file_is_unusable(tmp_path: Path) -> None:
    assert_unusable(tmp_path / "absent.csv", "not found")


def test_empty_file_is_unusable(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert_unusable(path, "empty file")


def test_header_only_file_is_unusable(tmp_path: Path) -> None:
    assert_unusable(write_public_style_csv(tmp_path / "header.csv", []), "no data rows")


def test_header_only_parquet_is_unusable(tmp_path: Path) -> None:
    path = tmp_path / "header.parquet"
    simulate_customers(3, seed=1).iloc[:0].to_parquet(path, index=False)
    assert_unusable(path, "no data rows")


def test_binary_garbage_is_unusable(tmp_path: Path) -> None:
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes(range(256)) * 8)
    assert_unusable(path, "binary")


def test_non_utf8_text_is_unusable(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"customerID,gender\n\xff\xfe\xfa,Male\n")
    assert_unusable(path, "not UTF-8")


def test_corrupt_parquet_is_unusable(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.parquet"
    path.write_text(f"{HEADER}\n{PUBLIC_ROWS['5575-GNVDE']}\n")
    assert_unusable(path, "not a readable parquet file")


def test_unsupported_suffix_is_unusable(tmp_path: Path) -> None:
    path = tmp_path / "customers.json"
    path.write_text("[]")
    assert_unusable(path, "unsupported file type '.json'")


def test_a_directory_is_unusable(tmp_path: Path) -> None:
    path = tmp_path / "folder.csv"
    path.mkdir()
    assert_unusable(path, "not a regular file")


# --- what the contract makes of loaded rows ------------------------------------------------------


def test_a_missing_column_loads_but_the_contract_names_it(tmp_path: Path) -> None:
    frame = simulate_customers(10, seed=4).drop(columns=["TechSupport"])
    path = write_customers(frame, tmp_path / "no_tech_support.csv")
    loaded = load_churn_file(path)
    assert "TechSupport" not in loaded.columns
    with pytest.raises(UnusableSource, match=r"missing column.*TechSupport") as raised:
        validate_churn_frame(loaded, path)
    assert raised.value.path == str(path)


def test_bad_rows_are_quarantined_with_their_reason_and_good_rows_survive(tmp_path: Path) -> None:
    rows = [
        *PUBLIC_ROWS.values(),
        public_row("5575-GNVDE", customerID="1111-AAAAA", Contract="Three year"),
        public_row("5575-GNVDE", customerID="2222-BBBBB", tenure="abc"),
        public_row("3668-QPYBK"),  # the same customer twice
        public_row("5575-GNVDE", customerID="3333-CCCCC", tenure="5", TotalCharges=" "),
    ]
    path = write_public_style_csv(tmp_path / "mixed.csv", rows)
    result = validate_churn_frame(load_churn_file(path), path)

    assert sorted(result.valid["customerID"]) == sorted(PUBLIC_ROWS)
    by_id = result.quarantined.set_index("customerID")
    reasons = by_id[QUARANTINE_REASON].to_dict()
    values = by_id[QUARANTINE_VALUE].to_dict()
    assert set(reasons) == {"1111-AAAAA", "2222-BBBBB", "3668-QPYBK", "3333-CCCCC"}
    assert reasons["1111-AAAAA"].startswith("Contract: not one of")
    assert values["1111-AAAAA"] == "Three year"
    assert reasons["2222-BBBBB"].startswith("tenure: not a whole number")
    assert values["2222-BBBBB"] == "abc"
    assert reasons["3668-QPYBK"] == "customerID: duplicate observation"
    assert values["3668-QPYBK"] == "3668-QPYBK"
    assert reasons["3333-CCCCC"] == "TotalCharges: blank for a customer with tenure > 0"
    # The first of the duplicated pair is kept; only the repeat is quarantined.
    assert (result.valid["customerID"] == "3668-QPYBK").sum() == 1
    assert result.counts["rows_in"] == len(rows)


# --- the real public file -------------------------------------------------------------------------


def test_the_public_telco_file_loads_and_validates_completely(public_telco_csv: Path) -> None:
    loaded = load_churn_file(public_telco_csv, as_of=datetime(2024, 1, 1, tzinfo=UTC))
    result = validate_churn_frame(loaded, public_telco_csv)
    assert len(result.quarantined) == 0, result.quarantined[QUARANTINE_REASON].value_counts()
    assert len(result.valid) == 7043
    assert result.valid["TotalCharges"].isna().sum() == (result.valid["tenure"] == 0).sum() == 11
