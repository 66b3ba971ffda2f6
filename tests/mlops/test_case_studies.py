"""The case-study registry: each case study declared once, and what reads it agrees with it."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

from mlops.case_studies import CASE_STUDIES, CHURN, FRAUD, case_study
from mlops.names import METRICS
from mlops.settings import Settings


def test_every_case_study_is_found_by_its_name_and_an_unknown_one_is_refused() -> None:
    assert list(CASE_STUDIES) == ["churn", "fraud"]
    assert case_study("fraud") is FRAUD
    with pytest.raises(ValueError, match="unknown case study 'spam'; known: churn, fraud"):
        case_study("spam")


def test_the_registered_model_name_comes_from_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOPS_CHURN_MODEL_NAME", "churn-eu")
    settings = Settings()
    assert CHURN.model_name(settings) == "churn-eu"
    assert FRAUD.model_name(settings) == "fraud"


def test_each_pipeline_flow_is_a_prefect_flow_named_after_its_case_study() -> None:
    from prefect import Flow

    for study in CASE_STUDIES.values():
        module, attribute = study.pipeline_flow.split(":")
        flow = getattr(importlib.import_module(module), attribute)
        assert isinstance(flow, Flow)
        assert flow.name == f"{study.name}_pipeline"


def test_the_metrics_a_case_study_names_are_metrics_of_the_platform() -> None:
    for study in CASE_STUDIES.values():
        assert study.primary_metric in METRICS
        assert set(study.headline_metrics) <= set(METRICS)
        assert study.primary_metric in study.headline_metrics


def test_every_metric_reported_anywhere_has_one_name() -> None:
    from features.fraud_schema import CUSTOMER_ID, TX_DATETIME, TX_FRAUD
    from monitoring.classification_quality import QUALITY_METRICS
    from training.evaluate import classification_metrics
    from training.fraud_metrics import DEFAULT_K, fraud_metrics

    rng = np.random.default_rng(0)
    labels = np.tile([0, 1], 50)
    scores = np.clip(labels * 0.3 + rng.uniform(size=100) * 0.7, 0, 1)
    churn = classification_metrics(labels, scores, 0.5)
    payments = pd.DataFrame(
        {
            TX_DATETIME: pd.date_range("2026-01-01", periods=100, freq="h", tz="UTC"),
            CUSTOMER_ID: np.arange(100) % 17,
            TX_FRAUD: labels,
        }
    )
    fraud = fraud_metrics(
        payments, scores, 0.5, k=DEFAULT_K, cost_missed_fraud=100.0, cost_false_alarm=5.0
    )
    for reported in (churn, fraud, dict.fromkeys(QUALITY_METRICS)):
        assert set(reported) <= set(METRICS), set(reported) - set(METRICS)
