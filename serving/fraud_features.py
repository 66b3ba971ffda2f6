"""Online fraud features for serving: score a transaction from the card's and terminal's state.

`row` reads the card's and the terminal's state (one online read each) and computes the
window features at the request's time and amount with `features.fraud_online`, the
function the `fraud_model` service's on-demand view runs: the same values as
`get_online_features` on that service (a test checks), without its generic path
(`serving.online_features`). `record` appends the transaction to both states and pushes
them back online, so the next transaction of the card or terminal sees it. `payment` is
the two in one, as the scoring route uses them: one read of each state, the features, and
after the caller has scored and logged the payment, its append to the states it read.
`payments` does the same for a batch in order, with one read and one write per state view
(a consumer of a payments stream); both are plain calls, no HTTP involved.

A card or terminal the store has never seen is not an error here: a new card has an
empty history, and its features follow the empty-window conventions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

import numpy as np
import numpy.typing as npt
from feast import FeatureStore, FeatureView, PushSource
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from feast.infra.provider import Provider
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import DoubleList, Int64List
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from features.feature_repo import fraud as fraud_repo
from features.fraud_online import (
    CUSTOMER_AMOUNTS,
    CUSTOMER_KEY,
    CUSTOMER_TERMINALS,
    CUSTOMER_TIMES,
    TERMINAL_FRAUDS,
    TERMINAL_KEY,
    TERMINAL_TIMES,
    CustomerHistory,
    TerminalHistory,
    append_customer_transaction,
    append_terminal_transaction,
    epoch_ns,
    online_fraud_features,
    relabel_terminal_history,
)
from serving.errors import FeatureStoreUnavailable, InvalidInput
from serving.online_features import SqliteViewWriter, ViewReader

logger = logging.getLogger(__name__)

_CUSTOMER_STATE = (CUSTOMER_TIMES, CUSTOMER_AMOUNTS, CUSTOMER_TERMINALS)
_TERMINAL_STATE = (TERMINAL_TIMES, TERMINAL_FRAUDS)
_State = dict[str, npt.NDArray[np.int64] | npt.NDArray[np.float64]]
# Two writes of one state must carry distinct stamps, or Redis keeps the first one.
_STAMP_STEP = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment as scoring needs it: the card, the terminal, when (timezone-aware), how much."""

    customer_id: int
    terminal_id: int
    tx_time: datetime
    amount: float


@dataclass(frozen=True, slots=True)
class OpenPayment:
    """A payment read and featurized under the lock (`FraudOnlineFeatures.payment`)."""

    row: npt.NDArray[np.float32]
    """Its features in the model's order, as float32."""
    record: Callable[[], None]
    """Append it to the card's and the terminal's states and write both online."""


@dataclass(frozen=True, slots=True)
class OpenPayments:
    """Payments read and featurized under the lock (`FraudOnlineFeatures.payments`)."""

    rows: npt.NDArray[np.float32]
    """One row of features per payment, in the order given."""
    record: Callable[[], None]
    """Append every payment to its states and write each changed state online once."""


