"""A copy of the session's fraud run for a stream test: its registry and champion, and
online states published afresh from the run's valid history as of a cut-off, so what
other tests recorded in the run's own store does not count."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.helpers.runs import use_home

# Rows of the fraud run's file that the pipeline quarantined (see the fraud_run fixture).
BROKEN_ROWS = [5, 9, 12]


def valid_history(fraud_run: dict[str, Any]) -> pd.DataFrame:
    """The fraud run's transactions the pipeline kept, in time order."""
    history = fraud_run["transactions"].drop(index=BROKEN_ROWS)
    return history.sort_values(["TX_DATETIME", "TRANSACTION_ID"]).reset_index(drop=True)


def stream_home(
    fraud_run: dict[str, Any],
    home: Path,
    patch: pytest.MonkeyPatch,
    published: pd.DataFrame,
    as_of: pd.Timestamp,
) -> None:
    """Copy the run's home to `home` (not its online store, log, spool or labels), point
    MLOPS_HOME at it, and publish the states of `published` as of `as_of`."""
    from features import store as feature_store
    from mlops.settings import Settings

    skip = shutil.ignore_patterns(
        "online.db*", "predictions.db*", "spool", "prefect", "labels", "monitoring", "traffic"
    )
    shutil.copytree(Path(str(fraud_run["home"])), home, ignore=skip)
    use_home(patch, home)
    patch.setenv("MLOPS_MODEL_REFRESH_S", "0")
    settings = Settings()
    store = feature_store.feature_store(settings)
    feature_store.apply_churn_definitions(store, settings)
    feature_store.apply_fraud_definitions(store, settings)
    feature_store.publish_fraud_state(store, settings, published, as_of.to_pydatetime())
