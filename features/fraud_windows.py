"""Fraud features over a card transaction history, point-in-time correct and vectorised.

Follows the baseline feature transformation of the Fraud Detection Handbook (Le Borgne et
al.): calendar flags, the customer's spending over the last 1, 7 and 30 days, and the
terminal's fraud rate over windows pushed back by the label delay; plus a few features of
our own. A transaction's features use only what was known strictly before its timestamp,
so training frames carry no leakage and match what the online store can serve at scoring.

Conventions (the tests pin each of them):

- Customer windows are half-open, [t - w, t): a transaction exactly w days earlier is in;
  the transaction itself and every other transaction at the same timestamp are out, so
  several payments of one customer in the same second never see each other.
- A terminal's labels are known `label_delay_days` after the transaction, and "known"
  means strictly before t, so terminal windows are [t - delay - w, t - delay): a fraud
  exactly `delay` days earlier is not yet known. Counts use the same window as the risk
  (as in the Handbook), so the risk is a share of the counted transactions.
- Empty windows give count 0, mean amount 0 and risk 0 (the Handbook's convention): the
  count column tells the model that the 0 means "no history", not "cheap" or "safe".
- `amount_to_customer_avg_30d` is 1.0 when the customer has no 30-day history (or its mean
  is 0): with nothing to compare with, the amount is treated as typical.
- `seconds_since_customer_prev_tx` is capped at 30 days, also when there is no earlier
  transaction: a first purchase then looks like a long gap, never like a recent one.
- Output rows follow the input rows (same order, same index); the input need not be sorted.

How: transactions are sorted by (entity, time, transaction id) and given one int64 key
(entity code x stride + rank of the timestamp among all distinct timestamps), so a single
`np.searchsorted` finds the window edges of every transaction of every entity at once, and
per-entity cumulative sums turn the edges into counts and sums. No loop per transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.fraud_schema import (
    CUSTOMER_ID,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
)

REQUIRED_COLUMNS = (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_FRAUD)
KEY_COLUMNS = (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID, TX_DATETIME)

DEFAULT_WINDOWS: tuple[int, ...] = (1, 7, 30)
DEFAULT_LABEL_DELAY_DAYS = 7
HABIT_WINDOW_DAYS = 30
NIGHT_END_HOUR = 6  # night is [00:00, 06:00) UTC

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
SECONDS_SINCE_PREV_CAP = float(HABIT_WINDOW_DAYS * 86_400)

FeatureColumns = dict[str, npt.NDArray[np.float64]]


def fraud_feature_names(windows: tuple[int, ...] = DEFAULT_WINDOWS) -> tuple[str, ...]:
    """The feature columns for the given windows, in the model's input order."""
    return (
        "tx_amount",
        "tx_during_weekend",
        "tx_during_night",
        *(f"customer_{kind}_{w}d" for w in windows for kind in ("nb_tx", "avg_amount")),
        *(f"terminal_{kind}_{w}d" for w in windows for kind in ("nb_tx", "risk")),
        "amount_to_customer_avg_30d",
        "seconds_since_customer_prev_tx",
        "customer_nb_tx_at_terminal_30d",
    )


# The model's feature order with the default windows. The Feast feature service lists these.
FRAUD_FEATURES: tuple[str, ...] = fraud_feature_names(DEFAULT_WINDOWS)


