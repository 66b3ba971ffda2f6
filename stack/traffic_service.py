"""The stack's traffic service (`mlops stack traffic`): steady simulated traffic that drifts.

A stack nobody calls shows empty dashboards. This service sends both case studies'
simulated traffic to the API (fraud payments to the payments stream too, in turn:
`MLOPS_STACK_TRAFFIC_FRAUD_TO`) at a low steady rate (`MLOPS_STACK_TRAFFIC_RATE` requests a
second each), in rounds of `round_s` seconds, with `stack.traffic.run_traffic`: each
answered request's label is filed in the pending-label feed, due
`MLOPS_STACK_TRAFFIC_LABEL_DELAY_S` later (the label flow delivers it). After
`MLOPS_STACK_TRAFFIC_DRIFT_AFTER_S` seconds of baseline it switches each model to its
drift scenario (`MLOPS_STACK_TRAFFIC_CHURN_SCENARIO`, `MLOPS_STACK_TRAFFIC_FRAUD_SCENARIO`),
for good: the monitoring flow sees the drift, alerts or retrains.

The switch is decided by round, not by the clock: round k starts k x round_s seconds after
the first (rounds are paced to that), and sends the drift scenario once k x round_s
reaches the delay. Churn customers are new each round (seed MLOPS_SEED + 1 + k); fraud
payments continue the served world round after round (`sources.fraud_world`).

Its /metrics (`mlops_traffic_*`) is its health endpoint. With `MLOPS_STACK_TRAFFIC=false`
it sends nothing and only answers /metrics (compose keeps it up; `mlops stack up` does not
start it).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlops.case_studies import CASE_STUDIES, CHURN, FRAUD
from mlops.settings import Settings
from stack.traffic import TrafficError, TrafficResult, check_scenario, run_traffic

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

logger = logging.getLogger(__name__)

BASELINE = "baseline"
DEFAULT_ROUND_S = 30.0


@dataclass(frozen=True)
class TrafficPlan:
    """What the service sends: each model's rate, the round, when and to what it drifts."""

    rate: float  # requests a second, each model
    round_s: float
    drift_after_s: float
    drift: dict[str, str]  # case study -> its scenario after the switch
    label_delay_s: float
    models: tuple[str, ...] = tuple(CASE_STUDIES)
    concurrency: int = 2
    # Fraud payments to the API's route, to the payments stream, or to each in turn.
    fraud_to: str = "api"

    @classmethod
    def from_settings(cls, settings: Settings, round_s: float = DEFAULT_ROUND_S) -> TrafficPlan:
        return cls(
            rate=settings.stack_traffic_rate,
            round_s=round_s,
            drift_after_s=settings.stack_traffic_drift_after_s,
            drift={
                CHURN.name: settings.stack_traffic_churn_scenario,
                FRAUD.name: settings.stack_traffic_fraud_scenario,
            },
            label_delay_s=settings.stack_traffic_label_delay_s,
            fraud_to=settings.stack_traffic_fraud_to,
        )

    def check(self) -> None:
        """Raises `TrafficError` for a plan that cannot make traffic (an unknown scenario)."""
        if self.rate <= 0 or self.round_s <= 0:
            raise TrafficError("rate and round must be positive")
        for model in self.models:
            check_scenario(model, self.drift[model])

    def scenario(self, model: str, round_number: int) -> str:
        """The scenario of `model` in round `round_number` (0 first)."""
        drifting = round_number * self.round_s >= self.drift_after_s
        return self.drift[model] if drifting else BASELINE

    def destination(self, model: str, round_number: int) -> str:
        """Where `model`'s requests go in round `round_number`: "api", or "stream" (fraud
        payments on the payments stream, decided by the stream scorer). "alternate" sends
        even rounds to the API and odd ones to the stream: one world continued by both."""
        if model != FRAUD.name or self.fraud_to == "api":
            return "api"
        if self.fraud_to == "stream":
            return "stream"
        return "api" if round_number % 2 == 0 else "stream"

    @property
    def drift_round(self) -> int:
        """The first round that sends the drift scenarios."""
        return math.ceil(self.drift_after_s / self.round_s)


