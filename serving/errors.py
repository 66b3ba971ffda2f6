"""One error hierarchy for the API; each error carries its HTTP status and a clear message."""

from __future__ import annotations

import http
import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from serving.context import request_context

logger = logging.getLogger("serving")


class ApiError(Exception):
    """An error the API answers with its `status_code` and the body {"error", "detail"}.

    Each subclass is one `error` code with its status; `detail` is the message for the
    caller, which names what went wrong and never echoes a secret.
    """

    status_code = 500
    error = "internal_error"
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def response(self) -> JSONResponse:
        """This error as the API's response: its status, body and headers."""
        return JSONResponse(
            _body(self.error, self.detail), status_code=self.status_code, headers=self.headers
        )


class UnknownEntity(ApiError):
    status_code = 404
    error = "unknown_entity"


class PageNotFound(ApiError):
    status_code = 404
    error = "page_not_found"


class InvalidInput(ApiError):
    status_code = 422
    error = "invalid_input"


class FeatureStoreUnavailable(ApiError):
    status_code = 503
    error = "feature_store_unavailable"


class ModelNotReady(ApiError):
    status_code = 503
    error = "model_not_ready"


class Unauthorized(ApiError):
    status_code = 401
    error = "unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


class PayloadTooLarge(ApiError):
    status_code = 413
    error = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status_code = 415
    error = "unsupported_media_type"


class Overloaded(ApiError):
    status_code = 429
    error = "overloaded"
    # Requests last milliseconds: a second later the load has usually passed.
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}


def _body(error: str, detail: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail}


def install_error_handlers(app: FastAPI) -> None:
    """Bodies are {"error", "detail"}: no traceback, no echo of the submitted values."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        _note(request, exc.error)
        return exc.response()

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Routing's own errors (unknown path, wrong method) in the same shape as ours.
        error = http.HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        _note(request, error)
        return JSONResponse(
            _body(error, exc.detail), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with its traceback by the server; the client gets no internals.
        logger.exception("unhandled error", exc_info=exc)
        _note(request, "internal_error")
        return JSONResponse(_body("internal_error", "unexpected server error"), status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        _note(request, "invalid_request")
        problems = [
            {
                "field": ".".join(str(p) for p in e["loc"] if p != "body") or "body",
                "problem": e["msg"],
            }
            for e in exc.errors()
        ]
        return JSONResponse(_body("invalid_request", problems), status_code=422)


def _note(request: Request, error: str) -> None:
    """Tell the request middleware which error the request ended with (metrics, log line)."""
    context = request_context(request.scope)
    if context is not None:
        context.error = error
