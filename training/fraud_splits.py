"""Fraud validation protocol: train, delay and test periods in time, after the Fraud Handbook.

Follows the "Validation strategies" chapter of the Fraud Detection Handbook (Le Borgne et
al.), written as our own code:

- A split is a block of three periods: train on [train_start, train_end), leave `delay`
  out, because the labels of the most recent transactions are not known yet (frauds are
  reported days or weeks later), and test on [test_start, test_end). All bounds are UTC
  and half-open. `handbook_split` builds the Handbook's block: 7 + 7 + 7 days from
  2018-07-25, so test is 2018-08-08 to 2018-08-15 (exclusive).
- Cards already known to be compromised are blocked in production, so their later
  transactions are never scored: `split_frame` removes them from the test set (see
  `known_compromised`, which states the rule day by day).
- Model selection uses prequential validation (`prequential_splits`): the same block slid
  back in time by one test period per fold. Random K-fold would train on the future and
  leak a compromised card's frauds from one fold into another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeAlias

import numpy as np
import pandas as pd

from features.fraud_schema import CUSTOMER_ID, TX_DATETIME, TX_FRAUD

DAY = pd.Timedelta(days=1)
HANDBOOK_START = "2018-07-25"
HANDBOOK_TRAIN_DAYS = 7
HANDBOOK_DELAY_DAYS = 7
HANDBOOK_TEST_DAYS = 7
HANDBOOK_N_FOLDS = 4

# pd.Timestamp is a datetime.
TimeLike: TypeAlias = str | date | datetime


@dataclass(frozen=True)
class TimeSplit:
    """Train on [train_start, train_end), wait `delay`, test on [test_start, test_end); UTC.

    `delay` is the gap between the end of training and the start of the test: it must
    equal `test_start - train_end`, and it is also how long a fraud takes to become known
    (see `known_compromised`). A naive time is taken as UTC.
    """

    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    delay: pd.Timedelta

    def __post_init__(self) -> None:
        for name in ("train_start", "train_end", "test_start", "test_end"):
            # Frozen: normalising the bounds to UTC nanoseconds is the one write allowed.
            object.__setattr__(self, name, _utc(getattr(self, name)))
        object.__setattr__(self, "delay", pd.Timedelta(self.delay))
        if not self.train_start < self.train_end <= self.test_start < self.test_end:
            raise ValueError(
                "a split needs train_start < train_end <= test_start < test_end, got "
                f"{self.train_start}, {self.train_end}, {self.test_start}, {self.test_end}"
            )
        if self.test_start - self.train_end != self.delay:
            raise ValueError(
                f"delay {self.delay} is not test_start - train_end "
                f"({self.test_start - self.train_end})"
            )

    @property
    def train_length(self) -> pd.Timedelta:
        return self.train_end - self.train_start

    @property
    def test_length(self) -> pd.Timedelta:
        return self.test_end - self.test_start


def handbook_split(
    start: TimeLike = HANDBOOK_START,
    train_days: int = HANDBOOK_TRAIN_DAYS,
    delay_days: int = HANDBOOK_DELAY_DAYS,
    test_days: int = HANDBOOK_TEST_DAYS,
) -> TimeSplit:
    """The Handbook's block: train `train_days` days from `start` (midnight UTC), skip
    `delay_days`, test the next `test_days`.

    The defaults train on 2018-07-25..31 and test on 2018-08-08..14, as in the Handbook.
    """
    _check_days(train_days=train_days, delay_days=delay_days, test_days=test_days)
    train_start = _utc(start)
    if train_start != train_start.normalize():
        # Days are the protocol's unit (per-day card precision, daily card blocking): a
        # block starting mid-day would cut every one of them in two.
        raise ValueError(f"start must be a midnight UTC, got {train_start}")
    return _block(train_start, train_days * DAY, delay_days * DAY, test_days * DAY)


def describe_split(split: TimeSplit) -> str:
    """The split's training dates, delay and test dates, in one line (an MLflow param)."""
    return (
        f"train {split.train_start:%Y-%m-%d}..{split.train_end:%Y-%m-%d}, "
        f"delay {split.delay.days}d, test {split.test_start:%Y-%m-%d}..{split.test_end:%Y-%m-%d}"
    )


