"""The fraud features of one transaction at scoring time, from its card's and terminal's state.

`features.fraud_windows` computes the features of a whole history at once (training); this
module computes the same numbers for one new transaction from what the online store keeps
per entity, with exactly the same conventions (see the `fraud_windows` docstring):

- a customer's state is its transactions of the last 30 days (times, amounts, terminals),
  enough for every customer window and for the capped time since the previous one;
- a terminal's state is its transactions of the last `label_delay_days + 30` days (times
  and fraud labels), enough for the windows [t - delay - w, t - delay) and for the open
  run of known frauds in the longest of them.

States are kept sorted by time, so every window edge is one `np.searchsorted` and every
window sum a difference of one cumulative sum. Pure numpy, no Feast: the Feast on-demand
view (`features.feature_repo.fraud`) calls `features_from_feast_inputs`, and the batch flow
builds the states with `customer_states` and `terminal_states`.

Labels at serving time: a transaction appended by `append_terminal_transaction` carries
`PENDING_LABEL` (0), since nobody knows yet whether it is a fraud. It enters a terminal
window only `label_delay_days` later, by when the label flow is expected to have rewritten
the terminal's state with the investigated labels (`relabel_terminal_history`, written
online by `serving.fraud_features.FraudOnlineFeatures.relabel_terminal`; the same as
`terminal_states` on the labelled history). If the label flow is late, the pending
entries count as genuine.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from features.fraud_schema import (
    CUSTOMER_ID,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
)
from features.fraud_windows import (
    AMOUNT_SPREAD_FLOOR,
    DEFAULT_LABEL_DELAY_DAYS,
    DEFAULT_WINDOWS,
    HABIT_WINDOW_DAYS,
    NIGHT_END_HOUR,
    NS_PER_DAY,
    NS_PER_SECOND,
    SECONDS_SINCE_PREV_CAP,
    epoch_ns_values,
    fraud_feature_names,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# Column names of the state frames; the Feast views use them as join keys and features.
CUSTOMER_KEY = "customer_id"
TERMINAL_KEY = "terminal_id"
CUSTOMER_TIMES = "customer_tx_times_ns"
CUSTOMER_AMOUNTS = "customer_tx_amounts"
CUSTOMER_TERMINALS = "customer_tx_terminal_ids"
TERMINAL_TIMES = "terminal_tx_times_ns"
TERMINAL_FRAUDS = "terminal_tx_frauds"
# What a scoring request brings besides the two join keys.
REQUEST_TIME = "tx_time_ns"
REQUEST_AMOUNT = "tx_request_amount"

PENDING_LABEL = 0
NS_PER_HOUR = 3_600 * NS_PER_SECOND
# 1970-01-01 was a Thursday: day d since the epoch has weekday (d + 3) % 7, Monday = 0.
EPOCH_WEEKDAY = 3
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CustomerHistory:
    """A customer's recent transactions, sorted by time."""

    times_ns: IntArray
    amounts: FloatArray
    terminal_ids: IntArray

    @classmethod
    def empty(cls) -> CustomerHistory:
        return cls(np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int64))

    @classmethod
    def from_lists(
        cls, times_ns: Sequence[int] | None, amounts: Sequence[float] | None, terminal_ids: Any
    ) -> CustomerHistory:
        """From the lists Feast returns; None (an entity never seen) is an empty history."""
        if times_ns is None:
            return cls.empty()
        return cls(
            np.asarray(times_ns, dtype=np.int64),
            np.asarray(amounts, dtype=np.float64),
            np.asarray(terminal_ids, dtype=np.int64),
        )


@dataclass(frozen=True, slots=True)
class TerminalHistory:
    """A terminal's recent transactions and their labels (1 fraud, 0 genuine or pending)."""

    times_ns: IntArray
    frauds: IntArray

    @classmethod
    def empty(cls) -> TerminalHistory:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64))

    @classmethod
    def from_lists(cls, times_ns: Sequence[int] | None, frauds: Any) -> TerminalHistory:
        if times_ns is None:
            return cls.empty()
        return cls(np.asarray(times_ns, dtype=np.int64), np.asarray(frauds, dtype=np.int64))


def customer_retention_ns(windows: tuple[int, ...] = DEFAULT_WINDOWS) -> int:
    """How far back a customer's state must reach: its longest window."""
    return max(*windows, HABIT_WINDOW_DAYS) * NS_PER_DAY


def terminal_retention_ns(
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS, windows: tuple[int, ...] = DEFAULT_WINDOWS
) -> int:
    """How far back a terminal's state must reach: the delay plus its longest window."""
    return (label_delay_days + max(windows)) * NS_PER_DAY


