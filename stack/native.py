"""The stack as local processes (`mlops stack up|down|status`), from the same service table.

PostgreSQL and Redis are used where the settings point when they answer; on loopback they
are started from their installed binaries when they do not. Then each service of
`stack.services` runs as its own process group with the table's argv and environment,
its log and pid file under MLOPS_HOME/stack/, and `up` waits for its health URL.
`down` sends SIGTERM to each group, then SIGKILL to what is left after a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
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
from typing import Any
from urllib.parse import urlsplit

from mlops.settings import DEFAULT_ADMIN_TOKEN, Settings
from stack.services import DATABASES, Service, Topology, services

LOOPBACK = ("127.0.0.1", "localhost", "::1")
# On a busy 2-core machine the Prefect server takes 10-20 s, MLflow's first migration longer.
HEALTH_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
# The caller's own settings reach the services (the table's values win); the tools' own
# variables do not: they would point the services at another server.
FOREIGN_PREFIXES = ("MLFLOW_", "PREFECT_")

Log = Callable[[str], None]


class StackError(RuntimeError):
    """The stack cannot start or stop as asked; the message says why and what to do."""


@dataclass(frozen=True)
class StackSecrets:
    admin_token: str
    prefect_auth_string: str


def stack_dir(settings: Settings) -> Path:
    return settings.home / "stack"


def load_secrets(settings: Settings) -> StackSecrets:
    """The native stack's secrets, made once and kept in MLOPS_HOME/stack/secrets.json (0600).

    A MLOPS_ADMIN_TOKEN of the caller's own is used as it is.
    """
    path = stack_dir(settings) / "secrets.json"
    if path.exists():
        stored = json.loads(path.read_text())
        made = StackSecrets(stored["admin_token"], stored["prefect_auth_string"])
    else:
        made = StackSecrets(secrets.token_urlsafe(32), f"admin:{secrets.token_urlsafe(24)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(made.__dict__))
    own = settings.admin_token.get_secret_value()
    if own != DEFAULT_ADMIN_TOKEN:
        made = StackSecrets(own, made.prefect_auth_string)
    return made


def topology(settings: Settings) -> Topology:
    keys = load_secrets(settings)
    return Topology.native(
        settings, admin_token=keys.admin_token, prefect_auth_string=keys.prefect_auth_string
    )


# --- processes ---------------------------------------------------------------------------


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks: tells our process from a reused pid.

    None once it has exited, zombies included (a child `up` started and has not reaped).
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def _executable(name: str) -> str:
    """The venv's own tool first: `mlflow server` execs uvicorn from the same bin folder."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} is not installed (not in {local.parent} nor on PATH)")
    return found


