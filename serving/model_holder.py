"""Holds the served model: the registry alias resolved to an ONNX session, swapped atomically."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from mlops.model_bundle import RegisteredBundle, download_bundle
from mlops.onnx_scorer import OnnxScorer
from mlops.settings import Settings
from serving.errors import ModelNotReady

CHAMPION = "champion"


@dataclass(frozen=True)
class LoadedModel:
    bundle: RegisteredBundle
    alias: str
    scorer: OnnxScorer

    @property
    def threshold(self) -> float:
        return self.bundle.meta.threshold

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

    @property
    def current(self) -> LoadedModel:
        model = self._current
        if model is None:
            raise ModelNotReady(
                f"no '{self.alias}' model of '{self.name}' is loaded"
                + (f": {self.last_error}" if self.last_error else "")
            )
        return model

    @property
    def ready(self) -> bool:
        return self._current is not None

    def load_from_registry(self, settings: Settings) -> LoadedModel | None:
        """Fetch and load the alias's version; keep the old model if that fails."""
        with self._lock:
            try:
                bundle = download_bundle(
                    settings.tracking_uri, self.name, settings.models_dir, alias=self.alias
                )
                loaded = LoadedModel(
                    bundle=bundle, alias=self.alias, scorer=OnnxScorer(bundle.onnx_path)
                )
            except (LookupError, OSError, ValueError) as error:
                self.last_error = str(error)
                return None
            self._current = loaded  # one reference assignment: atomic for readers
            self.last_error = None
            return loaded
