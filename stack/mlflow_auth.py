"""MLflow behind its own basic-auth app, with one user that writes and one that only reads.

MLflow is the source of every served model: whoever can register a version or move the
`champion` alias decides what the API serves. The stack's MLflow server therefore runs
MLflow's basic-auth app (`mlflow server --app-name basic-auth`): every request needs a user,
and users have READ by default. Two users are made before the server starts:

- `WRITER` (training, promotion, the flows and a user's `mlops` commands): it creates the
  experiments and registered models, so it manages them;
- `READER` (the API): READ, the default, so it follows aliases and downloads bundles but
  cannot register a version, move an alias or upload an artifact.

MLflow's own `admin` user (MLFLOW_AUTH_ADMIN_PASSWORD) manages users and is used by no
service. Clients pass their user through MLflow's own MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD.

`python -m stack.mlflow_auth <mlflow server options>` is the stack's MLflow service: it
writes the auth configuration beside MLFLOW_AUTH_CONFIG_PATH, makes or updates the two users
from MLFLOW_WRITER_PASSWORD and MLFLOW_READER_PASSWORD, then becomes `mlflow server
--app-name basic-auth` with the given options.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from mlops.settings import weak_secret

WRITER: Final = "mlops-writer"
READER: Final = "mlops-reader"
ADMIN: Final = "admin"
USERS_DATABASE: Final = "users.db"

# What the service needs in its environment, beside MLflow's own MLFLOW_AUTH_ADMIN_PASSWORD
# and MLFLOW_FLASK_SERVER_SECRET_KEY.
WRITER_PASSWORD_VAR: Final = "MLFLOW_WRITER_PASSWORD"
READER_PASSWORD_VAR: Final = "MLFLOW_READER_PASSWORD"
CONFIG_PATH_VAR: Final = "MLFLOW_AUTH_CONFIG_PATH"
# Each must be a secret of the operator's own: not empty, not a placeholder of .env.example.
SECRETS: Final = (
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    WRITER_PASSWORD_VAR,
    READER_PASSWORD_VAR,
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)
AUTH_ENVIRONMENT: Final = (
    CONFIG_PATH_VAR,
    WRITER_PASSWORD_VAR,
    READER_PASSWORD_VAR,
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)


def auth_config(database_uri: str) -> str:
    """MLflow's basic-auth configuration: READ unless granted more, users in `database_uri`."""
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


# MLflow checks the password of every request against its stored hash. Its default, scrypt
# (werkzeug's, n=2^15), costs ~170 ms of CPU a request on a 2-core machine: it doubled the
# time the flows took against the stack. That cost protects guessable human passwords; a
# generated secret of this length (the native stack's token_urlsafe(24): 32 characters, 192
# random bits; the README's token_hex(24): 48) cannot be guessed, so it is stored as salted
# PBKDF2 of few rounds, checked in well under a millisecond. A shorter one keeps scrypt.
LONG_SECRET: Final = 32
FAST_HASH: Final = "pbkdf2:sha256:1000"


def ensure_users(database_uri: str, passwords: Mapping[str, str]) -> None:
    """Make each user of `passwords` in the auth database, or set its password if it exists
    (a rotated secret takes effect on the next start)."""
    from mlflow.server.auth.db.models import SqlUser
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
    from werkzeug.security import generate_password_hash

    store = SqlAlchemyStore()
    store.init_db(database_uri)
    for username, password in passwords.items():
        if store.has_user(username):
            store.update_user(username, password=password)
        else:
            store.create_user(username, password)
        if len(password) >= LONG_SECRET:
            with store.ManagedSessionMaker(read_only=False) as session:
                user = session.query(SqlUser).filter(SqlUser.username == username).one()
                user.password_hash = generate_password_hash(password, method=FAST_HASH)


def prepare(environment: Mapping[str, str]) -> Path:
    """Write the auth configuration at MLFLOW_AUTH_CONFIG_PATH (its users' database beside
    it) and make the two users; return the configuration's path. Raises `SystemExit` naming
    each missing variable, or each secret that is empty or a placeholder (`change-me...`)."""
    missing = [
        name
        for name in (CONFIG_PATH_VAR, WRITER_PASSWORD_VAR, READER_PASSWORD_VAR)
        if not environment.get(name)
    ]
    if missing:
        raise SystemExit(f"the MLflow service needs {', '.join(missing)} in its environment")
    weak = {name: weak_secret(environment.get(name, "")) for name in SECRETS}
    refused = [f"{name} is {problem}" for name, problem in weak.items() if problem]
    if refused:
        raise SystemExit(
            "the MLflow service refuses to start: "
            + "; ".join(refused)
            + " (set secrets of your own in .env, see README.md)"
        )
    config = Path(environment[CONFIG_PATH_VAR])
    config.parent.mkdir(parents=True, exist_ok=True)
    database_uri = f"sqlite:///{config.parent / USERS_DATABASE}"
    config.write_text(auth_config(database_uri))
    ensure_users(
        database_uri,
        {WRITER: environment[WRITER_PASSWORD_VAR], READER: environment[READER_PASSWORD_VAR]},
    )
    return config


SERVICE_COMMAND: Final = ("python", "-m", "stack.mlflow_auth")


def without_auth(command: tuple[str, ...]) -> tuple[str, ...]:
    """The stack service's `command` as the plain `mlflow server` with the same options: a
    home's own SQLite store, shown by `mlops ui mlflow` on loopback, has no users."""
    assert command[:3] == SERVICE_COMMAND, command
    return ("mlflow", "server", *command[3:])


def main(argv: list[str]) -> None:
    from stack.processes import executable

    prepare(os.environ)
    mlflow = executable("mlflow")
    os.execv(mlflow, [mlflow, "server", "--app-name", "basic-auth", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
