"""Poison inputs (issue 21): each request that once crashed the API or echoed too much, and
the bound it is now held to.

- a raw churn customer with TotalCharges 1e308, Infinity, 1e39 or "NaN", or
  MonthlyCharges 5e-324: 422, not a NaN score (which failed the response with a 500 and
  emptied the prediction log's batch);
- a fraud payment before 1677 (OverflowError), before 1970, in year 9999 with an offset,
  or with `true` for an id: 422;
- an unknown field name of 60,000 characters, a hundred bad rows: a 422 of bounded size;
- a page name of 256+ characters, a dangling symlink among the pages: 404, not 500;
- MLOPS_ADMIN_TOKEN empty off profile local: refused at start (exit 2); empty on local:
  /admin/reload answers 401 with or without a header, never 200.

Validation happens before any model is needed, so most cases run on an app without its
lifespan on an empty home; the scoring cases run on the session's trained homes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mlops.settings import Settings
from serving.app import create_app
from serving.errors import MAX_PROBLEMS, MAX_QUOTED_CHARS
from tests.helpers.runs import run_mlops

CUSTOMER: dict[str, Any] = {
    "gender": "Female",
    "SeniorCitizen": 0,
    "Partner": "Yes",
    "Dependents": "No",
    "tenure": 12,
    "PhoneService": "Yes",
    "MultipleLines": "No",
    "InternetService": "Fiber optic",
    "OnlineSecurity": "No",
    "OnlineBackup": "Yes",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "Yes",
    "StreamingMovies": "No",
    "Contract": "Month-to-month",
    "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check",
    "MonthlyCharges": 85.5,
    "TotalCharges": 1020.0,
}
PAYMENT: dict[str, Any] = {
    "transaction_id": 1,
    "customer_id": 1,
    "terminal_id": 2,
    "amount": 10.0,
    "tx_datetime": "2018-06-10T12:00:00Z",
}
CHURN_ROUTE = "/v1/churn/predict"
FRAUD_ROUTE = "/v1/fraud/score"
JSON = {"content-type": "application/json"}


@pytest.fixture
def unserved(settings: Settings) -> Iterator[TestClient]:
    """The API on an empty home, without its lifespan: requests are validated, not scored."""
    yield TestClient(create_app(settings))


def _post_text(client: TestClient, route: str, body: str) -> Any:
    """POST a body as written: JSON's NaN and Infinity tokens pass through untouched."""
    return client.post(route, content=body.encode(), headers=JSON)


def _fields(response: Any) -> set[str]:
    return {problem["field"] for problem in response.json()["detail"]}


@pytest.mark.parametrize(
    "total", ["1e308", "Infinity", "-Infinity", "NaN", '"NaN"', "1e39", "90000.01"]
)
def test_a_poison_total_charges_is_a_422(unserved: TestClient, total: str) -> None:
    customer = json.dumps(CUSTOMER).replace('"TotalCharges": 1020.0', f'"TotalCharges": {total}')
    response = _post_text(unserved, CHURN_ROUTE, f'{{"customer": {customer}}}')
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"


def test_a_monthly_charge_a_hair_above_zero_is_a_422(unserved: TestClient) -> None:
    # 5e-324 is above zero, so it was accepted; TotalCharges / it is infinite, and the
    # model scored the customer NaN: a 500 (found by the scoring property below).
    response = unserved.post(CHURN_ROUTE, json={"customer": CUSTOMER | {"MonthlyCharges": 5e-324}})
    assert response.status_code == 422
    assert "customer.MonthlyCharges" in _fields(response)


def test_total_charges_above_what_tenure_allows_is_a_422(unserved: TestClient) -> None:
    # The pipeline quarantines a total above max(tenure, 1) x 750: so does the API now.
    body = {"customer": CUSTOMER | {"tenure": 2, "TotalCharges": 1500.01}}
    response = unserved.post(CHURN_ROUTE, json=body)
    assert response.status_code == 422
    assert "larger than tenure allows" in response.text


