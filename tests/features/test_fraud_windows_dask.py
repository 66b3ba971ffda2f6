"""The fraud window features partitioned on a Dask cluster equal the in-process ones."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from distributed import Client

from features import fraud_windows_dask
from features.fraud_schema import CUSTOMER_ID, TERMINAL_ID, TRANSACTION_ID
from features.fraud_windows import fraud_window_features
from features.fraud_windows_dask import (
    fraud_window_features_dask,
    fraud_window_features_on_cluster,
)
from sources.fraud_simulator import simulate_transactions


@pytest.fixture(scope="module")
def client(dask_cluster: str) -> Iterator[Client]:
    with Client(dask_cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    """A few thousand shuffled transactions: customers and terminals span partitions."""
    frame = simulate_transactions(80, 160, 60, seed=11)
    return frame.sample(frac=1.0, random_state=3)


def test_partitioned_features_are_identical_to_in_process(
    client: Client, transactions: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small partitions, so every entity's history has to be gathered from several.
    monkeypatch.setattr(fraud_windows_dask, "ROWS_PER_PARTITION", len(transactions) // 5)
    expected = fraud_window_features(transactions)
    actual = fraud_window_features_on_cluster(transactions, client)
    pd.testing.assert_frame_equal(actual, expected, check_exact=True)
    # Not a trivially equal frame: the windows saw history.
    assert (expected["customer_nb_tx_7d"] > 0).mean() > 0.5
    assert (expected["terminal_nb_tx_30d"] > 0).mean() > 0.5


def test_each_entity_meets_its_whole_history_in_one_partition(
    client: Client, transactions: pd.DataFrame
) -> None:
    import dask.dataframe as dd

    # Input partitions cut by row, so each customer and terminal is spread over all of them.
    lazy = fraud_window_features_dask(
        dd.from_pandas(transactions, npartitions=4, sort=False),
        label_delay_days=3,
        windows=(2, 14),
        npartitions=3,
    )
    actual = client.compute(lazy).result().set_index(TRANSACTION_ID).sort_index()
    expected = (
        fraud_window_features(transactions, label_delay_days=3, windows=(2, 14))
        .set_index(TRANSACTION_ID)
        .sort_index()
    )
    pd.testing.assert_frame_equal(actual, expected, check_exact=True)
    assert transactions.groupby(CUSTOMER_ID).size().max() > 20
    assert transactions.groupby(TERMINAL_ID).size().max() > 10


def test_bad_input_fails_before_any_work(transactions: pd.DataFrame) -> None:
    import dask.dataframe as dd

    lazy = dd.from_pandas(transactions.drop(columns=["TX_FRAUD"]), npartitions=2)
    with pytest.raises(ValueError, match="TX_FRAUD"):
        fraud_window_features_dask(lazy)
