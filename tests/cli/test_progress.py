"""How `mlops` shows the long stages' progress (`cli.progress` on `mlops.progress`).

A live display on a terminal only; piped, one plain line per step and no control codes;
with `--json`, nothing but the output, whose last line is the JSON summary.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from rich.console import Console

from cli.progress import LiveReporter, PlainReporter, reporter_for, showing_progress
from mlops import progress
from mlops.progress import SilentReporter
from tests.helpers.runs import run_mlops

ESCAPE = "\x1b"


def run_steps() -> None:
    """What a stage does: a step of known size inside one of unknown size."""
    with progress.step("simulating") as outer:
        with progress.step("candidate models", total=3) as inner:
            for name in ("logistic", "xgboost", "tuned"):
                inner.advance(note=name)
        outer.advance()


def test_without_a_reporter_a_step_costs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    run_steps()
    assert capsys.readouterr() == ("", "")


def test_json_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    assert isinstance(reporter_for(as_json=True), SilentReporter)
    with showing_progress(as_json=True):
        run_steps()
    assert capsys.readouterr() == ("", "")


def test_piped_one_plain_line_per_step_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    # Under pytest's capture neither stdout nor stderr is a terminal, as in a pipe.
    assert isinstance(reporter_for(as_json=False), PlainReporter)
    with showing_progress(as_json=False):
        run_steps()
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["simulating...", "candidate models (3)..."]
    assert ESCAPE not in err


def test_on_a_terminal_a_live_display_that_goes_when_the_steps_end() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    with (
        progress.reporting(LiveReporter(console)),
        progress.step("candidate models", total=3) as step,
    ):
        step.advance(note="logistic")
        console.print("a line from elsewhere")
        step.advance(2, note="tuned")
    shown = screen.getvalue()
    assert ESCAPE in shown
    assert "candidate models" in shown
    assert "a line from elsewhere" in shown


class ConsoleHandler(logging.Handler):
    """Like Prefect's console handler: it prints on a rich Console of its own."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(record.getMessage())


def test_a_log_handler_with_its_own_console_writes_above_the_display() -> None:
    """Prefect's console handler keeps a rich Console on the real stderr: while the display
    shows, its lines go through the display (else it would draw over them), then back."""
    screen, elsewhere = io.StringIO(), io.StringIO()
    handler = ConsoleHandler(Console(file=elsewhere))
    logger = logging.getLogger("tests.cli.progress")
    logger.addHandler(handler)
    try:
        console = Console(file=screen, force_terminal=True, width=120)
        with progress.reporting(LiveReporter(console)), progress.step("training"):
            logger.warning("logged while training")
        logger.warning("logged after")
    finally:
        logger.removeHandler(handler)
    assert "logged while training" in screen.getvalue()
    assert elsewhere.getvalue() == "logged after\n"


@pytest.mark.slow
def test_a_piped_pipeline_run_is_plain(isolated_env: Path, prefect_api: str) -> None:
    """Piped, each step is one plain line; with --json there is none, and the JSON line
    ends the output: that run is tests/cli/test_cli.py's pipeline on a file."""
    result = run_mlops(
        "pipeline", "churn", "--customers", "400", home=isolated_env, prefect_api=prefect_api
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert ESCAPE not in result.stdout + result.stderr
    step_lines = [line for line in result.stderr.splitlines() if line.endswith(")...")]
    assert len(step_lines) == 1
    assert step_lines[0].startswith("churn candidate models (")
    assert "churn pipeline finished" in result.stdout
