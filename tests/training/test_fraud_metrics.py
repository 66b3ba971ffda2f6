"""Fraud metrics: card precision@k by hand, the cost threshold by hand and by brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from training.fraud_metrics import (
    card_precision_at_k,
    card_precision_per_day,
    choose_cost_threshold,
    expected_cost,
    fraud_metrics,
)


def scored(rows: list[tuple[str, int, int, float]]) -> pd.DataFrame:
    """(time, customer, fraud, score) rows as a scored test frame."""
    times, customers, frauds, scores = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "TX_DATETIME": pd.to_datetime(list(times), utc=True).astype("datetime64[ns, UTC]"),
            "CUSTOMER_ID": np.array(customers, dtype=np.int64),
            "TX_FRAUD": np.array(frauds, dtype=np.int64),
            "score": np.array(scores, dtype=np.float64),
        }
    )


# Three days, k = 2. Card scores are the day's maximum; a card is compromised that day if
# any of its transactions is a fraud.
THREE_DAYS = scored(
    [
        # Day 1: cards 1 (0.9, fraud on its second payment), 2 (0.8), 3 (0.7, fraud), 4 (0.1).
        # Top 2: cards 1 and 2 -> 1 hit, precision 1/2; card 1 is detected.
        ("2018-08-08 09:00", 1, 0, 0.9),
        ("2018-08-08 17:00", 1, 1, 0.2),
        ("2018-08-08 10:00", 2, 0, 0.8),
        ("2018-08-08 11:00", 3, 1, 0.7),
        ("2018-08-08 12:00", 4, 0, 0.1),
        # Day 2: card 1 (0.95, fraud) is already detected and removed. Then 3 (0.6, fraud),
        # 2 (0.5), 5 (0.4, fraud): top 2 is cards 3 and 2 -> 1/2; card 3 is detected.
        ("2018-08-09 09:00", 1, 1, 0.95),
        ("2018-08-09 10:00", 3, 1, 0.6),
        ("2018-08-09 11:00", 2, 0, 0.5),
        ("2018-08-09 12:00", 5, 1, 0.4),
        # Day 3: card 3 (0.99, fraud) removed. Then 6 (0.3), 7 (0.25), 5 (0.2, fraud):
        # top 2 is cards 6 and 7 -> 0/2.
        ("2018-08-10 09:00", 3, 1, 0.99),
        ("2018-08-10 10:00", 6, 0, 0.3),
        ("2018-08-10 11:00", 7, 0, 0.25),
        ("2018-08-10 12:00", 5, 1, 0.2),
    ]
)


def test_card_precision_at_2_on_three_days_by_hand() -> None:
    result = card_precision_per_day(THREE_DAYS, k=2)
    assert result.per_day.index.tolist() == [
        pd.Timestamp("2018-08-08", tz="UTC"),
        pd.Timestamp("2018-08-09", tz="UTC"),
        pd.Timestamp("2018-08-10", tz="UTC"),
    ]
    assert result.per_day["card_precision"].tolist() == [0.5, 0.5, 0.0]
    assert result.per_day["detected_cards"].tolist() == [1, 1, 0]
    assert result.per_day["compromised_cards"].tolist() == [2, 2, 1]  # after removal
    assert result.mean == pytest.approx(1 / 3)
    assert card_precision_at_k(THREE_DAYS, 2) == pytest.approx(1 / 3)


def test_without_removal_detected_cards_score_again() -> None:
    # Day 2: cards 1 (0.95) and 3 (0.6) both compromised -> 1; day 3: 3 (0.99) and 6 -> 1/2.
    result = card_precision_per_day(THREE_DAYS, k=2, remove_detected=False)
    assert result.per_day["card_precision"].tolist() == [0.5, 1.0, 0.5]
    assert result.mean == pytest.approx(2 / 3)


def test_card_precision_divides_by_k_and_breaks_ties_by_card_id() -> None:
    one_card = scored([("2018-08-08 10:00", 1, 1, 0.9)])
    assert card_precision_at_k(one_card, 2) == 0.5  # one card flagged out of a budget of 2

    tie = scored([("2018-08-08 10:00", 7, 1, 0.5), ("2018-08-08 11:00", 3, 0, 0.5)])
    assert card_precision_at_k(tie, 1) == 0.0  # card 3 ranks first
    assert card_precision_at_k(tie.iloc[::-1], 1) == 0.0  # whatever the row order


def test_card_precision_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="score"):
        card_precision_at_k(THREE_DAYS.drop(columns="score"), 2)
    with pytest.raises(ValueError, match="k must be"):
        card_precision_at_k(THREE_DAYS, 0)
    with pytest.raises(ValueError, match="infinite"):
        card_precision_at_k(THREE_DAYS.assign(score=np.nan), 2)


# Five transactions, two frauds. With a missed fraud at 10 and a false alarm at 3:
#   threshold  alerts       missed  false alarms  cost
#   inf        none         2       0             20
#   0.9        {0}          1       0             10
#   0.8        {0,1}        1       1             13
#   0.6        {0,1,2}      0       1              3   <- cheapest
#   0.4        {0..3}       0       2              6
#   0.1        all          0       3              9
Y = np.array([1, 0, 1, 0, 0])
S = np.array([0.9, 0.8, 0.6, 0.4, 0.1])


def test_expected_cost_by_hand() -> None:
    costs = {"cost_missed_fraud": 10.0, "cost_false_alarm": 3.0}
    assert expected_cost(Y, S, 0.8, **costs) == 13.0
    assert expected_cost(Y, S, 0.6, **costs) == 3.0
    assert expected_cost(Y, S, np.inf, **costs) == 20.0


def test_cost_threshold_by_hand() -> None:
    assert choose_cost_threshold(Y, S, cost_missed_fraud=10.0, cost_false_alarm=3.0) == 0.6
    # Cheap frauds: inf 2, 0.9 -> 1, 0.8 -> 4, 0.6 -> 3, ... so only the surest alert pays.
    assert choose_cost_threshold(Y, S, cost_missed_fraud=1.0, cost_false_alarm=3.0) == 0.9
    # Costs 2 (inf), 1 (0.9), 2 (0.8), 1 (0.6, ...): on a tie the higher threshold wins.
    assert choose_cost_threshold(Y, S, cost_missed_fraud=1.0, cost_false_alarm=1.0) == 0.9


def test_cost_threshold_alerts_on_nothing_when_that_is_cheapest() -> None:
    y, s = np.array([0, 1]), np.array([0.9, 0.5])  # inf costs 1, 0.9 costs 6, 0.5 costs 5
    assert choose_cost_threshold(y, s, cost_missed_fraud=1.0, cost_false_alarm=5.0) == np.inf
    no_fraud = np.zeros(4, dtype=int)
    assert choose_cost_threshold(no_fraud, S[:4], cost_missed_fraud=1, cost_false_alarm=1) == np.inf


def test_cost_threshold_handles_tied_scores() -> None:
    # 0.5 alerts rows 0 and 1 together: inf 4, 0.5 -> 2 + 1 = 3, 0.2 -> 1.
    y, s = np.array([1, 0, 1]), np.array([0.5, 0.5, 0.2])
    assert choose_cost_threshold(y, s, cost_missed_fraud=2.0, cost_false_alarm=1.0) == 0.2


def test_cost_threshold_matches_a_brute_force_search() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        y = (rng.random(n) < rng.uniform(0.0, 0.5)).astype(int)
        # Rounded scores: many ties, as a tree ensemble's scores have.
        s = np.round(np.clip(0.3 * y + rng.random(n) * 0.8, 0, 1), 1)
        costs = {
            "cost_missed_fraud": float(rng.uniform(0, 50)),
            "cost_false_alarm": float(rng.uniform(0, 10)),
        }
        candidates = sorted({*s.tolist(), np.inf}, reverse=True)
        brute = [expected_cost(y, s, t, **costs) for t in candidates]
        best = candidates[int(np.argmin(brute))]  # first minimum: the highest threshold
        chosen = choose_cost_threshold(y, s, **costs)
        assert chosen == best
        assert expected_cost(y, s, chosen, **costs) == min(brute)


def test_costs_and_labels_are_checked() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        expected_cost(Y, S, 0.5, cost_missed_fraud=-1.0, cost_false_alarm=1.0)
    with pytest.raises(ValueError, match="0 or 1"):
        choose_cost_threshold(Y * 2, S, cost_missed_fraud=1.0, cost_false_alarm=1.0)
    with pytest.raises(ValueError, match="one length"):
        choose_cost_threshold(Y, S[:3], cost_missed_fraud=1.0, cost_false_alarm=1.0)


def test_fraud_metrics_report() -> None:
    frame = THREE_DAYS.drop(columns="score")
    scores = THREE_DAYS["score"].to_numpy()
    y = frame["TX_FRAUD"].to_numpy()
    metrics = fraud_metrics(frame, scores, 0.5, k=2, cost_missed_fraud=10.0, cost_false_alarm=1.0)
    assert set(metrics) == {
        "roc_auc",
        "average_precision",
        "card_precision_at_2",
        "precision",
        "recall",
        "expected_cost",
        "expected_cost_per_transaction",
        "alert_rate",
        "fraud_rate",
        "threshold",
    }
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, scores))
    assert metrics["average_precision"] == pytest.approx(average_precision_score(y, scores))
    assert metrics["card_precision_at_2"] == pytest.approx(1 / 3)
    # score >= 0.5 alerts 7 of 13 rows: frauds 0.95, 0.99, 0.7, 0.6 (4 of 7 frauds) and
    # genuine 0.9, 0.8, 0.5; missed frauds 0.2, 0.4, 0.2.
    assert metrics["precision"] == pytest.approx(4 / 7)
    assert metrics["recall"] == pytest.approx(4 / 7)
    assert metrics["expected_cost"] == 3 * 10.0 + 3 * 1.0
    assert metrics["expected_cost_per_transaction"] == pytest.approx(33 / 13)
    assert metrics["alert_rate"] == pytest.approx(7 / 13)
    assert metrics["fraud_rate"] == pytest.approx(7 / 13)
    assert metrics["threshold"] == 0.5
