"""A registered model version whose ONNX file is changed after registration: what serving's
digest check (`mlops.digests`) must refuse. Shared by the bad-versions fault test (a SQLite
registry) and the native stack's (MLflow behind its auth app)."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from mlops.digests import ONNX_DIGEST_TAG, PARITY_DIGEST_TAG, file_sha256
from mlops.model_bundle import BUNDLE_ARTIFACT_PATH, ONNX_FILE, PARITY_FILE, download_bundle


def tamper(path: Path) -> None:
    """Rewrite a valid ONNX model into another valid one that scores the same: only its
    bytes differ, so loading and parity would accept it."""
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {"tampered": "after registration"})
    onnx.save(model, str(path))


def register_then_tamper(
    client: MlflowClient,
    tracking_uri: str,
    name: str,
    champion: ModelVersion,
    run_id: str,
    work: Path,
) -> str:
    """A new version of `name` registered as training registers one (the bundle of churn's
    `champion` logged to `run_id`, its files' digests in the version's tags), whose ONNX file
    is then replaced in the artifact store. Returns the version number."""
    good = download_bundle(tracking_uri, "churn", work / "good", version=str(champion.version))
    client.log_artifacts(run_id, str(good.folder), BUNDLE_ARTIFACT_PATH)
    client.set_terminated(run_id)
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    digests = {
        ONNX_DIGEST_TAG: file_sha256(good.onnx_path),
        PARITY_DIGEST_TAG: file_sha256(good.folder / PARITY_FILE),
    }
    source = f"runs:/{run_id}/{BUNDLE_ARTIFACT_PATH}"
    version = client.create_model_version(name, source, run_id=run_id, tags=digests)
    tampered = work / f"{name}-tampered" / ONNX_FILE
    tampered.parent.mkdir(parents=True)
    shutil.copy(good.onnx_path, tampered)
    tamper(tampered)
    client.log_artifact(run_id, str(tampered), BUNDLE_ARTIFACT_PATH)
    return str(version.version)
