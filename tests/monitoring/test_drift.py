"""Drift reports on seeded churn-like frames: verdicts, declared column types, files, MLflow."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from monitoring.drift import (
    DRIFT_SHARE_THRESHOLD,
    DriftSummary,
    build_drift_report,
    log_drift_to_mlflow,
)

N_ROWS = 3000
NUMERICAL = [
    "age",
    "income",
    "tenure_months",
    "monthly_charges",
    "support_calls",
    "sessions_per_week",
    "avg_session_minutes",
    "days_since_last_login",
]
# has_partner is a 0/1 integer column: categorical only because it is declared so.
CATEGORICAL = ["plan", "has_partner"]
SHIFTED = ["age", "income", "tenure_months", "monthly_charges", "plan", "has_partner"]

# Evidently's tests for categorical columns (its default above 1000 rows is Jensen-Shannon).
CATEGORICAL_METHODS = {
    "Jensen-Shannon distance",
    "chi-square p_value",
    "Z-test p_value",
    "PSI",
    "Total-Variation-Distance",
    "Hellinger distance",
}
NUMERICAL_DEFAULT_METHOD = "Wasserstein distance (normed)"


def churn_frame(seed: int, *, shifted: bool = False, n: int = N_ROWS) -> pd.DataFrame:
    """Ten feature columns; ``shifted`` moves the six SHIFTED columns well away."""
    rng = np.random.default_rng(seed)
    plan_p = [0.1, 0.3, 0.6] if shifted else [0.6, 0.3, 0.1]
    return pd.DataFrame(
        {
            "age": rng.normal(52 if shifted else 40, 10, n),
            "income": rng.lognormal(11.0, 0.5, n) * (2.0 if shifted else 1.0),
            "tenure_months": rng.integers(0, 24 if shifted else 72, n),
            "monthly_charges": rng.uniform(60 if shifted else 20, 120, n),
            "support_calls": rng.poisson(1.5, n),
            "sessions_per_week": rng.gamma(2.0, 2.0, n),
            "avg_session_minutes": rng.exponential(12.0, n),
            "days_since_last_login": rng.integers(0, 30, n),
            "plan": rng.choice(["basic", "plus", "pro"], size=n, p=plan_p),
            "has_partner": rng.binomial(1, 0.75 if shifted else 0.3, n),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return churn_frame(seed=1)


@pytest.fixture(scope="module")
def shifted_current() -> pd.DataFrame:
    return churn_frame(seed=3, shifted=True)


@pytest.fixture(scope="module")
def same_summary(reference: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> DriftSummary:
    return build_drift_report(
        reference,
        churn_frame(seed=2),
        out_dir=tmp_path_factory.mktemp("drift") / "reports",
        name="same",
        numerical_columns=NUMERICAL,
        categorical_columns=CATEGORICAL,
    )


@pytest.fixture(scope="module")
def shifted_summary(
    reference: pd.DataFrame, shifted_current: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> DriftSummary:
    return build_drift_report(
        reference,
        shifted_current,
        out_dir=tmp_path_factory.mktemp("drift") / "reports",
        name="shifted",
        numerical_columns=NUMERICAL,
        categorical_columns=CATEGORICAL,
    )


def test_same_distribution_is_not_dataset_drift(same_summary: DriftSummary) -> None:
    assert same_summary.dataset_drift is False
    assert same_summary.n_columns == 10
    assert set(same_summary.per_column) == set(NUMERICAL + CATEGORICAL)
    assert len(same_summary.drifted_columns) <= 1
    assert same_summary.drift_share < DRIFT_SHARE_THRESHOLD


def test_strong_shift_in_six_of_ten_columns_is_dataset_drift(shifted_summary: DriftSummary) -> None:
    assert shifted_summary.dataset_drift is True
    assert set(SHIFTED) <= set(shifted_summary.drifted_columns)
    assert shifted_summary.drifted_columns == sorted(shifted_summary.drifted_columns)
    # Evidently's dataset-level share agrees with its per-column verdicts.
    assert shifted_summary.drift_share == pytest.approx(
        len(shifted_summary.drifted_columns) / shifted_summary.n_columns
    )
    for column in SHIFTED:
        assert shifted_summary.per_column[column]["drifted"] is True
        assert shifted_summary.per_column[column]["drift_score"] > 0


def test_declared_binary_int_column_gets_a_categorical_test(shifted_summary: DriftSummary) -> None:
    has_partner = shifted_summary.per_column["has_partner"]
    assert has_partner["column_type"] == "categorical"
    assert has_partner["method"] in CATEGORICAL_METHODS
    assert has_partner["method"] == shifted_summary.per_column["plan"]["method"]
    assert shifted_summary.per_column["age"]["method"] == NUMERICAL_DEFAULT_METHOD


def test_declared_type_decides_the_test(reference: pd.DataFrame, tmp_path: Path) -> None:
    # support_calls is a small-count integer: Evidently alone would call it categorical.
    current = churn_frame(seed=2)
    as_categorical = build_drift_report(
        reference, current, out_dir=tmp_path, name="cat", categorical_columns=["support_calls"]
    )
    as_numerical = build_drift_report(
        reference, current, out_dir=tmp_path, name="num", numerical_columns=["support_calls"]
    )
    assert as_categorical.per_column["support_calls"]["method"] in CATEGORICAL_METHODS
    assert as_numerical.per_column["support_calls"]["method"] == NUMERICAL_DEFAULT_METHOD


def test_default_columns_are_the_shared_ones_typed_by_dtype(
    reference: pd.DataFrame, shifted_current: pd.DataFrame, tmp_path: Path
) -> None:
    current = shifted_current.drop(columns=["days_since_last_login"]).assign(only_in_current=1.0)
    summary = build_drift_report(reference, current, out_dir=tmp_path, name="inferred")

    assert set(summary.per_column) == set(NUMERICAL + CATEGORICAL) - {"days_since_last_login"}
    types = {column: drift["column_type"] for column, drift in summary.per_column.items()}
    assert types["plan"] == "categorical"
    # Integers are numerical unless declared otherwise, 0/1 included.
    assert types["has_partner"] == types["support_calls"] == types["age"] == "numerical"
    assert summary.per_column["support_calls"]["method"] == NUMERICAL_DEFAULT_METHOD


def test_report_files_are_written(shifted_summary: DriftSummary) -> None:
    html = shifted_summary.html_path.read_text(encoding="utf-8")
    assert shifted_summary.html_path.name == "shifted.html"
    assert "<html" in html
    assert shifted_summary.html_path.stat().st_size > 10_000
    assert '<script src="http' not in html  # self-contained: the JS library is inlined

    snapshot = json.loads(shifted_summary.json_path.read_text(encoding="utf-8"))
    assert shifted_summary.json_path.name == "shifted.json"
    drifted_columns = {
        metric["config"]["column"]
        for metric in snapshot["metrics"]
        if metric["config"]["type"].endswith("ValueDrift")
    }
    assert drifted_columns == set(NUMERICAL + CATEGORICAL)

    summary = json.loads(shifted_summary.summary_path.read_text(encoding="utf-8"))
    assert shifted_summary.summary_path.name == "shifted.summary.json"
    assert summary == shifted_summary.to_dict()
    assert summary["n_drifted_columns"] == len(shifted_summary.drifted_columns)


def test_drift_share_threshold_is_a_parameter(
    reference: pd.DataFrame, shifted_current: pd.DataFrame, tmp_path: Path
) -> None:
    # 6 of 10 drift: the default 0.5 calls that dataset drift (see above), 0.9 does not.
    summary = build_drift_report(
        reference,
        shifted_current,
        out_dir=tmp_path,
        name="lenient",
        numerical_columns=NUMERICAL,
        categorical_columns=CATEGORICAL,
        drift_share_threshold=0.9,
    )
    assert summary.drift_share == pytest.approx(0.6)
    assert summary.drift_share_threshold == 0.9
    assert summary.dataset_drift is False


@pytest.mark.parametrize(
    ("numerical", "categorical", "message"),
    [
        (["age", "nope"], None, "missing from reference"),
        (["age"], ["age"], "more than once"),
        (["plan"], None, "non-numeric"),
        ([], [], "no columns"),
    ],
)
def test_bad_columns_are_refused(
    reference: pd.DataFrame,
    tmp_path: Path,
    numerical: list[str] | None,
    categorical: list[str] | None,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        build_drift_report(
            reference,
            reference,
            out_dir=tmp_path,
            name="bad",
            numerical_columns=numerical,
            categorical_columns=categorical,
        )


@pytest.mark.parametrize("name", ["", "../escape", "sub/report"])
def test_name_must_be_a_plain_file_name(reference: pd.DataFrame, tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        build_drift_report(reference, reference, out_dir=tmp_path, name=name)


@pytest.fixture
def mlflow_experiment(tmp_path: Path) -> Iterator[str]:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment_id = mlflow.create_experiment(
        "drift-test", artifact_location=(tmp_path / "mlartifacts").as_uri()
    )
    yield experiment_id
    # set_tracking_uri is process-global (and exports MLFLOW_TRACKING_URI); None undoes both.
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


def test_log_drift_to_mlflow(shifted_summary: DriftSummary, mlflow_experiment: str) -> None:
    with mlflow.start_run(experiment_id=mlflow_experiment) as run:
        log_drift_to_mlflow(shifted_summary)

    client = MlflowClient()
    logged = {Path(item.path).name for item in client.list_artifacts(run.info.run_id, "drift")}
    assert logged == {"shifted.html", "shifted.json", "shifted.summary.json"}
    metrics = client.get_run(run.info.run_id).data.metrics
    assert metrics["drift_share"] == pytest.approx(shifted_summary.drift_share)
    assert metrics["n_drifted_columns"] == len(shifted_summary.drifted_columns)


def test_log_drift_needs_an_active_run(shifted_summary: DriftSummary) -> None:
    with pytest.raises(RuntimeError, match="active MLflow run"):
        log_drift_to_mlflow(shifted_summary)
