"""The stack's services, declared once: docker-compose.yml and `mlops stack` both follow this table.

Each service is the command it runs, its environment, its port and its health URL, rendered
for a `Topology`: where the databases, Redis and the other services are, as seen from the
service. `Topology.compose()` is the docker-compose network (service names as hosts,
secrets as `${VAR}`); `Topology.native(settings, secrets)` is this machine (loopback, the
settings' PostgreSQL and Redis). tests/stack checks docker-compose.yml against the
compose rendering, so the two stacks cannot drift apart.

Importing this module is cheap and has no side effects: it imports no tool.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlops.case_studies import CASE_STUDIES
from mlops.settings import Settings, environment_variable
from stack.mlflow_auth import (
    CONFIG_PATH_VAR,
    READER,
    READER_PASSWORD_VAR,
    SERVICE_COMMAND,
    WRITER,
    WRITER_PASSWORD_VAR,
)

# One database per tool, created by infra/postgres/init.sql in compose and by `mlops stack up`.
DATABASES = ("mlflow", "prefect", "feast", "predictions")


def role_password_variable(database: str) -> str:
    """The compose variable holding the password of `database`'s own role, which
    infra/postgres/init.sql makes (named like the database) and the services log in as."""
    return f"POSTGRES_{database.upper()}_PASSWORD"


# Redis's users in compose: the default one (REDIS_PASSWORD, `requirepass`) for the stores
# and the stream scorer, and `traffic` for the traffic service, a producer only: it may
# XADD to the payment and label streams of the default stream prefix, and nothing else
# (no read, no delete, no other key). Natively the stack uses the settings' Redis as it
# finds it, like PostgreSQL.
TRAFFIC_REDIS_USER = "traffic"
TRAFFIC_REDIS_PASSWORD_VAR = "REDIS_TRAFFIC_PASSWORD"


def traffic_redis_rules(stream_prefix: str) -> tuple[str, ...]:
    """The ACL rules of the traffic user (after `on >password`): its keys, then its commands."""
    return (
        "resetkeys",
        f"~{stream_prefix}:payments:*",
        f"~{stream_prefix}:labels:*",
        "resetchannels",
        "-@all",
        "+xadd",
    )


# The compose networks: a service reaches another only on a network both are on, so each
# holds one group of servers and the services that are their clients (natively everything
# is on loopback). Published ports (the API and the UIs, `Service.published`) are bound to
# 127.0.0.1 on the host. tests/infra/test_compose.py checks every flow the configuration
# uses is allowed, and that the Dask scheduler and the Evidently UI are reachable only so.
BACKEND, DASK, METRICS, EVIDENTLY = "backend", "dask", "metrics", "evidently"
NETWORKS: dict[str, str] = {
    BACKEND: "PostgreSQL, Redis, MLflow and the Prefect server, with their clients",
    DASK: "the Dask scheduler and workers, with their one client, the flows' worker",
    METRICS: "Prometheus, Alertmanager and Grafana, with what Prometheus scrapes",
    EVIDENTLY: "the Evidently UI alone: no service calls it, a user opens its published port",
}
# Networks whose members need nothing outside the stack: no route out (compose `internal`).
INTERNAL_NETWORKS = (DASK,)

# Where the services live in containers: the project image's MLOPS_HOME volume.
CONTAINER_HOME = "/data"

# Hosts MLflow answers to (it refuses others: DNS rebinding). The compose name, then loopback.
MLFLOW_ALLOWED_HOSTS = "mlflow,mlflow:*,localhost,localhost:*,127.0.0.1,127.0.0.1:*"

# What `mlops stack bootstrap` runs when a model has no champion yet: each case study's
# pipeline at the stack's size (the fraud flow at the handbook's full size takes ~10 minutes
# on 2 cores).
BOOTSTRAP_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (name, ("mlops", "pipeline", name, *study.bootstrap_options))
    for name, study in CASE_STUDIES.items()
)


# Compose profiles (`COMPOSE_PROFILES`; natively MLOPS_STACK_PROFILE): `core` is the API
# with its stores, MLflow, and the Prefect server and bootstrap that train its first
# models; `full`, the default, is everything.
PROFILES = ("core", "full")
CORE = ("core", "full")
FULL = ("full",)

# Memory limits (compose's mem_limit): each service's peak resident memory in the native
# stack test, with headroom; the bootstrap and the worker from the pipelines' peaks at the
# stack's size (docs/benchmarks.md, "The native stack").

# The services compose runs from official images, not the project's commands: their
# profiles and memory limits (Prometheus and Alertmanager run natively too,
# `stack.observability`; PostgreSQL and Redis are used where the settings point).
INFRA_SERVICES: dict[str, tuple[tuple[str, ...], str]] = {
    "postgres": (CORE, "512m"),
    "redis": (CORE, "256m"),
    "prometheus": (FULL, "512m"),
    "alertmanager": (FULL, "128m"),
    "grafana": (FULL, "256m"),
}

# Services the others reach by name (in compose; natively on loopback).
SERVICE_HOSTS = ("mlflow", "prefect-server", "dask-scheduler", "api")

# The living stack's settings: its schedules, its traffic, and the world its retraining
# draws from. Set in .env (compose interpolates them, each with the setting's default) or
# in the environment of `mlops stack up`.
LIVING_SETTINGS = (
    "stack_monitor_interval_s",
    "stack_traffic",
    "stack_traffic_rate",
    "stack_traffic_drift_after_s",
    "stack_traffic_churn_scenario",
    "stack_traffic_fraud_scenario",
    "stack_traffic_fraud_to",
    "stack_traffic_label_delay_s",
)
TRAFFIC_PREFIX = "MLOPS_STACK_TRAFFIC"


def environment_value(value: object) -> str:
    """A setting's value as its variable spells it (booleans: true, false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class Service:
    """One process of the stack, as the compose service and the native process both run it."""

    name: str
    command: tuple[str, ...]
    environment: dict[str, str]
    port: int | None = None
    health_path: str | None = None
    depends_on: tuple[str, ...] = ()
    one_shot: bool = False
    published: bool = False  # reachable from the host (API, UIs); the rest stay internal
    networks: tuple[str, ...] = ()  # the compose networks it is on (NETWORKS)
    description: str = ""
    # The boolean setting that turns the service off (`mlops stack up` then does not start
    # it; in compose it runs and idles): None, always on.
    switch: str | None = None
    profiles: tuple[str, ...] = FULL  # the compose profiles that start it (PROFILES)
    memory: str = ""  # compose's mem_limit, e.g. "768m"

    def enabled(self, settings: Settings) -> bool:
        """Whether the settings leave the service on: in MLOPS_STACK_PROFILE, not switched
        off."""
        switched_on = self.switch is None or bool(getattr(settings, self.switch))
        return switched_on and settings.stack_profile in self.profiles

    def health_url(self, host: str = "127.0.0.1") -> str | None:
        """Where the service answers 2xx once ready, from `host`; None without port or path."""
        if self.port is None or self.health_path is None:
            return None
        return f"http://{host}:{self.port}{self.health_path}"

    def url(self, host: str = "127.0.0.1") -> str | None:
        """The service's base URL from `host`; None when it has no port."""
        return None if self.port is None else f"http://{host}:{self.port}"


