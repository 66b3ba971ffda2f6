"""The training reference of a model version: what monitoring compares served traffic with.

When a version is registered (`training.registration.register_winner`), a seeded sample of its
held-out test rows is saved as a parquet artifact of the version's run, under
`monitoring/reference.parquet`: one column per feature in the model's order, the exported
model's `score` on the row (onnxruntime, as serving computes it) and the row's `label`.
The test rows, not the training rows: a model's scores on the rows it was fitted on are
more confident than on anything it will serve, so the score column would drift from day
one; and the bundle's `test_metrics`, which quality checks compare with, come from these
same rows.

`load_reference` fetches it back for a registered version, cached under
`MLOPS_HOME/monitoring/references/`, once its SHA-256 matches the digest registered in the
version's tags (`mlops.digests`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

from mlops.digests import REFERENCE_DIGEST_TAG, file_sha256, verify_file

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops.settings import Settings

__all__ = [
    "LABEL_COLUMN",
    "REFERENCE_ARTIFACT_PATH",
    "REFERENCE_FILE",
    "REFERENCE_ROWS",
    "SCORE_COLUMN",
    "load_reference",
    "reference_sample",
    "save_reference",
]

REFERENCE_ARTIFACT_PATH: Final = "monitoring"
REFERENCE_FILE: Final = "reference.parquet"
REFERENCE_ROWS: Final = 5000
"""Rows kept at most: plenty for per-feature distributions, a few hundred KB of parquet."""
SCORE_COLUMN: Final = "score"
LABEL_COLUMN: Final = "label"

# Float32 rows in the model's feature order -> positive-class probabilities.
ScoreFunction = Callable[[np.ndarray], np.ndarray]


def reference_sample(
    feature_names: Sequence[str],
    rows: np.ndarray,
    labels: np.ndarray,
    score: ScoreFunction,
    *,
    max_rows: int = REFERENCE_ROWS,
    seed: int = 0,
) -> pd.DataFrame:
    """A seeded sample of at most `max_rows` rows: features, the model's score, the label.

    `score` maps float32 rows in the model's feature order to positive-class probabilities;
    only the sampled rows are scored. Rows keep their original order.
    """
    if rows.ndim != 2 or rows.shape[1] != len(feature_names):
        raise ValueError(f"rows must be 2-D with {len(feature_names)} columns, got {rows.shape}")
    if len(labels) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(labels)} labels")
    if len(rows) == 0:
        raise ValueError("no rows to sample a reference from")
    if len(rows) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), max_rows, replace=False))
        rows, labels = rows[keep], labels[keep]
    sample = np.ascontiguousarray(rows, dtype=np.float32)
    frame = pd.DataFrame(sample, columns=list(feature_names))
    frame[SCORE_COLUMN] = np.asarray(score(sample), dtype=np.float64)
    frame[LABEL_COLUMN] = np.asarray(labels, dtype=np.int64)
    return frame


def save_reference(client: MlflowClient, run_id: str, reference: pd.DataFrame) -> str:
    """Log `reference` as `monitoring/reference.parquet` of run `run_id`; return the
    file's SHA-256, for registration to pin in the version's tags."""
    for column in (SCORE_COLUMN, LABEL_COLUMN):
        if column not in reference.columns:
            raise ValueError(f"a reference needs a {column!r} column")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / REFERENCE_FILE
        reference.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), artifact_path=REFERENCE_ARTIFACT_PATH)
        return file_sha256(path)


def load_reference(settings: Settings, model_name: str, version: str) -> pd.DataFrame:
    """The reference saved with `model_name` version `version`.

    Raises:
        LookupError: the version does not exist, or was registered without a reference.
        DigestMismatch: the fetched file is not the one registered (or, off profile
            'local', no digest was registered).
    """
    cached = settings.monitoring_dir / "references" / f"{model_name}-v{version}" / REFERENCE_FILE
    if not cached.exists():
        _fetch(settings.tracking_uri, model_name, version, cached, settings.profile != "local")
    return pd.read_parquet(cached)


def _fetch(
    tracking_uri: str, model_name: str, version: str, dest: Path, require_digest: bool
) -> None:
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        model_version = client.get_model_version(model_name, version)
    except MlflowException as error:
        raise LookupError(f"registered model '{model_name}' has no version {version}") from error
    run_id = model_version.run_id
    if run_id is None:
        raise LookupError(f"{model_name} version {version} has no source run")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Download beside the cache, then move in: a half-written file is never taken as cached.
    with tempfile.TemporaryDirectory(dir=dest.parent) as scratch:
        try:
            fetched = download_artifacts(
                run_id=run_id,
                artifact_path=f"{REFERENCE_ARTIFACT_PATH}/{REFERENCE_FILE}",
                dst_path=scratch,
                tracking_uri=tracking_uri,
            )
        except (MlflowException, OSError) as error:
            raise LookupError(
                f"{model_name} version {version} has no monitoring reference "
                f"(run {run_id}: {error})"
            ) from error
        verify_file(
            Path(fetched),
            dict(model_version.tags or {}),
            REFERENCE_DIGEST_TAG,
            model=f"{model_name} v{version}",
            require=require_digest,
        )
        shutil.move(fetched, dest)
