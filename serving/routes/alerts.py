"""`POST /alerts` (Alertmanager's webhook) and `GET /alerts`: the alerts the stack raised.

Outside the OpenAPI document, like `/metrics`: they are the stack's plumbing, not the
prediction API (see `serving.alert_inbox`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from serving.alert_inbox import Notification
from serving.deps import MetricsDep


def receive_alerts(notification: Notification, metrics: MetricsDep) -> dict[str, int]:
    """Log and keep each alert of an Alertmanager notification."""
    return {"received": metrics.alerts.receive(notification)}


def recent_alerts(metrics: MetricsDep) -> dict[str, Any]:
    """The alerts received last, newest first (the API keeps the last 100)."""
    return {"alerts": metrics.alerts.recent()}


def add_alert_routes(app: FastAPI) -> None:
    app.add_api_route("/alerts", receive_alerts, methods=["POST"], include_in_schema=False)
    app.add_api_route("/alerts", recent_alerts, methods=["GET"], include_in_schema=False)
