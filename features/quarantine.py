"""What every raw data contract shares: the row checks, the quarantine, unusable files.

A contract (e.g. `features.churn_schema`) declares its rules and runs them through
`RowChecks`; each row keeps the first rule it broke and the offending value, and
`ValidationResult` holds the typed valid rows beside the quarantined raw rows. A file
that cannot be used at all raises `UnusableSource`, naming the file and the problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

QUARANTINE_REASON = "quarantine_reason"
QUARANTINE_VALUE = "quarantine_value"


class UnusableSource(ValueError):
    """A source file that cannot be used at all (missing columns, unreadable, empty)."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


def check_usable(raw: pd.DataFrame, source: Path | str, required: list[str]) -> None:
    """Raise `UnusableSource` naming `source` when `raw` lacks a required column or has no
    rows: problems no row-by-row quarantine can hold."""
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise UnusableSource(source, f"missing column(s) {', '.join(missing)}")
    if raw.empty:
        raise UnusableSource(source, "no data rows")


@dataclass(frozen=True)
class ValidationResult:
    """Typed valid rows, quarantined raw rows with a reason, and their counts."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame

    @property
    def counts(self) -> dict[str, int]:
        reasons = self.quarantined[QUARANTINE_REASON].value_counts().to_dict()
        return {
            "rows_in": len(self.valid) + len(self.quarantined),
            "rows_valid": len(self.valid),
            "rows_quarantined": len(self.quarantined),
            **{f"quarantined[{k}]": int(v) for k, v in sorted(reasons.items())},
        }


class RowChecks:
    """Collects, per row, the first rule it broke and the offending value.

    First failure wins, so each row points at one concrete problem, and reasons are a
    small set of rules that count well in a run summary.
    """

    def __init__(self, text: Mapping[str, pd.Series], index: pd.Index) -> None:
        self._text = text
        self.reason = pd.Series(pd.NA, index=index, dtype="string")
        self.value = pd.Series(pd.NA, index=index, dtype="string")

    def flag(self, mask: pd.Series, rule: str, column: str | None = None) -> None:
        """Mark rows where `mask` holds (or is unknown) as breaking `rule`."""
        hit = mask.fillna(True).astype(bool) & self.reason.isna()
        self.reason[hit] = rule
        if column is not None:
            self.value[hit] = self._text[column][hit].fillna("<empty>")

    @property
    def failed(self) -> pd.Series:
        return self.reason.notna()

    def quarantine(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The failed raw rows, as read, with their reason and offending value."""
        bad = self.failed
        quarantined = raw[bad].copy()
        quarantined[QUARANTINE_REASON] = self.reason[bad].astype(str)
        quarantined[QUARANTINE_VALUE] = self.value[bad]
        return quarantined.reset_index(drop=True)
