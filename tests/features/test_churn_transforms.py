"""The churn transforms on their own: hand-made customers, exact expected values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.churn_frames import feature_frame, label_frame
from features.churn_schema import CATEGORIES, INTERNET_ADDONS
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


def test_charges_in_the_first_billed_month() -> None:
    # One month billed: the history is that month (not the bill), the ratio against it.
    out = charges_features(columns({"tenure": 1, "TotalCharges": 55.0, "MonthlyCharges": 60.0}))
    assert out["avg_monthly_charges"][0] == pytest.approx(55.0)
    assert out["charges_ratio"][0] == pytest.approx(55 / 60)


def test_charges_per_service_with_a_single_service() -> None:
    phone_only = {
        "InternetService": "No",
        **dict.fromkeys(INTERNET_ADDONS, "No internet service"),
        "MonthlyCharges": 20.0,
    }
    assert charges_features(columns(phone_only))["charges_per_service"].tolist() == [20.0]


def test_tenure_contract_interaction_is_zero_off_month_to_month() -> None:
    out = interaction_features(
        columns({"Contract": "Month-to-month", "tenure": 7}, {"Contract": "Two year", "tenure": 7})
    )
    assert out["tenure_x_month_to_month"].tolist() == [7, 0]


# Every raw Telco category of an encoded column and the value its feature must take,
# written out by hand: training and serving share the transform, so only values can
# show an encoding turned upside down (gender_male for "Female", partner for "No").
ENCODED: list[tuple[str, str, str, float]] = [
    ("gender", "Female", "gender_male", 0),
    ("gender", "Male", "gender_male", 1),
    ("Partner", "Yes", "partner", 1),
    ("Partner", "No", "partner", 0),
    ("Dependents", "Yes", "dependents", 1),
    ("Dependents", "No", "dependents", 0),
    ("PhoneService", "Yes", "phone_service", 1),
    ("PhoneService", "No", "phone_service", 0),
    ("PaperlessBilling", "Yes", "paperless_billing", 1),
    ("PaperlessBilling", "No", "paperless_billing", 0),
    ("MultipleLines", "Yes", "multiple_lines", 1),
    ("MultipleLines", "No", "multiple_lines", 0),
    ("MultipleLines", "No phone service", "multiple_lines", 0),
    ("OnlineSecurity", "Yes", "online_security", 1),
    ("OnlineSecurity", "No", "online_security", 0),
    ("OnlineSecurity", "No internet service", "online_security", 0),
    ("OnlineBackup", "Yes", "online_backup", 1),
    ("OnlineBackup", "No", "online_backup", 0),
    ("OnlineBackup", "No internet service", "online_backup", 0),
    ("DeviceProtection", "Yes", "device_protection", 1),
    ("DeviceProtection", "No", "device_protection", 0),
    ("DeviceProtection", "No internet service", "device_protection", 0),
    ("TechSupport", "Yes", "tech_support", 1),
    ("TechSupport", "No", "tech_support", 0),
    ("TechSupport", "No internet service", "tech_support", 0),
    ("StreamingTV", "Yes", "streaming_tv", 1),
    ("StreamingTV", "No", "streaming_tv", 0),
    ("StreamingTV", "No internet service", "streaming_tv", 0),
    ("StreamingMovies", "Yes", "streaming_movies", 1),
    ("StreamingMovies", "No", "streaming_movies", 0),
    ("StreamingMovies", "No internet service", "streaming_movies", 0),
]
# The one-hot columns: each raw level and the indicators it must set, all others 0.
ONE_HOT: list[tuple[str, str, tuple[str, ...]]] = [
    ("InternetService", "DSL", ("internet_dsl",)),
    ("InternetService", "Fiber optic", ("internet_fiber",)),
    ("InternetService", "No", ()),
    ("Contract", "Month-to-month", ("contract_month_to_month",)),
    ("Contract", "One year", ("contract_one_year",)),
    ("Contract", "Two year", ("contract_two_year",)),
    ("PaymentMethod", "Electronic check", ("payment_electronic_check",)),
    ("PaymentMethod", "Mailed check", ("payment_mailed_check",)),
    ("PaymentMethod", "Bank transfer (automatic)", ("payment_bank_transfer",)),
    ("PaymentMethod", "Credit card (automatic)", ("payment_credit_card",)),
]


@pytest.mark.parametrize(("column", "category", "feature", "expected"), ENCODED)
def test_each_telco_category_has_its_hand_written_encoding(
    column: str, category: str, feature: str, expected: float
) -> None:
    out = churn_features(columns({column: category}))
    assert out[feature].tolist() == [expected]


@pytest.mark.parametrize(("column", "category", "indicators"), ONE_HOT)
def test_each_multi_level_category_sets_only_its_own_indicator(
    column: str, category: str, indicators: tuple[str, ...]
) -> None:
    out = churn_features(columns({column: category}))
    prefix = {"InternetService": "internet_", "Contract": "contract_", "PaymentMethod": "payment_"}
    family = {name: out[name][0] for name in CHURN_FEATURES if name.startswith(prefix[column])}
    assert family == {name: float(name in indicators) for name in family}


def test_senior_citizen_is_the_raw_zero_or_one() -> None:
    assert churn_features(columns({"SeniorCitizen": 0}, {"SeniorCitizen": 1}))[
        "senior_citizen"
    ].tolist() == [0, 1]


def test_every_raw_category_of_an_encoded_column_has_an_expected_value() -> None:
    # A category added to the schema must get a hand-written encoding here too.
    written = {(c, v) for c, v, *_ in ENCODED} | {(c, v) for c, v, _ in ONE_HOT}
    for column in {c for c, *_ in ENCODED} | {c for c, *_ in ONE_HOT}:
        assert {(column, v) for v in CATEGORIES[column]} <= written, column


@pytest.mark.parametrize(
    ("customer", "fiber", "electronic_check"),
    [
        ({"InternetService": "Fiber optic", "Contract": "Month-to-month"}, 1, 0),
        ({"InternetService": "Fiber optic", "Contract": "One year"}, 0, 0),
        ({"InternetService": "DSL", "Contract": "Month-to-month"}, 0, 0),
        ({"PaymentMethod": "Electronic check", "Contract": "Month-to-month"}, 0, 1),
        ({"PaymentMethod": "Electronic check", "Contract": "Two year"}, 0, 0),
    ],
)
def test_month_to_month_interactions(
    customer: dict[str, object], fiber: float, electronic_check: float
) -> None:
    out = interaction_features(columns(customer))
    assert out["fiber_x_month_to_month"].tolist() == [fiber]
    assert out["electronic_check_x_month_to_month"].tolist() == [electronic_check]


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
