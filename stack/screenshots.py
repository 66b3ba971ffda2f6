"""`mlops screenshots`: the docs' pictures of the platform's pages, taken from a real home.

From a home where the pipelines ran (`make demo-no-serve`), this starts the prediction
API, the MLflow UI and the Evidently UI as the stack's service table runs them
(`stack.services`: the same argv, health paths and process groups, `stack.processes`),
but on the home's own stores (MLflow's SQLite file, the monitoring workspace) and on
free loopback ports. When the model's Evidently project has no check yet, it sends the
API two short bursts of simulated traffic (the demo's drift scenario second) and runs the
monitoring flow after each (`--dry-run`: check and log, never retrain), so the dashboard
has points: that traffic stays in the home like any other. Then headless Chromium takes
each page at one window size, and Pillow (matplotlib's dependency) quantizes each PNG to
a palette so the docs stay small. Every process it started is stopped, even on failure.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from mlops.case_studies import CASE_STUDIES, case_study
from mlops.names import CHAMPION
from mlops.settings import Settings
from stack.home_ui import home_ui
from stack.processes import (
    Log,
    Running,
    StackError,
    launch,
    probe,
    process_environment,
    stop,
    wait_until,
)
from stack.services import Service, Topology, service_table

# One window for every picture: wide enough for MLflow's run page without a cramped layout.
WINDOW = (1280, 800)
# Virtual time Chromium grants a page's scripts before the picture (ms): the single-page
# UIs fetch their data after loading, Evidently draws its charts after that.
SCRIPT_BUDGET_MS = 30_000
SETTLE_TRIES = 4
# A page with fewer colours than this is blank or a spinner, not a picture of anything.
MIN_COLOURS = 64
MAX_PNG_BYTES = 200_000
# MLflow's UI opens its assistant panel over the page when its host is loopback by name;
# Chromium reaches it as the compose service name instead, one of MLflow's allowed hosts.
MLFLOW_HOST = "mlflow"
HEALTH_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
# The services the pictures need, by their names in the service table.
NEEDED = ("api", "mlflow", "evidently-ui")
# Traffic before the monitoring checks: enough rows for a check (MLOPS_MONITOR_MIN_ROWS).
TRAFFIC_RATE, TRAFFIC_SECONDS = 25.0, 10.0
# The second burst's world (`mlops simulate traffic --scenario`): churn's is the demo's own.
DRIFT_SCENARIOS = {"churn": "price_rise", "fraud": "spending_shift"}


class NoTrainedHome(StackError):
    """The home has no champion to show: the pipelines have not run there."""


@dataclass(frozen=True)
class Shot:
    """One picture: the file it becomes (`<name>.png`) and the page it shows."""

    name: str
    url: str


@dataclass
class ShotResult:
    name: str
    path: Path | None
    size: tuple[int, int] | None = None
    bytes: int = 0
    colours: int = 0
    problem: str | None = None  # blank where it should not be: the command fails


@dataclass
class Outcome:
    """What `take_screenshots` made, and how long it took."""

    shots: list[ShotResult] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "seconds": round(self.seconds, 1),
            "shots": [
                {**shot.__dict__, "path": str(shot.path) if shot.path else None}
                for shot in self.shots
            ],
        }


# --- what to show ------------------------------------------------------------------------


def champions(settings: Settings) -> dict[str, tuple[str, str]]:
    """Case study -> (champion's version, its training run id), for those with a champion."""
    from mlflow import MlflowClient

    from mlops.registry import champion_version

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    found: dict[str, tuple[str, str]] = {}
    for name, study in CASE_STUDIES.items():
        model = study.model_name(settings)
        if champion_version(client, model) is None:
            continue
        version = client.get_model_version_by_alias(model, CHAMPION)
        found[name] = (str(version.version), str(version.run_id))
    return found


def experiment_of(settings: Settings, run_id: str) -> str:
    from mlflow import MlflowClient

    return str(MlflowClient(tracking_uri=settings.tracking_uri).get_run(run_id).info.experiment_id)


def screenshot_services(
    settings: Settings, ports: dict[str, int], served: list[str]
) -> list[Service]:
    """The table's API, MLflow and Evidently UI on `ports`, pointed at the home's own stores.

    The table renders them for the stack (PostgreSQL, Redis, the MLflow server); here the
    argv stay the table's and the environment is the embedded one: the API reads the home
    as `mlops serve` does, MLflow serves the home's SQLite file.
    """
    # The table's secrets go to services these pictures do not start.
    table = service_table(
        Topology.native(
            settings.model_copy(update={"api_port": ports["api"]}),
            admin_token="",
            prefect_auth_string="",
        )
    )
    embedded = {"MLOPS_HOME": str(settings.home), "MLOPS_SERVED_MODELS": ",".join(served)}
    mlflow = home_ui(settings, "mlflow", host="127.0.0.1", port=ports["mlflow"]).service
    mlflow_environment = {
        **mlflow.environment,
        # Its UI's own requests come from the name Chromium reaches it by (MLFLOW_HOST).
        "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS": f"http://{MLFLOW_HOST}:{ports['mlflow']}",
    }
    evidently = home_ui(settings, "monitoring", host="127.0.0.1", port=ports["evidently-ui"])
    return [
        replace(mlflow, environment=mlflow_environment),
        evidently.service,
        replace(table["api"], environment=embedded),
    ]


def free_ports(count: int, first: int | None) -> list[int]:
    """`count` ports nothing listens on: from `first` upwards, or any the system gives."""
    ports: list[int] = []
    candidate = first
    while len(ports) < count:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate or 0))
            except OSError:
                candidate = (candidate or 0) + 1
                continue
            port = sock.getsockname()[1]
        if port not in ports:
            ports.append(port)
        candidate = None if first is None else port + 1
    return ports


