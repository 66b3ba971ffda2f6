"""The online fraud features equal the offline ones: hand-made history, ties, delay, simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from features.fraud_online import (
    CUSTOMER_AMOUNTS,
    CUSTOMER_KEY,
    CUSTOMER_TERMINALS,
    CUSTOMER_TIMES,
    PENDING_LABEL,
    REQUEST_AMOUNT,
    REQUEST_TIME,
    TERMINAL_FRAUDS,
    TERMINAL_KEY,
    TERMINAL_TIMES,
    CustomerHistory,
    TerminalHistory,
    append_customer_transaction,
    append_terminal_transaction,
    customer_retention_ns,
    customer_states,
    epoch_ns,
    features_from_feast_inputs,
    online_fraud_features,
    terminal_retention_ns,
    terminal_states,
)
from features.fraud_windows import FRAUD_FEATURES, SECONDS_SINCE_PREV_CAP, fraud_window_features
from sources.fraud_simulator import simulate_transactions
from tests.features.hand_history import HAND_EXPECTED, HAND_HISTORY, at
from tests.features.test_fraud_windows import random_history

DAY_NS = 86_400 * 1_000_000_000


def states_as_of(
    transactions: pd.DataFrame, as_of: pd.Timestamp
) -> tuple[dict[int, CustomerHistory], dict[int, TerminalHistory]]:
    customers = customer_states(transactions, as_of)
    terminals = terminal_states(transactions, as_of)
    return (
        {
            int(row[CUSTOMER_KEY]): CustomerHistory.from_lists(
                row[CUSTOMER_TIMES], row[CUSTOMER_AMOUNTS], row[CUSTOMER_TERMINALS]
            )
            for _, row in customers.iterrows()
        },
        {
            int(row[TERMINAL_KEY]): TerminalHistory.from_lists(
                row[TERMINAL_TIMES], row[TERMINAL_FRAUDS]
            )
            for _, row in terminals.iterrows()
        },
    )


def features_of(
    tx: pd.Series, customer: CustomerHistory, terminal: TerminalHistory
) -> dict[str, float]:
    return online_fraud_features(
        customer,
        terminal,
        epoch_ns(tx["TX_DATETIME"]),
        float(tx["TX_AMOUNT"]),
        int(tx["TERMINAL_ID"]),
    )


@pytest.mark.parametrize("transaction_id", sorted(HAND_EXPECTED))
def test_hand_made_history_from_the_state_just_before(transaction_id: int) -> None:
    """The state built as of the transaction's own time gives the hand-worked features."""
    tx = HAND_HISTORY.set_index("TRANSACTION_ID").loc[transaction_id]
    customers, terminals = states_as_of(HAND_HISTORY, tx["TX_DATETIME"])
    got = features_of(
        tx,
        customers.get(int(tx["CUSTOMER_ID"]), CustomerHistory.empty()),
        terminals.get(int(tx["TERMINAL_ID"]), TerminalHistory.empty()),
    )
    assert list(got) == list(FRAUD_FEATURES)
    assert_allclose(list(got.values()), HAND_EXPECTED[transaction_id], rtol=1e-12, atol=1e-12)


def test_transactions_at_the_same_time_do_not_see_each_other() -> None:
    # #2 and #3 share a second; once #2 is recorded, #3 must still not count it.
    customers, _ = states_as_of(HAND_HISTORY, at(1, "10:00:00"))
    tx2, tx3 = HAND_HISTORY.iloc[1], HAND_HISTORY.iloc[2]
    with_tie = append_customer_transaction(
        customers[1], epoch_ns(tx2["TX_DATETIME"]), tx2["TX_AMOUNT"], tx2["TERMINAL_ID"]
    )
    assert with_tie.times_ns.size == customers[1].times_ns.size + 1
    assert features_of(tx3, with_tie, TerminalHistory.empty()) == features_of(
        tx3, customers[1], TerminalHistory.empty()
    )


