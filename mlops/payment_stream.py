"""The payments stream's contract: its Redis keys, a payment event, a decision, the partitions.

Payments travel on `stream_partitions` Redis streams, `<prefix>:payments:<p>`, like the
partitions of a Kafka topic: a card's payments all go to partition
`partition_of(customer_id, n)`, so one consumer sees them in the order they were
published. The stream scorer (`serving.fraud_stream`) reads them in its consumer group
`GROUP` and writes one decision per transaction to `<prefix>:decisions`.

The producer (`stack.payment_producer`), the scorer and the benchmark share these
definitions; the kernel holds them because they are on both sides of the stream.
Importing this module connects to nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

    from mlops.settings import Settings

GROUP = "scorer"
"""The consumer group of the stream scorer on every payments partition."""

# The fields of a payment event; values are strings on the wire (Redis keeps bytes).
TRANSACTION = "tx"
CUSTOMER = "customer"
TERMINAL = "terminal"
AMOUNT = "amount"
TIME_NS = "time_ns"
REQUEST_ID = "request_id"


@dataclass(frozen=True, slots=True)
class Payment:
    """One payment as published on the stream: who paid, where, how much, when (ns UTC)."""

    transaction_id: int
    customer_id: int
    terminal_id: int
    amount: float
    time_ns: int
    request_id: str = ""

    def fields(self) -> dict[str, str]:
        """The stream entry's fields."""
        return {
            TRANSACTION: str(self.transaction_id),
            CUSTOMER: str(self.customer_id),
            TERMINAL: str(self.terminal_id),
            AMOUNT: repr(float(self.amount)),
            TIME_NS: str(self.time_ns),
            REQUEST_ID: self.request_id,
        }

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> Payment:
        """The payment of a stream entry; ValueError (or KeyError) when it is not one."""
        return cls(
            transaction_id=int(fields[TRANSACTION.encode()]),
            customer_id=int(fields[CUSTOMER.encode()]),
            terminal_id=int(fields[TERMINAL.encode()]),
            amount=float(fields[AMOUNT.encode()]),
            time_ns=int(fields[TIME_NS.encode()]),
            request_id=fields.get(REQUEST_ID.encode(), b"").decode(),
        )


def partition_of(customer_id: int, partitions: int) -> int:
    """The partition of a card: stable across processes and runs (no salted hash)."""
    return customer_id % partitions


@dataclass(frozen=True)
class StreamKeys:
    """The Redis keys of one payments stream (one prefix)."""

    prefix: str
    partitions: int

    def payments(self, partition: int) -> str:
        return f"{self.prefix}:payments:{partition}"

    def all_payments(self) -> list[str]:
        return [self.payments(p) for p in range(self.partitions)]

    def payments_of(self, customer_id: int) -> str:
        return self.payments(partition_of(customer_id, self.partitions))

    @property
    def decisions(self) -> str:
        return f"{self.prefix}:decisions"

    @property
    def decided(self) -> str:
        """A hash: transaction id -> the decisions stream's entry id, for deduplication."""
        return f"{self.prefix}:decided"

    def intent(self, consumer: str) -> str:
        """The batch a consumer decided but has not finished applying (see the scorer)."""
        return f"{self.prefix}:intent:{consumer}"

    @classmethod
    def of(cls, settings: Settings) -> StreamKeys:
        return cls(settings.stream_prefix, settings.stream_partitions)


def stream_redis(settings: Settings, *, timeout_s: float = 5.0) -> redis.Redis:
    """A client of the stream's Redis: `stream_redis_url`, else the online store's Redis.

    The URL is Feast's connection string, `host:port[,db=N][,password=...]`, so one
    setting can name both.
    """
    import redis

    host, port, options = parse_redis_url(settings.stream_redis_url or settings.redis_url)
    return redis.Redis(
        host=host,
        port=port,
        db=int(options.get("db", 0)),
        password=options.get("password"),
        username=options.get("username"),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )


def parse_redis_url(url: str) -> tuple[str, int, dict[str, str]]:
    """Feast's `host:port[,key=value...]` as (host, port, options); ValueError if malformed."""
    address, *rest = (part.strip() for part in url.split(","))
    if address.startswith("redis://"):
        address = address.removeprefix("redis://")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"a Redis address is host:port[,db=N], got {url!r}")
    options = {}
    for part in rest:
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"a Redis option is key=value, got {part!r} in {url!r}")
        options[key] = value
    return host, int(port), options
