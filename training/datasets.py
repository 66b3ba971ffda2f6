"""Training sets: splits that respect time, and a fingerprint of the data used."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

SplitStrategy = Literal["time_ordered", "stratified_random"]


@dataclass(frozen=True)
class Split:
    """Training and test rows, how they were split, and the time cutoff if split by time."""

    train: pd.DataFrame
    test: pd.DataFrame
    strategy: SplitStrategy
    cutoff: pd.Timestamp | None


def split_train_test(
    frame: pd.DataFrame,
    *,
    label: str,
    timestamp: str,
    test_size: float = 0.2,
    seed: int = 42,
) -> Split:
    """Hold out the most recent `test_size` of rows, as production would see them.

    Data observed at a single moment (the public Telco CSV is one snapshot) has no
    time to order by: it gets a stratified random split instead, and says so.
    """
    stamps = pd.to_datetime(frame[timestamp], utc=True)
    if stamps.nunique() > 1:
        cutoff = stamps.quantile(1 - test_size)
        is_test = stamps > cutoff
        if 0 < is_test.sum() < len(frame):
            return Split(
                train=frame[~is_test].reset_index(drop=True),
                test=frame[is_test].reset_index(drop=True),
                strategy="time_ordered",
                cutoff=cutoff,
            )
    train, test = train_test_split(
        frame, test_size=test_size, stratify=frame[label], random_state=seed
    )
    return Split(
        train=train.reset_index(drop=True),
        test=test.reset_index(drop=True),
        strategy="stratified_random",
        cutoff=None,
    )


def data_fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a frame (values and column names), stable across runs."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def as_matrix(frame: pd.DataFrame, feature_names: tuple[str, ...] | list[str]) -> np.ndarray:
    """The model input: float32 columns in the model's feature order."""
    return frame.loc[:, list(feature_names)].to_numpy(dtype=np.float32)
