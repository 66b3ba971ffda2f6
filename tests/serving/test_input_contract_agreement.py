"""The API's request models and the pipeline's data contracts agree: a row the API accepts
is never quarantined by the pipeline, and a row the pipeline keeps is accepted by the API.

Property-based (hypothesis): values are drawn around every bound of the contract's
tables, with non-finite numbers, wrong categories and inconsistent services among them;
each candidate goes to the API's model as JSON and to the pipeline's contract as the text
of a raw file, and both must say the same. The fraud API alone refuses times after the
server's clock (a serving rule, not a property of the data), so times stay before it.
No served model is needed: these are the models and contracts themselves.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from features import churn_schema, fraud_schema
from features.churn_schema import CATEGORIES, DEPENDENT_COLUMNS, validate_churn_frame
from features.fraud_schema import MAX_INTEGER, MAX_TX_AMOUNT, validate_fraud_frame
from serving.schemas import ChurnCustomer, FraudTransaction

EXAMPLES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_EDGY_FLOATS = st.one_of(
    st.sampled_from(
        [0.0, -0.0, 5e-324, 0.01, 0.00999, 29.85, 500.0, 500.00000000000006, 750.0, 90_000.0]
    ),
    st.sampled_from([90_000.00000000001, 1e39, 1e308, float("inf"), float("-inf"), float("nan")]),
    st.floats(min_value=-10.0, max_value=100_000.0),
    st.floats(allow_nan=True, allow_infinity=True),
)


def _mostly(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> Any:
    """`usual` three times in four, else `other`."""
    return st.integers(0, 3).flatmap(lambda k: other if k == 0 else usual)


def _api_accepts(model: type[Any], payload: dict[str, Any]) -> bool:
    try:
        # As the API reads a body: JSON (json.dumps writes NaN and Infinity as tokens).
        model.model_validate_json(json.dumps(payload))
    except ValidationError:
        return False
    return True


def _text(value: Any) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


@st.composite
def churn_customers(draw: st.DrawFn) -> dict[str, Any]:
    """A customer as JSON would carry it: categories (sometimes wrong or inconsistent),
    whole numbers for the whole-number fields, any float for the charges."""
    customer: dict[str, Any] = {
        column: draw(st.sampled_from(allowed)) for column, allowed in CATEGORIES.items()
    }
    # Consistent services mostly (else nearly every draw fails on them alone), with now
    # and then one column broken or a category the contract does not know.
    for column, none_level, service, absent in DEPENDENT_COLUMNS:
        if customer[service] == absent:
            customer[column] = none_level
        elif customer[column] == none_level:
            customer[column] = "No"
    if draw(st.integers(0, 9)) == 0:
        column = draw(st.sampled_from(sorted(CATEGORIES)))
        customer[column] = draw(st.sampled_from([*CATEGORIES[column], "", "yes", "Maybe"]))
    # Each value in its rule more often than not, so that the other rules get tested too.
    customer["SeniorCitizen"] = draw(_mostly(st.integers(0, 1), st.integers(-1, 2)))
    customer["tenure"] = draw(_mostly(st.integers(0, 120), st.integers(-2, 125)))
    customer["MonthlyCharges"] = draw(_mostly(st.floats(0.01, 500), _EDGY_FLOATS))
    # Around the cross-field ceiling, max(tenure, 1) x 750, as often as anywhere else.
    ceiling = max(customer["tenure"], 1) * 750.0
    customer["TotalCharges"] = draw(
        _mostly(st.floats(0, ceiling), st.one_of(st.none(), st.floats(ceiling, 2 * ceiling)))
        if draw(st.booleans())
        else _EDGY_FLOATS
    )
    return customer


def _pipeline_keeps_churn(customer: dict[str, Any]) -> bool:
    row = {column: _text(value) for column, value in customer.items()}
    row |= {"customerID": "0001-AAAAA", "Churn": "No"}
    return len(validate_churn_frame(pd.DataFrame([row]), "api.json").valid) == 1


@EXAMPLES
@given(churn_customers())
def test_the_api_accepts_a_customer_exactly_when_the_pipeline_keeps_it(
    customer: dict[str, Any],
) -> None:
    assert _api_accepts(ChurnCustomer, customer) == _pipeline_keeps_churn(customer), customer


def test_each_category_of_the_api_is_the_contracts() -> None:
    for column, allowed in CATEGORIES.items():
        assert get_args(ChurnCustomer.model_fields[column].annotation) == allowed, column


def test_the_api_takes_each_numeric_field_from_the_contracts_table() -> None:
    for column, rule in churn_schema.NUMBERS.items():
        schema = ChurnCustomer.model_json_schema()["properties"][column]
        bounds = schema.get("anyOf", [schema])[0]
        low = bounds.get("minimum", bounds.get("exclusiveMinimum"))
        high = bounds.get("maximum", bounds.get("exclusiveMaximum"))
        assert (low, high) == (rule.low, rule.high), column
        assert bounds["type"] == ("integer" if rule.integer else "number"), column


def test_every_customer_the_simulator_writes_is_accepted_by_the_api() -> None:
    from sources.churn_simulator import simulate_customers

    raw = simulate_customers(500, seed=3)
    valid = validate_churn_frame(raw, "simulated.csv").valid
    assert len(valid) == len(raw)
    for record in valid.drop(columns=["customerID", "Churn", "event_timestamp"]).to_dict("records"):
        total = record["TotalCharges"]
        record["TotalCharges"] = None if pd.isna(total) else total
        assert _api_accepts(ChurnCustomer, record), record


# Times from year 1 to 9999 with offsets: the interesting ones are near 1677, 1970 and
# 2262, and the API's clock rule refuses everything after now (plus 5 minutes).
_NOW = datetime.now(UTC)
_TIMES = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5)), timezone(-timedelta(hours=8))]
        ),
    ),
    st.sampled_from(
        [
            datetime(1677, 9, 21, tzinfo=UTC),
            datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
            datetime(1970, 1, 1, tzinfo=UTC),
            datetime(1970, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
            datetime(2018, 4, 1, tzinfo=UTC),
        ]
    ),
)
_IDS = st.one_of(
    st.integers(-1, 10**6), st.sampled_from([MAX_INTEGER, MAX_INTEGER + 1, MAX_INTEGER + 2])
)


@st.composite
def payments(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "transaction_id": draw(_IDS),
        "customer_id": draw(_IDS),
        "terminal_id": draw(_IDS),
        "amount": draw(
            st.one_of(
                _EDGY_FLOATS, st.sampled_from([MAX_TX_AMOUNT, 99_999.99, MAX_TX_AMOUNT - 1e-9])
            )
        ),
        "tx_datetime": draw(_TIMES).isoformat(),
    }


def _pipeline_keeps_payment(payment: dict[str, Any]) -> bool:
    row = {
        fraud_schema.TRANSACTION_ID: _text(payment["transaction_id"]),
        fraud_schema.TX_DATETIME: payment["tx_datetime"],
        fraud_schema.CUSTOMER_ID: _text(payment["customer_id"]),
        fraud_schema.TERMINAL_ID: _text(payment["terminal_id"]),
        fraud_schema.TX_AMOUNT: _text(payment["amount"]),
        fraud_schema.TX_TIME_SECONDS: "0",
        fraud_schema.TX_TIME_DAYS: "0",
    }
    frame = pd.DataFrame([row])
    return len(validate_fraud_frame(frame, "api.json", require_label=False).valid) == 1


@EXAMPLES
@given(payments())
def test_the_api_accepts_a_payment_exactly_when_the_pipeline_keeps_it(
    payment: dict[str, Any],
) -> None:
    if datetime.fromisoformat(payment["tx_datetime"]) > _NOW:
        # Only the API knows the clock: past it, the API refuses what a file may hold.
        assert not _api_accepts(FraudTransaction, payment)
        return
    assert _api_accepts(FraudTransaction, payment) == _pipeline_keeps_payment(payment), payment


@pytest.mark.parametrize("field", ["transaction_id", "customer_id", "terminal_id", "amount"])
def test_the_api_takes_each_payment_bound_from_the_contracts_table(field: str) -> None:
    column = {
        "transaction_id": fraud_schema.TRANSACTION_ID,
        "customer_id": fraud_schema.CUSTOMER_ID,
        "terminal_id": fraud_schema.TERMINAL_ID,
        "amount": fraud_schema.TX_AMOUNT,
    }[field]
    rule = fraud_schema.NUMBERS[column]
    schema = FraudTransaction.model_json_schema()["properties"][field]
    bounds = schema.get("anyOf", [schema])[0]
    low = bounds.get("minimum", bounds.get("exclusiveMinimum"))
    high = bounds.get("maximum", bounds.get("exclusiveMaximum"))
    assert (low, high) == (rule.low, rule.high)
