"""docker-compose.yml against the Compose Specification and against the code it runs.

The project services must be the service table of `stack.services` (same argv, same
environment), every command must exist in the image's venv, every MLOPS_* variable must be
a setting, secrets must be required, and only the API, the UIs and Grafana are published,
on 127.0.0.1, on ports that do not clash. The networks allow every flow the configuration
uses, and keep the Dask scheduler, the Evidently UI and the data stores from the rest.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import typer
import yaml

from cli.main import app
from mlops.settings import Settings, environment_variable
from stack.services import (
    BOOTSTRAP_STEPS,
    DATABASES,
    INFRA_SERVICES,
    INTERNAL_NETWORKS,
    LIVING_SETTINGS,
    NETWORKS,
    PROFILES,
    TRAFFIC_REDIS_PASSWORD_VAR,
    TRAFFIC_REDIS_USER,
    Service,
    Topology,
    role_password_variable,
    services,
    traffic_redis_rules,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA = ROOT.parent / "shared" / "schemas" / "compose-spec.json"
VENV_BIN = Path(sys.executable).parent
PUBLISHED = {"api", "mlflow", "prefect-server", "evidently-ui", "grafana"}
# ${VAR}, ${VAR:?message}, ${VAR:-default}: compose's interpolation.
INTERPOLATION = re.compile(r"\$\{(\w+)(:?[?-][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


@pytest.fixture(scope="module")
def table() -> list[Service]:
    return services(Topology.compose())


def _plain(value: str) -> str:
    """`${VAR:?message}` as `${VAR}`: what the table writes for a secret."""
    return INTERPOLATION.sub(lambda m: "${" + m.group(1) + "}", value)


def _validator() -> Any:
    import jsonschema

    if not SCHEMA.is_file():
        pytest.skip(f"the Compose Specification schema is not at {SCHEMA}")
    schema = json.loads(SCHEMA.read_text())
    # It declares draft-07 as ".../draft-07/schema" (no "#"), which jsonschema does not look up.
    assert "draft-07" in schema["$schema"]
    return jsonschema.Draft7Validator(schema)


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in _validator().iter_errors(compose)]
    assert errors == []


def test_the_schema_check_rejects_a_broken_service(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["helthcheck"] = broken["services"]["api"].pop("healthcheck")
    assert not _validator().is_valid(broken)


def test_project_services_run_the_table(compose: dict[str, Any], table: list[Service]) -> None:
    declared = compose["services"]
    assert set(declared) == {service.name for service in table} | set(INFRA_SERVICES)
    for service in table:
        entry = declared[service.name]
        assert entry["command"] == list(service.command), service.name
        environment = {
            key: _plain(str(value)) for key, value in entry.get("environment", {}).items()
        }
        assert environment == service.environment, service.name
        assert entry["image"] == "mlops-platform:latest", service.name
        assert entry["volumes"] == ["mlops-data:/data"], service.name


def test_dependencies_wait_for_health_or_completion(
    compose: dict[str, Any], table: list[Service]
) -> None:
    one_shots = {service.name for service in table if service.one_shot}
    for service in table:
        depends = compose["services"][service.name].get("depends_on", {})
        assert set(depends) == set(service.depends_on), service.name
        for name, rule in depends.items():
            wanted = "service_completed_successfully" if name in one_shots else "service_healthy"
            assert rule["condition"] == wanted, (service.name, name)
    assert compose["services"]["bootstrap"]["restart"] == "no"


def test_every_long_running_service_has_a_healthcheck(
    compose: dict[str, Any], table: list[Service]
) -> None:
    by_name = {service.name: service for service in table}
    for name, entry in compose["services"].items():
        if name in by_name and by_name[name].one_shot:
            assert "healthcheck" not in entry
            continue
        assert entry["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        if name in by_name:
            # The probe the native stack waits on, from inside the container.
            assert entry["healthcheck"]["test"][-1] == by_name[name].health_url(), name


def test_one_image_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    builds = {
        name: entry["build"] for name, entry in compose["services"].items() if "build" in entry
    }
    assert list(builds.values()) == [{"context": ".", "dockerfile": "infra/Dockerfile"}]
    for name in INFRA_SERVICES:
        image = compose["services"][name]["image"]
        tag = image.rpartition(":")[2]
        assert ":" in image and tag != "latest" and re.search(r"\d", tag), f"{name}: {image}"


def test_only_the_api_and_the_uis_are_published_on_localhost(
    compose: dict[str, Any], table: list[Service]
) -> None:
    published: dict[str, list[str]] = {
        name: entry["ports"] for name, entry in compose["services"].items() if "ports" in entry
    }
    assert set(published) == PUBLISHED
    host_ports = [mapping.split(":")[1] for mappings in published.values() for mapping in mappings]
    assert len(host_ports) == len(set(host_ports)), f"ports clash: {host_ports}"
    for name, mappings in published.items():
        assert all(mapping.startswith("127.0.0.1:") for mapping in mappings), name
    for service in table:
        if service.published:
            assert published[service.name] == [f"127.0.0.1:{service.port}:{service.port}"]


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    used = {
        volume.split(":")[0]
        for entry in compose["services"].values()
        for volume in entry.get("volumes", [])
        if not volume.startswith(".")
    }
    assert used == set(compose["volumes"])


def _env_example(commented: bool = False) -> dict[str, str]:
    """The variables .env.example sets (or, `commented`, shows commented out)."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    if commented:
        lines = [line[2:] for line in lines if re.match(r"# [A-Z_]+=", line)]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_secrets_are_required_and_listed_in_env_example() -> None:
    found = INTERPOLATION.findall(COMPOSE_FILE.read_text())
    assert found, "the stack has secrets"
    secrets = {name for name, modifier in found if modifier.startswith(":?")}
    defaulted = {name for name, modifier in found if modifier.startswith(":-")}
    assert secrets | defaulted == {name for name, _ in found}, found
    example = _env_example()
    # Besides the secrets, the one compose variable: the default profile.
    assert example.pop("COMPOSE_PROFILES") == "full"
    assert secrets == set(example)


