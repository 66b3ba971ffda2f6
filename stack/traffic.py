"""Simulated traffic: real HTTP requests to the running API, and their labels for later.

`run_traffic` draws requests from the case study's simulator, with or without a drift
scenario, sends them to the API at a steady rate with bounded concurrency, counts the
answers by status, and files each answered request's ground truth in the pending-label
feed (`monitoring.labels`) with the time it becomes due: about a billing cycle after a
churn prediction, about a week after a payment. Delivering them is the label flow's job
(`pipelines.label_flow`).

Churn requests carry the customer's raw fields, not an id. Scored by id, a customer's
features come from the online store, which holds what the pipeline published: whatever
the scenario, the logged features would be the training data's. Raw fields are scored
through the same transforms as training, so a scenario (a price rise: every bill 15%
higher) shows in the logged features, as it would once a fresh feature pipeline ran. The
customers are new (seed MLOPS_SEED + 1 by default, the pipeline used MLOPS_SEED).

Fraud requests continue the served history: the simulator is rerun on the same cards and
terminals (same seed, same sizes, from the history's first day) past the last payment the
pipeline published online, or the last one earlier traffic sent, whichever is later, and
transaction ids follow the history's. A scenario (`spending_shift`, `new_fraud_pattern`)
changes those later payments only. Payment times are the simulated ones (in the past of
the server's clock, as the API requires), so fraud labels fall due in simulated time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from features.churn_schema import ID_COLUMN, LABEL_COLUMN
from features.fraud_schema import (
    CUSTOMER_ID,
    TERMINAL_ID,
    TRANSACTION_ID,
    TX_AMOUNT,
    TX_DATETIME,
    TX_FRAUD,
)
from mlops import progress
from mlops.case_studies import CHURN, FRAUD, CaseStudy, case_study
from mlops.settings import Settings
from monitoring import labels as label_feed
from serving.schemas import ChurnCustomer
from sources import churn_simulator, fraud_simulator, fraud_world

_INTEGER_FIELDS = ("SeniorCitizen", "tenure")
_MONEY_FIELDS = ("MonthlyCharges", "TotalCharges")


class TrafficError(ValueError):
    """Traffic that cannot be planned: an unknown scenario, no fraud history to continue."""


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One request to send, and the truth the simulator knows about it."""

    path: str
    body: dict[str, Any]
    request_id: str
    entity_id: str
    label: int
    # When it happens in the simulated world; None: when it is sent (churn).
    event_time: datetime | None = None
    terminal_id: int | None = None


@dataclass
class TrafficResult:
    """What a traffic run sent, how the API answered (count by status) and the labels filed."""

    model: str
    scenario: str
    run_id: str
    url: str
    planned: int
    seconds: float
    statuses: dict[str, int]
    labels_filed: int
    feed: str | None
    label_delay_days: float
    first_event: str | None = None
    last_event: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> int:
        return self.statuses.get("200", 0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "succeeded": self.succeeded}


def check_scenario(model: str, scenario: str) -> None:
    """Raises `TrafficError` unless `scenario` is one of the case study's simulator's."""
    known = churn_simulator.SCENARIOS if model == CHURN.name else fraud_simulator.SCENARIOS
    if scenario not in known:
        raise TrafficError(f"unknown {model} scenario {scenario!r}; known: {', '.join(known)}")


def churn_plan(count: int, scenario: str, seed: int, run_id: str) -> list[PlannedRequest]:
    """`count` new customers, scored by their raw fields, labelled by the simulator."""
    check_scenario(CHURN.name, scenario)
    frame = churn_simulator.simulate_customers(count, seed=seed, scenario=scenario)
    fields = list(ChurnCustomer.model_fields)
    plan = []
    for i, row in enumerate(frame.to_dict("records")):
        customer: dict[str, Any] = {name: row[name] for name in fields}
        for name in _INTEGER_FIELDS:
            customer[name] = int(customer[name])
        for name in _MONEY_FIELDS:
            text = str(customer[name]).strip()
            customer[name] = float(text) if text else None
        plan.append(
            PlannedRequest(
                path=CHURN.score_route,
                body={"customer": customer},
                request_id=f"{CHURN.name}-{run_id}-{i:06d}",
                entity_id=str(row[ID_COLUMN]),
                label=int(row[LABEL_COLUMN] == "Yes"),
            )
        )
    return plan


