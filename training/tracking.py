"""MLflow plumbing: experiments under MLOPS_HOME, and the lineage every run records."""

from __future__ import annotations

import platform
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from mlops.settings import Settings

TRACKED_PACKAGES = (
    "mlops-platform",
    "scikit-learn",
    "xgboost-cpu",
    "onnxruntime",
    "skl2onnx",
    "onnxmltools",
    "feast",
    "mlflow",
    "prefect",
    "evidently",
    "numpy",
    "pandas",
)


def use_experiment(settings: Settings, name: str) -> str:
    """Point MLflow at the settings' tracking URI and make `name` the active experiment.

    With a local database the artifacts go under MLOPS_HOME; a tracking server
    decides its own artifact location.
    """
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        local = settings.tracking_uri.startswith("sqlite:")
        location = f"{settings.artifact_root}/{name}" if local else None
        experiment_id = mlflow.create_experiment(name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return str(experiment_id)


@contextmanager
def pipeline_run(
    settings: Settings,
    experiment: str,
    *,
    lineage: Mapping[str, Any],
    feature_service: str,
    features: Sequence[str],
    data: pd.DataFrame,
    params: Mapping[str, Any],
) -> Iterator[mlflow.ActiveRun]:
    """The parent MLflow run of a pipeline, with the lineage every run records.

    `lineage` holds the pipeline run id, the source and the row counts; `data` is the
    training frame whose fingerprint is logged; `params` adds the case study's own.
    """
    from training.datasets import data_fingerprint

    use_experiment(settings, experiment)
    with mlflow.start_run(run_name=f"{experiment}-pipeline-{lineage['pipeline_run']}") as run:
        mlflow.set_tags({"pipeline_run": lineage["pipeline_run"], "code_version": code_version()})
        mlflow.log_params(
            {
                "source": str(lineage["source"])[:500],
                "rows_in": lineage["rows_in"],
                "rows_quarantined": lineage["rows_quarantined"],
                "feature_service": feature_service,
                "n_features": len(features),
                "data_fingerprint": data_fingerprint(data),
                **params,
            }
        )
        mlflow.log_dict(environment(), "environment.json")
        mlflow.log_dict({"features": list(features)}, "feature_service.json")
        yield run


def code_version() -> str:
    """The git commit of the working tree (with '-dirty' if modified), else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"mlops-platform=={package_version('mlops-platform')}"
    return f"{sha}-dirty" if dirty else sha


def environment() -> dict[str, str]:
    """Interpreter, platform and the versions of the packages that shape a model."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        **{name: package_version(name) for name in TRACKED_PACKAGES},
    }


def package_version(package: str) -> str:
    """The installed version of `package`, or "not installed"."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
