"""The `mlops` command line as a user runs it: files in, a summary line out, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from features.quarantine import QUARANTINE_REASON
from sources.churn_simulator import simulate_customers, write_customers
from tests.helpers.runs import run_mlops as mlops

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "pipeline", "serve"):
        assert command in result.stdout


@pytest.mark.slow  # an `mlops pipeline` process on the session's Prefect server
def test_a_file_missing_a_column_stops_with_the_file_and_the_column(
    tmp_path: Path, isolated_env: Path, prefect_api: str
) -> None:
    frame = simulate_customers(300, seed=3).drop(columns=["Contract"])
    path = write_customers(frame, tmp_path / "no_contract.csv")
    result = mlops(
        "pipeline", "churn", "--source", str(path), prefect_api=prefect_api, home=isolated_env
    )
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "missing column(s) Contract" in result.stderr


@pytest.mark.slow  # an `mlops pipeline` process on the session's Prefect server
def test_a_missing_file_stops_with_its_name(
    tmp_path: Path, isolated_env: Path, prefect_api: str
) -> None:
    missing = tmp_path / "nowhere.csv"
    result = mlops(
        "pipeline", "churn", "--source", str(missing), prefect_api=prefect_api, home=isolated_env
    )
    assert result.returncode == 2
    assert str(missing) in result.stderr


@pytest.mark.slow
def test_pipeline_on_a_file_quarantines_bad_rows_and_ends_with_json(
    tmp_path: Path, isolated_env: Path, prefect_api: str
) -> None:
    frame = simulate_customers(800, seed=5)
    frame.loc[3, "tenure"] = "abc"
    frame.loc[10, "Contract"] = "Three year"
    # the same customer observed twice at the same time
    frame.loc[20, ["customerID", "event_timestamp"]] = frame.loc[
        21, ["customerID", "event_timestamp"]
    ].to_numpy()
    path = write_customers(frame, tmp_path / "customers.csv")

    result = mlops(
        "pipeline",
        "churn",
        "--source",
        str(path),
        "--json",
        prefect_api=prefect_api,
        home=isolated_env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Piped with --json: no progress lines and no terminal codes, the JSON line last
    # (the progress display's other cases: tests/cli/test_progress.py).
    assert "\x1b" not in result.stdout + result.stderr
    assert not [line for line in result.stderr.splitlines() if line.endswith(")...")]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["model_name"] == "churn"
    assert summary["model_version"] == "1"
    assert summary["aliases"] == ["champion"]
    assert set(summary["test_metrics"]) >= {
        "roc_auc",
        "average_precision",
        "f1",
        "precision",
        "recall",
    }
    assert summary["rows"]["rows_in"] == 800
    assert summary["rows"]["rows_quarantined"] == 3
    assert summary["rows"]["rows_valid"] == 797
    assert summary["rows"]["quarantined[customerID: duplicate observation]"] == 1
    assert summary["rows"]["quarantined[tenure: not a whole number of months in [0, 120]]"] == 1

    quarantined = pd.read_csv(Path(summary["quarantine_dir"]) / "customers.csv", dtype=str)
    assert len(quarantined) == 3
    reasons = " | ".join(quarantined[QUARANTINE_REASON])
    assert "tenure" in reasons and "Contract" in reasons and "duplicate" in reasons
    assert Path(summary["drift"]["html"]).is_relative_to(isolated_env)


@pytest.mark.slow  # an `mlops pipeline` process on the session's Prefect server
def test_a_fraud_file_missing_a_column_stops_with_the_file_and_the_column(
    tmp_path: Path, isolated_env: Path, prefect_api: str
) -> None:
    from sources.fraud_simulator import simulate_transactions, write_transactions

    frame = simulate_transactions(20, 40, 3, seed=1).drop(columns=["TX_AMOUNT"])
    path = write_transactions(frame, tmp_path / "no_amount.csv")
    result = mlops(
        "pipeline", "fraud", "--source", str(path), prefect_api=prefect_api, home=isolated_env
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert str(path) in result.stderr
    assert "missing column(s) TX_AMOUNT" in result.stderr


def test_a_bad_fraud_split_is_refused_before_any_work(isolated_env: Path) -> None:
    """In process: nothing may be set up (no Prefect import, no folders) before the check."""
    result = runner.invoke(app, ["pipeline", "fraud", "--train-start", "2018-07-25T06:00"])
    assert result.exit_code == 2
    assert "start must be a midnight UTC" in result.stderr
    assert not isolated_env.exists()


def test_bench_scale_is_for_the_fraud_case_study(isolated_env: Path) -> None:
    result = runner.invoke(app, ["bench", "pipeline", "churn", "--scale", "2"])
    assert result.exit_code == 2
    assert "--scale is for the fraud case study" in result.output


def test_an_unknown_task_runner_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from mlops.settings import Settings

    monkeypatch.setenv("MLOPS_TASK_RUNNER", "ray")
    with pytest.raises(ValidationError, match="task_runner"):
        Settings()


def test_library_noise_is_hidden_and_our_warnings_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a command shows of warnings: a library's deprecations and the SyntaxWarnings of
    its source compiled on first import (3.12+) are hidden; a warning of ours is shown."""
    from cli import common

    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(common, "_show_warning", lambda m, c, f, *a, **k: shown.append((m, f)))
    library = "/venv/lib/python3.13/site-packages/evidently/descriptors/text_match.py"
    ours = str(Path(common.__file__))
    for message, category, filename in (
        ("invalid escape sequence '\\d'", SyntaxWarning, library),
        ("old API", DeprecationWarning, library),
        ("invalid escape sequence '\\d'", SyntaxWarning, ours),
        ("a threshold of 2 is no probability", UserWarning, ours),
    ):
        common._hide_deprecations(message, category, filename, 1)
    assert [f for _, f in shown] == [ours, ours]
