"""What the API process imports: the serving stack only, never the training stack.

A fresh process builds the app as `mlops serve` does, runs its startup (both champions
loaded from the registry, the feature store opened), answers one request on each scoring
route, then lists `sys.modules`. Each package below is a training, tracking, orchestration
or monitoring library: none may be loaded. Feast (and pandas and pyarrow, which it
imports) is still there: serving reads the online store through Feast.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.churn_frames import ENTITY_KEY
from features.feature_repo.churn import CHURN_FEATURES_FILE
from mlops.settings import Settings

pytestmark = pytest.mark.slow  # a demo home with both champions, then a fresh process

# Package: why serving must not load it.
FORBIDDEN = {
    "mlflow": "the registry is read by mlops.registry_reader",
    "scipy": "came with MLflow's model signatures and with Dask",
    "sklearn": "training",
    "xgboost": "training; the API scores ONNX",
    "imblearn": "training",
    "optuna": "tuning",
    "skl2onnx": "ONNX export",
    "onnxmltools": "ONNX export",
    "onnx": "ONNX export; onnxruntime reads the file itself",
    "dask": "Feast's file offline store; serving reads online only",
    "distributed": "Dask's cluster",
    "prefect": "the flows",
    "evidently": "monitoring",
    "statsmodels": "monitoring's tests",
    "matplotlib": "plots of training and reports",
    "plotly": "reports",
}

_PROBE = """
import json, sys
from fastapi.testclient import TestClient
from mlops.settings import Settings
from serving.app import create_app

customer = sys.argv[1]
payment = {"customer_id": 1, "terminal_id": 2, "amount": 57.3,
           "tx_datetime": "2018-10-01T10:00:00Z"}
with TestClient(create_app(Settings())) as client:
    answers = {
        "ready": client.get("/health/ready").status_code,
        "churn": client.post("/v1/churn/predict", json={"customer_id": customer}).status_code,
        "fraud": client.post("/v1/fraud/score", json=payment).status_code,
    }
print(json.dumps({"answers": answers, "packages": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _serving_packages(home: Path, customer: str) -> dict[str, Any]:
    environment = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "MLOPS_SERVED_MODELS": "churn,fraud",
        "MLOPS_MODEL_REFRESH_S": "0",
    }
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, customer],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def test_serving_both_models_loads_no_training_library(
    tiny_demo: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A copy: scoring a payment appends it to the card's and terminal's online states.
    home = tmp_path / "home"
    shutil.copytree(Path(str(tiny_demo["home"])), home, ignore=shutil.ignore_patterns("prefect"))
    monkeypatch.setenv("MLOPS_HOME", str(home))
    features = pd.read_parquet(Settings().features_dir / CHURN_FEATURES_FILE)
    customer = str(features[ENTITY_KEY].iloc[0])
    found = _serving_packages(home, customer)
    assert found["answers"] == {"ready": 200, "churn": 200, "fraud": 200}
    loaded = {package: FORBIDDEN[package] for package in FORBIDDEN if package in found["packages"]}
    assert loaded == {}
    # What serving does need is there: the probe measured the process it meant to.
    assert {"onnxruntime", "fastapi", "feast"} <= set(found["packages"])
