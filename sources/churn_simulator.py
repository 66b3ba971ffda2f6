"""Seeded simulator of telco customers, written in the exact public Telco Customer Churn schema.

The public IBM file is one snapshot of 7,043 customers with no time. The platform needs
more: data spread over time, as much of it as a test or demo wants, and named drifts for
the monitoring stage to find. `simulate_customers` draws customers whose columns depend on
each other the way they do in the public data (contract follows tenure, charges follow the
services, payment method follows the contract) and labels them from a logistic model of the
drivers known from that data, with enough label noise that a linear model scores about as
well as it does on the real file (ROC-AUC ~0.85), not perfectly. That customer model is
`sources.churn_customers`; this module makes its random draws and writes what it gives.

Every value is a string spelled as the public CSV spells it ("0"/"1", "56.95", "1889.5",
a single blank " " for the TotalCharges of a customer in their first month), so simulated
and real files go through the same loader and the same `validate_churn_frame`.

One extra column, `event_timestamp`, is when the customer was observed: an ISO-8601 UTC
string such as "2025-03-14T08:21:09Z", spread over `months` monthly billing cycles from
`start`. `Churn` is "Yes" when the customer leaves within the billing cycle that follows
that snapshot.

Drift scenarios (`SCENARIOS`) reuse the same random draws as the baseline, so a scenario
frame and a baseline frame with the same seed hold the same customers (same IDs and
timestamps) and differ only where the scenario acts, and what follows from it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from features.churn_schema import (
    CATEGORIES,
    ID_COLUMN,
    INTERNET_ADDONS,
    LABEL_COLUMN,
    NO_INTERNET,
    NO_PHONE,
    RAW_COLUMNS,
    TIMESTAMP_COLUMN,
)
from mlops.demo_population import draw_customer_ids
from sources.churn_customers import (
    BASE_PRICE_SENSITIVITY,
    ChurnScenario,
    Customers,
    churn_probability,
    draw_customers,
)

DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)
SIMULATED_COLUMNS: tuple[str, ...] = (*RAW_COLUMNS, TIMESTAMP_COLUMN)

CONTRACTS = CATEGORIES["Contract"]  # Month-to-month, One year, Two year
INTERNET_TYPES = CATEGORIES["InternetService"]  # DSL, Fiber optic, No
PAYMENT_METHODS = CATEGORIES["PaymentMethod"]

# Every random draw the simulator makes, in a fixed order. Scenarios change the model,
# never the draws, so the same seed gives the same customers under every scenario.
_UNIFORM_DRAWS = (
    "gender",
    "senior",
    "partner",
    "dependents",
    "tenure_component",
    "tenure_value",
    "just_joined",
    "internet",
    "fiber_push",
    "phone",
    "multiple_lines",
    "contract",
    *INTERNET_ADDONS,
    "paperless",
    "payment",
    "churn",
    "snapshot_cycle",
    "snapshot_offset",
)
_NORMAL_DRAWS = ("engagement", "price_noise", "total_noise", "unobserved_churn_risk")

SCENARIOS: dict[str, ChurnScenario] = {
    scenario.name: scenario
    for scenario in (
        ChurnScenario("baseline", "No drift: the customer base as in the public data."),
        ChurnScenario(
            "price_rise",
            "Monthly charges +15% for everyone, and churn twice as sensitive to price.",
            monthly_charges_factor=1.15,
            price_sensitivity=2 * BASE_PRICE_SENSITIVITY,
        ),
        ChurnScenario(
            "contract_mix",
            "Far more month-to-month contracts among customers in their first two years.",
            new_customer_month_to_month_log_odds=2.5,
        ),
        ChurnScenario(
            "fiber_push",
            "Two in three customers who would be on DSL are on fiber optic instead.",
            dsl_to_fiber_share=2 / 3,
        ),
    )
}


def simulate_customers(
    n_customers: int,
    *,
    seed: int = 42,
    start: datetime | None = None,
    months: int = 12,
    scenario: str = "baseline",
) -> pd.DataFrame:
    """Draw `n_customers` customers in the public Telco schema plus `event_timestamp`.

    Same arguments give an identical frame. `start` is the first billing cycle (default
    2025-01-01T00:00Z; a naive datetime is taken as UTC); snapshots fall uniformly within
    `months` monthly cycles from it. All columns are strings (see the module docstring).
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be at least 1, got {n_customers}")
    if months < 1:
        raise ValueError(f"months must be at least 1, got {months}")
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    drift = SCENARIOS[scenario]

    rng = np.random.default_rng(seed)
    # First of all draws: `mlops.demo_population` names the ids from the size and seed.
    customer_ids = draw_customer_ids(rng, n_customers)
    uniform = {name: rng.random(n_customers) for name in _UNIFORM_DRAWS}
    normal = {name: rng.standard_normal(n_customers) for name in _NORMAL_DRAWS}

    customers = draw_customers(uniform, normal, drift)
    churned = uniform["churn"] < churn_probability(customers, normal, drift)
    columns = _public_columns(customers, customer_ids, churned)
    columns[TIMESTAMP_COLUMN] = _snapshot_times(
        uniform["snapshot_cycle"], uniform["snapshot_offset"], start, months
    )
    return pd.DataFrame({name: columns[name].astype(object) for name in SIMULATED_COLUMNS})


