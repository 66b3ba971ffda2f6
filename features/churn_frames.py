"""Batch side of the churn features: validated raw rows to the offline feature and label tables."""

from __future__ import annotations

import pandas as pd

from features.churn_schema import ID_COLUMN, LABEL_COLUMN, RAW_COLUMNS, TIMESTAMP_COLUMN
from features.churn_transforms import churn_features

ENTITY_KEY = "customer_id"
LABEL = "churn"


def feature_frame(valid: pd.DataFrame) -> pd.DataFrame:
    """One row per customer snapshot: entity key, event timestamp, then the model features."""
    columns = {c: valid[c].to_numpy() for c in RAW_COLUMNS if c in valid.columns}
    features = pd.DataFrame(churn_features(columns), index=valid.index)
    keys = pd.DataFrame(
        {
            ENTITY_KEY: valid[ID_COLUMN].astype(str),
            TIMESTAMP_COLUMN: _utc_ns(valid[TIMESTAMP_COLUMN]),
        },
        index=valid.index,
    )
    return pd.concat([keys, features], axis=1).reset_index(drop=True)


def label_frame(valid: pd.DataFrame) -> pd.DataFrame:
    """The entity frame for point-in-time joins: who, when observed, and whether they churned."""
    return pd.DataFrame(
        {
            ENTITY_KEY: valid[ID_COLUMN].astype(str),
            TIMESTAMP_COLUMN: _utc_ns(valid[TIMESTAMP_COLUMN]),
            LABEL: (valid[LABEL_COLUMN] == "Yes").astype("int64"),
        }
    ).reset_index(drop=True)


def _utc_ns(values: pd.Series) -> pd.Series:
    # One timestamp type everywhere, so joins and parquet files never disagree on units.
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")
