"""The fraud window features: a hand-made history, a naive reference, and no leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from features.fraud_windows import (
    FRAUD_FEATURES,
    KEY_COLUMNS,
    fraud_feature_names,
    fraud_window_features,
)
from tests.features.hand_history import CAP, DAY, HAND_EXPECTED, HAND_HISTORY, ORIGIN, frame


def test_feature_order_is_fixed() -> None:
    assert fraud_feature_names((1, 7, 30)) == FRAUD_FEATURES
    assert FRAUD_FEATURES[:5] == (
        "tx_amount",
        "tx_during_weekend",
        "tx_during_night",
        "customer_nb_tx_1d",
        "customer_avg_amount_1d",
    )
    assert len(FRAUD_FEATURES) == len(set(FRAUD_FEATURES)) == 21


@pytest.mark.parametrize("transaction_id", sorted(HAND_EXPECTED))
def test_hand_made_history(transaction_id: int) -> None:
    features = fraud_window_features(HAND_HISTORY, label_delay_days=7).set_index("TRANSACTION_ID")
    got = features.loc[transaction_id, list(FRAUD_FEATURES)].to_numpy(dtype=float)
    expected = np.array(HAND_EXPECTED[transaction_id], dtype=float)
    for name, value, want in zip(FRAUD_FEATURES, got, expected, strict=True):
        assert value == pytest.approx(want, rel=1e-12, abs=1e-12), f"#{transaction_id} {name}"


def test_output_shape_types_and_order() -> None:
    # Shuffled input with an extra column and a non-default index: rows come back in input
    # order with the input index, and the extra column is ignored.
    shuffled = HAND_HISTORY.sample(frac=1.0, random_state=3).assign(TX_TIME_DAYS=0)
    shuffled.index = shuffled.index + 100
    features = fraud_window_features(shuffled)
    assert list(features.columns) == [*KEY_COLUMNS, *FRAUD_FEATURES]
    assert features.index.equals(shuffled.index)
    assert features["TRANSACTION_ID"].tolist() == shuffled["TRANSACTION_ID"].tolist()
    assert (features[list(FRAUD_FEATURES)].dtypes == np.float64).all()
    for ours, theirs in (("tx_amount", "TX_AMOUNT"), ("TRANSACTION_ID", "TRANSACTION_ID")):
        assert not np.shares_memory(features[ours].to_numpy(), shuffled[theirs].to_numpy())
    in_time_order = fraud_window_features(HAND_HISTORY).set_index("TRANSACTION_ID")
    pd.testing.assert_frame_equal(
        features.set_index("TRANSACTION_ID").loc[in_time_order.index],
        in_time_order,
        check_exact=True,
    )


def test_label_delay_is_a_parameter() -> None:
    # With no delay, #8 (day 9 12:00:01, terminal 10) sees #6 and #7 in its 7-day window
    # (the fraud #4 is one second too old), and #1, #2, #4, #6, #7 in its 30-day window.
    features = fraud_window_features(HAND_HISTORY, label_delay_days=0).set_index("TRANSACTION_ID")
    assert features.loc[8, "terminal_nb_tx_7d"] == 2.0
    assert features.loc[8, "terminal_risk_7d"] == 0.0
    assert features.loc[8, "terminal_nb_tx_30d"] == 5.0
    assert features.loc[8, "terminal_risk_30d"] == pytest.approx(1 / 5)


def test_empty_history() -> None:
    features = fraud_window_features(HAND_HISTORY.iloc[:0])
    assert features.empty
    assert list(features.columns) == [*KEY_COLUMNS, *FRAUD_FEATURES]


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="TX_FRAUD"):
        fraud_window_features(HAND_HISTORY.drop(columns="TX_FRAUD"))
    naive = HAND_HISTORY.assign(TX_DATETIME=HAND_HISTORY["TX_DATETIME"].dt.tz_localize(None))
    with pytest.raises(ValueError, match="timezone"):
        fraud_window_features(naive)
    with pytest.raises(ValueError, match="windows"):
        fraud_window_features(HAND_HISTORY, windows=(7, 7))
    with pytest.raises(ValueError, match="label_delay_days"):
        fraud_window_features(HAND_HISTORY, label_delay_days=-1)


def random_history(seed: int, size: int, customers: int = 8, terminals: int = 6) -> pd.DataFrame:
    """Random transactions over ~45 days, shuffled.

    Most timestamps sit on whole hours, so ties and hits on window and delay boundaries are
    common; the rest are at arbitrary seconds.
    """
    rng = np.random.default_rng(seed)
    hours = rng.integers(0, 45 * 24, size)
    seconds = np.where(rng.random(size) < 0.3, rng.integers(0, 3600, size), 0)
    stamps = ORIGIN + pd.to_timedelta(hours * 3600 + seconds, unit="s")
    tx = frame(
        list(
            zip(
                range(size),
                stamps,
                rng.integers(0, customers, size).tolist(),
                rng.integers(0, terminals, size).tolist(),
                np.round(rng.lognormal(3.5, 1.0, size), 2).tolist(),
                (rng.random(size) < 0.2).astype(int).tolist(),
                strict=True,
            )
        )
    )
    return tx.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def naive_features(
    tx: pd.DataFrame, label_delay_days: int, windows: tuple[int, ...]
) -> pd.DataFrame:
    """The slow, obvious definition: filter the whole history for every transaction."""
    # Lower-case field names: plain attributes, not constants, for the reader and the linter.
    history = list(tx.rename(columns=str.lower).itertuples(index=False))
    rows = []
    for me in history:
        t = me.tx_datetime
        row: dict[str, float] = {
            "tx_amount": me.tx_amount,
            "tx_during_weekend": float(t.dayofweek in (5, 6)),
            "tx_during_night": float(t.hour < 6),
        }
        mine = [o for o in history if o.customer_id == me.customer_id and o.tx_datetime < t]
        for w in windows:
            amounts = [o.tx_amount for o in mine if o.tx_datetime >= t - w * DAY]
            row[f"customer_nb_tx_{w}d"] = len(amounts)
            row[f"customer_avg_amount_{w}d"] = sum(amounts) / len(amounts) if amounts else 0.0
        known_before = t - label_delay_days * DAY
        for w in windows:
            labels = [
                o.tx_fraud
                for o in history
                if o.terminal_id == me.terminal_id
                and known_before - w * DAY <= o.tx_datetime < known_before
            ]
            row[f"terminal_nb_tx_{w}d"] = len(labels)
            row[f"terminal_risk_{w}d"] = sum(labels) / len(labels) if labels else 0.0
        known = [
            o
            for o in history
            if o.terminal_id == me.terminal_id
            and known_before - max(windows) * DAY <= o.tx_datetime < known_before
        ]
        last_genuine = max((o.tx_datetime for o in known if not o.tx_fraud), default=None)
        run = [
            o.tx_datetime
            for o in known
            if o.tx_fraud and (last_genuine is None or o.tx_datetime > last_genuine)
        ]
        row["terminal_in_fraud_run"] = float(bool(run))
        row["terminal_fraud_run_days"] = (t - min(run)) / DAY if run else 0.0
        last_30d = [o for o in mine if o.tx_datetime >= t - 30 * DAY]
        mean_30d = sum(o.tx_amount for o in last_30d) / len(last_30d) if last_30d else 0.0
        row["amount_to_customer_avg_30d"] = me.tx_amount / mean_30d if mean_30d > 0 else 1.0
        previous = max((o.tx_datetime for o in mine), default=None)
        row["seconds_since_customer_prev_tx"] = (
            min((t - previous).total_seconds(), CAP) if previous is not None else CAP
        )
        row["customer_nb_tx_at_terminal_30d"] = sum(
            o.terminal_id == me.terminal_id for o in last_30d
        )
        spread = max(float(np.std([o.tx_amount for o in last_30d])), 1.0) if last_30d else 1.0
        row["amount_zscore_to_customer_30d"] = (
            (me.tx_amount - mean_30d) / spread if last_30d else 0.0
        )
        rows.append(row)
    return pd.DataFrame(rows, index=tx.index)


@pytest.mark.parametrize(
    ("seed", "label_delay_days", "windows"),
    [(0, 7, (1, 7, 30)), (1, 7, (1, 7, 30)), (2, 0, (1, 7, 30)), (3, 3, (2, 5, 14))],
)
def test_matches_naive_reference(
    seed: int, label_delay_days: int, windows: tuple[int, ...]
) -> None:
    tx = random_history(seed, size=300)
    assert tx["TX_DATETIME"].duplicated().sum() > 10, "the sample should contain ties"
    got = fraud_window_features(tx, label_delay_days=label_delay_days, windows=windows)
    want = naive_features(tx, label_delay_days, windows)
    for name in fraud_feature_names(windows):
        assert_allclose(got[name].to_numpy(), want[name].to_numpy(), rtol=1e-12, err_msg=name)


def test_input_row_order_does_not_matter() -> None:
    # Ties are ordered by transaction id inside the computation, so even the rounding of
    # the sums is the same whatever order the rows arrive in.
    tx = random_history(seed=4, size=3000)
    by_time = tx.sort_values(["TX_DATETIME", "TRANSACTION_ID"])
    reversed_ids = tx.sort_values("TRANSACTION_ID", ascending=False)
    ours = fraud_window_features(tx).set_index("TRANSACTION_ID").sort_index()
    for other in (by_time, reversed_ids):
        got = fraud_window_features(other).set_index("TRANSACTION_ID").sort_index()
        pd.testing.assert_frame_equal(got, ours, check_exact=True)


# No leakage: whatever happens at or after a cut-off t, the features of transactions up to t
# (and terminal risk up to t + delay) stay bit-for-bit the same.

DELAY = 7


@pytest.fixture
def history() -> pd.DataFrame:
    return random_history(seed=11, size=400)


def cut_off(history: pd.DataFrame) -> pd.Timestamp:
    """A timestamp in the middle of the history that several transactions share."""
    stamps = history["TX_DATETIME"]
    shared = stamps[stamps.duplicated(keep=False)].sort_values()
    return shared.iloc[len(shared) // 2]


def by_id(features: pd.DataFrame, mask: pd.Series, columns: list[str]) -> pd.DataFrame:
    return features.loc[mask.to_numpy(), ["TRANSACTION_ID", *columns]].set_index("TRANSACTION_ID")


def test_future_labels_do_not_leak(history: pd.DataFrame) -> None:
    t = cut_off(history)
    changed = history.copy()
    later = changed["TX_DATETIME"] >= t
    changed.loc[later, "TX_FRAUD"] = 1 - changed.loc[later, "TX_FRAUD"]

    before = fraud_window_features(history, label_delay_days=DELAY)
    after = fraud_window_features(changed, label_delay_days=DELAY)
    # A label at s >= t is known only strictly after s + delay, so up to t + delay inclusive
    # nothing may move, terminal risk included.
    unaffected = history["TX_DATETIME"] <= t + DELAY * DAY
    columns = list(FRAUD_FEATURES)
    pd.testing.assert_frame_equal(
        by_id(after, unaffected, columns), by_id(before, unaffected, columns), check_exact=True
    )
    # The change is real: later transactions do see it.
    risk = [c for c in FRAUD_FEATURES if c.startswith(("terminal_risk", "terminal_fraud_run"))]
    assert not by_id(after, ~unaffected, risk).equals(by_id(before, ~unaffected, risk))


def test_future_amounts_do_not_leak(history: pd.DataFrame) -> None:
    t = cut_off(history)
    changed = history.copy()
    later = changed["TX_DATETIME"] >= t
    changed.loc[later, "TX_AMOUNT"] = changed.loc[later, "TX_AMOUNT"] * 7.0 + 1.0

    before = fraud_window_features(history, label_delay_days=DELAY)
    after = fraud_window_features(changed, label_delay_days=DELAY)
    earlier = history["TX_DATETIME"] < t
    columns = list(FRAUD_FEATURES)
    pd.testing.assert_frame_equal(
        by_id(after, earlier, columns), by_id(before, earlier, columns), check_exact=True
    )
    # At t itself only the transaction's own amount (and how it compares with history) may change:
    # its ties' amounts must not reach it.
    own = {"tx_amount", "amount_to_customer_avg_30d", "amount_zscore_to_customer_30d"}
    at_t = history["TX_DATETIME"] == t
    others = [c for c in FRAUD_FEATURES if c not in own]
    pd.testing.assert_frame_equal(
        by_id(after, at_t, others), by_id(before, at_t, others), check_exact=True
    )
    assert not by_id(after, ~earlier, others).equals(by_id(before, ~earlier, others))


def test_added_transactions_do_not_leak(history: pd.DataFrame) -> None:
    t = cut_off(history)
    rng = np.random.default_rng(5)
    size = 60
    # New transactions for the same customers and terminals, a third exactly at t.
    offsets = np.where(np.arange(size) % 3 == 0, 0, rng.integers(1, 20 * 86_400, size))
    extra = frame(
        list(
            zip(
                range(10_000, 10_000 + size),
                t + pd.to_timedelta(offsets, unit="s"),
                rng.choice(history["CUSTOMER_ID"].unique(), size).tolist(),
                rng.choice(history["TERMINAL_ID"].unique(), size).tolist(),
                rng.uniform(1, 500, size).tolist(),
                (rng.random(size) < 0.5).astype(int).tolist(),
                strict=True,
            )
        )
    )
    extended = pd.concat([history, extra], ignore_index=True)

    before = fraud_window_features(history, label_delay_days=DELAY)
    after = fraud_window_features(extended, label_delay_days=DELAY)
    columns = list(FRAUD_FEATURES)
    up_to_t = history["TX_DATETIME"] <= t
    kept_ids = history.loc[up_to_t, "TRANSACTION_ID"]
    got = after.set_index("TRANSACTION_ID").loc[kept_ids, columns]
    pd.testing.assert_frame_equal(got, by_id(before, up_to_t, columns), check_exact=True)
    later_ids = history.loc[~up_to_t, "TRANSACTION_ID"]
    assert (
        not after.set_index("TRANSACTION_ID")
        .loc[later_ids, columns]
        .equals(before.set_index("TRANSACTION_ID").loc[later_ids, columns])
    )