def test_terminal_labels_are_used_only_after_the_delay() -> None:
    fraud_at = epoch_ns(at(2, "12:00:00"))
    terminal = TerminalHistory(np.array([fraud_at]), np.array([1]))
    customer = CustomerHistory.empty()

    def risk_7d(seconds_after_delay: int) -> float:
        t = fraud_at + 7 * DAY_NS + seconds_after_delay * 1_000_000_000
        return online_fraud_features(customer, terminal, t, 10.0, 10)["terminal_risk_7d"]

    assert risk_7d(0) == 0.0  # exactly `delay` later: the label is not known yet
    assert risk_7d(1) == 1.0
    assert risk_7d(7 * 86_400) == 1.0  # the last second of the 7-day window
    assert risk_7d(7 * 86_400 + 1) == 0.0


def test_a_card_and_terminal_never_seen_follow_the_empty_window_conventions() -> None:
    inputs = {
        CUSTOMER_TIMES: [None],
        CUSTOMER_AMOUNTS: [None],
        CUSTOMER_TERMINALS: [None],
        TERMINAL_TIMES: [None],
        TERMINAL_FRAUDS: [None],
        TERMINAL_KEY: [7],
        REQUEST_TIME: [epoch_ns(at(5, "03:00:00"))],  # Saturday night
        REQUEST_AMOUNT: [42.5],
    }
    got = {name: values[0] for name, values in features_from_feast_inputs(inputs).items()}
    expected = dict.fromkeys(FRAUD_FEATURES, 0.0) | {
        "tx_amount": 42.5,
        "tx_during_weekend": 1.0,
        "tx_during_night": 1.0,
        "amount_to_customer_avg_30d": 1.0,
        "seconds_since_customer_prev_tx": SECONDS_SINCE_PREV_CAP,
    }
    assert got == expected


def test_appending_keeps_time_order_and_drops_what_no_window_reaches() -> None:
    customer = CustomerHistory.empty()
    terminal = TerminalHistory.empty()
    times = [epoch_ns(at(day, "12:00:00")) for day in (0, 10, 20, 31, 45)]
    for t in times:
        customer = append_customer_transaction(customer, t, 1.0, 3)
        terminal = append_terminal_transaction(terminal, t)
    assert customer.times_ns.tolist() == times[2:]  # [45 - 30, 45]: from day 20 on
    assert terminal.times_ns.tolist() == times[1:]  # [45 - 37, 45]: from day 10 on
    assert terminal.frauds.tolist() == [PENDING_LABEL] * 4
    late = append_customer_transaction(customer, times[3] - 1, 2.0, 4)
    assert late.times_ns.tolist() == [times[2], times[3] - 1, *times[3:]]
    assert late.amounts.tolist() == [1.0, 2.0, 1.0, 1.0]
    assert late.terminal_ids.tolist() == [3, 4, 3, 3]


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return simulate_transactions(50, 100, 40, seed=5)


def test_every_simulated_transaction_online_equals_offline(simulated: pd.DataFrame) -> None:
    """Replay the whole history: features first, then the transaction joins both states."""
    offline = fraud_window_features(simulated)[list(FRAUD_FEATURES)].to_numpy()
    customers: dict[int, CustomerHistory] = {}
    terminals: dict[int, TerminalHistory] = {}
    online = np.empty_like(offline)
    longest = {"customer": 0, "terminal": 0}
    for i, tx in enumerate(simulated.itertuples(index=False)):
        t = epoch_ns(tx.TX_DATETIME)
        customer = customers.get(tx.CUSTOMER_ID, CustomerHistory.empty())
        terminal = terminals.get(tx.TERMINAL_ID, TerminalHistory.empty())
        row = online_fraud_features(customer, terminal, t, tx.TX_AMOUNT, tx.TERMINAL_ID)
        online[i] = list(row.values())
        customers[tx.CUSTOMER_ID] = append_customer_transaction(
            customer, t, tx.TX_AMOUNT, tx.TERMINAL_ID
        )
        terminals[tx.TERMINAL_ID] = append_terminal_transaction(terminal, t, tx.TX_FRAUD)
        longest["customer"] = max(longest["customer"], customers[tx.CUSTOMER_ID].times_ns.size)
        longest["terminal"] = max(longest["terminal"], terminals[tx.TERMINAL_ID].times_ns.size)
    assert len(simulated) > 2000 and simulated["TX_FRAUD"].sum() > 20
    assert_allclose(online, offline, rtol=1e-9, atol=1e-9)
    # Trimming bounds the states: nobody keeps the whole 40 days.
    assert 0 < longest["customer"] < simulated.groupby("CUSTOMER_ID").size().max()


