"""Churn feature transforms: pure functions from validated raw columns to model features.

The same code runs in the batch pipeline (columns of a whole frame) and at request
time in the API (columns of length one), so training and serving cannot disagree.
Inputs are column arrays keyed by the raw Telco names; nothing here needs pandas.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from features.churn_schema import INTERNET_ADDONS

Columns = Mapping[str, np.ndarray]
FeatureColumns = dict[str, np.ndarray]

# Tenure buckets in months: [0,6), [6,12), [12,24), [24,48), [48,inf) -> 0..4.
TENURE_BUCKET_EDGES = (6, 12, 24, 48)

CONTRACT_LEVELS = {
    "Month-to-month": "month_to_month",
    "One year": "one_year",
    "Two year": "two_year",
}
PAYMENT_LEVELS = {
    "Electronic check": "electronic_check",
    "Mailed check": "mailed_check",
    "Bank transfer (automatic)": "bank_transfer",
    "Credit card (automatic)": "credit_card",
}
INTERNET_LEVELS = {"DSL": "dsl", "Fiber optic": "fiber"}  # "No" is the all-zero baseline
ADDON_FEATURES = {
    "OnlineSecurity": "online_security",
    "OnlineBackup": "online_backup",
    "DeviceProtection": "device_protection",
    "TechSupport": "tech_support",
    "StreamingTV": "streaming_tv",
    "StreamingMovies": "streaming_movies",
}
assert tuple(ADDON_FEATURES) == INTERNET_ADDONS


def _is(values: np.ndarray, level: str) -> np.ndarray:
    return (np.asarray(values) == level).astype(np.float64)


def binary_encodings(raw: Columns) -> FeatureColumns:
    """Yes/No and two-level columns as 0/1; 'No phone/internet service' counts as no."""
    out = {
        "gender_male": _is(raw["gender"], "Male"),
        "senior_citizen": np.asarray(raw["SeniorCitizen"], dtype=np.float64),
        "partner": _is(raw["Partner"], "Yes"),
        "dependents": _is(raw["Dependents"], "Yes"),
        "phone_service": _is(raw["PhoneService"], "Yes"),
        "multiple_lines": _is(raw["MultipleLines"], "Yes"),
        "paperless_billing": _is(raw["PaperlessBilling"], "Yes"),
    }
    for column, name in ADDON_FEATURES.items():
        out[name] = _is(raw[column], "Yes")
    return out


def one_hot_encodings(raw: Columns) -> FeatureColumns:
    """Multi-level categories as one indicator per level (no internet is the baseline)."""
    out: FeatureColumns = {}
    for level, name in INTERNET_LEVELS.items():
        out[f"internet_{name}"] = _is(raw["InternetService"], level)
    for level, name in CONTRACT_LEVELS.items():
        out[f"contract_{name}"] = _is(raw["Contract"], level)
    for level, name in PAYMENT_LEVELS.items():
        out[f"payment_{name}"] = _is(raw["PaymentMethod"], level)
    return out


def tenure_features(raw: Columns) -> FeatureColumns:
    """Tenure in months, its bucket, and a flag for customers in their first month."""
    tenure = np.asarray(raw["tenure"], dtype=np.float64)
    return {
        "tenure_months": tenure,
        "tenure_bucket": np.digitize(tenure, TENURE_BUCKET_EDGES).astype(np.float64),
        "is_new_customer": (tenure == 0).astype(np.float64),
    }


def service_count(raw: Columns) -> FeatureColumns:
    """How many services the customer holds: phone, extra lines, internet and add-ons."""
    count = _is(raw["PhoneService"], "Yes") + _is(raw["MultipleLines"], "Yes")
    count = count + (np.asarray(raw["InternetService"]) != "No").astype(np.float64)
    for column in INTERNET_ADDONS:
        count = count + _is(raw[column], "Yes")
    return {"service_count": count}


def charges_features(raw: Columns) -> FeatureColumns:
    """Charges and their ratios.

    TotalCharges is blank for new customers (NaN after validation): it is set to 0 and
    `total_charges_missing` says so. `charges_ratio` compares the billed history with
    tenure x today's bill: below 1 means the price went up recently.
    """
    tenure = np.asarray(raw["tenure"], dtype=np.float64)
    monthly = np.asarray(raw["MonthlyCharges"], dtype=np.float64)
    total_raw = np.asarray(raw["TotalCharges"], dtype=np.float64)
    missing = np.isnan(total_raw)
    total = np.where(missing, 0.0, total_raw)
    months_billed = np.maximum(tenure, 1.0)
    expected = months_billed * monthly
    services = service_count(raw)["service_count"]
    return {
        "monthly_charges": monthly,
        "total_charges": total,
        "total_charges_missing": missing.astype(np.float64),
        "avg_monthly_charges": np.where(tenure > 0, total / months_billed, monthly),
        "charges_ratio": np.where(missing, 1.0, total / expected),
        "charges_per_service": monthly / np.maximum(services, 1.0),
    }


def interaction_features(raw: Columns) -> FeatureColumns:
    """Interactions the churn literature points at: tenure x contract, fiber x contract."""
    tenure = np.asarray(raw["tenure"], dtype=np.float64)
    month_to_month = _is(raw["Contract"], "Month-to-month")
    fiber = _is(raw["InternetService"], "Fiber optic")
    return {
        "tenure_x_month_to_month": tenure * month_to_month,
        "fiber_x_month_to_month": fiber * month_to_month,
        "electronic_check_x_month_to_month": _is(raw["PaymentMethod"], "Electronic check")
        * month_to_month,
    }


TRANSFORMS: tuple[Callable[[Columns], FeatureColumns], ...] = (
    binary_encodings,
    one_hot_encodings,
    tenure_features,
    service_count,
    charges_features,
    interaction_features,
)


def churn_features(raw: Columns) -> FeatureColumns:
    """All churn model features, in `CHURN_FEATURES` order, as float64 columns."""
    out: FeatureColumns = {}
    for transform in TRANSFORMS:
        out.update(transform(raw))
    return {name: out[name] for name in CHURN_FEATURES}


# The model's feature order. The Feast feature service lists exactly these names.
CHURN_FEATURES: tuple[str, ...] = (
    "gender_male",
    "senior_citizen",
    "partner",
    "dependents",
    "phone_service",
    "multiple_lines",
    "paperless_billing",
    *ADDON_FEATURES.values(),
    *(f"internet_{n}" for n in INTERNET_LEVELS.values()),
    *(f"contract_{n}" for n in CONTRACT_LEVELS.values()),
    *(f"payment_{n}" for n in PAYMENT_LEVELS.values()),
    "tenure_months",
    "tenure_bucket",
    "is_new_customer",
    "service_count",
    "monthly_charges",
    "total_charges",
    "total_charges_missing",
    "avg_monthly_charges",
    "charges_ratio",
    "charges_per_service",
    "tenure_x_month_to_month",
    "fiber_x_month_to_month",
    "electronic_check_x_month_to_month",
)
