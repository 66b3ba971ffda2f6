"""`mlops demo --no-serve` at a tiny size in a fresh home, as a user would run it.

A check that the command runs from start to end (both pipelines, both registrations,
the walkthrough pages), not of the models: the session fixture `tiny_demo` runs it at
the smallest sizes the fraud protocol accepts, the fraud search stopped after two trials.
"""

from __future__ import annotations

from typing import Any

import pytest
from mlflow import MlflowClient

from mlops.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_tiny_demo_registers_both_models_and_builds_their_pages(
    tiny_demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tiny_demo["home"]))
    settings = Settings()
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    for name in ("churn", "fraud"):
        assert tiny_demo[name]["model_name"] == name
        champion = client.get_model_version_by_alias(name, "champion")
        assert str(champion.version) == str(tiny_demo[name]["model_version"]) == "1"
        page = settings.report_pages_dir / f"{name}.html"
        assert page.is_file() and page.stat().st_size > 1000, page