def test_replay_with_many_ties_and_frauds_equals_offline() -> None:
    """Hour-aligned times put frauds and genuine payments of a terminal at one timestamp;
    replayed in time order but ties in no particular order, the terminal's fraud run (where
    the order of tied entries could matter) and every other feature match offline."""
    tx = random_history(seed=6, size=1500, terminals=4)
    offline = fraud_window_features(tx)[list(FRAUD_FEATURES)]
    replay = tx.sort_values("TX_DATETIME", kind="stable")  # ties keep the shuffled order
    customers: dict[int, CustomerHistory] = {}
    terminals: dict[int, TerminalHistory] = {}
    online = []
    for row in replay.itertuples(index=False):
        t = epoch_ns(row.TX_DATETIME)
        customer = customers.get(row.CUSTOMER_ID, CustomerHistory.empty())
        terminal = terminals.get(row.TERMINAL_ID, TerminalHistory.empty())
        got = online_fraud_features(customer, terminal, t, row.TX_AMOUNT, row.TERMINAL_ID)
        online.append(list(got.values()))
        customers[row.CUSTOMER_ID] = append_customer_transaction(
            customer, t, row.TX_AMOUNT, row.TERMINAL_ID
        )
        terminals[row.TERMINAL_ID] = append_terminal_transaction(terminal, t, row.TX_FRAUD)
    assert_allclose(np.array(online), offline.loc[replay.index].to_numpy(), rtol=1e-12, atol=0)
    in_run = offline["terminal_in_fraud_run"]
    assert 0.05 < in_run.mean() < 0.6, "the history should open and close many runs"


def test_states_built_at_a_cut_off_give_the_offline_features(simulated: pd.DataFrame) -> None:
    """customer_states/terminal_states as of T0, then appends, match offline after T0."""
    as_of = pd.Timestamp("2018-04-01", tz="UTC") + pd.Timedelta(days=38)
    customers, terminals = states_as_of(simulated, as_of)
    t0 = epoch_ns(as_of)
    for history in customers.values():
        assert history.times_ns.min() >= t0 - customer_retention_ns()
        assert np.all(np.diff(history.times_ns) >= 0) and history.times_ns.max() < t0
    for history in terminals.values():
        assert history.times_ns.min() >= t0 - terminal_retention_ns()
    after = simulated[simulated["TX_DATETIME"] >= as_of]
    offline = fraud_window_features(simulated).loc[after.index, list(FRAUD_FEATURES)]
    online = []
    for _, tx in after.iterrows():
        c, k = int(tx["CUSTOMER_ID"]), int(tx["TERMINAL_ID"])
        customer = customers.get(c, CustomerHistory.empty())
        terminal = terminals.get(k, TerminalHistory.empty())
        online.append(list(features_of(tx, customer, terminal).values()))
        t = epoch_ns(tx["TX_DATETIME"])
        customers[c] = append_customer_transaction(customer, t, tx["TX_AMOUNT"], k)
        terminals[k] = append_terminal_transaction(terminal, t)  # pending: within the delay
    assert len(online) > 100
    assert_allclose(np.array(online), offline.to_numpy(), rtol=1e-9, atol=1e-9)


def test_epoch_ns_agrees_for_datetimes_and_timestamps() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    moment = datetime(2024, 1, 6, 3, 0, 0, 123_456, tzinfo=UTC)
    assert epoch_ns(moment) == pd.Timestamp(moment).value
    paris = moment.astimezone(timezone(timedelta(hours=1)))
    assert epoch_ns(paris) == epoch_ns(moment)
    with pytest.raises(ValueError, match="timezone-aware"):
        epoch_ns(moment.replace(tzinfo=None))
