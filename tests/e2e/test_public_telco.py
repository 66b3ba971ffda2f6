"""The churn flow on the public IBM Telco CSV as published (when the file is present)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_flow_runs_on_the_public_file_and_reaches_the_published_baseline(
    public_telco_csv: Path, isolated_env: Path, prefect_server: None
) -> None:
    from pipelines.churn_flow import churn_pipeline

    summary = churn_pipeline(source=public_telco_csv)
    assert summary["rows"]["rows_valid"] == 7043
    assert summary["rows"]["rows_quarantined"] == 0
    assert summary["aliases"] == ["champion"]
    # Published baselines on this data sit around 0.84-0.86 test ROC-AUC.
    assert summary["test_metrics"]["roc_auc"] >= 0.84
