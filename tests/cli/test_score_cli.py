"""`mlops score churn|fraud` as a user runs it, on the session runs' registered champions."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.fraud_schema import TX_FRAUD, TX_FRAUD_SCENARIO
from features.raw_files import text_frame
from mlops.model_bundle import PARITY_FILE, download_bundle
from mlops.settings import Settings
from serving.batch.pipeline import score_file
from tests.helpers.runs import FRAUD_RUN_BROKEN
from tests.helpers.runs import run_mlops as mlops
from tests.helpers.scores import assert_same_probabilities

pytestmark = pytest.mark.slow


def score_cli(
    model: str, source: Path, output: Path, *options: str, home: Path, prefect_api: str
) -> subprocess.CompletedProcess[str]:
    """`mlops score MODEL --input SOURCE --output OUTPUT [OPTIONS]`, in its own process."""
    return mlops(
        "score",
        model,
        "--input",
        str(source),
        "--output",
        str(output),
        *options,
        home=home,
        prefect_api=prefect_api,
    )


def summary_of(stdout: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def test_score_fraud_file_scores_valid_rows_and_quarantines_the_rest(
    fraud_run: dict[str, Any], prefect_api: str, tmp_path: Path
) -> None:
    output = tmp_path / "scores.parquet"
    result = score_cli(
        "fraud",
        fraud_run["source"],
        output,
        "--json",
        home=fraud_run["home"],
        prefect_api=prefect_api,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = summary_of(result.stdout)
    broken = sum(FRAUD_RUN_BROKEN.values())
    assert summary["rows_quarantined"] == broken
    assert summary["rows_scored"] == len(fraud_run["transactions"]) - broken
    assert summary["notes"] == []
    scores = pd.read_parquet(output)
    assert list(scores.columns) == [
        "TRANSACTION_ID",
        "fraud_probability",
        "is_fraud",
        "model_name",
        "model_version",
    ]
    assert scores["TRANSACTION_ID"].is_unique and len(scores) == summary["rows_scored"]
    assert scores["fraud_probability"].between(0, 1).all()
    assert (scores["model_version"] == fraud_run["model_version"]).all()
    quarantine = pd.read_csv(tmp_path / "scores.quarantine.csv")
    assert len(quarantine) == broken
    # The model ranks the simulated frauds above the genuine payments.
    labelled = scores.merge(fraud_run["transactions"][["TRANSACTION_ID", TX_FRAUD]])
    by_label = labelled.groupby(TX_FRAUD)["fraud_probability"].mean()
    assert by_label[1] > by_label[0]


def test_score_fraud_without_labels_says_terminal_risk_is_zero(
    fraud_run: dict[str, Any], prefect_api: str, tmp_path: Path
) -> None:
    unlabelled = tmp_path / "unlabelled.csv"
    fraud_run["transactions"].drop(columns=[TX_FRAUD, TX_FRAUD_SCENARIO]).to_csv(
        unlabelled, index=False
    )
    output = tmp_path / "scores.csv"
    result = score_cli("fraud", unlabelled, output, home=fraud_run["home"], prefect_api=prefect_api)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "terminal risk windows are 0" in result.stdout
    scores = pd.read_csv(output)
    assert len(scores) == len(fraud_run["transactions"])
    assert np.isfinite(scores["fraud_probability"]).all()


def test_score_churn_writes_csv_like_the_batch_function(
    churn_run: dict[str, Any], prefect_api: str, tmp_path: Path
) -> None:
    source = churn_run["home"] / "raw" / churn_run["pipeline_run"] / "customers.parquet"
    output = tmp_path / "churn.csv"
    result = score_cli(
        "churn", source, output, "--json", home=churn_run["home"], prefect_api=prefect_api
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = summary_of(result.stdout)
    scores = pd.read_csv(output, dtype={"customerID": str})
    assert len(scores) == summary["rows_scored"] == len(pd.read_parquet(source))
    assert scores["churn_probability"].between(0, 1).all()


@pytest.mark.parametrize(
    ("output_name", "extra", "message"),
    [
        ("scores.csv", ["--version", "999"], "has no version 999"),
        ("scores.txt", [], "unsupported output type"),
    ],
    ids=["unknown-version", "bad-suffix"],
)
def test_score_errors_exit_2_with_a_message(
    churn_run: dict[str, Any],
    prefect_api: str,
    tmp_path: Path,
    output_name: str,
    extra: list[str],
    message: str,
) -> None:
    source = churn_run["home"] / "raw" / churn_run["pipeline_run"] / "customers.parquet"
    output = tmp_path / output_name
    result = score_cli(
        "churn", source, output, *extra, home=churn_run["home"], prefect_api=prefect_api
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert not output.exists()


def test_score_fraud_with_the_native_engine_gives_the_onnx_probabilities(
    fraud_run: dict[str, Any], fraud_settings: Settings, prefect_api: str, tmp_path: Path
) -> None:
    native_output = tmp_path / "native.parquet"
    result = score_cli(
        "fraud",
        fraud_run["source"],
        native_output,
        "--engine",
        "native",
        "--json",
        home=fraud_run["home"],
        prefect_api=prefect_api,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary_of(result.stdout)["engine"] == "native"

    onnx = score_file(
        fraud_settings, "fraud", fraud_run["source"], tmp_path / "onnx.parquet", engine="onnx"
    )
    assert onnx.engine == "onnx"
    assert_same_probabilities(
        pd.read_parquet(native_output),
        pd.read_parquet(onnx.output),
        ("TRANSACTION_ID", "fraud_probability"),
        tolerance=fraud_settings.parity_tolerance,
    )


def test_a_parity_sample_changed_after_registration_is_refused_before_scoring(
    fraud_run: dict[str, Any], fraud_settings: Settings, prefect_api: str, tmp_path: Path
) -> None:
    """A home whose registry is the fraud run's but whose cached bundle carries a parity
    sample the native model does not reproduce (as if the file were from another fit): its
    digest no longer matches the version's tag, so the bundle is refused before the native
    engine's parity check could even run."""
    version = fraud_run["model_version"]
    bundle = download_bundle(
        fraud_settings.tracking_uri, "fraud", fraud_settings.models_dir, version=version
    )
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(fraud_run["home"] / "mlflow.db", home / "mlflow.db")
    altered = home / "models" / bundle.folder.name
    shutil.copytree(bundle.folder, altered)
    rows, probabilities = bundle.parity_sample()
    np.savez(altered / PARITY_FILE, rows=rows, probabilities=np.clip(probabilities + 0.01, 0, 1))
    output = tmp_path / "scores.parquet"

    result = score_cli(
        "fraud",
        fraud_run["source"],
        output,
        "--version",
        version,
        "--engine",
        "native",
        home=home,
        prefect_api=prefect_api,
    )

    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(
        f"error: fraud v{version}: {PARITY_FILE} changed after registration (sha256 "
    )
    assert "Traceback" not in result.stderr
    assert not output.exists()