@dataclass(frozen=True)
class _Timeline:
    """One entity's transactions sorted by (entity, time), searchable by time window.

    Arrays named `*_sorted` and the window positions are in sorted order; `order[j]` is
    the input row at sorted position j.
    """

    order: npt.NDArray[np.intp]
    from_time_order: npt.NDArray[np.intp]  # per sorted row: its position in time order
    times_by_time: npt.NDArray[np.int64]  # every timestamp, ascending
    times_sorted: npt.NDArray[np.int64]
    keys: npt.NDArray[np.int64]  # sorted: entity code * stride + rank of the timestamp
    base: npt.NDArray[np.int64]  # per sorted row: its entity's smallest possible key
    start: npt.NDArray[np.intp]  # per sorted row: sorted position of its entity's first row
    clock: npt.NDArray[np.int64]  # every distinct timestamp, ascending

    @classmethod
    def build(
        cls,
        entity: npt.ArrayLike,
        times: npt.NDArray[np.int64],
        transaction_ids: npt.NDArray[np.int64],
    ) -> _Timeline:
        codes = pd.factorize(np.asarray(entity))[0].astype(np.int64)
        # Time order with ties broken by transaction id, then a stable sort by entity: the
        # row order inside every entity, hence every cumulative sum to the last bit, is the
        # same whatever order the input rows come in.
        by_time = np.lexsort((transaction_ids, times))
        times_by_time = times[by_time]
        is_new = np.ones(times_by_time.size, dtype=bool)
        is_new[1:] = times_by_time[1:] != times_by_time[:-1]
        clock = times_by_time[is_new]
        # Ranks run 0..len(clock), so this stride keeps entities' key ranges apart and the
        # key stays far below int64 limits (codes and ranks are both < number of rows).
        stride = clock.size + 1
        keys_by_time = codes[by_time] * stride + np.searchsorted(clock, times_by_time)
        from_time_order = np.argsort(keys_by_time, kind="stable")
        order = by_time[from_time_order]
        keys = keys_by_time[from_time_order]
        base = codes[order] * stride
        return cls(
            order=order,
            from_time_order=from_time_order,
            times_by_time=times_by_time,
            times_sorted=times[order],
            keys=keys,
            base=base,
            start=np.searchsorted(keys, base),
            clock=clock,
        )

    def first_at_or_after(self, lag_ns: int) -> npt.NDArray[np.intp]:
        """Per transaction (sorted order): position of its entity's first row at or after t - lag.

        With lag 0 this skips the transaction's ties, which is what makes windows exclude
        every transaction at the same timestamp. When no row qualifies, the position is the
        end of the entity's block, which makes the window empty.
        """
        # Both searches get ascending queries (time order, then key order), which keeps the
        # binary searches cache-friendly: several times faster than random queries.
        ranks = np.searchsorted(self.clock, self.times_by_time - lag_ns)[self.from_time_order]
        return np.searchsorted(self.keys, self.base + ranks)

    def window_sum(
        self, values: npt.NDArray[np.float64], lo: npt.NDArray[np.intp], hi: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.float64]:
        """Per transaction (sorted order): sum of `values` (input order) over rows [lo, hi)."""
        # Cumulative sums restart for each entity so rounding errors stay at the scale of one
        # entity's history, not of the whole frame; an empty window is then exactly 0.
        within = (
            pd.Series(np.asarray(values, dtype=np.float64)[self.order])
            .groupby(self.base, sort=False)
            .cumsum()
            .to_numpy()
        )
        return self._prefix(within, hi) - self._prefix(within, lo)

    def _prefix(
        self, within: npt.NDArray[np.float64], position: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.float64]:
        """Sum of the entity's rows before `position` (0 at the start of the block)."""
        before = within[np.maximum(position - 1, 0)]
        return np.where(position > self.start, before, 0.0)

    def to_input_order(self, values_sorted: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        out = np.empty(values_sorted.size, dtype=np.float64)
        out[self.order] = values_sorted
        return out


def epoch_ns_values(stamps: pd.Series) -> npt.NDArray[np.int64]:
    """Nanoseconds since the epoch of each timestamp; naive ones raise `ValueError` (night and
    weekend features need UTC)."""
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"{TX_DATETIME} must be timezone-aware (UTC), got {stamps.dtype}")
    return pd.DatetimeIndex(stamps).tz_convert("UTC").as_unit("ns").asi8


