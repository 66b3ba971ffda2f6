"""The payments stream's producer: planned fraud payments onto their card's partition.

`publish` appends each payment to `<prefix>:payments:<partition of its card>` with
`XADD`, in pipelined chunks, paced to a rate. Redis acknowledges an `XADD` once the entry
is in its log (durable with `appendonly yes`, `appendfsync always`); a chunk whose reply is
lost (Redis restarting) is sent again, so a payment may be published twice: the scorer
decides each transaction id once (`serving.fraud_stream`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.fraud_online import epoch_ns
from mlops.payment_stream import Payment, StreamKeys

if TYPE_CHECKING:
    import redis

    from stack.traffic import PlannedRequest

# Payments sent in one round trip at most; small enough to keep pacing smooth.
_CHUNK = 200
_RETRY_WAIT_S = 0.2


def payment_of(request: PlannedRequest) -> Payment:
    """The stream's event of a planned scoring request (the same fields the route gets)."""
    body = request.body
    return Payment(
        transaction_id=int(body["transaction_id"]),
        customer_id=int(body["customer_id"]),
        terminal_id=int(body["terminal_id"]),
        amount=float(body["amount"]),
        time_ns=epoch_ns(pd.Timestamp(body["tx_datetime"])),
        request_id=request.request_id,
    )


def publish(
    client: redis.Redis,
    keys: StreamKeys,
    payments: Sequence[Payment],
    *,
    rate: float | None = None,
    retry_for_s: float = 30.0,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Publish `payments` in order, the i-th not before i / rate seconds (no pacing when
    `rate` is None). A chunk Redis does not acknowledge is retried for `retry_for_s`, then
    the error is raised. Returns the number published; `on_chunk(n)` after each chunk."""
    import redis as redis_errors

    start = time.perf_counter()
    chunk = max(1, min(_CHUNK, int(rate / 20) if rate else _CHUNK))
    for first in range(0, len(payments), chunk):
        if rate:
            time.sleep(max(0.0, start + first / rate - time.perf_counter()))
        batch = payments[first : first + chunk]
        deadline = time.monotonic() + retry_for_s
        while True:
            try:
                pipe: Any = client.pipeline(transaction=False)
                for payment in batch:
                    pipe.xadd(keys.payments_of(payment.customer_id), payment.fields())
                pipe.execute()
                break
            except (
                redis_errors.ConnectionError,
                redis_errors.TimeoutError,
                redis_errors.BusyLoadingError,
            ):
                if time.monotonic() > deadline:
                    raise
                time.sleep(_RETRY_WAIT_S)
        if on_chunk is not None:
            on_chunk(len(batch))
    return len(payments)
