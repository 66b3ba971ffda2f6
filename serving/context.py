"""What one request carries through the app: its id, the model version that answered, its error.

The request middleware puts a `RequestContext` into the ASGI scope; route handlers fill in
the model version and error handlers the error, and the middleware reports all of it in
the request's log line and metrics once the response is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCOPE_KEY = "mlops.request"


@dataclass(slots=True)
class RequestContext:
    """One request's id, the version of the model that answered it and the error it ended with."""

    request_id: str
    model_version: str | None = None
    error: str | None = None


def request_context(scope: Mapping[str, Any]) -> RequestContext | None:
    """The context the middleware put in this ASGI scope, None outside the middleware."""
    return scope.get(SCOPE_KEY)
