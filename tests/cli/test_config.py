"""`mlops config`, `mlops --version`, and settings that cannot be used: one line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from mlops.settings import Settings
from mlops.settings_reference import markdown

runner = CliRunner()


def test_config_prints_every_setting_its_value_and_source(
    monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    monkeypatch.setenv("MLOPS_SEED", "7")
    monkeypatch.setenv("MLOPS_ADMIN_TOKEN", "s3cret-of-our-own")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for name in Settings.model_fields:
        variable = (
            "MLFLOW_TRACKING_URI" if name == "mlflow_tracking_uri" else f"MLOPS_{name.upper()}"
        )
        assert any(line.startswith(f"{variable} ") for line in lines), variable
    assert any(line.split() == ["MLOPS_SEED", "7", "(environment)"] for line in lines)
    assert any(line.split() == ["MLOPS_HOME", str(isolated_env), "(environment)"] for line in lines)
    assert any(line.split() == ["MLOPS_API_PORT", "8000", "(default)"] for line in lines)
    assert "Seed for simulators, splits and models." in result.stdout
    assert "s3cret" not in result.stdout
    assert not isolated_env.exists(), "printing the settings creates nothing"


def test_config_markdown_is_the_reference_whatever_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOPS_SEED", "abc")  # not even valid: the reference reads no variable
    result = runner.invoke(app, ["config", "--markdown"])
    assert result.exit_code == 0, result.output
    assert result.stdout == markdown()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("MLOPS_FOO", "1", "unknown setting(s) MLOPS_FOO;"),
        ("MLOPS_API_PROT", "9000", "MLOPS_API_PROT (did you mean MLOPS_API_PORT?)"),
        ("MLOPS_SEED", "abc", "MLOPS_SEED='abc': input should be a valid integer"),
        ("MLOPS_ONLINE_STORE", "cassandra", "MLOPS_ONLINE_STORE='cassandra': input should be"),
    ],
)
def test_a_setting_that_cannot_be_used_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, isolated_env: Path, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    for command in (["quality-bar", "churn"], ["config"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output, result.exception)
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert result.stderr.startswith("error: settings: ")
        assert expected in result.stderr
    assert not isolated_env.exists()


def test_a_secret_in_error_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_PROFILE", "stack")  # the default token is refused off 'local'
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2
    assert "MLOPS_ADMIN_TOKEN is the default" in result.stderr
    assert "local-admin-token" not in result.stderr


def test_an_unknown_variable_stops_a_real_process_without_a_traceback(isolated_env: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    result = subprocess.run(
        [sys.executable, "-m", "cli", "quality-bar", "churn"],
        env={**clean, "MLOPS_HOME": str(isolated_env), "MLOPS_FOO": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: settings: unknown setting(s) MLOPS_FOO; the known ones: docs/settings.md, "
        "`mlops config --markdown`"
    ]


def test_version_is_the_packages() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"mlops {metadata.version('mlops-platform')}"


def test_help_offers_shell_completion() -> None:
    result = runner.invoke(app, ["--help"])
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout
