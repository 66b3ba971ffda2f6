"""The churn simulator's customer model: how each column follows the others, why customers leave.

`draw_customers` turns the simulator's named uniform and normal draws into customers whose
columns depend on each other the way they do in the public Telco data (contract follows
tenure, charges follow the services, payment method follows the contract);
`churn_probability` is the logistic model of the churn drivers known from that data, with
label noise. A `ChurnScenario` changes the model's parameters, never the draws.
`sources.churn_simulator` makes the draws and spells the result as the public file does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The public data covers six years of contracts: tenure runs 0..72 months.
LONGEST_TENURE = 72
# "New customers" for the contract_mix drift: the first two years, when contracts are chosen.
NEW_CUSTOMER_MONTHS = 24
# The public price range. Churn risk grows with the bill above the cheapest plan, so a
# higher price sensitivity raises everyone's risk (most for the biggest bills).
CHEAPEST_MONTHLY_CHARGE = 18.25
DEAREST_MONTHLY_CHARGE = 118.75
BASE_PRICE_SENSITIVITY = 0.25


@dataclass(frozen=True)
class ChurnScenario:
    """One named way the customer base differs from the baseline; the defaults mean no drift."""

    name: str
    description: str
    # Multiplies every monthly bill (and so the billed history in TotalCharges).
    monthly_charges_factor: float = 1.0
    # Churn log-odds per 30 currency units of monthly bill above CHEAPEST_MONTHLY_CHARGE.
    price_sensitivity: float = BASE_PRICE_SENSITIVITY
    # Added to the log-odds of a month-to-month contract for customers in their first
    # NEW_CUSTOMER_MONTHS months.
    new_customer_month_to_month_log_odds: float = 0.0
    # Share of the customers who would have chosen DSL that are on fiber instead.
    dsl_to_fiber_share: float = 0.0


@dataclass(frozen=True)
class Customers:
    """The drawn customers, one array entry a customer, before they are spelled as text."""

    male: np.ndarray
    senior: np.ndarray
    partner: np.ndarray
    dependents: np.ndarray
    tenure: np.ndarray  # months, 0..LONGEST_TENURE
    internet: np.ndarray  # 0 DSL, 1 Fiber optic, 2 No (the schema's InternetService order)
    phone: np.ndarray
    multiple_lines: np.ndarray
    contract: np.ndarray  # 0 Month-to-month, 1 One year, 2 Two year
    addons: dict[str, np.ndarray]  # internet add-on column -> taken
    paperless: np.ndarray
    payment: np.ndarray  # index into the schema's PaymentMethod categories
    monthly_charges: np.ndarray
    total_charges: np.ndarray

    @property
    def has_internet(self) -> np.ndarray:
        return self.internet != 2

    @property
    def fiber(self) -> np.ndarray:
        return self.internet == 1

    @property
    def electronic_check(self) -> np.ndarray:
        return self.payment == 0


def draw_customers(
    uniform: dict[str, np.ndarray], normal: dict[str, np.ndarray], drift: ChurnScenario
) -> Customers:
    """Household, services, contract, billing and charges, each following the ones before.

    `uniform` and `normal` are the simulator's draws by name, one value a customer.
    """
    male = uniform["gender"] < 0.505
    senior = uniform["senior"] < 0.162
    partner = uniform["partner"] < 0.483
    # Dependents mostly come with a partner (51% vs 10% in the public data).
    dependents = uniform["dependents"] < np.where(partner, 0.51, 0.10)
    tenure = _tenure(uniform, partner)
    tenure_share = tenure / LONGEST_TENURE

    internet = _internet(uniform, senior, drift)
    has_internet = internet != 2
    fiber = internet == 1
    dsl = internet == 0

    # Everyone without internet has a phone; DSL is the only data-only product.
    phone = ~dsl | (uniform["phone"] < 0.71)
    multiple_lines = phone & (
        uniform["multiple_lines"]
        < _sigmoid(-1.15 + 1.8 * tenure_share + 0.9 * fiber - 0.8 * ~has_internet)
    )

    contract = _contract(uniform["contract"], tenure, fiber, has_internet, drift)
    month_to_month, two_year = contract == 0, contract == 2
    addons = _addons(uniform, normal["engagement"], tenure_share, fiber, has_internet, two_year)

    paperless = uniform["paperless"] < _sigmoid(
        0.05 + 0.5 * month_to_month + 0.6 * fiber - 1.0 * ~has_internet + 0.3 * senior
    )
    payment = _payment(uniform["payment"], contract)

    monthly_charges = _monthly_charges(
        phone, multiple_lines, dsl, fiber, addons, normal["price_noise"]
    )
    monthly_charges = _round_to_nickel(monthly_charges * drift.monthly_charges_factor)
    # Billed history: tenure bills of about today's amount (prices and services moved a bit).
    total_charges = _round_to_nickel(
        tenure * monthly_charges * np.clip(1 + 0.05 * normal["total_noise"], 0.85, 1.15)
    )
    return Customers(
        male=male,
        senior=senior,
        partner=partner,
        dependents=dependents,
        tenure=tenure,
        internet=internet,
        phone=phone,
        multiple_lines=multiple_lines,
        contract=contract,
        addons=addons,
        paperless=paperless,
        payment=payment,
        monthly_charges=monthly_charges,
        total_charges=total_charges,
    )


def _tenure(uniform: dict[str, np.ndarray], partner: np.ndarray) -> np.ndarray:
    """Months with the company, 0..72, in the public data's bimodal shape.

    A mixture: recent sign-ups piled up at one month, a long flat middle, and loyal
    customers piled up at the six-year cap. Customers with a partner stay longer.
    """
    new_weight = np.where(partner, 0.19, 0.35)
    loyal_weight = np.where(partner, 0.15, 0.05)
    component = uniform["tenure_component"]
    value = uniform["tenure_value"]
    # Log-uniform over the first two years: a spike at one month, thinning out by month 24.
    recent = np.floor(np.exp(value * np.log(25)))
    middle = 1 + np.floor(value * LONGEST_TENURE)
    loyal = LONGEST_TENURE - np.floor(-2.0 * np.log1p(-value))
    tenure = np.where(
        component < new_weight,
        recent,
        np.where(component < new_weight + loyal_weight, loyal, middle),
    )
    tenure = np.clip(tenure, 1, LONGEST_TENURE).astype(np.int64)
    # A few customers joined during the current cycle and have not been billed yet.
    return np.where(uniform["just_joined"] < 0.004, 0, tenure)


def _internet(
    uniform: dict[str, np.ndarray], senior: np.ndarray, drift: ChurnScenario
) -> np.ndarray:
    """0 DSL, 1 fiber optic, 2 no internet; the scenario's share of DSL moved to fiber."""
    # Seniors are mostly on fiber and rarely without internet.
    internet_probs = np.where(senior[:, None], [0.24, 0.70, 0.06], [0.36, 0.39, 0.25])
    internet = _draw_category(internet_probs, uniform["internet"])
    dsl_moved = (internet == 0) & (uniform["fiber_push"] < drift.dsl_to_fiber_share)
    return np.where(dsl_moved, 1, internet)


