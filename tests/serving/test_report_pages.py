"""`/reports/`: the API lists and serves the walkthrough pages, and nothing else.

The pages are files `mlops report` writes; these tests write small ones of their own, so
they check the serving side only (tests/reports builds and renders the real pages).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from mlops.settings import Settings
from serving.app import create_app

PAGE = "<!doctype html><html><head><title>churn walkthrough: churn v3</title></head></html>"
SECRET = "not-for-the-web"


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    # Without the lifespan: the pages need no model, and the routes read files only.
    yield TestClient(create_app(settings))


def test_index_lists_the_pages_built(settings: Settings, client: TestClient) -> None:
    empty = client.get("/reports/")
    assert empty.status_code == 200
    assert "mlops report churn" in empty.text

    settings.report_pages_dir.mkdir(parents=True)
    (settings.report_pages_dir / "churn.html").write_text(PAGE)
    index = client.get("/reports/")
    assert index.headers["content-type"].startswith("text/html")
    assert '<a href="churn.html">churn walkthrough: churn v3</a>' in index.text

    page = client.get("/reports/churn.html")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text == PAGE


def test_a_missing_page_is_a_404_in_the_apis_error_shape(client: TestClient) -> None:
    response = client.get("/reports/fraud.html")
    assert response.status_code == 404
    assert response.json() == {
        "error": "page_not_found",
        "detail": "no page 'fraud.html': the index is /reports/",
    }


@pytest.mark.parametrize(
    "path",
    [
        "/reports/..%2Fmlflow.db",
        "/reports/%2e%2e%2fmlflow.db",
        "/reports/../mlflow.db",
        "/reports/..",
        "/reports/.hidden.html",
        "/reports/secret.txt",
        "/reports/CHURN.HTML",
        "/reports/%2Fetc%2Fpasswd",
    ],
)
def test_no_path_leaves_the_pages_folder(settings: Settings, client: TestClient, path: str) -> None:
    settings.report_pages_dir.mkdir(parents=True)
    (settings.home / "mlflow.db").write_text(SECRET)
    (settings.report_pages_dir / "secret.txt").write_text(SECRET)
    (settings.report_pages_dir / ".hidden.html").write_text(SECRET)
    response = client.get(path)
    assert response.status_code == 404, (path, response.status_code)
    assert SECRET not in response.text
    assert set(response.json()) == {"error", "detail"}
