"""Fixtures of the serving tests: the churn API on the session's churn run, its raw input,
and a home `mlops demo` built."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlops.settings import Settings
from serving.app import create_app
from tests.helpers.runs import run_mlops


@pytest.fixture
def churn_client(churn_settings: Settings) -> Iterator[TestClient]:
    """The churn-only API on the session's churn run, started and shut down around one test."""
    with TestClient(create_app(churn_settings)) as client:
        yield client


@pytest.fixture
def raw_customers(churn_run: dict[str, Any]) -> pd.DataFrame:
    """The raw customers the session's churn run read, as it saved them."""
    path = churn_run["home"] / "raw" / churn_run["pipeline_run"] / "customers.parquet"
    return pd.read_parquet(path)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> dict[str, Any]:
    """`mlops demo --no-serve --json` at its default sizes, run once as a user would.

    Returns both summaries plus `home`: a home like the one `make demo` builds, which the
    API's documented examples are made for.
    """
    home = tmp_path_factory.mktemp("demo-run")
    result = run_mlops("demo", "--no-serve", "--json", home=home, prefect_api=prefect_api)
    assert result.returncode == 0, result.stderr[-4000:]
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return {**summary, "home": home}


@pytest.fixture
def demo_settings(demo_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at the demo's home, both models served, following no alias."""
    monkeypatch.setenv("MLOPS_HOME", str(demo_run["home"]))
    monkeypatch.setenv("MLOPS_MODEL_REFRESH_S", "0")
    return Settings()