def _contract(
    u: np.ndarray,
    tenure: np.ndarray,
    fiber: np.ndarray,
    has_internet: np.ndarray,
    drift: ChurnScenario,
) -> np.ndarray:
    """0 month-to-month, 1 one year, 2 two year: long-standing customers hold term contracts."""
    tenure_share = tenure / LONGEST_TENURE
    month_to_month = (
        0.4 * fiber
        - 0.7 * ~has_internet
        + drift.new_customer_month_to_month_log_odds * (tenure <= NEW_CUSTOMER_MONTHS)
    )
    one_year = -2.3 + 3.3 * tenure_share
    two_year = -3.0 + 4.8 * tenure_share
    log_odds = np.stack([month_to_month, one_year, two_year], axis=1)
    probs = np.exp(log_odds - log_odds.max(axis=1, keepdims=True))
    return _draw_category(probs / probs.sum(axis=1, keepdims=True), u)


def _addons(
    uniform: dict[str, np.ndarray],
    engagement: np.ndarray,
    tenure_share: np.ndarray,
    fiber: np.ndarray,
    has_internet: np.ndarray,
    two_year: np.ndarray,
) -> dict[str, np.ndarray]:
    """Which internet add-on each customer takes (none without internet)."""
    # A shared engagement trait makes add-ons come together, as they do in the real data.
    addon_log_odds = {
        "OnlineSecurity": -1.1 + 1.4 * tenure_share - 0.9 * fiber + 0.6 * two_year,
        "OnlineBackup": -0.8 + 1.6 * tenure_share - 0.3 * fiber,
        "DeviceProtection": -0.9 + 1.7 * tenure_share - 0.1 * fiber,
        "TechSupport": -1.1 + 1.4 * tenure_share - 0.9 * fiber + 0.7 * two_year,
        "StreamingTV": -1.1 + 1.1 * tenure_share + 0.9 * fiber,
        "StreamingMovies": -1.1 + 1.1 * tenure_share + 0.9 * fiber,
    }
    return {
        column: has_internet & (uniform[column] < _sigmoid(log_odds + 0.9 * engagement))
        for column, log_odds in addon_log_odds.items()
    }


