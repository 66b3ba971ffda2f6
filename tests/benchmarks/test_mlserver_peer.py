"""The MLServer peer of `mlops bench serving`: its own environment, and one correct answer.

Both runtimes the benchmark may use (scikit-learn from a joblib file, xgboost from its
JSON file) load a small model each in one MLServer, which must give the probabilities
the model gives in this process. The environment is made once under the benchmark cache
(seconds with uv's download cache; about a gigabyte on disk) and reused afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from benchmarks import mlserver_peer
from benchmarks.serving import check_mlserver, free_port, mlserver_running

pytestmark = pytest.mark.slow


def test_mlserver_serves_both_runtimes_with_the_native_probabilities(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBClassifier

    try:
        env = mlserver_peer.ensure_env()
    except mlserver_peer.MLServerUnavailable as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"MLServer's environment is required under CI: {error}")
        pytest.skip(str(error))
    assert env.executable.exists() and env.describe()["requirements"] == (
        mlserver_peer.requirements()
    )

    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 6)).astype(np.float32)
    labels = (features[:, 0] + features[:, 1] > 0).astype(int)
    models = {
        "logistic": make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels),
        "boosted": XGBClassifier(n_estimators=5, max_depth=2).fit(features, labels),
    }
    ports = {name: free_port() for name in ("http", "grpc", "metrics")}
    repositories = {
        name: mlserver_peer.write_model_repository(tmp_path, model, name, "1", 6, ports)
        for name, model in models.items()
    }
    assert repositories["logistic"].runtime == mlserver_peer.SKLEARN_RUNTIME
    assert repositories["boosted"].runtime == mlserver_peer.XGBOOST_RUNTIME

    base = f"http://127.0.0.1:{ports['http']}"
    rows = features[:16]
    with mlserver_running(env.executable, tmp_path, ports["http"], list(models), tmp_path / "log"):
        for name, model in models.items():
            expected = model.predict_proba(rows)[:, 1]
            input_name, gap = check_mlserver(
                base, name, rows, expected, repositories[name].request_extra
            )
            assert input_name == mlserver_peer.INPUT_NAME and gap <= 1e-6
