"""The API's interactive docs load nothing from the internet."""

from __future__ import annotations

import re
from importlib import resources

from fastapi.testclient import TestClient

from mlops.settings import Settings
from serving.app import create_app


def test_docs_pages_load_their_scripts_from_the_api_itself(settings: Settings) -> None:
    client = TestClient(create_app(settings))  # no lifespan: the docs need no model
    assets = resources.files("fastapi_offline") / "static"
    for page in ("/docs", "/redoc"):
        answer = client.get(page)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        sources = re.findall(r"""(?:src|href)=["']([^"']+)["']""", answer.text)
        sources += re.findall(r"""url: ?["']([^"']+)["']""", answer.text)
        assert sources, page
        assert not [s for s in sources if "://" in s], f"{page} loads {sources}"
        for source in sources:
            if not source.startswith("/docs-assets/"):
                assert source == "/openapi.json", source
                continue
            served = client.get(source)
            assert served.status_code == 200, source
            assert served.content == (assets / source.rsplit("/", 1)[1]).read_bytes()
    # Neither the pages nor their files are operations of the API.
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))]
