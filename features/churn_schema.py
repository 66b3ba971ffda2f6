"""The raw churn data contract: the IBM Telco Customer Churn schema, declared once.

`validate_churn_frame` splits a raw frame into typed valid rows and quarantined rows,
each quarantined row carrying the reason it failed. Problems that make a whole file
unusable (missing columns, no rows) raise `UnusableSource` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.quarantine import RowChecks, UnusableSource, ValidationResult

ID_COLUMN = "customerID"
LABEL_COLUMN = "Churn"
TIMESTAMP_COLUMN = "event_timestamp"

YES_NO = ("Yes", "No")
NO_PHONE = "No phone service"
NO_INTERNET = "No internet service"
INTERNET_ADDONS = (
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
)

# Allowed values per categorical column, exactly as the public CSV spells them.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "gender": ("Female", "Male"),
    "Partner": YES_NO,
    "Dependents": YES_NO,
    "PhoneService": YES_NO,
    "MultipleLines": ("Yes", "No", NO_PHONE),
    "InternetService": ("DSL", "Fiber optic", "No"),
    **{column: ("Yes", "No", NO_INTERNET) for column in INTERNET_ADDONS},
    "Contract": ("Month-to-month", "One year", "Two year"),
    "PaperlessBilling": YES_NO,
    "PaymentMethod": (
        "Electronic check",
        "Mailed check",
        "Bank transfer (automatic)",
        "Credit card (automatic)",
    ),
}

# A column whose "none" level must appear exactly when the service it depends on is absent:
# (column, its "none" level, the service column, the service's "absent" value).
DEPENDENT_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("MultipleLines", NO_PHONE, "PhoneService", "No"),
    *((column, NO_INTERNET, "InternetService", "No") for column in INTERNET_ADDONS),
)

# The 21 columns of the public CSV, in its order.
RAW_COLUMNS: tuple[str, ...] = (
    ID_COLUMN,
    "gender",
    "SeniorCitizen",
    "Partner",
    "Dependents",
    "tenure",
    "PhoneService",
    "MultipleLines",
    "InternetService",
    *INTERNET_ADDONS,
    "Contract",
    "PaperlessBilling",
    "PaymentMethod",
    "MonthlyCharges",
    "TotalCharges",
    LABEL_COLUMN,
)

MAX_TENURE_MONTHS = 120
MONTHLY_CHARGES_RANGE = (0.0, 500.0)
# TotalCharges is billed history: it cannot exceed tenure x the highest plausible bill.
TOTAL_CHARGES_SLACK = 1.5


def validate_churn_frame(
    raw: pd.DataFrame, source: Path | str, *, require_label: bool = True
) -> ValidationResult:
    """Check every row against the contract; never drop a row without a reason.

    `raw` holds the file as read, every column a string (as `read_csv(dtype=str)` gives).
    A row fails on its first problem: `quarantine_reason` names the column and the rule,
    `quarantine_value` holds the offending value where there is one.
    """
    required = [c for c in RAW_COLUMNS if require_label or c != LABEL_COLUMN]
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise UnusableSource(source, f"missing column(s) {', '.join(missing)}")
    if raw.empty:
        raise UnusableSource(source, "no data rows")

    frame = raw.copy()
    text = {c: frame[c].astype("string").str.strip() for c in frame.columns if c in RAW_COLUMNS}
    checks = RowChecks(text, frame.index)
    flag = checks.flag

    ids = text[ID_COLUMN]
    flag(ids.isna() | (ids == ""), "customerID: empty")
    # A customer may be observed many times; the same observation twice is an error.
    if TIMESTAMP_COLUMN in frame.columns:
        at = pd.to_datetime(frame[TIMESTAMP_COLUMN], errors="coerce", utc=True)
        observation = pd.DataFrame({"id": ids, "at": at})
        repeated = observation.duplicated(keep="first")
    else:
        repeated = ids.duplicated(keep="first")
    flag(repeated, "customerID: duplicate observation", ID_COLUMN)

    for column, allowed in CATEGORIES.items():
        values = text[column]
        flag(~values.isin(allowed), f"{column}: not one of {list(allowed)}", column)

    senior = pd.to_numeric(text["SeniorCitizen"], errors="coerce")
    flag(~senior.isin([0, 1]), "SeniorCitizen: not 0 or 1", "SeniorCitizen")

    tenure = pd.to_numeric(text["tenure"], errors="coerce")
    flag(
        tenure.isna() | (tenure % 1 != 0) | (tenure < 0) | (tenure > MAX_TENURE_MONTHS),
        f"tenure: not a whole number of months in [0, {MAX_TENURE_MONTHS}]",
        "tenure",
    )

    monthly = pd.to_numeric(text["MonthlyCharges"], errors="coerce")
    low, high = MONTHLY_CHARGES_RANGE
    flag(
        monthly.isna() | (monthly <= low) | (monthly > high),
        f"MonthlyCharges: not a number in ({low}, {high}]",
        "MonthlyCharges",
    )

    # The public file leaves TotalCharges blank for customers in their first month.
    total_text = text["TotalCharges"].fillna("")
    blank_total = total_text == ""
    total = pd.to_numeric(total_text.where(~blank_total), errors="coerce")
    flag(~blank_total & total.isna(), "TotalCharges: not a number", "TotalCharges")
    flag(blank_total & (tenure != 0), "TotalCharges: blank for a customer with tenure > 0")
    # A blank total has no value to compare; without fillna(False) the missing comparison
    # would count as a failure and quarantine every new customer.
    flag((total < 0).fillna(False), "TotalCharges: negative")
    flag(
        (total > (tenure.clip(lower=1) * high * TOTAL_CHARGES_SLACK)).fillna(False),
        "TotalCharges: larger than tenure allows",
    )

    for column, none_level, service, absent in DEPENDENT_COLUMNS:
        flag(
            (text[service] == absent) != (text[column] == none_level),
            f"{column}: inconsistent with {service}",
            column,
        )

    if LABEL_COLUMN in frame.columns:
        flag(~text[LABEL_COLUMN].isin(YES_NO), "Churn: not Yes or No", LABEL_COLUMN)

    if TIMESTAMP_COLUMN in frame.columns:
        stamps = pd.to_datetime(frame[TIMESTAMP_COLUMN], errors="coerce", utc=True)
        flag(stamps.isna(), "event_timestamp: not a timestamp")

    quarantined = checks.quarantine(raw)

    good = ~checks.failed
    valid = pd.DataFrame(index=frame.index[good])
    for column in RAW_COLUMNS:
        if column in ("SeniorCitizen", "tenure"):
            valid[column] = (senior if column == "SeniorCitizen" else tenure)[good].astype(np.int64)
        elif column == "MonthlyCharges":
            valid[column] = monthly[good].astype(np.float64)
        elif column == "TotalCharges":
            valid[column] = total[good].astype(np.float64)  # NaN where blank (new customers)
        elif column in text:
            valid[column] = text[column][good].astype(object)
    if TIMESTAMP_COLUMN in frame.columns:
        valid[TIMESTAMP_COLUMN] = pd.to_datetime(frame.loc[good, TIMESTAMP_COLUMN], utc=True)
    return ValidationResult(valid=valid.reset_index(drop=True), quarantined=quarantined)
