"""Online feature reads for serving: one Feast read per entity, as a float32 row."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from feast import FeatureService, FeatureStore

from serving.errors import FeatureStoreUnavailable, UnknownEntity


class OnlineFeatures:
    """Reads a feature service's values for one entity from the Feast online store."""

    def __init__(self, store: FeatureStore, feature_service: str, entity_key: str) -> None:
        self._store = store
        self._service_name = feature_service
        self._service: FeatureService | None = None
        self.entity_key = entity_key

    def _feature_service(self) -> FeatureService:
        if self._service is None:
            self._service = self._store.get_feature_service(self._service_name)
        return self._service

    def row(self, entity_id: str, feature_names: Sequence[str]) -> np.ndarray:
        """The entity's features in `feature_names` order; 404 if the store has none."""
        try:
            values = self._store.get_online_features(
                features=self._feature_service(), entity_rows=[{self.entity_key: entity_id}]
            ).to_dict()
        except Exception as error:  # any store failure is a dependency failure, not a 500
            raise FeatureStoreUnavailable(
                f"online feature store did not answer: {type(error).__name__}"
            ) from error
        missing = [name for name in feature_names if name not in values]
        if missing:
            raise FeatureStoreUnavailable(
                f"feature service '{self._service_name}' lacks {missing[:5]}"
            )
        row = [values[name][0] for name in feature_names]
        if all(value is None for value in row):
            raise UnknownEntity(f"no features for {self.entity_key} '{entity_id}'")
        if any(value is None for value in row):
            raise FeatureStoreUnavailable(f"incomplete features for '{entity_id}'")
        return np.asarray(row, dtype=np.float32)

    def rows(
        self, entity_ids: Sequence[str], feature_names: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Many entities in one read: a float32 matrix in `feature_names` order, and a mask
        of the entities the store knows (their rows are valid; the others are NaN)."""
        try:
            values = self._store.get_online_features(
                features=self._feature_service(),
                entity_rows=[{self.entity_key: entity_id} for entity_id in entity_ids],
            ).to_dict()
        except Exception as error:  # any store failure is a dependency failure, not a 500
            raise FeatureStoreUnavailable(
                f"online feature store did not answer: {type(error).__name__}"
            ) from error
        missing = [name for name in feature_names if name not in values]
        if missing:
            raise FeatureStoreUnavailable(
                f"feature service '{self._service_name}' lacks {missing[:5]}"
            )
        absent = np.array([[v is None for v in values[name]] for name in feature_names]).T
        known = np.logical_not(absent.all(axis=1))
        if absent[known].any():
            raise FeatureStoreUnavailable("incomplete features for some entities")
        matrix = np.array(
            [[np.nan if v is None else v for v in values[name]] for name in feature_names],
            dtype=np.float32,
        ).T
        return np.ascontiguousarray(matrix), known

    def ping(self) -> bool:
        """True when the online store answers a read (for readiness)."""
        try:
            self._store.get_online_features(
                features=self._feature_service(), entity_rows=[{self.entity_key: "__ping__"}]
            )
        except Exception:
            return False
        return True
