"""Batch scoring against the session's churn run: its registered champion and its raw data.

The batch path must agree with the online one: scoring the run's raw customers from a
file gives the probabilities of the offline feature table scored with the same bundle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.churn_schema import LABEL_COLUMN, TIMESTAMP_COLUMN
from features.feature_repo.churn import CHURN_FEATURES_FILE
from features.quarantine import QUARANTINE_REASON, QUARANTINE_VALUE, UnusableSource
from mlops.case_studies import CASE_STUDIES
from mlops.model_bundle import download_bundle
from mlops.onnx_scorer import ConcurrentOnnxScorer, OnnxScorer
from mlops.settings import Settings
from serving.batch.pipeline import BATCH_CASE_STUDIES, score_file
from sources.churn_simulator import write_customers
from tests.helpers.scores import assert_same_probabilities

pytestmark = pytest.mark.slow

OUTPUT_COLUMNS = ["customerID", "churn_probability", "will_churn", "model_name", "model_version"]


@pytest.fixture
def raw_csv(raw_customers: pd.DataFrame, tmp_path: Path) -> Path:
    return write_customers(raw_customers, tmp_path / "in" / "customers.csv")


def read_output(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={"customerID": str, "model_version": str})
    return pd.read_parquet(path)


def test_every_case_study_has_its_batch_parts() -> None:
    assert set(BATCH_CASE_STUDIES) == set(CASE_STUDIES)
    for name, parts in BATCH_CASE_STUDIES.items():
        assert parts.study is CASE_STUDIES[name]


def test_batch_scores_match_the_offline_features_scored_offline(
    churn_settings: Settings, churn_run: dict[str, Any], raw_csv: Path, tmp_path: Path
) -> None:
    """File -> validation -> transforms -> ONNX == the published feature table -> ONNX."""
    output = tmp_path / "out" / "scores.csv"
    summary = score_file(churn_settings, "churn", raw_csv, output)

    offline = pd.read_parquet(churn_settings.features_dir / CHURN_FEATURES_FILE)
    offline = offline.sort_values(TIMESTAMP_COLUMN).drop_duplicates("customer_id", keep="last")
    bundle = download_bundle(
        churn_settings.tracking_uri, "churn", churn_settings.models_dir, alias="champion"
    )
    expected = OnnxScorer(bundle.onnx_path).predict_proba(
        offline[bundle.meta.feature_names].to_numpy(dtype=np.float32)
    )
    want = pd.Series(expected, index=offline["customer_id"].to_numpy())

    scored = read_output(output)
    got = scored.sort_values(TIMESTAMP_COLUMN).drop_duplicates("customerID", keep="last")
    got = got.set_index("customerID")["churn_probability"]
    assert set(got.index) == set(want.index)
    np.testing.assert_allclose(got[want.index].to_numpy(), want.to_numpy(), atol=1e-6, rtol=0)

    assert summary.rows_scored == summary.rows_in == len(scored)
    assert summary.rows_quarantined == 0 and summary.quarantine is None
    assert summary.model_name == "churn"
    assert summary.model_version == churn_run["model_version"]
    assert summary.rows_per_second > 0
    assert (scored["will_churn"] == (scored["churn_probability"] >= bundle.meta.threshold)).all()
    assert (scored["model_version"] == churn_run["model_version"]).all()


def test_parquet_output_keeps_types_and_matches_csv_output(
    churn_settings: Settings, raw_csv: Path, tmp_path: Path
) -> None:
    as_csv = tmp_path / "scores.csv"
    as_parquet = tmp_path / "scores.parquet"
    score_file(churn_settings, "churn", raw_csv, as_csv)
    summary = score_file(churn_settings, "churn", raw_csv, as_parquet)

    parquet = pd.read_parquet(as_parquet)
    assert list(parquet.columns) == [*OUTPUT_COLUMNS, TIMESTAMP_COLUMN]
    assert parquet["churn_probability"].dtype == np.float32
    assert parquet["will_churn"].dtype == bool
    assert str(parquet[TIMESTAMP_COLUMN].dtype) == "datetime64[ns, UTC]"
    csv = read_output(as_csv)
    assert list(csv["customerID"]) == list(parquet["customerID"])
    np.testing.assert_allclose(
        csv["churn_probability"], parquet["churn_probability"], atol=1e-7, rtol=0
    )
    assert (csv["will_churn"] == parquet["will_churn"]).all()
    assert (pd.to_datetime(csv[TIMESTAMP_COLUMN], utc=True) == parquet[TIMESTAMP_COLUMN]).all()
    assert summary.to_dict()["output"] == str(as_parquet)
    assert not list(tmp_path.glob(".*partial")), "no partial file is left behind"


def test_a_file_without_labels_or_timestamps_is_scored(
    churn_settings: Settings, raw_customers: pd.DataFrame, tmp_path: Path
) -> None:
    unlabelled = raw_customers.drop(columns=[LABEL_COLUMN, TIMESTAMP_COLUMN])
    source = write_customers(unlabelled, tmp_path / "unlabelled.parquet")
    output = tmp_path / "scores.csv"

    summary = score_file(churn_settings, "churn", source, output)

    scored = read_output(output)
    assert list(scored.columns) == OUTPUT_COLUMNS
    assert summary.rows_scored == len(raw_customers) == len(scored)
    assert list(scored["customerID"]) == list(raw_customers["customerID"])


def test_bad_rows_are_quarantined_with_reasons_and_the_rest_scored(
    churn_settings: Settings, raw_customers: pd.DataFrame, tmp_path: Path
) -> None:
    broken = raw_customers.copy()
    broken.loc[3, "tenure"] = "abc"
    broken.loc[10, "Contract"] = "Weekly"
    broken.loc[20, "customerID"] = ""
    source = write_customers(broken, tmp_path / "broken.csv")
    output = tmp_path / "scores.parquet"

    summary = score_file(churn_settings, "churn", source, output)

    assert summary.rows_in == len(broken)
    assert summary.rows_quarantined == 3
    assert summary.rows_scored == len(broken) - 3
    assert summary.quarantine == tmp_path / "scores.quarantine.csv"
    quarantined = pd.read_csv(summary.quarantine, dtype=str, keep_default_na=False)
    reasons = dict(zip(quarantined[QUARANTINE_VALUE], quarantined[QUARANTINE_REASON], strict=True))
    assert reasons["abc"].startswith("tenure:")
    assert reasons["Weekly"].startswith("Contract:")
    assert "customerID: empty" in reasons.values()
    scored = read_output(output)
    assert len(scored) == summary.rows_scored
    bad_ids = set(broken.loc[[3, 10], "customerID"])
    assert not bad_ids & set(scored["customerID"])

    # Scoring a clean file to the same output removes the stale quarantine file.
    clean = write_customers(raw_customers, tmp_path / "clean.csv")
    assert score_file(churn_settings, "churn", clean, output).quarantine is None
    assert not (tmp_path / "scores.quarantine.csv").exists()


def test_a_file_missing_a_column_is_unusable_and_names_it(
    churn_settings: Settings, raw_customers: pd.DataFrame, tmp_path: Path
) -> None:
    source = write_customers(raw_customers.drop(columns=["MonthlyCharges"]), tmp_path / "x.csv")
    output = tmp_path / "scores.csv"
    with pytest.raises(UnusableSource, match="MonthlyCharges") as caught:
        score_file(churn_settings, "churn", source, output)
    assert caught.value.path == str(source)
    assert not output.exists()


def test_a_file_with_no_valid_row_is_unusable_but_its_rows_are_quarantined(
    churn_settings: Settings, raw_customers: pd.DataFrame, tmp_path: Path
) -> None:
    broken = raw_customers.head(5).assign(gender="?")
    source = write_customers(broken, tmp_path / "broken.csv")
    output = tmp_path / "scores.csv"
    with pytest.raises(UnusableSource, match="no valid rows"):
        score_file(churn_settings, "churn", source, output)
    assert not output.exists()
    assert len(pd.read_csv(tmp_path / "scores.quarantine.csv")) == 5


def test_chunking_does_not_change_the_results(
    churn_settings: Settings, raw_csv: Path, tmp_path: Path
) -> None:
    for suffix in (".parquet", ".csv"):
        whole = score_file(churn_settings, "churn", raw_csv, tmp_path / f"whole{suffix}")
        chunked = score_file(
            churn_settings, "churn", raw_csv, tmp_path / f"chunked{suffix}", chunk_rows=7
        )
        assert chunked.rows_scored == whole.rows_scored
        pd.testing.assert_frame_equal(read_output(chunked.output), read_output(whole.output))
    assert (tmp_path / "chunked.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


def test_an_unknown_model_version_output_type_or_engine_is_refused(
    churn_settings: Settings, raw_csv: Path, tmp_path: Path
) -> None:
    with pytest.raises(LookupError, match="version 999"):
        score_file(churn_settings, "churn", raw_csv, tmp_path / "s.csv", version="999")
    with pytest.raises(ValueError, match="unsupported output type"):
        score_file(churn_settings, "churn", raw_csv, tmp_path / "s.json")
    with pytest.raises(ValueError, match="unknown engine 'tensorflow'"):
        score_file(churn_settings, "churn", raw_csv, tmp_path / "s.csv", engine="tensorflow")  # type: ignore[arg-type]


def test_native_and_onnx_engines_give_the_same_churn_probabilities(
    churn_settings: Settings, raw_csv: Path, tmp_path: Path
) -> None:
    """The churn champion may be the logistic baseline: MLflow's scikit-learn flavour."""
    onnx = score_file(churn_settings, "churn", raw_csv, tmp_path / "onnx.parquet", engine="onnx")
    native = score_file(
        churn_settings, "churn", raw_csv, tmp_path / "native.parquet", engine="native"
    )
    # The default, "auto", scores an XGBoost model natively, any other with ONNX: the
    # same scores as that engine's, to the bit, and the summary says which.
    auto = score_file(churn_settings, "churn", raw_csv, tmp_path / "auto.parquet")
    bundle = download_bundle(
        churn_settings.tracking_uri, "churn", churn_settings.models_dir, alias="champion"
    )
    chosen = native if bundle.meta.candidate.startswith("xgboost") else onnx

    assert (onnx.engine, native.engine, auto.engine) == ("onnx", "native", chosen.engine)
    pd.testing.assert_frame_equal(read_output(auto.output), read_output(chosen.output))
    assert_same_probabilities(
        read_output(native.output),
        read_output(onnx.output),
        ("customerID", "churn_probability"),
        tolerance=churn_settings.parity_tolerance,
    )


def test_concurrent_onnx_chunks_are_stitched_back_in_row_order(churn_settings: Settings) -> None:
    bundle = download_bundle(
        churn_settings.tracking_uri, "churn", churn_settings.models_dir, alias="champion"
    )
    sample, _ = bundle.parity_sample()
    # More rows than two chunks, not a multiple of the chunk size, every row different.
    rows = np.resize(sample, (2 * ConcurrentOnnxScorer.CHUNK_ROWS + 123, sample.shape[1]))
    rows[:, 0] += np.arange(len(rows), dtype=np.float32) / len(rows)

    concurrent = ConcurrentOnnxScorer(bundle.onnx_path, threads=2).predict_proba(rows)

    np.testing.assert_array_equal(concurrent, OnnxScorer(bundle.onnx_path).predict_proba(rows))