def test_the_living_settings_default_to_the_settings_defaults() -> None:
    """Each `${MLOPS_...:-default}` is a living setting, its default the setting's own, and
    .env.example shows it (commented out) with that default."""
    found = {
        name: modifier[2:]
        for name, modifier in INTERPOLATION.findall(COMPOSE_FILE.read_text())
        if modifier.startswith(":-")
    }
    assert set(found) == {environment_variable(name) for name in LIVING_SETTINGS}
    defaults = Settings()
    for name in LIVING_SETTINGS:
        default = found[environment_variable(name)]
        parsed = Settings.model_validate({name: default})
        assert getattr(parsed, name) == getattr(defaults, name), name
        assert _env_example(commented=True)[environment_variable(name)] == default, name


def _known_settings() -> set[str]:
    return {
        f"MLOPS_{name.upper()}"
        for name, info in Settings.model_fields.items()
        if info.validation_alias is None
    }


def test_every_mlops_variable_is_a_setting(compose: dict[str, Any]) -> None:
    variables = {
        key for entry in compose["services"].values() for key in entry.get("environment", {})
    }
    variables |= {line.split("=")[0] for line in ENV_EXAMPLE.read_text().splitlines()}
    mlops = {key for key in variables if key.startswith("MLOPS_")}
    assert mlops, "the project services are configured through settings"
    assert mlops <= _known_settings(), mlops - _known_settings()


def test_the_api_environment_is_valid_stack_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in compose["services"]["api"]["environment"].items():
        monkeypatch.setenv(key, INTERPOLATION.sub("secret0", str(value)))
    settings = Settings()
    assert settings.profile == "stack"
    assert settings.tracking_uri == "http://mlflow:5000"
    # The Feast registry as its own role (infra/postgres/init.sql), not as the superuser.
    assert settings.feast_registry_url == "postgresql+psycopg://feast:secret0@postgres:5432/feast"

    from features.store import _config_fields

    registry = _config_fields(settings)["registry"]
    assert registry["registry_type"] == "sql"
    assert registry["path"] == settings.feast_registry_url


def _click_command(root: click.Command, argv: list[str]) -> None:
    """Resolve subcommands, then parse the options as the command would (nothing runs)."""
    command, rest = root, list(argv)
    while isinstance(command, click.Group):
        name, rest = rest[0], rest[1:]
        found = command.get_command(click.Context(command), name)
        assert found is not None, f"no command {name!r} in {argv}"
        command = found
    command.make_context(command.name or "", rest)