def split_frame(
    transactions: pd.DataFrame,
    split: TimeSplit,
    *,
    remove_known_compromised: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (train, test) transactions of `split`, selected by TX_DATETIME, indexes reset.

    With `remove_known_compromised` (the Handbook's protocol, the default) the test set
    loses the transactions of cards already known to be compromised on their day, as
    `known_compromised` defines it; without it, every transaction in the period is kept.
    """
    stamps = _stamps(transactions)
    in_train = (stamps >= split.train_start) & (stamps < split.train_end)
    in_test = (stamps >= split.test_start) & (stamps < split.test_end)
    train = transactions[in_train].reset_index(drop=True)
    test = transactions[in_test]
    if remove_known_compromised:
        test = test[~known_compromised(transactions, split, test)]
    return train, test.reset_index(drop=True)


def known_compromised(
    transactions: pd.DataFrame, split: TimeSplit, test: pd.DataFrame
) -> np.ndarray:
    """Which rows of `test` belong to a card already known to be compromised that day.

    The Handbook's rule: a fraud becomes known `delay` after its day, and a card with a
    known fraud is blocked. On test day d (d = 0 from test_start, counted in whole days)
    the known cards are the customers with a fraud in [train_start, test_start + d days -
    delay). On the first test day that is exactly the training period; each later day adds
    one more day of the delay period (and, when the test is longer than the delay, of the
    test period itself). Frauds before train_start do not count, as in the Handbook.
    A blocked card stays blocked for the rest of the test.

    `transactions` is the full history (the frauds are looked up there); `test` holds rows
    of it in the test period. Returns a boolean array aligned with the rows of `test`.
    """
    for frame in (transactions, test):
        missing = [c for c in (CUSTOMER_ID, TX_FRAUD) if c not in frame.columns]
        if missing:
            raise ValueError(f"card blocking needs column(s) {', '.join(missing)}")
    stamps = _stamps(transactions)
    is_fraud = (
        (transactions[TX_FRAUD] == 1)
        & (stamps >= split.train_start)
        & (stamps < split.test_end - split.delay)
    )
    fraud_times = stamps[is_fraud]
    # test_start + d days - delay > t  <=>  d > (t - train_end) / 1 day, since
    # train_end = test_start - delay: the first test day on which the fraud is known.
    known_from = np.maximum((fraud_times - split.train_end) // DAY + 1, 0)
    first_known_day = known_from.groupby(transactions.loc[is_fraud, CUSTOMER_ID]).min()
    test_day = (_stamps(test) - split.test_start) // DAY
    blocked_from = test[CUSTOMER_ID].map(first_known_day)
    return np.asarray(blocked_from.le(test_day), dtype=bool)  # NaN (never known) -> False


def prequential_splits(
    transactions: pd.DataFrame,
    *,
    test_start: TimeLike,
    train_days: int = HANDBOOK_TRAIN_DAYS,
    delay_days: int = HANDBOOK_DELAY_DAYS,
    test_days: int = HANDBOOK_TEST_DAYS,
    n_folds: int = HANDBOOK_N_FOLDS,
) -> list[TimeSplit]:
    """The Handbook's prequential folds: fold i is the block whose test starts at
    `test_start - i * test_days`, i.e. the whole (train, delay, test) block of fold 0
    slid back by i test periods. Fold 0 is the most recent.

    For model selection ahead of a final test, the folds' test periods must end before
    that test's data: `model_selection_splits` picks `test_start` for that.
    Raises ValueError when `transactions` do not cover every fold (from the first day of
    the oldest fold's training to the last day of fold 0's test): a fold trained on a
    partial week would be scored against the others as if it were a full one.
    """
    _check_days(train_days=train_days, delay_days=delay_days, test_days=test_days)
    if n_folds < 1:
        raise ValueError(f"n_folds must be at least 1, got {n_folds}")
    newest_test = _utc(test_start)
    folds = [
        _block(
            newest_test - i * test_days * DAY - (delay_days + train_days) * DAY,
            train_days * DAY,
            delay_days * DAY,
            test_days * DAY,
        )
        for i in range(n_folds)
    ]
    stamps = _stamps(transactions)
    if stamps.empty:
        raise ValueError("no transactions to split")
    first_day, after_last_day = stamps.min().normalize(), stamps.max().normalize() + DAY
    if folds[-1].train_start < first_day or folds[0].test_end > after_last_day:
        raise ValueError(
            f"{n_folds} fold(s) need data from {folds[-1].train_start} to {folds[0].test_end} "
            f"(exclusive); the transactions cover {first_day} to {after_last_day}"
        )
    return folds


def model_selection_splits(
    transactions: pd.DataFrame, final: TimeSplit, *, n_folds: int = HANDBOOK_N_FOLDS
) -> list[TimeSplit]:
    """Prequential folds for choosing a model that will be evaluated on `final`.

    As in the Handbook, fold 0's test period is the end of `final`'s training period
    (with equal train and test lengths, exactly that period), and the folds keep
    `final`'s lengths and delay. Every fold therefore uses only transactions from before
    `final.train_end`, whose labels are assumed known when the final model is trained;
    nothing from the delay or test periods of `final` leaks into the choice.
    """
    periods = {"train": final.train_length, "delay": final.delay, "test": final.test_length}
    for name, length in periods.items():
        if length % DAY != pd.Timedelta(0):
            raise ValueError(f"the {name} period must be whole days, got {length}")
    return prequential_splits(
        transactions,
        test_start=final.train_end - final.test_length,
        train_days=final.train_length // DAY,
        delay_days=final.delay // DAY,
        test_days=final.test_length // DAY,
        n_folds=n_folds,
    )


def _block(
    train_start: pd.Timestamp, train: pd.Timedelta, delay: pd.Timedelta, test: pd.Timedelta
) -> TimeSplit:
    train_end = train_start + train
    test_start = train_end + delay
    return TimeSplit(train_start, train_end, test_start, test_start + test, delay)


def _check_days(*, train_days: int, delay_days: int, test_days: int) -> None:
    if train_days < 1 or test_days < 1 or delay_days < 0:
        raise ValueError(
            "train_days and test_days must be at least 1 and delay_days at least 0, got "
            f"{train_days}, {test_days}, {delay_days}"
        )


def _utc(value: TimeLike) -> pd.Timestamp:
    """A UTC timestamp in nanoseconds; a naive time is taken as UTC (as the simulator does)."""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.as_unit("ns")


def _stamps(frame: pd.DataFrame) -> pd.Series:
    stamps = frame[TX_DATETIME]
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        # Comparing naive times with UTC bounds would silently assume a time zone.
        raise ValueError(f"{TX_DATETIME} must be a time-zone aware datetime, got {stamps.dtype}")
    return stamps
