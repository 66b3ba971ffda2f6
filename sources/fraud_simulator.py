"""Seeded simulator of card transactions and frauds, after the Fraud Detection Handbook.

The generative process is the one of the handbook's "Transaction data simulator" chapter
(Le Borgne et al., "Reproducible Machine Learning for Credit Card Fraud Detection"),
written here in vectorised numpy rather than a Python loop per transaction:

- customers sit at a uniform location on a 100 x 100 grid, spend a normal amount of mean
  uniform in [5, 100] and standard deviation half of it, `mean_nb_tx_per_day` uniform in
  [0, 4] times a day; terminals sit at uniform locations on the same grid;
- a customer uses the terminals strictly closer than `radius` (5) to them, uniformly; one
  with none in range makes no transactions;
- each day each customer makes Poisson(mean_nb_tx_per_day) transactions at a time of day
  normal around noon (std 20,000 s), dropped when outside the day; a negative amount is
  replaced by one uniform in (0, 2 x mean);
- frauds, applied in the handbook's order: (1) every amount above 220; (2) each day two
  terminals are compromised for 28 days, all their transactions in that window are fraud;
  (3) each day three customers are compromised for 14 days, a third of their transactions
  in that window have their amount multiplied by 5 and are fraud. These frauds, and what
  was decided where the handbook is silent or quirky about them, are `sources.fraud_patterns`.

Decisions where the handbook is silent or quirky, each kept small:

- TX_FRAUD is 1 if any scenario marked the transaction.
- A replacement amount that rounds to 0.00 becomes 0.01: the contract wants amounts > 0.
- Ids count from 0, as in the handbook: CUSTOMER_ID 0..n_customers-1, TERMINAL_ID
  0..n_terminals-1, and TRANSACTION_ID 0..n-1 in time order.

Every random draw comes from a stream of its own (customers, terminals, transactions,
compromises, scenario-3 picks, card testing), so the customers, terminals and compromises
of a seed are the same under every drift scenario, and `customer_profiles`,
`terminal_profiles` and `compromises` return exactly what `simulate_transactions` used.

Drift scenarios (`SCENARIOS`) feed the monitoring stage: `spending_shift` makes everyone
spend more and more often; `new_fraud_pattern` adds card testing, a kind of fraud the
handbook does not have, labelled TX_FRAUD_SCENARIO 4 (see `features.fraud_schema`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from features.fraud_schema import (
    CUSTOMER_ID,
    GENUINE,
    RAW_COLUMNS,
    SECONDS_PER_DAY,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
    TX_FRAUD_SCENARIO,
    TX_TIME_DAYS,
    TX_TIME_SECONDS,
)
from sources.fraud_patterns import (
    Compromises,
    add_handbook_frauds,
    card_testing,
    draw_compromises,
)

GRID_SIZE = 100.0
DEFAULT_RADIUS = 5.0
DEFAULT_START = "2018-04-01"

# The handbook's transaction model.
MEAN_AMOUNT_RANGE = (5.0, 100.0)
MEAN_TX_PER_DAY_RANGE = (0.0, 4.0)
TIME_OF_DAY_MEAN = SECONDS_PER_DAY / 2
TIME_OF_DAY_STD = 20_000.0
SMALLEST_AMOUNT = 0.01

CUSTOMER_PROFILE_COLUMNS: tuple[str, ...] = (
    CUSTOMER_ID,
    "x_customer_id",
    "y_customer_id",
    "mean_amount",
    "std_amount",
    "mean_nb_tx_per_day",
)
TERMINAL_PROFILE_COLUMNS: tuple[str, ...] = (TERMINAL_ID, "x_terminal_id", "y_terminal_id")

# One independent random stream per part of the process (see the module docstring).
_STREAMS = (
    "customers",
    "terminals",
    "transactions",
    "compromises",
    "compromised_picks",
    "card_testing",
)


@dataclass(frozen=True)
class FraudScenario:
    """One named way the transactions differ from the baseline; the defaults mean no drift."""

    name: str
    description: str
    # Multiplies every customer's mean and standard deviation of spending. The amount-above-
    # 220 rule stays as it is, so more genuine large purchases become scenario-1 frauds.
    amount_factor: float = 1.0
    # Multiplies every customer's mean number of transactions per day.
    tx_per_day_factor: float = 1.0
    # Cards tested per day (card-testing bursts, TX_FRAUD_SCENARIO 4).
    card_tests_per_day: int = 0


SCENARIOS: dict[str, FraudScenario] = {
    scenario.name: scenario
    for scenario in (
        FraudScenario("baseline", "No drift: the handbook's process as published."),
        FraudScenario(
            "new_fraud_pattern",
            "Card testing: each day 5 cards get a burst of 3-8 payments of 0.50-5.00 at a "
            "terminal the customer never uses, within an hour, at any time of day "
            "(fraud scenario 4). The baseline's transactions are otherwise unchanged.",
            card_tests_per_day=5,
        ),
        FraudScenario(
            "spending_shift",
            "Every customer spends 30% more per transaction and transacts 15% more often. "
            "The amount-above-220 rule is unchanged, so scenario-1 frauds become far more "
            "common (about 20x at the default size).",
            amount_factor=1.3,
            tx_per_day_factor=1.15,
        ),
    )
}


def simulate_transactions(
    n_customers: int = 5000,
    n_terminals: int = 10000,
    n_days: int = 183,
    start: str | date | datetime = DEFAULT_START,
    *,
    seed: int = 42,
    radius: float = DEFAULT_RADIUS,
    scenario: str = "baseline",
) -> pd.DataFrame:
    """Simulate `n_days` days of transactions from `start` (midnight UTC; a naive time is UTC).

    Returns the contract's columns (`features.fraud_schema.RAW_COLUMNS`), typed: integers
    int64, TX_AMOUNT float64 in cents, TX_DATETIME datetime64[ns, UTC]; sorted by time with
    TRANSACTION_ID 0..n-1 in that order. Same arguments give an identical frame.
    """
    if min(n_customers, n_terminals, n_days) < 1:
        raise ValueError(
            "n_customers, n_terminals and n_days must be at least 1, got "
            f"{n_customers}, {n_terminals}, {n_days}"
        )
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    drift = SCENARIOS[scenario]
    origin = _start_of_simulation(start)

    customers = customer_profiles(n_customers, seed=seed)
    terminals = terminal_profiles(n_terminals, seed=seed)
    reach = _terminals_in_reach(customers, terminals, radius)
    columns = _genuine_transactions(customers, reach, n_days, drift, _stream(seed, "transactions"))
    drawn = compromises(n_customers, n_terminals, n_days, seed=seed)
    add_handbook_frauds(columns, drawn, n_terminals, n_days, _stream(seed, "compromised_picks"))
    if drift.card_tests_per_day:
        bursts = card_testing(
            customers,
            terminals,
            n_days,
            radius,
            drift.card_tests_per_day,
            _stream(seed, "card_testing"),
        )
        columns = {name: np.concatenate([columns[name], bursts[name]]) for name in columns}

    return _frame_in_time_order(columns, origin)


def _frame_in_time_order(columns: dict[str, np.ndarray], origin: pd.Timestamp) -> pd.DataFrame:
    """The contract's frame from the simulated columns (emptied on the way), sorted by time,
    with TRANSACTION_ID in that order and TX_DATETIME counted from `origin`."""
    order = np.argsort(columns[TX_TIME_SECONDS], kind="stable")
    # Reorder one column at a time, dropping the unordered one: at the default size each
    # column is 14 MB and holding two copies of everything would double the peak memory.
    ordered = {name: columns.pop(name)[order] for name in list(columns)}
    seconds = ordered[TX_TIME_SECONDS]
    scenario_number = ordered.pop(TX_FRAUD_SCENARIO)
    frame = pd.DataFrame(
        {
            TRANSACTION_ID: np.arange(len(order), dtype=np.int64),
            TX_DATETIME: origin + pd.to_timedelta(seconds, unit="s"),
            CUSTOMER_ID: ordered.pop(CUSTOMER_ID),
            TERMINAL_ID: ordered.pop(TERMINAL_ID),
            TX_AMOUNT: ordered.pop(TX_AMOUNT),
            TX_TIME_SECONDS: seconds,
            TX_TIME_DAYS: seconds // SECONDS_PER_DAY,
            TX_FRAUD: (scenario_number != GENUINE).astype(np.int64),
            TX_FRAUD_SCENARIO: scenario_number,
        },
        columns=list(RAW_COLUMNS),
        copy=False,
    )
    return frame


def customer_profiles(n_customers: int, *, seed: int = 42) -> pd.DataFrame:
    """The handbook's customer profile table: location, spending habits, transaction rate.

    These are the baseline's profiles; a drift scenario scales spending and rate on top.
    """
    rng = _stream(seed, "customers")
    # One row of draws per customer, in the handbook's order: x, y, mean amount, rate.
    draws = rng.random((n_customers, 4))
    low, high = MEAN_AMOUNT_RANGE
    mean_amount = low + (high - low) * draws[:, 2]
    rate_low, rate_high = MEAN_TX_PER_DAY_RANGE
    return pd.DataFrame(
        {
            CUSTOMER_ID: np.arange(n_customers, dtype=np.int64),
            "x_customer_id": GRID_SIZE * draws[:, 0],
            "y_customer_id": GRID_SIZE * draws[:, 1],
            "mean_amount": mean_amount,
            "std_amount": mean_amount / 2,
            "mean_nb_tx_per_day": rate_low + (rate_high - rate_low) * draws[:, 3],
        }
    )


def terminal_profiles(n_terminals: int, *, seed: int = 42) -> pd.DataFrame:
    """The handbook's terminal profile table: a location on the grid."""
    xy = GRID_SIZE * _stream(seed, "terminals").random((n_terminals, 2))
    return pd.DataFrame(
        {
            TERMINAL_ID: np.arange(n_terminals, dtype=np.int64),
            "x_terminal_id": xy[:, 0],
            "y_terminal_id": xy[:, 1],
        }
    )


