"""The admin port: `/admin/*`, `/metrics` and `/alerts` on a port of their own.

With MLOPS_ADMIN_PORT set, `mlops serve` listens on two sockets of one server, one app and
one process: the API port (MLOPS_API_PORT) and the admin port, same host. `AdminPortSplit`
answers each request by the port it arrived on: the admin routes (reloading the models,
Prometheus's scrape, Alertmanager's webhook) only on the admin port, everything else only
on the API port; the other port answers 404 `not_found`, as for a path that does not
exist. A platform can then expose the API port (a Kubernetes Service, a published port)
and let only its monitoring reach the admin port (infra/k8s/base/api-networkpolicy.yaml).

Unset (the default), the app has no such middleware and one port serves every route.
"""

from __future__ import annotations

import socket
from typing import Final

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mlops.settings import Settings
from serving.context import request_context
from serving.errors import error_body

# The stack's plumbing, not the prediction API: what only the admin port serves.
ADMIN_ROUTES: Final = ("/metrics", "/alerts")
ADMIN_PREFIX: Final = "/admin/"


def is_admin_path(path: str) -> bool:
    """Whether `path` belongs on the admin port."""
    return path in ADMIN_ROUTES or path.startswith(ADMIN_PREFIX)


class AdminPortSplit:
    """Answers 404 to an admin route asked on the API port, and to any other route asked on
    the admin port (the port is the listening socket's: the ASGI scope's `server`)."""

    def __init__(self, app: ASGIApp, admin_port: int) -> None:
        self.app = app
        self.admin_port = admin_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            server = scope.get("server")
            on_admin_port = server is not None and server[1] == self.admin_port
            if on_admin_port != is_admin_path(scope["path"]):
                context = request_context(scope)
                if context is not None:
                    context.error = "not_found"
                body = error_body(scope["path"], "not_found", "Not Found")
                await JSONResponse(body, status_code=404)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port), as uvicorn binds its own (not listening yet:
    the server listens once the app has started)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def listening_sockets(settings: Settings) -> list[socket.socket]:
    """The API port's socket, then the admin port's (`settings.admin_port` must be set)."""
    assert settings.admin_port is not None
    api = listening_socket(settings.api_host, settings.api_port)
    try:
        return [api, listening_socket(settings.api_host, settings.admin_port)]
    except OSError:
        api.close()
        raise
