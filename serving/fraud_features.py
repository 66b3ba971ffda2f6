"""Online fraud features for serving: score a transaction from the card's and terminal's state.

`row` reads the card's and the terminal's state (one online read each) and computes the
window features at the request's time and amount with `features.fraud_online`, the
function the `fraud_model` service's on-demand view runs: the same values as
`get_online_features` on that service (a test checks), without its generic path
(`serving.online_features`). `record` appends the transaction to both states and pushes
them back online, so the next transaction of the card or terminal sees it.

A card or terminal the store has never seen is not an error here: a new card has an
empty history, and its features follow the empty-window conventions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
from feast import FeatureStore, FeatureView, PushSource
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
from serving.online_features import ViewReader

logger = logging.getLogger(__name__)

_CUSTOMER_STATE = (CUSTOMER_TIMES, CUSTOMER_AMOUNTS, CUSTOMER_TERMINALS)
_TERMINAL_STATE = (TERMINAL_TIMES, TERMINAL_FRAUDS)
_State = dict[str, npt.NDArray[np.int64] | npt.NDArray[np.float64]]
# Two writes of one state must carry distinct stamps, or Redis keeps the first one.
_STAMP_STEP = timedelta(microseconds=1)


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
        self._push_targets: dict[str, list[FeatureView]] = {}

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

    def _states(
        self, customer_id: int, terminal_id: int
    ) -> tuple[CustomerHistory, TerminalHistory]:
        """The card's and the terminal's state: one online read each; never seen is empty."""
        customers, terminals = self._state_readers()
        [customer] = customers.read([customer_id])
        [terminal] = terminals.read([terminal_id])
        customer = customer or {}
        terminal = terminal or {}
        return (
            CustomerHistory.from_lists(*(customer.get(name) for name in _CUSTOMER_STATE)),
            TerminalHistory.from_lists(*(terminal.get(name) for name in _TERMINAL_STATE)),
        )

    def row(
        self,
        customer_id: int,
        terminal_id: int,
        tx_time: datetime,
        amount: float,
        feature_names: Sequence[str],
    ) -> np.ndarray:
        """The transaction's features in `feature_names` order, as float32."""
        t = _epoch_ns(tx_time)
        customer, terminal = self._states(customer_id, terminal_id)
        values = online_fraud_features(customer, terminal, t, float(amount), terminal_id)
        missing = [name for name in feature_names if name not in values]
        if missing:
            raise FeatureStoreUnavailable(
                f"feature service '{self._service_name}' lacks {missing[:5]}"
            )
        return np.asarray([values[name] for name in feature_names], dtype=np.float32)

    def record(self, customer_id: int, terminal_id: int, tx_time: datetime, amount: float) -> None:
        """Append the transaction to the card's and the terminal's state and write both online.

        The terminal entry's label is pending (0) until the label flow republishes the
        terminal's state; see `features.fraud_online`.
        """
        t = _epoch_ns(tx_time)
        with self._record_lock:
            customer_state, terminal_state = self._states(customer_id, terminal_id)
            customer = append_customer_transaction(customer_state, t, float(amount), terminal_id)
            terminal = append_terminal_transaction(terminal_state, t)
            stamp = self._next_stamp()
            self._push(
                fraud_repo.CUSTOMER_STATE_PUSH,
                (CUSTOMER_KEY, customer_id),
                {
                    CUSTOMER_TIMES: customer.times_ns,
                    CUSTOMER_AMOUNTS: customer.amounts,
                    CUSTOMER_TERMINALS: customer.terminal_ids,
                },
                stamp,
            )
            self._push(
                fraud_repo.TERMINAL_STATE_PUSH,
                (TERMINAL_KEY, terminal_id),
                {
                    TERMINAL_TIMES: terminal.times_ns,
                    TERMINAL_FRAUDS: terminal.frauds,
                },
                stamp,
            )

    def read_states(
        self, customer_ids: Iterable[int], terminal_ids: Iterable[int]
    ) -> tuple[dict[int, CustomerHistory], dict[int, TerminalHistory]]:
        """The states of many cards and terminals: one online read per view, never seen
        is empty. With `write_states`, the batch form of `row` and `record` (the stream
        scorer, `serving.fraud_stream`)."""
        customers_reader, terminals_reader = self._state_readers()
        customer_keys, terminal_keys = (
            list(dict.fromkeys(customer_ids)),
            list(dict.fromkeys(terminal_ids)),
        )
        customers = customers_reader.read(customer_keys) if customer_keys else []
        terminals = terminals_reader.read(terminal_keys) if terminal_keys else []
        return (
            {
                key: CustomerHistory.from_lists(*((state or {}).get(n) for n in _CUSTOMER_STATE))
                for key, state in zip(customer_keys, customers, strict=True)
            },
            {
                key: TerminalHistory.from_lists(*((state or {}).get(n) for n in _TERMINAL_STATE))
                for key, state in zip(terminal_keys, terminals, strict=True)
            },
        )

    def write_states(
        self, customers: Mapping[int, CustomerHistory], terminals: Mapping[int, TerminalHistory]
    ) -> None:
        """Write whole states online, one batch per view. Writing the same states twice
        leaves what writing them once does: the stream scorer's recovery relies on it."""
        with self._record_lock:
            stamp = self._next_stamp()
            self._push_rows(
                fraud_repo.CUSTOMER_STATE_PUSH,
                CUSTOMER_KEY,
                [
                    (
                        key,
                        {
                            CUSTOMER_TIMES: state.times_ns,
                            CUSTOMER_AMOUNTS: state.amounts,
                            CUSTOMER_TERMINALS: state.terminal_ids,
                        },
                    )
                    for key, state in customers.items()
                ],
                stamp,
            )
            self._push_rows(
                fraud_repo.TERMINAL_STATE_PUSH,
                TERMINAL_KEY,
                [
                    (key, {TERMINAL_TIMES: state.times_ns, TERMINAL_FRAUDS: state.frauds})
                    for key, state in terminals.items()
                ],
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
            [state] = terminals.read([terminal_id])
            state = state or {}
            history = TerminalHistory.from_lists(*(state.get(name) for name in _TERMINAL_STATE))
            relabelled, matched = relabel_terminal_history(history, times_ns, frauds)
            if matched:
                self._push(
                    fraud_repo.TERMINAL_STATE_PUSH,
                    (TERMINAL_KEY, terminal_id),
                    {TERMINAL_TIMES: relabelled.times_ns, TERMINAL_FRAUDS: relabelled.frauds},
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
        self, push_source: str, entity: tuple[str, int], state: _State, stamp: datetime
    ) -> None:
        """What `store.push(..., to=PushMode.ONLINE)` does, minus its per-call overhead.

        Feast's push rebuilds every feature view and service from the registry on each
        call (three listings, type-checked by typeguard) and wants a DataFrame: about 60 ms
        per push on this machine. The views fed by each push source are looked up once
        here, and the one row is written straight to the online store as protos.
        """
        key = EntityKeyProto(join_keys=[entity[0]], entity_values=[ValueProto(int64_val=entity[1])])
        values = {
            name: ValueProto(int64_list_val=Int64List(val=array.tolist()))
            if array.dtype.kind == "i"
            else ValueProto(double_list_val=DoubleList(val=array.tolist()))
            for name, array in state.items()
        }
        try:
            for view in self._views_fed_by(push_source):
                self._provider().online_write_batch(
                    self._store.config, view, [(key, values, stamp, stamp)], progress=None
                )
        except Exception as error:
            raise FeatureStoreUnavailable(
                f"online feature store refused a write: {type(error).__name__}"
            ) from error

    def _push_rows(
        self, push_source: str, join_key: str, rows: list[tuple[int, _State]], stamp: datetime
    ) -> None:
        """`_push` of many entities of one view, in one online-store call."""
        if not rows:
            return
        batch: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]] = [
            (
                EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(int64_val=key)]),
                {
                    name: ValueProto(int64_list_val=Int64List(val=array.tolist()))
                    if array.dtype.kind == "i"
                    else ValueProto(double_list_val=DoubleList(val=array.tolist()))
                    for name, array in state.items()
                },
                stamp,
                stamp,
            )
            for key, state in rows
        ]
        try:
            for view in self._views_fed_by(push_source):
                self._provider().online_write_batch(self._store.config, view, batch, progress=None)
        except Exception as error:
            raise FeatureStoreUnavailable(
                f"online feature store refused a write: {type(error).__name__}"
            ) from error

    def _views_fed_by(self, push_source: str) -> list[FeatureView]:
        if push_source not in self._push_targets:
            self._push_targets[push_source] = [
                view
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


def _epoch_ns(tx_time: datetime) -> int:
    try:
        return epoch_ns(tx_time)
    except (ValueError, OverflowError) as error:  # the contract's range keeps both out
        raise InvalidInput(str(error)) from error
