"""`mlops stream`: the real-time path, payments from Redis Streams decided by the scorer."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

from cli.common import fail, prepare

stream_app = typer.Typer(
    help="Score payments from the payments stream (Redis Streams), each exactly once.",
    no_args_is_help=True,
)


@stream_app.command("fraud")
def fraud(
    partitions: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated partitions this scorer owns (default: all of "
            "MLOPS_STREAM_PARTITIONS). One scorer per partition at a time."
        ),
    ] = None,
    consumer: Annotated[
        str | None,
        typer.Option(help="Consumer name in the group (default: from the partitions owned)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address of the metrics endpoint.")] = "127.0.0.1",
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Port of /metrics (default MLOPS_STREAM_METRICS_PORT; 0: none)."),
    ] = None,
) -> None:
    """Decide payments from the stream until stopped (Ctrl-C or SIGTERM): window features,
    champion's score, decisions stream and prediction log, then acknowledge."""
    settings = prepare()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from serving.fraud_stream import build_stream_scorer, serve_stream

    try:
        owned = None if partitions is None else [int(p) for p in partitions.split(",") if p]
        scorer = build_stream_scorer(settings, partitions=owned, consumer=consumer)
    except ValueError as error:
        fail(str(error))
    port = settings.stream_metrics_port if metrics_port is None else metrics_port
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    typer.echo(
        f"scoring {', '.join(scorer.streams)} as {scorer.consumer}"
        + (f"; metrics on http://{host}:{port}/metrics" if port else "")
    )
    serve_stream(scorer, stop, host=host, metrics_port=port or None)
