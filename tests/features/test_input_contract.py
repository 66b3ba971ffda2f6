"""The input contract's rules (`features.input_contract`) and the contracts built on them:
bounds, finiteness, whole numbers, time ranges, and the rows each contract now refuses."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from features.churn_schema import NUMBERS as CHURN_NUMBERS
from features.churn_schema import total_charges_ceiling, validate_churn_frame
from features.fraud_schema import NUMBERS as FRAUD_NUMBERS
from features.fraud_schema import TX_DATETIME_RANGE, validate_fraud_frame
from features.input_contract import NumberRule, TimeRule
from features.quarantine import QUARANTINE_REASON


def test_a_number_rule_keeps_its_bounds_open_or_closed() -> None:
    rule = NumberRule(0, 10, low_open=True)
    values = np.array([0.0, 1e-9, 5.0, 10.0, 10.000001, -1.0])
    assert rule.holds(values).tolist() == [False, True, True, True, False, False]
    assert rule.interval == "(0, 10]"
    assert rule.field_bounds() == {"gt": 0, "le": 10}


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e308, -1e308])
def test_no_rule_holds_for_a_non_finite_or_huge_number(value: float) -> None:
    assert not NumberRule(-np.inf, np.inf).admits(value) or np.isfinite(value)
    for rule in (*CHURN_NUMBERS.values(), *FRAUD_NUMBERS.values()):
        assert not rule.admits(value), rule


def test_a_whole_number_rule_refuses_fractions_and_names_itself() -> None:
    rule = NumberRule(0, 120, integer=True)
    assert rule.holds(pd.Series([0, 1.0, 1.5, 120, 121])).tolist() == [
        True,
        True,
        False,
        True,
        False,
    ]
    assert rule.meaning == "a whole number in [0, 120]"
    assert rule.field_bounds() == {"ge": 0, "le": 120}
    assert all(isinstance(v, int) for v in rule.field_bounds().values())


def test_a_time_rule_compares_instants_without_converting_them() -> None:
    rule = TimeRule(datetime(1970, 1, 1, tzinfo=UTC), datetime(2262, 1, 1, tzinfo=UTC))
    year_one = datetime.fromisoformat("0001-01-01T00:00:00+01:00")  # would overflow in UTC
    year_9999 = datetime.fromisoformat("9999-12-31T23:59:59-05:00")
    assert not rule.admits(year_one)
    assert not rule.admits(year_9999)
    assert rule.admits(datetime(2026, 1, 1, tzinfo=UTC))
    stamps = pd.Series(pd.to_datetime(["1969-12-31T23:59:59Z", "2018-04-01T00:00:00Z", None]))
    assert rule.holds(stamps).tolist() == [False, True, False]


def test_the_total_charges_ceiling_grows_with_tenure_from_one_month() -> None:
    assert total_charges_ceiling(0) == total_charges_ceiling(1) == 750
    assert total_charges_ceiling(pd.Series([0, 2, 120])).tolist() == [750, 1500, 90_000]
    assert CHURN_NUMBERS["TotalCharges"].high == total_charges_ceiling(120)


def _churn_row(**change: str) -> dict[str, str]:
    row = {
        "customerID": "0001-AAAAA",
        "gender": "Female",
        "SeniorCitizen": "0",
        "Partner": "Yes",
        "Dependents": "No",
        "tenure": "2",
        "PhoneService": "No",
        "MultipleLines": "No phone service",
        "InternetService": "DSL",
        "OnlineSecurity": "No",
        "OnlineBackup": "Yes",
        "DeviceProtection": "No",
        "TechSupport": "No",
        "StreamingTV": "No",
        "StreamingMovies": "No",
        "Contract": "Month-to-month",
        "PaperlessBilling": "Yes",
        "PaymentMethod": "Electronic check",
        "MonthlyCharges": "29.85",
        "TotalCharges": "59.70",
        "Churn": "No",
    }
    return row | change


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({}, None),
        ({"TotalCharges": "1e308"}, "TotalCharges: not a number in [0, 90000]"),
        ({"MonthlyCharges": "5e-324"}, "MonthlyCharges: not a number in [0.01, 500]"),
        ({"TotalCharges": "inf"}, "TotalCharges: not a number in [0, 90000]"),
        ({"TotalCharges": "NaN"}, "TotalCharges: not a number in [0, 90000]"),
        ({"TotalCharges": "-1"}, "TotalCharges: not a number in [0, 90000]"),
        ({"TotalCharges": "1500.01"}, "TotalCharges: larger than tenure allows"),
        ({"MonthlyCharges": "Infinity"}, "MonthlyCharges: not a number in [0.01, 500]"),
        ({"tenure": "2.5"}, "tenure: not a whole number of months in [0, 120]"),
        ({"SeniorCitizen": "2"}, "SeniorCitizen: not 0 or 1"),
        ({"customerID": "x" * 65}, "customerID: longer than 64 characters"),
    ],
)
def test_the_churn_contract_quarantines_what_its_rules_refuse(
    change: dict[str, str], reason: str | None
) -> None:
    result = validate_churn_frame(pd.DataFrame([_churn_row(**change)]), "test.csv")
    if reason is None:
        assert len(result.valid) == 1
    else:
        assert result.quarantined[QUARANTINE_REASON].tolist() == [reason]


@pytest.mark.parametrize(
    ("stamp", "reason"),
    [
        ("2018-04-01 00:00:00", None),
        ("1970-01-01 00:00:00", None),
        ("1969-12-31 23:59:59", f"TX_DATETIME: not {TX_DATETIME_RANGE.meaning}"),
        ("2262-01-01 00:00:00", f"TX_DATETIME: not {TX_DATETIME_RANGE.meaning}"),
        # Beyond int64 nanoseconds: pandas cannot hold it at all.
        ("1600-01-01 00:00:00", "TX_DATETIME: not a timestamp"),
    ],
)
def test_the_fraud_contract_keeps_only_times_the_windows_can_count(
    stamp: str, reason: str | None
) -> None:
    row = {
        "TRANSACTION_ID": "0",
        "TX_DATETIME": stamp,
        "CUSTOMER_ID": "1",
        "TERMINAL_ID": "2",
        "TX_AMOUNT": "10.00",
        "TX_TIME_SECONDS": "0",
        "TX_TIME_DAYS": "0",
        "TX_FRAUD": "0",
        "TX_FRAUD_SCENARIO": "0",
    }
    result = validate_fraud_frame(pd.DataFrame([row]), "test.csv")
    assert result.quarantined[QUARANTINE_REASON].tolist() == ([reason] if reason else [])