def compromises(n_customers: int, n_terminals: int, n_days: int, *, seed: int = 42) -> Compromises:
    """The terminals and customers compromised on each day (scenarios 2 and 3).

    Each day draws distinct terminals (customers) at random; the same one may be drawn again
    on another day, extending or renewing its window.
    """
    return draw_compromises(n_customers, n_terminals, n_days, _stream(seed, "compromises"))


def write_transactions(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` as CSV (TX_DATETIME as "YYYY-MM-DD HH:MM:SS", UTC) or parquet, by suffix.

    The CSV has a header and no index column, so it reads back with the contract's columns
    only. The file appears complete or not at all: it is written beside the target and
    renamed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: unsupported suffix {path.suffix!r}; use .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        if suffix == ".csv":
            out = frame.copy()
            stamps = out[TX_DATETIME].dt.tz_convert("UTC").dt.tz_localize(None)
            # numpy's formatter is many times faster than strftime on millions of rows.
            iso = np.datetime_as_string(stamps.to_numpy().astype("datetime64[s]"), unit="s")
            out[TX_DATETIME] = np.strings.replace(iso, "T", " ")
            out.to_csv(partial, index=False, lineterminator="\n")
        else:
            frame.to_parquet(partial, index=False)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _stream(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAMS.index(name),)))


def _start_of_simulation(start: str | date | datetime) -> pd.Timestamp:
    """Midnight UTC of the day `start` falls on (in UTC; a naive time is taken as UTC)."""
    stamp = pd.Timestamp(start)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.normalize().as_unit("ns")


@dataclass(frozen=True)
class _Reach:
    """Each customer's terminals in range, as a flat list cut into one slice per customer."""

    terminals: np.ndarray  # terminal ids, customer by customer
    offsets: np.ndarray  # customer c's terminals are terminals[offsets[c]:offsets[c] + counts[c]]
    counts: np.ndarray


def _terminals_in_reach(customers: pd.DataFrame, terminals: pd.DataFrame, radius: float) -> _Reach:
    customer_x = customers["x_customer_id"].to_numpy()
    customer_y = customers["y_customer_id"].to_numpy()
    terminal_x = terminals["x_terminal_id"].to_numpy()
    terminal_y = terminals["y_terminal_id"].to_numpy()
    # Customers in blocks: a full customers x terminals distance matrix at the default size
    # would take 400 MB; a block of 250 rows takes 20 MB.
    block = 250
    found: list[np.ndarray] = []
    counts = np.zeros(len(customer_x), dtype=np.int64)
    for first in range(0, len(customer_x), block):
        last = min(first + block, len(customer_x))
        squared = (customer_x[first:last, None] - terminal_x[None, :]) ** 2
        squared += (customer_y[first:last, None] - terminal_y[None, :]) ** 2
        rows, cols = np.nonzero(squared < radius**2)  # row-major: customer by customer
        found.append(cols.astype(np.int64))
        counts[first:last] = np.bincount(rows, minlength=last - first)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return _Reach(terminals=np.concatenate(found), offsets=offsets, counts=counts)


def _genuine_transactions(
    customers: pd.DataFrame,
    reach: _Reach,
    n_days: int,
    drift: FraudScenario,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """The handbook's transactions before any fraud, in (day, customer) order."""
    n_customers = len(customers)
    rate = customers["mean_nb_tx_per_day"].to_numpy() * drift.tx_per_day_factor
    mean = customers["mean_amount"].to_numpy() * drift.amount_factor
    std = customers["std_amount"].to_numpy() * drift.amount_factor

    per_day = rng.poisson(rate, size=(n_days, n_customers))
    customer = np.repeat(np.tile(np.arange(n_customers), n_days), per_day.ravel())
    day = np.repeat(np.arange(n_days), per_day.sum(axis=1))
    n = len(customer)
    time_of_day = np.floor(rng.normal(TIME_OF_DAY_MEAN, TIME_OF_DAY_STD, n)).astype(np.int64)
    spread = rng.standard_normal(n)
    replacement = rng.random(n)
    pick = rng.random(n)

    amount = mean[customer] + std[customer] * spread
    negative = amount < 0
    amount[negative] = 2 * mean[customer[negative]] * replacement[negative]
    amount = np.maximum(np.round(amount, 2), SMALLEST_AMOUNT)

    # Drawing every array at full length before filtering keeps each draw tied to its
    # transaction, whatever gets dropped.
    n_reachable = reach.counts[customer]
    kept = (time_of_day >= 0) & (time_of_day < SECONDS_PER_DAY) & (n_reachable > 0)
    slot = np.minimum((pick * n_reachable).astype(np.int64), np.maximum(n_reachable - 1, 0))
    # The clip only guards customers with no terminal, whose transactions are dropped anyway.
    pool = reach.terminals if len(reach.terminals) else np.zeros(1, dtype=np.int64)
    terminal = pool[np.minimum(reach.offsets[customer] + slot, len(pool) - 1)]
    return {
        CUSTOMER_ID: customer[kept].astype(np.int64),
        TERMINAL_ID: terminal[kept],
        TX_AMOUNT: amount[kept],
        TX_TIME_SECONDS: day[kept].astype(np.int64) * SECONDS_PER_DAY + time_of_day[kept],
        TX_FRAUD_SCENARIO: np.zeros(int(kept.sum()), dtype=np.int64),
    }