def _public_columns(
    customers: Customers, customer_ids: np.ndarray, churned: np.ndarray
) -> dict[str, np.ndarray]:
    """The public file's columns, spelled as it spells them."""
    c = customers
    return {
        ID_COLUMN: customer_ids,
        "gender": np.where(c.male, "Male", "Female"),
        "SeniorCitizen": np.where(c.senior, "1", "0"),
        "Partner": _yes_no(c.partner),
        "Dependents": _yes_no(c.dependents),
        "tenure": c.tenure.astype(str),
        "PhoneService": _yes_no(c.phone),
        "MultipleLines": np.where(c.phone, _yes_no(c.multiple_lines), NO_PHONE),
        "InternetService": np.asarray(INTERNET_TYPES)[c.internet],
        **{
            column: np.where(c.has_internet, _yes_no(taken), NO_INTERNET)
            for column, taken in c.addons.items()
        },
        "Contract": np.asarray(CONTRACTS)[c.contract],
        "PaperlessBilling": _yes_no(c.paperless),
        "PaymentMethod": np.asarray(PAYMENT_METHODS)[c.payment],
        "MonthlyCharges": _money_text(c.monthly_charges),
        # The public file writes a single blank for customers not yet billed.
        "TotalCharges": np.where(c.tenure == 0, " ", _money_text(c.total_charges)),
        LABEL_COLUMN: _yes_no(churned),
    }


def write_customers(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` as CSV (header, no index, as the public file) or parquet, by suffix.

    The file appears complete or not at all: it is written beside the target and renamed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: unsupported suffix {path.suffix!r}; use .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    if suffix == ".csv":
        frame.to_csv(partial, index=False, lineterminator="\n")
    else:
        frame.to_parquet(partial, index=False)
    partial.replace(path)
    return path


def _snapshot_times(
    cycle_draw: np.ndarray, offset_draw: np.ndarray, start: datetime | None, months: int
) -> np.ndarray:
    """ISO-8601 UTC strings, uniform within `months` calendar-month cycles from `start`."""
    first = pd.Timestamp(start or DEFAULT_START)
    first = first.tz_localize(UTC) if first.tzinfo is None else first.tz_convert(UTC)
    cycle_starts = np.array(
        [(first + pd.DateOffset(months=k)).tz_localize(None) for k in range(months + 1)],
        dtype="datetime64[s]",
    )
    cycle = np.minimum((cycle_draw * months).astype(np.int64), months - 1)
    cycle_seconds = (cycle_starts[cycle + 1] - cycle_starts[cycle]).astype(np.int64)
    offset = np.floor(offset_draw * cycle_seconds).astype("timedelta64[s]")
    return np.datetime_as_string(cycle_starts[cycle] + offset, unit="s") + "Z"


def _money_text(amount: np.ndarray) -> np.ndarray:
    """Amounts spelled as the public CSV does: "56.95", "1889.5", "20" (no trailing zeros)."""
    cents = np.rint(amount * 100).astype(np.int64)
    whole = (cents // 100).astype(str)
    fraction = np.strings.rstrip(np.strings.zfill((cents % 100).astype(str), 2), "0")
    return np.where(fraction == "", whole, whole + "." + fraction)


def _yes_no(flag: np.ndarray) -> np.ndarray:
    return np.where(flag, "Yes", "No")
