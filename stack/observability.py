"""Prometheus and Alertmanager of the native stack: Debian's binaries on the files compose mounts.

docker-compose.yml mounts infra/prometheus/prometheus.yml, infra/prometheus/rules.yml and
infra/alertmanager/alertmanager.yml into the official images. Natively the same files
are used: rules.yml as it is; the other two with the compose host names (api,
alertmanager, localhost:9090) replaced by this machine's loopback ports, the scrape and
evaluation interval set from MLOPS_STACK_SCRAPE_INTERVAL_S, written to
MLOPS_HOME/stack/. Both are optional: without the binaries (`apt-get install prometheus
prometheus-alertmanager`) the stack runs without them and says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from mlops.settings import Settings
from stack.processes import stack_dir
from stack.services import INFRA_SERVICES, Service, ports_of

INFRA = Path(__file__).resolve().parents[1] / "infra"
PROMETHEUS_CONFIG = INFRA / "prometheus" / "prometheus.yml"
RULES = INFRA / "prometheus" / "rules.yml"
ALERTMANAGER_CONFIG = INFRA / "alertmanager" / "alertmanager.yml"
# The tools' names: Debian calls Alertmanager prometheus-alertmanager.
BINARIES = {
    "prometheus": ("prometheus",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
}
# Where compose's Prometheus finds the API, itself and Alertmanager.
COMPOSE_API = "api:8000"
COMPOSE_PROMETHEUS = "localhost:9090"
COMPOSE_ALERTMANAGER = "alertmanager:9093"


def binary(name: str) -> str | None:
    """The installed binary of `name` (prometheus or alertmanager), or None."""
    for candidate in BINARIES[name]:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def _program(name: str) -> str:
    found = binary(name)
    return Path(found).name if found else BINARIES[name][0]


def prometheus_config(settings: Settings) -> dict[str, Any]:
    """infra/prometheus/prometheus.yml for this machine's ports and the settings' interval."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    interval = f"{settings.stack_scrape_interval_s:g}s"
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["rule_files"] = [str(RULES)]
    # A compose host is a service name: natively, loopback at the settings' port of it.
    ports = {
        **ports_of(settings),
        "localhost": settings.stack_prometheus_port,
        "alertmanager": settings.stack_alertmanager_port,
    }
    groups = [
        *(group for job in config["scrape_configs"] for group in job["static_configs"]),
        *(group for am in config["alerting"]["alertmanagers"] for group in am["static_configs"]),
    ]
    for group in groups:
        group["targets"] = [
            f"127.0.0.1:{ports[target.rsplit(':', 1)[0]]}" for target in group["targets"]
        ]
    return config


def alertmanager_config(settings: Settings) -> dict[str, Any]:
    """infra/alertmanager/alertmanager.yml, its webhooks sent to this machine's API."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = hook["url"].replace(
                f"http://{COMPOSE_API}", f"http://127.0.0.1:{settings.api_port}"
            )
    return config


def write_configs(settings: Settings) -> dict[str, Path]:
    """Both configurations, written under MLOPS_HOME/stack/; their paths by service."""
    folder = stack_dir(settings)
    written = {}
    for name, config in (
        ("prometheus", prometheus_config(settings)),
        ("alertmanager", alertmanager_config(settings)),
    ):
        path = folder / name / f"{name}.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        written[name] = path
    return written


def observability_services(settings: Settings) -> list[Service]:
    """Prometheus (once the API is up) and Alertmanager, as the native stack runs them."""
    folder = stack_dir(settings)
    prometheus_port, alertmanager_port = (
        settings.stack_prometheus_port,
        settings.stack_alertmanager_port,
    )
    return [
        Service(
            name="alertmanager",
            description="Alertmanager: routes Prometheus's alerts to the API's POST /alerts",
            command=(
                _program("alertmanager"),
                f"--config.file={folder / 'alertmanager' / 'alertmanager.yml'}",
                f"--storage.path={folder / 'alertmanager' / 'data'}",
                f"--web.listen-address=127.0.0.1:{alertmanager_port}",
                "--cluster.listen-address=",  # one instance: no gossip port
            ),
            environment={},
            port=alertmanager_port,
            health_path="/-/ready",
            published=True,
            profiles=INFRA_SERVICES["alertmanager"][0],
            memory=INFRA_SERVICES["alertmanager"][1],
        ),
        Service(
            name="prometheus",
            description="Prometheus: scrapes the API's /metrics, evaluates the alert rules",
            command=(
                _program("prometheus"),
                f"--config.file={folder / 'prometheus' / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'prometheus' / 'data'}",
                "--storage.tsdb.retention.time=15d",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ),
            environment={},
            port=prometheus_port,
            health_path="/-/ready",
            depends_on=("api", "alertmanager"),
            published=True,
            profiles=INFRA_SERVICES["prometheus"][0],
            memory=INFRA_SERVICES["prometheus"][1],
        ),
    ]


def installed(service: Service) -> bool:
    """Whether the service's binary is on this machine."""
    return binary(service.name) is not None
