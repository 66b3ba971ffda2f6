"""The monitoring flow's records on disk: every decision it logged, and where its last check ended.

- **Decision log** (`MLOPS_HOME/monitoring/decisions/<model>.jsonl`): one JSON line per
  decision, with its evidence, appended by the monitoring flow; the walkthrough pages plot
  drift over time from it (`reports.evidence.drift_points`).
- **Check cursor** (`MLOPS_HOME/monitoring/state/<model>.json`): the end of the window the
  last check read, so the next one starts there. It moves only when a check ran.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitoring.check_results import json_ready

if TYPE_CHECKING:
    from mlops.settings import Settings


def decisions_path(settings: Settings, model_name: str) -> Path:
    """The decision log of `model_name`."""
    return settings.monitoring_dir / "decisions" / f"{model_name}.jsonl"


def append_decision(settings: Settings, model_name: str, entry: dict[str, Any]) -> Path:
    """Add one decision (a JSON object; NaN written as null) to the model's log."""
    path = decisions_path(settings, model_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(json_ready(entry), sort_keys=True, default=str) + "\n")
    return path


def read_decisions(settings: Settings, model_name: str) -> list[dict[str, Any]]:
    """Every decision logged for the model, oldest first (none before the first check)."""
    path = decisions_path(settings, model_name)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def cursor_path(settings: Settings, model_name: str) -> Path:
    """The check cursor of `model_name`."""
    return settings.monitoring_dir / "state" / f"{model_name}.json"


def checked_until(settings: Settings, model_name: str) -> datetime | None:
    """Where the model's last check ended, or None before its first."""
    path = cursor_path(settings, model_name)
    if not path.exists():
        return None
    return datetime.fromisoformat(json.loads(path.read_text())["checked_until"])


def move_cursor(settings: Settings, model_name: str, until: datetime) -> None:
    """Record that the model's predictions up to `until` have been checked."""
    path = cursor_path(settings, model_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"checked_until": until.isoformat()}))
