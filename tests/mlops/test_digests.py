"""Tamper evidence: registration pins each artifact's SHA-256 in the version's tags, and a
file that differs from its registered digest is refused before use."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlops.digests import (
    ONNX_DIGEST_TAG,
    PARITY_DIGEST_TAG,
    REFERENCE_DIGEST_TAG,
    DigestMismatch,
    file_sha256,
    verify_file,
)
from mlops.model_bundle import PARITY_FILE, download_bundle
from mlops.reference import REFERENCE_FILE, load_reference
from mlops.settings import Settings


def test_a_file_must_match_its_registered_digest(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"registered bytes")
    tags = {ONNX_DIGEST_TAG: file_sha256(path)}
    verify_file(path, tags, ONNX_DIGEST_TAG, model="churn v3", require=True)

    path.write_bytes(b"registered bytes, changed")
    with pytest.raises(DigestMismatch, match=r"churn v3: model\.onnx changed after registration"):
        verify_file(path, tags, ONNX_DIGEST_TAG, model="churn v3", require=False)


def test_a_missing_digest_is_refused_only_when_required(tmp_path: Path) -> None:
    path = tmp_path / "parity_sample.npz"
    path.write_bytes(b"any")
    verify_file(path, {}, PARITY_DIGEST_TAG, model="churn v3", require=False)
    with pytest.raises(DigestMismatch, match="no registered digest"):
        verify_file(path, {}, PARITY_DIGEST_TAG, model="churn v3", require=True)


@pytest.mark.slow  # reads the session's churn run
def test_registration_pins_every_artifact(churn_settings: Settings) -> None:
    settings = churn_settings
    bundle = download_bundle(
        settings.tracking_uri, "churn", settings.models_dir, alias="champion", require_digests=True
    )
    assert bundle.tags[ONNX_DIGEST_TAG] == file_sha256(bundle.onnx_path)
    assert bundle.tags[PARITY_DIGEST_TAG] == file_sha256(bundle.folder / PARITY_FILE)
    load_reference(settings, "churn", bundle.version)
    cached = settings.monitoring_dir / "references" / f"churn-v{bundle.version}" / REFERENCE_FILE
    assert bundle.tags[REFERENCE_DIGEST_TAG] == file_sha256(cached)

    # A tag moved by someone without the artifact (or a file changed under it) is refused.
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    client.set_model_version_tag("churn", bundle.version, PARITY_DIGEST_TAG, "0" * 64)
    try:
        with pytest.raises(DigestMismatch, match=r"parity_sample\.npz changed after registration"):
            download_bundle(settings.tracking_uri, "churn", settings.models_dir, alias="champion")
    finally:
        client.set_model_version_tag(
            "churn", bundle.version, PARITY_DIGEST_TAG, bundle.tags[PARITY_DIGEST_TAG]
        )
