"""The native stack's process supervisor: one process group a service, and the state file.

A service runs as its own process group with its argv and environment, its log under
MLOPS_HOME/stack/logs/; MLOPS_HOME/stack/state.json records what runs, with each process's
start time so a reused pid is not taken for ours. Stopping sends SIGTERM to each group, then
SIGKILL to what is left after a timeout. `stack.native` decides what to start and when.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlops.settings import Settings

# The caller's own settings reach the services (the table's values win); the tools' own
# variables do not: they would point the services at another server.
FOREIGN_PREFIXES = ("MLFLOW_", "PREFECT_")

Log = Callable[[str], None]


class StackError(RuntimeError):
    """The stack cannot start or stop as asked; the message says why and what to do."""


def stack_dir(settings: Settings) -> Path:
    """MLOPS_HOME/stack: the state file, secrets, logs and the data of started servers."""
    return settings.home / "stack"


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks: tells our process from a reused pid.

    None once it has exited, zombies included (a child `up` started and has not reaped).
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def executable(name: str) -> str:
    """The path of the tool `name`, the venv's own first: `mlflow server` execs uvicorn from
    the same bin folder. Raises `StackError` when it is installed nowhere."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} is not installed (not in {local.parent} nor on PATH)")
    return found


def process_environment(service_env: dict[str, str]) -> dict[str, str]:
    """A service's environment: this process's (less the tools' own variables), the venv's
    bin folder first on PATH, then the service's variables over both."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
    bin_dir = str(Path(sys.executable).parent)
    base["PATH"] = os.pathsep.join([bin_dir, base.get("PATH", "")])
    return {**base, **service_env}


@dataclass
class Running:
    """A started process group: its leader's pid and start time, its URLs and its log."""

    name: str
    pid: int
    ticks: int | None
    url: str | None
    health_url: str | None
    log: str

    def alive(self) -> bool:
        """True while the recorded process runs (same pid, same start time)."""
        return self.ticks is not None and start_ticks(self.pid) == self.ticks


class StateFile:
    """MLOPS_HOME/stack/state.json: what `up` started, in start order, for `status` and `down`."""

    def __init__(self, settings: Settings) -> None:
        self.path = stack_dir(settings) / "state.json"

    def read(self) -> dict[str, Running]:
        if not self.path.exists():
            return {}
        return {name: Running(**entry) for name, entry in json.loads(self.path.read_text()).items()}

    def write(self, state: dict[str, Running]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({name: run.__dict__ for name, run in state.items()}, indent=1))
        tmp.replace(self.path)


def launch(
    name: str,
    argv: list[str],
    env: dict[str, str],
    settings: Settings,
    *,
    url: str | None,
    health_url: str | None,
) -> tuple[Running, subprocess.Popen[bytes]]:
    """Start `argv` as its own process group in MLOPS_HOME, its output appended to
    MLOPS_HOME/stack/logs/<name>.log; gives its record and the process."""
    logs = stack_dir(settings) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(  # argv from the service table
            [executable(argv[0]), *argv[1:]],
            env=env,
            cwd=settings.home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: `down` stops its children too
        )
    run = Running(name, process.pid, start_ticks(process.pid), url, health_url, str(log))
    return run, process


def probe(url: str, timeout: float = 3.0) -> bool:
    """True when the URL answers 2xx (no proxies: every service is on loopback)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def log_tail(path: str, lines: int = 25) -> str:
    """The last lines of a service's log, for an error message ("" when it cannot be read)."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_until(run: Running, ready: Callable[[], bool], timeout: float) -> None:
    """Return once `ready()`; raises `StackError` when the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if not run.alive():
            raise StackError(f"{run.name} exited; the end of {run.log}:\n{log_tail(run.log)}")
        time.sleep(0.5)
    raise StackError(
        f"{run.name} not healthy within {timeout:.0f} s; the end of {run.log}:\n{log_tail(run.log)}"
    )


def stop(runs: list[Running], timeout: float, log: Log) -> None:
    """One group after the other, dependents first: SIGTERM, wait, then SIGKILL what is left.

    In order, because a stopping service may still talk to the ones it uses (the worker
    pauses its schedules on the Prefect server as it shuts down).
    """
    for run in runs:
        if run.alive():
            log(f"stopping {run.name} (pid {run.pid})")
            _signal_group(run.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while run.alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            if run.alive():
                log(f"{run.name} still running after {timeout:.0f} s: SIGKILL")
        # The group too: a child can outlive its leader (a flow run under the worker).
        _signal_group(run.pid, signal.SIGKILL)
        _wait_group_gone(run.pid, 5.0)


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Return once no process of the group is left (a killed one takes a moment to go)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # A leader this process started stays a zombie until reaped here (`up` stopping
        # after a failure); anyone else's is reaped by init.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pgid, os.WNOHANG)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        except PermissionError:  # the group id is someone else's now
            return
        time.sleep(0.05)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