@dataclass(frozen=True)
class Topology:
    """Where each service is reached from the others, and the secrets they share."""

    bind_host: str  # what services listen on: 0.0.0.0 in a container, loopback natively
    home: str  # MLOPS_HOME of every project service
    postgres_url: str  # SQLAlchemy URL of the server, no database: postgresql+psycopg://u:p@h:port
    redis_url: str  # Feast's Redis connection string: host:port[,db=N][,password=...]
    hosts: dict[str, str]  # service name -> host name the others use
    ports: dict[str, int]
    admin_token: str
    prefect_auth_string: str
    database_prefix: str = ""
    # Database -> "role:password" its clients log in with, instead of postgres_url's user:
    # in compose each database has its own role (infra/postgres/init.sql). Natively the
    # stack uses the settings' server as the settings' user, as it finds it.
    database_credentials: dict[str, str] = field(default_factory=dict)
    # MLflow's basic-auth app (stack.mlflow_auth): its admin, the writing and the reading
    # user's passwords, and the key of its CSRF protection.
    mlflow_admin_password: str = ""
    mlflow_writer_password: str = ""
    mlflow_reader_password: str = ""
    mlflow_secret_key: str = ""
    # The living stack's settings (LIVING_SETTINGS), as the services' environment gets them.
    living: dict[str, str] = field(default_factory=dict)
    # The traffic service's connection to the payments stream: as the `traffic` user in
    # compose (TRAFFIC_REDIS_USER), the settings' stream Redis natively.
    traffic_redis_url: str = ""

    @classmethod
    def compose(cls) -> Topology:
        """The docker-compose network; secrets are the `${VAR}` compose interpolates."""
        return cls(
            bind_host="0.0.0.0",  # in the container; published on 127.0.0.1 only
            home=CONTAINER_HOME,
            # No service uses the superuser (POSTGRES_PASSWORD): each logs in as its
            # database's own role, which can reach no other database.
            postgres_url="postgresql+psycopg://postgres:5432",
            database_credentials={
                name: f"{name}:${{{role_password_variable(name)}}}" for name in DATABASES
            },
            # Redis runs with `requirepass`: Feast's connection string carries the password.
            redis_url="redis:6379,password=${REDIS_PASSWORD}",
            hosts={name: name for name in SERVICE_HOSTS},
            ports=default_ports(),
            admin_token="${MLOPS_ADMIN_TOKEN}",
            prefect_auth_string="${PREFECT_AUTH_STRING}",
            mlflow_admin_password="${MLFLOW_ADMIN_PASSWORD}",
            mlflow_writer_password="${MLFLOW_WRITER_PASSWORD}",
            mlflow_reader_password="${MLFLOW_READER_PASSWORD}",
            mlflow_secret_key="${MLFLOW_SECRET_KEY}",
            # Compose interpolates each from .env, with the setting's default.
            living={
                environment_variable(name): "${" + environment_variable(name) + "}"
                for name in LIVING_SETTINGS
            },
            traffic_redis_url=f"redis:6379,username={TRAFFIC_REDIS_USER},"
            f"password=${{{TRAFFIC_REDIS_PASSWORD_VAR}}}",
        )

    @classmethod
    def native(
        cls,
        settings: Settings,
        *,
        admin_token: str,
        prefect_auth_string: str,
        mlflow_passwords: tuple[str, str, str, str] = ("", "", "", ""),
    ) -> Topology:
        """This machine: loopback, the settings' PostgreSQL and Redis, the settings' ports.
        `mlflow_passwords`: MLflow's admin, writer and reader passwords and its secret key."""
        return cls(
            bind_host="127.0.0.1",
            home=str(settings.home),
            postgres_url=settings.stack_postgres_url.rstrip("/"),
            redis_url=settings.redis_url,
            hosts={name: "127.0.0.1" for name in SERVICE_HOSTS},
            ports=ports_of(settings),
            admin_token=admin_token,
            prefect_auth_string=prefect_auth_string,
            database_prefix=settings.stack_database_prefix,
            mlflow_admin_password=mlflow_passwords[0],
            mlflow_writer_password=mlflow_passwords[1],
            mlflow_reader_password=mlflow_passwords[2],
            mlflow_secret_key=mlflow_passwords[3],
            living={
                environment_variable(name): environment_value(getattr(settings, name))
                for name in LIVING_SETTINGS
            },
            traffic_redis_url=settings.stream_redis_url or settings.redis_url,
        )

    def database_url(self, database: str, driver: str = "psycopg") -> str:
        """The SQLAlchemy URL of one of DATABASES (with the prefix), through `driver`, as
        the database's own role where it has one."""
        scheme, rest = self.postgres_url.split("://", 1)
        credentials = self.database_credentials.get(database)
        if credentials is not None:
            rest = f"{credentials}@{rest.rpartition('@')[2]}"
        return f"{scheme.split('+')[0]}+{driver}://{rest}/{self.database_prefix}{database}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.hosts['mlflow']}:{self.ports['mlflow']}"

    @property
    def prefect_api_url(self) -> str:
        return f"http://{self.hosts['prefect-server']}:{self.ports['prefect-server']}/api"

    @property
    def dask_address(self) -> str:
        return f"tcp://{self.hosts['dask-scheduler']}:{self.ports['dask-scheduler']}"


