"""Online experiments in serving: a challenger in shadow or as a canary beside the champion.

- **shadow**: the challenger scores the same feature row as the champion; its prediction
  is logged under its own version with `shadow: true` in the entity, and the answer is
  the champion's. A paired comparison on the same requests follows once labels arrive
  (`monitoring.experiment_stats`).
- **canary**: a deterministic share of entities is answered by the challenger, logged
  under its version. The split hashes the entity id (crc32, the same in every process and
  on every restart), so a customer sticks to one model; a request without an entity id
  (churn raw fields) is split by its request id.

`ChallengerArm` is built only when `MLOPS_CHALLENGER_MODE` is not `off`: predictors hold
None otherwise, and the hot path pays one `is None` test.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

from serving.model_holder import LoadedModel, ModelHolder


def in_canary(entity_id: str, share: float) -> bool:
    """Whether `entity_id` falls in the canary's share (stable across processes)."""
    return zlib.crc32(entity_id.encode("utf-8")) / 2**32 < share


@dataclass(frozen=True)
class ChallengerArm:
    """The challenger's holder and how it takes part in traffic."""

    holder: ModelHolder
    mode: Literal["shadow", "canary"]
    canary_share: float

    def model_beside(self, champion: LoadedModel) -> LoadedModel | None:
        """The challenger, if one is loaded, is not the champion, and reads the same row."""
        if not self.holder.ready:
            return None
        challenger = self.holder.current
        if challenger.version == champion.version:
            return None
        if challenger.bundle.meta.feature_names != champion.bundle.meta.feature_names:
            return None  # another feature row: not comparable on the same read
        return challenger
