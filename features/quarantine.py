"""What every raw data contract shares: the row checks, the quarantine, unusable files.

A contract (e.g. `features.churn_schema`) declares its rules and runs them through
`RowChecks`; each row keeps the first rule it broke and the offending value, and
`ValidationResult` holds the typed valid rows beside the quarantined raw rows. A file
that cannot be used at all raises `UnusableSource`, naming the file and the problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
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
    check_columns_and_rows(list(raw.columns), 0 if raw.empty else len(raw), source, required)


def check_columns_and_rows(
    columns: Sequence[str], rows: int, source: Path | str, required: list[str]
) -> None:
    """`check_usable` for a source known by its column names and row count."""
    missing = [c for c in required if c not in columns]
    if missing:
        raise UnusableSource(source, f"missing column(s) {', '.join(missing)}")
    if rows == 0:
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


class FirstFailures:
    """`RowChecks` for typed columns, by row position, without the text of every row.

    Records per row the first rule it broke and the column whose value explains it; the
    text is needed for the failed rows only, and read from them at the end
    (`quarantine`). Same verdicts, reasons and values as `RowChecks` on the text of the
    same rows: a contract's rule list can run through either.
    """

    def __init__(self, rows: int) -> None:
        self._rules: list[str] = []
        self._columns: list[str | None] = []
        self._rule = np.full(rows, -1, dtype=np.int32)

    def flag(
        self, mask: pd.Series | npt.NDArray[np.bool_], rule: str, column: str | None = None
    ) -> None:
        """Mark rows where `mask` holds (or is unknown) as breaking `rule`."""
        if isinstance(mask, pd.Series):
            mask = mask.fillna(True).to_numpy(dtype=bool)
        hit = np.asarray(mask, dtype=bool) & (self._rule < 0)
        if hit.any():
            self._rule[hit] = len(self._rules)
        self._rules.append(rule)
        self._columns.append(column)

    @property
    def failed(self) -> npt.NDArray[np.bool_]:
        return self._rule >= 0

    def quarantine(self, failed_rows: pd.DataFrame) -> pd.DataFrame:
        """The failed rows as read (`failed_rows`: their text, in row order), with their
        reason and offending value, as `RowChecks.quarantine` gives them."""
        codes = self._rule[self.failed]
        if len(codes) != len(failed_rows):
            raise ValueError(f"{len(failed_rows)} rows given for {len(codes)} failed rows")
        quarantined = failed_rows.reset_index(drop=True).copy()
        reasons: npt.NDArray[np.object_] = np.asarray(self._rules, dtype=object)[codes]
        values = pd.Series(pd.NA, index=quarantined.index, dtype="string")
        for code, column in enumerate(self._columns):
            at = codes == code
            if column is not None and at.any():
                text = quarantined[column][at].astype("string[pyarrow]").str.strip()
                values[at] = text.fillna("<empty>")
        quarantined[QUARANTINE_REASON] = pd.Series(reasons, index=quarantined.index, dtype=object)
        quarantined[QUARANTINE_VALUE] = values
        return quarantined
