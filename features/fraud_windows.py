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
- `amount_zscore_to_customer_30d` divides by the spread of the customer's 30-day amounts
  floored at `AMOUNT_SPREAD_FLOOR` (one unit of currency): a card paying the same amount
  every time would otherwise divide by zero, or by rounding noise. 0 without history.
- `terminal_in_fraud_run` is 1 when the terminal's latest known payments (in the 30-day
  window of known labels, [t - delay - 30d, t - delay)) are frauds with no genuine payment
  at or after their time; `terminal_fraud_run_days` is then the time from the first of
  them to t, in days, else 0. A compromised terminal (a skimmer) turns every payment into
  a fraud until it is found: once its first fraud is known, a run still open says it may
  still be compromised, and its length says for how long. Payments at one timestamp count
  together (a genuine one at the same time as a fraud ends the run), so row order never
  matters.
- Output rows follow the input rows (same order, same index); the input need not be sorted.

How: transactions are sorted by time (ties by transaction id) once, then stably by
entity (a radix sort), and given one int64 key (entity number x stride + rank of the
timestamp among all distinct timestamps), so a single `np.searchsorted` finds the window
edges of every transaction of every entity at once, and per-entity cumulative sums turn
the edges into counts and sums. No loop per transaction. The customers', terminals' and
(customer, terminal) pairs' timelines are built once per frame and shared by the
features that read them, as are the searches of each window length and the running sums
of each column. The numbers are those of the formula the models were trained with, to
the last bit (tests/features/test_fraud_windows_frozen.py).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

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
NS_PER_HOUR = 3_600 * NS_PER_SECOND
NS_PER_DAY = 86_400 * NS_PER_SECOND
SECONDS_SINCE_PREV_CAP = float(HABIT_WINDOW_DAYS * 86_400)
AMOUNT_SPREAD_FLOOR = 1.0
NAT = np.iinfo(np.int64).min  # how a missing timestamp reads as epoch nanoseconds

FeatureColumns = dict[str, npt.NDArray[np.float64]]
# Radix-sortable digits: numpy sorts 16-bit integers stably in linear time.
_DIGIT_BITS = 16
_DIGIT_MASK = (1 << _DIGIT_BITS) - 1


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
        "amount_zscore_to_customer_30d",
        "terminal_in_fraud_run",
        "terminal_fraud_run_days",
    )


# The model's feature order with the default windows. The Feast feature service lists these.
FRAUD_FEATURES: tuple[str, ...] = fraud_feature_names(DEFAULT_WINDOWS)


class _Clock:
    """Every transaction in time order (ties by transaction id), with the rank of its
    timestamp among the distinct ones: shared by the timelines of one frame's entities.

    `ranks_at_or_after(lag)` is, per row in time order, the rank of the first distinct
    timestamp at or after t - lag; each lag is searched once, whichever entities use it.
    """

    def __init__(self, times: npt.NDArray[np.int64], transaction_ids: npt.NDArray[np.int64]):
        # Rows already in that order (a validated file is) need no reordering at all.
        self.in_time_order = _in_time_order(times, transaction_ids)
        if self.in_time_order:
            self.by_time: npt.NDArray[np.intp] = np.arange(times.size)
            self.times_by_time = times
        else:
            self.by_time = np.lexsort((transaction_ids, times))
            self.times_by_time = times[self.by_time]
        is_new = np.ones(self.times_by_time.size, dtype=bool)
        is_new[1:] = self.times_by_time[1:] != self.times_by_time[:-1]
        self.distinct = self.times_by_time[is_new]
        # A row's rank is the number of distinct timestamps before its own.
        self.ranks_by_time = np.cumsum(is_new, dtype=np.int64) - 1
        self._ranks: dict[int, npt.NDArray[np.int64]] = {0: self.ranks_by_time}

    @property
    def stride(self) -> int:
        """A key stride that keeps entities' key ranges apart (ranks run 0..len(distinct));
        keys stay far below int64 limits, codes and ranks being below the row count."""
        return int(self.distinct.size) + 1

    def ranks_at_or_after(self, lag_ns: int) -> npt.NDArray[np.int64]:
        if lag_ns not in self._ranks:
            # Ascending queries keep the binary search cache-friendly.
            ranks = np.searchsorted(self.distinct, self.times_by_time - lag_ns)
            self._ranks[lag_ns] = ranks.astype(np.int64, copy=False)
        return self._ranks[lag_ns]


