"""Every `mlops` command the case-study walkthroughs show parses, and something runs it.

Commands are taken from the fenced code blocks of docs/case-studies/*.md. Each must parse
against the real CLI and appear in `EXERCISED`, which names the test (or fixture) that
runs the same command with the same options (its own files, ports and values), or
`mlops demo`. The test also checks the named test exists and passes each of the command's
words and options, so the map cannot point at a test that runs something else.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.helpers.cli_commands import parse_mlops

ROOT = Path(__file__).resolve().parents[2]
CASE_STUDIES = ROOT / "docs" / "case-studies"
WALKTHROUGHS = ("churn.md", "fraud.md", "platform.md")
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
DEMO = "mlops demo"

# Command as the walkthroughs show it -> "path::test or fixture" that runs it, or DEMO.
EXERCISED: dict[str, str] = {
    "mlops demo": DEMO,
    "mlops demo --no-serve": DEMO,
    "mlops pipeline churn --source FILE --json": (
        "tests/cli/test_cli.py::test_pipeline_on_a_file_quarantines_bad_rows_and_ends_with_json"
    ),
    "mlops pipeline fraud --source FILE --train-start 2018-05-20 --json": (
        "tests/conftest.py::fraud_run"
    ),
    "mlops evaluate fraud --source FILE --seeds 7, --weeks 1 --train-start 2018-05-20 --json": (
        "tests/cli/test_evaluate_cli.py::"
        "test_evaluate_fraud_on_the_pipelines_file_gives_the_pipelines_figures"
    ),
    "mlops report churn": "tests/reports/test_walkthrough_pages.py::built",
    "mlops report fraud": "tests/reports/test_walkthrough_pages.py::built",
    "mlops serve --port 8000": "tests/e2e/test_churn_end_to_end.py::served_api",
    "mlops score churn --input FILE --output scores.csv --json": (
        "tests/cli/test_score_cli.py::test_score_churn_writes_csv_like_the_batch_function"
    ),
    "mlops score fraud --input FILE --output scores.parquet --json": (
        "tests/cli/test_score_cli.py::test_score_fraud_file_scores_valid_rows_and_quarantines_the_rest"
    ),
    "mlops quality-bar churn --alias champion --min roc_auc=0.6 --max brier=0.3 --json": (
        "tests/cli/test_quality_bar.py::test_a_model_that_clears_its_bounds_passes"
    ),
    "mlops promote churn --version 2 --reason test": (
        "tests/e2e/test_model_lifecycle.py::test_promote_rollback_and_the_holder_follows"
    ),
    "mlops rollback churn": (
        "tests/e2e/test_model_lifecycle.py::test_promote_rollback_and_the_holder_follows"
    ),
    "mlops monitor churn --json": (
        "tests/e2e/test_monitoring_loop.py::test_no_drift_ends_in_nothing_and_the_champion_stays"
    ),
    "mlops simulate traffic --model fraud --scenario new_fraud_pattern --rate 60 --duration 1 "
    "--url URL --history FILE --json": (
        "tests/stack/test_traffic.py::"
        "test_fraud_traffic_continues_the_history_and_its_labels_rewrite_the_online_terminals"
    ),
    "mlops simulate labels --model fraud --until TIME --json": (
        "tests/stack/test_traffic.py::"
        "test_fraud_traffic_continues_the_history_and_its_labels_rewrite_the_online_terminals"
    ),
    "mlops stream fraud --metrics-port 8002": (
        "tests/faults/test_stream_faults.py::"
        "test_sigkill_of_the_scorer_and_of_redis_mid_stream_decide_each_payment_once"
    ),
    "mlops simulate traffic --model fraud --to stream --rate 2000 --duration 5 "
    "--history FILE --json": (
        "tests/faults/test_stream_faults.py::"
        "test_sigkill_of_the_scorer_and_of_redis_mid_stream_decide_each_payment_once"
    ),
    "mlops ui monitoring --port 8001": "tests/cli/test_ui.py::evidently_ui",
    "mlops ui mlflow --port 5000": (
        "tests/cli/test_ui.py::test_mlflow_ui_shows_the_homes_runs_registry_and_artifacts"
    ),
    "mlops ui prefect --port 4200": (
        "tests/cli/test_ui.py::test_prefect_ui_shows_the_flow_runs_recorded_under_the_home"
    ),
    "mlops stack up --no-bootstrap": "tests/stack/test_native_stack.py::native_stack",
    "mlops stack env --json": "tests/stack/test_native_stack.py::native_stack",
    "mlops stack down --timeout 10": "tests/stack/test_native_stack.py::native_stack",
    "mlops stack status --json": (
        "tests/stack/test_native_stack.py::test_both_pipelines_through_the_native_stack"
    ),
}


def walkthrough_commands() -> list[tuple[str, str]]:
    """(file, command) for every `mlops ...` line of a fenced block."""
    found = []
    for name in WALKTHROUGHS:
        text = (CASE_STUDIES / name).read_text(encoding="utf-8")
        for block in FENCE.findall(text):
            for line in block.splitlines():
                command = line.split(" #")[0].strip()
                if command.startswith("mlops "):
                    found.append((name, command))
    return found


def test_every_walkthrough_exists_and_shows_commands() -> None:
    commands = walkthrough_commands()
    for name in WALKTHROUGHS:
        assert any(file == name for file, _ in commands), f"{name} shows no mlops command"


@pytest.mark.parametrize(("file", "command"), walkthrough_commands())
def test_each_command_parses_and_is_run_by_a_test_or_the_demo(file: str, command: str) -> None:
    words = shlex.split(command)
    parse_mlops(words[1:])
    assert command in EXERCISED, f"{file}: `{command}` is run by no test listed in EXERCISED"


@pytest.mark.parametrize("command", sorted(EXERCISED))
def test_the_named_test_runs_that_command(command: str) -> None:
    where = EXERCISED[command]
    if where == DEMO:
        assert command.startswith(DEMO)
        return
    path, name = where.split("::")
    source = (ROOT / path).read_text(encoding="utf-8")
    assert re.search(rf"^def {name}\(", source, re.MULTILINE), f"{path} has no {name}"
    # The words and options the test passes, as string literals (values are its own).
    for word in shlex.split(command)[1:]:
        if word.startswith("--") or (word.isidentifier() and not word.isupper()):
            assert f'"{word}"' in source, f"{where} never passes {word!r} for `{command}`"


def test_every_test_path_the_walkthroughs_run_exists() -> None:
    paths = []
    for name in WALKTHROUGHS:
        for block in FENCE.findall((CASE_STUDIES / name).read_text(encoding="utf-8")):
            for line in block.splitlines():
                words = shlex.split(line.split(" #")[0])
                if words and words[0].endswith("pytest"):
                    paths += [w for w in words[1:] if not w.startswith("-") and "/" in w]
    assert paths, "the walkthroughs name the tests that show each part"
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"walkthroughs run tests that do not exist: {missing}"
