"""Seldon MLServer as a peer of the serving benchmark: its environment, its model folder.

MLServer 1.7 runs in a virtual environment of its own, so that its pins never meet our
uv.lock: made once with uv (or the standard library's venv and pip when uv is not
found) under the cache folder, reused by every later run. Its scikit-learn and xgboost
are pinned to the versions of ours, so that it loads the very model files we write and
computes the same probabilities.

The model folder holds the registered version's native model as MLServer's runtimes
expect it: a joblib file for scikit-learn (runtime `mlserver_sklearn.SKLearnModel`,
told to answer `predict_proba` by the `predict_fn` of its model settings), an xgboost
JSON file for an `XGBClassifier` (`mlserver_xgboost.XGBoostModel`, which reads no such
setting: the request names the `predict_proba` output instead).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MLSERVER_VERSION = "1.7.1"
# Its interpreter: the one MLServer 1.7 supports and ours runs on.
MLSERVER_PYTHON = "3.11"
INSTALL_TIMEOUT_S = 900
# Written last: a folder without it is a build that did not finish, and is rebuilt.
COMPLETE_MARKER = ".mlops-complete.json"
# The input tensor's name in MLServer's model settings; the benchmark reads it back from
# the metadata, as it does ours.
INPUT_NAME = "features"

SKLEARN_RUNTIME = "mlserver_sklearn.SKLearnModel"
XGBOOST_RUNTIME = "mlserver_xgboost.XGBoostModel"


class MLServerUnavailable(RuntimeError):
    """MLServer's environment cannot be made (no network, no installer); the message says why."""


def requirements() -> list[str]:
    """What MLServer's environment holds: MLServer, both runtimes, our native libraries.

    By the modules' versions: ours is the `xgboost-cpu` distribution, while
    mlserver-xgboost requires the one named `xgboost` (same library, same version)."""
    import sklearn
    import xgboost

    return [
        f"mlserver=={MLSERVER_VERSION}",
        f"mlserver-sklearn=={MLSERVER_VERSION}",
        f"mlserver-xgboost=={MLSERVER_VERSION}",
        f"scikit-learn=={sklearn.__version__}",
        f"xgboost=={xgboost.__version__}",
        # uvloop 0.22 raises in `asyncio.get_event_loop()` without a running loop, which
        # MLServer 1.7.1's inference workers call at start: they die, and the server stops.
        "uvloop<0.22",
    ]


def cache_root() -> Path:
    """Where benchmark environments are kept across runs and homes:
    $XDG_CACHE_HOME/mlops/bench, else ~/.cache/mlops/bench. Not an MLOPS_ variable: the
    settings refuse names they do not declare, and this is no setting of the platform."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mlops" / "bench"


@dataclass(frozen=True)
class MLServerEnv:
    """A finished MLServer environment: its folder, and how it came to be."""

    folder: Path
    built_s: float
    cached: bool

    @property
    def executable(self) -> Path:
        return self.folder / "bin" / "mlserver"

    @property
    def python(self) -> Path:
        return self.folder / "bin" / "python"

    def describe(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "cached": self.cached,
            "built_s": round(self.built_s, 1),
            "size_mb": folder_size_mb(self.folder),
            "requirements": json.loads((self.folder / COMPLETE_MARKER).read_text())["requirements"],
        }


def ensure_env(root: Path | None = None) -> MLServerEnv:
    """MLServer's environment under `root` (default `cache_root()`), made when missing.

    The folder is named by MLServer's version and a digest of the requirements, so a new
    scikit-learn or xgboost of ours gets an environment of its own. Raises
    `MLServerUnavailable` when the installation fails.
    """
    wanted = requirements()
    digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:10]
    folder = (root or cache_root()) / f"mlserver-{MLSERVER_VERSION}-py{MLSERVER_PYTHON}-{digest}"
    marker = folder / COMPLETE_MARKER
    if marker.exists():
        return MLServerEnv(folder, json.loads(marker.read_text())["built_s"], cached=True)
    if folder.exists():
        shutil.rmtree(folder)  # an interrupted build
    folder.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # In place, not built aside and renamed: a venv's scripts name its absolute path.
    for command in _install_commands(folder, wanted):
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise MLServerUnavailable(
                f"cannot make MLServer's environment ({' '.join(command[:3])} ...): "
                f"{(result.stderr or result.stdout)[-1500:]}"
            )
    built_s = time.monotonic() - started
    marker.write_text(json.dumps({"requirements": wanted, "built_s": built_s}))
    return MLServerEnv(folder, built_s, cached=False)


def find_uv() -> str | None:
    """uv from PATH, else the one `make install` puts in the checkout's .tools/."""
    found = shutil.which("uv")
    if found:
        return found
    beside = Path(__file__).resolve().parents[1] / ".tools" / "bin" / "uv"
    return str(beside) if beside.exists() else None


