"""Fraud evaluation: card precision@k, the cost of a threshold, and the metrics we report.

Card precision@k follows the "Performance metrics" chapter of the Fraud Detection Handbook
(Le Borgne et al.), written as our own code: investigators can check about k cards a day,
so what matters is how many of the k most suspicious cards of each day are really
compromised. Threshold-free ranking metrics (ROC-AUC, average precision) come from
scikit-learn, as in `training.evaluate`.

The cost model is ours, not the Handbook's: a missed fraud costs `cost_missed_fraud` (say
the average fraud amount), a false alarm `cost_false_alarm` (an investigator's time and a
customer's blocked card). Decisions are `score >= threshold`, as in `training.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from features.fraud_schema import CUSTOMER_ID, TX_DATETIME, TX_FRAUD

# The Handbook's daily budget of cards an investigation team can check.
DEFAULT_K = 100
SCORE_COLUMN = "score"


@dataclass(frozen=True)
class CardPrecisionAtK:
    """Card precision@k of each day and their mean.

    `per_day` is indexed by the day (midnight UTC, days with transactions only) with
    columns `card_precision` (detected / k), `detected_cards` (compromised cards among the
    day's top k) and `compromised_cards` (cards with a fraud that day, after removing those
    detected earlier): min(compromised_cards, k) / k is the best any model could do.
    """

    k: int
    per_day: pd.DataFrame
    mean: float


def card_precision_per_day(
    frame: pd.DataFrame,
    k: int = DEFAULT_K,
    *,
    score_column: str = SCORE_COLUMN,
    remove_detected: bool = True,
) -> CardPrecisionAtK:
    """Card precision@k of each day of `frame` (TX_DATETIME, CUSTOMER_ID, TX_FRAUD, scores).

    For each UTC day, in order: a card's score is its highest transaction score of the day
    and it counts as compromised if any of its transactions that day is a fraud; the k
    highest-scoring cards are "alerted" and the day's precision is the share of them that
    are compromised, over k even when fewer than k cards transacted (as in the Handbook).
    With `remove_detected` (the Handbook's protocol), a compromised card found in a day's
    top k is blocked: its transactions on later days are dropped, so the same fraud is not
    rewarded twice. Cards alerted but genuine stay. Equal scores rank the lower
    CUSTOMER_ID first, so the result does not depend on the row order.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    missing = [c for c in (TX_DATETIME, CUSTOMER_ID, TX_FRAUD, score_column) if c not in frame]
    if missing:
        raise ValueError(f"card precision needs column(s) {', '.join(missing)}")
    if frame.empty:
        raise ValueError("no transactions to evaluate")
    scores = frame[score_column].to_numpy(dtype=np.float64)
    if not np.isfinite(scores).all():
        raise ValueError(f"{score_column} has missing or infinite values")

    data = pd.DataFrame(
        {
            "day": frame[TX_DATETIME].dt.floor("D"),
            "card": frame[CUSTOMER_ID].to_numpy(),
            "fraud": frame[TX_FRAUD].to_numpy() == 1,
            "score": scores,
        }
    )
    detected: set[int] = set()
    rows: list[dict[str, object]] = []
    for day, transactions in data.groupby("day", sort=True):
        if detected:
            transactions = transactions[~transactions["card"].isin(detected)]
        # Grouping sorts the cards by id; the stable sort then keeps ties in id order.
        cards = transactions.groupby("card").agg(score=("score", "max"), fraud=("fraud", "max"))
        top = cards.sort_values("score", ascending=False, kind="stable").head(k)
        hits = top.index[top["fraud"].to_numpy(dtype=bool)]
        if remove_detected:
            detected.update(int(card) for card in hits)
        rows.append(
            {
                "day": day,
                "card_precision": len(hits) / k,
                "detected_cards": len(hits),
                "compromised_cards": int(cards["fraud"].sum()),
            }
        )
    per_day = pd.DataFrame(rows).set_index("day")
    return CardPrecisionAtK(k=k, per_day=per_day, mean=float(per_day["card_precision"].mean()))


def card_precision_at_k(
    frame: pd.DataFrame,
    k: int = DEFAULT_K,
    *,
    score_column: str = SCORE_COLUMN,
    remove_detected: bool = True,
) -> float:
    """The mean over days of card precision@k (see `card_precision_per_day`)."""
    return card_precision_per_day(
        frame, k, score_column=score_column, remove_detected=remove_detected
    ).mean


def expected_cost(
    y_true: npt.ArrayLike,
    scores: npt.ArrayLike,
    threshold: float,
    *,
    cost_missed_fraud: float,
    cost_false_alarm: float,
) -> float:
    """Total cost of alerting on `score >= threshold`: missed frauds plus false alarms."""
    y, s = _labels_and_scores(y_true, scores)
    _check_costs(cost_missed_fraud, cost_false_alarm)
    alert = s >= threshold
    missed = int(np.sum(y & ~alert))
    false_alarms = int(np.sum(~y & alert))
    return float(cost_missed_fraud * missed + cost_false_alarm * false_alarms)


def choose_cost_threshold(
    y_true: npt.ArrayLike,
    scores: npt.ArrayLike,
    *,
    cost_missed_fraud: float,
    cost_false_alarm: float,
) -> float:
    """The threshold with the lowest `expected_cost`, chosen on validation scores.

    Candidates are the distinct scores (alert on `score >= candidate`) plus infinity,
    which alerts on nothing and wins when frauds are too cheap to chase. On equal cost the
    highest threshold wins: fewer alerts for the same money. All candidates are costed at
    once: with the scores sorted in decreasing order, the frauds alerted by a candidate
    are a cumulative sum up to the last row holding its score.
    """
    y, s = _labels_and_scores(y_true, scores)
    _check_costs(cost_missed_fraud, cost_false_alarm)
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    caught = np.cumsum(y[order])
    # Last row of each run of equal scores: alerting on that score alerts every row up to it.
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    alerted_frauds = np.r_[0, caught[last]]
    alerts = np.r_[0, last + 1]
    missed = caught[-1] - alerted_frauds
    false_alarms = alerts - alerted_frauds
    cost = cost_missed_fraud * missed + cost_false_alarm * false_alarms
    thresholds = np.r_[np.inf, s_sorted[last]]
    return float(thresholds[int(np.argmin(cost))])  # argmin: first, so highest, on ties


def fraud_metrics(
    frame: pd.DataFrame,
    scores: npt.ArrayLike,
    threshold: float,
    *,
    k: int = DEFAULT_K,
    cost_missed_fraud: float,
    cost_false_alarm: float,
) -> dict[str, float]:
    """The fraud report of a test set: ranking, card precision@k, cost and decisions.

    `frame` holds the test transactions (TX_DATETIME, CUSTOMER_ID, TX_FRAUD) and `scores`
    one score per row. ROC-AUC and average precision need both classes in `frame`.
    """
    y, s = _labels_and_scores(frame[TX_FRAUD].to_numpy(), scores)
    alert = s >= threshold
    cost = expected_cost(
        y, s, threshold, cost_missed_fraud=cost_missed_fraud, cost_false_alarm=cost_false_alarm
    )
    cards = frame[[TX_DATETIME, CUSTOMER_ID, TX_FRAUD]].assign(**{SCORE_COLUMN: s})
    return {
        "roc_auc": float(roc_auc_score(y, s)),
        "average_precision": float(average_precision_score(y, s)),
        f"card_precision_at_{k}": card_precision_at_k(cards, k),
        "precision": float(precision_score(y, alert, zero_division=0)),
        "recall": float(recall_score(y, alert, zero_division=0)),
        "expected_cost": cost,
        "expected_cost_per_transaction": cost / len(y),
        "alert_rate": float(np.mean(alert)),
        "fraud_rate": float(np.mean(y)),
        "threshold": float(threshold),
    }


# Short names of the fraud numbers of TX_FRAUD_SCENARIO (`features.fraud_schema.FRAUD_SCENARIOS`
# says what each is), for metric names and JSON keys.
SCENARIO_NAMES: Final[dict[int, str]] = {
    1: "amount",
    2: "compromised_terminal",
    3: "compromised_card",
    4: "card_testing",
}


def recall_by_scenario(scenarios: np.ndarray, alerts: np.ndarray) -> dict[str, dict[str, float]]:
    """Per fraud scenario present among the rows: its frauds, how many alerted, the recall.

    `scenarios` holds TX_FRAUD_SCENARIO of each row (0 for genuine), `alerts` whether the
    row's score reached the threshold. A scenario with no fraud in the rows is left out.
    """
    scenarios, alerts = np.asarray(scenarios), np.asarray(alerts, dtype=bool)
    if scenarios.shape != alerts.shape:
        raise ValueError(f"scenarios and alerts differ in shape: {scenarios.shape}, {alerts.shape}")
    result: dict[str, dict[str, float]] = {}
    for number, name in SCENARIO_NAMES.items():
        rows = scenarios == number
        frauds = int(rows.sum())
        if frauds:
            caught = int(alerts[rows].sum())
            result[name] = {"frauds": frauds, "caught": caught, "recall": caught / frauds}
    return result


def _labels_and_scores(
    y_true: npt.ArrayLike, scores: npt.ArrayLike
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"labels and scores must be 1-d of one length, got {y.shape}, {s.shape}")
    if len(y) == 0:
        raise ValueError("no transactions to evaluate")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(s).all():
        raise ValueError("scores have missing or infinite values")
    return y.astype(bool), s


def _check_costs(cost_missed_fraud: float, cost_false_alarm: float) -> None:
    for name, cost in (
        ("cost_missed_fraud", cost_missed_fraud),
        ("cost_false_alarm", cost_false_alarm),
    ):
        if not (np.isfinite(cost) and cost >= 0):
            raise ValueError(f"{name} must be a finite non-negative number, got {cost}")