@pytest.mark.parametrize(
    ("field", "value"),
    [("SeniorCitizen", True), ("SeniorCitizen", 1.0), ("tenure", 12.0), ("tenure", "12")],
)
def test_churn_numbers_are_not_coerced(unserved: TestClient, field: str, value: Any) -> None:
    response = unserved.post(CHURN_ROUTE, json={"customer": CUSTOMER | {field: value}})
    assert response.status_code == 422
    assert f"customer.{field}" in _fields(response)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"customer_id": True}, "customer_id"),
        ({"terminal_id": False}, "terminal_id"),
        ({"transaction_id": True}, "transaction_id"),
        ({"customer_id": 1.0}, "customer_id"),
        ({"amount": "10"}, "amount"),
        ({"amount": 1e308}, "amount"),
        ({"customer_id": 2**53}, "customer_id"),
        ({"tx_datetime": "1600-01-01T00:00:00Z"}, "tx_datetime"),  # an OverflowError once
        ({"tx_datetime": "0001-01-01T00:00:00+01:00"}, "tx_datetime"),
        ({"tx_datetime": "1969-12-31T23:59:59Z"}, "tx_datetime"),
        ({"tx_datetime": "9999-12-31T23:59:59-05:00"}, "tx_datetime"),
        ({"tx_datetime": 1528632000}, "tx_datetime"),
    ],
)
def test_a_poison_payment_is_a_422(
    unserved: TestClient, change: dict[str, Any], field: str
) -> None:
    response = unserved.post(FRAUD_ROUTE, json=PAYMENT | change)
    assert response.status_code == 422, response.text
    assert field in _fields(response)


def test_an_infinite_amount_is_a_422(unserved: TestClient) -> None:
    body = json.dumps(PAYMENT).replace('"amount": 10.0', '"amount": Infinity')
    assert _post_text(unserved, FRAUD_ROUTE, body).status_code == 422


def test_a_huge_unknown_field_name_is_not_echoed_whole(unserved: TestClient) -> None:
    name = "x" * 60_000
    response = unserved.post(CHURN_ROUTE, json={"customer_id": "a", name: 1})
    assert response.status_code == 422
    assert len(response.content) < 1_000
    [problem] = response.json()["detail"]
    assert problem["field"] == "x" * MAX_QUOTED_CHARS + "…"


def test_a_hundred_bad_rows_give_a_bounded_list_of_problems(unserved: TestClient) -> None:
    bad = CUSTOMER | {"tenure": -1}
    response = unserved.post(f"{CHURN_ROUTE}/batch", json={"customers": [bad] * 100})
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == {"field": "body", "problem": "and 80 more problem(s)"}


@pytest.mark.parametrize("name", ["a" * 256 + ".html", "a" * 300, "b" * 251 + ".html"])
def test_a_long_page_name_is_a_404(unserved: TestClient, name: str) -> None:
    response = unserved.get(f"/reports/{name}")
    assert response.status_code == 404
    assert response.json()["error"] == "page_not_found"
    assert name not in response.text


def test_a_dangling_symlink_among_the_pages_is_a_404_and_left_out_of_the_index(
    settings: Settings, unserved: TestClient
) -> None:
    pages = settings.report_pages_dir
    pages.mkdir(parents=True)
    (pages / "churn.html").write_text("<title>churn</title>")
    (pages / "gone.html").symlink_to(pages / "nowhere.html")
    (pages / "outside.html").symlink_to(settings.home / "missing.html")
    index = unserved.get("/reports/")
    assert index.status_code == 200
    assert "churn.html" in index.text
    assert "gone.html" not in index.text
    for name in ("gone.html", "outside.html"):
        response = unserved.get(f"/reports/{name}")
        assert response.status_code == 404
        assert response.json()["error"] == "page_not_found"


@pytest.mark.parametrize(
    "token",
    ["", "   ", "change-me-admin-token", "local-admin-token", "replace-with-a-long-random-token"],
)
def test_an_empty_or_placeholder_admin_token_stops_the_stack_profile(
    settings: Settings, token: str
) -> None:
    result = run_mlops(
        "config",
        home=settings.home,
        prefect_api="http://127.0.0.1:9/api",
        env={"MLOPS_PROFILE": "stack", "MLOPS_ADMIN_TOKEN": token},
    )
    assert result.returncode == 2
    assert "MLOPS_ADMIN_TOKEN is" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("header", [None, "Bearer ", "Bearer x"])
