"""Behavioural tests of the trained churn champion: the directions a churn model must get right.

They score hand-made customers through the same transforms and ONNX model the API uses,
changing one thing at a time, all else equal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from features.churn_transforms import churn_features
from mlops.model_bundle import download_bundle
from mlops.onnx_scorer import OnnxScorer
from mlops.settings import Settings

pytestmark = pytest.mark.slow

CUSTOMER: dict[str, Any] = {
    "gender": "Female",
    "SeniorCitizen": 0,
    "Partner": "No",
    "Dependents": "No",
    "tenure": 6,
    "PhoneService": "Yes",
    "MultipleLines": "No",
    "InternetService": "Fiber optic",
    "OnlineSecurity": "No",
    "OnlineBackup": "No",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "No",
    "StreamingMovies": "No",
    "Contract": "Month-to-month",
    "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check",
    "MonthlyCharges": 80.0,
    "TotalCharges": 480.0,
}


@pytest.fixture(scope="module")
def score(churn_run: dict[str, Any]) -> Any:
    settings = Settings(home=churn_run["home"])
    bundle = download_bundle(settings.tracking_uri, "churn", settings.models_dir, alias="champion")
    scorer = OnnxScorer(bundle.onnx_path)

    def probability(**changes: Any) -> float:
        customer = {**CUSTOMER, **changes}
        features = churn_features({k: np.asarray([v]) for k, v in customer.items()})
        row = np.asarray([features[n][0] for n in bundle.meta.feature_names], dtype=np.float32)
        return float(scorer.predict_proba(row.reshape(1, -1))[0])

    return probability


def test_longer_tenure_lowers_churn_risk(score: Any) -> None:
    short = score(tenure=2, TotalCharges=160.0)
    long = score(tenure=60, TotalCharges=4800.0)
    assert long < short


def test_two_year_contract_lowers_churn_risk(score: Any) -> None:
    assert score(Contract="Two year") < score(Contract="Month-to-month")


def test_adding_tech_support_and_security_at_list_price_lowers_churn_risk(score: Any) -> None:
    # Each add-on costs about 5 a month: the customer with both has paid 10 more each month.
    with_support = score(
        TechSupport="Yes", OnlineSecurity="Yes", MonthlyCharges=90.0, TotalCharges=6 * 90.0
    )
    assert with_support < score(MonthlyCharges=80.0, TotalCharges=6 * 80.0)


def test_the_riskiest_profile_is_flagged_and_the_safest_is_not(score: Any, churn_run: Any) -> None:
    threshold = churn_run["test_metrics"]["threshold"]
    assert score(tenure=1, TotalCharges=80.0) >= threshold
    safest = score(
        tenure=70,
        TotalCharges=70 * 60.0,
        MonthlyCharges=60.0,
        Contract="Two year",
        PaymentMethod="Credit card (automatic)",
        InternetService="DSL",
        TechSupport="Yes",
        OnlineSecurity="Yes",
    )
    assert safest < threshold
