"""`mlops serve`: the prediction API with the registry's champions, under uvicorn."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

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
    """Run the API on the settings' host and port until Ctrl-C."""
    import uvicorn

    from serving.app import create_app
    from serving.http_protocol import with_header_deadline
    from serving.middleware import uvicorn_log_config

    typer.echo(f"serving on http://{settings.api_host}:{settings.api_port} (Ctrl-C stops)")
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=uvicorn_log_config(),
        access_log=False,  # the app writes one JSON line per request, with its request id
        timeout_graceful_shutdown=10,
        http=with_header_deadline(settings.header_read_timeout_s),
    )