def fraud_plan(payments: pd.DataFrame, run_id: str) -> list[PlannedRequest]:
    """One scoring request per payment, labelled with the simulator's TX_FRAUD."""
    plan = []
    for i, row in enumerate(payments.to_dict("records")):
        stamp: pd.Timestamp = row[TX_DATETIME]
        plan.append(
            PlannedRequest(
                path=FRAUD.score_route,
                body={
                    "transaction_id": int(row[TRANSACTION_ID]),
                    "customer_id": int(row[CUSTOMER_ID]),
                    "terminal_id": int(row[TERMINAL_ID]),
                    "amount": float(row[TX_AMOUNT]),
                    "tx_datetime": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
                request_id=f"{FRAUD.name}-{run_id}-{i:06d}",
                entity_id=str(int(row[TRANSACTION_ID])),
                label=int(row[TX_FRAUD]),
                event_time=stamp.to_pydatetime(),
                terminal_id=int(row[TERMINAL_ID]),
            )
        )
    return plan


@dataclass(frozen=True, slots=True)
class Outcome:
    """A request's answer: the HTTP status, or the name of the error that prevented one."""

    status: str
    sent_at: datetime


async def send(
    url: str,
    plan: list[PlannedRequest],
    rate: float,
    concurrency: int,
    timeout_s: float,
    on_answer: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """POST every planned request, the i-th at i / rate seconds, at most `concurrency` at once.

    A request that fails without an answer counts under its error's name (ConnectError,
    ReadTimeout ...). Each request is bounded by `timeout_s`, so the whole run ends within
    len(plan) / rate + timeout_s seconds, whatever the server does. `on_answer` is called
    with each outcome as it comes.
    """
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as client:
        start = loop.time()

        async def one(i: int, request: PlannedRequest) -> Outcome:
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            async with gate:
                sent_at = datetime.now(UTC)
                try:
                    headers = {"X-Request-ID": request.request_id}
                    response = await client.post(request.path, json=request.body, headers=headers)
                    outcome = Outcome(str(response.status_code), sent_at)
                except httpx.HTTPError as error:
                    outcome = Outcome(type(error).__name__, sent_at)
            if on_answer is not None:
                on_answer(outcome)
            return outcome

        return await asyncio.gather(*(one(i, r) for i, r in enumerate(plan)))


def _feed_rows(
    plan: list[PlannedRequest], outcomes: list[Outcome], delay: timedelta
) -> pd.DataFrame:
    """The pending labels of the requests the API answered (a refused one scored nothing)."""
    rows = []
    for request, outcome in zip(plan, outcomes, strict=True):
        if outcome.status != "200":
            continue
        event = request.event_time or outcome.sent_at
        rows.append(
            {
                label_feed.REQUEST_ID: request.request_id,
                label_feed.ENTITY_ID: request.entity_id,
                label_feed.TERMINAL_ID: "" if request.terminal_id is None else request.terminal_id,
                label_feed.EVENT_TIME: _iso(event),
                label_feed.DUE_AT: _iso(event + delay),
                label_feed.LABEL: request.label,
            }
        )
    return pd.DataFrame(rows, columns=list(label_feed.FEED_COLUMNS))


def _iso(moment: datetime) -> str:
    return pd.Timestamp(moment).tz_convert(UTC).isoformat()


def _fraud_traffic(
    settings: Settings,
    count: int,
    scenario: str,
    seed: int | None,
    run_id: str,
    history_file: Path | None,
    notes: list[str],
) -> list[PlannedRequest]:
    """The next `count` payments of the served world as requests; the world's end moves
    past them (`sources.fraud_world.record_sent`)."""
    check_scenario(FRAUD.name, scenario)
    try:
        history = fraud_world.fraud_history(settings, history_file)
    except fraud_world.NoFraudHistory as error:
        raise TrafficError(str(error)) from error
    seed = settings.seed if seed is None else seed
    payments = fraud_world.fraud_payments(history, count, scenario, seed)
    if len(payments) < count:
        notes.append(f"the simulator made {len(payments)} payments, not {count}")
    plan = fraud_plan(payments, run_id)
    if plan:
        fraud_world.record_sent(settings, payments)
    return plan


def run_traffic(
    settings: Settings,
    model: str,
    *,
    scenario: str = "baseline",
    rate: float = 10.0,
    duration_s: float = 10.0,
    url: str = "http://127.0.0.1:8000",
    seed: int | None = None,
    concurrency: int = 4,
    timeout_s: float = 10.0,
    label_delay_days: float | None = None,
    history_file: Path | None = None,
    to: str = "api",
) -> TrafficResult:
    """Plan rate x duration requests, send them, file the answered ones' labels.

    `model` names the case study; its labels fall due `label_delay_days` after each event
    (the case study's label delay by default). `to="stream"` publishes fraud payments on
    the payments stream instead of calling the API (`stack.payment_producer`); a payment
    Redis acknowledged counts as answered. Raises `TrafficError` for traffic that cannot
    be planned.
    """
    study, delay_days = _checked(model, rate, duration_s, concurrency, label_delay_days)
    if to not in ("api", "stream") or (to == "stream" and study is not FRAUD):
        raise TrafficError(f"traffic goes to the api, or to the stream for fraud; not {to!r}")
    count = max(1, round(rate * duration_s))
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    notes: list[str] = []
    if study is CHURN:
        plan = churn_plan(count, scenario, settings.seed + 1 if seed is None else seed, run_id)
    else:
        plan = _fraud_traffic(settings, count, scenario, seed, run_id, history_file, notes)
    model_name = study.model_name(settings)

    started = time.perf_counter()
    statuses: Counter[str] = Counter()

    def answered(outcome: Outcome) -> None:
        statuses[outcome.status] += 1
        sending.advance(note=", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))

    if to == "stream":
        outcomes = _publish(settings, plan, rate)
        url = f"redis stream {settings.stream_prefix}:payments:*"
    else:
        with progress.step(f"{model_name} requests to {url}", total=len(plan)) as sending:
            outcomes = asyncio.run(send(url, plan, rate, concurrency, timeout_s, answered))
    seconds = time.perf_counter() - started
    rows = _feed_rows(plan, outcomes, timedelta(days=delay_days))
    pending = label_feed.pending_labels(settings, model_name)
    feed = pending.file(run_id, rows) if len(rows) else None
    first_event, last_event = _event_range(rows)
    return TrafficResult(
        model=model_name,
        scenario=scenario,
        run_id=run_id,
        url=url,
        planned=len(plan),
        seconds=round(seconds, 3),
        statuses=dict(sorted(Counter(o.status for o in outcomes).items())),
        labels_filed=len(rows),
        feed=feed,
        label_delay_days=delay_days,
        first_event=first_event,
        last_event=last_event,
        notes=notes,
    )


def _publish(settings: Settings, plan: list[PlannedRequest], rate: float) -> list[Outcome]:
    """Publish the planned payments on the stream; each acknowledged one is a "200"."""
    import redis

    from mlops.payment_stream import StreamKeys, stream_redis
    from stack.payment_producer import payment_of, publish

    client = stream_redis(settings)
    payments = [payment_of(request) for request in plan]
    sent_at = datetime.now(UTC)
    published = 0
    with progress.step("payments to the stream", total=len(plan)) as sending:
        try:
            published = publish(
                client, StreamKeys.of(settings), payments, rate=rate, on_chunk=sending.advance
            )
        except redis.RedisError as error:
            raise TrafficError(f"the payments stream refused them: {error}") from error
        finally:
            client.close()
    return [Outcome("200" if i < published else "unpublished", sent_at) for i in range(len(plan))]


def _checked(
    model: str, rate: float, duration_s: float, concurrency: int, label_delay_days: float | None
) -> tuple[CaseStudy, float]:
    """The case study and its label delay in days; raises `TrafficError` when the arguments
    do not make traffic."""
    try:
        study = case_study(model)
    except ValueError as error:
        raise TrafficError(str(error)) from error
    if rate <= 0 or duration_s <= 0 or concurrency < 1:
        raise TrafficError("rate and duration must be positive and concurrency at least 1")
    delay_days = study.label_delay_days if label_delay_days is None else label_delay_days
    if delay_days < 0:
        raise TrafficError(f"label delay must be >= 0 days, got {delay_days}")
    return study, delay_days


def _event_range(rows: pd.DataFrame) -> tuple[str | None, str | None]:
    """The first and last event time of the filed labels (None, None when none was filed)."""
    if not len(rows):
        return None, None
    events = pd.to_datetime(rows[label_feed.EVENT_TIME], utc=True)
    return _iso(events.min()), _iso(events.max())