class _Timeline:
    """One entity's transactions sorted by (entity, time), searchable by time window.

    Arrays named `*_sorted` and the window positions are in sorted order; `order[j]` is
    the input row at sorted position j.
    """

    def __init__(self, codes: npt.NDArray[np.int64], clock: _Clock) -> None:
        """`codes`: per input row, a non-negative integer naming its entity."""
        self.clock = clock
        codes_by_time = codes if clock.in_time_order else codes[clock.by_time]
        # A stable sort by entity of the rows in time order: the row order inside every
        # entity, hence every cumulative sum to the last bit, is the same whatever order
        # the input rows come in.
        self.from_time_order = _stable_order(codes_by_time)
        self.order: npt.NDArray[np.intp] = (
            self.from_time_order if clock.in_time_order else clock.by_time[self.from_time_order]
        )
        codes_sorted = codes_by_time[self.from_time_order]
        size = codes_sorted.size
        positions = np.arange(size)
        new_entity = np.ones(size, dtype=bool)
        new_entity[1:] = codes_sorted[1:] != codes_sorted[:-1]
        # Per sorted row: the position of its entity's first row.
        self.start = np.maximum.accumulate(np.where(new_entity, positions, 0))
        # Keys: entity number (in sorted order) x stride + rank of the timestamp, so a
        # single search finds the window edges of every row of every entity at once.
        self.base = (np.cumsum(new_entity, dtype=np.int64) - 1) * clock.stride
        self.keys = self.base + clock.ranks_by_time[self.from_time_order]
        new_key = new_entity.copy()
        new_key[1:] |= self.keys[1:] != self.keys[:-1]
        # Lag 0's edges: per sorted row, the first row of its entity at its own timestamp.
        self._edges: dict[int, npt.NDArray[np.intp]] = {
            0: np.maximum.accumulate(np.where(new_key, positions, 0))
        }

    @property
    def times_sorted(self) -> npt.NDArray[np.int64]:
        return self.clock.times_by_time[self.from_time_order]

    def first_at_or_after(self, lag_ns: int) -> npt.NDArray[np.intp]:
        """Per transaction (sorted order): position of its entity's first row at or after t - lag.

        With lag 0 this skips the transaction's ties, which is what makes windows exclude
        every transaction at the same timestamp. When no row qualifies, the position is the
        end of the entity's block, which makes the window empty.
        """
        if lag_ns not in self._edges:
            ranks = self.clock.ranks_at_or_after(lag_ns)[self.from_time_order]
            self._edges[lag_ns] = np.searchsorted(self.keys, self.base + ranks)
        return self._edges[lag_ns]

    def running_sums(self, values: npt.NDArray[np.float64]) -> _RunningSums:
        """`values` (input order) summed over windows of this timeline's entities."""
        return _RunningSums(self, values)

    def to_input_order(self, values_sorted: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        out = np.empty(values_sorted.size, dtype=np.float64)
        out[self.order] = values_sorted
        return out


class _RunningSums:
    """One column's sums over windows of a timeline, from its running sums per entity."""

    def __init__(self, timeline: _Timeline, values: npt.NDArray[np.float64]) -> None:
        self.timeline = timeline
        # Cumulative sums restart for each entity so rounding errors stay at the scale of one
        # entity's history, not of the whole frame; an empty window is then exactly 0.
        self.within = (
            pd.Series(np.asarray(values, dtype=np.float64)[timeline.order])
            .groupby(timeline.base, sort=False)
            .cumsum()
            .to_numpy()
        )
        self._before: dict[int, npt.NDArray[np.float64]] = {}

    def window(self, lo_lag_ns: int, hi_lag_ns: int) -> npt.NDArray[np.float64]:
        """Per transaction (sorted order): the sum over its entity's rows in
        [t - lo_lag, t - hi_lag), as `first_at_or_after` draws the edges."""
        return self._sum_before(hi_lag_ns) - self._sum_before(lo_lag_ns)

    def _sum_before(self, lag_ns: int) -> npt.NDArray[np.float64]:
        """Sum of the entity's rows before the edge of `lag_ns` (0 at the block's start)."""
        if lag_ns not in self._before:
            position = self.timeline.first_at_or_after(lag_ns)
            before = self.within[np.maximum(position - 1, 0)]
            self._before[lag_ns] = np.where(position > self.timeline.start, before, 0.0)
        return self._before[lag_ns]


def _in_time_order(times: npt.NDArray[np.int64], transaction_ids: npt.NDArray[np.int64]) -> bool:
    """Whether the rows are sorted by time, ties by transaction id (what lexsort gives)."""
    later = times[1:] >= times[:-1]
    if not later.all():
        return False
    tied = times[1:] == times[:-1]
    return bool((transaction_ids[1:][tied] >= transaction_ids[:-1][tied]).all())


def _stable_order(codes: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """`np.argsort(codes, kind="stable")` of non-negative codes, as a radix sort over
    16-bit digits (least significant first): linear time where the int64 merge sort is
    not, the same permutation (a stable order is unique)."""
    order: npt.NDArray[np.intp] | None = None
    remaining = codes
    while True:
        digit = (remaining & _DIGIT_MASK).astype(np.uint16)
        step = np.argsort(digit if order is None else digit[order], kind="stable")
        order = step if order is None else order[step]
        remaining = remaining >> _DIGIT_BITS
        if not remaining.any():
            return order


def epoch_ns_values(stamps: pd.Series) -> npt.NDArray[np.int64]:
    """Nanoseconds since the epoch of each timestamp; naive ones raise `ValueError` (night and
    weekend features need UTC)."""
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"{TX_DATETIME} must be timezone-aware (UTC), got {stamps.dtype}")
    return pd.DatetimeIndex(stamps).tz_convert("UTC").as_unit("ns").asi8


class _History:
    """One frame's transactions, with the timelines its features share, each built once:
    the customers', the terminals' and the (customer, terminal) pairs'."""

    def __init__(self, transactions: pd.DataFrame) -> None:
        self.transactions = transactions
        self.times = epoch_ns_values(transactions[TX_DATETIME])
        self.clock = _Clock(self.times, transactions[TRANSACTION_ID].to_numpy(dtype=np.int64))
        self.amounts = transactions[TX_AMOUNT].to_numpy(dtype=np.float64)

    @functools.cached_property
    def customer_codes(self) -> npt.NDArray[np.int64]:
        return _codes(self.transactions[CUSTOMER_ID])

    @functools.cached_property
    def terminal_codes(self) -> npt.NDArray[np.int64]:
        return _codes(self.transactions[TERMINAL_ID])

    @functools.cached_property
    def customers(self) -> _Timeline:
        return _Timeline(self.customer_codes, self.clock)

    @functools.cached_property
    def terminals(self) -> _Timeline:
        return _Timeline(self.terminal_codes, self.clock)

    @functools.cached_property
    def pairs(self) -> _Timeline:
        # One entity per (customer, terminal) pair; codes below rows squared fit in int64.
        pair_codes = (
            self.customer_codes * (self.terminal_codes.max(initial=0) + 1) + self.terminal_codes
        )
        return _Timeline(pair_codes, self.clock)

    @functools.cached_property
    def customer_amount_sums(self) -> _RunningSums:
        return self.customers.running_sums(self.amounts)


def _codes(entity: pd.Series) -> npt.NDArray[np.int64]:
    """A small non-negative integer per row naming its entity."""
    return pd.factorize(entity.to_numpy())[0].astype(np.int64)


def _mean(
    total: npt.NDArray[np.float64], count: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """total / count, 0 where count is 0 (the empty-window convention)."""
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def calendar_features(transactions: pd.DataFrame) -> FeatureColumns:
    """The amount, and whether the transaction happened at a weekend or at night (UTC)."""
    return _calendar(epoch_ns_values(transactions[TX_DATETIME]), transactions)


def _calendar(times: npt.NDArray[np.int64], transactions: pd.DataFrame) -> FeatureColumns:
    # Integer arithmetic on the UTC epoch: what pandas' dayofweek and hour give, without
    # building their calendar fields. 1970-01-01 was a Thursday (day 3, Monday being 0).
    present = times != NAT
    days = times // NS_PER_DAY
    weekend = present & ((days + 3) % 7 >= 5)
    night = present & (times - days * NS_PER_DAY < NIGHT_END_HOUR * NS_PER_HOUR)
    return {
        # A copy: the output frame is built without copying, and must not alias the input.
        "tx_amount": transactions[TX_AMOUNT].to_numpy(dtype=np.float64, copy=True),
        "tx_during_weekend": weekend.astype(np.float64),
        "tx_during_night": night.astype(np.float64),
    }


def customer_spending_windows(
    transactions: pd.DataFrame, windows: tuple[int, ...] = DEFAULT_WINDOWS
) -> FeatureColumns:
    """Per window of w days, the customer's number of transactions and mean amount in [t-w, t)."""
    return _customer_spending(_History(transactions), windows)


def _customer_spending(history: _History, windows: tuple[int, ...]) -> FeatureColumns:
    timeline = history.customers
    hi = timeline.first_at_or_after(0)
    out: FeatureColumns = {}
    for w in windows:
        lo = timeline.first_at_or_after(w * NS_PER_DAY)
        count = (hi - lo).astype(np.float64)
        total = history.customer_amount_sums.window(w * NS_PER_DAY, 0)
        out[f"customer_nb_tx_{w}d"] = timeline.to_input_order(count)
        out[f"customer_avg_amount_{w}d"] = timeline.to_input_order(_mean(total, count))
    return out


def terminal_risk_windows(
    transactions: pd.DataFrame,
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
    windows: tuple[int, ...] = DEFAULT_WINDOWS,
) -> FeatureColumns:
    """Per window of w days, the terminal's number of transactions and share of frauds,
    and its open run of known frauds (`terminal_in_fraud_run`, `terminal_fraud_run_days`).

    The window is [t - delay - w, t - delay): labels arrive `label_delay_days` late, so
    more recent transactions of the terminal cannot be used. The run is looked for in the
    longest window.
    """
    return _terminal_risk(_History(transactions), label_delay_days, windows)


def _terminal_risk(
    history: _History, label_delay_days: int, windows: tuple[int, ...]
) -> FeatureColumns:
    timeline = history.terminals
    fraud_sums = timeline.running_sums(history.transactions[TX_FRAUD].to_numpy(dtype=np.float64))
    delay_ns = label_delay_days * NS_PER_DAY
    hi = timeline.first_at_or_after(delay_ns)
    out: FeatureColumns = {}
    for w in windows:
        lo = timeline.first_at_or_after(delay_ns + w * NS_PER_DAY)
        count = (hi - lo).astype(np.float64)
        nb_frauds = fraud_sums.window(delay_ns + w * NS_PER_DAY, delay_ns)
        out[f"terminal_nb_tx_{w}d"] = timeline.to_input_order(count)
        out[f"terminal_risk_{w}d"] = timeline.to_input_order(_mean(nb_frauds, count))
    lo = timeline.first_at_or_after(delay_ns + max(windows) * NS_PER_DAY)
    in_run, run_days = _fraud_run(timeline, history.transactions[TX_FRAUD].to_numpy(), lo, hi)
    out["terminal_in_fraud_run"] = timeline.to_input_order(in_run)
    out["terminal_fraud_run_days"] = timeline.to_input_order(run_days)
    return out


def _fraud_run(
    timeline: _Timeline,
    labels: npt.NDArray[np.int64],
    lo: npt.NDArray[np.intp],
    hi: npt.NDArray[np.intp],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per transaction (sorted order), whether the known rows [lo, hi) of its terminal end
    in frauds after every genuine one's timestamp, and the days from the first of them."""
    genuine = labels[timeline.order] != 1
    if genuine.size == 0:
        return np.zeros(0), np.zeros(0)
    positions = np.arange(genuine.size)
    # Per sorted row: the last genuine row at or before it (-1 if none, or another entity's).
    last_genuine = np.maximum.accumulate(np.where(genuine, positions, -1))
    g = last_genuine[np.maximum(hi - 1, 0)]
    seen = (hi > lo) & (g >= lo)
    # The run begins at the first row later than that genuine row's timestamp (its ties,
    # all known too, are not later), or at the window's start when no genuine row is in it.
    after_genuine = np.searchsorted(timeline.keys, timeline.keys[np.maximum(g, 0)], side="right")
    start = np.where(seen, after_genuine, lo)
    in_run = start < hi
    times = timeline.times_sorted
    first = times[np.minimum(start, times.size - 1)]
    days = np.where(in_run, (times - first) / NS_PER_DAY, 0.0)
    return in_run.astype(np.float64), days


def customer_habit_features(transactions: pd.DataFrame) -> FeatureColumns:
    """How unusual the transaction is for its customer, from the 30 days before it.

    - `amount_to_customer_avg_30d`: amount / mean amount in [t-30d, t); 1.0 without history.
    - `seconds_since_customer_prev_tx`: gap to the last transaction strictly before t,
      capped at 30 days (also the value when there is none).
    - `customer_nb_tx_at_terminal_30d`: the customer's transactions at this terminal in
      [t-30d, t); 0 flags a terminal new to the customer, a classic card-theft pattern.
    - `amount_zscore_to_customer_30d`: (amount - mean) / spread of the amounts in
      [t-30d, t), the spread (population standard deviation) floored at one unit; 0
      without history. A stolen card's inflated amounts stand out against a steady
      spender's spread more than against its mean alone.
    """
    return _customer_habits(_History(transactions))


def _customer_habits(history: _History) -> FeatureColumns:
    window_ns = HABIT_WINDOW_DAYS * NS_PER_DAY
    customers = history.customers
    hi = customers.first_at_or_after(0)
    lo = customers.first_at_or_after(window_ns)
    count = (hi - lo).astype(np.float64)
    mean = _mean(history.customer_amount_sums.window(window_ns, 0), count)
    amounts_sorted = history.amounts[customers.order]
    ratio = np.divide(amounts_sorted, mean, out=np.ones_like(mean), where=mean > 0)
    squares = customers.running_sums(history.amounts * history.amounts)
    variance = _mean(squares.window(window_ns, 0), count) - mean * mean
    spread = np.maximum(np.sqrt(np.maximum(variance, 0.0)), AMOUNT_SPREAD_FLOOR)
    zscore = np.where(count > 0, (amounts_sorted - mean) / spread, 0.0)

    has_prev = hi > customers.start
    times_sorted = customers.times_sorted
    prev_times = times_sorted[np.maximum(hi - 1, 0)]
    gap = (times_sorted - prev_times) / NS_PER_SECOND
    seconds = np.where(has_prev, np.minimum(gap, SECONDS_SINCE_PREV_CAP), SECONDS_SINCE_PREV_CAP)

    pairs = history.pairs
    at_terminal = pairs.first_at_or_after(0) - pairs.first_at_or_after(window_ns)

    return {
        "amount_to_customer_avg_30d": customers.to_input_order(ratio),
        "seconds_since_customer_prev_tx": customers.to_input_order(seconds),
        "customer_nb_tx_at_terminal_30d": pairs.to_input_order(at_terminal.astype(np.float64)),
        "amount_zscore_to_customer_30d": customers.to_input_order(zscore),
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


def fraud_feature_columns(
    transactions: pd.DataFrame,
    *,
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
    windows: tuple[int, ...] = DEFAULT_WINDOWS,
) -> FeatureColumns:
    """The features of `fraud_feature_names(windows)`, each a float64 array in input row
    order: `fraud_window_features`' numbers without the frame (a batch job copies them
    straight into its matrix)."""
    _check_input(transactions, label_delay_days, windows)
    history = _History(transactions)
    return {
        **_calendar(history.times, transactions),
        **_customer_spending(history, windows),
        **_terminal_risk(history, label_delay_days, windows),
        **_customer_habits(history),
    }


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
    features = fraud_feature_columns(
        transactions, label_delay_days=label_delay_days, windows=windows
    )
    columns: Mapping[str, object] = {
        **{column: transactions[column].copy() for column in KEY_COLUMNS},
        **{name: features[name] for name in fraud_feature_names(windows)},
    }
    # copy=False: every array above is a fresh one of ours; copying would double peak memory.
    return pd.DataFrame(columns, index=transactions.index, copy=False)