def epoch_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of a timezone-aware time (pandas Timestamps keep their ns)."""
    if moment.tzinfo is None:
        raise ValueError(f"transaction time must be timezone-aware (UTC), got {moment!r}")
    if isinstance(moment, pd.Timestamp):
        return int(moment.value)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1_000


def _window_stats(
    times: IntArray, values: FloatArray | IntArray, end: int, days: Sequence[int]
) -> tuple[list[int], list[float], list[int]]:
    """Per window of w days: the count and the sum of `values` at times in [end - w, end),
    and the window's first index; one `searchsorted` and one cumulative sum in all.

    Sums are differences of the cumulative sum from the state's first entry, as
    `features.fraud_windows` takes them. The states hold tens of entries: past numpy's
    call overhead the work is the few Python operations below, not the arrays.
    """
    points = [end - w * NS_PER_DAY for w in days]
    points.append(end)
    edges = times.searchsorted(points).tolist()
    hi = edges.pop()
    if hi == 0:
        return [0] * len(days), [0.0] * len(days), edges
    prefix = values[:hi].cumsum(dtype=np.float64).tolist()
    top = prefix[-1]
    counts = [hi - lo for lo in edges]
    totals = [top - prefix[lo - 1] if lo else top for lo in edges]
    return counts, totals, edges


def online_fraud_features(
    customer: CustomerHistory,
    terminal: TerminalHistory,
    tx_time_ns: int,
    tx_amount: float,
    terminal_id: int,
    *,
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
    windows: tuple[int, ...] = DEFAULT_WINDOWS,
) -> dict[str, float]:
    """Every feature of `fraud_feature_names(windows)` for one transaction, as floats, in
    that order.

    The states may hold transactions at or after `tx_time_ns` (ties, or the transaction
    itself once recorded): windows end strictly before it, so they are never counted.
    """
    amount = float(tx_amount)
    day, time_of_day = divmod(tx_time_ns, NS_PER_DAY)
    values = [
        amount,
        float((day + EPOCH_WEEKDAY) % 7 >= 5),
        float(time_of_day // NS_PER_HOUR < NIGHT_END_HOUR),
    ]
    # The customer's windows, then the habit window (30 days) last.
    counts, totals, starts = _window_stats(
        customer.times_ns, customer.amounts, tx_time_ns, (*windows, HABIT_WINDOW_DAYS)
    )
    for count, total in zip(counts[:-1], totals[:-1], strict=True):
        values += (float(count), total / count if count else 0.0)
    delay_ns = label_delay_days * NS_PER_DAY
    counts_t, frauds, starts_t = _window_stats(
        terminal.times_ns, terminal.frauds, tx_time_ns - delay_ns, windows
    )
    for count, fraud in zip(counts_t, frauds, strict=True):
        values += (float(count), fraud / count if count else 0.0)
    longest = _longest(windows)
    run = _fraud_run_start(terminal, starts_t[longest], starts_t[longest] + counts_t[longest])

    habit_count, habit_total = counts[-1], totals[-1]
    habit_mean = habit_total / habit_count if habit_count else 0.0
    values.append(amount / habit_mean if habit_mean > 0 else 1.0)
    # Entries before `hi` are strictly earlier than the transaction; the last one is the
    # previous transaction, if it is within the state (older ones are capped anyway).
    lo = starts[-1]
    hi = lo + habit_count
    if hi > 0:
        gap = (tx_time_ns - int(customer.times_ns[hi - 1])) / NS_PER_SECOND
        values.append(min(gap, SECONDS_SINCE_PREV_CAP))
    else:
        values.append(SECONDS_SINCE_PREV_CAP)
    values.append(float(customer.terminal_ids[lo:hi].tolist().count(terminal_id)))
    if habit_count:
        recent = customer.amounts[lo:hi]
        variance = float(np.dot(recent, recent)) / habit_count - habit_mean * habit_mean
        spread = max(math.sqrt(max(variance, 0.0)), AMOUNT_SPREAD_FLOOR)
        values.append((amount - habit_mean) / spread)
    else:
        values.append(0.0)
    if run is None:
        values += (0.0, 0.0)
    else:
        values += (1.0, (tx_time_ns - run) / NS_PER_DAY)
    return dict(zip(_feature_names(windows), values, strict=True))


def _fraud_run_start(terminal: TerminalHistory, lo: int, hi: int) -> int | None:
    """The time of the first of the frauds that end the terminal's known entries [lo, hi)
    after every genuine one's timestamp (`terminal_in_fraud_run`), or None."""
    labels = terminal.frauds[lo:hi].tolist()
    k = len(labels)
    while k and labels[k - 1] == 1:
        k -= 1
    if k == len(labels):  # no known entry, or the latest one is genuine: the usual case
        return None
    if k == 0:
        return int(terminal.times_ns[lo])
    # Entries at the genuine one's time are not later than it: the run begins after them.
    start = int(terminal.times_ns.searchsorted(terminal.times_ns[lo + k - 1], "right"))
    return int(terminal.times_ns[start]) if start < hi else None


