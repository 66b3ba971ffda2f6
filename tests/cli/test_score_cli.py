"""`mlops score churn|fraud` as a user runs it, on the session runs' registered champions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.fraud_schema import TX_FRAUD, TX_FRAUD_SCENARIO
from tests.conftest import FRAUD_RUN_BROKEN
from tests.conftest import run_mlops as mlops

pytestmark = pytest.mark.slow


def summary_of(stdout: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def test_score_fraud_file_scores_valid_rows_and_quarantines_the_rest(
    fraud_run: dict[str, Any], prefect_api: str, tmp_path: Path
) -> None:
    output = tmp_path / "scores.parquet"
    result = mlops(
        "score",
        "fraud",
        "--input",
        str(fraud_run["source"]),
        "--output",
        str(output),
        "--json",
        home=fraud_run["home"],
        prefect_api=prefect_api,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = summary_of(result.stdout)
    broken = sum(FRAUD_RUN_BROKEN.values())
    assert summary["rows_quarantined"] == broken
    assert summary["rows_scored"] == len(fraud_run["transactions"]) - broken
    assert summary["notes"] == []
    scores = pd.read_parquet(output)
    assert list(scores.columns) == [
        "TRANSACTION_ID",
        "fraud_probability",
        "is_fraud",
        "model_name",
        "model_version",
    ]
    assert scores["TRANSACTION_ID"].is_unique and len(scores) == summary["rows_scored"]
    assert scores["fraud_probability"].between(0, 1).all()
    assert (scores["model_version"] == fraud_run["model_version"]).all()
    quarantine = pd.read_csv(tmp_path / "scores.quarantine.csv")
    assert len(quarantine) == broken
    # The model ranks the simulated frauds above the genuine payments.
    labelled = scores.merge(fraud_run["transactions"][["TRANSACTION_ID", TX_FRAUD]])
    by_label = labelled.groupby(TX_FRAUD)["fraud_probability"].mean()
    assert by_label[1] > by_label[0]


def test_score_fraud_without_labels_says_terminal_risk_is_zero(
    fraud_run: dict[str, Any], prefect_api: str, tmp_path: Path
) -> None:
    unlabelled = tmp_path / "unlabelled.csv"
    fraud_run["transactions"].drop(columns=[TX_FRAUD, TX_FRAUD_SCENARIO]).to_csv(
        unlabelled, index=False
    )
    output = tmp_path / "scores.csv"
    result = mlops(
        "score",
        "fraud",
        "--input",
        str(unlabelled),
        "--output",
        str(output),
        home=fraud_run["home"],
        prefect_api=prefect_api,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "terminal risk windows are 0" in result.stdout
    scores = pd.read_csv(output)
    assert len(scores) == len(fraud_run["transactions"])
    assert np.isfinite(scores["fraud_probability"]).all()


def test_score_churn_writes_csv_like_the_batch_function(
    churn_run: dict[str, Any], prefect_api: str, tmp_path: Path
) -> None:
    source = churn_run["home"] / "raw" / churn_run["pipeline_run"] / "customers.parquet"
    output = tmp_path / "churn.csv"
    result = mlops(
        "score",
        "churn",
        "--input",
        str(source),
        "--output",
        str(output),
        "--json",
        home=churn_run["home"],
        prefect_api=prefect_api,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = summary_of(result.stdout)
    scores = pd.read_csv(output, dtype={"customerID": str})
    assert len(scores) == summary["rows_scored"] == len(pd.read_parquet(source))
    assert scores["churn_probability"].between(0, 1).all()


@pytest.mark.parametrize(
    ("output_name", "extra", "message"),
    [
        ("scores.csv", ["--version", "999"], "has no version 999"),
        ("scores.txt", [], "unsupported output type"),
    ],
    ids=["unknown-version", "bad-suffix"],
)
def test_score_errors_exit_2_with_a_message(
    churn_run: dict[str, Any],
    prefect_api: str,
    tmp_path: Path,
    output_name: str,
    extra: list[str],
    message: str,
) -> None:
    source = churn_run["home"] / "raw" / churn_run["pipeline_run"] / "customers.parquet"
    output = tmp_path / output_name
    result = mlops(
        "score",
        "churn",
        "--input",
        str(source),
        "--output",
        str(output),
        *extra,
        home=churn_run["home"],
        prefect_api=prefect_api,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert not output.exists()