def process_environment(service_env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
    bin_dir = str(Path(sys.executable).parent)
    base["PATH"] = os.pathsep.join([bin_dir, base.get("PATH", "")])
    return {**base, **service_env}


@dataclass
class Running:
    name: str
    pid: int
    ticks: int | None
    url: str | None
    health_url: str | None
    log: str

    def alive(self) -> bool:
        return self.ticks is not None and _start_ticks(self.pid) == self.ticks


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


def _launch(
    name: str,
    argv: list[str],
    env: dict[str, str],
    settings: Settings,
    *,
    url: str | None,
    health_url: str | None,
) -> tuple[Running, subprocess.Popen[bytes]]:
    logs = stack_dir(settings) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(  # argv from the service table
            [_executable(argv[0]), *argv[1:]],
            env=env,
            cwd=settings.home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: `down` stops its children too
        )
    run = Running(name, process.pid, _start_ticks(process.pid), url, health_url, str(log))
    return run, process


def probe(url: str, timeout: float = 3.0) -> bool:
    """True when the URL answers 2xx (no proxies: every service is on loopback)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _tail(path: str, lines: int = 25) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait_until(run: Running, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if not run.alive():
            raise StackError(f"{run.name} exited; the end of {run.log}:\n{_tail(run.log)}")
        time.sleep(0.5)
    raise StackError(
        f"{run.name} not healthy within {timeout:.0f} s; the end of {run.log}:\n{_tail(run.log)}"
    )


def _stop(runs: list[Running], timeout: float, log: Log) -> None:
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


# --- PostgreSQL and Redis ----------------------------------------------------------------


def _postgres_address(settings: Settings) -> tuple[str, int, str]:
    parts = urlsplit(settings.stack_postgres_url.replace("+psycopg", ""))
    return parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres"


def _redis_address(settings: Settings) -> tuple[str, int]:
    host, _, port = settings.redis_url.split(",")[0].rpartition(":")
    return host or "127.0.0.1", int(port or 6379)


def _postgres_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def ensure_postgres(settings: Settings, state: dict[str, Running], log: Log) -> None:
    """Use the PostgreSQL of the settings, or start one under MLOPS_HOME/stack/postgres."""
    host, port, user = _postgres_address(settings)
    if _port_open(host, port):
        log(f"postgres          using the server at {host}:{port}")
        return
    where = f"PostgreSQL does not answer at {host}:{port} (MLOPS_STACK_POSTGRES_URL)"
    if host not in LOOPBACK:
        raise StackError(f"{where}; start it, or point the setting at one that runs")
    initdb, postgres = _postgres_binary("initdb"), _postgres_binary("postgres")
    if initdb is None or postgres is None:
        raise StackError(
            f"{where}, and no PostgreSQL binaries (initdb, postgres) are installed: "
            "start a server, or install one (for example `apt-get install postgresql`)"
        )
    if os.geteuid() == 0:
        raise StackError(
            f"{where}; PostgreSQL refuses to run as root, so it cannot be started from here: "
            "start it as its own user (for example `pg_ctlcluster <version> main start`)"
        )
    data = stack_dir(settings) / "postgres"
    if not (data / "PG_VERSION").exists():
        log(f"postgres          initdb {data}")
        subprocess.run(
            [initdb, "-D", str(data), "-U", user, "--auth=trust", "--encoding=UTF8"],
            check=True,
            capture_output=True,
        )
    argv = [postgres, "-D", str(data), "-p", str(port), "-k", str(data)]
    argv += ["-c", "listen_addresses=127.0.0.1"]
    run, _ = _launch("postgres", argv, process_environment({}), settings, url=None, health_url=None)
    state["postgres"] = run
    _wait_until(run, lambda: _port_open(host, port), 60)
    log(f"postgres          started from {postgres} on {host}:{port}")


def ensure_redis(settings: Settings, state: dict[str, Running], log: Log) -> None:
    """Use the Redis of the settings, or start one under MLOPS_HOME/stack/redis."""
    host, port = _redis_address(settings)
    if _port_open(host, port):
        log(f"redis             using the server at {host}:{port}")
        return
    where = f"Redis does not answer at {host}:{port} (MLOPS_REDIS_URL)"
    if host not in LOOPBACK:
        raise StackError(f"{where}; start it, or point the setting at one that runs")
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError(
            f"{where}, and redis-server is not installed: start a server, or install one "
            "(for example `apt-get install redis-server`)"
        )
    data = stack_dir(settings) / "redis"
    data.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--bind", host, "--port", str(port), "--dir", str(data), "--appendonly", "yes"]
    run, _ = _launch("redis", argv, process_environment({}), settings, url=None, health_url=None)
    state["redis"] = run
    _wait_until(run, lambda: _port_open(host, port), 30)
    log(f"redis             started from {binary} on {host}:{port}")


def create_databases(settings: Settings, log: Log) -> None:
    """The init script's databases (with the settings' prefix), where they are missing."""
    import sqlalchemy as sa

    server = sa.create_engine(
        f"{settings.stack_postgres_url.rstrip('/')}/postgres", isolation_level="AUTOCOMMIT"
    )
    try:
        with server.connect() as connection:
            for name in DATABASES:
                database = f"{settings.stack_database_prefix}{name}"
                exists = connection.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
                ).first()
                if not exists:
                    connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
                    log(f"postgres          created database {database}")
    finally:
        server.dispose()


def drop_databases(settings: Settings) -> None:
    """Drop the stack's databases (tests use prefixed ones and leave nothing behind)."""
    import sqlalchemy as sa

    server = sa.create_engine(
        f"{settings.stack_postgres_url.rstrip('/')}/postgres", isolation_level="AUTOCOMMIT"
    )
    try:
        with server.connect() as connection:
            for name in DATABASES:
                database = f"{settings.stack_database_prefix}{name}"
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    finally:
        server.dispose()


# --- up, down, status --------------------------------------------------------------------


def up(settings: Settings, *, bootstrap: bool, log: Log) -> dict[str, Running]:
    """Start what is not running yet, each once the services it depends on are healthy.

    Services whose dependencies are met start together (MLflow, the Prefect server and the
    Evidently UI need only the databases), so the wait is the longest chain, not the sum.
    """
    state_file = StateFile(settings)
    state = {name: run for name, run in state_file.read().items() if run.alive()}
    running_before = dict(state)
    (settings.home / "monitoring" / "workspace").mkdir(parents=True, exist_ok=True)
    try:
        if "postgres" not in state:
            ensure_postgres(settings, state, log)
        if "redis" not in state:
            ensure_redis(settings, state, log)
        state_file.write(state)
        create_databases(settings, log)
        _start_services(settings, state, state_file, bootstrap=bootstrap, log=log)
    except BaseException:
        # Half a stack helps nobody: stop what this call started, keep the logs.
        log("start failed: stopping what was started")
        started = [run for name, run in state.items() if name not in running_before]
        _stop(list(reversed(started)), STOP_TIMEOUT_S, log)
        state_file.write(running_before)
        raise
    return state


