"""The fraud validation protocol: the Handbook's dates, card blocking and prequential folds."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from sources.fraud_simulator import simulate_transactions
from training.fraud_splits import (
    TimeSplit,
    handbook_split,
    known_compromised,
    model_selection_splits,
    prequential_splits,
    split_frame,
)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def transactions(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    """(time, customer, fraud) rows as a typed frame; ids in row order."""
    times, customers, frauds = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(len(rows), dtype=np.int64),
            "TX_DATETIME": pd.to_datetime(list(times), utc=True).astype("datetime64[ns, UTC]"),
            "CUSTOMER_ID": np.array(customers, dtype=np.int64),
            "TX_FRAUD": np.array(frauds, dtype=np.int64),
        }
    )


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    """Small simulated history from 2018-04-01 to 2018-08-18, covering the Handbook's split."""
    return simulate_transactions(300, 600, 140, "2018-04-01", seed=3)


def test_handbook_split_has_the_handbooks_dates() -> None:
    split = handbook_split()
    assert split == TimeSplit(
        train_start=utc("2018-07-25 00:00"),
        train_end=utc("2018-08-01 00:00"),
        test_start=utc("2018-08-08 00:00"),
        test_end=utc("2018-08-15 00:00"),
        delay=pd.Timedelta(days=7),
    )
    assert split.train_length == split.test_length == pd.Timedelta(days=7)


def test_split_bounds_are_half_open_utc() -> None:
    frame = transactions(
        [
            ("2018-07-24 23:59:59", 1, 0),  # before training
            ("2018-07-25 00:00:00", 2, 0),  # first instant of training: in
            ("2018-07-31 23:59:59", 3, 0),  # last second of training: in
            ("2018-08-01 00:00:00", 4, 0),  # delay: neither
            ("2018-08-07 23:59:59", 5, 0),  # delay: neither
            ("2018-08-08 00:00:00", 6, 0),  # first instant of test: in
            ("2018-08-14 23:59:59", 7, 0),  # last second of test: in
            ("2018-08-15 00:00:00", 8, 0),  # after the test
        ]
    )
    train, test = split_frame(frame, handbook_split())
    assert train["CUSTOMER_ID"].tolist() == [2, 3]
    assert test["CUSTOMER_ID"].tolist() == [6, 7]
    assert train.index.tolist() == [0, 1] and test.index.tolist() == [0, 1]


def test_naive_times_are_utc_and_inconsistent_splits_are_refused() -> None:
    naive = TimeSplit(
        pd.Timestamp("2018-07-25"),
        pd.Timestamp("2018-08-01"),
        pd.Timestamp("2018-08-08"),
        pd.Timestamp("2018-08-15"),
        pd.Timedelta(days=7),
    )
    assert naive == handbook_split()
    with pytest.raises(ValueError, match="delay"):
        TimeSplit(
            utc("2018-07-25"),
            utc("2018-08-01"),
            utc("2018-08-08"),
            utc("2018-08-15"),
            pd.Timedelta(days=6),
        )
    with pytest.raises(ValueError, match="train_start < train_end"):
        TimeSplit(
            utc("2018-08-01"),
            utc("2018-07-25"),
            utc("2018-08-08"),
            utc("2018-08-15"),
            pd.Timedelta(days=7),
        )
    with pytest.raises(ValueError, match="midnight"):
        handbook_split("2018-07-25 12:00")
    with pytest.raises(ValueError, match="at least"):
        handbook_split(test_days=0)


def test_naive_transaction_times_are_refused() -> None:
    frame = transactions([("2018-07-25 10:00", 1, 0)])
    frame["TX_DATETIME"] = frame["TX_DATETIME"].dt.tz_localize(None)
    with pytest.raises(ValueError, match="time-zone aware"):
        split_frame(frame, handbook_split())


def test_known_compromised_cards_are_removed_from_the_test_day_by_day() -> None:
    frame = transactions(
        [
            ("2018-07-20 10:00", 4, 1),  # customer 4: fraud before training, not counted
            ("2018-07-26 10:00", 1, 1),  # customer 1: fraud in training, known from day 0
            ("2018-07-27 10:00", 5, 0),  # customer 5: only genuine
            ("2018-08-01 09:00", 2, 1),  # customer 2: fraud on delay day 0, known from test day 1
            ("2018-08-07 09:00", 3, 1),  # customer 3: last delay day, known from day 7: never
            ("2018-08-08 10:00", 1, 0),
            ("2018-08-08 11:00", 2, 0),
            ("2018-08-08 12:00", 3, 1),
            ("2018-08-08 13:00", 4, 0),
            ("2018-08-08 14:00", 5, 0),
            ("2018-08-09 00:00", 2, 0),  # first instant of test day 1: customer 2 is blocked
            ("2018-08-14 23:00", 1, 0),
            ("2018-08-14 23:30", 3, 0),
        ]
    )
    split = handbook_split()
    _, test = split_frame(frame, split)
    assert list(zip(test["TX_DATETIME"].dt.day, test["CUSTOMER_ID"], strict=True)) == [
        (8, 2),
        (8, 3),
        (8, 4),
        (8, 5),
        (14, 3),
    ]
    _, everything = split_frame(frame, split, remove_known_compromised=False)
    assert len(everything) == 8
    assert known_compromised(frame, split, everything).tolist() == [
        True,  # customer 1, day 0
        False,
        False,
        False,
        False,
        True,  # customer 2, day 1
        True,  # customer 1, day 6
        False,
    ]


