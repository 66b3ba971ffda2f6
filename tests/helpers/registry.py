"""A genuinely different model in a test registry: a challenger whose scores are its own.

Registering the champion's run a second time gives a challenger that scores every row
exactly like the champion, so a test cannot tell which of the two scored a row. This
helper fits another classifier (a full-depth decision tree) on the champion's reference
rows, exports it to ONNX as training does, logs its bundle under a run of its own and
registers it: its scores differ from the champion's, and on those same rows it ranks
them almost perfectly, so it beats the champion there.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn.tree import DecisionTreeClassifier

from mlops.model_bundle import (
    BUNDLE_ARTIFACT_PATH,
    ONNX_FILE,
    BundleMeta,
    download_bundle,
    write_parity_sample,
)
from mlops.names import CHAMPION
from mlops.reference import LABEL_COLUMN
from mlops.settings import Settings
from training.export import export_onnx, onnx_sha256


def register_other_model(
    settings: Settings, model_name: str, rows: pd.DataFrame, *, alias: str
) -> tuple[str, DecisionTreeClassifier, list[str]]:
    """Fit a decision tree on `rows` (the champion's features and a `label` column),
    register its bundle as a new version of `model_name` under `alias`.

    Returns the new version, the fitted tree and its feature order (the champion's).
    """
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    champion = download_bundle(
        settings.tracking_uri, model_name, settings.models_dir, alias=CHAMPION
    )
    names = list(champion.meta.feature_names)
    x = rows.loc[:, names].to_numpy(dtype=np.float32)
    tree = DecisionTreeClassifier(random_state=0).fit(x, rows[LABEL_COLUMN].to_numpy())
    experiment_id = client.get_run(champion.run_id).info.experiment_id
    run = client.create_run(experiment_id, run_name="test-other-model")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        onnx_path = export_onnx(tree, len(names), folder / ONNX_FILE)
        write_parity_sample(folder, tree, x)
        BundleMeta(
            model_name=model_name,
            feature_service=champion.meta.feature_service,
            feature_names=names,
            threshold=0.5,
            candidate="decision_tree",
            onnx_sha256=onnx_sha256(onnx_path),
            parity_max_abs_diff=0.0,
        ).write(folder)
        client.log_artifacts(run.info.run_id, str(folder), artifact_path=BUNDLE_ARTIFACT_PATH)
    client.set_terminated(run.info.run_id)
    source = f"{run.info.artifact_uri}/{BUNDLE_ARTIFACT_PATH}"
    version = client.create_model_version(model_name, source, run_id=run.info.run_id)
    client.set_registered_model_alias(model_name, alias, version.version)
    return str(version.version), tree, names
