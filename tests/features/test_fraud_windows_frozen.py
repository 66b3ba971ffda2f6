"""Today's fraud window features equal, to the last bit, those of the formula the models
were trained with (`tests/features/frozen_fraud_windows.py`), on random histories.

Random histories reach what hand-made ones do not: ties of many rows at one timestamp,
shuffled input, fractions of a second, enough customers and terminals that a (customer,
terminal) pair's code needs more than 16 bits, days around midnight and weekends, amounts
whose running sums round. Every column is compared bit by bit (0.0 and -0.0 differ).

The frozen formula predates the features of issue 15 (`amount_zscore_to_customer_30d`,
`terminal_in_fraud_run`, `terminal_fraud_run_days`): every column it has is compared, and
those are pinned by the naive reference and the hand-made history of
tests/features/test_fraud_windows.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from features import fraud_windows as today
from tests.features import frozen_fraud_windows as frozen

START = pd.Timestamp("2025-03-01", tz="UTC")


def random_history(
    seed: int,
    rows: int,
    *,
    customers: int,
    terminals: int,
    days: int,
    tick_ns: int = 1_000_000_000,
    order: str = "shuffled",
) -> pd.DataFrame:
    """`rows` transactions over `days` days, times on a grid of `tick_ns` (coarse grids
    give many ties), ids unique, about 3% frauds; rows in `order`: "shuffled", "time,
    then id" or "time, then id descending"."""
    rng = np.random.default_rng(seed)
    ticks = rng.integers(0, days * 86_400 * 1_000_000_000 // tick_ns, rows)
    # A few entities much busier than the rest, as in the simulator.
    customer_ids = (rng.zipf(1.6, rows) % customers) * 7_919 + 10**12
    terminal_ids = rng.integers(0, terminals, rows) * 31 + 5
    frame = pd.DataFrame(
        {
            "TRANSACTION_ID": rng.permutation(rows).astype(np.int64) * 3 + 1,
            "TX_DATETIME": START + pd.to_timedelta(ticks * tick_ns, unit="ns"),
            "CUSTOMER_ID": customer_ids.astype(np.int64),
            "TERMINAL_ID": terminal_ids.astype(np.int64),
            "TX_AMOUNT": np.round(rng.lognormal(3.5, 1.2, rows), 2),
            "TX_FRAUD": (rng.random(rows) < 0.03).astype(np.int64),
        }
    )
    if order == "shuffled":
        return frame.sample(frac=1.0, random_state=seed)
    # In time order, ties by id ascending (as a validated file is) or descending.
    by_id = order == "time, then id"
    return frame.sort_values(["TX_DATETIME", "TRANSACTION_ID"], ascending=[True, by_id])


def assert_bit_identical(
    ours: dict[str, npt.NDArray[np.float64]] | pd.DataFrame,
    theirs: dict[str, npt.NDArray[np.float64]] | pd.DataFrame,
    names: tuple[str, ...] | list[str],
) -> None:
    for name in names:
        mine = np.asarray(ours[name], dtype=np.float64)
        frozen_values = np.asarray(theirs[name], dtype=np.float64)
        assert mine.shape == frozen_values.shape, name
        differ = mine.view(np.int64) != frozen_values.view(np.int64)
        assert not differ.any(), (
            f"{name}: {int(differ.sum())} rows differ, first at {int(np.flatnonzero(differ)[0])}"
        )


HISTORIES: dict[str, dict[str, Any]] = {
    "simulator-like": dict(rows=60_000, customers=500, terminals=1_000, days=90),
    "many ties (minute grid)": dict(
        rows=40_000, customers=50, terminals=80, days=40, tick_ns=60_000_000_000
    ),
    "sub-second times": dict(rows=20_000, customers=300, terminals=400, days=35, tick_ns=1_000),
    "pairs past 16 bits": dict(rows=50_000, customers=3_000, terminals=3_000, days=60),
    "in time order": dict(
        rows=30_000, customers=200, terminals=300, days=45, tick_ns=10**10, order="time, then id"
    ),
    "in time order, ties by id descending": dict(
        rows=30_000,
        customers=200,
        terminals=300,
        days=45,
        tick_ns=10**10,
        order="time, then id descending",
    ),
}


@pytest.mark.parametrize("name", sorted(HISTORIES))
@pytest.mark.parametrize("seed", [1, 2])
def test_every_feature_is_the_frozen_formulas(name: str, seed: int) -> None:
    history = random_history(seed, **HISTORIES[name])
    ours = today.fraud_window_features(history)
    theirs = frozen.fraud_window_features(history)
    pd.testing.assert_frame_equal(ours[list(theirs.columns)], theirs, check_exact=True)
    assert_bit_identical(ours, theirs, frozen.FRAUD_FEATURES)
    assert_bit_identical(today.fraud_feature_columns(history), theirs, frozen.FRAUD_FEATURES)


@pytest.mark.parametrize(("delay", "windows"), [(0, (1, 7, 30)), (3, (2, 5)), (14, (30, 1))])
def test_other_delays_and_windows_are_the_frozen_formulas(
    delay: int, windows: tuple[int, ...]
) -> None:
    history = random_history(3, 30_000, customers=400, terminals=300, days=60)
    ours = today.fraud_window_features(history, label_delay_days=delay, windows=windows)
    theirs = frozen.fraud_window_features(history, label_delay_days=delay, windows=windows)
    assert set(theirs.columns) < set(ours.columns)
    assert_bit_identical(ours, theirs, frozen.fraud_feature_names(windows))


def test_each_part_alone_is_the_frozen_formulas() -> None:
    # The Dask path calls the parts on partitions of whole customers or terminals.
    history = random_history(4, 20_000, customers=200, terminals=300, days=50)
    for part in (
        "calendar_features",
        "customer_spending_windows",
        "terminal_risk_windows",
        "customer_habit_features",
    ):
        ours = getattr(today, part)(history)
        theirs = getattr(frozen, part)(history)
        assert set(theirs) <= set(ours), part
        assert_bit_identical(ours, theirs, list(theirs))


def test_calendar_flags_around_midnight_and_weekends() -> None:
    # Every second of the hours around midnight at the start and end of a weekend, and
    # times before the epoch: the flags are the frozen (pandas calendar) ones.
    edges = [
        pd.Timestamp("2025-03-07 23:00", tz="UTC"),  # Friday night into Saturday
        pd.Timestamp("2025-03-09 23:00", tz="UTC"),  # Sunday night into Monday
        pd.Timestamp("1969-12-27 23:00", tz="UTC"),  # before the epoch, Saturday
    ]
    stamps = pd.DatetimeIndex(
        np.concatenate([pd.date_range(edge, periods=8 * 3_600, freq="s") for edge in edges])
    )
    history = pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(len(stamps)),
            "TX_DATETIME": stamps,
            "CUSTOMER_ID": 1,
            "TERMINAL_ID": 2,
            "TX_AMOUNT": 10.0,
            "TX_FRAUD": 0,
        }
    )
    ours = today.calendar_features(history)
    assert_bit_identical(ours, frozen.calendar_features(history), list(ours))
    assert ours["tx_during_weekend"].any() and not ours["tx_during_weekend"].all()
    assert ours["tx_during_night"].any() and not ours["tx_during_night"].all()
