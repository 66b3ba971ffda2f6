"""What the case studies' flows share between their stages: retry rules and the quarantine."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from features.quarantine import QUARANTINE_REASON, UnusableSource, ValidationResult


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry I/O hiccups, not files that cannot be used: retrying cannot fix those."""
    try:
        state.result()
    except UnusableSource:
        return False
    except Exception:
        return True
    return False


def quarantine_and_check(
    result: ValidationResult,
    *,
    folder: Path,
    file_name: str,
    source: str,
    label: str,
    min_valid_rows: int,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """Write the quarantined rows (with their reason) to `folder/file_name`, then stop the
    flow with `UnusableSource` if too few rows are valid or the label has one value."""
    if len(result.quarantined):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / file_name
        result.quarantined.to_csv(path, index=False)
        top = result.quarantined[QUARANTINE_REASON].value_counts().head(5).to_dict()
        logger.warning(
            "quarantined %d rows -> %s; top reasons %s", len(result.quarantined), path, top
        )
    if len(result.valid) < min_valid_rows:
        raise UnusableSource(
            source,
            f"only {len(result.valid)} valid rows (need {min_valid_rows}); "
            f"{len(result.quarantined)} quarantined",
        )
    if result.valid[label].nunique() < 2:
        raise UnusableSource(source, f"the {label} label has a single value")
    logger.info("validated: %s", result.counts)