# --- the services ------------------------------------------------------------------------


@contextlib.contextmanager
def running(settings: Settings, table: list[Service], log: Log) -> Iterator[dict[str, str]]:
    """Start `table` together, wait for each health URL, yield name -> base URL; stop all."""
    runs: list[Running] = []
    try:
        for service in table:
            run, _ = launch(
                f"screenshots-{service.name}",
                list(service.command),
                process_environment(service.environment),
                settings,
                url=service.url(),
                health_url=service.health_url(),
            )
            runs.append(run)
        for service, run in zip(table, runs, strict=True):
            started = time.monotonic()
            health = service.health_url()
            assert health is not None, f"{service.name} has no health URL"
            wait_until(run, functools.partial(probe, health), HEALTH_TIMEOUT_S)
            took = time.monotonic() - started
            log(f"{service.name:<13} answers at {service.url()} ({took:.0f} s)")
        yield {service.name: str(service.url()) for service in table}
    finally:
        stop(list(reversed(runs)), STOP_TIMEOUT_S, log)


def _get_json(url: str) -> object:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as response:
        return json.loads(response.read())


def evidently_project(ui_url: str, name: str) -> str:
    """The id of the Evidently project called `name` (one per model)."""
    projects = _get_json(f"{ui_url}/api/projects")
    assert isinstance(projects, list)
    for project in projects:
        if project["name"] == name:
            return str(project["id"])
    raise StackError(f"the Evidently UI has no project {name!r}")


def ensure_checks(settings: Settings, model: str, api_url: str, log: Log) -> None:
    """Two checks of the champion's traffic when its project has none: points to draw."""
    from monitoring.workspace import ensure_project, open_workspace
    from pipelines.monitoring_flow import monitor_model
    from stack.traffic import run_traffic

    workspace = open_workspace(settings)
    for study in CASE_STUDIES.values():  # both exist from the start, as `mlops ui monitoring`
        ensure_project(workspace, study.model_name(settings))
    project = ensure_project(workspace, case_study(model).model_name(settings))
    if workspace.list_runs(project.id):
        return
    for scenario in ("baseline", DRIFT_SCENARIOS[model]):
        log(f"{model}: {TRAFFIC_RATE * TRAFFIC_SECONDS:.0f} requests ({scenario}), then a check")
        sent = run_traffic(
            settings,
            model,
            scenario=scenario,
            rate=TRAFFIC_RATE,
            duration_s=TRAFFIC_SECONDS,
            url=api_url,
        )
        if set(sent.statuses) != {"200"}:
            raise StackError(f"the API answered the traffic with {sent.statuses}")
        time.sleep(2 * settings.prediction_log_flush_s)  # the API writes its log in batches
        monitor_model(model=model, act=False)


# --- the pictures ------------------------------------------------------------------------


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise StackError("chromium is not installed (apt-get install -y chromium)")
    return found


