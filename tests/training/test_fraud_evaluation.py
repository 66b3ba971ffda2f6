"""The fraud evaluation's own logic on hand-made inputs: recall per scenario, mean ± sd,
the seeds option and the summary across seeds and weeks. No model is trained here; the
command itself runs in tests/cli/test_evaluate_cli.py."""

from __future__ import annotations

import numpy as np
import pytest

from features.fraud_schema import FRAUD_SCENARIOS, GENUINE
from training.evaluate import mean_sd
from training.fraud_evaluation import REPORTED_METRICS, FraudEvaluation, WeekResult, parse_seeds
from training.fraud_metrics import SCENARIO_NAMES, recall_by_scenario


def test_every_fraud_scenario_of_the_contract_has_a_short_name() -> None:
    assert set(SCENARIO_NAMES) == set(FRAUD_SCENARIOS) - {GENUINE}


def test_recall_by_scenario_counts_alerts_among_each_scenarios_frauds() -> None:
    # 3 amount frauds (2 alerted), 4 compromised-terminal (1 alerted), 2 compromised-card
    # (none alerted), genuine rows with alerts that must not count anywhere.
    scenarios = np.array([0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 0, 0])
    alerts = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 1], dtype=bool)
    result = recall_by_scenario(scenarios, alerts)
    assert result == {
        "amount": {"frauds": 3, "caught": 2, "recall": pytest.approx(2 / 3)},
        "compromised_terminal": {"frauds": 4, "caught": 1, "recall": 0.25},
        "compromised_card": {"frauds": 2, "caught": 0, "recall": 0.0},
    }  # no card testing in the rows: left out, not a recall of 0


def test_recall_by_scenario_refuses_misaligned_rows() -> None:
    with pytest.raises(ValueError, match="shape"):
        recall_by_scenario(np.array([1, 2]), np.array([True]))


def test_mean_sd_is_the_sample_standard_deviation() -> None:
    assert mean_sd([0.70, 0.74, 0.72]) == {
        "mean": pytest.approx(0.72),
        "sd": pytest.approx(0.02),
        "n": 3,
    }
    assert mean_sd([0.5]) == {"mean": 0.5, "sd": 0.0, "n": 1}
    with pytest.raises(ValueError, match="no values"):
        mean_sd([])


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("5", [0, 1, 2, 3, 4]), ("0,1,2", [0, 1, 2]), ("42", list(range(42))), ("7,", [7])],
)
def test_seeds_are_a_list_or_a_count(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "0", "a,b", "1,1"])
def test_bad_seeds_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_seeds(text)


def _week(seed: int, week: int, ap: float, caught: int, frauds: int = 10) -> WeekResult:
    metrics = dict.fromkeys(REPORTED_METRICS, 0.5) | {"average_precision": ap}
    return WeekResult(
        seed=seed,
        week=week,
        test_start=f"2018-08-{8 + 7 * week:02d}",
        winner="xgboost_smote_tuned",
        threshold=0.1,
        metrics=metrics,
        scenarios={"compromised_terminal": {"frauds": frauds, "caught": caught, "recall": 0.0}},
    )


def test_summary_gives_mean_and_sd_across_seeds_per_week_and_over_the_weeks() -> None:
    evaluation = FraudEvaluation("hand-made", [0, 1], 2, 3)
    evaluation.results.extend(
        [
            _week(0, 0, 0.70, caught=2),
            _week(0, 1, 0.60, caught=4, frauds=30),
            _week(1, 0, 0.80, caught=6),
            _week(1, 1, 0.80, caught=8),
        ]
    )
    summary = evaluation.summary()
    handbook = summary["handbook_week"]["average_precision"]
    assert handbook["mean"] == pytest.approx(0.75)
    assert handbook["sd"] == pytest.approx(np.std([0.70, 0.80], ddof=1))
    assert [w["test_start"] for w in summary["per_week"]] == ["2018-08-08", "2018-08-15"]
    assert summary["per_week"][1]["average_precision"]["mean"] == pytest.approx(0.70)
    # Each seed's mean over its weeks (0.65 and 0.80), then across seeds.
    assert summary["all_weeks"]["average_precision"]["mean"] == pytest.approx(0.725)
    assert summary["all_weeks"]["average_precision"]["sd"] == pytest.approx(
        np.std([0.65, 0.80], ddof=1)
    )
    # Recall pooled over a seed's weeks (6/40 and 14/20), then across seeds.
    terminal = summary["recall_by_scenario"]["compromised_terminal"]
    assert terminal["mean"] == pytest.approx((6 / 40 + 14 / 20) / 2)
    assert terminal["frauds_per_seed"] == pytest.approx(30)
    assert len(summary["runs"]) == 4