class FraudOnlineFeatures:
    """Reads the fraud model's features of a transaction and records transactions online."""

    def __init__(
        self, store: FeatureStore, feature_service: str = fraud_repo.fraud_model.name
    ) -> None:
        self._store = store
        self._service_name = feature_service
        self._readers: tuple[ViewReader, ViewReader] | None = None
        # `record` reads, appends and writes back; two threads recording for the same card
        # would lose one transaction. One lock per process (the API's thread pool); several
        # processes writing the same entities need one writer per entity (e.g. by card).
        self._record_lock = threading.Lock()
        self._last_stamp = datetime.min.replace(tzinfo=UTC)
        self._push_targets: dict[str, list[tuple[FeatureView, SqliteViewWriter | None]]] = {}

    @cached_property
    def local(self) -> bool:
        """Whether the online store is a local file (SQLite): a read or a write then takes
        a fraction of a millisecond, its lock wait bounded (`features.store.bound_serving_reads`),
        and scoring runs on the event loop instead of the thread pool."""
        return isinstance(self._store.provider.online_store, SqliteOnlineStore)

    def _state_readers(self) -> tuple[ViewReader, ViewReader]:
        if self._readers is None:
            try:
                self._readers = (
                    ViewReader.of(
                        self._store, fraud_repo.fraud_customer_state.name, _CUSTOMER_STATE
                    ),
                    ViewReader.of(
                        self._store, fraud_repo.fraud_terminal_state.name, _TERMINAL_STATE
                    ),
                )
            except Exception as error:  # registry unreadable: a dependency failure
                # Logged whole; the answer names the failure, not the registry's address.
                logger.warning("cannot resolve the fraud states: %s", error)
                raise FeatureStoreUnavailable(
                    f"cannot resolve the fraud states: {type(error).__name__}"
                ) from error
        return self._readers

    def _read_states(
        self, customer_ids: Sequence[int], terminal_ids: Sequence[int]
    ) -> tuple[dict[int, CustomerHistory], dict[int, TerminalHistory]]:
        """The states of these cards and terminals: one online read per state view for all
        of them; an entity never seen has an empty history."""
        customers, terminals = self._state_readers()
        card_ids = list(dict.fromkeys(customer_ids))
        terminal_keys = list(dict.fromkeys(terminal_ids))
        return (
            {
                key: _customer(state)
                for key, state in zip(card_ids, customers.read_protos(card_ids), strict=True)
            },
            {
                key: _terminal(state)
                for key, state in zip(
                    terminal_keys, terminals.read_protos(terminal_keys), strict=True
                )
            },
        )

    def _states(
        self, customer_id: int, terminal_id: int
    ) -> tuple[CustomerHistory, TerminalHistory]:
        """The card's and the terminal's state: one online read each; never seen is empty."""
        customers, terminals = self._read_states([customer_id], [terminal_id])
        return customers[customer_id], terminals[terminal_id]

    def _row(
        self,
        customer: CustomerHistory,
        terminal: TerminalHistory,
        payment: Payment,
        tx_time_ns: int,
        feature_names: Sequence[str],
    ) -> npt.NDArray[np.float32]:
        values = online_fraud_features(
            customer, terminal, tx_time_ns, float(payment.amount), payment.terminal_id
        )
        try:
            return np.asarray([values[name] for name in feature_names], dtype=np.float32)
        except KeyError:
            missing = [name for name in feature_names if name not in values]
            raise FeatureStoreUnavailable(
                f"feature service '{self._service_name}' lacks {missing[:5]}"
            ) from None

    def row(
        self,
        customer_id: int,
        terminal_id: int,
        tx_time: datetime,
        amount: float,
        feature_names: Sequence[str],
    ) -> np.ndarray:
        """The transaction's features in `feature_names` order, as float32 (nothing recorded)."""
        payment = Payment(customer_id, terminal_id, tx_time, amount)
        t = _epoch_ns(tx_time)
        customer, terminal = self._states(customer_id, terminal_id)
        return self._row(customer, terminal, payment, t, feature_names)

    def record(self, customer_id: int, terminal_id: int, tx_time: datetime, amount: float) -> None:
        """Append the transaction to the card's and the terminal's state and write both online.

        The terminal entry's label is pending (0) until the label flow republishes the
        terminal's state; see `features.fraud_online`. Scoring and recording a payment
        together is `payment` (one read instead of two).
        """
        t = _epoch_ns(tx_time)
        with self._record_lock:
            customer, terminal = self._states(customer_id, terminal_id)
            self._write_states(
                {customer_id: append_customer_transaction(customer, t, float(amount), terminal_id)},
                {terminal_id: append_terminal_transaction(terminal, t)},
            )

    @contextmanager
    def payment(
        self,
        customer_id: int,
        terminal_id: int,
        tx_time: datetime,
        amount: float,
        feature_names: Sequence[str],
    ) -> Iterator[OpenPayment]:
        """Score a payment, then record it, with one read of each state: `row` and `record`
        in one, for the scoring path.

            with features.payment(card, terminal, when, amount, names) as open_payment:
                score(open_payment.row)  # ... and log it
                open_payment.record()    # only now does it join the windows

        The states read are the ones appended to: this object's lock is held from the read
        to the end of the block, so no other payment of this process comes in between.
        Leaving the block without `record` (the log refused the payment) writes nothing.
        """
        with self.payments(
            [Payment(customer_id, terminal_id, tx_time, amount)], feature_names
        ) as batch:
            yield OpenPayment(row=batch.rows[0], record=batch.record)

    @contextmanager
    def payments(
        self, payments: Sequence[Payment], feature_names: Sequence[str]
    ) -> Iterator[OpenPayments]:
        """`payment` for several payments, in the order given (a stream consumer's batch).

        One online read per state view for all the cards and terminals, the features of
        each payment from the states with the payments before it appended (what scoring
        them one by one, recording each, gives), and on `record` one write per state view
        with every changed state. `record` records all of them or none.
        """
        times = [_epoch_ns(payment.tx_time) for payment in payments]
        rows = np.empty((len(payments), len(feature_names)), dtype=np.float32)
        with self._record_lock:
            customers, terminals = self._read_states(
                [p.customer_id for p in payments], [p.terminal_id for p in payments]
            )
            for i, (payment, t) in enumerate(zip(payments, times, strict=True)):
                customer, terminal = customers[payment.customer_id], terminals[payment.terminal_id]
                rows[i] = self._row(customer, terminal, payment, t, feature_names)
                customers[payment.customer_id] = append_customer_transaction(
                    customer, t, float(payment.amount), payment.terminal_id
                )
                terminals[payment.terminal_id] = append_terminal_transaction(terminal, t)
            yield OpenPayments(rows=rows, record=lambda: self._write_states(customers, terminals))

    def read_states(
        self, customer_ids: Sequence[int], terminal_ids: Sequence[int]
    ) -> tuple[dict[int, CustomerHistory], dict[int, TerminalHistory]]:
        """The states of these cards and terminals, one online read per state view: with
        `write_states`, the stream scorer's own batch (`serving.fraud_stream`), which must
        keep the states it writes in its intent before writing them."""
        return self._read_states(customer_ids, terminal_ids)

    def write_states(
        self, customers: Mapping[int, CustomerHistory], terminals: Mapping[int, TerminalHistory]
    ) -> None:
        """Write whole states online, one write per state view. Writing the same states
        twice leaves what writing them once does: the stream scorer's recovery relies on it."""
        with self._record_lock:
            self._write_states(customers, terminals)

    def _write_states(
        self, customers: Mapping[int, CustomerHistory], terminals: Mapping[int, TerminalHistory]
    ) -> None:
        """Write these cards' and terminals' states online: one write per state view."""
        stamp = self._next_stamp()
        self._push(
            fraud_repo.CUSTOMER_STATE_PUSH,
            CUSTOMER_KEY,
            {
                key: {
                    CUSTOMER_TIMES: state.times_ns,
                    CUSTOMER_AMOUNTS: state.amounts,
                    CUSTOMER_TERMINALS: state.terminal_ids,
                }
                for key, state in customers.items()
            },
            stamp,
        )
        self._push(
            fraud_repo.TERMINAL_STATE_PUSH,
            TERMINAL_KEY,
            {
                key: {TERMINAL_TIMES: state.times_ns, TERMINAL_FRAUDS: state.frauds}
                for key, state in terminals.items()
            },
            stamp,
        )

    def relabel_terminal(
        self, terminal_id: int, times_ns: Sequence[int], frauds: Sequence[int]
    ) -> int:
        """Write the investigated labels of the terminal's payments at `times_ns` online.

        The pending entries that `record` appended get their true labels before they
        enter the terminal's delayed windows. Returns how many entries were matched; with
        none, nothing is written. The read and the write hold this object's lock, as
        `record` does; another process recording at the same terminal in between would
        lose its payment (one writer per terminal, see `__init__`).
        """
        _, terminals = self._state_readers()
        with self._record_lock:
            [state] = terminals.read_protos([terminal_id])
            history = _terminal(state)
            relabelled, matched = relabel_terminal_history(history, times_ns, frauds)
            if matched:
                self._push(
                    fraud_repo.TERMINAL_STATE_PUSH,
                    TERMINAL_KEY,
                    {
                        terminal_id: {
                            TERMINAL_TIMES: relabelled.times_ns,
                            TERMINAL_FRAUDS: relabelled.frauds,
                        }
                    },
                    self._next_stamp(),
                )
        return matched

    def health(self) -> str | None:
        """None when both states' store answers and holds its publish; else why not."""
        try:
            readers = self._state_readers()
        except FeatureStoreUnavailable as error:
            return error.detail
        return next(filter(None, (reader.health() for reader in readers)), None)

    def ping(self) -> bool:
        """True when the online store is healthy (for readiness; see `health`)."""
        return self.health() is None

    def _push(
        self,
        push_source: str,
        join_key: str,
        states: Mapping[int, _State],
        stamp: datetime,
    ) -> None:
        """What `store.push(..., to=PushMode.ONLINE)` does, minus its per-call overhead.

        Feast's push rebuilds every feature view and service from the registry on each
        call (three listings, type-checked by typeguard) and wants a DataFrame: about 60 ms
        per push on this machine. The views fed by each push source are looked up once
        here. On SQLite the rows go straight to Feast's table in one statement
        (`serving.online_features.SqliteViewWriter`); elsewhere (Redis) to the online
        store's own `online_write_batch` as protos, in one call.
        """
        values = {
            key: {name: _list_value(array) for name, array in state.items()}
            for key, state in states.items()
        }
        try:
            for view, writer in self._views_fed_by(push_source):
                if writer is not None:
                    writer.write(
                        [
                            (entity_key, name, value.SerializeToString())
                            for entity_key, state in zip(
                                self._serialized_keys(join_key, list(values)),
                                values.values(),
                                strict=True,
                            )
                            for name, value in state.items()
                        ],
                        stamp,
                    )
                    continue
                rows: list[
                    tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]
                ] = [
                    (_entity_key_proto(join_key, key), state, stamp, stamp)
                    for key, state in values.items()
                ]
                self._provider().online_write_batch(self._store.config, view, rows, progress=None)
        except Exception as error:
            raise FeatureStoreUnavailable(
                f"online feature store refused a write: {type(error).__name__}"
            ) from error

    def _serialized_keys(self, join_key: str, keys: list[int]) -> list[bytes]:
        """Feast's serialized keys of these cards or terminals, from the state's reader,
        which computes each once."""
        reader = next(r for r in self._state_readers() if r.join_key == join_key)
        return reader.serialized_keys(keys)

    def _views_fed_by(self, push_source: str) -> list[tuple[FeatureView, SqliteViewWriter | None]]:
        """The views `push_source` feeds, each with its direct SQLite writer (None where
        Feast's own write is kept)."""
        if push_source not in self._push_targets:
            self._push_targets[push_source] = [
                (view, SqliteViewWriter.of(self._store, view))
                for view in self._store.list_feature_views()
                if isinstance(view.stream_source, PushSource)
                and view.stream_source.name == push_source
            ]
        return self._push_targets[push_source]

    def _provider(self) -> Provider:
        # The store's own provider: its online store keeps one client, configured once
        # (`features.store.feature_store` sets its retry policy).
        return self._store.provider

    def _next_stamp(self) -> datetime:
        """Now, but strictly after this process's previous write."""
        self._last_stamp = max(datetime.now(UTC), self._last_stamp + _STAMP_STEP)
        return self._last_stamp


