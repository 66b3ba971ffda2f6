"""The native stack's Prometheus and Alertmanager configuration, from the compose files."""

from __future__ import annotations

from pathlib import Path

from mlops.settings import Settings
from stack.observability import (
    RULES,
    alertmanager_config,
    observability_services,
    prometheus_config,
    write_configs,
)


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path,
        api_port=18000,
        stack_prometheus_port=19090,
        stack_alertmanager_port=19093,
        stack_scrape_interval_s=2,
    )


def test_prometheus_reaches_this_machine_at_the_settings_ports(tmp_path: Path) -> None:
    config = prometheus_config(_settings(tmp_path))
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "2s"
    assert config["rule_files"] == [str(RULES)] and RULES.is_file()
    targets = {
        job["job_name"]: [t for group in job["static_configs"] for t in group["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets["mlops-api"] == ["127.0.0.1:18000"]
    assert targets["prometheus"] == ["127.0.0.1:19090"]
    assert all(t.startswith("127.0.0.1:") for group in targets.values() for t in group)
    (manager,) = config["alerting"]["alertmanagers"]
    assert manager["static_configs"][0]["targets"] == ["127.0.0.1:19093"]


def test_alertmanager_notifies_this_machine_s_api(tmp_path: Path) -> None:
    (receiver,) = alertmanager_config(_settings(tmp_path))["receivers"]
    assert [hook["url"] for hook in receiver["webhook_configs"]] == [
        "http://127.0.0.1:18000/alerts"
    ]


def test_the_services_run_on_the_written_files(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    written = write_configs(settings)
    by_name = {service.name: service for service in observability_services(settings)}
    for name, path in written.items():
        assert path.is_file()
        assert f"--config.file={path}" in by_name[name].command
    assert by_name["prometheus"].health_url() == "http://127.0.0.1:19090/-/ready"
    assert "--cluster.listen-address=" in by_name["alertmanager"].command
    assert by_name["prometheus"].depends_on == ("api", "alertmanager")
