"""The stack's alert receiver: Alertmanager's webhook notifications, logged and kept to read.

Alertmanager (infra/alertmanager/alertmanager.yml) posts each notification to the API's
`POST /alerts`; each alert in it becomes one log line of the API (`serving.alerts`, a
warning while firing) and one entry of a short in-memory list that `GET /alerts` shows,
newest first, so a user sees what fired without an account anywhere. Each is counted in
`mlops_alerts_received_total{alertname, status}`; alert names a notification makes up are
bounded (a pattern and a number of distinct names), so a stranger cannot grow the metrics.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger("serving.alerts")

KEPT_ALERTS = 100
MAX_ALERT_NAMES = 50
_ALERT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class Alert(BaseModel):
    """One alert of a notification, as Alertmanager's webhook sends it (fields we read)."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict, max_length=30)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=30)
    startsAt: str | None = Field(default=None, max_length=64)  # Alertmanager's names
    endsAt: str | None = Field(default=None, max_length=64)


class Notification(BaseModel):
    """Alertmanager's webhook body (version 4)."""

    model_config = ConfigDict(extra="ignore")

    receiver: str = Field(max_length=200)
    status: Literal["firing", "resolved"]
    alerts: list[Alert] = Field(max_length=200)


class AlertInbox:
    """The last `KEPT_ALERTS` alerts received, newest first, and the counter of all."""

    def __init__(self, counter: Any) -> None:
        self._counter = counter  # mlops_alerts_received, labelled alertname and status
        self._kept: deque[dict[str, Any]] = deque(maxlen=KEPT_ALERTS)
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def receive(self, notification: Notification) -> int:
        """Log, keep and count each alert of the notification; gives how many."""
        received_at = datetime.now(UTC).isoformat(timespec="seconds")
        for alert in notification.alerts:
            name = alert.labels.get("alertname", "")
            summary = alert.annotations.get("summary", "")
            level = logging.WARNING if alert.status == "firing" else logging.INFO
            others = {k: v for k, v in sorted(alert.labels.items()) if k != "alertname"}
            logger.log(level, "alert %s %s %s: %s", alert.status, name, others, summary)
            with self._lock:
                self._kept.appendleft(
                    {"received_at": received_at, **alert.model_dump(exclude_none=True)}
                )
                self._counter.labels(self._bounded(name), alert.status).inc()
        return len(notification.alerts)

    def recent(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._kept)

    def _bounded(self, name: str) -> str:
        if not _ALERT_NAME.fullmatch(name):
            return "other"
        if name not in self._names and len(self._names) >= MAX_ALERT_NAMES:
            return "other"
        self._names.add(name)
        return name