def _list_value(array: npt.NDArray[np.int64] | npt.NDArray[np.float64]) -> ValueProto:
    if array.dtype.kind == "i":
        return ValueProto(int64_list_val=Int64List(val=array.tolist()))
    return ValueProto(double_list_val=DoubleList(val=array.tolist()))


def _customer(state: Mapping[str, ValueProto] | None) -> CustomerHistory:
    """A card's history from its stored values; never seen (None) is an empty one."""
    if state is None or CUSTOMER_TIMES not in state:
        return CustomerHistory.empty()
    return CustomerHistory(
        np.array(state[CUSTOMER_TIMES].int64_list_val.val, dtype=np.int64),
        np.array(state[CUSTOMER_AMOUNTS].double_list_val.val, dtype=np.float64),
        np.array(state[CUSTOMER_TERMINALS].int64_list_val.val, dtype=np.int64),
    )


def _terminal(state: Mapping[str, ValueProto] | None) -> TerminalHistory:
    """A terminal's history from its stored values; never seen (None) is an empty one."""
    if state is None or TERMINAL_TIMES not in state:
        return TerminalHistory.empty()
    return TerminalHistory(
        np.array(state[TERMINAL_TIMES].int64_list_val.val, dtype=np.int64),
        np.array(state[TERMINAL_FRAUDS].int64_list_val.val, dtype=np.int64),
    )


def _entity_key_proto(join_key: str, key: int) -> EntityKeyProto:
    return EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(int64_val=key)])


def _epoch_ns(tx_time: datetime) -> int:
    try:
        return epoch_ns(tx_time)
    except (ValueError, OverflowError) as error:  # the contract's range keeps both out
        raise InvalidInput(str(error)) from error