def ports_of(settings: Settings) -> dict[str, int]:
    """Service name -> the port the settings give it."""
    return {
        "mlflow": settings.stack_mlflow_port,
        "prefect-server": settings.stack_prefect_port,
        "prefect-worker": settings.stack_worker_port,
        "api": settings.api_port,
        "evidently-ui": settings.stack_evidently_port,
        "dask-scheduler": settings.stack_dask_port,
        "dask-http": settings.stack_dask_http_port,
        "dask-worker": settings.stack_dask_worker_port,
        "stream-scorer": settings.stream_metrics_port,
        "traffic": settings.stack_traffic_port,
    }


def default_ports() -> dict[str, int]:
    """The settings' default ports: what compose uses and publishes."""
    defaults = {name: info.default for name, info in Settings.model_fields.items()}
    return {
        "mlflow": defaults["stack_mlflow_port"],
        "prefect-server": defaults["stack_prefect_port"],
        "prefect-worker": defaults["stack_worker_port"],
        "api": defaults["api_port"],
        "evidently-ui": defaults["stack_evidently_port"],
        "dask-scheduler": defaults["stack_dask_port"],
        "dask-http": defaults["stack_dask_http_port"],
        "dask-worker": defaults["stack_dask_worker_port"],
        "stream-scorer": defaults["stream_metrics_port"],
        "traffic": defaults["stack_traffic_port"],
    }


