"""Progress of the long stages, told to whoever listens: a stage never knows who that is.

A stage that takes more than a few seconds says so around its work, and moves on as it
goes:

    with progress.step("fraud: Optuna trials", total=budget.n_trials) as trials:
        ...
        trials.advance(note=f"best AP {best:.3f}")

The command that runs the stages installs a `Reporter` (the CLI's draws a live display on
a terminal: `cli.progress`) with `reporting(reporter)`; without one, a step costs nothing.
The reporter is process-wide, not per context: Prefect runs tasks on threads of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol


class Step(Protocol):
    """One step under way: how far it has come."""

    def advance(self, amount: int = 1, *, note: str | None = None) -> None:
        """`amount` more units done; `note` (if given) says what was done last."""


class Reporter(Protocol):
    """Shows the steps of a run to its user, or does not."""

    def step(self, name: str, total: int | None = None) -> AbstractContextManager[Step]:
        """The step `name` (e.g. "fraud: simulating transactions") of `total` units (None:
        unknown) is under way for the duration of the context."""


class _Silent:
    """A step nobody watches."""

    def advance(self, amount: int = 1, *, note: str | None = None) -> None:
        pass


class SilentReporter:
    """Reports nothing: what runs without a person watching (tests, workers, `--json`)."""

    def step(self, name: str, total: int | None = None) -> AbstractContextManager[Step]:
        return nullcontext(_Silent())


_reporter: Reporter = SilentReporter()


def step(name: str, total: int | None = None) -> AbstractContextManager[Step]:
    """The installed reporter's step `name` of `total` units (see the module doc)."""
    return _reporter.step(name, total)


@contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Install `reporter` for the duration of the context; the previous one after."""
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        yield reporter
    finally:
        _reporter = previous
