"""The churn simulator: exact public schema, realistic dependencies, determinism, drifts.

One n=5000 baseline frame (seed 42) carries the rate and relationship checks; scenario
checks compare against a smaller baseline with the same seed, which holds the same
customers, so differences come from the scenario alone.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from features.churn_schema import (
    INTERNET_ADDONS,
    NO_INTERNET,
    NO_PHONE,
    RAW_COLUMNS,
    TIMESTAMP_COLUMN,
    validate_churn_frame,
)
from sources.churn_simulator import SCENARIOS, simulate_customers, write_customers

SCENARIO_N = 2000


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return simulate_customers(5000, seed=42)


@pytest.fixture(scope="module")
def typed(customers: pd.DataFrame) -> pd.DataFrame:
    """The baseline as `validate_churn_frame` types it, with a 0/1 label for rate checks."""
    valid = validate_churn_frame(customers, "simulated").valid
    return valid.assign(churned=(valid["Churn"] == "Yes").astype(int))


@pytest.fixture(scope="module")
def small_baseline() -> pd.DataFrame:
    return simulate_customers(SCENARIO_N, seed=11)


def churn_rate(frame: pd.DataFrame, mask: pd.Series) -> float:
    return float(frame.loc[mask, "churned"].mean())


# --- schema and spelling ---------------------------------------------------------------


def test_columns_are_the_public_21_in_order_plus_event_timestamp(customers: pd.DataFrame) -> None:
    assert list(customers.columns) == [*RAW_COLUMNS, TIMESTAMP_COLUMN]
    assert len(customers) == 5000


def test_every_value_is_a_string(customers: pd.DataFrame) -> None:
    is_text = customers.apply(lambda column: column.map(type).eq(str).all())
    assert is_text.all(), f"non-string columns: {list(is_text.index[~is_text])}"


def test_every_row_passes_the_contract(customers: pd.DataFrame) -> None:
    result = validate_churn_frame(customers, "simulated")
    assert len(result.quarantined) == 0, result.quarantined["quarantine_reason"].value_counts()
    assert len(result.valid) == 5000


def test_values_are_spelled_as_in_the_public_csv(customers: pd.DataFrame) -> None:
    assert customers["customerID"].str.fullmatch(r"\d{4}-[A-Z]{5}").all()
    assert customers["customerID"].is_unique
    assert set(customers["SeniorCitizen"]) == {"0", "1"}
    assert set(customers["Churn"]) == {"Yes", "No"}
    assert customers["tenure"].str.fullmatch(r"0|[1-9]\d?").all()
    # Money as the public file writes it: "56.95", "42.3", "20"; never "42.30" or "20.0".
    money = r"[1-9]\d*(\.\d?[1-9])?"
    assert customers["MonthlyCharges"].str.fullmatch(money).all()
    billed = customers["TotalCharges"] != " "
    assert customers.loc[billed, "TotalCharges"].str.fullmatch(money).all()
    assert customers["MonthlyCharges"].str.fullmatch(r".*\.\d").any(), "no one-decimal amounts"


def test_total_charges_is_a_single_blank_exactly_when_tenure_is_zero(
    customers: pd.DataFrame,
) -> None:
    new = customers["tenure"] == "0"
    assert new.any(), "expected a few tenure-0 customers at n=5000"
    assert (customers["TotalCharges"] == " ").equals(new)


def test_total_charges_is_about_tenure_times_monthly_charges(typed: pd.DataFrame) -> None:
    billed = typed[typed["tenure"] > 0]
    ratio = billed["TotalCharges"] / (billed["tenure"] * billed["MonthlyCharges"])
    assert ratio.between(0.8, 1.2).all()
    assert ratio.std() > 0.01, "TotalCharges should not be an exact product"


# --- realistic structure -----------------------------------------------------------------


def test_marginal_shares_resemble_the_public_data(typed: pd.DataFrame) -> None:
    internet = typed["InternetService"].value_counts(normalize=True)
    assert 0.30 <= internet["DSL"] <= 0.38
    assert 0.40 <= internet["Fiber optic"] <= 0.48
    assert 0.18 <= internet["No"] <= 0.26
    assert 0.87 <= (typed["PhoneService"] == "Yes").mean() <= 0.93
    assert 0.13 <= typed["SeniorCitizen"].mean() <= 0.19
    assert 0.44 <= (typed["Partner"] == "Yes").mean() <= 0.52
    assert 0.26 <= (typed["Dependents"] == "Yes").mean() <= 0.34


def test_dependents_mostly_come_with_a_partner(typed: pd.DataFrame) -> None:
    dependents = typed["Dependents"] == "Yes"
    partner = typed["Partner"] == "Yes"
    assert dependents[partner].mean() > 3 * dependents[~partner].mean()


def test_tenure_is_bimodal_between_0_and_72(typed: pd.DataFrame) -> None:
    tenure = typed["tenure"]
    assert tenure.between(0, 72).all()
    share = tenure.value_counts(normalize=True)
    middle = share.reindex(range(25, 61), fill_value=0).mean()
    assert share[1] > 4 * middle, "a pile of one-month customers"
    assert share[72] > 3 * middle, "a bump at the six-year cap"


def test_contract_follows_tenure(typed: pd.DataFrame) -> None:
    term = typed["Contract"] != "Month-to-month"
    assert term[typed["tenure"] <= 12].mean() < 0.3
    assert term[typed["tenure"] > 48].mean() > 0.7


def test_add_ons_need_internet_and_multiple_lines_need_a_phone(customers: pd.DataFrame) -> None:
    no_internet = customers["InternetService"] == "No"
    for column in INTERNET_ADDONS:
        assert (customers[column] == NO_INTERNET).equals(no_internet), column
    no_phone = customers["PhoneService"] == "No"
    assert (customers["MultipleLines"] == NO_PHONE).equals(no_phone)


def test_electronic_check_is_a_month_to_month_habit(typed: pd.DataFrame) -> None:
    electronic = typed["PaymentMethod"] == "Electronic check"
    assert electronic[typed["Contract"] == "Month-to-month"].mean() > 0.4
    assert electronic[typed["Contract"] == "Two year"].mean() < 0.15


def test_monthly_charges_are_built_from_the_services(typed: pd.DataFrame) -> None:
    charges = typed["MonthlyCharges"]
    assert charges.between(18, 120).all()
    no_extras = (
        (typed[list(INTERNET_ADDONS)] != "Yes").all(axis=1)
        & (typed["MultipleLines"] != "Yes")
        & (typed["PhoneService"] == "Yes")
    )
    internet = typed["InternetService"]
    assert 18 <= charges[no_extras & (internet == "No")].mean() <= 23
    assert 43 <= charges[no_extras & (internet == "DSL")].mean() <= 50
    assert 68 <= charges[no_extras & (internet == "Fiber optic")].mean() <= 75
    streaming = (typed["StreamingTV"] == "Yes") & (typed["StreamingMovies"] == "Yes")
    fiber = internet == "Fiber optic"
    assert charges[fiber & streaming].mean() > charges[fiber & ~streaming].mean() + 10


# --- the label ---------------------------------------------------------------------------


def test_overall_churn_rate_is_near_the_public_26_percent(typed: pd.DataFrame) -> None:
    assert 0.22 <= typed["churned"].mean() <= 0.30


def test_churn_drivers_point_the_right_way(typed: pd.DataFrame) -> None:
    contract = typed["Contract"]
    assert churn_rate(typed, contract == "Month-to-month") >= 0.35
    assert churn_rate(typed, contract == "Two year") < 0.05
    assert churn_rate(typed, contract == "One year") < churn_rate(
        typed, contract == "Month-to-month"
    )

    internet = typed["InternetService"]
    assert churn_rate(typed, internet == "Fiber optic") > churn_rate(typed, internet == "DSL") + 0.1

    payment = typed["PaymentMethod"]
    electronic = churn_rate(typed, payment == "Electronic check")
    for method in set(payment) - {"Electronic check"}:
        assert electronic > churn_rate(typed, payment == method) + 0.1, method

    tenure = typed["tenure"]
    assert churn_rate(typed, tenure <= 12) > churn_rate(typed, tenure > 48) + 0.2

    for protection in ("TechSupport", "OnlineSecurity"):
        without = churn_rate(typed, typed[protection] == "No")
        assert without > churn_rate(typed, typed[protection] == "Yes") + 0.1, protection

    senior = typed["SeniorCitizen"] == 1
    assert churn_rate(typed, senior) > churn_rate(typed, ~senior) + 0.05


def test_label_is_learnable_but_noisy(typed: pd.DataFrame) -> None:
    """A linear model should score about as on the real data (~0.85), not near 1."""
    features = typed.drop(columns=["customerID", "Churn", "churned", TIMESTAMP_COLUMN])
    features = pd.get_dummies(
        features.assign(TotalCharges=features["TotalCharges"].fillna(0.0)), dtype=float
    )
    train_x, test_x, train_y, test_y = train_test_split(
        features, typed["churned"], test_size=0.3, random_state=0, stratify=typed["churned"]
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(train_x, train_y)
    auc = roc_auc_score(test_y, model.predict_proba(test_x)[:, 1])
    assert 0.80 <= auc <= 0.90


# --- time --------------------------------------------------------------------------------


def test_event_timestamps_span_the_monthly_cycles(customers: pd.DataFrame) -> None:
    text = customers[TIMESTAMP_COLUMN]
    assert text.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    stamps = pd.to_datetime(text, utc=True)
    assert stamps.min() >= pd.Timestamp("2025-01-01", tz="UTC")
    assert stamps.max() < pd.Timestamp("2026-01-01", tz="UTC")
    assert stamps.dt.month.nunique() == 12


def test_start_and_months_set_the_observation_window() -> None:
    start = datetime(2024, 3, 15, 6, 0, tzinfo=UTC)
    frame = simulate_customers(400, seed=5, start=start, months=3)
    stamps = pd.to_datetime(frame[TIMESTAMP_COLUMN], utc=True)
    assert stamps.min() >= pd.Timestamp(start)
    assert stamps.max() < pd.Timestamp("2024-06-15T06:00Z")
    cycle_starts = [pd.Timestamp(start) + pd.DateOffset(months=k) for k in range(3)]
    cycles = pd.Series(stamps).map(lambda stamp: sum(stamp >= s for s in cycle_starts) - 1)
    assert set(cycles) == {0, 1, 2}


def test_naive_and_offset_starts_are_read_as_the_same_utc_instant() -> None:
    utc = simulate_customers(50, seed=5, start=datetime(2024, 3, 1, tzinfo=UTC))
    naive = simulate_customers(50, seed=5, start=datetime(2024, 3, 1))
    plus_two = datetime(2024, 3, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    offset = simulate_customers(50, seed=5, start=plus_two)
    pd.testing.assert_frame_equal(utc, naive)
    pd.testing.assert_frame_equal(utc, offset)


# --- determinism and arguments -------------------------------------------------------------


def test_same_seed_gives_the_same_frame_and_another_seed_does_not() -> None:
    first = simulate_customers(300, seed=7)
    pd.testing.assert_frame_equal(first, simulate_customers(300, seed=7))
    other = simulate_customers(300, seed=8)
    assert not first.equals(other)
    assert set(first["customerID"]).isdisjoint(other["customerID"])


@pytest.mark.parametrize("arguments", [{"n_customers": 0}, {"n_customers": 10, "months": 0}])
def test_rejects_empty_requests(arguments: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        simulate_customers(**arguments)


def test_unknown_scenario_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'price_drop'") as raised:
        simulate_customers(10, scenario="price_drop")
    for name in ("baseline", "price_rise", "contract_mix", "fiber_push"):
        assert name in str(raised.value)


# --- drift scenarios ------------------------------------------------------------------------


def test_scenarios_are_named_frozen_descriptions() -> None:
    assert {"baseline", "price_rise", "contract_mix", "fiber_push"} <= set(SCENARIOS)
    for name, scenario in SCENARIOS.items():
        assert scenario.name == name
        assert scenario.description
    with pytest.raises(dataclasses.FrozenInstanceError):
        SCENARIOS["baseline"].monthly_charges_factor = 2.0  # type: ignore[misc]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_keeps_the_schema_and_the_customers(
    scenario: str, small_baseline: pd.DataFrame
) -> None:
    frame = simulate_customers(SCENARIO_N, seed=11, scenario=scenario)
    assert list(frame.columns) == [*RAW_COLUMNS, TIMESTAMP_COLUMN]
    result = validate_churn_frame(frame, scenario)
    assert len(result.quarantined) == 0, result.quarantined["quarantine_reason"].value_counts()
    # The same seed draws the same people; scenarios change what happens to them.
    assert frame["customerID"].equals(small_baseline["customerID"])
    assert frame[TIMESTAMP_COLUMN].equals(small_baseline[TIMESTAMP_COLUMN])


def test_price_rise_raises_every_bill_by_15_percent_and_churn_with_it(
    small_baseline: pd.DataFrame,
) -> None:
    risen = simulate_customers(SCENARIO_N, seed=11, scenario="price_rise")
    before = small_baseline["MonthlyCharges"].astype(float)
    after = risen["MonthlyCharges"].astype(float)
    assert after.mean() / before.mean() == pytest.approx(1.15, abs=0.005)
    assert ((after / before) - 1.15).abs().max() < 0.01
    unchanged = [c for c in RAW_COLUMNS if c not in ("MonthlyCharges", "TotalCharges", "Churn")]
    pd.testing.assert_frame_equal(risen[unchanged], small_baseline[unchanged])
    churned_before = small_baseline["Churn"] == "Yes"
    churned_after = risen["Churn"] == "Yes"
    assert churned_after.mean() > churned_before.mean() + 0.04
    assert not (churned_before & ~churned_after).any(), "a price rise keeps no one"


def test_contract_mix_moves_new_customers_to_month_to_month(small_baseline: pd.DataFrame) -> None:
    mixed = simulate_customers(SCENARIO_N, seed=11, scenario="contract_mix")
    new = small_baseline["tenure"].astype(int) <= 24
    monthly_before = (small_baseline["Contract"] == "Month-to-month")[new].mean()
    monthly_after = (mixed["Contract"] == "Month-to-month")[new].mean()
    assert monthly_after > monthly_before + 0.1
    assert 1 - monthly_after < (1 - monthly_before) / 3, "term contracts among the new collapse"
    assert mixed.loc[~new, "Contract"].equals(small_baseline.loc[~new, "Contract"])


def test_fiber_push_moves_dsl_customers_to_fiber(small_baseline: pd.DataFrame) -> None:
    pushed = simulate_customers(SCENARIO_N, seed=11, scenario="fiber_push")
    before, after = small_baseline["InternetService"], pushed["InternetService"]
    assert (after == "DSL").mean() < 0.5 * (before == "DSL").mean()
    assert (after == "Fiber optic").mean() > (before == "Fiber optic").mean() + 0.15
    assert (after[before != "DSL"] == before[before != "DSL"]).all(), "only DSL customers move"
    assert pushed["MonthlyCharges"].astype(float).mean() > (
        small_baseline["MonthlyCharges"].astype(float).mean()
    )


# --- writing --------------------------------------------------------------------------------


def test_write_customers_writes_the_public_csv_layout(tmp_path: Path) -> None:
    frame = simulate_customers(20, seed=3)
    path = write_customers(frame, tmp_path / "nested" / "customers.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join([*RAW_COLUMNS, TIMESTAMP_COLUMN])
    assert len(lines) == 21
    assert lines[1].split(",")[0] == frame["customerID"].iloc[0]
    assert [p.name for p in path.parent.iterdir()] == ["customers.csv"], "no partial file left"


def test_write_customers_refuses_unknown_suffixes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported suffix"):
        write_customers(simulate_customers(5, seed=3), tmp_path / "customers.json")
