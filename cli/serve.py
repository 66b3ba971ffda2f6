"""`mlops serve`: the prediction API with the registry's champions, under uvicorn."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import prepare

if TYPE_CHECKING:
    from mlops.settings import Settings


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
) -> None:
    """Serve the prediction API with the registry's champion model."""
    settings = prepare()
    if host is not None or port is not None:
        settings = settings.model_copy(
            update={"api_host": host or settings.api_host, "api_port": port or settings.api_port}
        )
    serve_api(settings)


def serve_api(settings: Settings) -> None:
    """Run the API on the settings' host and port until Ctrl-C; with MLOPS_ADMIN_PORT set,
    the admin routes on that port of the same server (`serving.admin_port`)."""
    import uvicorn

    from serving.admin_port import listening_sockets
    from serving.app import create_app
    from serving.http_protocol import with_header_deadline
    from serving.middleware import uvicorn_log_config

    options: dict[str, Any] = {
        "host": settings.api_host,
        "port": settings.api_port,
        "log_config": uvicorn_log_config(),
        "access_log": False,  # the app writes one JSON line per request, with its request id
        "timeout_graceful_shutdown": 10,
        "http": with_header_deadline(settings.header_read_timeout_s),
    }
    typer.echo(f"serving on http://{settings.api_host}:{settings.api_port} (Ctrl-C stops)")
    if settings.admin_port is None:
        uvicorn.run(create_app(settings), **options)
        return
    typer.echo(f"admin routes (/admin, /metrics, /alerts) on port {settings.admin_port} only")
    sockets = listening_sockets(settings)
    uvicorn.Server(uvicorn.Config(create_app(settings), **options)).run(sockets=sockets)