def _times_and_ids(
    transactions: pd.DataFrame,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    return (
        epoch_ns_values(transactions[TX_DATETIME]),
        transactions[TRANSACTION_ID].to_numpy(dtype=np.int64),
    )


def _mean(
    total: npt.NDArray[np.float64], count: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """total / count, 0 where count is 0 (the empty-window convention)."""
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def calendar_features(transactions: pd.DataFrame) -> FeatureColumns:
    """The amount, and whether the transaction happened at a weekend or at night (UTC)."""
    stamps = pd.DatetimeIndex(transactions[TX_DATETIME]).tz_convert("UTC")
    return {
        # A copy: the output frame is built without copying, and must not alias the input.
        "tx_amount": transactions[TX_AMOUNT].to_numpy(dtype=np.float64, copy=True),
        "tx_during_weekend": np.asarray(stamps.dayofweek >= 5, dtype=np.float64),
        "tx_during_night": np.asarray(stamps.hour < NIGHT_END_HOUR, dtype=np.float64),
    }


def customer_spending_windows(
    transactions: pd.DataFrame, windows: tuple[int, ...] = DEFAULT_WINDOWS
) -> FeatureColumns:
    """Per window of w days, the customer's number of transactions and mean amount in [t-w, t)."""
    timeline = _Timeline.build(transactions[CUSTOMER_ID], *_times_and_ids(transactions))
    amounts = transactions[TX_AMOUNT].to_numpy(dtype=np.float64)
    hi = timeline.first_at_or_after(0)
    out: FeatureColumns = {}
    for w in windows:
        lo = timeline.first_at_or_after(w * NS_PER_DAY)
        count = (hi - lo).astype(np.float64)
        total = timeline.window_sum(amounts, lo, hi)
        out[f"customer_nb_tx_{w}d"] = timeline.to_input_order(count)
        out[f"customer_avg_amount_{w}d"] = timeline.to_input_order(_mean(total, count))
    return out


def terminal_risk_windows(
    transactions: pd.DataFrame,
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
    windows: tuple[int, ...] = DEFAULT_WINDOWS,
) -> FeatureColumns:
    """Per window of w days, the terminal's number of transactions and share of frauds.

    The window is [t - delay - w, t - delay): labels arrive `label_delay_days` late, so
    more recent transactions of the terminal cannot be used.
    """
    timeline = _Timeline.build(transactions[TERMINAL_ID], *_times_and_ids(transactions))
    frauds = transactions[TX_FRAUD].to_numpy(dtype=np.float64)
    delay_ns = label_delay_days * NS_PER_DAY
    hi = timeline.first_at_or_after(delay_ns)
    out: FeatureColumns = {}
    for w in windows:
        lo = timeline.first_at_or_after(delay_ns + w * NS_PER_DAY)
        count = (hi - lo).astype(np.float64)
        nb_frauds = timeline.window_sum(frauds, lo, hi)
        out[f"terminal_nb_tx_{w}d"] = timeline.to_input_order(count)
        out[f"terminal_risk_{w}d"] = timeline.to_input_order(_mean(nb_frauds, count))
    return out


def customer_habit_features(transactions: pd.DataFrame) -> FeatureColumns:
    """How unusual the transaction is for its customer, from the 30 days before it.

    - `amount_to_customer_avg_30d`: amount / mean amount in [t-30d, t); 1.0 without history.
    - `seconds_since_customer_prev_tx`: gap to the last transaction strictly before t,
      capped at 30 days (also the value when there is none).
    - `customer_nb_tx_at_terminal_30d`: the customer's transactions at this terminal in
      [t-30d, t); 0 flags a terminal new to the customer, a classic card-theft pattern.
    """
    times, ids = _times_and_ids(transactions)
    amounts = transactions[TX_AMOUNT].to_numpy(dtype=np.float64)
    window_ns = HABIT_WINDOW_DAYS * NS_PER_DAY

    customers = _Timeline.build(transactions[CUSTOMER_ID], times, ids)
    hi = customers.first_at_or_after(0)
    lo = customers.first_at_or_after(window_ns)
    count = (hi - lo).astype(np.float64)
    mean = _mean(customers.window_sum(amounts, lo, hi), count)
    amounts_sorted = amounts[customers.order]
    ratio = np.divide(amounts_sorted, mean, out=np.ones_like(mean), where=mean > 0)

    has_prev = hi > customers.start
    prev_times = customers.times_sorted[np.maximum(hi - 1, 0)]
    gap = (customers.times_sorted - prev_times) / NS_PER_SECOND
    seconds = np.where(has_prev, np.minimum(gap, SECONDS_SINCE_PREV_CAP), SECONDS_SINCE_PREV_CAP)

    # One entity per (customer, terminal) pair; factorize the pair so codes stay small.
    customer_codes = pd.factorize(transactions[CUSTOMER_ID].to_numpy())[0].astype(np.int64)
    terminal_codes = pd.factorize(transactions[TERMINAL_ID].to_numpy())[0].astype(np.int64)
    pair_codes = customer_codes * (terminal_codes.max(initial=0) + 1) + terminal_codes
    pairs = _Timeline.build(pair_codes, times, ids)
    at_terminal = pairs.first_at_or_after(0) - pairs.first_at_or_after(window_ns)

    return {
        "amount_to_customer_avg_30d": customers.to_input_order(ratio),
        "seconds_since_customer_prev_tx": customers.to_input_order(seconds),
        "customer_nb_tx_at_terminal_30d": pairs.to_input_order(at_terminal.astype(np.float64)),
    }


def _check_input(
    transactions: pd.DataFrame, label_delay_days: int, windows: tuple[int, ...]
) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in transactions.columns]
    if missing:
        raise ValueError(f"transactions lack required columns: {missing}")
    if label_delay_days < 0:
        raise ValueError(f"label_delay_days must be >= 0, got {label_delay_days}")
    if not windows or any(w <= 0 for w in windows) or len(set(windows)) != len(windows):
        raise ValueError(f"windows must be distinct positive day counts, got {windows}")
    epoch_ns_values(transactions[TX_DATETIME])


def fraud_window_features(
    transactions: pd.DataFrame,
    *,
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
    windows: tuple[int, ...] = DEFAULT_WINDOWS,
) -> pd.DataFrame:
    """All fraud features, one row per input transaction, in input order and index.

    Columns: TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID, TX_DATETIME, then the features of
    `fraud_feature_names(windows)` (`FRAUD_FEATURES` with the defaults), all float64.
    Extra input columns are ignored.
    """
    _check_input(transactions, label_delay_days, windows)
    features: dict[str, npt.NDArray[np.float64]] = {
        **calendar_features(transactions),
        **customer_spending_windows(transactions, windows),
        **terminal_risk_windows(transactions, label_delay_days, windows),
        **customer_habit_features(transactions),
    }
    columns: Mapping[str, object] = {
        **{column: transactions[column].copy() for column in KEY_COLUMNS},
        **{name: features[name] for name in fraud_feature_names(windows)},
    }
    # copy=False: every array above is a fresh one of ours; copying would double peak memory.
    return pd.DataFrame(columns, index=transactions.index, copy=False)