def test_a_parquet_file_checked_typed_scores_and_quarantines_as_its_text_does(
    fraud_run: dict[str, Any], fraud_settings: Settings, tmp_path: Path
) -> None:
    """Batch scoring checks a parquet file on its typed columns, the text of the same
    rows through the CSV path: the same scores and the same quarantine, row for row."""
    table = pa.Table.from_pandas(fraud_run["transactions"], preserve_index=False)
    amounts = table.column("TX_AMOUNT").to_pylist()
    amounts[5], amounts[9] = -3.2, None
    ids = table.column("TRANSACTION_ID").to_pylist()
    ids[12] = ids[11]
    for name, values, kind in (
        ("TRANSACTION_ID", ids, pa.int64()),
        ("TX_AMOUNT", amounts, pa.float64()),
    ):
        table = table.set_column(table.column_names.index(name), name, pa.array(values, kind))
    typed_source = tmp_path / "typed.parquet"
    pq.write_table(table, typed_source)
    text_source = tmp_path / "text.csv"
    text_frame(table).to_csv(text_source, index=False)

    typed = score_file(fraud_settings, "fraud", typed_source, tmp_path / "typed" / "s.parquet")
    text = score_file(fraud_settings, "fraud", text_source, tmp_path / "text" / "s.parquet")

    assert typed.rows_quarantined == text.rows_quarantined == 3
    pd.testing.assert_frame_equal(pd.read_parquet(typed.output), pd.read_parquet(text.output))
    assert typed.quarantine is not None and text.quarantine is not None
    assert typed.quarantine.read_text() == text.quarantine.read_text()
