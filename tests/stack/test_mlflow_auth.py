"""`stack.mlflow_auth`: MLflow's users made before its server starts, and the secrets the
stack refuses (empty, or .env.example's placeholders), in compose's rendering and natively."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from mlops.settings import Settings
from stack.mlflow_auth import READER, WRITER, ensure_users, prepare
from stack.native import load_secrets
from stack.processes import StackError
from stack.services import Topology, service_table

ROOT = Path(__file__).resolve().parents[2]


def _env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_compose_mlflow_refuses_the_example_placeholders(tmp_path: Path) -> None:
    # The compose rendering of the MLflow service, its ${VAR} filled from .env.example.
    example = _env_example()
    rendered = service_table(Topology.compose())["mlflow"].environment
    environment = {
        name: re.sub(r"\$\{(\w+)\}", lambda m: example[m.group(1)], value)
        for name, value in rendered.items()
    }
    environment["MLFLOW_AUTH_CONFIG_PATH"] = str(tmp_path / "auth" / "basic_auth.ini")
    with pytest.raises(SystemExit) as refused:
        prepare(environment)
    message = str(refused.value)
    for name in (
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_WRITER_PASSWORD",
        "MLFLOW_READER_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
    ):
        assert f"{name} is a placeholder" in message
    assert not (tmp_path / "auth").exists(), "nothing is written before the secrets are good"


def test_native_stack_refuses_a_placeholder_admin_token(settings: Settings) -> None:
    placeholder = _env_example()["MLOPS_ADMIN_TOKEN"]
    with pytest.raises(StackError, match="MLOPS_ADMIN_TOKEN is a placeholder"):
        load_secrets(settings.model_copy(update={"admin_token": SecretStr(placeholder)}))


def test_native_secrets_are_made_once_each_its_own(settings: Settings) -> None:
    first = load_secrets(settings)
    values = list(first.__dict__.values())
    assert len(set(values)) == len(values)
    assert all(len(value) >= 12 for value in values)  # MLflow refuses shorter passwords
    assert load_secrets(settings) == first
    # A file from before MLflow had users gains them, and keeps what it had.
    path = settings.home / "stack" / "secrets.json"
    path.write_text(json.dumps({"admin_token": "kept", "prefect_auth_string": "a:kept"}))
    upgraded = load_secrets(settings)
    assert (upgraded.admin_token, upgraded.prefect_auth_string) == ("kept", "a:kept")
    assert upgraded.mlflow_reader_password and upgraded.mlflow_writer_password


@pytest.mark.slow  # MLflow's auth store migrates its schema and hashes each password
def test_users_are_made_and_their_passwords_rotated(tmp_path: Path) -> None:
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    config = tmp_path / "auth" / "basic_auth.ini"
    environment = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-password-1",
        "MLFLOW_WRITER_PASSWORD": "writer-password-1",
        "MLFLOW_READER_PASSWORD": "reader-password-1",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "secret-key-of-the-test",
    }
    assert prepare(environment) == config
    assert "default_permission = READ" in config.read_text()
    prepare({**environment, "MLFLOW_READER_PASSWORD": "reader-password-2"})
    store = SqlAlchemyStore()
    store.init_db(f"sqlite:///{tmp_path / 'auth' / 'users.db'}")
    assert store.authenticate_user(WRITER, "writer-password-1")
    assert store.authenticate_user(READER, "reader-password-2")
    assert not store.authenticate_user(READER, "reader-password-1")
    assert not store.get_user(READER).is_admin
    ensure_users(f"sqlite:///{tmp_path / 'auth' / 'users.db'}", {READER: "reader-password-3"})
    assert store.authenticate_user(READER, "reader-password-3")


def test_a_generated_secret_is_checked_cheaply_a_short_password_keeps_scrypt(
    tmp_path: Path,
) -> None:
    """MLflow checks the password on every request: a long generated secret is stored as
    few-round PBKDF2 (scrypt cost ~170 ms a request here), a guessable one keeps scrypt."""
    import secrets

    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    uri = f"sqlite:///{tmp_path / 'users.db'}"
    long, short = secrets.token_urlsafe(24), "short-password"
    ensure_users(uri, {WRITER: long, READER: short})
    store = SqlAlchemyStore()
    store.init_db(uri)
    assert store.get_user(WRITER).password_hash.startswith("pbkdf2:sha256:1000$")
    assert store.get_user(READER).password_hash.startswith("scrypt:")
    assert store.authenticate_user(WRITER, long) and store.authenticate_user(READER, short)
    assert not store.authenticate_user(WRITER, long[:-1] + "!")
    rotated = secrets.token_urlsafe(24)
    ensure_users(uri, {WRITER: rotated})
    assert store.authenticate_user(WRITER, rotated) and not store.authenticate_user(WRITER, long)
