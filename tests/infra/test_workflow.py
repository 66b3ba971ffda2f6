"""The CI workflow: valid for GitHub, and every step a make target that exists and runs
`mlops` commands the CLI has, so `make <target>` reproduces any CI step locally."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.helpers.cli_commands import parse_mlops

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
SHELL_OPERATORS = {"&&", "||", "|", ";", ">", ">>", "<", "2>&1"}


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def _steps(workflow: dict[Any, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job, step) for job, spec in workflow["jobs"].items() for step in spec["steps"]]


def _run_lines(workflow: dict[Any, Any]) -> list[tuple[str, str]]:
    return [
        (job, line.strip())
        for job, step in _steps(workflow)
        if "run" in step
        for line in step["run"].splitlines()
        if line.strip()
    ]


def _make_targets(workflow: dict[Any, Any]) -> list[str]:
    targets = []
    for _, line in _run_lines(workflow):
        words = shlex.split(line)
        if words[0] == "make":
            targets += [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    return targets


def test_the_workflow_is_valid_against_the_github_workflow_schema(
    workflow: dict[Any, Any],
) -> None:
    schema_file = (
        resources.files("check_jsonschema") / "builtin_schemas/vendor/github-workflows.json"
    )
    schema = json.loads(schema_file.read_text())
    # YAML reads the key `on` as True; GitHub reads it as "on".
    document = {("on" if key is True else key): value for key, value in workflow.items()}
    jsonschema.validate(document, schema, cls=jsonschema.Draft7Validator)


def test_every_run_step_is_a_make_target_or_docker(workflow: dict[Any, Any]) -> None:
    lines = _run_lines(workflow)
    assert lines
    strays = [(job, line) for job, line in lines if shlex.split(line)[0] not in ("make", "docker")]
    assert not strays, f"run steps that are not `make ...` or `docker ...`: {strays}"


def test_the_workflow_covers_lint_tests_quality_bar_image_and_compose(
    workflow: dict[Any, Any],
) -> None:
    targets = {"lint", "test", "quality-bar", "image", "compose-config"}
    assert set(_make_targets(workflow)) >= targets
    test_job = workflow["jobs"]["test"]
    assert test_job["env"]["CI"] == "true"  # services tests fail, not skip, when absent
    assert {"postgres", "redis"} <= set(test_job["services"])
    for service in test_job["services"].values():
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+", image), f"{image} is not pinned"
        assert "--health-cmd" in service["options"]
    # The conftest fixtures reach them on localhost: published on the standard ports.
    assert test_job["services"]["postgres"]["ports"] == ["5432:5432"]
    assert test_job["services"]["redis"]["ports"] == ["6379:6379"]


def _dry_run(target: str) -> list[str]:
    """The commands `make target` would run, with every variable expanded."""
    result = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"make {target}: {result.stderr.strip()}"
    return [line for line in result.stdout.splitlines() if line.strip()]


def _mlops_arguments(command: str) -> list[str] | None:
    words = shlex.split(command)
    if "mlops" not in words:
        return None
    arguments = words[words.index("mlops") + 1 :]
    for index, word in enumerate(arguments):
        if word in SHELL_OPERATORS:
            return arguments[:index]
    return arguments


def test_every_make_target_of_the_workflow_exists_and_its_mlops_commands_parse(
    workflow: dict[Any, Any],
) -> None:
    seen = []
    for target in _make_targets(workflow):
        for command in _dry_run(target):
            arguments = _mlops_arguments(command)
            if arguments is not None:
                parse_mlops(arguments)
                seen.append(" ".join(arguments[:2]))
    # The quality bar trains and checks: both commands went through the parser above.
    assert "pipeline churn" in seen and "quality-bar churn" in seen


def test_the_quality_bar_checks_at_least_one_bound() -> None:
    commands = [_mlops_arguments(c) for c in _dry_run("quality-bar")]
    bars = [a for a in commands if a and a[0] == "quality-bar"]
    assert bars and all("--min" in a or "--max" in a for a in bars)


def test_the_parser_catches_what_ci_would() -> None:
    with pytest.raises(AssertionError, match="no command 'quality-bars'"):
        parse_mlops(["quality-bars", "churn"])
    with pytest.raises(Exception, match="No such option: --minimum"):
        parse_mlops(["quality-bar", "churn", "--minimum", "roc_auc=0.8"])
    with pytest.raises(Exception, match="valid integer"):
        parse_mlops(["pipeline", "churn", "--customers", "many"])
    with pytest.raises(AssertionError, match="make nonexistent-target"):
        _dry_run("nonexistent-target")
