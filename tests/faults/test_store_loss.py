"""An online store that lost its data: readiness says so, with the reason.

Before, readiness read a key no entity has, which any answering store answers alike:
the store's file deleted while serving, or a Redis restarted empty, left readiness at 200
while every fraud score failed and known customers were 404s. Each publish now writes a
canary entity per view, and readiness reads it (`ViewReader.health`); the Redis case is
`tests/features/test_feature_store.py::test_a_redis_store_restarted_empty_is_not_healthy`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlops.settings import Settings
from serving.app import create_app

pytestmark = pytest.mark.slow


@pytest.fixture
def churn_home(
    churn_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """A copy of the session's churn run, served alone: this test deletes its store."""
    home = tmp_path / "home"
    skip = shutil.ignore_patterns("prefect", "raw", "predictions.db*", "labels", "monitoring")
    shutil.copytree(Path(str(churn_run["home"])), home, ignore=skip)
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_SERVED_MODELS", "churn")
    monkeypatch.setenv("MLOPS_MODEL_REFRESH_S", "0")
    yield Settings()


def test_the_online_store_deleted_while_serving_makes_the_api_not_ready(
    churn_home: Settings,
) -> None:
    with TestClient(create_app(churn_home)) as client:
        before = client.get("/health/ready")
        (churn_home.feast_dir / "online.db").unlink()
        after = client.get("/health/ready")
    assert before.status_code == 200, before.text
    assert after.status_code == 503
    body = after.json()
    assert body["checks"] == {
        "churn_model": True,
        "churn_features": False,
        "prediction_log": True,
    }
    assert body["feature_errors"] == {"churn": "the online store's file online.db is gone"}


def test_an_online_store_emptied_while_serving_makes_the_api_not_ready(
    churn_home: Settings,
) -> None:
    import sqlite3

    with TestClient(create_app(churn_home)) as client:
        assert client.get("/health/ready").status_code == 200
        with sqlite3.connect(churn_home.feast_dir / "online.db") as store:
            tables = [
                name
                for (name,) in store.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            for table in tables:
                if table.startswith("mlops_"):
                    store.execute(f'DELETE FROM "{table}"')
        after = client.get("/health/ready")
    assert after.status_code == 503
    assert "canary is missing" in after.json()["feature_errors"]["churn"]
