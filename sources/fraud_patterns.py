"""The frauds the fraud simulator adds to its genuine transactions, after the Handbook.

The Fraud Detection Handbook's three scenarios, applied in its order by
`add_handbook_frauds` (its `add_frauds`): (1) every amount above 220; (2) each day two
terminals are compromised for 28 days, all their transactions in that window are fraud;
(3) each day three customers are compromised for 14 days, a third of their transactions in
that window have their amount multiplied by 5 and are fraud. `draw_compromises` draws who
is compromised when. `card_testing` is a fourth pattern the handbook does not have, for
the `new_fraud_pattern` drift: bursts of small payments at a terminal the customer never
uses (TX_FRAUD_SCENARIO 4).

Decisions where the handbook is silent or quirky:

- TX_FRAUD_SCENARIO is the last scenario that marked the transaction, as the handbook's
  code does (it overwrites): an amount above 220 at a compromised terminal is scenario 2,
  and a scenario-3 pick is scenario 3 whatever it was before.
- Scenario 3 picks a third (rounded down) of each compromised customer's transactions in
  their window. A transaction picked by two overlapping windows is multiplied by 5 once,
  not 25 times as the handbook's code would.
- Compromises are drawn on every simulated day (the handbook skips the last day); a
  window running past the end just ends with the data.

Each function takes the random generator of its own stream from `sources.fraud_simulator`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.fraud_schema import (
    CUSTOMER_ID,
    SECONDS_PER_DAY,
    TERMINAL_ID,
    TX_AMOUNT,
    TX_FRAUD_SCENARIO,
    TX_TIME_SECONDS,
)

# The handbook's fraud scenarios.
LARGE_AMOUNT_THRESHOLD = 220.0
LARGE_AMOUNT, COMPROMISED_TERMINAL, COMPROMISED_CUSTOMER, CARD_TESTING = 1, 2, 3, 4
TERMINALS_COMPROMISED_PER_DAY = 2
TERMINAL_COMPROMISE_DAYS = 28
CUSTOMERS_COMPROMISED_PER_DAY = 3
CUSTOMER_COMPROMISE_DAYS = 14
COMPROMISED_CUSTOMER_SHARE = 1 / 3
COMPROMISED_AMOUNT_FACTOR = 5.0

# Card testing (new_fraud_pattern): a fraudster checks that a stolen card works with a few
# small payments at one terminal the customer never uses, all within an hour.
CARD_TEST_BURST_SIZE = (3, 8)  # inclusive
CARD_TEST_AMOUNT_RANGE = (0.5, 5.0)
CARD_TEST_BURST_SECONDS = 3_600


@dataclass(frozen=True)
class Compromises:
    """Who was compromised when: one row per draw, days [START_DAY, END_DAY) of the window."""

    terminals: pd.DataFrame  # TERMINAL_ID, START_DAY, END_DAY
    customers: pd.DataFrame  # CUSTOMER_ID, START_DAY, END_DAY


def draw_compromises(
    n_customers: int, n_terminals: int, n_days: int, rng: np.random.Generator
) -> Compromises:
    """The terminals and customers compromised on each day (scenarios 2 and 3).

    Each day draws distinct terminals (customers) at random; the same one may be drawn again
    on another day, extending or renewing its window.
    """
    terminal_rows: list[tuple[int, int]] = []
    customer_rows: list[tuple[int, int]] = []
    for day in range(n_days):
        drawn_terminals = rng.choice(
            n_terminals, size=min(TERMINALS_COMPROMISED_PER_DAY, n_terminals), replace=False
        )
        drawn_customers = rng.choice(
            n_customers, size=min(CUSTOMERS_COMPROMISED_PER_DAY, n_customers), replace=False
        )
        terminal_rows += [(int(t), day) for t in drawn_terminals]
        customer_rows += [(int(c), day) for c in drawn_customers]
    return Compromises(
        terminals=_windows(terminal_rows, TERMINAL_ID, TERMINAL_COMPROMISE_DAYS),
        customers=_windows(customer_rows, CUSTOMER_ID, CUSTOMER_COMPROMISE_DAYS),
    )


def _windows(rows: list[tuple[int, int]], id_column: str, days: int) -> pd.DataFrame:
    ids, starts = (np.array(column, dtype=np.int64) for column in zip(*rows, strict=True))
    return pd.DataFrame({id_column: ids, "START_DAY": starts, "END_DAY": starts + days})


def add_handbook_frauds(
    columns: dict[str, np.ndarray],
    drawn: Compromises,
    n_terminals: int,
    n_days: int,
    rng: np.random.Generator,
) -> None:
    """Label scenarios 1-3 in place, in the handbook's order (a later one overwrites).

    `columns` are the genuine transactions (`TX_AMOUNT`, `TX_FRAUD_SCENARIO`,
    `TX_TIME_SECONDS`, `TERMINAL_ID`, `CUSTOMER_ID`); `rng` picks scenario 3's transactions.
    """
    amount = columns[TX_AMOUNT]
    scenario = columns[TX_FRAUD_SCENARIO]
    day = columns[TX_TIME_SECONDS] // SECONDS_PER_DAY
    terminal = columns[TERMINAL_ID]
    customer = columns[CUSTOMER_ID]

    scenario[amount > LARGE_AMOUNT_THRESHOLD] = LARGE_AMOUNT

    # A (terminal, day) grid of compromised days; each transaction looks up its cell.
    compromised = np.zeros((n_terminals, n_days), dtype=bool)
    for t, first, end in drawn.terminals.itertuples(index=False):
        compromised[t, first:end] = True
    scenario[compromised[terminal, day]] = COMPROMISED_TERMINAL

    # Transactions sorted by (customer, day): one customer's window is a contiguous slice.
    key = customer * n_days + day
    by_customer_day = np.argsort(key, kind="stable")
    sorted_key = key[by_customer_day]
    picked = np.zeros(len(amount), dtype=bool)
    for c, first, end in drawn.customers.itertuples(index=False):
        low = np.searchsorted(sorted_key, c * n_days + first, side="left")
        high = np.searchsorted(sorted_key, c * n_days + min(end, n_days), side="left")
        in_window = high - low
        n_picks = int(in_window * COMPROMISED_CUSTOMER_SHARE)
        if n_picks:
            chosen = low + rng.choice(in_window, size=n_picks, replace=False)
            picked[by_customer_day[chosen]] = True
    amount[picked] = np.round(amount[picked] * COMPROMISED_AMOUNT_FACTOR, 2)
    scenario[picked] = COMPROMISED_CUSTOMER


def card_testing(
    customers: pd.DataFrame,
    terminals: pd.DataFrame,
    n_days: int,
    radius: float,
    cards_per_day: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Card-testing bursts (scenario 4): small payments at an unfamiliar terminal in an hour.

    Gives the bursts' transactions as the same columns as the genuine ones, unordered.
    """
    n_customers, n_terminals = len(customers), len(terminals)
    per_day = min(cards_per_day, n_customers)
    tested = np.concatenate(
        [rng.choice(n_customers, size=per_day, replace=False) for _ in range(n_days)]
    )
    burst_day = np.repeat(np.arange(n_days), per_day)
    n_bursts = len(tested)

    # A terminal out of the customer's reach: redraw the few that fall within it (bounded,
    # in case a tiny grid leaves a customer no terminal out of reach).
    customer_xy = customers[["x_customer_id", "y_customer_id"]].to_numpy()[tested]
    terminal_xy = terminals[["x_terminal_id", "y_terminal_id"]].to_numpy()
    burst_terminal = rng.integers(n_terminals, size=n_bursts)
    for _ in range(100):
        near = ((terminal_xy[burst_terminal] - customer_xy) ** 2).sum(axis=1) < radius**2
        if not near.any():
            break
        burst_terminal[near] = rng.integers(n_terminals, size=int(near.sum()))

    low, high = CARD_TEST_BURST_SIZE
    size = rng.integers(low, high + 1, size=n_bursts)
    burst_start = rng.integers(SECONDS_PER_DAY - CARD_TEST_BURST_SECONDS, size=n_bursts)
    burst = np.repeat(np.arange(n_bursts), size)
    n = len(burst)
    offset = rng.integers(CARD_TEST_BURST_SECONDS, size=n)
    amount_low, amount_high = CARD_TEST_AMOUNT_RANGE
    amount = np.round(rng.uniform(amount_low, amount_high, size=n), 2)
    return {
        CUSTOMER_ID: tested[burst].astype(np.int64),
        TERMINAL_ID: burst_terminal[burst].astype(np.int64),
        TX_AMOUNT: amount,
        TX_TIME_SECONDS: burst_day[burst] * SECONDS_PER_DAY + burst_start[burst] + offset,
        TX_FRAUD_SCENARIO: np.full(n, CARD_TESTING, dtype=np.int64),
    }
