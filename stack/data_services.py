"""PostgreSQL and Redis for the native stack: used where the settings point, else started.

When the settings' server answers it is used as it is. When it does not and it is on
loopback, it is started from its installed binaries, its data under MLOPS_HOME/stack/
(postgres/, redis/), as a process of `stack.processes`. Then the databases of the service
table (`stack.services.DATABASES`, with the settings' prefix) are created where missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlops.settings import Settings
from stack.processes import (
    Log,
    Running,
    StackError,
    launch,
    port_open,
    process_environment,
    stack_dir,
    wait_until,
)
from stack.services import DATABASES

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def postgres_address(settings: Settings) -> tuple[str, int, str]:
    """(host, port, user) of the settings' PostgreSQL server."""
    parts = urlsplit(settings.stack_postgres_url.replace("+psycopg", ""))
    return parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres"


def redis_address(settings: Settings) -> tuple[str, int]:
    """(host, port) of the settings' Redis server."""
    host, _, port = settings.redis_url.split(",")[0].rpartition(":")
    return host or "127.0.0.1", int(port or 6379)


def postgres_binary(name: str) -> str | None:
    """The path of a PostgreSQL server program (on PATH or Debian's versioned folders)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def ensure_postgres(settings: Settings, state: dict[str, Running], log: Log) -> None:
    """Use the PostgreSQL of the settings, or start one under MLOPS_HOME/stack/postgres
    (recorded in `state`). Raises `StackError` when neither can be done, saying why."""
    host, port, user = postgres_address(settings)
    if port_open(host, port):
        log(f"postgres          using the server at {host}:{port}")
        return
    where = f"PostgreSQL does not answer at {host}:{port} (MLOPS_STACK_POSTGRES_URL)"
    if host not in LOOPBACK:
        raise StackError(f"{where}; start it, or point the setting at one that runs")
    initdb, postgres = postgres_binary("initdb"), postgres_binary("postgres")
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
    run, _ = launch("postgres", argv, process_environment({}), settings, url=None, health_url=None)
    state["postgres"] = run
    wait_until(run, lambda: port_open(host, port), 60)
    log(f"postgres          started from {postgres} on {host}:{port}")


def ensure_redis(settings: Settings, state: dict[str, Running], log: Log) -> None:
    """Use the Redis of the settings, or start one under MLOPS_HOME/stack/redis (recorded in
    `state`). Raises `StackError` when neither can be done, saying why."""
    host, port = redis_address(settings)
    if port_open(host, port):
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
    run, _ = launch("redis", argv, process_environment({}), settings, url=None, health_url=None)
    state["redis"] = run
    wait_until(run, lambda: port_open(host, port), 30)
    log(f"redis             started from {binary} on {host}:{port}")


@contextmanager
def _server_connection(settings: Settings) -> Iterator[Any]:
    """An autocommit connection to the settings' PostgreSQL server (its `postgres`
    database), for statements no transaction may hold: CREATE and DROP DATABASE."""
    import sqlalchemy as sa

    server = sa.create_engine(
        f"{settings.stack_postgres_url.rstrip('/')}/postgres", isolation_level="AUTOCOMMIT"
    )
    try:
        with server.connect() as connection:
            yield connection
    finally:
        server.dispose()


def _database_names(settings: Settings) -> list[str]:
    """The stack's databases with the settings' prefix."""
    return [f"{settings.stack_database_prefix}{name}" for name in DATABASES]


def create_databases(settings: Settings, log: Log) -> None:
    """The init script's databases (with the settings' prefix), where they are missing."""
    import sqlalchemy as sa

    with _server_connection(settings) as connection:
        for database in _database_names(settings):
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
            ).first()
            if not exists:
                connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
                log(f"postgres          created database {database}")


def drop_databases(settings: Settings) -> None:
    """Drop the stack's databases (tests use prefixed ones and leave nothing behind)."""
    import sqlalchemy as sa

    with _server_connection(settings) as connection:
        for database in _database_names(settings):
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