@dataclass
class Round:
    """One round: its number, each model's scenario, destination and result (or why it
    sent nothing)."""

    number: int
    scenarios: dict[str, str]
    destinations: dict[str, str] = field(default_factory=dict)
    results: dict[str, TrafficResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        parts = []
        for model, scenario in self.scenarios.items():
            to = self.destinations.get(model, "api")
            scenario = scenario if to == "api" else f"{scenario} to the {to}"
            if model in self.results:
                statuses = self.results[model].statuses
                said = ", ".join(f"{s}: {n}" for s, n in statuses.items())
                parts.append(f"{model} {scenario} ({said})")
            else:
                parts.append(f"{model} {scenario}: {self.errors.get(model, 'nothing sent')}")
        return f"round {self.number}: " + "; ".join(parts)


def _send(
    settings: Settings, plan: TrafficPlan, url: str, model: str, number: int, scenario: str
) -> TrafficResult:
    return run_traffic(
        settings,
        model,
        scenario=scenario,
        rate=plan.rate,
        duration_s=plan.round_s,
        url=url,
        # New customers every round; the fraud world is the served one (MLOPS_SEED).
        seed=settings.seed + 1 + number if model == CHURN.name else None,
        concurrency=plan.concurrency,
        label_delay_days=plan.label_delay_s / 86_400,
        to=plan.destination(model, number),
    )


def traffic_rounds(
    settings: Settings,
    plan: TrafficPlan,
    *,
    url: str,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Round]:
    """Send round after round, each model's at once, until `stop` is set (or the caller
    stops iterating); yields each round when it is done. A model whose traffic cannot be
    planned (no fraud history yet) is skipped for the round, with the reason."""
    plan.check()
    stop = stop or threading.Event()
    started = clock()
    number = 0
    with ThreadPoolExecutor(max_workers=len(plan.models), thread_name_prefix="traffic") as pool:
        while not stop.is_set():
            scenarios = {model: plan.scenario(model, number) for model in plan.models}
            futures = {
                model: pool.submit(_send, settings, plan, url, model, number, scenario)
                for model, scenario in scenarios.items()
            }
            destinations = {model: plan.destination(model, number) for model in plan.models}
            done = Round(number, scenarios, destinations)
            for model, future in futures.items():
                try:
                    done.results[model] = future.result()
                except TrafficError as error:
                    done.errors[model] = str(error)
            yield done
            number += 1
            # Paced: round k starts k x round_s after the first, unless the sending ran late.
            stop.wait(max(0.0, started + number * plan.round_s - clock()))


class TrafficMetrics:
    """The service's /metrics: requests by model, scenario and status; the scenario sent."""

    def __init__(self, enabled: bool) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry: CollectorRegistry = CollectorRegistry()
        self.requests = Counter(
            "mlops_traffic_requests",
            "Simulated requests sent by the traffic service, by destination (api, stream) "
            "and answer status (a payment the stream acknowledged counts as 200).",
            ["model", "scenario", "to", "status"],
            registry=self.registry,
        )
        self.drifting = Gauge(
            "mlops_traffic_drifting",
            "1 once the traffic service sends the model's drift scenario.",
            ["model"],
            registry=self.registry,
        )
        self.enabled = Gauge(
            "mlops_traffic_enabled",
            "1 when the traffic service sends traffic (MLOPS_STACK_TRAFFIC).",
            registry=self.registry,
        )
        self.enabled.set(1 if enabled else 0)

    def record(self, done: Round) -> None:
        for model, scenario in done.scenarios.items():
            self.drifting.labels(model).set(0 if scenario == BASELINE else 1)
            result = done.results.get(model)
            to = done.destinations.get(model, "api")
            for status, count in (result.statuses if result else {}).items():
                self.requests.labels(model, scenario, to, status).inc(count)


def serve_traffic(
    settings: Settings,
    stop: threading.Event,
    *,
    url: str,
    host: str,
    metrics_port: int | None,
    round_s: float = DEFAULT_ROUND_S,
    log: Callable[[str], None] = logger.info,
) -> int:
    """The service: /metrics on host:port, then rounds until `stop` (with
    MLOPS_STACK_TRAFFIC=false, nothing but /metrics). Returns the rounds sent."""
    from prometheus_client import start_http_server

    metrics = TrafficMetrics(settings.stack_traffic)
    if metrics_port is not None:
        start_http_server(metrics_port, addr=host, registry=metrics.registry)
    if not settings.stack_traffic:
        log("traffic is off (MLOPS_STACK_TRAFFIC=false): sending nothing")
        stop.wait()
        return 0
    plan = TrafficPlan.from_settings(settings, round_s)
    log(
        f"sending {plan.rate:g} requests/s per model to {url} in {plan.round_s:g} s rounds "
        f"(fraud: {plan.fraud_to}); "
        f"drift ({', '.join(f'{m}: {s}' for m, s in plan.drift.items())}) from round "
        f"{plan.drift_round} ({plan.drift_after_s:g} s); labels due {plan.label_delay_s:g} s later"
    )
    rounds = 0
    for done in traffic_rounds(settings, plan, url=url, stop=stop):
        metrics.record(done)
        log(done.summary())
        rounds += 1
    return rounds
