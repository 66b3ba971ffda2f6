"""One error hierarchy for the API; each error carries its HTTP status and a clear message."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

logger = logging.getLogger("serving")


class ApiError(Exception):
    status_code = 500
    error = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnknownEntity(ApiError):
    status_code = 404
    error = "unknown_entity"


class InvalidInput(ApiError):
    status_code = 422
    error = "invalid_input"


class FeatureStoreUnavailable(ApiError):
    status_code = 503
    error = "feature_store_unavailable"


class ModelNotReady(ApiError):
    status_code = 503
    error = "model_not_ready"


def _body(error: str, detail: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail}


def install_error_handlers(app: FastAPI) -> None:
    """Bodies are {"error", "detail"}: no traceback, no echo of the submitted values."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_body(exc.error, exc.detail), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Logged with its traceback by the server; the client gets no internals.
        logger.exception("unhandled error", exc_info=exc)
        return JSONResponse(_body("internal_error", "unexpected server error"), status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "field": ".".join(str(p) for p in e["loc"] if p != "body") or "body",
                "problem": e["msg"],
            }
            for e in exc.errors()
        ]
        return JSONResponse(_body("invalid_request", problems), status_code=422)