def _install_commands(folder: Path, wanted: list[str]) -> list[list[str]]:
    uv = find_uv()
    python = str(folder / "bin" / "python")
    if uv is not None:
        return [
            [uv, "venv", "--quiet", "--python", MLSERVER_PYTHON, str(folder)],
            [uv, "pip", "install", "--quiet", "--python", python, *wanted],
        ]
    return [
        [sys.executable, "-m", "venv", str(folder)],
        [python, "-m", "pip", "install", "--quiet", *wanted],
    ]


def folder_size_mb(folder: Path) -> float:
    """Bytes of the regular files under `folder`, in MiB (what the cache costs on disk)."""
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    return round(total / 2**20, 1)


def foreign_class(model: Any) -> str | None:
    """The first class in `model` (a pipeline's steps included) that is neither
    scikit-learn's nor xgboost's: MLServer's environment could not unpickle it."""
    parts = [model, *(step for _, step in getattr(model, "steps", []))]
    for part in parts:
        kind = type(part)
        if kind.__module__.split(".")[0] not in ("sklearn", "xgboost"):
            return f"{kind.__module__}.{kind.__qualname__}"
    return None


@dataclass(frozen=True)
class ModelRepository:
    """A folder MLServer can start from, and what its requests must say."""

    folder: Path
    runtime: str
    # Extra fields of each infer request: the xgboost runtime is told the output here.
    request_extra: dict[str, Any]


def write_model_repository(
    folder: Path,
    model: Any,
    model_name: str,
    model_version: str,
    n_features: int,
    ports: dict[str, int],
) -> ModelRepository:
    """Write `model` and MLServer's settings.json and model-settings.json into `folder`.

    `ports` gives MLServer's `http`, `grpc` and `metrics` ports: its defaults (8080-8082)
    may be taken on a shared machine.
    """
    from xgboost import XGBClassifier

    model_folder = folder / model_name
    model_folder.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {}
    request_extra: dict[str, Any] = {}
    if isinstance(model, XGBClassifier):
        runtime, model_file = XGBOOST_RUNTIME, "model.json"
        model.save_model(model_folder / model_file)
        request_extra = {"outputs": [{"name": "predict_proba"}]}
    else:
        import joblib

        runtime, model_file = SKLEARN_RUNTIME, "model.joblib"
        joblib.dump(model, model_folder / model_file)
        extra = {"predict_fn": "predict_proba"}
    model_settings = {
        "name": model_name,
        "implementation": runtime,
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, n_features]}],
        "parameters": {"uri": f"./{model_file}", "version": model_version, "extra": extra},
    }
    (model_folder / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    server_settings = {
        "http_port": ports["http"],
        "grpc_port": ports["grpc"],
        "metrics_port": ports["metrics"],
        # Its default is true: debug logging, as a deployment would not run.
        "debug": False,
    }
    (folder / "settings.json").write_text(json.dumps(server_settings, indent=2))
    return ModelRepository(folder, runtime, request_extra)


def positive_probabilities(response: dict[str, Any]) -> list[float]:
    """The positive class's probability of each row of an MLServer `predict_proba` answer."""
    output = response["outputs"][0]
    rows, columns = output["shape"]
    data = output["data"]
    return [float(data[r * columns + columns - 1]) for r in range(rows)]
