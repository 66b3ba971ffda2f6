"""The native stack's process handling: databases it cannot use are reported, Redis is
started when none answers, and `down` leaves no process of a group behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from benchmarks.serving import free_port
from mlops.settings import Settings
from stack import data_services
from stack.native import down
from stack.processes import Running, StackError, StateFile, launch


def _settings(monkeypatch: pytest.MonkeyPatch, **variables: str) -> Settings:
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    return Settings().prepare()


def test_a_database_elsewhere_that_does_not_answer_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    settings = _settings(
        monkeypatch, MLOPS_STACK_POSTGRES_URL=f"postgresql+psycopg://postgres@127.0.0.2:{port}"
    )
    with pytest.raises(StackError, match=f"does not answer at 127.0.0.2:{port}.*point the setting"):
        data_services.ensure_postgres(settings, {}, print)


def test_a_postgres_that_cannot_be_started_here_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    can_start = os.geteuid() != 0 and data_services.postgres_binary("initdb") is not None
    if can_start:
        pytest.skip("this machine could start PostgreSQL: nothing to report")
    port = free_port()
    settings = _settings(
        monkeypatch, MLOPS_STACK_POSTGRES_URL=f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    )
    with pytest.raises(StackError, match=r"refuses to run as root|no PostgreSQL binaries"):
        data_services.ensure_postgres(settings, {}, print)


def test_redis_is_started_when_none_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    import redis

    port = free_port()
    settings = _settings(monkeypatch, MLOPS_REDIS_URL=f"127.0.0.1:{port}")
    state: dict[str, Running] = {}
    data_services.ensure_redis(settings, state, print)
    try:
        assert redis.Redis(host="127.0.0.1", port=port).ping()
        assert (settings.home / "stack" / "redis").is_dir()
    finally:
        StateFile(settings).write(state)
        assert down(settings, log=print) == ["redis"]
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host="127.0.0.1", port=port).ping()


def test_down_kills_a_group_that_ignores_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch)
    # A leader that ignores SIGTERM, with a child in its group.
    argv = ["sh", "-c", "trap '' TERM; sleep 300 & wait"]
    run, _process = launch("stubborn", argv, dict(os.environ), settings, url=None, health_url=None)
    StateFile(settings).write({"stubborn": run})
    assert run.alive()
    assert down(settings, log=print, timeout=1) == ["stubborn"]
    with pytest.raises(ProcessLookupError):
        os.killpg(run.pid, 0)
    assert StateFile(settings).read() == {}
    assert Path(run.log).exists()
