"""Prometheus metrics of one API instance, in a registry of its own (`GET /metrics`).

Requests, feature reads and scores are observed as they happen. The state of the
prediction log and the model holders (spool size, drops, model loads) is read when
Prometheus scrapes, by a collector: those classes keep plain counts and know nothing of
Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mlops.prediction_log import PredictionLog
from serving.alert_inbox import AlertInbox
from serving.errors import API_ERROR_TYPES
from serving.model_holder import ModelHolder

# From 100 µs (a feature read from SQLite, an ONNX run) to seconds (a store timing out).
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))


class Metrics:
    """The API's Prometheus metrics, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        # Importing Feast sets PROMETHEUS_MULTIPROC_DIR (feast.metrics), which switches
        # prometheus_client into multi-process mode: values live in mmap files shared by
        # metric name across every registry of the process, so two apps (or a test after
        # another) would count each other's requests. This API is one process with a
        # registry per app: keep the values in memory.
        values.ValueClass = values.MutexValue
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlops_http_requests",
            "HTTP requests answered, by endpoint (route template), status and model version.",
            ["endpoint", "status", "model_version"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "mlops_http_request_duration_seconds",
            "Time from receiving a request to the end of its response.",
            ["endpoint", "status", "model_version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "mlops_http_errors",
            "Error responses by error type (the 'error' field of the body).",
            ["error"],
            registry=self.registry,
        )
        # Every error type at 0 from the start: a rate over a counter that appears at its
        # first increment misses that increment, and an alert on it has nothing to read.
        for error in API_ERROR_TYPES:
            self.errors.labels(error)
        self.feature_read_seconds = Histogram(
            "mlops_feature_read_duration_seconds",
            "Time of one online feature read, by model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.scores = Histogram(
            "mlops_prediction_score",
            "Scores served, by model: the live distribution to compare with training.",
            ["model"],
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        self.alerts = AlertInbox(
            Counter(
                "mlops_alerts_received",
                "Alerts Alertmanager notified the API of (POST /alerts), by name and status.",
                ["alertname", "status"],
                registry=self.registry,
            )
        )
        self._state: _ServingState | None = None
        # Label lookups take a lock and build keys; a request's children are found here.
        self._request_children: dict[tuple[str, int, str | None], tuple[Any, Any]] = {}

    def observe_request(
        self, endpoint: str, status: int, model_version: str | None, seconds: float
    ) -> None:
        """Count one answered request and its duration under its labels."""
        key = (endpoint, status, model_version)
        children = self._request_children.get(key)
        if children is None:
            labels = (endpoint, str(status), model_version or "")
            children = self.requests.labels(*labels), self.request_seconds.labels(*labels)
            self._request_children[key] = children
        count, duration = children
        count.inc()
        duration.observe(seconds)

    def watch(self, log: PredictionLog, holders: Iterable[ModelHolder]) -> None:
        """Report the log's and the holders' state at each scrape (replaces earlier ones)."""
        self.unwatch()
        self._state = _ServingState(log, list(holders))
        self.registry.register(self._state)

    def unwatch(self) -> None:
        """Stop reporting the log's and the holders' state (no-op when nothing is watched)."""
        if self._state is not None:
            self.registry.unregister(self._state)
            self._state = None

    def exposition(self) -> bytes:
        """Every metric of this registry in Prometheus's text format, as a scrape reads it."""
        return generate_latest(self.registry)


class _ServingState(Collector):
    def __init__(self, log: PredictionLog, holders: list[ModelHolder]) -> None:
        self._log = log
        self._holders = holders

    def collect(self) -> Iterator[Metric]:
        log = self._log
        yield GaugeMetricFamily(
            "mlops_prediction_log_spool_bytes",
            "Bytes of predictions spooled on disk, not yet shipped to the log database.",
            value=log.spool.size,
        )
        yield GaugeMetricFamily(
            "mlops_prediction_log_persisting",
            "1 when predictions can be spooled; 0 when the spool is full or failing (503s).",
            value=1 if log.persisting else 0,
        )
        written = CounterMetricFamily(
            "mlops_prediction_log_written", "Predictions committed to the log database."
        )
        written.add_metric([], log.written)
        yield written
        failures = CounterMetricFamily(
            "mlops_prediction_log_ship_failures",
            "Attempts to ship the spool that failed on the log database (retried).",
        )
        failures.add_metric([], log.ship_failures)
        yield failures
        dropped = CounterMetricFamily(
            "mlops_prediction_log_dropped",
            "Predictions not logged: spool_full or spool_error (refused, answered 503), "
            "rejected (the database refused the record; kept in the spool's rejected.jsonl).",
            labels=["reason"],
        )
        for reason, count in log.dropped.items():
            dropped.add_metric([reason], count)
        yield dropped
        loads = CounterMetricFamily(
            "mlops_model_loads",
            "Model versions loaded into serving, or rejected (failed to load or parity).",
            labels=["model", "outcome"],
        )
        failures = CounterMetricFamily(
            "mlops_model_load_failures",
            "Failures to load a model version or to read its alias, by the error's type.",
            labels=["model", "error"],
        )
        matches = GaugeMetricFamily(
            "mlops_model_matches_alias",
            "1 when the served version is the one the alias points at; 0 when none is "
            "loaded or the alias moved to a version that failed to load.",
            labels=["model", "alias"],
        )
        created = GaugeMetricFamily(
            "mlops_model_version_created_timestamp_seconds",
            "When the registry created the version served (Unix time): the champion's age.",
            labels=["model", "version"],
        )
        for holder in self._holders:
            served = holder.served_bundle
            if served is not None and served.created_at is not None:
                created.add_metric([holder.name, served.version], served.created_at)
            for outcome, count in holder.loads.items():
                loads.add_metric([holder.name, outcome], count)
            for error, count in sorted(holder.failures.items()):
                failures.add_metric([holder.name, error], count)
            matches.add_metric([holder.name, holder.alias], float(holder.matches_alias))
        yield loads
        yield failures
        yield matches
        yield created
