"""Holds the served model: the registry alias resolved to an ONNX session, swapped atomically.

`refresh` follows the alias: when it points at another version, that version is
downloaded and loaded beside the current one, its ONNX file must reproduce the native
model's probabilities saved with it (the parity sample), and only then does it replace
the current model, in one reference assignment. A version that fails to load or fails
parity never replaces a working one; the failure is kept in `last_error` for readiness.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlops.model_bundle import RegisteredBundle, download_bundle
from mlops.names import CHAMPION
from mlops.onnx_scorer import OnnxScorer
from mlops.settings import Settings
from serving.errors import ModelNotReady


@dataclass(frozen=True)
class LoadedModel:
    """One registered version, loaded: its bundle, the alias it was loaded for, its session."""

    bundle: RegisteredBundle
    alias: str
    scorer: OnnxScorer

    @property
    def threshold(self) -> float:
        return self.bundle.meta.threshold

    @property
    def version(self) -> str:
        return self.bundle.version

    def score(self, row: np.ndarray) -> float:
        """Probability for one float32 row in the model's feature order."""
        return float(self.scorer.predict_proba(row.reshape(1, -1))[0])


class ModelHolder:
    """The current model of one registered name. Readers never see a half-loaded model."""

    def __init__(self, name: str, alias: str = CHAMPION) -> None:
        self.name = name
        self.alias = alias
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None
        # Versions loaded and rejected since start, for metrics.
        self.loads = {"loaded": 0, "rejected": 0}

    @property
    def current(self) -> LoadedModel:
        """The model to answer with now; `ModelNotReady` (503) while none is loaded."""
        model = self._current
        if model is None:
            raise ModelNotReady(
                f"no '{self.alias}' model of '{self.name}' is loaded"
                + (f": {self.last_error}" if self.last_error else "")
            )
        return model

    @property
    def ready(self) -> bool:
        """Whether a model is loaded."""
        return self._current is not None

    def load_from_registry(self, settings: Settings) -> LoadedModel | None:
        """Load the alias's version now, whatever is loaded; keep the old one on failure."""
        return self._load(settings, version=None)

    def refresh(self, settings: Settings) -> bool:
        """Follow the alias: load its version if it changed. True when a new model is in."""
        try:
            # The registry too: the process may have set another globally (set_registry_uri).
            client = MlflowClient(
                tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri
            )
            version = str(client.get_model_version_by_alias(self.name, self.alias).version)
        except MlflowException as error:
            self.last_error = f"cannot resolve {self.name}@{self.alias}: {error.message}"
            return False
        current = self._current
        if current is not None and current.version == version:
            return False
        return self._load(settings, version=version) is not None

    def _load(self, settings: Settings, version: str | None) -> LoadedModel | None:
        with self._lock:
            try:
                bundle = download_bundle(
                    settings.tracking_uri,
                    self.name,
                    settings.models_dir,
                    alias=None if version else self.alias,
                    version=version,
                )
                loaded = LoadedModel(
                    bundle=bundle, alias=self.alias, scorer=OnnxScorer(bundle.onnx_path)
                )
                bundle.check_parity(loaded.scorer.predict_proba, settings.parity_tolerance)
            except (LookupError, OSError, ValueError) as error:
                self.last_error = f"{type(error).__name__}: {error}"
                self.loads["rejected"] += 1
                return None
            self._current = loaded  # one reference assignment: atomic for readers
            self.last_error = None
            self.loads["loaded"] += 1
            return loaded
