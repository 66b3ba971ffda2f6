"""The training split on its own: the test rows are the most recent, sizes, determinism and
the fallback to a stratified random split when time cannot order the rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.datasets import Split, as_matrix, data_fingerprint, split_train_test


def _frame(rows: int = 100, *, seed: int = 0) -> pd.DataFrame:
    """`rows` customers observed on distinct, shuffled days, a third of them churned."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2024-01-01", periods=rows, freq="D", tz="UTC")
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(rows)],
            "event_timestamp": rng.permutation(days),
            "x": rng.normal(size=rows),
            "churn": (np.arange(rows) % 3 == 0).astype(int),
        }
    )


def _split(frame: pd.DataFrame, test_size: float = 0.2, seed: int = 42) -> Split:
    return split_train_test(
        frame, label="churn", timestamp="event_timestamp", test_size=test_size, seed=seed
    )


def test_no_test_row_is_earlier_than_any_train_row() -> None:
    split = _split(_frame())
    assert split.strategy == "time_ordered"
    assert split.train["event_timestamp"].max() < split.test["event_timestamp"].min()
    assert split.cutoff is not None
    assert (split.train["event_timestamp"] <= split.cutoff).all()
    assert (split.test["event_timestamp"] > split.cutoff).all()


@pytest.mark.parametrize(("rows", "test_size", "expected_test"), [(100, 0.2, 20), (50, 0.3, 15)])
def test_the_most_recent_share_is_held_out(rows: int, test_size: float, expected_test: int) -> None:
    frame = _frame(rows)
    split = _split(frame, test_size=test_size)
    assert len(split.test) == expected_test and len(split.train) == rows - expected_test
    newest = frame.nlargest(expected_test, "event_timestamp")["customer_id"]
    assert set(split.test["customer_id"]) == set(newest)
    # Every row lands in exactly one side, with its values.
    both = pd.concat([split.train, split.test]).sort_values("customer_id", ignore_index=True)
    pd.testing.assert_frame_equal(both, frame.sort_values("customer_id", ignore_index=True))
    assert list(split.train.index) == list(range(len(split.train)))
    assert list(split.test.index) == list(range(len(split.test)))


def test_rows_sharing_the_cutoff_stay_together_in_train() -> None:
    frame = _frame(10)
    frame["event_timestamp"] = pd.Timestamp("2024-01-01", tz="UTC")
    frame.loc[8:, "event_timestamp"] = pd.Timestamp("2024-02-01", tz="UTC")
    split = _split(frame, test_size=0.5)
    # The cutoff falls on the first day: its eight rows are train, the two later ones test.
    assert split.strategy == "time_ordered"
    assert sorted(split.test["customer_id"]) == ["c8", "c9"]
    assert split.cutoff == pd.Timestamp("2024-01-01", tz="UTC")


def test_string_timestamps_are_ordered_as_times() -> None:
    frame = _frame(20)
    frame["event_timestamp"] = frame["event_timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    split = _split(frame, test_size=0.25)
    assert split.strategy == "time_ordered"
    assert (
        pd.to_datetime(split.train["event_timestamp"]).max()
        < pd.to_datetime(split.test["event_timestamp"]).min()
    )


def test_the_split_is_deterministic() -> None:
    first, second = _split(_frame()), _split(_frame())
    pd.testing.assert_frame_equal(first.train, second.train)
    pd.testing.assert_frame_equal(first.test, second.test)


def test_a_single_snapshot_gets_a_stratified_random_split() -> None:
    frame = _frame(90)
    frame["event_timestamp"] = pd.Timestamp("2024-01-01", tz="UTC")
    split = _split(frame, test_size=0.2, seed=3)
    assert split.strategy == "stratified_random" and split.cutoff is None
    assert len(split.test) == 18 and len(split.train) == 72
    # Stratified: both sides keep the churn rate of the whole (a third).
    assert split.test["churn"].mean() == pytest.approx(1 / 3)
    assert split.train["churn"].mean() == pytest.approx(1 / 3)
    assert list(split.test.index) == list(range(18))
    again = _split(frame, test_size=0.2, seed=3)
    pd.testing.assert_frame_equal(split.test, again.test)
    other = _split(frame, test_size=0.2, seed=4)
    assert set(other.test["customer_id"]) != set(split.test["customer_id"])


def test_times_that_leave_one_side_empty_fall_back_to_a_random_split() -> None:
    # 99 rows at the later moment: the cutoff is that moment and nothing is after it.
    frame = _frame(100)
    frame["event_timestamp"] = pd.Timestamp("2024-02-01", tz="UTC")
    frame.loc[0, "event_timestamp"] = pd.Timestamp("2024-01-01", tz="UTC")
    split = _split(frame, test_size=0.2)
    assert split.strategy == "stratified_random" and split.cutoff is None
    assert len(split.test) == 20


def test_fingerprint_changes_with_values_and_names_not_with_the_index() -> None:
    frame = _frame(10)
    assert data_fingerprint(frame) == data_fingerprint(frame.set_index(frame.index + 5))
    changed = frame.copy()
    changed.loc[3, "x"] += 1
    assert data_fingerprint(changed) != data_fingerprint(frame)
    assert data_fingerprint(frame.rename(columns={"x": "y"})) != data_fingerprint(frame)


def test_as_matrix_is_float32_in_the_models_order() -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": [3.5, 4.5]})
    matrix = as_matrix(frame, ("b", "a"))
    assert matrix.dtype == np.float32
    assert matrix.tolist() == [[3.5, 1.0], [4.5, 2.0]]


def test_the_defaults_hold_out_a_fifth_and_seed_42() -> None:
    frame = _frame(100)
    split = split_train_test(frame, label="churn", timestamp="event_timestamp")
    assert len(split.test) == 20
    snapshot = frame.assign(event_timestamp=pd.Timestamp("2024-01-01", tz="UTC"))
    default = split_train_test(snapshot, label="churn", timestamp="event_timestamp")
    pd.testing.assert_frame_equal(default.test, _split(snapshot, seed=42).test)
    assert len(default.test) == 20


def test_offsets_are_ordered_by_the_instant_they_name() -> None:
    frame = _frame(4)
    # 10:00+02:00 is 08:00 UTC: the earliest, though its wall-clock time is the latest.
    frame["event_timestamp"] = [
        "2024-01-01T10:00:00+02:00",
        "2024-01-01T09:00:00+00:00",
        "2024-01-01T09:30:00+00:00",
        "2024-01-01T09:45:00+00:00",
    ]
    split = _split(frame, test_size=0.25)
    assert split.strategy == "time_ordered"
    assert list(split.test["customer_id"]) == ["c3"]
    assert "c0" in set(split.train["customer_id"])


def test_a_single_newest_row_is_enough_for_a_time_split() -> None:
    frame = _frame(5)
    frame["event_timestamp"] = pd.Timestamp("2024-01-01", tz="UTC")
    frame.loc[4, "event_timestamp"] = pd.Timestamp("2024-01-02", tz="UTC")
    split = _split(frame, test_size=0.2)
    assert split.strategy == "time_ordered" and list(split.test["customer_id"]) == ["c4"]


def test_the_random_split_keeps_the_columns_and_renumbers_the_rows() -> None:
    frame = _frame(30).assign(event_timestamp=pd.Timestamp("2024-01-01", tz="UTC"))
    split = _split(frame)
    assert list(split.train.columns) == list(split.test.columns) == list(frame.columns)
    assert list(split.train.index) == list(range(24))