@functools.cache
def _longest(windows: tuple[int, ...]) -> int:
    return windows.index(max(windows))


@functools.cache
def _feature_names(windows: tuple[int, ...]) -> tuple[str, ...]:
    return fraud_feature_names(windows)


def features_from_feast_inputs(inputs: Mapping[str, Sequence[Any]]) -> dict[str, list[float]]:
    """The on-demand view's transformation: Feast's column lists in, feature lists out.

    Histories of entities the store has never seen arrive as None and count as empty.
    """
    tx_times = inputs[REQUEST_TIME]
    # Feast infers the view's schema by calling it on sample values of the declared
    # sources only, without join keys; any terminal id then does.
    terminal_ids = inputs.get(TERMINAL_KEY) or [-1] * len(tx_times)
    rows = [
        online_fraud_features(
            CustomerHistory.from_lists(
                inputs[CUSTOMER_TIMES][i],
                inputs[CUSTOMER_AMOUNTS][i],
                inputs[CUSTOMER_TERMINALS][i],
            ),
            TerminalHistory.from_lists(inputs[TERMINAL_TIMES][i], inputs[TERMINAL_FRAUDS][i]),
            int(tx_times[i]),
            float(inputs[REQUEST_AMOUNT][i]),
            int(terminal_ids[i]),
        )
        for i in range(len(tx_times))
    ]
    return {name: [row[name] for row in rows] for name in fraud_feature_names(DEFAULT_WINDOWS)}


def _insert(times: IntArray, tx_time_ns: int, oldest_kept_ns: int) -> tuple[int, int]:
    """Where a new time goes to keep `times` sorted, and the first entry worth keeping."""
    position = int(np.searchsorted(times, tx_time_ns, side="right"))
    newest = max(tx_time_ns, int(times[-1])) if times.size else tx_time_ns
    first_kept = int(np.searchsorted(times, newest - oldest_kept_ns, side="left"))
    return position, first_kept


def _inserted(values: npt.NDArray[Any], position: int, value: float, first: int) -> Any:
    """`np.insert(values, position, value)[first:]`, without its generic machinery (a tenth
    of the time on these short arrays; the scoring path appends to two states a payment)."""
    out = np.empty(values.size + 1 - first, dtype=values.dtype)
    cut = position - first
    if cut >= 0:
        out[:cut] = values[first:position]
        out[cut] = value
        out[cut + 1 :] = values[position:]
    else:  # the new entry is older than anything kept (a late straggler): it drops out too
        out[:] = values[first - 1 :]
    return out


def append_customer_transaction(
    history: CustomerHistory,
    tx_time_ns: int,
    amount: float,
    terminal_id: int,
    *,
    windows: tuple[int, ...] = DEFAULT_WINDOWS,
) -> CustomerHistory:
    """The customer's state with one more transaction, minus what no window can reach again.

    Later transactions are no earlier than the newest one in the state, so entries older
    than its longest window are dropped. A transaction arriving out of order is inserted
    at its place in time.
    """
    position, first = _insert(history.times_ns, tx_time_ns, customer_retention_ns(windows))
    return CustomerHistory(
        _inserted(history.times_ns, position, tx_time_ns, first),
        _inserted(history.amounts, position, amount, first),
        _inserted(history.terminal_ids, position, terminal_id, first),
    )


def append_terminal_transaction(
    history: TerminalHistory,
    tx_time_ns: int,
    fraud: int = PENDING_LABEL,
    *,
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
    windows: tuple[int, ...] = DEFAULT_WINDOWS,
) -> TerminalHistory:
    """The terminal's state with one more transaction (label pending unless given), trimmed."""
    retention = terminal_retention_ns(label_delay_days, windows)
    position, first = _insert(history.times_ns, tx_time_ns, retention)
    return TerminalHistory(
        _inserted(history.times_ns, position, tx_time_ns, first),
        _inserted(history.frauds, position, fraud, first),
    )


