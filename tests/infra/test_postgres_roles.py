"""infra/postgres/init.sql run by psql, as the Postgres image runs it, on the local server:
one role per database, each reaching only its own, and no role made from a weak password.

Every name carries a prefix of this test's own (`psql -v prefix=...`), and whatever the
script made is dropped afterwards, so the shared server keeps nothing. Trust authentication
does not skip the CONNECT privilege, which is what keeps one role out of another's database.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from mlops.settings import PLACEHOLDER_PREFIXES
from stack.services import DATABASES, role_password_variable
from tests.helpers.services import require_program, require_service

pytestmark = pytest.mark.services

INIT_SQL = Path(__file__).resolve().parents[2] / "infra" / "postgres" / "init.sql"
HOST, PORT = os.environ.get("TEST_POSTGRES_HOST", "127.0.0.1"), 5432


def _connect(user: str, database: str) -> psycopg.Connection:
    return psycopg.connect(
        host=HOST, port=PORT, user=user, dbname=database, autocommit=True, connect_timeout=5
    )


def _run_init(prefix: str, passwords: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The script as the image's entrypoint runs it (psql -v ON_ERROR_STOP=1 -f), as the
    superuser, the role passwords in the environment."""
    psql = require_program(("psql",), "apt-get install -y postgresql-client")
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **passwords}
    return subprocess.run(
        [
            *(psql, "-h", HOST, "-p", str(PORT), "-U", "postgres", "-d", "test", "--no-psqlrc"),
            *("-v", "ON_ERROR_STOP=1", "-v", f"prefix={prefix}", "-f", str(INIT_SQL)),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def _made(prefix: str) -> tuple[list[str], list[str]]:
    """The databases and roles whose names start with `prefix`."""
    with _connect("postgres", "test") as connection:
        databases = connection.execute(
            "SELECT datname FROM pg_database WHERE left(datname, length(%s)) = %s ORDER BY 1",
            (prefix, prefix),
        ).fetchall()
        roles = connection.execute(
            "SELECT rolname FROM pg_roles WHERE left(rolname, length(%s)) = %s ORDER BY 1",
            (prefix, prefix),
        ).fetchall()
    return [name for (name,) in databases], [name for (name,) in roles]


@pytest.fixture
def prefix() -> Iterator[str]:
    """A name prefix of this test's own; what the script made with it is dropped after."""
    require_service("PostgreSQL", HOST, PORT)
    made = f"t{uuid.uuid4().hex[:10]}_"
    yield made
    databases, roles = _made(made)
    with _connect("postgres", "test") as connection:
        for database in databases:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        for role in roles:
            connection.execute(f'DROP ROLE IF EXISTS "{role}"')
    assert _made(made) == ([], [])


def test_each_role_reaches_only_its_own_database(prefix: str) -> None:
    passwords = {role_password_variable(name): secrets.token_hex(16) for name in DATABASES}
    result = _run_init(prefix, passwords)
    assert result.returncode == 0, result.stderr
    names = [f"{prefix}{name}" for name in DATABASES]
    assert _made(prefix) == (sorted(names), sorted(names))

    with _connect("postgres", "test") as connection:
        roles = connection.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, "
            "rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid WHERE rolname = ANY(%s)",
            (names,),
        ).fetchall()
        owners: dict[str, str] = dict(
            connection.execute(
                "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = ANY(%s)",
                (names,),
            ).fetchall()
        )
    # Each logs in with its password, owns its database and may do nothing else.
    assert sorted(roles) == [
        (name, True, False, False, False, False, True) for name in sorted(names)
    ]
    assert owners == {name: name for name in names}

    for role in names:
        for database in names:
            if role != database:
                with pytest.raises(psycopg.OperationalError, match="permission denied"):
                    _connect(role, database).close()
                continue
            with _connect(role, database) as connection:
                # What its service does: migrate its own schema, write, read back.
                connection.execute("CREATE TABLE owned (id integer PRIMARY KEY)")
                connection.execute("INSERT INTO owned VALUES (1)")
                assert connection.execute("SELECT id FROM owned").fetchall() == [(1,)]
                if database.endswith("prefect"):
                    # Prefect's migrations create pg_trgm, a trusted extension the owner may.
                    connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")


def test_a_missing_empty_or_placeholder_password_makes_nothing(prefix: str) -> None:
    named = [role_password_variable(name) for name in DATABASES]
    # Each placeholder of .env.example's kind on a password, the last one left out.
    weak = {
        variable: f"{word}-postgres"
        for variable, word in zip(named, PLACEHOLDER_PREFIXES, strict=False)
    }
    assert len(weak) == len(PLACEHOLDER_PREFIXES) < len(named)
    missing = named[-1]
    result = _run_init(prefix, weak)
    assert result.returncode != 0
    for variable in weak:
        assert f"{variable} is a placeholder" in result.stderr
    assert f"{missing} is empty" in result.stderr
    # Set but blank is empty too.
    blank = _run_init(prefix, weak | {missing: " "})
    assert blank.returncode != 0 and f"{missing} is empty" in blank.stderr
    assert _made(prefix) == ([], [])
