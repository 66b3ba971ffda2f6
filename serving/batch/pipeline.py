"""Score a whole file with a registered model: the batch path beside the API (`mlops score`).

One pipeline for every case study: load the registered version's engine (checked on its
parity sample first, `serving.batch.engines`), read the raw file, check it against the
case study's contract with the bad rows quarantined, with their reason, to
`<output stem>.quarantine.csv` beside the output, compute the features, score them in
chunks on every core, and write one output row per valid input row with the scores, the
decisions at the model's threshold, the model's name and version
(`serving.batch.output_files`). Each stage is timed. What differs between case studies
(contract, features, chunking, output columns) is the case study's `BatchCaseStudy`
(`serving.batch.churn`, `serving.batch.fraud`), found by its name.

Validation needs the whole file (a duplicate can be anywhere in it); the scoring and the
writing then go `chunk_rows` rows at a time, so the output never exists for the whole
file at once (nor, for churn, the feature matrix). Outputs appear complete or not at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from features.quarantine import UnusableSource, ValidationResult
from features.raw_files import read_raw_source
from mlops.case_studies import CHURN, FRAUD, CaseStudy, case_study
from mlops.model_bundle import RegisteredBundle
from mlops.names import CHAMPION
from mlops.settings import Settings
from serving.batch.case_study import BatchCaseStudy
from serving.batch.churn import ChurnBatch
from serving.batch.engines import (
    AUTO,
    ENGINE_CHOICES,
    EngineChoice,
    ProbabilityScorer,
    load_registered_engine,
)
from serving.batch.fraud import FraudBatch
from serving.batch.output_files import (
    check_output_suffix,
    chunk_writer,
    quarantine_path_for,
    write_quarantine,
)
from serving.batch.stages import StageClock

logger = logging.getLogger(__name__)

# Each case study's parts of the pipeline, by the case study's name.
BATCH_CASE_STUDIES: Mapping[str, BatchCaseStudy] = MappingProxyType(
    {CHURN.name: ChurnBatch(), FRAUD.name: FraudBatch()}
)


@dataclass(frozen=True)
class BatchScoreSummary:
    """What one batch scoring run read, scored, set aside and wrote, and how fast."""

    rows_in: int
    rows_scored: int
    rows_quarantined: int
    output: Path
    quarantine: Path | None
    model_name: str
    model_version: str
    # Which engine scored: "onnx" (the bundle's ONNX file) or "native" (the native model);
    # with engine "auto", the native one unless it failed (`notes` then say why).
    engine: str
    seconds: float
    rows_per_second: float
    # Wall-clock seconds per stage: model_load, load_validate, features, score, write.
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # What a reader of the scores must know about how they were made.
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (paths as text)."""
        data = asdict(self)
        data["output"] = str(self.output)
        data["quarantine"] = None if self.quarantine is None else str(self.quarantine)
        return data


def batch_case_study(name: str | CaseStudy) -> BatchCaseStudy:
    """The batch parts of the case study `name` (or of `name` itself when it is a
    `CaseStudy`); `ValueError` naming the known ones for an unknown name."""
    study = name if isinstance(name, CaseStudy) else case_study(name)
    return BATCH_CASE_STUDIES[study.name]


def score_file(
    settings: Settings,
    case_study: str | CaseStudy,
    source: Path,
    output: Path,
    *,
    alias: str = CHAMPION,
    version: str | None = None,
    chunk_rows: int | None = None,
    threads: int | None = None,
    engine: EngineChoice = AUTO,
) -> BatchScoreSummary:
    """Score every valid row of `source` with `case_study`'s model at `alias` (or at
    `version`) into `output`, and say what was done.

    `source` is a raw file of the case study (CSV or parquet, labels optional); `output`
    is CSV or parquet by its suffix (its columns: `serving.batch.churn`,
    `serving.batch.fraud`). `engine` scores with the bundle's ONNX file, the native
    model, or by default ("auto") the native one when it passes the parity check, else
    the ONNX one (`serving.batch.engines`; the summary's `engine` says which); `threads`
    is how many cores it uses (default: every CPU); `chunk_rows` how many rows are
    scored and written at a time (default: the case study's).

    Raises `UnusableSource` for a file that cannot be read, lacks a column or has no valid
    row (its quarantine file is still written), `LookupError` when the model alias or
    version (or its native model) does not exist, `ParityMismatch` (`mlops.model_bundle`)
    when the engine does not reproduce the parity sample, and `ValueError` for an unknown
    case study, an unsupported output suffix or engine.
    """
    parts = batch_case_study(case_study)
    source, output = Path(source), Path(output)
    chunk_rows = parts.default_chunk_rows if chunk_rows is None else chunk_rows
    _check_arguments(output, chunk_rows, engine)
    clock = StageClock()
    started = time.perf_counter()
    with clock.timed("model_load"):
        loaded = load_registered_engine(
            settings,
            parts.study.model_name(settings),
            parts.computed_features,
            alias=alias,
            version=version,
            threads=threads,
            engine=engine,
        )
    bundle, scorer = loaded.bundle, loaded.scorer
    checked, quarantine = _read_and_validate(parts, source, output, clock)
    valid, notes = parts.prepare(checked.valid, source)
    if loaded.fallback_reason is not None:
        notes = [*notes, loaded.fallback_reason]
    _score_in_chunks(parts, valid, bundle, scorer, output, chunk_rows, clock)

    seconds = time.perf_counter() - started
    summary = BatchScoreSummary(
        rows_in=len(valid) + len(checked.quarantined),
        rows_scored=len(valid),
        rows_quarantined=len(checked.quarantined),
        output=output,
        quarantine=quarantine,
        model_name=bundle.name,
        model_version=bundle.version,
        engine=loaded.engine,
        seconds=seconds,
        rows_per_second=len(valid) / seconds if seconds > 0 else float("inf"),
        stage_seconds=clock.seconds,
        notes=notes,
    )
    logger.info("batch scored %s -> %s: %s", source, output, summary.to_dict())
    return summary


def _check_arguments(output: Path, chunk_rows: int, engine: str) -> None:
    check_output_suffix(output)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if engine not in ENGINE_CHOICES:
        raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(ENGINE_CHOICES)}")


def _read_and_validate(
    parts: BatchCaseStudy, source: Path, output: Path, clock: StageClock
) -> tuple[ValidationResult, Path | None]:
    """`source` checked against the contract, and its quarantine file (None when every
    row is valid); `UnusableSource` when no row is."""
    with clock.timed("load_validate"):
        raw = read_raw_source(source)
        checked = parts.validate(raw, source)
        del raw
    quarantine = write_quarantine(checked.quarantined, quarantine_path_for(output), clock)
    if checked.valid.empty:
        raise UnusableSource(
            source, f"no valid rows; {len(checked.quarantined)} quarantined to {quarantine}"
        )
    return checked, quarantine


def _score_in_chunks(
    parts: BatchCaseStudy,
    valid: pd.DataFrame,
    bundle: RegisteredBundle,
    scorer: ProbabilityScorer,
    output: Path,
    chunk_rows: int,
    clock: StageClock,
) -> None:
    """Score `valid`'s rows chunk by chunk and write them to `output`."""
    chunks = parts.feature_chunks(valid, bundle.meta.feature_names, chunk_rows, clock)
    schema = parts.output_schema(valid)
    with chunk_writer(output, schema, clock) as write_chunk:
        for chunk in chunks:
            with clock.timed("score"):
                probabilities = scorer.predict_proba(chunk.matrix)
            with clock.timed("write"):
                scored = parts.scored_table(chunk, probabilities, bundle, schema)
            write_chunk(scored)
