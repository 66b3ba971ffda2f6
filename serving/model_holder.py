"""Holds the served model: the registry alias resolved to an ONNX session, swapped atomically.

`refresh` follows the alias: when it points at another version, that version is
downloaded and loaded beside the current one; its files must be the ones registered
(their SHA-256 digests in the version's tags, `mlops.digests`), its ONNX file must
reproduce the native model's probabilities saved with it (the parity sample), and only
then does it replace the current model, in one reference assignment.

A version that fails to load, in any way (a file changed after registration, a truncated
ONNX file, missing artifacts, a corrupt parity sample, parity itself), never replaces a
working one and never escapes the holder: the failure is logged once as a warning,
counted (`loads`, `failures`), and kept as `last_failure` for readiness and the
model-info route. The alias's version is remembered too, so a holder can say that it
serves another one (`matches_alias`). A version that failed is tried again only when
asked (`refresh(retry=True)`, the admin reload) or after `RETRY_FAILED_AFTER_S`: one
broken promotion is one warning, not one per poll, and a failure that was transient
(the registry restarting) still heals.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from mlops.model_bundle import RegisteredBundle, download_bundle
from mlops.names import CHAMPION
from mlops.onnx_scorer import OnnxScorer
from mlops.registry_reader import registry_reader
from mlops.settings import Settings
from serving.errors import ModelNotReady

logger = logging.getLogger("serving")

# A version that failed to load is tried again by the alias poll after this long.
RETRY_FAILED_AFTER_S = 300.0
# A reason is one line of at most this many characters: exceptions of the registry and of
# onnxruntime can carry whole files, paths or protobuf dumps.
MAX_REASON_CHARS = 300


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


@dataclass(frozen=True)
class LoadFailure:
    """Why a version could not be served: `version` None when the alias did not resolve."""

    version: str | None
    error_type: str
    reason: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    monotonic: float = field(default_factory=time.monotonic, compare=False, repr=False)

    @classmethod
    def of(cls, version: str | None, error: Exception) -> LoadFailure:
        text = str(error).strip()
        message = text.splitlines()[0] if text else ""
        reason = f"{type(error).__name__}: {message}" if message else type(error).__name__
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 3] + "..."
        return cls(version=version, error_type=type(error).__name__, reason=reason)

    def describe(self, name: str, alias: str) -> str:
        """One line for a person: which version of which model failed, and why."""
        if self.version is None:
            return f"cannot resolve {name}@{alias}: {self.reason}"
        return f"{name} v{self.version} failed to load: {self.reason}"


class ModelHolder:
    """The current model of one registered name. Readers never see a half-loaded model."""

    def __init__(self, name: str, alias: str = CHAMPION) -> None:
        self.name = name
        self.alias = alias
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()
        self.last_failure: LoadFailure | None = None
        # The last version that failed to load, kept through failures to read the alias.
        self._rejected: LoadFailure | None = None
        self.alias_version: str | None = None
        """The version the alias pointed at when last resolved; None before that."""
        # Versions loaded, and failures to load one or to read the alias, since start.
        self.loads = {"loaded": 0, "rejected": 0}
        # Failed loads by the exception's type name, for metrics: a bounded set of labels.
        self.failures: Counter[str] = Counter()

    @property
    def last_error(self) -> str | None:
        """The last failure in one line (which version, why); None once a load succeeds."""
        failure = self.last_failure
        return failure.describe(self.name, self.alias) if failure else None

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

    @property
    def loaded_version(self) -> str | None:
        model = self._current
        return model.version if model is not None else None

    @property
    def served_bundle(self) -> RegisteredBundle | None:
        """The registered bundle of the model served; None while none is loaded."""
        model = self._current
        return model.bundle if model is not None else None

    @property
    def matches_alias(self) -> bool:
        """A model is loaded and it is the version the alias pointed at when last resolved."""
        loaded = self.loaded_version
        return loaded is not None and self.alias_version in (None, loaded)

    def load_from_registry(self, settings: Settings) -> LoadedModel | None:
        """Load the alias's version now, whatever is loaded; keep the old one on failure."""
        version = self._resolve(settings)
        return None if version is None else self._load(settings, version)

    def refresh(self, settings: Settings, *, retry: bool = False) -> bool:
        """Follow the alias: load its version if it changed. True when a new model is in.

        A version that already failed is not tried again before `RETRY_FAILED_AFTER_S`,
        unless `retry`. Never raises: a failure is kept in `last_failure`.
        """
        version = self._resolve(settings)
        if version is None or self.loaded_version == version:
            return False
        failed = self._rejected
        if (
            not retry
            and failed is not None
            and failed.version == version
            and time.monotonic() - failed.monotonic < RETRY_FAILED_AFTER_S
        ):
            return False
        return self._load(settings, version) is not None

    def _resolve(self, settings: Settings) -> str | None:
        """The alias's version now, remembered in `alias_version`; None if it cannot be read."""
        try:
            # MLflow's REST API or its SQLite store, not its client: that one imports most
            # of MLflow (see `mlops.registry_reader`).
            reader = registry_reader(settings.tracking_uri)
            version = reader.version_by_alias(self.name, self.alias).version
        except Exception as error:  # no such alias yet, the registry down, ...
            failure = LoadFailure.of(None, error)
            previous = self.last_failure
            # Polled every few seconds: the same failure again is neither logged nor counted.
            if previous is None or (previous.version, previous.reason) != (None, failure.reason):
                self._count_and_log(failure)
            self.last_failure = failure
            return None
        self.alias_version = version
        last = self.last_failure
        # A failure to read the alias is over once it reads; a version that failed no
        # longer matters once the alias is back on the one served (the log and the
        # metrics keep both).
        if last is not None and (last.version is None or version == self.loaded_version):
            self.last_failure = None
        return version

    def _load(self, settings: Settings, version: str) -> LoadedModel | None:
        with self._lock:
            try:
                # Off 'local', only a version whose digests were registered is served.
                bundle = download_bundle(
                    settings.tracking_uri,
                    self.name,
                    settings.models_dir,
                    version=version,
                    require_digests=settings.profile != "local",
                )
                loaded = LoadedModel(
                    bundle=bundle, alias=self.alias, scorer=OnnxScorer(bundle.onnx_path)
                )
                bundle.check_parity(loaded.scorer.predict_proba, settings.parity_tolerance)
            # Any failure of one version (onnxruntime's InvalidProtobuf, MLflow's
            # exceptions, BadZipFile, parity, ...) is that version's problem: the holder
            # keeps what it serves and says why. KeyboardInterrupt and the like pass.
            except Exception as error:
                self._failed(version, error)
                return None
            self._current = loaded  # one reference assignment: atomic for readers
            self.last_failure = self._rejected = None
            self.loads["loaded"] += 1
            return loaded

    def _failed(self, version: str, error: Exception) -> None:
        failure = LoadFailure.of(version, error)
        self.last_failure = self._rejected = failure
        self._count_and_log(failure)

    def _count_and_log(self, failure: LoadFailure) -> None:
        self.loads["rejected"] += 1
        self.failures[failure.error_type] += 1
        serving = f"keeps serving v{self.loaded_version}" if self.ready else "serves no model"
        logger.warning("%s; %s %s", failure.describe(self.name, self.alias), self.name, serving)
