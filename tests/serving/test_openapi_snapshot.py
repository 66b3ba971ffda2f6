"""The API's OpenAPI document is the one snapshotted before the packages were reorganised."""

from __future__ import annotations

import json

from mlops.settings import Settings
from serving.app import create_app
from tests.snapshots.behaviour import compare_or_update


def test_the_openapi_document_is_as_snapshotted(settings: Settings) -> None:
    current = json.loads(json.dumps(create_app(settings).openapi()))
    assert current == compare_or_update("openapi", current)
