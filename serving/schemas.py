"""Request and response models of the API, built from the raw data contracts.

The request fields take their bounds from the contracts' tables (`features.churn_schema`,
`features.fraud_schema`, `features.input_contract`), which the pipeline and batch
scoring check their rows against: a request the API accepts is a row the pipeline would
keep. Numbers are strict (no text, no bool, no float for a whole number) and finite.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from features import churn_schema, fraud_schema
from features.churn_schema import DEPENDENT_COLUMNS, total_charges_ceiling
from features.fraud_schema import TX_DATETIME_RANGE
from features.input_contract import MAX_TEXT_LENGTH, NumberRule


def contract_field(rule: NumberRule, **keywords: Any) -> Any:
    """A request field held to `rule`: its bounds, finite, strict about its type."""
    arguments: dict[str, Any] = {
        "strict": True,
        "allow_inf_nan": False,
        **rule.field_bounds(),
        **keywords,
    }
    return Field(**arguments)


_CHURN = churn_schema.NUMBERS
_FRAUD = fraud_schema.NUMBERS

# The categories are checked against `churn_schema.CATEGORIES` by the tests: a Literal
# must be spelled out for the type checker.
YesNo = Literal["Yes", "No"]
AddOn = Literal["Yes", "No", "No internet service"]


class ChurnCustomer(BaseModel):
    """A customer's raw fields, named and spelled as in the Telco CSV."""

    model_config = ConfigDict(extra="forbid")

    gender: Literal["Female", "Male"]
    SeniorCitizen: int = contract_field(_CHURN["SeniorCitizen"], description="1 for a senior.")
    Partner: YesNo
    Dependents: YesNo
    tenure: int = contract_field(_CHURN["tenure"], description="Months with the company.")
    PhoneService: YesNo
    MultipleLines: Literal["Yes", "No", "No phone service"]
    InternetService: Literal["DSL", "Fiber optic", "No"]
    OnlineSecurity: AddOn
    OnlineBackup: AddOn
    DeviceProtection: AddOn
    TechSupport: AddOn
    StreamingTV: AddOn
    StreamingMovies: AddOn
    Contract: Literal["Month-to-month", "One year", "Two year"]
    PaperlessBilling: YesNo
    PaymentMethod: Literal[
        "Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"
    ]
    MonthlyCharges: float = contract_field(_CHURN["MonthlyCharges"])
    TotalCharges: float | None = contract_field(
        _CHURN["TotalCharges"],
        default=None,
        description="Billed so far, at most max(tenure, 1) x 750; "
        "null for customers in their first month.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for column, none_level, service, absent in DEPENDENT_COLUMNS:
            if (getattr(self, service) == absent) != (getattr(self, column) == none_level):
                raise ValueError(
                    f"{column}={getattr(self, column)!r} is inconsistent with "
                    f"{service}={getattr(self, service)!r}"
                )
        if self.TotalCharges is None and self.tenure > 0:
            raise ValueError("TotalCharges may be null only for tenure 0")
        if self.TotalCharges is not None and self.TotalCharges > total_charges_ceiling(self.tenure):
            raise ValueError(
                f"TotalCharges is larger than tenure allows: at most "
                f"{total_charges_ceiling(self.tenure):g} for tenure {self.tenure}"
            )
        return self


class ChurnPredictRequest(BaseModel):
    """Score a known customer by id (features from the online store) or raw fields."""

    # Its examples, a customer of the demo's population, are added by `serving.openapi`.
    model_config = ConfigDict(extra="forbid")

    customer_id: str | None = Field(
        default=None, strict=True, min_length=1, max_length=MAX_TEXT_LENGTH
    )
    customer: ChurnCustomer | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.customer_id is None) == (self.customer is None):
            raise ValueError("give exactly one of customer_id or customer")
        return self


class ModelRef(BaseModel):
    name: str
    version: str


class ChurnPrediction(BaseModel):
    customer_id: str | None
    churn_probability: float = Field(ge=0, le=1)
    will_churn: bool = Field(description="The decision at the model's threshold.")
    threshold: float
    feature_source: Literal["online_store", "request"]
    model: ModelRef


