"""The stages of a batch scoring run and the wall-clock seconds each one took."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

# In the order a run goes through them; a run's summary reports each, in this order.
STAGES = ("model_load", "load_validate", "features", "score", "write")


class StageClock:
    """Adds up the wall-clock seconds spent in each stage (`seconds`, keyed by `STAGES`)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Count the time spent inside the `with` block to `stage`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - started
