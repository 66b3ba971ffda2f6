"""The churn transforms on their own: hand-made customers, exact expected values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.churn_frames import feature_frame, label_frame
from features.churn_schema import INTERNET_ADDONS
from features.churn_transforms import (
    CHURN_FEATURES,
    charges_features,
    churn_features,
    interaction_features,
    one_hot_encodings,
    service_count,
    tenure_features,
)

BASE = {
    "gender": "Female",
    "SeniorCitizen": 0,
    "Partner": "Yes",
    "Dependents": "No",
    "tenure": 12,
    "PhoneService": "Yes",
    "MultipleLines": "No",
    "InternetService": "DSL",
    "OnlineSecurity": "Yes",
    "OnlineBackup": "No",
    "DeviceProtection": "No",
    "TechSupport": "Yes",
    "StreamingTV": "No",
    "StreamingMovies": "No",
    "Contract": "One year",
    "PaperlessBilling": "No",
    "PaymentMethod": "Mailed check",
    "MonthlyCharges": 60.0,
    "TotalCharges": 700.0,
}


def columns(*customers: dict[str, object]) -> dict[str, np.ndarray]:
    rows = [{**BASE, **c} for c in customers]
    return {key: np.asarray([r[key] for r in rows]) for key in BASE}


def test_every_feature_is_numeric_and_in_declared_order() -> None:
    out = churn_features(columns({}, {"tenure": 0, "TotalCharges": np.nan}))
    assert tuple(out) == CHURN_FEATURES
    assert len(set(CHURN_FEATURES)) == len(CHURN_FEATURES)
    for name, values in out.items():
        assert values.dtype == np.float64, name
        assert np.isfinite(values).all(), name


def test_one_hot_levels_are_exclusive_and_no_internet_is_the_baseline() -> None:
    out = one_hot_encodings(columns({"InternetService": "No"}, {"InternetService": "Fiber optic"}))
    assert out["internet_dsl"].tolist() == [0, 0]
    assert out["internet_fiber"].tolist() == [0, 1]
    contracts = np.stack([out[f"contract_{n}"] for n in ("month_to_month", "one_year", "two_year")])
    payments = np.stack(
        [
            out[f"payment_{n}"]
            for n in ("electronic_check", "mailed_check", "bank_transfer", "credit_card")
        ]
    )
    assert contracts.sum(axis=0).tolist() == [1, 1]
    assert payments.sum(axis=0).tolist() == [1, 1]


@pytest.mark.parametrize(
    ("tenure", "bucket"),
    [(0, 0), (5, 0), (6, 1), (11, 1), (12, 2), (23, 2), (24, 3), (48, 4), (72, 4)],
)
def test_tenure_buckets(tenure: int, bucket: int) -> None:
    out = tenure_features(columns({"tenure": tenure}))
    assert out["tenure_bucket"][0] == bucket
    assert out["is_new_customer"][0] == (tenure == 0)


def test_service_count_counts_phone_lines_internet_and_addons() -> None:
    everything = {
        "MultipleLines": "Yes",
        "InternetService": "Fiber optic",
        **dict.fromkeys(INTERNET_ADDONS, "Yes"),
    }
    phone_only = {"InternetService": "No", **dict.fromkeys(INTERNET_ADDONS, "No internet service")}
    out = service_count(columns(BASE, everything, phone_only))
    # BASE: phone + DSL + online security + tech support
    assert out["service_count"].tolist() == [4, 9, 1]


def test_charges_for_new_customer_with_blank_total() -> None:
    out = charges_features(columns({"tenure": 0, "TotalCharges": np.nan, "MonthlyCharges": 50.0}))
    assert out["total_charges"][0] == 0
    assert out["total_charges_missing"][0] == 1
    assert out["avg_monthly_charges"][0] == 50
    assert out["charges_ratio"][0] == 1


def test_charges_ratio_below_one_after_a_price_rise() -> None:
    # 12 months billed at 50, the bill is now 60: history / (tenure x today's bill) < 1
    out = charges_features(columns({"tenure": 12, "TotalCharges": 600.0, "MonthlyCharges": 60.0}))
    assert out["avg_monthly_charges"][0] == pytest.approx(50.0)
    assert out["charges_ratio"][0] == pytest.approx(600 / 720)
    assert out["charges_per_service"][0] == pytest.approx(60 / 4)


def test_tenure_contract_interaction_is_zero_off_month_to_month() -> None:
    out = interaction_features(
        columns({"Contract": "Month-to-month", "tenure": 7}, {"Contract": "Two year", "tenure": 7})
    )
    assert out["tenure_x_month_to_month"].tolist() == [7, 0]


def test_single_row_equals_batch_row() -> None:
    """Serving computes one row at a time; it must equal the same row of a batch."""
    batch = churn_features(
        columns(
            {}, {"tenure": 40, "Contract": "Month-to-month"}, {"tenure": 0, "TotalCharges": np.nan}
        )
    )
    single = churn_features(columns({"tenure": 40, "Contract": "Month-to-month"}))
    for name in CHURN_FEATURES:
        assert single[name][0] == batch[name][1], name


def test_feature_and_label_frames_share_keys_and_timestamps() -> None:
    raw = pd.DataFrame(
        [
            {**BASE, "customerID": "0001-AAAAA", "Churn": "Yes"},
            {**BASE, "customerID": "0002-BBBBB", "Churn": "No"},
        ]
    )
    raw["event_timestamp"] = pd.Timestamp("2025-03-01", tz="UTC")
    features = feature_frame(raw)
    labels = label_frame(raw)
    assert list(features.columns[:2]) == ["customer_id", "event_timestamp"]
    assert list(features.columns[2:]) == list(CHURN_FEATURES)
    assert labels["churn"].tolist() == [1, 0]
    assert (features["customer_id"] == labels["customer_id"]).all()
    assert str(labels["event_timestamp"].dtype) == "datetime64[ns, UTC]"
