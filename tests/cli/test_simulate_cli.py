"""`mlops simulate` error paths: clear messages and exit codes, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.serving import free_port
from cli.main import app

runner = CliRunner()


def test_an_unknown_scenario_names_the_known_ones(isolated_env: Path) -> None:
    result = runner.invoke(app, ["simulate", "traffic", "--model", "churn", "--scenario", "x"])
    assert result.exit_code == 2
    assert "unknown churn scenario 'x'" in result.output
    assert "price_rise" in result.output


def test_fraud_traffic_without_a_history_says_what_to_pass(isolated_env: Path) -> None:
    result = runner.invoke(app, ["simulate", "traffic", "--model", "fraud"])
    assert result.exit_code == 2
    assert "no fraud history to continue" in result.output
    assert "--history" in result.output


def test_traffic_to_no_api_counts_the_failures_and_files_no_label(isolated_env: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # a port nothing listens on
    result = runner.invoke(
        app,
        [
            "simulate",
            "traffic",
            "--model",
            "churn",
            "--rate",
            "50",
            "--duration",
            "0.1",
            "--url",
            url,
        ],
    )
    assert result.exit_code == 1
    assert "ConnectError: 5" in result.output
    assert "no request succeeded" in result.output
    assert not (isolated_env / "labels").exists()


@pytest.mark.slow  # the session's Prefect server, 20-30 s to start
def test_labels_with_an_empty_feed_say_so(isolated_env: Path, prefect_api: str) -> None:
    result = runner.invoke(app, ["simulate", "labels", "--model", "fraud"])
    assert result.exit_code == 0, result.output
    assert "fraud: no labels pending" in result.output


def test_labels_refuse_a_cut_off_that_is_not_a_time(isolated_env: Path) -> None:
    result = runner.invoke(app, ["simulate", "labels", "--model", "churn", "--until", "soon"])
    assert result.exit_code == 2
    assert "--until 'soon' is not a time" in result.output