def test_a_test_longer_than_the_delay_learns_from_its_own_first_days() -> None:
    # Train 07-25, delay 07-26, test 07-27..29. A fraud on test day 0 (07-27) is known one
    # day later, so the card is blocked from the next test day that starts after that: day 2.
    frame = transactions(
        [
            ("2018-07-25 10:00", 9, 0),
            ("2018-07-27 10:00", 1, 1),  # test day 0
            ("2018-07-28 10:00", 1, 0),  # test day 1: not yet known
            ("2018-07-29 10:00", 1, 0),  # test day 2: blocked
        ]
    )
    split = handbook_split("2018-07-25", train_days=1, delay_days=1, test_days=3)
    _, test = split_frame(frame, split)
    assert test["TX_DATETIME"].dt.day.tolist() == [27, 28]


def test_card_blocking_matches_the_handbooks_day_loop(simulated: pd.DataFrame) -> None:
    """The Handbook's own procedure, day by day on TX_TIME_DAYS, as the reference."""
    split = handbook_split()
    train_days, delay_days, test_days = 7, 7, 7
    train = simulated[
        (simulated["TX_DATETIME"] >= split.train_start)
        & (simulated["TX_DATETIME"] < split.train_end)
    ]
    known = set(train.loc[train["TX_FRAUD"] == 1, "CUSTOMER_ID"])
    first_day = train["TX_TIME_DAYS"].min()
    kept = []
    for day in range(test_days):
        today = simulated[simulated["TX_TIME_DAYS"] == first_day + train_days + delay_days + day]
        newly_known = simulated[simulated["TX_TIME_DAYS"] == first_day + train_days + day - 1]
        known |= set(newly_known.loc[newly_known["TX_FRAUD"] == 1, "CUSTOMER_ID"])
        kept.append(today[~today["CUSTOMER_ID"].isin(known)])
    expected = pd.concat(kept)["TRANSACTION_ID"].tolist()

    _, test = split_frame(simulated, split)
    assert test["TRANSACTION_ID"].tolist() == expected
    _, everything = split_frame(simulated, split, remove_known_compromised=False)
    assert 0 < len(test) < len(everything)  # the rule does bite on simulated data


def test_prequential_folds_slide_back_one_test_period_each(simulated: pd.DataFrame) -> None:
    folds = prequential_splits(
        simulated, test_start="2018-08-08", train_days=7, delay_days=7, test_days=7, n_folds=4
    )
    assert [fold.test_start for fold in folds] == [
        utc("2018-08-08"),
        utc("2018-08-01"),
        utc("2018-07-25"),
        utc("2018-07-18"),
    ]
    assert folds[0] == handbook_split()
    assert folds[3].train_start == utc("2018-07-04")
    for fold in folds:
        # Train strictly before the test, with the delay between: never the future.
        assert fold.train_end + pd.Timedelta(days=7) == fold.test_start
        assert fold.train_length == fold.test_length == pd.Timedelta(days=7)
        train, test = split_frame(simulated, fold)
        assert train["TX_DATETIME"].max() < test["TX_DATETIME"].min()
        assert not set(train["TRANSACTION_ID"]) & set(test["TRANSACTION_ID"])
    # The test periods tile the weeks before test_end without overlapping.
    for newer, older in itertools.pairwise(folds):
        assert older.test_end == newer.test_start


def test_prequential_folds_need_data_covering_them(simulated: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="cover"):
        prequential_splits(simulated, test_start="2018-04-20", n_folds=2)
    with pytest.raises(ValueError, match="cover"):
        prequential_splits(simulated, test_start="2018-08-15")
    with pytest.raises(ValueError, match="n_folds"):
        prequential_splits(simulated, test_start="2018-08-08", n_folds=0)


def test_model_selection_folds_end_with_the_final_training(simulated: pd.DataFrame) -> None:
    final = handbook_split()
    folds = model_selection_splits(simulated, final, n_folds=4)
    # The Handbook's choice: the newest validation week is the final training week.
    assert (folds[0].test_start, folds[0].test_end) == (final.train_start, final.train_end)
    assert folds[0].train_start == utc("2018-07-11")
    assert all(fold.test_end <= final.train_end for fold in folds)
    assert all(fold.delay == final.delay for fold in folds)
