"""The stack's bootstrap builds the walkthrough pages the API serves: a missing or stale page
is built for the champion, an up-to-date one is left as it is.

On a copy of the tiny demo's home (both champions, both pages built by `mlops demo`), the
command run in-process as the bootstrap service runs it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from reports.page import CHAMPION_META, page_version

pytestmark = pytest.mark.slow


def test_the_bootstrap_builds_the_pages_that_are_missing_and_keeps_the_others(
    tiny_demo: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow's artifacts stay where the demo put them (their URIs are absolute).
    skip = shutil.ignore_patterns("prefect", "mlartifacts", "predictions.db*", "labels")
    home = Path(shutil.copytree(Path(tiny_demo["home"]), tmp_path / "home", ignore=skip))
    pages = home / "reports" / "pages"
    fraud_page = (pages / "fraud.html").read_text()
    assert f'<meta name="{CHAMPION_META}" content="1">' in fraud_page
    (pages / "churn.html").unlink()
    monkeypatch.setenv("MLOPS_HOME", str(home))

    result = CliRunner().invoke(app, ["stack", "bootstrap"])

    assert result.exit_code == 0, result.output
    assert result.output.count("not training again") == 2, result.output
    assert "churn: walkthrough page built v1" in result.output
    assert "fraud: walkthrough page up to date (v1)" in result.output
    assert page_version(pages / "churn.html") == "1"
    assert "churn walkthrough: churn v1" in (pages / "churn.html").read_text()
    assert (pages / "fraud.html").read_text() == fraud_page

    again = CliRunner().invoke(app, ["stack", "bootstrap", "--no-pages"])
    assert again.exit_code == 0, again.output
    assert "walkthrough page" not in again.output
