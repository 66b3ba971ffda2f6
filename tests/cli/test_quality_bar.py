"""`mlops quality-bar` on the session's real churn model: a bar it clears, one it cannot."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.quality_bar import Bound, QualityBarError, check_bounds, parse_bound
from mlops.settings import Settings

runner = CliRunner()


@pytest.mark.slow  # on the session's churn run: a flow, trained
def test_a_model_that_clears_its_bounds_passes(
    churn_run: dict[str, Any], churn_settings: Settings
) -> None:
    bounds = ["--min", "roc_auc=0.6", "--max", "brier=0.3"]
    result = runner.invoke(app, ["quality-bar", "churn", "--alias", "champion", *bounds, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    # The champion is the session flow's version (other tests register later ones).
    assert summary["version"] == churn_run["model_version"]
    assert summary["passed"] is True
    values = {check["metric"]: check["value"] for check in summary["checks"]}
    assert values == {
        "roc_auc": churn_run["test_metrics"]["roc_auc"],
        "brier": churn_run["test_metrics"]["brier"],
    }


@pytest.mark.slow  # on the session's churn run: a flow, trained
def test_an_impossible_floor_fails_with_the_metric_named(
    churn_run: dict[str, Any], churn_settings: Settings
) -> None:
    result = runner.invoke(
        app,
        ["quality-bar", "churn", "--alias", "champion", "--min", "roc_auc=0.9999", "--min", "f1=0"],
    )
    assert result.exit_code == 1
    assert f"quality bar missed: churn v{churn_run['model_version']}" in result.stderr
    assert "misses its bound on roc_auc" in result.stderr
    assert "roc_auc" in result.stdout and "FAILED" in result.stdout
    assert "f1" in result.stdout and "ok" in result.stdout


@pytest.mark.slow  # on the session's churn run: a flow, trained
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--min", "auc=0.5"], "no test metric(s) auc"),
        (["--version", "999", "--min", "roc_auc=0.5"], "has no version 999"),
        (["--alias", "nope", "--min", "roc_auc=0.5"], "has no alias 'nope'"),
        (["--min", "roc_auc"], "is not METRIC=NUMBER"),
        ([], "at least one --min or --max"),
    ],
)
def test_a_bar_that_cannot_be_checked_exits_2(
    churn_settings: Settings, arguments: list[str], message: str
) -> None:
    result = runner.invoke(app, ["quality-bar", "churn", *arguments])
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_model_never_trained_cannot_pass(isolated_env: object) -> None:
    result = runner.invoke(app, ["quality-bar", "fraud", "--min", "roc_auc=0"])
    assert result.exit_code == 2
    assert "'fraud' has no versions" in result.stderr


def test_bounds_are_inclusive_and_nan_never_passes() -> None:
    floor, ceiling = parse_bound("roc_auc=0.8", floor=True), parse_bound("brier = 0.2", floor=False)
    assert floor == Bound("roc_auc", 0.8, floor=True) and floor.holds(0.8)
    assert not floor.holds(0.7999) and ceiling.holds(0.2) and not ceiling.holds(0.21)
    assert not floor.holds(float("nan")) and not ceiling.holds(float("nan"))
    with pytest.raises(QualityBarError, match="not a number"):
        parse_bound("roc_auc=nan", floor=True)
    with pytest.raises(QualityBarError, match="no test metric"):
        check_bounds({"roc_auc": 0.9}, [Bound("average_precision", 0.5, floor=True)])
