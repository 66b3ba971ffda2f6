"""`mlops stack ...` (the stack's services as local processes) and `mlops flows serve` (the worker).

The services come from `stack.services`, the table docker-compose.yml follows too.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from typing import Annotated

import typer

from cli.common import fail, model_name, prepare

stack_app = typer.Typer(
    help="The docker-compose stack's services as local processes, for machines without Docker.",
    no_args_is_help=True,
)
flows_app = typer.Typer(help="The flows as Prefect deployments.", no_args_is_help=True)


def _echo(line: str) -> None:
    typer.echo(line)


@stack_app.command("up")
def stack_up(
    bootstrap: Annotated[
        bool, typer.Option(help="Train both models first when they have no champion yet.")
    ] = True,
) -> None:
    """Start PostgreSQL and Redis if needed, then MLflow, Prefect, the worker, API, Evidently UI."""
    from stack.native import up
    from stack.processes import StackError

    settings = prepare()
    try:
        up(settings, bootstrap=bootstrap, log=_echo)
    except StackError as error:
        fail(str(error), code=1)
    _print_status(as_json=False)
    typer.echo(f"\nlogs: {settings.home / 'stack' / 'logs'}")
    typer.echo('clients: eval "$(mlops stack env)"  then mlops or prefect commands use the stack')


@stack_app.command("down")
def stack_down(
    timeout: Annotated[
        float, typer.Option(min=0, help="Seconds between SIGTERM and SIGKILL.")
    ] = 20.0,
) -> None:
    """Stop what `mlops stack up` started: SIGTERM, then SIGKILL after the timeout."""
    from stack.native import down

    stopped = down(prepare(), log=_echo, timeout=timeout)
    typer.echo(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@stack_app.command("status")
def stack_status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line.")] = False,
) -> None:
    """Each service's state (healthy, unhealthy, stopped, external) and URL."""
    _print_status(as_json)


def _print_status(as_json: bool) -> None:
    from stack.native import status

    rows = status(prepare())
    if as_json:
        typer.echo(json.dumps([row.to_dict() for row in rows]))
        return
    for row in rows:
        pid = f"pid {row.pid}" if row.pid else ""
        typer.echo(f"{row.name:<17} {row.state:<10} {row.url or '':<28} {pid}")


@stack_app.command("panels")
def stack_panels(
    prometheus: Annotated[
        str | None,
        typer.Option(help="Prometheus's URL (default: the native stack's, on its port)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line.")] = False,
) -> None:
    """What each Grafana panel shows now: its queries run on the stack's Prometheus.

    The native stack has no Grafana (no Debian package); its Prometheus has the same series.
    """
    import httpx

    from stack.dashboards import describe, panel_values

    settings = prepare()
    url = prometheus or f"http://127.0.0.1:{settings.stack_prometheus_port}"
    try:
        values = panel_values(url)
    except httpx.HTTPError as error:
        fail(f"cannot query Prometheus at {url}: {error}")
    if as_json:
        rows = [{"panel": v.where, "query": v.query, "series": v.series} for v in values]
        typer.echo(json.dumps(rows))
        return
    width = max(len(v.where) for v in values)
    for value in values:
        typer.echo(f"{value.where:<{width}}  {describe(value.series)}")


@stack_app.command("env")
def stack_env(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """The variables that point `mlops`, `mlflow` and `prefect` commands at the native stack."""
    from stack.native import topology
    from stack.services import client_environment

    environment = client_environment(topology(prepare()))
    if as_json:
        typer.echo(json.dumps(environment, sort_keys=True))
        return
    for key, value in sorted(environment.items()):
        typer.echo(f"export {key}={shlex.quote(value)}")


@stack_app.command("bootstrap")
def stack_bootstrap(
    force: Annotated[bool, typer.Option(help="Train even when a champion exists.")] = False,
    pages: Annotated[
        bool,
        typer.Option(
            help="Then build the walkthrough pages that are missing or show another champion."
        ),
    ] = True,
) -> None:
    """Run each case study's pipeline once, unless its model already has a champion; then
    build the walkthrough pages the API serves under /reports/."""

    settings = prepare()
    from mlflow import MlflowClient

    from mlops.registry import champion_version
    from stack.processes import executable
    from stack.services import BOOTSTRAP_STEPS

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    for model, argv in BOOTSTRAP_STEPS:
        name = model_name(settings, model)
        version = champion_version(client, name)
        if version is not None and not force:
            typer.echo(f"{model}: {name}@champion is v{version}, not training again")
            continue
        typer.echo(f"{model}: {' '.join(argv)}")
        result = subprocess.run([executable(argv[0]), *argv[1:]], check=False)
        if result.returncode:
            typer.secho(f"error: {model} bootstrap failed", fg="red", err=True)
            raise typer.Exit(result.returncode)
    if pages:
        from reports.page import refresh_pages

        for model, done in refresh_pages(settings).items():
            typer.echo(f"{model}: walkthrough page {done}")


@stack_app.command("traffic")
def stack_traffic(
    host: Annotated[str, typer.Option(help="Address of the metrics endpoint.")] = "127.0.0.1",
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Port of /metrics (default MLOPS_STACK_TRAFFIC_PORT; 0: none)."),
    ] = None,
    round_seconds: Annotated[
        float, typer.Option(min=0.1, help="Seconds of each round of traffic.")
    ] = 30.0,
    url: Annotated[
        str | None, typer.Option(help="The API (default: MLOPS_API_HOST and MLOPS_API_PORT).")
    ] = None,
) -> None:
    """The stack's traffic service: simulated churn and fraud traffic until stopped, baseline
    first, then the drift scenarios (MLOPS_STACK_TRAFFIC_*); labels filed, due later."""
    import logging
    import signal
    import threading

    settings = prepare()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    from stack.traffic import TrafficError
    from stack.traffic_service import serve_traffic

    port = settings.stack_traffic_port if metrics_port is None else metrics_port
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        serve_traffic(
            settings,
            stop,
            url=url or f"http://{settings.api_host}:{settings.api_port}",
            host=host,
            metrics_port=port or None,
            round_s=round_seconds,
        )
    except TrafficError as error:
        fail(str(error))


@flows_app.command("serve")
def flows_serve(
    limit: Annotated[int, typer.Option(min=1, help="Flow runs at a time.")] = 1,
) -> None:
    """Register the deployments (pipelines.deployments) and run their flow runs until stopped."""

    prepare()  # before Prefect is imported: it reads its settings on import
    from pipelines.deployments import serve_deployments

    serve_deployments(limit=limit)