def platform_environment(topology: Topology) -> dict[str, str]:
    """What every `mlops` process of the stack reads: the profile, the stores, the registry
    as its writing user (the API overrides it with the reading one, `mlflow_reader`)."""
    return {
        "MLOPS_HOME": topology.home,
        "MLOPS_PROFILE": "stack",
        "MLOPS_ADMIN_TOKEN": topology.admin_token,
        "MLOPS_ONLINE_STORE": "redis",
        "MLOPS_REDIS_URL": topology.redis_url,
        "MLOPS_FEAST_REGISTRY_URL": topology.database_url("feast"),
        "MLOPS_PREDICTION_LOG_URL": topology.database_url("predictions"),
        "MLFLOW_TRACKING_URI": topology.mlflow_url,
        "MLFLOW_TRACKING_USERNAME": WRITER,
        "MLFLOW_TRACKING_PASSWORD": topology.mlflow_writer_password,
    }


def mlflow_reader(topology: Topology) -> dict[str, str]:
    """MLflow's reading user, for the API: it follows aliases, it cannot move them."""
    return {
        "MLFLOW_TRACKING_USERNAME": READER,
        "MLFLOW_TRACKING_PASSWORD": topology.mlflow_reader_password,
    }


def prefect_client_environment(topology: Topology) -> dict[str, str]:
    """What a process reporting to the Prefect server needs."""
    return {
        "PREFECT_API_URL": topology.prefect_api_url,
        "PREFECT_API_AUTH_STRING": topology.prefect_auth_string,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def client_environment(topology: Topology) -> dict[str, str]:
    """The environment of a user's `mlops` or `prefect` command run against the stack."""
    return {**platform_environment(topology), **prefect_client_environment(topology)}


def services(topology: Topology) -> list[Service]:
    """The stack's project services, in the order they start.

    A declarative table, one `Service` a service and no logic: long because each argv is
    written one word a line, as in docker-compose.yml.
    """
    bind, ports, home = topology.bind_host, topology.ports, topology.home
    platform = platform_environment(topology)
    prefect_client = prefect_client_environment(topology)
    return [
        Service(
            name="mlflow",
            profiles=CORE,
            memory="1g",
            description="MLflow tracking server and registry; runs, metrics, plots, models",
            # Makes the two users, then runs `mlflow server --app-name basic-auth` with these.
            command=(
                *SERVICE_COMMAND,
                "--artifacts-destination",
                f"{home}/mlartifacts",
                "--serve-artifacts",
                "--host",
                bind,
                "--port",
                str(ports["mlflow"]),
                # One worker: the clients are a few pipelines and the API's alias checks.
                "--workers",
                "1",
                "--allowed-hosts",
                MLFLOW_ALLOWED_HOSTS,
            ),
            # The backend store URI holds the database password: environment, not argv.
            environment={
                "MLFLOW_BACKEND_STORE_URI": topology.database_url("mlflow"),
                # Server-side jobs serve GenAI features this platform does not use.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                CONFIG_PATH_VAR: f"{home}/mlflow-auth/basic_auth.ini",
                "MLFLOW_AUTH_ADMIN_PASSWORD": topology.mlflow_admin_password,
                WRITER_PASSWORD_VAR: topology.mlflow_writer_password,
                READER_PASSWORD_VAR: topology.mlflow_reader_password,
                "MLFLOW_FLASK_SERVER_SECRET_KEY": topology.mlflow_secret_key,
            },
            port=ports["mlflow"],
            health_path="/health",
            depends_on=("postgres",),
            published=True,
            networks=(BACKEND,),
        ),
        Service(
            name="prefect-server",
            profiles=CORE,
            memory="512m",
            description="Prefect server and UI: deployments, flow runs, task logs",
            command=(
                "prefect",
                "server",
                "start",
                "--host",
                bind,
                "--port",
                str(ports["prefect-server"]),
            ),
            environment={
                "PREFECT_HOME": f"{home}/prefect",
                "PREFECT_API_DATABASE_CONNECTION_URL": topology.database_url("prefect", "asyncpg"),
                "PREFECT_SERVER_API_AUTH_STRING": topology.prefect_auth_string,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                # The browser reaches the API where the port is published, not at 0.0.0.0.
                "PREFECT_UI_API_URL": f"http://127.0.0.1:{ports['prefect-server']}/api",
            },
            port=ports["prefect-server"],
            health_path="/api/health",
            depends_on=("postgres",),
            published=True,
            networks=(BACKEND,),
        ),
        Service(
            name="dask-scheduler",
            profiles=FULL,
            memory="256m",
            description="Dask scheduler: the cluster of the flows run with MLOPS_TASK_RUNNER=dask",
            command=(
                "dask",
                "scheduler",
                "--host",
                bind,
                "--port",
                str(ports["dask-scheduler"]),
                "--dashboard-address",
                f"{bind}:{ports['dask-http']}",
            ),
            environment={},
            port=ports["dask-http"],
            health_path="/health",
            networks=(DASK,),
        ),
        Service(
            name="dask-worker",
            profiles=FULL,
            memory="2g",
            description="a Dask worker; more with `docker compose up --scale dask-worker=N`",
            # One thread per worker: add workers (processes), not threads (see
            # pipelines.task_runners). 0.0.0.0 is advertised as the container's own address.
            command=(
                "dask",
                "worker",
                "--host",
                bind,
                "--nthreads",
                "1",
                "--dashboard-address",
                f"{bind}:{ports['dask-worker']}",
            ),
            # The scheduler from the environment, so the argv is the same in compose and natively.
            environment={"DASK_SCHEDULER_ADDRESS": topology.dask_address},
            port=ports["dask-worker"],
            health_path="/health",
            depends_on=("dask-scheduler",),
            networks=(DASK,),
        ),
        Service(
            name="prefect-worker",
            profiles=FULL,
            memory="3g",
            description="serves the flows as Prefect deployments and runs them",
            command=("mlops", "flows", "serve"),
            environment={
                **platform,
                **prefect_client,
                # The stack's cluster, used by the flows when MLOPS_TASK_RUNNER=dask.
                "MLOPS_DASK_ADDRESS": topology.dask_address,
                "PREFECT_RUNNER_SERVER_ENABLE": "true",
                "PREFECT_RUNNER_SERVER_HOST": bind,
                "PREFECT_RUNNER_SERVER_PORT": str(ports["prefect-worker"]),
                # Monitoring and label delivery every few minutes, not hourly.
                "MLOPS_MONITOR_INTERVAL_S": topology.living[
                    environment_variable("stack_monitor_interval_s")
                ],
                # Retraining draws fresh data from the world the traffic drifts to.
                "MLOPS_RETRAIN_CHURN_SCENARIO": topology.living[
                    environment_variable("stack_traffic_churn_scenario")
                ],
                "MLOPS_RETRAIN_FRAUD_SCENARIO": topology.living[
                    environment_variable("stack_traffic_fraud_scenario")
                ],
            },
            port=ports["prefect-worker"],
            health_path="/health",
            # After the bootstrap: the schedules start once both models have a champion.
            depends_on=(
                "postgres",
                "redis",
                "mlflow",
                "prefect-server",
                "dask-scheduler",
                "bootstrap",
            ),
            networks=(BACKEND, DASK),
        ),
        Service(
            name="bootstrap",
            profiles=CORE,
            memory="2g",
            description="trains both models once, so the stack serves them on first start",
            command=("mlops", "stack", "bootstrap"),
            environment={**platform, **prefect_client},
            depends_on=("postgres", "redis", "mlflow", "prefect-server"),
            one_shot=True,
            networks=(BACKEND,),
        ),
        Service(
            name="api",
            profiles=CORE,
            memory="768m",
            description="prediction API: /docs, /v1/churn/predict, /v1/fraud/score, /metrics",
            command=("mlops", "serve", "--host", bind, "--port", str(ports["api"])),
            environment={**platform, **mlflow_reader(topology)},
            port=ports["api"],
            health_path="/health/live",
            depends_on=("postgres", "redis", "mlflow", "bootstrap"),
            published=True,
            networks=(BACKEND, METRICS),
        ),
        Service(
            name="stream-scorer",
            profiles=FULL,
            memory="768m",
            description="fraud payments from the Redis stream, each decided once: "
            "decisions stream, prediction log, /metrics (lag, latency)",
            command=(
                "mlops",
                "stream",
                "fraud",
                "--host",
                bind,
                "--metrics-port",
                str(ports["stream-scorer"]),
            ),
            environment={**platform, **mlflow_reader(topology)},
            port=ports["stream-scorer"],
            health_path="/metrics",
            depends_on=("postgres", "redis", "mlflow", "bootstrap"),
            networks=(BACKEND, METRICS),
        ),
        Service(
            name="traffic",
            profiles=FULL,
            memory="512m",
            description="simulated churn and fraud traffic to the API, drifting after "
            "MLOPS_STACK_TRAFFIC_DRIFT_AFTER_S; labels filed, due later; /metrics",
            command=(
                "mlops",
                "stack",
                "traffic",
                "--host",
                bind,
                "--metrics-port",
                str(ports["traffic"]),
            ),
            # The home (the fraud world, the label feeds), the API's address and the payments
            # stream as a producer (TRAFFIC_REDIS_USER): no store's password.
            environment={
                "MLOPS_HOME": home,
                "MLOPS_API_HOST": topology.hosts["api"],
                "MLOPS_API_PORT": str(ports["api"]),
                "MLOPS_STREAM_REDIS_URL": topology.traffic_redis_url,
                **{k: v for k, v in topology.living.items() if k.startswith(TRAFFIC_PREFIX)},
            },
            port=ports["traffic"],
            health_path="/metrics",
            depends_on=("redis", "api"),
            # Where the API's clients reach it.
            networks=(BACKEND,),
            switch="stack_traffic",
        ),
        Service(
            name="evidently-ui",
            profiles=FULL,
            memory="768m",
            description="Evidently UI on the monitoring workspace: drift reports per model",
            command=(
                "evidently",
                "ui",
                "--workspace",
                f"{home}/monitoring/workspace",
                "--host",
                bind,
                "--port",
                str(ports["evidently-ui"]),
            ),
            # No usage reports: the platform reaches nothing beyond its own network.
            environment={"DO_NOT_TRACK": "1"},
            port=ports["evidently-ui"],
            health_path="/api/version",
            published=True,
            networks=(EVIDENTLY,),
        ),
    ]


def service_table(topology: Topology) -> dict[str, Service]:
    """The services by name."""
    return {service.name: service for service in services(topology)}
