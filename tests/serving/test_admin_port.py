"""MLOPS_ADMIN_PORT: the admin routes (/admin/*, /metrics, /alerts) on a port of their own,
served by the same process, over real HTTP as `mlops serve` binds the two ports."""

from __future__ import annotations

import re

import httpx
import pytest
from pydantic import ValidationError

from benchmarks.serving import free_port
from mlops.settings import Settings
from tests.helpers.live_api import live_api


def _not_found(response: httpx.Response) -> bool:
    return response.status_code == 404 and response.json()["error"] == "not_found"


def test_admin_routes_answer_on_the_admin_port_only(settings: Settings) -> None:
    api_port, admin_port = free_port(), free_port()
    assert api_port != admin_port
    split = settings.model_copy(
        update={"api_port": api_port, "admin_port": admin_port, "model_refresh_s": 0}
    )
    token = {"Authorization": f"Bearer {split.admin_token.get_secret_value()}"}
    with live_api(split) as public, httpx.Client(timeout=30) as client:
        admin = f"http://127.0.0.1:{admin_port}"
        assert public == f"http://127.0.0.1:{api_port}"
        # The public port: the API, and none of the admin routes.
        assert client.get(f"{public}/health/live").status_code == 200
        hidden = [
            client.get(f"{public}/metrics"),
            client.get(f"{public}/alerts"),
            client.post(f"{public}/admin/reload", headers=token),
        ]
        assert all(_not_found(response) for response in hidden), hidden
        # The admin port: those routes, and nothing else.
        assert client.post(f"{admin}/admin/reload").status_code == 401
        assert client.post(f"{admin}/admin/reload", headers=token).status_code == 200
        assert client.get(f"{admin}/alerts").json() == {"alerts": []}
        elsewhere = [
            client.get(f"{admin}/health/live"),
            client.post(f"{admin}/v1/churn/predict", json={"customer_id": "C1"}),
        ]
        assert all(_not_found(response) for response in elsewhere), elsewhere
        metrics = client.get(f"{admin}/metrics")
        assert metrics.status_code == 200
        # Each refused request was counted as an error like any other (one exposition later).
        (counted,) = re.findall(
            r'^mlops_http_errors_total\{error="not_found"\} (\S+)$', metrics.text, re.M
        )
        assert float(counted) == len(hidden) + len(elsewhere)


def test_the_admin_port_must_differ_from_the_api_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_API_PORT", "8100")
    monkeypatch.setenv("MLOPS_ADMIN_PORT", "8100")
    with pytest.raises(ValidationError, match="MLOPS_ADMIN_PORT is MLOPS_API_PORT"):
        Settings()
    monkeypatch.setenv("MLOPS_ADMIN_PORT", "8101")
    assert Settings().admin_port == 8101
