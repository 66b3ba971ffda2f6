"""One typed settings object, read from the environment (prefix ``MLOPS_``).

Every package reads its configuration from here. Nothing is created on disk and
no tool is configured when this module is imported: ``Settings.prepare()`` does
that, and commands call it when they start.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mlops.case_studies import CASE_STUDIES, CaseStudyName

# Good enough on a laptop; any other profile must set its own (see `_no_default_secret_off_local`).
DEFAULT_ADMIN_TOKEN = "local-admin-token"
# How .env.example and infra/k8s/base/secrets.env.example spell the values to replace: a
# secret still holding one was not set.
PLACEHOLDER_PREFIXES = ("change-me", "changeme", "replace-with")


def weak_secret(value: str) -> str | None:
    """Why `value` is no secret (empty, the built-in default, a placeholder), or None."""
    if not value.strip():
        return "empty"
    if value == DEFAULT_ADMIN_TOKEN:
        return "the default"
    if value.strip().lower().startswith(PLACEHOLDER_PREFIXES):
        return "a placeholder (change-me..., replace-with...)"
    return None


class Settings(BaseSettings):
    """Platform configuration. Defaults run everything embedded under ``MLOPS_HOME``."""

    model_config = SettingsConfigDict(
        env_prefix="MLOPS_", extra="forbid", frozen=True, populate_by_name=True
    )

    home: Path = Field(
        default=Path("var"), description="Folder holding all run state (data, stores, models)."
    )
    profile: Literal["local", "stack"] = Field(
        default="local", description="'local' runs embedded; 'stack' expects the services."
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias="MLFLOW_TRACKING_URI",
        description="MLflow tracking URI; default sqlite:///<home>/mlflow.db.",
    )
    online_store: Literal["sqlite", "redis"] = Field(
        default="sqlite", description="Feast online store: embedded SQLite or Redis."
    )
    redis_url: str = Field(
        default="127.0.0.1:6379", description="Redis connection string for the Feast online store."
    )
    feast_registry_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of a Feast SQL registry; default a file under <home>/feast.",
    )
    churn_model_name: str = Field(
        default="churn", description="Registered model name of the churn case study."
    )
    fraud_model_name: str = Field(
        default="fraud", description="Registered model name of the fraud case study."
    )
    fraud_cost_missed_fraud: float = Field(
        default=100.0,
        ge=0,
        description="Cost of a fraud the model lets through (about a fraud's mean amount).",
    )
    fraud_cost_false_alarm: float = Field(
        default=5.0,
        ge=0,
        description="Cost of alerting on a genuine transaction (investigation, a blocked card).",
    )
    fraud_search_trials: int = Field(
        default=20, ge=1, description="Most Optuna trials of the fraud model's search."
    )
    fraud_search_timeout_s: float = Field(
        default=150.0, gt=0, description="Wall-clock budget of the fraud model's search."
    )
    seed: int = Field(default=42, description="Seed for simulators, splits and models.")
    parity_tolerance: float = Field(
        default=1e-4, description="Largest allowed |p_onnx - p_native| on the test set."
    )
    served_models: Annotated[list[CaseStudyName], NoDecode] = Field(
        default=list(CASE_STUDIES),
        description="Models the API serves (comma-separated); readiness waits for each.",
    )
    api_host: str = Field(default="127.0.0.1", description="Address the prediction API binds.")
    api_port: int = Field(default=8000, description="Port the prediction API binds.")
    admin_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="When set, /admin/*, /metrics and /alerts answer on this port only (same "
        "host, same process) and the API port answers 404 to them; unset, one port serves all.",
    )
    model_refresh_s: float = Field(
        default=30.0,
        ge=0,
        description="How often serving checks the champion alias for a new version (0: never).",
    )
    feature_timeout_s: float = Field(
        default=2.0, gt=0, description="Timeout for one online feature read at serving time."
    )

    prediction_log_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the prediction log; default sqlite:///<home>/predictions.db.",
    )
    prediction_log_flush_s: float = Field(
        default=1.0,
        gt=0,
        description="Longest a spooled prediction waits before it is shipped to the log database.",
    )
    prediction_log_spool_dir: Path | None = Field(
        default=None,
        description="Folder of the prediction log's spool; default <home>/spool/predictions.",
    )
    prediction_log_spool_max_mb: float = Field(
        default=256.0,
        gt=0,
        description="Most MB the spool holds; beyond, predictions are refused (503), not lost.",
    )
    prediction_log_fsync: bool = Field(
        default=False,
        description="fsync each spooled prediction: it then survives a machine crash too.",
    )
    access_log_flush_s: float = Field(
        default=0.5,
        ge=0,
        description="Longest an access log line waits to be logged in a batch (0: one by one).",
    )
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1, description="Largest request body the API reads (413 beyond)."
    )
    max_concurrent_requests: int = Field(
        default=32,
        ge=1,
        description="Requests in progress at most; more are refused with 429, not queued.",
    )
    max_queue_ms: float = Field(
        default=100.0,
        gt=0,
        description="Longest the event loop may be behind before new requests get 429.",
    )
    body_read_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest a request body may take to arrive (408 beyond)."
    )
    header_read_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Longest a connection may take to send a request's headers (closed beyond).",
    )
    admin_token: SecretStr = Field(
        default=SecretStr(DEFAULT_ADMIN_TOKEN),
        description="Bearer token of the /admin endpoints; "
        "an empty, default or change-me value is refused off 'local'.",
    )

    stack_postgres_url: str = Field(
        default="postgresql+psycopg://postgres@127.0.0.1:5432",
        description="PostgreSQL server (no database) where `mlops stack` keeps its databases.",
    )
    stack_database_prefix: str = Field(
        default="",
        pattern=r"^[a-z0-9_]*$",
        description="Prefix of the native stack's databases (mlflow, prefect, feast, predictions).",
    )
    stack_mlflow_port: int = Field(default=5000, description="Port of the stack's MLflow server.")
    stack_prefect_port: int = Field(default=4200, description="Port of the stack's Prefect server.")
    stack_worker_port: int = Field(
        default=8080, description="Port of the stack's Prefect worker health endpoint."
    )
    stack_evidently_port: int = Field(default=8001, description="Port of the stack's Evidently UI.")
    mlflow_ui_url: str = Field(
        default="http://127.0.0.1:5000",
        description="MLflow UI the walkthrough pages link runs to (the stack's MLflow server).",
    )
    evidently_ui_url: str = Field(
        default="http://127.0.0.1:8001",
        description="Evidently UI the walkthrough pages link to (`mlops ui monitoring`).",
    )
    grafana_url: str = Field(
        default="http://127.0.0.1:3000",
        description="Grafana the walkthrough pages link latency and drift panels to.",
    )
    stack_dask_port: int = Field(default=8786, description="Port of the stack's Dask scheduler.")
    stack_dask_http_port: int = Field(
        default=8787, description="Port of the stack's Dask scheduler's HTTP (health) endpoint."
    )
    stack_dask_worker_port: int = Field(
        default=8788, description="Port of the stack's Dask worker's HTTP (health) endpoint."
    )
    stack_prometheus_port: int = Field(default=9090, description="Port of the stack's Prometheus.")
    stack_alertmanager_port: int = Field(
        default=9093, description="Port of the stack's Alertmanager."
    )
    stack_scrape_interval_s: float = Field(
        default=15.0,
        gt=0,
        description="How often the native stack's Prometheus scrapes the API and evaluates "
        "the alert rules (compose: infra/prometheus/prometheus.yml, 15 s).",
    )
    stack_profile: Literal["core", "full"] = Field(
        default="full",
        description="What `mlops stack up` starts, as compose's profiles: core (PostgreSQL, "
        "Redis, MLflow, Prefect, the bootstrap, the API) or full (everything).",
    )
    # The stack as a living system: its schedules and its traffic service.
    stack_monitor_interval_s: float = Field(
        default=180.0,
        gt=0,
        description="How often the stack's monitoring and label deployments run (its "
        "worker's MLOPS_MONITOR_INTERVAL_S): minutes, so a new stack shows checks soon.",
    )
    stack_traffic: bool = Field(
        default=True,
        description="The stack's traffic service sends simulated churn and fraud traffic "
        "(false: natively it is not started; in compose it runs and sends nothing).",
    )
    stack_traffic_port: int = Field(
        default=8003, description="Port of the traffic service's /metrics (its health)."
    )
    stack_traffic_rate: float = Field(
        default=2.0, gt=0, description="Requests a second the traffic service sends each model."
    )
    stack_traffic_drift_after_s: float = Field(
        default=180.0,
        ge=0,
        description="Seconds of baseline traffic before it switches to the drift scenarios.",
    )
    stack_traffic_churn_scenario: str = Field(
        default="price_rise",
        description="The churn simulator's scenario after the switch (the stack's churn "
        "retraining draws fresh data from it too).",
    )
    stack_traffic_fraud_scenario: str = Field(
        default="spending_shift",
        description="The fraud simulator's scenario after the switch (the stack's fraud "
        "retraining draws fresh data from it too).",
    )
    stack_traffic_fraud_to: Literal["api", "stream", "alternate"] = Field(
        default="alternate",
        description="Where the traffic service sends fraud payments: the API's route, the "
        "payments stream (the stream scorer decides them), or each in turn, a round at a time.",
    )
    stack_traffic_label_delay_s: float = Field(
        default=120.0,
        ge=0,
        description="Seconds until a request's label is due: real time for churn, the "
        "payments' simulated time for fraud.",
    )

    # The payments stream (Redis Streams) and its scorer, `mlops stream fraud`.
    stream_redis_url: str | None = Field(
        default=None,
        description="Redis of the payments stream (host:port[,db=N]); default MLOPS_REDIS_URL.",
    )
    stream_prefix: str = Field(
        default="fraud",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Prefix of the stream keys: <prefix>:payments:<p>, <prefix>:decisions.",
    )
    stream_partitions: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Payment streams, by card: a card's payments all go to one, in order.",
    )
    stream_batch: int = Field(
        default=256,
        ge=1,
        le=10_000,
        description="Most payments the scorer reads, scores and applies at once.",
    )
    stream_block_ms: int = Field(
        default=200,
        ge=1,
        description="How long the scorer's read waits for new payments before it looks again.",
    )
    stream_claim_idle_ms: int = Field(
        default=30_000,
        ge=0,
        description="Pending payments idle this long are claimed from a consumer that died.",
    )
    stream_metrics_port: int = Field(
        default=8002, description="Port of the stream scorer's Prometheus /metrics."
    )

    # Scaling out: where the flows' tasks, the fraud window features and XGBoost run.
    task_runner: Literal["local", "dask"] = Field(
        default="local",
        description="'local' runs a flow's tasks in its process; 'dask' on a Dask cluster.",
    )
    dask_address: str = Field(
        default="",
        description="Dask scheduler (tcp://scheduler:8786); empty: a LocalCluster for the run.",
    )
    dask_workers: int = Field(
        default=2, ge=1, description="Workers of the LocalCluster started when no address is set."
    )
    dask_memory_limit: str | None = Field(
        default=None,
        description="Memory limit per LocalCluster worker (e.g. '6GB'); default Dask's share.",
    )

    # Monitoring and continuous training: the declared thresholds of monitoring.decisions,
    # the promotion gate of monitoring.challenger_test and the online experiments of serving.
    monitor_interval_s: float = Field(
        default=3600.0,
        gt=0,
        description="How often each model's monitoring and label deployments run "
        "(the stack's: MLOPS_STACK_MONITOR_INTERVAL_S).",
    )
    monitor_window_hours: float | None = Field(
        default=None,
        gt=0,
        description="Hours of the prediction log a check reads; default: since the last check.",
    )
    monitor_min_rows: int = Field(
        default=100, ge=1, description="Fewest predictions in a window worth checking."
    )
    label_source: Literal["feed", "stream"] = Field(
        default="feed",
        description="Where delayed labels wait until due: feed (CSV files under "
        "MLOPS_HOME/labels/feed) or stream (Redis stream <stream_prefix>:labels:<model>).",
    )
    monitor_label_window_days: float = Field(
        default=60.0,
        gt=0,
        description="Days of labelled predictions the quality check and the challenger test read.",
    )
    monitor_min_labelled_rows: int = Field(
        default=200,
        ge=30,
        description="Fewest labelled predictions for a quality verdict or a promotion.",
    )
    monitor_drift_share_alert: float = Field(
        default=0.1, gt=0, le=1, description="Share of drifted features that raises an alert."
    )
    monitor_drift_share_retrain: float = Field(
        default=0.5, gt=0, le=1, description="Share of drifted features that retrains."
    )
    monitor_prediction_drift_p_value: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="The score drifted when its K-S p-value is below this (windows <= 1,000).",
    )
    monitor_prediction_drift_distance: float = Field(
        default=0.1,
        gt=0,
        description="The score drifted when its normed Wasserstein distance is above this.",
    )
    monitor_max_quality_drop: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="Largest drop of the primary metric on labelled rows below the test metric.",
    )
    retrain_churn_customers: int = Field(
        default=5000, ge=200, description="Customers the churn retraining simulates."
    )
    retrain_churn_scenario: str = Field(
        default="baseline",
        description="The simulated world churn retraining draws fresh data from (a scenario).",
    )
    retrain_fraud_scenario: str = Field(
        default="baseline",
        description="The simulated world fraud retraining draws fresh data from (a scenario).",
    )
    promotion_latency_budget_ms: float = Field(
        default=5.0,
        gt=0,
        description="Largest single-row ONNX p99 (ms) a challenger may have to be promoted.",
    )
    promotion_min_gain: float = Field(
        default=0.0,
        ge=0,
        description="How much a challenger must beat the champion on labelled rows by.",
    )
    challenger_mode: Literal["off", "shadow", "canary"] = Field(
        default="off",
        description="Serve the challenger too: off, shadow (scored, not answered), canary.",
    )
    canary_share: float = Field(
        default=0.1, ge=0, le=1, description="Share of entities the canary answers (0-1)."
    )

    @model_validator(mode="after")
    def _no_default_secret_off_local(self) -> Settings:
        if self.profile == "local":
            return self
        problem = weak_secret(self.admin_token.get_secret_value())
        if problem is not None:
            raise ValueError(
                f"MLOPS_ADMIN_TOKEN is {problem}, which only profile 'local' accepts; "
                f"set it to a secret of your own for profile '{self.profile}'"
            )
        return self

    @model_validator(mode="after")
    def _admin_port_of_its_own(self) -> Settings:
        if self.admin_port is not None and self.admin_port == self.api_port:
            raise ValueError(
                f"MLOPS_ADMIN_PORT is MLOPS_API_PORT ({self.api_port}): the admin routes need "
                "a port of their own (or leave MLOPS_ADMIN_PORT unset for one port)"
            )
        return self

    @model_validator(mode="after")
    def _no_unknown_variables(self) -> Settings:
        # pydantic-settings ignores unknown variables; a typo would fall back silently.
        known = {
            f"MLOPS_{name.upper()}"
            for name, field in type(self).model_fields.items()
            if field.validation_alias is None
        }
        unknown = sorted(k for k in os.environ if k.startswith("MLOPS_") and k not in known)
        if unknown:
            # Compared without the prefix, which every name shares.
            names = {k.removeprefix("MLOPS_"): k for k in known}
            guesses = [
                difflib.get_close_matches(k.removeprefix("MLOPS_"), names, n=1) for k in unknown
            ]
            named = ", ".join(
                f"{k} (did you mean {names[guess[0]]}?)" if guess else k
                for k, guess in zip(unknown, guesses, strict=True)
            )
            raise ValueError(
                f"unknown setting(s) {named}; the known ones: docs/settings.md, "
                "`mlops config --markdown`"
            )
        return self

    @field_validator("served_models", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    # Paths below are derived, never configured separately, so they cannot disagree.
    @property
    def raw_dir(self) -> Path:
        return self.home / "raw"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def features_dir(self) -> Path:
        """Offline feature parquet files; also the Feast repo path (sources are relative)."""
        return self.home / "features"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def report_pages_dir(self) -> Path:
        """Case-study walkthrough pages built by `mlops report`, served under /reports/."""
        return self.reports_dir / "pages"

    @property
    def models_dir(self) -> Path:
        """Local cache of exported ONNX models downloaded from the registry."""
        return self.home / "models"

    @property
    def serving_bench_file(self) -> Path:
        """The figures of the last `mlops bench serving` on this home (`mlops report` reads
        them)."""
        return self.home / "bench" / "serving.json"

    @property
    def monitoring_dir(self) -> Path:
        """Monitoring state: the Evidently workspace, HTML reports, the latest results."""
        return self.home / "monitoring"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @cached_property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def prediction_log_uri(self) -> str:
        return self.prediction_log_url or f"sqlite:///{self.home / 'predictions.db'}"

    @property
    def prediction_spool_dir(self) -> Path:
        """Where the API spools each prediction before answering (`mlops.prediction_log`)."""
        return self.prediction_log_spool_dir or self.home / "spool" / "predictions"

    @property
    def artifact_root(self) -> str:
        """Where experiments store artifacts when the tracking URI is a local database."""
        return (self.home / "mlartifacts").as_uri()

    def prepare(self) -> Settings:
        """Create the run-state folders and point the tools at them. Idempotent."""
        for folder in (
            self.raw_dir,
            self.quarantine_dir,
            self.features_dir,
            self.feast_dir,
            self.reports_dir,
            self.models_dir,
            self.prefect_home,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("PREFECT_HOME", str(self.prefect_home))
        # No telemetry from a local run (and no failed lookups on closed networks): neither
        # the server's nor the client's, which also printed a first-run notice about it.
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("DO_NOT_TRACK", "1")
        # Progress bars for two small files only clutter the logs.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # Models are logged with their environment given (`training.train`), so MLflow need
        # not look for a uv project in the working directory (and say so on every model).
        os.environ.setdefault("MLFLOW_UV_AUTO_DETECT", "false")
        return self


class SettingsError(ValueError):
    """The environment holds a setting that cannot be used; the message is one line that
    names the variable and the problem."""


def environment_variable(name: str) -> str:
    """The variable a field is read from: MLOPS_<NAME>, or the tool's own (MLFLOW_...)."""
    alias = Settings.model_fields[name].validation_alias
    return alias if isinstance(alias, str) else f"MLOPS_{name.upper()}"


def describe_error(error: ValidationError, environ: Mapping[str, str] | None = None) -> str:
    """One line for a settings `ValidationError`: each variable, its value, the problem.

    Secret values are not repeated; a whole-object check (an unknown variable, a default
    secret off 'local') already names its variables in its message.
    """
    environ = os.environ if environ is None else environ
    by_upper = {key.upper(): value for key, value in environ.items()}
    problems = []
    for item in error.errors():
        context = item.get("ctx") or {}
        message = str(context["error"]) if "error" in context else item["msg"]
        field = item["loc"][0] if item["loc"] else None
        if not isinstance(field, str) or field not in Settings.model_fields:
            problems.append(message)
            continue
        variable = environment_variable(field)
        value = by_upper.get(variable)
        secret = Settings.model_fields[field].annotation is SecretStr
        shown = "" if value is None or secret else f"={value!r}"
        problems.append(f"{variable}{shown}: {message[:1].lower()}{message[1:]}")
    return "; ".join(dict.fromkeys(problems))


def get_settings() -> Settings:
    """Read the settings from the current environment (no caching: tests change it).

    Raises `SettingsError`, whose message is one line, when a variable cannot be used.
    """
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(describe_error(error)) from None
