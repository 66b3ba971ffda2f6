"""The raw churn data contract: the IBM Telco Customer Churn schema, declared once.

`validate_churn_frame` splits a raw frame into typed valid rows and quarantined rows,
each quarantined row carrying the reason it failed. Problems that make a whole file
unusable (missing columns, no rows) raise `UnusableSource` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.input_contract import MAX_TEXT_LENGTH, NumberRule
from features.quarantine import RowChecks, ValidationResult, check_usable

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
# From a cent: charges_ratio divides by the monthly bill, and a bill of 5e-324 (above
# zero, so once accepted) made it infinite and the model's score NaN.
MONTHLY_CHARGES_RANGE = (0.01, 500.0)
# TotalCharges is billed history: it cannot exceed tenure x the highest plausible bill.
TOTAL_CHARGES_SLACK = 1.5
MAX_ID_LENGTH = MAX_TEXT_LENGTH

# The numeric columns' rules: the pipeline's row checks below and the API's request
# fields (`serving.schemas.ChurnCustomer`) are both built from this table.
NUMBERS: dict[str, NumberRule] = {
    "SeniorCitizen": NumberRule(0, 1, integer=True, says="0 or 1"),
    "tenure": NumberRule(
        0,
        MAX_TENURE_MONTHS,
        integer=True,
        says=f"a whole number of months in [0, {MAX_TENURE_MONTHS}]",
    ),
    "MonthlyCharges": NumberRule(*MONTHLY_CHARGES_RANGE),
    # Blank (null) for a customer in the first month; the cross-field rule
    # `total_charges_ceiling` bounds it by tenure as well.
    "TotalCharges": NumberRule(
        0.0, MAX_TENURE_MONTHS * MONTHLY_CHARGES_RANGE[1] * TOTAL_CHARGES_SLACK
    ),
}


def total_charges_ceiling(tenure: float | pd.Series) -> float | pd.Series:
    """The most a customer of `tenure` months can have been billed (a month at least, as
    the first month's bill may already be counted)."""
    return np.maximum(tenure, 1) * MONTHLY_CHARGES_RANGE[1] * TOTAL_CHARGES_SLACK


def validate_churn_frame(
    raw: pd.DataFrame, source: Path | str, *, require_label: bool = True
) -> ValidationResult:
    """Check every row against the contract; never drop a row without a reason.

    `raw` holds the file as read, every column a string (as `read_csv(dtype=str)` gives).
    A row fails on its first problem: `quarantine_reason` names the column and the rule,
    `quarantine_value` holds the offending value where there is one.
    """
    check_usable(raw, source, [c for c in RAW_COLUMNS if require_label or c != LABEL_COLUMN])
    frame = raw.copy()
    text = {c: frame[c].astype("string").str.strip() for c in frame.columns if c in RAW_COLUMNS}
    values = _parse(frame, text)
    checks = RowChecks(text, frame.index)
    _flag_broken_rows(checks, text, values)
    quarantined = checks.quarantine(raw)
    valid = _typed_valid_rows(frame, text, values, ~checks.failed)
    return ValidationResult(valid=valid, quarantined=quarantined)


@dataclass(frozen=True)
class _ParsedValues:
    """The columns that are not text, parsed; NaN (NaT) where a value does not parse."""

    senior: pd.Series
    tenure: pd.Series
    monthly: pd.Series
    total: pd.Series  # NaN where blank, as the public file leaves first-month customers
    blank_total: pd.Series
    observed_at: pd.Series | None  # event_timestamp, when the frame has it


def _parse(frame: pd.DataFrame, text: dict[str, pd.Series]) -> _ParsedValues:
    """SeniorCitizen, tenure and the charges as numbers, event_timestamp as a time."""
    total_text = text["TotalCharges"].fillna("")
    blank_total = total_text == ""
    observed_at = None
    if TIMESTAMP_COLUMN in frame.columns:
        observed_at = pd.to_datetime(frame[TIMESTAMP_COLUMN], errors="coerce", utc=True)
    return _ParsedValues(
        senior=pd.to_numeric(text["SeniorCitizen"], errors="coerce"),
        tenure=pd.to_numeric(text["tenure"], errors="coerce"),
        monthly=pd.to_numeric(text["MonthlyCharges"], errors="coerce"),
        total=pd.to_numeric(total_text.where(~blank_total), errors="coerce"),
        blank_total=blank_total,
        observed_at=observed_at,
    )


def _flag_broken_rows(checks: RowChecks, text: dict[str, pd.Series], values: _ParsedValues) -> None:
    """The contract's row rules, in the order a row is checked (it keeps the first it
    breaks). A flat list of rules: long, and meant to be read top to bottom."""
    flag = checks.flag
    ids = text[ID_COLUMN]
    flag(ids.isna() | (ids == ""), "customerID: empty")
    flag(
        ids.str.len() > MAX_ID_LENGTH,
        f"customerID: longer than {MAX_ID_LENGTH} characters",
    )
    # A customer may be observed many times; the same observation twice is an error.
    if values.observed_at is not None:
        observation = pd.DataFrame({"id": ids, "at": values.observed_at})
        repeated = observation.duplicated(keep="first")
    else:
        repeated = ids.duplicated(keep="first")
    flag(repeated, "customerID: duplicate observation", ID_COLUMN)

    for column, allowed in CATEGORIES.items():
        flag(~text[column].isin(allowed), f"{column}: not one of {list(allowed)}", column)

    parsed = {
        "SeniorCitizen": values.senior,
        "tenure": values.tenure,
        "MonthlyCharges": values.monthly,
    }
    for column, numbers in parsed.items():
        rule = NUMBERS[column]
        flag(~rule.holds_in(numbers), f"{column}: not {rule.meaning}", column)

    # The public file leaves TotalCharges blank for customers in their first month.
    total, blank_total, tenure = values.total, values.blank_total, values.tenure
    total_rule = NUMBERS["TotalCharges"]
    flag(
        ~blank_total & ~total_rule.holds_in(total),
        f"TotalCharges: not {total_rule.meaning}",
        "TotalCharges",
    )
    flag(blank_total & (tenure != 0), "TotalCharges: blank for a customer with tenure > 0")
    # A blank total has no value to compare; without fillna(False) the missing comparison
    # would count as a failure and quarantine every new customer.
    flag(
        (total > total_charges_ceiling(tenure)).fillna(False),
        "TotalCharges: larger than tenure allows",
    )

    for column, none_level, service, absent in DEPENDENT_COLUMNS:
        flag(
            (text[service] == absent) != (text[column] == none_level),
            f"{column}: inconsistent with {service}",
            column,
        )

    if LABEL_COLUMN in text:
        flag(~text[LABEL_COLUMN].isin(YES_NO), "Churn: not Yes or No", LABEL_COLUMN)

    if values.observed_at is not None:
        flag(values.observed_at.isna(), "event_timestamp: not a timestamp")


def _typed_valid_rows(
    frame: pd.DataFrame, text: dict[str, pd.Series], values: _ParsedValues, good: pd.Series
) -> pd.DataFrame:
    """The rows that broke no rule, each column in its type, in the file's order."""
    valid = pd.DataFrame(index=frame.index[good])
    for column in RAW_COLUMNS:
        if column in ("SeniorCitizen", "tenure"):
            parsed = values.senior if column == "SeniorCitizen" else values.tenure
            valid[column] = parsed[good].astype(np.int64)
        elif column == "MonthlyCharges":
            valid[column] = values.monthly[good].astype(np.float64)
        elif column == "TotalCharges":
            valid[column] = values.total[good].astype(np.float64)  # NaN where blank (new customers)
        elif column in text:
            valid[column] = text[column][good].astype(object)
    if TIMESTAMP_COLUMN in frame.columns:
        valid[TIMESTAMP_COLUMN] = pd.to_datetime(frame.loc[good, TIMESTAMP_COLUMN], utc=True)
    return valid.reset_index(drop=True)
