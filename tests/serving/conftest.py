"""Fixtures of the serving tests: the churn API on the session's churn run, and its raw input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlops.settings import Settings
from serving.app import create_app


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
