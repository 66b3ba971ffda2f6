"""The stack as local processes (`mlops stack up|down|status`), from the same service table.

PostgreSQL and Redis are used where the settings point when they answer; on loopback they
are started from their installed binaries when they do not (`stack.data_services`). Then
each service of `stack.services` runs as its own process group with the table's argv and
environment, its log and pid file under MLOPS_HOME/stack/ (`stack.processes`), and `up`
waits for its health URL. `down` sends SIGTERM to each group, then SIGKILL to what is left
after a timeout.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from dataclasses import dataclass, replace
from typing import Any

from mlops.settings import DEFAULT_ADMIN_TOKEN, Settings, weak_secret
from stack.data_services import (
    create_databases,
    ensure_postgres,
    ensure_redis,
    postgres_address,
    redis_address,
)
from stack.observability import installed, observability_services, write_configs
from stack.processes import (
    Log,
    Running,
    StackError,
    StateFile,
    launch,
    log_tail,
    port_open,
    probe,
    process_environment,
    stack_dir,
    stop,
)
from stack.services import Service, Topology, services

# On a busy 2-core machine the Prefect server takes 10-20 s, MLflow's first migration longer.
HEALTH_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class StackSecrets:
    """The API's admin token, the Prefect server's `user:password`, MLflow's admin, writer
    and reader passwords and the key of its CSRF protection (`stack.mlflow_auth`)."""

    admin_token: str
    prefect_auth_string: str
    mlflow_admin_password: str
    mlflow_writer_password: str
    mlflow_reader_password: str
    mlflow_secret_key: str

    @classmethod
    def fresh(cls, stored: dict[str, str]) -> StackSecrets:
        """The `stored` secrets, each one missing made anew."""
        made = {
            "admin_token": secrets.token_urlsafe(32),
            "prefect_auth_string": f"admin:{secrets.token_urlsafe(24)}",
            **{
                name: secrets.token_urlsafe(24)
                for name in (
                    "mlflow_admin_password",
                    "mlflow_writer_password",
                    "mlflow_reader_password",
                    "mlflow_secret_key",
                )
            },
        }
        return cls(**{name: stored.get(name) or value for name, value in made.items()})


def load_secrets(settings: Settings) -> StackSecrets:
    """The native stack's secrets, made once and kept in MLOPS_HOME/stack/secrets.json (0600).

    A MLOPS_ADMIN_TOKEN of the caller's own is used as it is, unless it is empty or a
    placeholder of .env.example (`StackError`).
    """
    path = stack_dir(settings) / "secrets.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    made = StackSecrets.fresh(stored)
    if made.__dict__ != stored:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(made.__dict__))
    own = settings.admin_token.get_secret_value()
    if own != DEFAULT_ADMIN_TOKEN:
        problem = weak_secret(own)
        if problem:
            raise StackError(
                f"MLOPS_ADMIN_TOKEN is {problem}: the stack refuses it; unset it (the stack "
                "makes its own) or set a secret of your own"
            )
        made = replace(made, admin_token=own)
    return made


def topology(settings: Settings) -> Topology:
    """This machine's topology, with the native stack's secrets."""
    keys = load_secrets(settings)
    return Topology.native(
        settings,
        admin_token=keys.admin_token,
        prefect_auth_string=keys.prefect_auth_string,
        mlflow_passwords=(
            keys.mlflow_admin_password,
            keys.mlflow_writer_password,
            keys.mlflow_reader_password,
            keys.mlflow_secret_key,
        ),
    )


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
        stop(list(reversed(started)), STOP_TIMEOUT_S, log)
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
    table = native_services(settings)
    for service in observability_services(settings):
        if not installed(service):
            log(
                f"{service.name:<17} not installed: the stack runs without it "
                "(apt-get install prometheus prometheus-alertmanager)"
            )
    write_configs(settings)
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
            run, process = launch(
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


def native_services(settings: Settings) -> list[Service]:
    """The service table for this machine, then the installed Prometheus and Alertmanager,
    less the services the settings turn off (outside MLOPS_STACK_PROFILE, or the traffic
    service under MLOPS_STACK_TRAFFIC=false)."""
    extra = [service for service in observability_services(settings) if installed(service)]
    return [s for s in [*services(topology(settings)), *extra] if s.enabled(settings)]


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
            f"{run.name} failed (exit {code}); the end of {run.log}:\n{log_tail(run.log)}"
        )
    url = service.health_url()
    assert url is not None, f"{service.name} has no health URL"
    if probe(url):
        return True
    if code is not None:
        raise StackError(f"{run.name} exited ({code}); the end of {run.log}:\n{log_tail(run.log)}")
    if time.monotonic() - started > HEALTH_TIMEOUT_S:
        raise StackError(
            f"{run.name} not healthy within {HEALTH_TIMEOUT_S:.0f} s; "
            f"the end of {run.log}:\n{log_tail(run.log)}"
        )
    return False


def down(settings: Settings, *, log: Log, timeout: float = STOP_TIMEOUT_S) -> list[str]:
    """Stop everything `up` started, services before the databases they use."""
    state_file = StateFile(settings)
    runs = list(reversed(state_file.read().values()))
    stop(runs, timeout, log)
    state_file.write({})
    return [run.name for run in runs]


@dataclass(frozen=True)
class ServiceStatus:
    """One row of `mlops stack status`."""

    name: str
    state: str  # healthy, unhealthy, stopped, external, not installed, off
    url: str | None
    pid: int | None

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def status(settings: Settings) -> list[ServiceStatus]:
    """PostgreSQL, Redis, then each long-running service of the table, Prometheus and
    Alertmanager: healthy, unhealthy, stopped, external (a database server the stack uses but
    did not start), not installed (Prometheus or Alertmanager) or off (outside
    MLOPS_STACK_PROFILE, or the traffic service under MLOPS_STACK_TRAFFIC=false)."""
    state = StateFile(settings).read()
    rows: list[ServiceStatus] = []
    pg_host, pg_port, _ = postgres_address(settings)
    redis_host, redis_port = redis_address(settings)
    for name, (host, port) in {
        "postgres": (pg_host, pg_port),
        "redis": (redis_host, redis_port),
    }.items():
        run = state.get(name)
        answering = port_open(host, port)
        label = ("healthy" if run.alive() else "stopped") if run else "external"
        if run is None and not answering:
            label = "stopped"
        rows.append(ServiceStatus(name, label, f"{host}:{port}", run.pid if run else None))
    optional = observability_services(settings)
    for service in [*services(topology(settings)), *optional]:
        if service.one_shot:
            continue
        run = state.get(service.name)
        if not service.enabled(settings):
            rows.append(ServiceStatus(service.name, "off", service.url(), None))
            continue
        if service in optional and not installed(service):
            rows.append(ServiceStatus(service.name, "not installed", service.url(), None))
            continue
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
