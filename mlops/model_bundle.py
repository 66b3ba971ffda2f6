"""The exported model as serving sees it: an ONNX file plus the metadata to use it.

Training writes a bundle (`model.onnx` + `model_meta.json`) as artifacts of the
winning MLflow run and registers that run's model; serving and the promotion gate
download the bundle of a registered version (by alias or number) and score with
onnxruntime, without the training libraries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlops.digests import ONNX_DIGEST_TAG, PARITY_DIGEST_TAG, verify_file
from mlops.registry_reader import RegistryReader, VersionNotFound, registry_reader

BUNDLE_ARTIFACT_PATH = "onnx"
ONNX_FILE = "model.onnx"
META_FILE = "model_meta.json"
# Test rows and the native model's probabilities on them: a loader re-scores them with
# onnxruntime before trusting the file, without needing the training libraries.
PARITY_FILE = "parity_sample.npz"
PARITY_ROWS = 256


@dataclass(frozen=True)
class BundleMeta:
    """What a consumer needs to feed the ONNX model and read its answer."""

    model_name: str
    feature_service: str
    feature_names: list[str]
    threshold: float
    candidate: str
    onnx_sha256: str
    parity_max_abs_diff: float
    test_metrics: dict[str, float] = field(default_factory=dict)

    def write(self, folder: Path) -> Path:
        path = folder / META_FILE
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        return path

    @classmethod
    def read(cls, folder: Path) -> BundleMeta:
        data: dict[str, Any] = json.loads((folder / META_FILE).read_text())
        return cls(**data)


class ParityMismatch(ValueError):
    """A scorer does not reproduce the native probabilities saved with its bundle."""


@dataclass(frozen=True)
class RegisteredBundle:
    """A bundle downloaded for one registered model version."""

    name: str
    version: str
    run_id: str
    folder: Path
    meta: BundleMeta
    tags: dict[str, str] = field(default_factory=dict)
    """The registered version's tags, the artifacts' digests among them (`mlops.digests`)."""
    # When the registry created the version (Unix seconds); None when it did not say.
    created_at: float | None = None

    @property
    def onnx_path(self) -> Path:
        return self.folder / ONNX_FILE

    def parity_sample(self) -> tuple[np.ndarray, np.ndarray]:
        """(float32 rows, native probabilities) saved at training time."""
        with np.load(self.folder / PARITY_FILE) as sample:
            return sample["rows"], sample["probabilities"]

    def check_parity(
        self,
        predict_proba: Callable[[np.ndarray], np.ndarray],
        tolerance: float,
        scorer: str = "ONNX",
    ) -> float:
        """The largest gap between `predict_proba` and the native probabilities of the
        parity sample; `ParityMismatch` when it exceeds `tolerance` (or is NaN)."""
        rows, expected = self.parity_sample()
        gap = float(np.max(np.abs(predict_proba(rows) - expected)))
        if not gap <= tolerance:  # written so that NaN fails
            raise ParityMismatch(
                f"{self.name} v{self.version}: {scorer} differs from the native model by "
                f"{gap:.2e} on its parity sample (tolerance {tolerance:.0e})"
            )
        return gap


def write_parity_sample(folder: Path, model: Any, rows: np.ndarray) -> Path:
    """Save up to PARITY_ROWS rows and the native model's positive-class probabilities."""
    sample = np.ascontiguousarray(rows[:PARITY_ROWS], dtype=np.float32)
    path = folder / PARITY_FILE
    np.savez(path, rows=sample, probabilities=model.predict_proba(sample)[:, 1])
    return path


def download_bundle(
    tracking_uri: str,
    name: str,
    dest_root: Path,
    *,
    alias: str | None = None,
    version: str | None = None,
    require_digests: bool = False,
) -> RegisteredBundle:
    """Resolve `name@alias` (or a version number) in the registry and fetch its bundle.

    The ONNX file and the parity sample are checked against the digests registered in the
    version's tags, fetched or cached alike; a version without them passes unless
    `require_digests` (serving off profile 'local').

    Raises `LookupError` when the alias or version does not exist, `DigestMismatch` when a
    file differs from the one registered.
    """
    reader = registry_reader(tracking_uri)
    try:
        if alias is not None:
            model_version = reader.version_by_alias(name, alias)
        elif version is not None:
            model_version = reader.version(name, version)
        else:
            raise ValueError("give an alias or a version")
    except VersionNotFound as error:
        wanted = f"alias '{alias}'" if alias is not None else f"version {version}"
        raise LookupError(f"registered model '{name}' has no {wanted}") from error
    if model_version.run_id is None:
        raise LookupError(f"{name} version {model_version.version} has no source run")
    folder = dest_root / f"{name}-v{model_version.version}"
    if not (folder / META_FILE).exists():
        _fetch(reader, model_version.run_id, folder)
    tags = dict(model_version.tags)
    label = f"{name} v{model_version.version}"
    for file, tag in ((ONNX_FILE, ONNX_DIGEST_TAG), (PARITY_FILE, PARITY_DIGEST_TAG)):
        verify_file(folder / file, tags, tag, model=label, require=require_digests)
    return RegisteredBundle(
        name=name,
        version=str(model_version.version),
        run_id=model_version.run_id,
        folder=folder,
        meta=BundleMeta.read(folder),
        tags=tags,
        created_at=(
            model_version.creation_timestamp / 1000
            if model_version.creation_timestamp is not None
            else None
        ),
    )


def _fetch(reader: RegistryReader, run_id: str, folder: Path) -> None:
    """Download into a scratch folder, then move in with the metadata last.

    The metadata file marks a complete bundle, so a crash mid-download is retried.
    """
    import shutil
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
        fetched = reader.download_artifacts(run_id, BUNDLE_ARTIFACT_PATH, Path(scratch))
        for item in sorted(fetched.iterdir(), key=lambda p: p.name == META_FILE):
            shutil.move(str(item), folder / item.name)


def load_native_model(tracking_uri: str, name: str, version: str) -> Any:
    """The native model registered as `name` version `version`, through the MLflow flavour
    training logged (an `XGBClassifier` or a scikit-learn model). For batch jobs and
    reports: loading it imports the training libraries, which serving never does.

    Raises `LookupError` when the version or its model files cannot be found or loaded.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    # The client, not a models:/ URI: that one reads the process-wide tracking URI.
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        location = client.get_model_version_download_uri(name, version)
    except MlflowException as error:
        raise LookupError(f"registered model '{name}' has no version {version}") from error
    try:
        return mlflow.pyfunc.load_model(location).get_raw_model()
    # Flavours fail in many ways (missing files, a library not installed, skops refusing
    # a type, unpickling errors): each is one model that cannot be loaded.
    except Exception as error:
        raise LookupError(
            f"cannot load the native model of {name} v{version}: {error}".splitlines()[0]
        ) from error
