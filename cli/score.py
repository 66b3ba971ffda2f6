"""`mlops score`: a whole file scored with a registered version (`serving.batch`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cli.common import CaseStudy, echo_json, fail, prepare


class ScoringEngine(StrEnum):
    """serving.batch's engines (kept here: --help must not import the batch path)."""

    auto = "auto"
    onnx = "onnx"
    native = "native"


def score(
    model: Annotated[CaseStudy, typer.Argument(help="Which case study's model.")],
    input_file: Annotated[
        Path, typer.Option("--input", help="Raw file to score (CSV or parquet, labels optional).")
    ],
    output: Annotated[Path, typer.Option(help="Scores to write: .csv or .parquet.")],
    alias: Annotated[str, typer.Option(help="Registry alias of the model.")] = "champion",
    version: Annotated[
        str | None, typer.Option(help="A registered version instead of the alias.")
    ] = None,
    engine: Annotated[
        ScoringEngine,
        typer.Option(
            help="onnx: the bundle serving runs; native: the trained model through MLflow "
            "(faster on large tree ensembles); auto: native for XGBoost, else or if it "
            "fails onnx. "
            "Either must first reproduce the parity sample; the output says which scored."
        ),
    ] = ScoringEngine.auto,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON summary line.")
    ] = False,
) -> None:
    """Score a whole file with the registered model; invalid rows are quarantined beside it."""
    settings = prepare()
    from features.quarantine import UnusableSource
    from serving.batch.pipeline import score_file

    try:
        summary = score_file(
            settings, model, input_file, output, alias=alias, version=version, engine=engine.value
        )
    except UnusableSource as error:
        fail(f"cannot use {error.path}: {error.problem}")
    except (LookupError, ValueError) as error:
        fail(str(error))
    if as_json:
        echo_json(summary.to_dict())
        return
    typer.echo(
        f"scored {summary.rows_scored:,} rows with {summary.model_name} v{summary.model_version}"
        f" ({summary.engine}) -> {summary.output} in {summary.seconds:.1f} s"
        f" ({summary.rows_per_second:,.0f} rows/s)"
    )
    if summary.quarantine is not None:
        typer.echo(f"quarantined {summary.rows_quarantined:,} rows -> {summary.quarantine}")
    for note in summary.notes:
        typer.secho(f"note: {note}", fg="yellow")
