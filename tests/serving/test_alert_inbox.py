"""`POST /alerts`: Alertmanager's notifications, logged, kept for `GET /alerts`, counted."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlops.settings import Settings
from serving.alert_inbox import MAX_ALERT_NAMES
from serving.app import create_app


def _notification(name: str, status: str = "firing", **labels: str) -> dict[str, Any]:
    """A notification as Alertmanager 0.25's webhook sends it (unread fields included)."""
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "receiver": "api-log",
        "status": status,
        "groupLabels": {"alertname": name},
        "commonLabels": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": name, "severity": "warning", **labels},
                "annotations": {"summary": f"{labels.get('model', 'x')}: drifted"},
                "startsAt": "2026-12-07T15:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": "abc",
            }
        ],
    }


def test_an_alert_is_logged_kept_and_counted(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    client = TestClient(create_app(settings))  # no lifespan: the inbox needs no model
    with caplog.at_level(logging.INFO, logger="serving.alerts"):
        first = client.post("/alerts", json=_notification("ModelDataDrift", model="fraud"))
        second = client.post(
            "/alerts", json=_notification("ModelDataDrift", "resolved", model="fraud")
        )
    assert first.status_code == second.status_code == 200
    assert first.json() == {"received": 1}
    lines = [r.getMessage() for r in caplog.records if r.name == "serving.alerts"]
    assert lines[0].startswith("alert firing ModelDataDrift {'model': 'fraud', 'severity'")
    assert lines[0].endswith("fraud: drifted")
    assert [r.levelname for r in caplog.records if r.name == "serving.alerts"] == [
        "WARNING",
        "INFO",
    ]
    recent = client.get("/alerts").json()["alerts"]
    assert [(a["status"], a["labels"]["alertname"]) for a in recent] == [
        ("resolved", "ModelDataDrift"),
        ("firing", "ModelDataDrift"),
    ]
    metrics = client.get("/metrics").text
    assert 'mlops_alerts_received_total{alertname="ModelDataDrift",status="firing"} 1.0' in metrics
    # Every error type is exported from the start, at 0 (what the alert rules read).
    assert 'mlops_http_errors_total{error="overloaded"} 0.0' in metrics


def test_a_body_that_is_no_notification_is_a_422(settings: Settings) -> None:
    client = TestClient(create_app(settings))
    answer = client.post("/alerts", json={"alerts": [{"status": "exploded"}]})
    assert answer.status_code == 422
    assert client.get("/alerts").json() == {"alerts": []}


def test_made_up_alert_names_cannot_grow_the_metrics(settings: Settings) -> None:
    client = TestClient(create_app(settings))
    for i in range(MAX_ALERT_NAMES + 5):
        assert client.post("/alerts", json=_notification(f"Made{i}")).status_code == 200
    assert client.post("/alerts", json=_notification("no spaces {allowed}")).status_code == 200
    metrics = client.get("/metrics").text
    names = {
        line.split('alertname="')[1].split('"')[0]
        for line in metrics.splitlines()
        if line.startswith("mlops_alerts_received_total{")
    }
    assert len(names) == MAX_ALERT_NAMES + 1 and "other" in names
