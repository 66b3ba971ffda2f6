"""MLflow plumbing: experiments under MLOPS_HOME, and the lineage every run records."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import mlflow

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
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
