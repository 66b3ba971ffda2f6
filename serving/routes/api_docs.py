"""`GET /docs` (Swagger UI) and `GET /redoc`: the API's interactive docs, from its own files.

FastAPI's default pages load Swagger UI and ReDoc from a CDN, so on a machine without
internet (or behind a proxy that blocks jsdelivr) `/docs` is a blank page. Here the same
pages load the scripts the `fastapi-offline` package ships (Swagger UI 5, ReDoc 2), served
by the API under `/docs-assets/`. None of these routes is in the OpenAPI document.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"


def add_api_docs_routes(app: FastAPI) -> None:
    """Serve Swagger UI at /docs and ReDoc at /redoc, their scripts from the package.

    `app` must be built with `docs_url=None, redoc_url=None`: these replace FastAPI's.
    """
    assets = resources.files("fastapi_offline") / "static"
    app.mount(ASSETS_PATH, StaticFiles(directory=str(assets)), name="docs-assets")
    title, openapi_url = app.title, str(app.openapi_url)

    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
        )

    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