def test_every_command_exists_in_the_image(table: list[Service]) -> None:
    mlops_cli = typer.main.get_command(app)
    commands = [list(service.command) for service in table]
    commands += [list(argv) for _, argv in BOOTSTRAP_STEPS]
    for argv in commands:
        assert (VENV_BIN / argv[0]).exists(), f"{argv[0]} is not in the venv"
        if argv[0] == "mlops":
            _click_command(mlops_cli, argv[1:])
        elif argv[0] == "mlflow":
            from mlflow.cli import cli as mlflow_cli

            _click_command(mlflow_cli, argv[1:])
        elif argv[:3] == ["python", "-m", "stack.mlflow_auth"]:
            # It makes MLflow's users, then runs `mlflow server --app-name basic-auth ...`.
            from mlflow.cli import cli as mlflow_cli

            _click_command(mlflow_cli, ["server", "--app-name", "basic-auth", *argv[3:]])
        else:  # prefect (cyclopts) and evidently: their help must name every option used
            words = [word for word in argv[1:] if not word.startswith("-")][:2]
            if argv[0] == "evidently":
                words = words[:1]
            result = subprocess.run(
                [str(VENV_BIN / argv[0]), *words, "--help"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env={"PATH": str(VENV_BIN), "COLUMNS": "200", "NO_COLOR": "1"},
            )
            assert result.returncode == 0, result.stderr
            for option in (word for word in argv if word.startswith("--")):
                assert option in result.stdout, f"{argv[0]} {' '.join(words)}: no {option}"


def test_profiles_and_memory_limits_are_the_tables(
    compose: dict[str, Any], table: list[Service]
) -> None:
    """Every service has the profiles and the mem_limit of the service table (of
    INFRA_SERVICES for the official images), so a profile starts what the table says."""
    wanted = {s.name: (s.profiles, s.memory) for s in table} | INFRA_SERVICES
    assert set(wanted) == set(compose["services"])
    for name, entry in compose["services"].items():
        profiles, memory = wanted[name]
        assert entry["profiles"] == list(profiles), name
        assert set(profiles) <= set(PROFILES) and "full" in profiles, name
        assert entry["mem_limit"] == memory, name
        assert re.fullmatch(r"\d+[mg]", memory), name


def test_each_profile_has_every_service_its_services_depend_on(
    compose: dict[str, Any],
) -> None:
    """Compose refuses a service whose dependency its profiles leave out."""
    started = {
        profile: {n for n, e in compose["services"].items() if profile in e["profiles"]}
        for profile in PROFILES
    }
    assert started["full"] == set(compose["services"])
    assert {"postgres", "redis", "mlflow", "prefect-server", "bootstrap", "api"} == (
        started["core"]
    )
    for profile, names in started.items():
        for name in names:
            needed = set(compose["services"][name].get("depends_on", {}))
            assert needed <= names, (profile, name, needed - names)


def test_the_native_stack_starts_the_profile_of_the_settings(tmp_path: Path) -> None:
    """MLOPS_STACK_PROFILE is `mlops stack up`'s COMPOSE_PROFILES: core starts the table's
    core services only, and status says the others are off."""
    from stack.native import native_services

    core = Settings(home=tmp_path, stack_profile="core")
    assert [s.name for s in native_services(core)] == [
        "mlflow",
        "prefect-server",
        "bootstrap",
        "api",
    ]
    full = {s.name for s in native_services(Settings(home=tmp_path))}
    assert {s.name for s in services(Topology.compose())} <= full


def test_compose_and_native_stacks_run_the_same_commands(
    table: list[Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Natively the same argv, bound to loopback; the same variables, other addresses."""
    monkeypatch.setenv("MLOPS_HOME", "/data")
    native_settings = Settings()  # the defaults: the ports compose uses
    native = services(
        Topology.native(native_settings, admin_token="token", prefect_auth_string="a:b")
    )
    assert [s.name for s in native] == [s.name for s in table]
    for ours, theirs in zip(native, table, strict=True):
        in_container = [word.replace("0.0.0.0", "127.0.0.1") for word in theirs.command]
        assert list(ours.command) == in_container, ours.name
        assert set(ours.environment) == set(theirs.environment), ours.name
        assert ours.depends_on == theirs.depends_on, ours.name
        assert ours.health_url() == theirs.health_url(), ours.name


def test_each_database_is_reached_as_its_own_role(
    compose: dict[str, Any], table: list[Service]
) -> None:
    """The init script makes a role per database from POSTGRES_<DATABASE>_PASSWORD
    (tests/infra/test_postgres_roles.py runs it); compose gives the postgres service each
    password and every client of a database that role's, never the superuser's."""
    postgres = compose["services"]["postgres"]
    assert (
        "./infra/postgres/init.sql:/docker-entrypoint-initdb.d/init.sql:ro" in (postgres["volumes"])
    )
    init = (ROOT / "infra" / "postgres" / "init.sql").read_text()
    for database in DATABASES:
        variable = role_password_variable(database)
        assert f"\\getenv {database}_password {variable}" in init
        assert _plain(postgres["environment"][variable]) == "${" + variable + "}"
    urls = [
        value
        for service in table
        for value in service.environment.values()
        if value.startswith("postgresql")
    ]
    assert urls, "the services reach their databases"
    for url in urls:
        database = url.rpartition("/")[2]
        assert url.split("://")[1].startswith(
            f"{database}:${{{role_password_variable(database)}}}@postgres:5432/"
        ), url
    assert "POSTGRES_PASSWORD" not in str([service.environment for service in table])


def test_redis_gives_the_traffic_service_a_user_that_only_publishes(
    compose: dict[str, Any], table: list[Service]
) -> None:
    """Compose's Redis defines the traffic user with the table's rules, and only the traffic
    service logs in as it (what the rules allow: tests/stack/test_traffic_service.py)."""
    command = [_plain(part) for part in compose["services"]["redis"]["command"]]
    at = command.index("--user")
    user = [TRAFFIC_REDIS_USER, "on", f">${{{TRAFFIC_REDIS_PASSWORD_VAR}}}"]
    rules = list(traffic_redis_rules(Settings().stream_prefix))
    assert command[at + 1 : at + 4 + len(rules)] == user + rules
    logged_in = {
        service.name
        for service in table
        if f"username={TRAFFIC_REDIS_USER}," in str(service.environment)
    }
    assert logged_in == {"traffic"}
    traffic = compose["services"]["traffic"]["environment"]
    assert _plain(traffic["MLOPS_STREAM_REDIS_URL"]) == (
        f"redis:6379,username={TRAFFIC_REDIS_USER},password=${{{TRAFFIC_REDIS_PASSWORD_VAR}}}"
    )
    assert "${REDIS_PASSWORD" not in str(traffic)


def test_docker_compose_config_accepts_the_file() -> None:
    """Where the compose plugin is installed, docker's own parser agrees (no engine needed)."""
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
    ):
        pytest.skip("the docker compose plugin is not installed")
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin"}
    env |= {name: "secret0" for name, _ in INTERPOLATION.findall(COMPOSE_FILE.read_text())}
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _mounts(entry: dict[str, Any]) -> dict[str, str]:
    """Container path -> file of this repository, of a service's bind mounts."""
    found = {}
    for volume in entry.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = source[2:]
    return found


def test_the_native_prometheus_and_alertmanager_use_the_files_compose_mounts(
    compose: dict[str, Any],
) -> None:
    """`mlops stack up` runs Debian's Prometheus and Alertmanager on the same files."""
    from stack import observability

    services = compose["services"]
    prometheus, alertmanager = _mounts(services["prometheus"]), _mounts(services["alertmanager"])
    config = yaml.safe_load((ROOT / prometheus["/etc/prometheus/prometheus.yml"]).read_text())
    assert ROOT / prometheus["/etc/prometheus/prometheus.yml"] == observability.PROMETHEUS_CONFIG
    (rules,) = config["rule_files"]
    assert ROOT / prometheus[rules] == observability.RULES
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in services["alertmanager"]["command"]
    assert ROOT / alertmanager["/etc/alertmanager/alertmanager.yml"] == (
        observability.ALERTMANAGER_CONFIG
    )
    (targets,) = [
        group["targets"]
        for manager in config["alerting"]["alertmanagers"]
        for group in manager["static_configs"]
    ]
    assert targets == [observability.COMPOSE_ALERTMANAGER]
    hooks = [
        hook["url"]
        for receiver in yaml.safe_load(observability.ALERTMANAGER_CONFIG.read_text())["receivers"]
        for hook in receiver["webhook_configs"]
    ]
    assert hooks == [f"http://{observability.COMPOSE_API}/alerts"]


def test_grafana_finds_the_dashboards_where_compose_mounts_them(compose: dict[str, Any]) -> None:
    mounts = _mounts(compose["services"]["grafana"])
    provider = yaml.safe_load(
        (ROOT / "infra/grafana/provisioning/dashboards/dashboards.yml").read_text()
    )
    (entry,) = provider["providers"]
    assert mounts[entry["options"]["path"]] == "infra/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "infra/grafana/provisioning"


# host:port in a URL, a connection string or an option: `http://mlflow:5000`, `@postgres:5432`,
# `redis:6379,password=...`, `tcp://dask-scheduler:8786`.
HOST_PORT = re.compile(r"(?:^|//|@|\[|\s|\")([a-z][a-z0-9-]*):\d+")


def _hosts(value: Any) -> set[str]:
    """Every host:port's host in `value`, a string or any YAML structure of them."""
    if isinstance(value, dict):
        return set().union(*(_hosts(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_hosts(item) for item in value))
    return set(HOST_PORT.findall(str(value))) if isinstance(value, str) else set()


def _flows(compose: dict[str, Any]) -> set[tuple[str, str]]:
    """(client, server) for each service of the stack one calls: its dependencies, the hosts
    of its environment and command, and the targets of the files Prometheus, Alertmanager
    and Grafana read (mounted from infra/)."""
    services = compose["services"]
    flows = set()
    for name, entry in services.items():
        called = set(entry.get("depends_on", {}))
        called |= _hosts(entry.get("environment", {})) | _hosts(entry.get("command", []))
        for source in _mounts(entry).values():
            path = ROOT / source
            files = sorted(path.rglob("*.yml")) if path.is_dir() else [path]
            files = [file for file in files if file.suffix == ".yml"]
            called |= {host for file in files for host in _hosts(yaml.safe_load(file.read_text()))}
        flows |= {(name, server) for server in called & set(services) if server != name}
    return flows


def _peers(compose: dict[str, Any], name: str) -> set[str]:
    """The services that share a network with `name`: the only ones that can reach it."""
    services = compose["services"]
    mine = set(services[name]["networks"])
    return {
        other
        for other, entry in services.items()
        if other != name and mine & set(entry["networks"])
    }


def test_networks_follow_the_table(compose: dict[str, Any], table: list[Service]) -> None:
    assert set(compose["networks"]) == set(NETWORKS)
    internal = {name for name, spec in compose["networks"].items() if (spec or {}).get("internal")}
    assert internal == set(INTERNAL_NETWORKS)
    for name, entry in compose["services"].items():
        assert entry["networks"], f"{name} is on no network of the stack's (compose's default)"
    for service in table:
        assert compose["services"][service.name]["networks"] == list(service.networks)
        if service.published:
            # Docker publishes no port of a container on internal networks only.
            assert set(service.networks) - set(INTERNAL_NETWORKS), service.name


def test_every_flow_of_the_stack_is_on_a_shared_network(compose: dict[str, Any]) -> None:
    flows = _flows(compose)
    # What the configuration says, found: a few flows of each kind.
    assert {
        ("api", "postgres"),
        ("api", "redis"),
        ("api", "mlflow"),
        ("prefect-worker", "dask-scheduler"),
        ("dask-worker", "dask-scheduler"),
        ("prometheus", "api"),
        ("prometheus", "stream-scorer"),
        ("alertmanager", "api"),
        ("grafana", "prometheus"),
        ("mlflow", "postgres"),
        ("bootstrap", "prefect-server"),
    } <= flows
    unreachable = {
        (client, server) for client, server in flows if client not in _peers(compose, server)
    }
    assert not unreachable


def test_the_dask_scheduler_evidently_and_the_data_stores_are_reached_only_by_their_clients(
    compose: dict[str, Any],
) -> None:
    flows = _flows(compose)
    clients = {
        server: {client for client, called in flows if called == server}
        for server in ("dask-scheduler", "postgres", "redis")
    }
    assert _peers(compose, "dask-scheduler") == clients["dask-scheduler"] | {"dask-worker"}
    assert clients["dask-scheduler"] == {"dask-worker", "prefect-worker"}
    # The Evidently UI shares no network: only its port published on 127.0.0.1 reaches it.
    assert _peers(compose, "evidently-ui") == set()
    assert compose["services"]["evidently-ui"]["ports"] == ["127.0.0.1:8001:8001"]
    outsiders = {"dask-scheduler", "dask-worker", "evidently-ui", "prometheus", "grafana"}
    for store in ("postgres", "redis"):
        assert not _peers(compose, store) & (outsiders | {"alertmanager"}), store
