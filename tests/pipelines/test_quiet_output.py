"""The stages that used to print what a user cannot act on print it no more.

Publishing the fraud features inside a flow that logs prints: Feast serializes the
on-demand view with dill, which disassembles the function into a captured stdout; with
print() sent to the run logger, the disassembly was logged, thirty lines of bytecode.
Logging a model to MLflow from a uv environment (no pip): MLflow warned that it could not
resolve pip's version, once per model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlops.settings import Settings
from tests.helpers.runs import forget_mlflow_uris

# Opcodes every disassembly of the on-demand view's function shows.
BYTECODE = ("RESUME", "LOAD_CONST", "IMPORT_NAME", "RETURN_VALUE")
PIP_WARNING = "Failed to resolve installed pip version"
# What else third-party libraries printed on a run that a user cannot act on.
NOISE = (PIP_WARNING, "Detected uv project", "Materializing", "Creating initial MLflow")
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_publishing_the_fraud_features_in_a_flow_prints_no_bytecode(
    settings: Settings,
    prefect_server: None,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from prefect import flow

    from pipelines.fraud_flow import publish_features
    from sources.fraud_simulator import simulate_transactions

    @flow(log_prints=True)  # as the pipelines are: prints go to the run logger
    def publishing(valid: pd.DataFrame) -> str:
        return str(publish_features(settings, valid))

    as_of = publishing(simulate_transactions(20, 100, 10, seed=7))

    out, err = capfd.readouterr()
    # The run logger's records too: Prefect's console handler may hold a stream of an
    # earlier test's, and a logged print is a record before it is a line.
    text = out + err + caplog.text
    # The task's own log line is there: the run's logs are in what was captured.
    assert "published card and terminal histories" in text
    assert not [code for code in BYTECODE if code in text], text[-3000:]
    assert "Materializing" not in text  # Feast's banner, in colour codes
    assert pd.Timestamp(as_of) > pd.Timestamp("2018-04-01", tz="UTC")


def test_logging_a_model_warns_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import mlflow
    import numpy as np
    import yaml
    from sklearn.linear_model import LogisticRegression

    from training.train import log_native_model

    monkeypatch.chdir(REPO)  # a uv project, as where `make demo` runs
    forget_mlflow_uris()  # no experiment of an earlier test's store stays active
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_experiment("quiet-output")
    x = np.random.default_rng(7).random((40, 2))
    y = (x[:, 0] > 0.5).astype(int)
    try:
        with mlflow.start_run():
            uri = log_native_model(LogisticRegression().fit(x, y), x[:5], ("a", "b"))
        location = mlflow.get_logged_model(uri.rsplit("/", 1)[-1]).artifact_location
        environment = Path(location.removeprefix("file://")) / "conda.yaml"
    finally:
        forget_mlflow_uris()

    out, err = capfd.readouterr()
    assert PIP_WARNING not in out + err
    assert "Detected uv project" not in out + err
    conda = yaml.safe_load(environment.read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert {r.split("==")[0] for r in pip} == {"mlflow", "scikit-learn", "numpy"}
    assert all("==" in r for r in pip)


@pytest.mark.slow
def test_the_fraud_pipeline_run_as_a_user_prints_no_noise(fraud_run: dict[str, Any]) -> None:
    """The session's `mlops pipeline fraud --json`, in its own process: no bytecode, no
    warning a user cannot act on, no traceback, no terminal codes in a pipe."""
    output = fraud_run["output"]
    assert "published card and terminal histories" in output  # the logs are there
    found = [n for n in (*BYTECODE, *NOISE, "Traceback", "\x1b") if n in output]
    assert not found, output[-3000:]
