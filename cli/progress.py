"""How `mlops` shows the progress of the long stages (`mlops.progress`) to a person.

On a terminal (stdout and stderr both), a live display on stderr: a spinner, the step's
name, a bar and its count when the total is known, what was done last, the time taken.
It is transient: when a step ends its line goes, and the logs (Prefect's task lines) stay
the record of what ran. Piped or redirected, one plain line on stderr when a step starts,
so a long silence is explained. With `--json`, nothing: stdout ends with the JSON line.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, cast

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from mlops.progress import Reporter, SilentReporter, reporting


def reporter_for(as_json: bool) -> Reporter:
    """Live on a terminal, plain lines when piped, silent with `--json`."""
    if as_json:
        return SilentReporter()
    console = Console(stderr=True)
    if sys.stdout.isatty() and console.is_terminal and not console.is_dumb_terminal:
        return LiveReporter(console)
    return PlainReporter(sys.stderr)


@contextmanager
def showing_progress(as_json: bool) -> Iterator[Reporter]:
    """The stages run in this context report to `reporter_for(as_json)`."""
    with reporting(reporter_for(as_json)) as reporter:
        yield reporter


class PlainReporter:
    """One line per step, when it starts, for a log file or a pipe."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    @contextmanager
    def step(self, name: str, total: int | None = None) -> Iterator[_QuietStep]:
        self._stream.write(f"{name}{'' if total is None else f' ({total})'}...\n")
        self._stream.flush()
        yield _QuietStep()


class _QuietStep:
    def advance(self, amount: int = 1, *, note: str | None = None) -> None:
        pass


class LiveReporter:
    """A live display of the steps under way (nested ones too), on one rich Progress.

    While it shows, lines that other writers put on the terminal go above it: stdout and
    stderr are redirected by rich, and the log handlers that hold a stream of their own
    (Prefect's console handler) write through the display too, else it would draw over
    their lines.
    """

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(bar_width=16),
            _Count(),
            TextColumn("{task.fields[note]}", style="dim", markup=False),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._lock = threading.Lock()
        self._active = 0
        self._restore: list[tuple[Any, str, Any]] = []

    @contextmanager
    def step(self, name: str, total: int | None = None) -> Iterator[_LiveStep]:
        with self._lock:
            if self._active == 0:
                self._progress.start()
                self._route_log_handlers()
            self._active += 1
            task = self._progress.add_task(name, total=total, note="")
        try:
            yield _LiveStep(self._progress, task)
        finally:
            with self._lock:
                self._progress.remove_task(task)
                self._active -= 1
                if self._active == 0:
                    self._unroute_log_handlers()
                    self._progress.stop()

    def _route_log_handlers(self) -> None:
        console = self._progress.console
        terminal = {id(sys.__stdout__), id(sys.__stderr__)}
        for handler in _every_handler():
            own = getattr(handler, "console", None)
            if isinstance(own, Console) and own.file is not console.file:
                self._restore.append((own, "file", own.file))
                own.file = cast(IO[str], _Above(console, own.file))
            elif isinstance(handler, logging.StreamHandler) and id(handler.stream) in terminal:
                self._restore.append((handler, "stream", handler.stream))
                handler.setStream(_Above(console, handler.stream))

    def _unroute_log_handlers(self) -> None:
        for owner, attribute, value in reversed(self._restore):
            if attribute == "stream":
                owner.setStream(value)
            else:
                owner.file = value
        self._restore.clear()


class _Above(io.TextIOBase):
    """A terminal stream whose lines go above the live display of `console`.

    rich's own FileProxy is no use here: a Console given one unwraps it and writes to
    the terminal underneath.
    """

    def __init__(self, console: Console, terminal: IO[str]) -> None:
        self._console, self._terminal, self._partial = console, terminal, ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._console.print(Text.from_ansi(line))
        return len(text)

    def isatty(self) -> bool:
        return self._terminal.isatty()

    def fileno(self) -> int:
        return self._terminal.fileno()


class _Count(MofNCompleteColumn):
    """ "done/total", or nothing for a step of unknown size (its bar pulses)."""

    def render(self, task: Task) -> Text:
        return Text("") if task.total is None else super().render(task)


class _LiveStep:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress, self._task = progress, task

    def advance(self, amount: int = 1, *, note: str | None = None) -> None:
        if note is None:
            self._progress.advance(self._task, amount)
        else:
            self._progress.update(self._task, advance=amount, note=note)


def _every_handler() -> Iterator[logging.Handler]:
    """The handlers of the root logger and of every logger made so far, each once."""
    seen: set[int] = set()
    loggers = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if id(handler) not in seen:
                seen.add(id(handler))
                yield handler
