"""The fraud window features of `features.fraud_windows`, partitioned over a Dask cluster.

Each window needs its entity's whole history, so the transactions are hash-partitioned
twice: by CUSTOMER_ID for the customer windows and habits (a customer's (customer,
terminal) pairs are inside its partition too), by TERMINAL_ID for the terminal windows.
Every partition then runs the same pure functions as the in-process computation, and
the two halves are joined on TRANSACTION_ID. Those functions make each value depend
only on its entity's rows, ordered by (time, transaction id) whatever the input order,
so the features are identical, to the last bit, to `fraud_window_features` on the whole
frame (tests/features/test_fraud_windows_dask.py compares them).

No worker ever holds more than its partitions: memory grows with the partition size,
not with the dataset.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.fraud_schema import CUSTOMER_ID, TERMINAL_ID, TRANSACTION_ID
from features.fraud_windows import (
    DEFAULT_LABEL_DELAY_DAYS,
    DEFAULT_WINDOWS,
    KEY_COLUMNS,
    REQUIRED_COLUMNS,
    calendar_features,
    customer_habit_features,
    customer_spending_windows,
    fraud_feature_names,
    fraud_window_features,
    terminal_risk_windows,
)

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

# About 100 MB of input per partition: small enough for many partitions per worker,
# large enough that the per-partition overhead (sorts, scheduling) stays small.
ROWS_PER_PARTITION = 500_000


def _customer_part(
    part: pd.DataFrame, windows: tuple[int, ...], carried: tuple[str, ...]
) -> pd.DataFrame:
    """Keys, calendar and customer features of one partition holding whole customers."""
    features = {
        **calendar_features(part),
        **customer_spending_windows(part, windows),
        **customer_habit_features(part),
    }
    keys = {column: part[column] for column in (*KEY_COLUMNS, *carried)}
    return pd.DataFrame({**keys, **features}, index=part.index, copy=False)


def _terminal_part(
    part: pd.DataFrame, label_delay_days: int, windows: tuple[int, ...]
) -> pd.DataFrame:
    """TRANSACTION_ID and the terminal features of one partition holding whole terminals."""
    features = terminal_risk_windows(part, label_delay_days, windows)
    return pd.DataFrame(
        {TRANSACTION_ID: part[TRANSACTION_ID], **features}, index=part.index, copy=False
    )


def fraud_window_features_dask(
    transactions: dd.DataFrame,
    *,
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
    windows: tuple[int, ...] = DEFAULT_WINDOWS,
    npartitions: int | None = None,
    carried: tuple[str, ...] = (),
) -> dd.DataFrame:
    """The features of `fraud_window_features`, lazily, one row per transaction.

    Same columns and values as the in-process function, then the input's `carried`
    columns (the label, say); rows come in no particular order (index unspecified): join
    on TRANSACTION_ID, which must be unique. `npartitions` is the number of entity
    partitions (default: the input's).
    """
    # The checks of the in-process function, on the (empty) metadata: a bad input fails
    # here, before any work is scheduled.
    fraud_window_features(transactions._meta, label_delay_days=label_delay_days, windows=windows)
    inputs = transactions[list(dict.fromkeys((*REQUIRED_COLUMNS, *carried)))]
    npartitions = npartitions or inputs.npartitions
    customers = inputs.shuffle(on=CUSTOMER_ID, npartitions=npartitions).map_partitions(
        _customer_part, windows, carried, meta=_customer_part(inputs._meta, windows, carried)
    )
    terminals = inputs.shuffle(on=TERMINAL_ID, npartitions=npartitions).map_partitions(
        _terminal_part,
        label_delay_days,
        windows,
        meta=_terminal_part(inputs._meta, label_delay_days, windows),
    )
    joined = customers.merge(terminals, on=TRANSACTION_ID, how="inner", npartitions=npartitions)
    return joined[[*KEY_COLUMNS, *fraud_feature_names(windows), *carried]]


def scatter_frame(frame: pd.DataFrame, client: Client, npartitions: int) -> dd.DataFrame:
    """`frame` as a Dask frame of `npartitions` consecutive pieces, sent to the workers.

    Scattered, not embedded in the task graph: a graph holding the data goes to the
    scheduler whole (80 MB for the default fraud transactions, 320 MB for their features)
    and then on to the workers.
    """
    import dask.dataframe as dd

    bounds = np.linspace(0, len(frame), npartitions + 1).astype(int)
    pieces = [frame.iloc[start:end] for start, end in pairwise(bounds)]
    return dd.from_delayed(client.scatter(pieces), meta=frame.iloc[:0], verify_meta=False)


def fraud_window_features_on_cluster(
    transactions: pd.DataFrame,
    client: Client,
    *,
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
    windows: tuple[int, ...] = DEFAULT_WINDOWS,
) -> pd.DataFrame:
    """`fraud_window_features` of an in-memory frame, computed on `client`'s cluster.

    The result is the in-process one: same rows in the input's order and index.
    """
    npartitions = max(1, math.ceil(len(transactions) / ROWS_PER_PARTITION))
    frame = transactions[list(REQUIRED_COLUMNS)]
    features = fraud_window_features_dask(
        scatter_frame(frame, client, npartitions),
        label_delay_days=label_delay_days,
        windows=windows,
        npartitions=npartitions,
    )
    computed = client.compute(features).result()
    by_id = computed.set_index(TRANSACTION_ID)
    ordered = by_id.loc[transactions[TRANSACTION_ID].to_numpy()].reset_index()
    ordered.index = transactions.index
    # Keys as the input has them (dtypes included), features as computed.
    for column in KEY_COLUMNS:
        ordered[column] = transactions[column]
    return ordered[[*KEY_COLUMNS, *fraud_feature_names(windows)]]
