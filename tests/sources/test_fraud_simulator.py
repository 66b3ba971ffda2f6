"""The fraud simulator: the handbook's process, its fraud rules exactly, determinism, drifts.

One small baseline (300 customers, 600 terminals, 40 days, seed 42; about 23,000
transactions) carries the checks. The handbook compromises a fixed number of terminals and
customers a day whatever the size, so at this size about 10% of transactions are frauds
(8.9%-10.7% over seeds 0-19), not the 0.8% of the default size.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.fraud_schema import (
    CUSTOMER_ID,
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
    CARD_TEST_AMOUNT_RANGE,
    CARD_TEST_BURST_SECONDS,
    CARD_TEST_BURST_SIZE,
)
from sources.fraud_simulator import (
    SCENARIOS,
    compromises,
    customer_profiles,
    simulate_transactions,
    terminal_profiles,
    write_transactions,
)

N_CUSTOMERS, N_TERMINALS, N_DAYS = 300, 600, 40
SMALL = (N_CUSTOMERS, N_TERMINALS, N_DAYS)
SEED = 42
RADIUS = 5.0


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    return simulate_transactions(*SMALL, seed=SEED)


def with_profiles(frame: pd.DataFrame) -> pd.DataFrame:
    """Transactions with their customer's profile and their terminal's location."""
    return frame.merge(customer_profiles(N_CUSTOMERS, seed=SEED), on=CUSTOMER_ID).merge(
        terminal_profiles(N_TERMINALS, seed=SEED), on=TERMINAL_ID
    )


def distance(frame: pd.DataFrame) -> pd.Series:
    return np.hypot(
        frame["x_customer_id"] - frame["x_terminal_id"],
        frame["y_customer_id"] - frame["y_terminal_id"],
    )


# --- schema -----------------------------------------------------------------------------------


def test_columns_dtypes_and_order(transactions: pd.DataFrame) -> None:
    assert list(transactions.columns) == list(RAW_COLUMNS)
    assert transactions[TX_DATETIME].dtype == "datetime64[ns, UTC]"
    assert transactions[TX_AMOUNT].dtype == np.float64
    for column in set(RAW_COLUMNS) - {TX_DATETIME, TX_AMOUNT}:
        assert transactions[column].dtype == np.int64, column
    assert (transactions[TRANSACTION_ID] == np.arange(len(transactions))).all()
    assert transactions[TX_DATETIME].is_monotonic_increasing


def test_times_amounts_and_ids_are_consistent(transactions: pd.DataFrame) -> None:
    start = pd.Timestamp("2018-04-01", tz="UTC")
    seconds = transactions[TX_TIME_SECONDS]
    assert (transactions[TX_DATETIME] == start + pd.to_timedelta(seconds, unit="s")).all()
    assert (transactions[TX_TIME_DAYS] == seconds // SECONDS_PER_DAY).all()
    assert transactions[TX_TIME_DAYS].between(0, N_DAYS - 1).all()
    amount = transactions[TX_AMOUNT]
    assert (amount > 0).all()
    assert np.allclose(amount * 100, np.round(amount * 100)), "amounts are in cents"
    assert transactions[CUSTOMER_ID].between(0, N_CUSTOMERS - 1).all()
    assert transactions[TERMINAL_ID].between(0, N_TERMINALS - 1).all()
    fraud = transactions[TX_FRAUD] == 1
    assert ((transactions[TX_FRAUD_SCENARIO] > 0) == fraud).all()
    assert set(transactions[TX_FRAUD_SCENARIO]) == {0, 1, 2, 3}


def test_size_and_fraud_rate_are_plausible(transactions: pd.DataFrame) -> None:
    # 300 customers x 2 transactions a day on average x 40 days, minus the ~3% drawn outside
    # the day and the few customers with no terminal in reach.
    assert 20_000 < len(transactions) < 26_000
    assert 0.06 < transactions[TX_FRAUD].mean() < 0.14  # 9.1% at seed 42


# --- the handbook's generative process --------------------------------------------------------


def test_transactions_cluster_around_noon(transactions: pd.DataFrame) -> None:
    genuine = transactions[transactions[TX_FRAUD] == 0]
    time_of_day = genuine[TX_TIME_SECONDS] % SECONDS_PER_DAY
    assert abs(time_of_day.mean() - SECONDS_PER_DAY / 2) < 1_000
    # A normal with std 20,000 s cut to the day keeps a std of about 17,500 s.
    assert 15_000 < time_of_day.std() < 19_500
    daytime = time_of_day.between(6 * 3600, 18 * 3600).mean()
    night = (time_of_day < 3 * 3600).mean()
    assert daytime > 0.65
    assert night < 0.05


def test_customers_only_use_terminals_within_the_radius(transactions: pd.DataFrame) -> None:
    located = with_profiles(transactions)
    assert len(located) == len(transactions)
    assert (distance(located) < RADIUS).all()
    # Customers use their terminals about uniformly; most have several in reach.
    assert located.groupby(CUSTOMER_ID)[TERMINAL_ID].nunique().median() >= 3


def test_customers_with_no_terminal_in_reach_make_no_transactions(
    transactions: pd.DataFrame,
) -> None:
    customers = customer_profiles(N_CUSTOMERS, seed=SEED)
    terminals = terminal_profiles(N_TERMINALS, seed=SEED)
    pairs = customers.merge(terminals, how="cross")
    in_reach = pairs[distance(pairs) < RADIUS][CUSTOMER_ID].unique()
    stranded = set(customers[CUSTOMER_ID]) - set(in_reach)
    assert stranded, "at this density a few customers have no terminal in reach"
    assert not stranded & set(transactions[CUSTOMER_ID])


def test_spending_follows_each_customers_profile(transactions: pd.DataFrame) -> None:
    located = with_profiles(transactions[transactions[TX_FRAUD_SCENARIO] != 3])
    per_customer = located.groupby(CUSTOMER_ID).agg(
        mean=(TX_AMOUNT, "mean"), profile=("mean_amount", "first"), n=(TX_AMOUNT, "size")
    )
    busy = per_customer[per_customer["n"] >= 30]
    assert np.corrcoef(busy["mean"], busy["profile"])[0, 1] > 0.95
    assert 0.9 < (busy["mean"] / busy["profile"]).median() < 1.1


# --- fraud scenarios ------------------------------------------------------------------------


def test_every_amount_above_220_is_fraud(transactions: pd.DataFrame) -> None:
    large = transactions[TX_AMOUNT] > 220
    assert large.any()
    assert (transactions.loc[large, TX_FRAUD] == 1).all()
    scenario_1 = transactions[transactions[TX_FRAUD_SCENARIO] == 1]
    assert (scenario_1[TX_AMOUNT] > 220).all()


def test_compromised_terminals_defraud_every_transaction_for_28_days(
    transactions: pd.DataFrame,
) -> None:
    drawn = compromises(*SMALL, seed=SEED)
    assert (drawn.terminals["END_DAY"] - drawn.terminals["START_DAY"] == 28).all()
    assert len(drawn.terminals) == 2 * N_DAYS
    in_window = np.zeros(len(transactions), dtype=bool)
    for terminal, first, end in drawn.terminals.itertuples(index=False):
        in_window |= (transactions[TERMINAL_ID] == terminal).to_numpy() & transactions[
            TX_TIME_DAYS
        ].between(first, end - 1).to_numpy()
    hit = transactions[in_window]
    assert len(hit) > 500
    assert (hit[TX_FRAUD] == 1).all()
    # The scenario number is the last scenario that marked it: 2, or 3 when picked later.
    assert hit[TX_FRAUD_SCENARIO].isin([2, 3]).all()
    assert (transactions.loc[~in_window, TX_FRAUD_SCENARIO] != 2).all()


def test_a_terminal_caught_defrauding_keeps_defrauding_on_the_following_days(
    transactions: pd.DataFrame,
) -> None:
    # Without the schedule: a terminal's first scenario-2 fraud comes soon after its window
    # opened (terminals here see about a transaction a day), so every transaction at it on
    # that day and the next 13 days falls in the same 28-day window and is fraud.
    scenario_2 = transactions[transactions[TX_FRAUD_SCENARIO] == 2]
    first_day = scenario_2.groupby(TERMINAL_ID)[TX_TIME_DAYS].min().rename("first_day")
    at_caught = transactions.merge(first_day, left_on=TERMINAL_ID, right_index=True)
    days_after = at_caught[TX_TIME_DAYS] - at_caught["first_day"]
    following = at_caught[days_after.between(0, 13)]
    assert following[TX_TIME_DAYS].gt(following["first_day"]).sum() > 200
    assert (following[TX_FRAUD] == 1).all()


def test_compromised_customers_lose_a_third_of_their_transactions_at_5x(
    transactions: pd.DataFrame,
) -> None:
    drawn = compromises(*SMALL, seed=SEED)
    windows = drawn.customers
    assert (windows["END_DAY"] - windows["START_DAY"] == 14).all()
    scenario_3 = transactions[TX_FRAUD_SCENARIO] == 3
    covered = np.zeros(len(transactions), dtype=bool)
    for customer, first, end in windows.itertuples(index=False):
        in_window = (transactions[CUSTOMER_ID] == customer) & transactions[TX_TIME_DAYS].between(
            first, end - 1
        )
        covered |= in_window.to_numpy()
        picked = int((in_window & scenario_3).sum())
        same_customer = windows[windows[CUSTOMER_ID] == customer]
        overlaps = ((same_customer["START_DAY"] < end) & (same_customer["END_DAY"] > first)).sum()
        if overlaps == 1:
            assert picked == int(in_window.sum()) // 3
        else:  # overlapping windows of one customer pick a third each, some twice
            assert picked >= int(in_window.sum()) // 3
    assert (transactions.loc[scenario_3, TX_FRAUD] == 1).all()
    assert not (scenario_3 & ~covered).any(), "scenario 3 only inside a compromise window"

    located = with_profiles(transactions)
    ratio = located[TX_AMOUNT] / located["mean_amount"]
    assert 4.5 < ratio[located[TX_FRAUD_SCENARIO] == 3].median() < 5.5
    assert 0.9 < ratio[located[TX_FRAUD_SCENARIO] == 0].median() < 1.1


# --- determinism and drifts -----------------------------------------------------------------


def test_same_seed_same_frame_other_seed_other_frame(transactions: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(simulate_transactions(*SMALL, seed=SEED), transactions)
    other = simulate_transactions(*SMALL, seed=SEED + 1)
    assert len(other) != len(transactions) or not other.equals(transactions)


def test_start_moves_the_timestamps_only(transactions: pd.DataFrame) -> None:
    later = simulate_transactions(*SMALL, seed=SEED, start="2024-01-01")
    shift = pd.Timestamp("2024-01-01", tz="UTC") - pd.Timestamp("2018-04-01", tz="UTC")
    assert (later[TX_DATETIME] - transactions[TX_DATETIME] == shift).all()
    pd.testing.assert_frame_equal(
        later.drop(columns=TX_DATETIME), transactions.drop(columns=TX_DATETIME)
    )


def test_unknown_scenario_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="baseline, new_fraud_pattern, spending_shift"):
        simulate_transactions(*SMALL, scenario="no_such_drift")


def test_scenarios_are_frozen() -> None:
    assert {"baseline", "new_fraud_pattern", "spending_shift"} <= set(SCENARIOS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        SCENARIOS["baseline"].amount_factor = 2.0  # type: ignore[misc]


def test_new_fraud_pattern_adds_card_testing_bursts_and_nothing_else(
    transactions: pd.DataFrame,
) -> None:
    drifted = simulate_transactions(*SMALL, seed=SEED, scenario="new_fraud_pattern")
    testing = drifted[drifted[TX_FRAUD_SCENARIO] == 4]
    assert (testing[TX_FRAUD] == 1).all()
    low, high = CARD_TEST_AMOUNT_RANGE
    assert testing[TX_AMOUNT].between(low, high).all()

    bursts = testing.groupby([CUSTOMER_ID, TERMINAL_ID, TX_TIME_DAYS])[TX_TIME_SECONDS]
    assert bursts.ngroups == 5 * N_DAYS  # 5 cards a day
    assert bursts.size().between(*CARD_TEST_BURST_SIZE).all()
    assert (bursts.max() - bursts.min()).max() < CARD_TEST_BURST_SECONDS
    assert (distance(with_profiles(testing)) >= RADIUS).all(), "a terminal the customer never uses"
    # Card testing happens at any hour, not around noon.
    assert (testing[TX_TIME_SECONDS] % SECONDS_PER_DAY < 6 * 3600).mean() > 0.15

    # Everything else is the baseline, transaction for transaction.
    rest = drifted[drifted[TX_FRAUD_SCENARIO] != 4].drop(columns=TRANSACTION_ID)
    pd.testing.assert_frame_equal(
        rest.reset_index(drop=True), transactions.drop(columns=TRANSACTION_ID)
    )
    assert drifted[TX_FRAUD].mean() > transactions[TX_FRAUD].mean() + 0.02


def test_spending_shift_makes_customers_spend_more_and_more_often(
    transactions: pd.DataFrame,
) -> None:
    drifted = simulate_transactions(*SMALL, seed=SEED, scenario="spending_shift")
    # Scenario-3 amounts are multiplied by 5; every other amount is as the customer drew it.
    own = drifted[TX_FRAUD_SCENARIO] != 3
    baseline_own = transactions[TX_FRAUD_SCENARIO] != 3
    amount_ratio = (
        drifted.loc[own, TX_AMOUNT].mean() / transactions.loc[baseline_own, TX_AMOUNT].mean()
    )
    assert 1.22 < amount_ratio < 1.38
    assert 1.10 < len(drifted) / len(transactions) < 1.20
    # The amount-above-220 rule is fixed, so richer customers trip it far more often.
    large = (drifted[TX_FRAUD_SCENARIO] == 1).sum()
    assert large > 5 * (transactions[TX_FRAUD_SCENARIO] == 1).sum()
    # Same customers and terminals: the profiles do not drift, the behaviour does.
    assert set(drifted[CUSTOMER_ID]) == set(transactions[CUSTOMER_ID])


# --- writing ----------------------------------------------------------------------------------


def test_csv_spells_times_as_the_handbook_does(tmp_path: Path, transactions: pd.DataFrame) -> None:
    path = write_transactions(transactions.head(3), tmp_path / "out" / "tx.csv")
    header, first = path.read_text().splitlines()[:2]
    assert header == ",".join(RAW_COLUMNS)
    stamp = transactions[TX_DATETIME].iloc[0].strftime("%Y-%m-%d %H:%M:%S")
    assert first.split(",")[1] == stamp
    assert [p.name for p in path.parent.iterdir()] == ["tx.csv"], "no partial file left"


def test_write_refuses_an_unknown_suffix(tmp_path: Path, transactions: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"\.json"):
        write_transactions(transactions.head(3), tmp_path / "tx.json")
