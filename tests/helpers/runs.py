"""The session's real runs: their sizes, the environment they run in, `mlops` run as a user would.

`tests/conftest.py` runs the churn flow and `mlops pipeline fraud` once per session with
these parameters; tests that check what those runs produced read the same values here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Big enough that the behavioural model tests are not at the mercy of sampling noise.
CHURN_RUN_CUSTOMERS = 3000

# Small, but long enough for the protocol: 30 days of window history before the four
# prequential folds (35 days before the final training week), then 7 + 7 + 7 days.
FRAUD_RUN_SIMULATION = {"n_customers": 300, "n_terminals": 600, "n_days": 70, "seed": 7}
FRAUD_RUN_TRAIN_START = "2018-05-20"
# Rows of the fraud run's file broken on purpose, by the rule each breaks.
FRAUD_RUN_BROKEN = {"TX_AMOUNT: not a number": 2, "TRANSACTION_ID: duplicate": 1}


def use_home(patch: pytest.MonkeyPatch, home: Path) -> None:
    """Drop the caller's MLOPS_*/MLFLOW_* variables and point MLOPS_HOME at `home`."""
    for key in list(os.environ):
        if key.startswith(("MLOPS_", "MLFLOW_")):
            patch.delenv(key)
    patch.setenv("MLOPS_HOME", str(home))


@contextmanager
def isolated_home(home: Path) -> Iterator[pytest.MonkeyPatch]:
    """`use_home` for a fixture that outlives one test (module or session scope).

    MLflow exports the tracking and registry URIs it is given to the environment
    (`MLFLOW_TRACKING_URI`, so subprocesses inherit them) and keeps them process-wide: a
    flow run in a fixture would point every later test at its home. On exit, both are
    forgotten and the environment is as it was.
    """
    with pytest.MonkeyPatch.context() as patch:
        use_home(patch, home)
        try:
            yield patch
        finally:
            forget_mlflow_uris()


def forget_mlflow_uris() -> None:
    """Unset MLflow's process-wide tracking and registry URIs, its active experiment (an id
    in the store a previous test used) and their variables."""
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils

    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None unsets it and its variable
    registry_utils._registry_uri = None
    fluent._active_experiment_id = None
    for variable in ("MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        os.environ.pop(variable, None)


def run_mlops(
    *args: str, home: Path, prefect_api: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `mlops` in its own process, as a user would, on the session's Prefect server."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    clean |= {"MLOPS_HOME": str(home), "PREFECT_API_URL": prefect_api, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