def capture(url: str, path: Path, *, budget_ms: int = SCRIPT_BUDGET_MS) -> None:
    """One headless Chromium picture of `url` at WINDOW, in a profile of its own."""
    with tempfile.TemporaryDirectory(prefix="mlops-chromium-") as profile:
        done = subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                f"--user-data-dir={profile}",
                f"--host-resolver-rules=MAP {MLFLOW_HOST} 127.0.0.1",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
                f"--virtual-time-budget={budget_ms}",
                f"--screenshot={path}",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
            env={**os.environ, "TZ": "UTC"},
        )
    if done.returncode != 0 or not path.is_file():
        raise StackError(f"chromium could not take {url}: {done.stderr[-1500:]}")


def settled(url: str, path: Path) -> bool:
    """Picture `url` until two pictures in a row are the same; False when it never settles.

    On a busy machine the virtual time budget can run out before a page's data arrives
    or its charts finish drawing (axes without lines); a page that has settled looks the
    same twice.
    """
    capture(url, path)
    for _ in range(SETTLE_TRIES - 1):
        before = path.read_bytes()
        capture(url, path)
        if path.read_bytes() == before:
            return True
    return False


def colours(path: Path) -> int:
    """Distinct colours of the picture (a blank page has one, a spinner a handful)."""
    from PIL import Image

    with Image.open(path) as image:
        found = image.convert("RGB").getcolors(maxcolors=1 << 16)
    return 1 << 16 if found is None else len(found)


def shrink(path: Path) -> None:
    """Quantize to a 256-colour palette, without dithering (flat UI colours, crisp text)."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def shots(model: str, urls: dict[str, str], settings: Settings) -> list[Shot]:
    """The pictures of the README, in its order."""
    _, run_id = champions(settings)[model]
    experiment = experiment_of(settings, run_id)
    project = evidently_project(urls["evidently-ui"], case_study(model).model_name(settings))
    mlflow = urls["mlflow"].replace("127.0.0.1", MLFLOW_HOST)
    return [
        Shot(f"{model}-walkthrough", f"{urls['api']}/reports/{model}.html"),
        Shot(f"{model}-monitoring", f"{urls['evidently-ui']}/projects/{project}"),
        Shot(f"{model}-mlflow-run", f"{mlflow}/#/experiments/{experiment}/runs/{run_id}"),
        Shot("api-docs", f"{urls['api']}/docs"),
    ]


def take_screenshots(
    settings: Settings, out: Path, *, model: str, first_port: int | None, log: Log
) -> Outcome:
    """Start the services, make sure the dashboard has checks, take and shrink each picture."""
    started = time.monotonic()
    found = champions(settings)
    if model not in found:
        raise NoTrainedHome(
            f"no {model} champion in {settings.home}: run `make demo-no-serve` "
            f"(or `mlops pipeline {model}`) with MLOPS_HOME={settings.home} first"
        )
    page = settings.report_pages_dir / f"{model}.html"
    if not page.is_file():
        raise NoTrainedHome(f"no walkthrough page at {page}: run `mlops report {model}` first")
    (settings.home / "monitoring" / "workspace").mkdir(parents=True, exist_ok=True)
    ports = dict(zip(NEEDED, free_ports(len(NEEDED), first_port), strict=True))
    table = screenshot_services(settings, ports, list(found))
    out.mkdir(parents=True, exist_ok=True)
    by_name = {service.name: service for service in table}
    # The UI reads the workspace when it starts: the checks come first.
    with running(settings, [by_name["mlflow"], by_name["api"]], log) as urls:
        ensure_checks(settings, model, urls["api"], log)
        with running(settings, [by_name["evidently-ui"]], log) as ui:
            urls |= ui
            taken = [_take(shot, out, log) for shot in shots(model, urls, settings)]
    return Outcome(taken, time.monotonic() - started)


def _take(shot: Shot, out: Path, log: Log) -> ShotResult:
    path = out / f"{shot.name}.png"
    if not settled(shot.url, path):
        log(f"{shot.name:<20} still changing after {SETTLE_TRIES} pictures: the last is kept")
    result = _checked(shot, path)
    if result.problem:
        log(f"{shot.name:<20} not kept: {result.problem}")
    else:
        log(f"{shot.name:<20} {path} ({result.bytes / 1000:.0f} kB, {result.colours} colours)")
    return result


def _checked(shot: Shot, path: Path) -> ShotResult:
    """Keep the picture when it shows something; else remove it and say why."""
    from PIL import Image

    found = colours(path)
    if found < MIN_COLOURS:
        path.unlink()
        return ShotResult(shot.name, None, colours=found, problem=f"blank page ({found} colours)")
    shrink(path)
    with Image.open(path) as image:
        size = image.size
    return ShotResult(shot.name, path, size, path.stat().st_size, found)
