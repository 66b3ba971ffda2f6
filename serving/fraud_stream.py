"""The stream scorer: payments from Redis Streams, each decided exactly once, in card order.

`mlops stream fraud` runs one `StreamScorer`. It reads the payment partitions it owns
(`mlops.payment_stream`) in the consumer group `GROUP`, a batch at a time, and for each
batch:

1. drops what is already decided (a producer that retried an `XADD` publishes a payment
   twice; the `decided` hash holds every transaction id with a decision) and quarantines
   what is not a payment (to `<prefix>:rejected`, with the reason, counted);
2. reads the cards' and terminals' states, one online read per view
   (`FraudOnlineFeatures.read_states`), and walks the payments in stream order: each
   one's window features by `features.fraud_online.online_fraud_features`, the function
   the HTTP route runs, then the payment appended to its card's and terminal's state in
   memory, so a later payment of the batch sees it;
3. scores every row in one onnxruntime call with the champion (a `ModelHolder` that
   follows the alias, as the API's does) and spools each prediction to the prediction
   log with the record id `fraud-tx-<transaction id>` (shipped once, however often);
4. in one Lua script (atomic; a no-op when the batch's first payment is decided already,
   so a call retried after a lost reply is applied once): the batch's *intent* (the new
   states and the entries to acknowledge), its decisions on `<prefix>:decisions`, and
   the transaction ids in the `decided` hash;
5. writes the new states online (`FraudOnlineFeatures.write_states`, whole states);
6. in one Redis transaction: acknowledges the entries and deletes the intent.

Exactly-once effects follow. A crash before 4 leaves the state untouched and the
entries pending: they are read again (`XREADGROUP ... 0`, or `XAUTOCLAIM` from a consumer
that died) and decided as if for the first time. A crash after 4 leaves the intent: the
next start (or the loop, after any error) writes its states again, which leaves what
writing them once does, then acknowledges. A payment therefore counts once in every
window and has one decision, whatever is killed when; tests/faults/test_stream_faults.py
kills the scorer with SIGKILL and Redis mid-stream and checks it.

Order. A card's payments are all on one partition, and a partition is read by one
consumer in order (pending entries before new ones), so a card's payments are applied in
the order they were published. Terminals are shared by cards of every partition, but a
terminal's windows end `label_delay_days` before the payment (`features.fraud_online`):
the order of payments at one terminal within a week does not change any feature. The
states are written by read-modify-write, so one scorer process writes them: partitions
split the stream for ordering and for growing past one process only once terminal
writes are partitioned too (see docs/case-studies/fraud.md).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from features.fraud_online import (
    CustomerHistory,
    TerminalHistory,
    append_customer_transaction,
    append_terminal_transaction,
    online_fraud_features,
)
from features.fraud_windows import DEFAULT_LABEL_DELAY_DAYS
from mlops.payment_stream import GROUP, Payment, StreamKeys
from mlops.prediction_log import Prediction, PredictionLog
from mlops.settings import Settings
from serving.errors import FeatureStoreUnavailable
from serving.fraud_features import FraudOnlineFeatures
from serving.metrics import LATENCY_BUCKETS
from serving.model_holder import LoadedModel, ModelHolder

if TYPE_CHECKING:
    import redis

logger = logging.getLogger("serving.stream")

STREAM_ENDPOINT = "stream:fraud"
"""The prediction log's endpoint of the stream's decisions (the API's is the route)."""
# The longest wait between two attempts while Redis, the online store or the log is down.
_MAX_BACKOFF_S = 5.0
_WARNING_INTERVAL_S = 10.0
# Event-to-decision latency: from a millisecond (a batch) to minutes (a backlog).
STREAM_LATENCY_BUCKETS = (*LATENCY_BUCKETS, 10.0, 30.0, 60.0, 300.0)

# A terminal's payments come from every partition, and one partition may run ahead of
# another in event time (a backlog read COUNT entries at a time from each). Appending
# trims a terminal's state to the label delay plus its longest window before its newest
# payment; a payment of another partition arriving up to this many days late must still
# find its whole windows, so the stream keeps this much more (as if the delay were
# longer: the delay only sets the retention of an append, never a window).
_TERMINAL_KEEPS_DAYS = DEFAULT_LABEL_DELAY_DAYS + 1

Entry = tuple[str, str, dict[bytes, bytes] | None]
"""(stream, entry id, fields): one entry read; fields None when it was deleted."""


def record_id(transaction_id: int) -> str:
    """The prediction log's record id of a transaction's decision: one record per payment."""
    return f"fraud-tx-{transaction_id}"


def entry_ms(entry_id: str) -> int:
    """When Redis added the entry, in ms since the epoch (the first part of its id)."""
    return int(entry_id.partition("-")[0])


# Why an entry is acknowledged without a new decision (the `reason` of mlops_stream_skipped).
SKIP_REASONS = ("duplicate", "rejected", "deleted")


class StreamMetrics:
    """The scorer's Prometheus metrics: throughput, event-to-decision latency and, read at
    each scrape, the consumer group's lag and pending entries per partition."""

    def __init__(self) -> None:
        # In memory, not Feast's multi-process files (see `serving.metrics.Metrics`).
        values.ValueClass = values.MutexValue
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "mlops_stream_decisions",
            "Payments decided from the stream, by model version and decision.",
            ["model_version", "is_fraud"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlops_stream_event_to_decision_seconds",
            "From a payment's time on the stream (its entry id) to its decision on the "
            "decisions stream.",
            buckets=STREAM_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "mlops_stream_batch_duration_seconds",
            "Time to decide and apply one batch of payments.",
            buckets=STREAM_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.skipped = Counter(
            "mlops_stream_skipped",
            "Entries acknowledged without a new decision: 'duplicate' (already decided), "
            "'rejected' (not a payment; on the rejected stream), 'deleted' (trimmed).",
            ["reason"],
            registry=self.registry,
        )
        # Each reason exported from the start, at 0: "none skipped" is a value, not a gap.
        for reason in SKIP_REASONS:
            self.skipped.labels(reason)
        self.redelivered = Counter(
            "mlops_stream_redelivered",
            "Entries read again after a crash or an error: pending, or claimed.",
            registry=self.registry,
        )
        self.intents_finished = Counter(
            "mlops_stream_intents_finished",
            "Batches decided before a crash or an error whose states recovery wrote.",
            registry=self.registry,
        )
        self.errors = Counter(
            "mlops_stream_errors",
            "Batches that failed and were retried, by the error's type.",
            ["error"],
            registry=self.registry,
        )

    def watch(self, client: redis.Redis, keys: StreamKeys, partitions: Sequence[int]) -> None:
        """Report the group's lag and pending entries of `partitions` at each scrape."""
        self.registry.register(_LagCollector(client, keys, partitions))


class _LagCollector(Collector):
    def __init__(self, client: redis.Redis, keys: StreamKeys, partitions: Sequence[int]) -> None:
        self._client: Any = client  # sync replies (see StreamScorer)
        self._keys, self._partitions = keys, partitions

    def collect(self) -> Iterable[Metric]:
        lag = GaugeMetricFamily(
            "mlops_stream_lag",
            "Payments on the partition the scorer's group has not read yet (XINFO GROUPS).",
            labels=["partition"],
        )
        pending = GaugeMetricFamily(
            "mlops_stream_pending",
            "Payments read but not acknowledged yet, per partition.",
            labels=["partition"],
        )
        up = GaugeMetricFamily("mlops_stream_redis_up", "1 when the stream's Redis answers.")
        try:
            for partition in self._partitions:
                for group in self._client.xinfo_groups(self._keys.payments(partition)):
                    if _text(group["name"]) == GROUP:
                        # None when Redis cannot tell (after a deletion): count as unknown.
                        if group.get("lag") is not None:
                            lag.add_metric([str(partition)], float(group["lag"]))
                        pending.add_metric([str(partition)], float(group["pending"]))
            up.add_metric([], 1.0)
        except Exception:  # Redis down: the scrape still answers, and says so
            up.add_metric([], 0.0)
        return [lag, pending, up]


@dataclass
class BatchOutcome:
    """What one batch did: decided, skipped as duplicates, rejected, deleted entries."""

    decided: int = 0
    duplicates: int = 0
    rejected: int = 0
    deleted: int = 0
    latencies_ms: list[int] = field(default_factory=list)

    @property
    def entries(self) -> int:
        return self.decided + self.duplicates + self.rejected + self.deleted


class StreamScorer:
    """Consumes the payment partitions it owns; see the module's docstring for the steps."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        holder: ModelHolder,
        features: FraudOnlineFeatures,
        log: PredictionLog,
        *,
        partitions: Sequence[int] | None = None,
        consumer: str | None = None,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self.settings = settings
        # redis-py annotates each reply as sync or async; this client is the sync one.
        self.client: Any = client
        self.holder = holder
        self.features = features
        self.log = log
        self.keys = StreamKeys.of(settings)
        self.partitions = list(range(self.keys.partitions) if partitions is None else partitions)
        unknown = [p for p in self.partitions if not 0 <= p < self.keys.partitions]
        if unknown or not self.partitions:
            raise ValueError(
                f"partitions must be in 0..{self.keys.partitions - 1}, got {self.partitions}"
            )
        self.streams = [self.keys.payments(p) for p in self.partitions]
        # The name is the partitions owned: a restart with the same partitions finds its
        # own pending entries and intent.
        self.consumer = consumer or "scorer-" + ".".join(map(str, self.partitions))
        self.metrics = metrics or StreamMetrics()
        self._intent = self.keys.intent(self.consumer)
        self._per_stream = max(1, math.ceil(settings.stream_batch / len(self.streams)))
        self._last_claim = 0.0
        self._last_warning = 0.0
        self._version_children: dict[tuple[str, bool], Any] = {}

    # -- setup and recovery ---------------------------------------------------------------

    def ensure_groups(self) -> None:
        """The consumer group on every owned partition, made with the stream if missing."""
        import redis

        for stream in self.streams:
            try:
                self.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    def recover(self) -> bool:
        """Finish the batch decided before a crash, if any: write its states again and
        acknowledge it. True when there was one."""
        raw = self.client.get(self._intent)
        if raw is None:
            return False
        intent = orjson.loads(raw)
        customers = {
            int(key): CustomerHistory(
                np.asarray(times, np.int64),
                np.asarray(amounts, np.float64),
                np.asarray(terminals, np.int64),
            )
            for key, times, amounts, terminals in intent["customers"]
        }
        terminals = {
            int(key): TerminalHistory(np.asarray(times, np.int64), np.asarray(frauds, np.int64))
            for key, times, frauds in intent["terminals"]
        }
        self.features.write_states(customers, terminals)
        self._acknowledge(intent["acks"])
        self.metrics.intents_finished.inc()
        logger.info(
            "finished the batch of %d entries decided before a restart",
            sum(len(ids) for ids in intent["acks"].values()),
        )
        return True

    def claim(self) -> int:
        """Take over entries pending for another consumer longer than the claim idle time
        (one that died); they are then read as this consumer's pending entries."""
        claimed = 0
        for stream in self.streams:
            start = "0-0"
            while True:
                reply = self.client.xautoclaim(
                    stream,
                    GROUP,
                    self.consumer,
                    self.settings.stream_claim_idle_ms,
                    start_id=start,
                    count=self._per_stream,
                )
                # [next cursor, claimed entries, deleted ids]: the cursor is 0-0 at the end.
                start, claimed_now = _text(reply[0]), reply[1]
                claimed += len(claimed_now)
                if start == "0-0":
                    break
        self._last_claim = time.monotonic()
        return claimed

    # -- the loop -------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Decide payments until `stop` is set; any failure is retried after a wait."""
        recovering, backoff = True, 0.1
        while not stop.is_set():
            try:
                if recovering:
                    self.ensure_groups()
                    self.recover()
                    self.claim()
                    recovering = False
                if not self.holder.ready:
                    self.holder.load_from_registry(self.settings)
                    if not self.holder.ready:
                        self._warn("no model to score with: %s", self.holder.last_error)
                        stop.wait(backoff)
                        backoff = min(backoff * 2, _MAX_BACKOFF_S)
                        continue
                self.step()
                backoff = 0.1
            except Exception as error:  # Redis, the online store or the log down: retry
                self.metrics.errors.labels(type(error).__name__).inc()
                self._warn("stream scorer: %s: %s; retrying", type(error).__name__, error)
                recovering = True
                stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def step(self, block_ms: int | None = None) -> BatchOutcome:
        """One batch: this consumer's pending entries first, else new ones (waiting up to
        `block_ms` for them). Returns what it did (nothing when there was nothing)."""
        if (
            self.settings.stream_claim_idle_ms
            and time.monotonic() - self._last_claim > self.settings.stream_claim_idle_ms / 2000
        ):
            self.claim()
        entries = self._read("0", None)
        if entries:
            self.metrics.redelivered.inc(len(entries))
        else:
            block = self.settings.stream_block_ms if block_ms is None else block_ms
            entries = self._read(">", block)
        return self.process(entries) if entries else BatchOutcome()

    def drain(self, idle_reads: int = 2) -> int:
        """Decide until the owned partitions have nothing new `idle_reads` times in a row
        (tests and the benchmark); returns the number of entries handled."""
        handled, idle = 0, 0
        while idle < idle_reads:
            outcome = self.step(block_ms=50)
            handled += outcome.entries
            idle = 0 if outcome.entries else idle + 1
        return handled

    def _read(self, start: str, block_ms: int | None) -> list[Entry]:
        reply = self.client.xreadgroup(
            GROUP,
            self.consumer,
            dict.fromkeys(self.streams, start),
            count=self._per_stream,
            block=block_ms,
        )
        entries: list[Entry] = []
        for stream, items in _stream_items(reply):
            entries.extend((stream, _text(entry_id), fields or None) for entry_id, fields in items)
        return entries

    # -- one batch ------------------------------------------------------------------------

    def process(self, entries: list[Entry]) -> BatchOutcome:
        """Decide and apply one batch of entries (steps 1 to 6 of the module's docstring)."""
        started = time.perf_counter()
        model = self.holder.current
        outcome = BatchOutcome()
        acks: dict[str, list[str]] = {}
        payments: list[tuple[str, str, Payment]] = []
        rejects: list[tuple[str, str, str]] = []
        for stream, entry_id, fields in entries:
            acks.setdefault(stream, []).append(entry_id)
            if fields is None:
                outcome.deleted += 1
                continue
            try:
                payment = Payment.from_fields(fields)
                _check(payment)
            except (KeyError, ValueError, UnicodeDecodeError) as error:
                rejects.append((stream, entry_id, f"{type(error).__name__}: {error}"[:300]))
                continue
            payments.append((stream, entry_id, payment))
        outcome.rejected = len(rejects)

        fresh = self._undecided(payments)
        outcome.duplicates = len(payments) - len(fresh)
        customers, terminals, rows = self._features(fresh, model.bundle.meta.feature_names)
        scores = (
            model.scorer.predict_proba(rows).astype(np.float64)
            if len(fresh)
            else np.empty(0, np.float64)
        )
        decisions = self._log(fresh, model, rows, scores)

        # One script, so a call redis-py retries after a lost reply is not applied twice:
        # it does nothing when the batch's first payment is decided already.
        self.client.eval(
            _DECIDE,
            4,
            self._intent,
            self.keys.decisions,
            self.keys.decided,
            f"{self.keys.prefix}:rejected",
            _intent(acks, customers, terminals),
            str(fresh[0][2].transaction_id) if fresh else "",
            orjson.dumps(
                [
                    [str(p.transaction_id), f"{score:.9g}", _flat(decision)]
                    for (_, _, p), score, decision in zip(fresh, scores, decisions, strict=True)
                ]
            ),
            orjson.dumps(
                [
                    ["stream", stream, "entry", entry_id, "reason", reason]
                    for stream, entry_id, reason in rejects
                ]
            ),
        )
        decided_ms = int(time.time() * 1000)

        self.features.write_states(customers, terminals)
        self._acknowledge(acks)

        outcome.decided = len(fresh)
        outcome.latencies_ms = [decided_ms - entry_ms(entry_id) for _, entry_id, _ in fresh]
        for latency in outcome.latencies_ms:
            self.metrics.latency.observe(max(latency, 0) / 1000)
        for score in scores:
            self._decision_counter(model.version, bool(score >= model.threshold)).inc()
        for reason, count in zip(
            SKIP_REASONS, (outcome.duplicates, outcome.rejected, outcome.deleted), strict=True
        ):
            if count:
                self.metrics.skipped.labels(reason).inc(count)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return outcome

    def _undecided(
        self, payments: list[tuple[str, str, Payment]]
    ) -> list[tuple[str, str, Payment]]:
        """The payments without a decision yet, the first of each transaction id."""
        if not payments:
            return []
        known = self.client.hmget(self.keys.decided, [str(p.transaction_id) for *_, p in payments])
        seen: set[int] = set()
        fresh = []
        for item, decided in zip(payments, known, strict=True):
            tx = item[2].transaction_id
            if decided is None and tx not in seen:
                fresh.append(item)
            seen.add(tx)
        # The partitions' payments merged by event time: a terminal's payments come from
        # every partition (a stable sort keeps each card's own order).
        return sorted(fresh, key=lambda item: item[2].time_ns)

    def _features(
        self, fresh: list[tuple[str, str, Payment]], names: Sequence[str]
    ) -> tuple[dict[int, CustomerHistory], dict[int, TerminalHistory], np.ndarray]:
        """Every payment's features in stream order, each appended to its states after."""
        customers, terminals = self.features.read_states(
            [p.customer_id for *_, p in fresh], [p.terminal_id for *_, p in fresh]
        )
        rows = np.empty((len(fresh), len(names)), dtype=np.float32)
        for i, (*_, p) in enumerate(fresh):  # `_undecided` keeps event-time order
            customer, terminal = customers[p.customer_id], terminals[p.terminal_id]
            values = online_fraud_features(customer, terminal, p.time_ns, p.amount, p.terminal_id)
            try:
                rows[i] = [values[name] for name in names]
            except KeyError as error:
                raise FeatureStoreUnavailable(
                    f"the model needs {error}, not a fraud feature"
                ) from error
            customers[p.customer_id] = append_customer_transaction(
                customer, p.time_ns, p.amount, p.terminal_id
            )
            terminals[p.terminal_id] = append_terminal_transaction(
                terminal, p.time_ns, label_delay_days=_TERMINAL_KEEPS_DAYS
            )
        return customers, terminals, rows

    def _log(
        self,
        fresh: list[tuple[str, str, Payment]],
        model: LoadedModel,
        rows: np.ndarray,
        scores: np.ndarray,
    ) -> list[dict[str, str]]:
        """Spool each decision to the prediction log; the decisions stream's entries."""
        names = model.bundle.meta.feature_names
        decisions: list[dict[str, str]] = []
        for (stream, entry_id, p), row, score in zip(fresh, rows, scores, strict=True):
            if not math.isfinite(score):
                raise ValueError(f"no finite score for transaction {p.transaction_id}")
            is_fraud = bool(score >= model.threshold)
            self.log.append(
                Prediction(
                    request_id=p.request_id or record_id(p.transaction_id),
                    endpoint=STREAM_ENDPOINT,
                    model_name=model.bundle.name,
                    model_version=model.version,
                    entity={
                        "transaction_id": p.transaction_id,
                        "customer_id": p.customer_id,
                        "terminal_id": p.terminal_id,
                    },
                    feature_names=names,
                    feature_values=row.tolist(),
                    score=float(score),
                    decision=is_fraud,
                ),
                record_id=record_id(p.transaction_id),
            )
            decisions.append(
                {
                    "tx": str(p.transaction_id),
                    "customer": str(p.customer_id),
                    "terminal": str(p.terminal_id),
                    "fraud_probability": repr(float(score)),
                    "is_fraud": "1" if is_fraud else "0",
                    "threshold": repr(float(model.threshold)),
                    "model_version": model.version,
                    "event": f"{stream}/{entry_id}",
                }
            )
        return decisions

    def _acknowledge(self, acks: dict[str, list[str]]) -> None:
        transaction = self.client.pipeline(transaction=True)
        for stream, ids in acks.items():
            if ids:
                transaction.xack(stream, GROUP, *ids)
        transaction.delete(self._intent)
        transaction.execute()

    def _decision_counter(self, version: str, is_fraud: bool) -> Any:
        key = (version, is_fraud)
        child = self._version_children.get(key)
        if child is None:
            child = self._version_children[key] = self.metrics.decisions.labels(
                version, str(is_fraud).lower()
            )
        return child

    def _warn(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARNING_INTERVAL_S:
            self._last_warning = now
            logger.warning(message, *args)


# Step 4 of the module's docstring, atomic and idempotent. KEYS: the intent, the
# decisions stream, the decided hash, the rejected stream. ARGV: the intent, the first
# transaction id of the batch ("" for none), [[tx, score, [field, value, ...]], ...],
# [[field, value, ...], ...] of the rejected entries.
_DECIDE = """
if ARGV[2] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
for _, d in ipairs(cjson.decode(ARGV[3])) do
  redis.call('XADD', KEYS[2], '*', unpack(d[3]))
  redis.call('HSET', KEYS[3], d[1], d[2])
end
for _, r in ipairs(cjson.decode(ARGV[4])) do
  redis.call('XADD', KEYS[4], '*', unpack(r))
end
return 1
"""


def _flat(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


def follow_alias(holder: ModelHolder, settings: Settings, stop: threading.Event) -> None:
    """Poll the alias every `model_refresh_s` (none when 0), as the API does: a new
    champion is loaded beside the old one and swapped in; a failure keeps the old one."""
    while settings.model_refresh_s > 0 and not stop.wait(settings.model_refresh_s):
        try:
            if holder.refresh(settings):
                logger.info("now scoring with %s v%s", holder.name, holder.loaded_version)
        except Exception:
            logger.exception("following %s@%s failed; polling on", holder.name, holder.alias)


def _check(payment: Payment) -> None:
    """ValueError when the payment is not one the model can score."""
    if not math.isfinite(payment.amount) or payment.amount < 0:
        raise ValueError(f"amount must be a finite number >= 0, got {payment.amount}")
    if payment.customer_id < 0 or payment.terminal_id < 0 or payment.transaction_id < 0:
        raise ValueError("ids must be >= 0")
    if payment.time_ns <= 0:
        raise ValueError(f"time_ns must be after 1970, got {payment.time_ns}")


def _intent(
    acks: dict[str, list[str]],
    customers: dict[int, CustomerHistory],
    terminals: dict[int, TerminalHistory],
) -> bytes:
    return orjson.dumps(
        {
            "acks": acks,
            "customers": [
                (key, s.times_ns, s.amounts, s.terminal_ids) for key, s in customers.items()
            ],
            "terminals": [(key, s.times_ns, s.frauds) for key, s in terminals.items()],
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _stream_items(reply: Any) -> list[tuple[str, list[tuple[Any, Any]]]]:
    """XREADGROUP's reply as (stream, entries), in RESP2 (a list) or RESP3 (a dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [
            (_text(stream), items[0] if items and isinstance(items[0], list) else items)
            for stream, items in reply.items()
        ]
    return [(_text(stream), items) for stream, items in reply]


def build_stream_scorer(
    settings: Settings,
    *,
    partitions: Sequence[int] | None = None,
    consumer: str | None = None,
) -> StreamScorer:
    """A scorer of these settings: the stream's Redis, the champion's holder (not loaded
    yet), the online fraud features and the prediction log (not started yet)."""
    from features.store import feature_store, sqlite_write_ahead
    from mlops.case_studies import FRAUD
    from mlops.payment_stream import stream_redis
    from serving.collaborators import build_prediction_log

    store = feature_store(settings)
    if settings.online_store == "sqlite":
        # As serving does: two state writes a batch, each a commit without an fsync.
        sqlite_write_ahead(store)
    return StreamScorer(
        settings,
        stream_redis(settings),
        ModelHolder(FRAUD.model_name(settings)),
        FraudOnlineFeatures(store),
        build_prediction_log(settings),
        partitions=partitions,
        consumer=consumer,
    )


def serve_stream(
    scorer: StreamScorer, stop: threading.Event, *, host: str, metrics_port: int | None
) -> None:
    """Run `scorer` until `stop`: its metrics on http://host:port/metrics, the alias
    followed, the prediction log started and, at the end, closed."""
    from prometheus_client import start_http_server

    settings = scorer.settings
    if metrics_port is not None:
        scorer.metrics.watch(scorer.client, scorer.keys, scorer.partitions)
        start_http_server(metrics_port, addr=host, registry=scorer.metrics.registry)
    scorer.log.start()
    scorer.holder.load_from_registry(settings)
    follower = threading.Thread(
        target=follow_alias, args=(scorer.holder, settings, stop), name="alias", daemon=True
    )
    follower.start()
    logger.info(
        "scoring with %s v%s", scorer.holder.name, scorer.holder.loaded_version or "(none yet)"
    )
    try:
        scorer.run(stop)
    finally:
        scorer.log.close()