def _payment(u: np.ndarray, contract: np.ndarray) -> np.ndarray:
    """Index into PAYMENT_METHODS, drawn by contract."""
    # Electronic check is the month-to-month habit; term contracts pay automatically.
    payment_probs = np.array(
        [
            [0.49, 0.22, 0.15, 0.14],  # Month-to-month
            [0.18, 0.23, 0.29, 0.30],  # One year
            [0.08, 0.24, 0.34, 0.34],  # Two year
        ]
    )[contract]
    return _draw_category(payment_probs, u)


def _monthly_charges(
    phone: np.ndarray,
    multiple_lines: np.ndarray,
    dsl: np.ndarray,
    fiber: np.ndarray,
    addons: dict[str, np.ndarray],
    noise: np.ndarray,
) -> np.ndarray:
    """The bill, built from the services as in the public price list, to the nickel.

    Phone only ~20, DSL with phone ~45, fiber with phone ~70; each protection add-on ~5,
    each streaming service ~10; the public range is 18.25..118.75.
    """
    bill = (
        20.0 * phone
        + 5.0 * multiple_lines
        + 25.0 * dsl
        + 50.0 * fiber
        + 5.0 * addons["OnlineSecurity"]
        + 5.0 * addons["OnlineBackup"]
        + 5.0 * addons["DeviceProtection"]
        + 5.0 * addons["TechSupport"]
        + 10.0 * addons["StreamingTV"]
        + 10.0 * addons["StreamingMovies"]
        + np.clip(1.2 * noise, -2.5, 4.0)
    )
    return _round_to_nickel(np.clip(bill, CHEAPEST_MONTHLY_CHARGE, DEAREST_MONTHLY_CHARGE))


def churn_probability(
    customers: Customers, normal: dict[str, np.ndarray], drift: ChurnScenario
) -> np.ndarray:
    """Each customer's probability of leaving within the next billing cycle."""
    return _sigmoid(_churn_log_odds(customers, normal, drift))


def _churn_log_odds(
    customers: Customers, normal: dict[str, np.ndarray], drift: ChurnScenario
) -> np.ndarray:
    """The log-odds of leaving within the next cycle, from the drivers of the public data."""
    c = customers
    return (
        -0.29
        - 0.9 * (c.contract == 1)
        - 2.2 * (c.contract == 2)
        - 0.5 * np.log1p(c.tenure)
        + 0.8 * c.fiber
        - 0.7 * ~c.has_internet
        + 0.45 * c.electronic_check
        + 0.3 * c.paperless
        + 0.3 * c.senior
        - 0.45 * c.addons["OnlineSecurity"]
        - 0.45 * c.addons["TechSupport"]
        + 0.15 * c.addons["StreamingTV"]
        + 0.15 * c.addons["StreamingMovies"]
        + 0.15 * c.multiple_lines
        - 0.2 * c.dependents
        + drift.price_sensitivity * (c.monthly_charges - CHEAPEST_MONTHLY_CHARGE) / 30
        # What no column records (service quality, competitors' offers): label noise.
        + 0.35 * normal["unobserved_churn_risk"]
    )


def _draw_category(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index of the category each row's uniform draw falls into (inverse CDF per row)."""
    upper = np.cumsum(probs, axis=1)
    return np.minimum((u[:, None] >= upper).sum(axis=1), probs.shape[1] - 1)


def _sigmoid(log_odds: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-log_odds))


def _round_to_nickel(amount: np.ndarray) -> np.ndarray:
    # Public charges are multiples of 0.05.
    return np.round(amount * 20) / 20
