"""`mlops evaluate fraud|churn` as a user runs it: the JSON line's shape, and that the
fraud evaluation is the pipeline's protocol (same file, seed and budget: same figures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from features.fraud_schema import TX_FRAUD_SCENARIO
from tests.helpers.runs import FRAUD_RUN_TRAIN_START, run_mlops
from training.fraud_metrics import SCENARIO_NAMES
from training.fraud_splits import handbook_split, split_frame

pytestmark = pytest.mark.slow

HEADLINE = ("roc_auc", "average_precision", "card_precision_at_100")


def _last_json(stdout: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def test_evaluate_fraud_on_the_pipelines_file_gives_the_pipelines_figures(
    fraud_run: dict[str, Any], tmp_path: Path, prefect_api: str
) -> None:
    # The fraud_run fixture's seed and search budget (MLOPS_SEED=7, 3 trials).
    result = run_mlops(
        "evaluate",
        "fraud",
        "--source",
        str(fraud_run["source"]),
        "--seeds",
        "7,",
        "--weeks",
        "1",
        "--train-start",
        FRAUD_RUN_TRAIN_START,
        "--json",
        home=tmp_path / "home",
        prefect_api=prefect_api,
        env={"MLOPS_FRAUD_SEARCH_TRIALS": "3"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary = _last_json(result.stdout)
    assert summary["seeds"] == [7]
    assert summary["source"] == str(fraud_run["source"])
    (run,) = summary["runs"]
    assert run["winner"] == fraud_run["winner"]
    for metric in HEADLINE:
        week0 = summary["handbook_week"][metric]
        assert week0 == {
            "mean": pytest.approx(fraud_run["test_metrics"][metric]),
            "sd": 0.0,
            "n": 1,
        }
    # The frauds of each scenario in the test week, known-compromised cards removed.
    _, test = split_frame(fraud_run["transactions"], handbook_split(FRAUD_RUN_TRAIN_START))
    frauds = test[TX_FRAUD_SCENARIO].map(SCENARIO_NAMES).value_counts().to_dict()
    assert {name: c["frauds"] for name, c in run["scenarios"].items()} == frauds
    # The pipeline's JSON line reports the same recall per scenario.
    pipeline_recall = fraud_run["test_recall_by_scenario"]
    assert {name: c["recall"] for name, c in run["scenarios"].items()} == pytest.approx(
        pipeline_recall
    )
    assert set(summary["recall_by_scenario"]) == set(pipeline_recall)


def test_evaluate_fraud_refuses_weeks_beyond_the_data(
    fraud_run: dict[str, Any], tmp_path: Path, prefect_api: str
) -> None:
    result = run_mlops(
        "evaluate",
        "fraud",
        "--source",
        str(fraud_run["source"]),
        "--weeks",
        "3",
        "--train-start",
        FRAUD_RUN_TRAIN_START,
        home=tmp_path / "home",
        prefect_api=prefect_api,
    )
    assert result.returncode == 2
    assert "fewer weeks" in result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_churn_gives_each_candidate_mean_and_sd_over_repeated_splits(
    tmp_path: Path, prefect_api: str
) -> None:
    result = run_mlops(
        "evaluate",
        "churn",
        "--customers",
        "400",
        "--repeats",
        "2",
        "--folds",
        "2",
        "--json",
        home=tmp_path / "home",
        prefect_api=prefect_api,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary = _last_json(result.stdout)
    assert summary["rows"] == 400
    assert set(summary["candidates"]) == {"logistic_baseline", "xgboost"}
    for metrics in summary["candidates"].values():
        assert len(metrics["splits"]) == 4
        for name in ("roc_auc", "average_precision", "brier"):
            assert metrics[name]["n"] == 4
            values = [s[name] for s in metrics["splits"]]
            assert metrics[name]["mean"] == pytest.approx(sum(values) / 4)
            assert metrics[name]["sd"] > 0  # four different splits, four different figures


def test_evaluate_churn_on_the_public_telco_csv(
    public_telco_csv: Path, tmp_path: Path, prefect_api: str
) -> None:
    result = run_mlops(
        "evaluate",
        "churn",
        "--source",
        str(public_telco_csv),
        "--json",
        home=tmp_path / "home",
        prefect_api=prefect_api,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary = _last_json(result.stdout)
    assert summary["rows"] > 7000
    assert summary["candidates"]["xgboost"]["roc_auc"]["n"] == 10


def test_evaluate_fraud_features_gives_each_groups_paired_gain(
    tmp_path: Path, prefect_api: str
) -> None:
    result = run_mlops(
        "evaluate",
        "fraud-features",
        "--seeds",
        "2",
        "--weeks",
        "1",
        "--customers",
        "300",
        "--terminals",
        "600",
        "--days",
        "140",
        home=tmp_path / "home",
        prefect_api=prefect_api,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for group in ("customer_habits", "amount_zscore", "terminal_fraud_run"):
        assert group in result.stdout
    assert "seed 1 week 0: AP all features" in result.stderr