class LoadError(BaseModel):
    """The last failure to follow a model's alias: a version that would not load, or the
    alias that could not be read."""

    version: str | None = Field(description="The version that failed; null: the alias.")
    reason: str = Field(description="The error's type and first line.")
    failed_at: datetime


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str
    candidate: str
    feature_service: str
    features: list[str]
    threshold: float
    onnx_sha256: str
    test_metrics: dict[str, float]
    alias_version: str | None = Field(
        default=None, description="The version the alias pointed at when last read."
    )
    last_load_error: LoadError | None = Field(
        default=None, description="Why the alias's version is not the one served, if it is not."
    )


class ModelState(BaseModel):
    """How one served model follows its alias."""

    version: str | None = Field(description="The version served; null: none is loaded.")
    alias_version: str | None = Field(description="The version the alias named when last read.")
    matches_alias: bool = Field(description="A model is loaded and it is the alias's version.")
    last_load_error: LoadError | None = None


# A transaction stamped further ahead of the server's clock than this is refused: clocks
# drift by seconds, not minutes, so a later time is a bug or a forgery.
MAX_CLOCK_SKEW = timedelta(minutes=5)


class FraudTransaction(BaseModel):
    """A card payment to score as it happens, in the handbook's terms."""

    # Its example, a payment of the demo's population, is added by `serving.openapi`.
    model_config = ConfigDict(extra="forbid")

    transaction_id: int | None = contract_field(
        _FRAUD[fraud_schema.TRANSACTION_ID],
        default=None,
        description="Echoed back; not used to score.",
    )
    customer_id: int = contract_field(
        _FRAUD[fraud_schema.CUSTOMER_ID], description="The card holder."
    )
    terminal_id: int = contract_field(
        _FRAUD[fraud_schema.TERMINAL_ID], description="Where the card was used."
    )
    amount: float = contract_field(
        _FRAUD[fraud_schema.TX_AMOUNT], description="Amount of the payment."
    )
    tx_datetime: AwareDatetime = Field(
        description="When the payment happened, with its UTC offset (e.g. ...Z); "
        "from 1970 to the server's clock.",
    )

    @field_validator("tx_datetime", mode="before")
    @classmethod
    def _a_time_not_a_number(cls, value: Any) -> Any:
        # Lax pydantic reads a number as seconds since the epoch: a payment time is sent as
        # text with its offset, so a number is a mistake, not a time.
        if not isinstance(value, str | datetime):
            raise ValueError("must be a date and time as text, e.g. 2026-01-01T12:00:00Z")
        return value

    @field_validator("tx_datetime")
    @classmethod
    def _in_range(cls, value: datetime) -> datetime:
        # Compared as instants before any conversion: converting year 1 or 9999 with an
        # offset to UTC would overflow.
        if not TX_DATETIME_RANGE.admits(value):
            raise ValueError(f"is not {TX_DATETIME_RANGE.meaning}")
        latest = datetime.now(UTC) + MAX_CLOCK_SKEW
        if value > latest:
            raise ValueError(
                f"is in the future: {value.isoformat()} is after the server's clock "
                f"plus {int(MAX_CLOCK_SKEW.total_seconds() // 60)} minutes"
            )
        return value.astimezone(UTC)


class FraudScore(BaseModel):
    transaction_id: int | None
    fraud_probability: float = Field(ge=0, le=1)
    is_fraud: bool = Field(description="The decision at the model's cost-chosen threshold.")
    threshold: float
    model: ModelRef


class ReloadOutcome(BaseModel):
    version: str | None = Field(description="The version served after the reload, if any.")
    changed: bool = Field(description="A new version was loaded and swapped in.")
    error: str | None = Field(description="Why the alias could not be followed, if it could not.")


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool = Field(description="Every check passed: the API answers predictions.")
    checks: dict[str, bool] = Field(
        description="Per served case study: `<name>_model` loaded, `<name>_features` answering "
        "and holding the last publish; `prediction_log`: the log can persist predictions."
    )
    model_errors: dict[str, str] | None = Field(
        default=None, description="Why a served model could not be loaded, by case study."
    )
    feature_errors: dict[str, str] | None = Field(
        default=None,
        description="Why a case study's online store is not usable: it does not answer, or "
        "no longer holds what was published (its canary entity is missing).",
    )
    prediction_log_error: str | None = Field(
        default=None,
        description="Why the prediction log cannot persist predictions (its spool full or "
        "failing); predictions are refused with 503 meanwhile.",
    )
    models: dict[str, ModelState] = Field(
        default_factory=dict,
        description="Per served case study: the version served and the alias's. A model "
        "that keeps serving after its alias moved to a version that failed to load is "
        "ready, and says so here (`matches_alias` false, `last_load_error`).",
    )
