"""`mlops bench stream`: the stream scorer's sustained payments/s and event-to-decision latency.

The scorer runs as the service does (`mlops stream fraud`, its own process) on a home with
a fraud champion, on stream keys of its own (a fresh prefix, deleted afterwards). The
payments continue the home's simulated world (`sources.fraud_world`), so the windows are
the real ones. Two measurements:

- *sustained*: payments published at a steady `rate` for `seconds`; the figure is what
  was decided per second from the first publication to the last decision, and the
  latency of each payment from its entry on the stream to its decision on the decisions
  stream (both Redis server times, from the entry ids);
- *backlog*: as many payments published at once, then decided as fast as the scorer can:
  its ceiling on this machine;
- *cpu*: the same kind of backlog drained by a scorer in this process, with the CPU time
  of its thread per payment, in all and step by step (`time.thread_time`, so the figure
  does not depend on what else the machine runs). The prediction log's shipper is
  another thread, and Redis another process: the process's CPU is given beside it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import machine
from mlops.payment_stream import GROUP, StreamKeys, stream_redis
from mlops.settings import Settings

# Payments of the in-process CPU profile.
CPU_PAYMENTS = 3000


class StreamBenchmarkError(RuntimeError):
    """The benchmark cannot run: no champion, no history, Redis or the scorer down."""


def bench_stream(
    settings: Settings,
    *,
    rate: float,
    seconds: float,
    batch: int,
    history_file: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Both measurements of the module's docstring; returns every figure."""
    from sources import fraud_world
    from stack.payment_producer import payment_of, publish
    from stack.traffic import fraud_plan

    try:
        history = fraud_world.fraud_history(settings, history_file)
    except fraud_world.NoFraudHistory as error:
        raise StreamBenchmarkError(str(error)) from error
    sustained_count = max(1, round(rate * seconds))
    frame = fraud_world.fraud_payments(
        history, 2 * sustained_count + CPU_PAYMENTS, "baseline", settings.seed
    )
    fraud_world.record_sent(settings, frame)
    payments = [payment_of(request) for request in fraud_plan(frame, "bench")]
    sustained, backlog = payments[:sustained_count], payments[sustained_count:-CPU_PAYMENTS]
    cpu_payments = payments[-CPU_PAYMENTS:]

    prefix = f"bench-{secrets.token_hex(4)}"
    keys = StreamKeys(prefix, settings.stream_partitions)
    client = stream_redis(settings)
    figures: dict[str, Any] = {
        "benchmark": "stream fraud",
        "partitions": keys.partitions,
        "batch": batch,
        "load_avg_before": os.getloadavg()[0],
    }
    env = {
        **os.environ,
        "MLOPS_HOME": str(settings.home),
        "MLOPS_STREAM_PREFIX": prefix,
        "MLOPS_STREAM_BATCH": str(batch),
        "MLOPS_MODEL_REFRESH_S": "0",
    }
    with tempfile.TemporaryDirectory(prefix="mlops-bench-stream-") as scratch:
        scorer_log = Path(scratch) / "scorer.log"
        with scorer_log.open("wb") as out:
            scorer = subprocess.Popen(
                [sys.executable, "-m", "cli", "stream", "fraud", "--metrics-port", "0"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_ready(client, keys, scorer, scorer_log)
            log(f"  sustained: {len(sustained):,} payments at {rate:,.0f}/s")
            figures["sustained"] = _run(client, keys, sustained, rate, publish, scorer_log)
            log(f"  backlog: {len(backlog):,} payments published at once")
            figures["backlog"] = _run(client, keys, backlog, None, publish, scorer_log)
        finally:
            scorer.terminate()
            try:
                scorer.wait(30)
            except subprocess.TimeoutExpired:
                scorer.kill()
            for key in client.scan_iter(f"{prefix}:*"):
                client.delete(key)
            client.close()
    log(f"  cpu: {len(cpu_payments):,} payments drained in this process")
    figures["cpu"] = _cpu_profile(settings, cpu_payments, batch)
    figures["offered_rate"] = rate
    figures["machine"] = machine()
    figures["load_avg_after"] = os.getloadavg()[0]
    return figures


def _wait_ready(client: Any, keys: StreamKeys, scorer: subprocess.Popen[bytes], log: Path) -> None:
    """Until the scorer made its group on every partition (its model is loaded by then)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if scorer.poll() is not None:
            raise StreamBenchmarkError(f"the scorer exited: {log.read_text()[-2000:]}")
        try:
            if all(client.xinfo_groups(stream) for stream in keys.all_payments()):
                return
        except Exception:  # the streams do not exist yet
            pass
        time.sleep(0.2)
    raise StreamBenchmarkError(f"the scorer did not start: {log.read_text()[-2000:]}")


def _run(
    client: Any,
    keys: StreamKeys,
    payments: list[Any],
    rate: float | None,
    publish: Callable[..., int],
    log: Path,
) -> dict[str, Any]:
    """Publish `payments` (at `rate`, or at once), wait for their decisions, measure."""
    before = client.xlen(keys.decisions)
    last_id = client.xrevrange(keys.decisions, count=1)
    start_id = last_id[0][0].decode() if last_id else "0-0"
    started = time.time()
    publish(client, keys, payments, rate=rate)
    published_s = time.time() - started
    deadline = time.monotonic() + max(120.0, 4 * published_s)
    while client.xlen(keys.decisions) < before + len(payments):
        if time.monotonic() > deadline:
            raise StreamBenchmarkError(
                f"{client.xlen(keys.decisions) - before} of {len(payments)} decided in time; "
                f"{log.read_text()[-2000:]}"
            )
        time.sleep(0.05)
    decisions = client.xrange(keys.decisions, min=f"({start_id}", count=len(payments) + 10)
    latencies, last_ms = [], 0
    for entry_id, fields in decisions:
        decided_ms = int(entry_id.decode().partition("-")[0])
        event_ms = int(fields[b"event"].decode().rpartition("/")[2].partition("-")[0])
        latencies.append(decided_ms - event_ms)
        last_ms = max(last_ms, decided_ms)
    pending = sum(client.xpending(s, GROUP)["pending"] for s in keys.all_payments())
    elapsed = last_ms / 1000 - started
    lat = np.asarray(latencies, dtype=np.float64)
    return {
        "payments": len(payments),
        "decided": len(decisions),
        "publish_s": round(published_s, 3),
        "elapsed_s": round(elapsed, 3),
        "decided_per_s": round(len(decisions) / elapsed, 1),
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "pending_after": pending,
    }


def _cpu_profile(settings: Settings, payments: list[Any], batch: int) -> dict[str, Any]:
    """The *cpu* measurement of the module's docstring: a scorer built as the service builds
    it, its steps wrapped to add up their thread CPU time."""
    from unittest import mock

    from serving import fraud_stream
    from stack.payment_producer import publish

    prefix = f"bench-{secrets.token_hex(4)}"
    own = settings.model_copy(update={"stream_prefix": prefix, "stream_batch": batch})
    scorer = fraud_stream.build_stream_scorer(own)
    scorer.ensure_groups()
    scorer.holder.load_from_registry(own)
    if not scorer.holder.ready:
        raise StreamBenchmarkError(f"no fraud champion to score with: {scorer.holder.last_error}")
    costs: dict[str, float] = {}

    def timed(step: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                costs[step] = costs.get(step, 0.0) + time.thread_time() - started

        return wrapper

    features, client = scorer.features, scorer.client
    steps: list[tuple[Any, str, str]] = [
        (features, "read_states", "online state read"),
        (features, "write_states", "online state write"),
        (scorer.log, "append", "prediction log"),
        (scorer.holder.current.scorer, "predict_proba", "model"),
        (fraud_stream, "_intent", "intent encoding"),
        (scorer, "_acknowledge", "redis"),
        *((client, name, "redis") for name in ("xreadgroup", "xautoclaim", "hmget", "eval")),
        *(
            (fraud_stream, name, step)
            for name, step in (
                ("online_fraud_features", "window features"),
                ("append_customer_transaction", "appends"),
                ("append_terminal_transaction", "appends"),
            )
        ),
    ]
    client_for_publish = stream_redis(own)
    keys = StreamKeys.of(own)
    try:
        publish(client_for_publish, keys, payments)
        scorer.log.start()
        patches = [
            mock.patch.object(owner, name, timed(step, getattr(owner, name)))
            for owner, name, step in steps
            if hasattr(owner, name)
        ]
        for patch in patches:
            patch.start()
        try:
            thread_start, process_start = time.thread_time(), time.process_time()
            decided = scorer.drain()
            thread_s = time.thread_time() - thread_start
            scorer.log.close()
            process_s = time.process_time() - process_start
        finally:
            for patch in patches:
                patch.stop()
    finally:
        for key in client_for_publish.scan_iter(f"{prefix}:*"):
            client_for_publish.delete(key)
        client_for_publish.close()
    per = 1e6 / max(decided, 1)
    by_step = {step: round(seconds * per, 1) for step, seconds in sorted(costs.items())}
    by_step["other"] = round(thread_s * per - sum(by_step.values()), 1)
    return {
        "payments": decided,
        "thread_cpu_us_per_payment": round(thread_s * per, 1),
        "process_cpu_us_per_payment": round(process_s * per, 1),
        "thread_cpu_us_by_step": by_step,
    }