def test_an_empty_admin_token_on_local_lets_no_one_in(
    monkeypatch: pytest.MonkeyPatch, header: str | None
) -> None:
    monkeypatch.setenv("MLOPS_ADMIN_TOKEN", "")
    client = TestClient(create_app(Settings()))
    headers = {} if header is None else {"authorization": header}
    response = client.post("/admin/reload", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


# --- whatever the request models accept scores: no 5xx, a finite probability ---------------

_ANY_CATEGORY = {
    column: st.sampled_from(values)
    for column, values in {
        "gender": ("Female", "Male"),
        "Partner": ("Yes", "No"),
        "Dependents": ("Yes", "No"),
        "Contract": ("Month-to-month", "One year", "Two year"),
        "PaperlessBilling": ("Yes", "No"),
        "PaymentMethod": (
            "Electronic check",
            "Mailed check",
            "Bank transfer (automatic)",
            "Credit card (automatic)",
        ),
    }.items()
}
SCORING = hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def churn_client(churn_settings: Settings) -> Iterator[TestClient]:
    """The churn-only API on the session's churn run, for one test (all its examples)."""
    with TestClient(create_app(churn_settings)) as client:
        yield client


@st.composite
def accepted_customers(draw: st.DrawFn) -> dict[str, Any]:
    """Customers at the edges the request model accepts: new and longest-serving, the
    smallest and largest charges, no phone or no internet."""
    customer = {column: draw(strategy) for column, strategy in _ANY_CATEGORY.items()}
    tenure = draw(st.one_of(st.sampled_from([0, 1, 120]), st.integers(0, 120)))
    phone = draw(st.sampled_from(["Yes", "No"]))
    internet = draw(st.sampled_from(["DSL", "Fiber optic", "No"]))
    addons = ("Yes", "No") if internet != "No" else ("No internet service",)
    customer |= {
        "SeniorCitizen": draw(st.integers(0, 1)),
        "tenure": tenure,
        "PhoneService": phone,
        "MultipleLines": draw(st.sampled_from(["Yes", "No"]))
        if phone == "Yes"
        else "No phone service",
        "InternetService": internet,
        **{
            column: draw(st.sampled_from(addons))
            for column in (
                "OnlineSecurity",
                "OnlineBackup",
                "DeviceProtection",
                "TechSupport",
                "StreamingTV",
                "StreamingMovies",
            )
        },
        "MonthlyCharges": draw(st.one_of(st.sampled_from([0.01, 500.0]), st.floats(0.01, 500))),
    }
    ceiling = max(tenure, 1) * 750.0
    total = draw(st.one_of(st.sampled_from([0.0, ceiling]), st.floats(0, ceiling)))
    customer["TotalCharges"] = None if tenure == 0 and draw(st.booleans()) else total
    return customer


@pytest.mark.slow
@SCORING
@given(customer=accepted_customers())
def test_every_customer_the_api_accepts_scores_to_a_finite_probability(
    churn_client: TestClient, customer: dict[str, Any]
) -> None:
    response = churn_client.post(CHURN_ROUTE, json={"customer": customer})
    assert response.status_code == 200, (customer, response.text)
    assert math.isfinite(response.json()["churn_probability"])
    batch = churn_client.post(f"{CHURN_ROUTE}/batch", json={"customers": [customer]})
    assert batch.status_code == 200, (customer, batch.text)
    assert math.isfinite(batch.json()["predictions"][0]["churn_probability"])


@pytest.fixture
def fraud_client(fraud_settings: Settings) -> Iterator[TestClient]:
    """The fraud-only API on the session's fraud run, for one test (all its examples)."""
    with TestClient(create_app(fraud_settings)) as client:
        yield client


@st.composite
def accepted_payments(draw: st.DrawFn) -> dict[str, Any]:
    """Payments the request model accepts, by cards and terminals the session's fraud home
    has never seen (scoring records them: the other tests' cards stay as they were)."""
    unseen = st.integers(10**12, 2**53 - 1)
    moment = draw(
        st.one_of(
            st.sampled_from([datetime(1970, 1, 1, tzinfo=UTC), datetime.now(UTC)]),
            st.datetimes(
                min_value=datetime(1970, 1, 2),
                max_value=datetime(2025, 1, 1),
                timezones=st.just(UTC),
            ),
        )
    )
    return {
        "transaction_id": draw(st.one_of(st.none(), st.integers(0, 2**53 - 1))),
        "customer_id": draw(unseen),
        "terminal_id": draw(unseen),
        "amount": draw(
            st.one_of(st.sampled_from([5e-324, 0.01, 99_999.99]), st.floats(0.01, 99_999.99))
        ),
        "tx_datetime": moment.isoformat(),
    }


@pytest.mark.slow
@SCORING
@given(payment=accepted_payments())
def test_every_payment_the_api_accepts_scores_to_a_finite_probability(
    fraud_client: TestClient, payment: dict[str, Any]
) -> None:
    response = fraud_client.post(FRAUD_ROUTE, json=payment)
    assert response.status_code == 200, (payment, response.text)
    assert math.isfinite(response.json()["fraud_probability"])