def _start_services(
    settings: Settings,
    state: dict[str, Running],
    state_file: StateFile,
    *,
    bootstrap: bool,
    log: Log,
) -> None:
    table = services(topology(settings))
    names = {service.name for service in table}
    ready = {"postgres", "redis"} | {name for name in state if name in names}
    for name in sorted(ready & names):
        log(f"{name:<17} already running (pid {state[name].pid})")
    waiting: dict[str, tuple[Service, Running, subprocess.Popen[bytes], float]] = {}
    if not bootstrap:
        ready |= {service.name for service in table if service.one_shot}
    pending = [service for service in table if service.name not in ready]
    while pending or waiting:
        startable = [s for s in pending if all(d in ready for d in s.depends_on)]
        if pending and not waiting and not startable:
            blocked = {s.name: [d for d in s.depends_on if d not in ready] for s in pending}
            raise StackError(f"services wait for services that are not in the stack: {blocked}")
        for service in startable:
            pending.remove(service)
            run, process = _launch(
                service.name,
                list(service.command),
                process_environment(service.environment),
                settings,
                url=service.url(),
                health_url=service.health_url(),
            )
            state[service.name] = run  # a one-shot too, so a failed `up` stops it
            state_file.write(state)
            waiting[service.name] = (service, run, process, time.monotonic())
        for name, (service, run, process, started) in list(waiting.items()):
            if _became_ready(service, run, process, started):
                del waiting[name]
                ready.add(name)
                if service.one_shot:
                    del state[name]
                    state_file.write(state)
                took = time.monotonic() - started
                where = "done" if service.one_shot else f"healthy at {service.url()}"
                log(f"{name:<17} {where} in {took:.0f} s  (log: {run.log})")
        time.sleep(0.5)


def _became_ready(
    service: Service, run: Running, process: subprocess.Popen[bytes], started: float
) -> bool:
    """True once healthy (a one-shot: exited 0); raises when it died or timed out."""
    code = process.poll()
    if service.one_shot:
        if code is None:
            return False
        if code == 0:
            return True
        raise StackError(
            f"{run.name} failed (exit {code}); the end of {run.log}:\n{_tail(run.log)}"
        )
    url = service.health_url()
    assert url is not None, f"{service.name} has no health URL"
    if probe(url):
        return True
    if code is not None:
        raise StackError(f"{run.name} exited ({code}); the end of {run.log}:\n{_tail(run.log)}")
    if time.monotonic() - started > HEALTH_TIMEOUT_S:
        raise StackError(
            f"{run.name} not healthy within {HEALTH_TIMEOUT_S:.0f} s; "
            f"the end of {run.log}:\n{_tail(run.log)}"
        )
    return False


def down(settings: Settings, *, log: Log, timeout: float = STOP_TIMEOUT_S) -> list[str]:
    """Stop everything `up` started, services before the databases they use."""
    state_file = StateFile(settings)
    runs = list(reversed(state_file.read().values()))
    _stop(runs, timeout, log)
    state_file.write({})
    return [run.name for run in runs]


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # healthy, unhealthy, stopped, external
    url: str | None
    pid: int | None

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def status(settings: Settings) -> list[ServiceStatus]:
    state = StateFile(settings).read()
    rows: list[ServiceStatus] = []
    pg_host, pg_port, _ = _postgres_address(settings)
    redis_host, redis_port = _redis_address(settings)
    for name, (host, port) in {
        "postgres": (pg_host, pg_port),
        "redis": (redis_host, redis_port),
    }.items():
        run = state.get(name)
        answering = _port_open(host, port)
        label = ("healthy" if run.alive() else "stopped") if run else "external"
        if run is None and not answering:
            label = "stopped"
        rows.append(ServiceStatus(name, label, f"{host}:{port}", run.pid if run else None))
    for service in services(topology(settings)):
        if service.one_shot:
            continue
        run = state.get(service.name)
        url = service.health_url()
        if run is None or not run.alive():
            rows.append(ServiceStatus(service.name, "stopped", service.url(), None))
            continue
        healthy = url is not None and probe(url)
        rows.append(
            ServiceStatus(
                service.name, "healthy" if healthy else "unhealthy", service.url(), run.pid
            )
        )
    return rows