def relabel_terminal_history(
    history: TerminalHistory, times_ns: npt.ArrayLike, frauds: npt.ArrayLike
) -> tuple[TerminalHistory, int]:
    """The terminal's state with the investigated labels of the payments at `times_ns`.

    Entries are matched by time. Several payments at one terminal in the same nanosecond
    are matched in turn: every window counts all of them or none, so only the labels
    they carry together matter, not which entry gets which. A labelled payment the state
    does not hold (trimmed already, or never recorded online) is skipped. Returns the new
    state and how many entries were matched.
    """
    times = np.asarray(times_ns, dtype=np.int64)
    labels = np.asarray(frauds, dtype=np.int64)
    order = np.argsort(times, kind="stable")
    times, labels = times[order], labels[order]
    # The k-th label at a time goes to the k-th entry at that time.
    first_of_time = np.searchsorted(times, times, side="left")
    occurrence = np.arange(times.size) - first_of_time
    positions = np.searchsorted(history.times_ns, times, side="left") + occurrence
    inside = positions < history.times_ns.size
    matched = inside.copy()
    matched[inside] = history.times_ns[positions[inside]] == times[inside]
    relabelled = history.frauds.copy()
    relabelled[positions[matched]] = labels[matched]
    return TerminalHistory(history.times_ns, relabelled), int(matched.sum())


def _states(
    transactions: pd.DataFrame,
    as_of: datetime,
    entity_column: str,
    entity_key: str,
    retention_ns: int,
    columns: Mapping[str, str | None],
) -> pd.DataFrame:
    """One row per entity with a transaction in [as_of - retention, as_of); list columns.

    `columns` maps each state column to its transactions column (None: the time in ns).
    """
    times = epoch_ns_values(transactions[TX_DATETIME])
    end = epoch_ns(as_of)
    keep = np.flatnonzero((times >= end - retention_ns) & (times < end))
    entities = transactions[entity_column].to_numpy(dtype=np.int64)[keep]
    ids = transactions[TRANSACTION_ID].to_numpy(dtype=np.int64)[keep]
    # Time order inside each entity, ties by transaction id: the order fraud_windows uses.
    order = np.lexsort((ids, times[keep], entities))
    rows = keep[order]
    entities = entities[order]
    # An entity's block starts where the id differs from the previous row's.
    starts = np.flatnonzero(np.diff(entities, prepend=entities[:1] - 1))
    offsets = pa.array(np.r_[starts, entities.size], type=pa.int32())
    state: dict[str, Any] = {entity_key: entities[starts]}
    for name, source in columns.items():
        values = times if source is None else transactions[source].to_numpy()
        state[name] = pa.ListArray.from_arrays(offsets, pa.array(values[rows])).to_pandas()
    return pd.DataFrame(state)


def customer_states(
    transactions: pd.DataFrame, as_of: datetime, *, windows: tuple[int, ...] = DEFAULT_WINDOWS
) -> pd.DataFrame:
    """Every customer's state just before `as_of`: its transactions in the last 30 days.

    Columns: CUSTOMER_KEY, CUSTOMER_TIMES, CUSTOMER_AMOUNTS, CUSTOMER_TERMINALS (arrays
    sorted by time). Customers with no transaction in that window get no row: whatever
    older state the online store holds for them lies outside every window.
    """
    return _states(
        transactions,
        as_of,
        CUSTOMER_ID,
        CUSTOMER_KEY,
        customer_retention_ns(windows),
        {
            CUSTOMER_TIMES: None,
            CUSTOMER_AMOUNTS: TX_AMOUNT,
            CUSTOMER_TERMINALS: TERMINAL_ID,
        },
    )


def terminal_states(
    transactions: pd.DataFrame,
    as_of: datetime,
    *,
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
    windows: tuple[int, ...] = DEFAULT_WINDOWS,
) -> pd.DataFrame:
    """Every terminal's state just before `as_of`: times and labels of its recent transactions.

    Columns: TERMINAL_KEY, TERMINAL_TIMES, TERMINAL_FRAUDS. The labels are the frame's
    TX_FRAUD as given: a label of the last `label_delay_days` is used only once it is due,
    so a frame whose recent labels are still pending (0) gives the same features until then.
    """
    return _states(
        transactions,
        as_of,
        TERMINAL_ID,
        TERMINAL_KEY,
        terminal_retention_ns(label_delay_days, windows),
        {TERMINAL_TIMES: None, TERMINAL_FRAUDS: TX_FRAUD},
    )
