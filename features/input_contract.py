"""The rules every input is held to, stated once for the pipeline, batch scoring and the API.

A data contract (`features.churn_schema`, `features.fraud_schema`) declares a table of
column -> `NumberRule` (and a `TimeRule` for a time column). The pipeline and batch
scoring build their quarantine row checks from the table (`NumberRule.holds`); the API
builds its request fields from the same table (`NumberRule.field_bounds`, in
`serving.schemas`). So the API never accepts a value the pipeline would quarantine:
a bound changed here changes both.

Numbers are finite: NaN and infinities break every rule, whatever its bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

# An id, a key or a name given by a caller is at most this long: enough for any real id,
# short enough that one echoed in a log line or an error stays readable.
MAX_TEXT_LENGTH = 64


@dataclass(frozen=True)
class NumberRule:
    """A finite number in an interval, optionally whole.

    `low_open`/`high_open` exclude the bound. `says` is how a quarantine reason names
    the rule ("not <says>"); by default the kind of number and its interval.
    """

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    says: str = ""

    @property
    def interval(self) -> str:
        """The interval in the usual notation, e.g. `(0, 500]`."""
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"{left}{self.low:g}, {self.high:g}{right}"

    @property
    def meaning(self) -> str:
        """What a value must be, as a quarantine reason says it ("not <meaning>")."""
        return self.says or f"{'a whole number' if self.integer else 'a number'} in {self.interval}"

    def holds(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """Per value, whether it keeps the rule; NaN, infinities and missing values do not."""
        numbers = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            above = numbers > self.low if self.low_open else numbers >= self.low
            below = numbers < self.high if self.high_open else numbers <= self.high
            ok = np.isfinite(numbers) & above & below
            if self.integer:
                ok &= np.mod(numbers, 1) == 0
        return np.asarray(ok, dtype=bool)

    def holds_in(self, values: pd.Series) -> pd.Series:
        """`holds` as a Series on `values`' index, for a contract's row checks."""
        return pd.Series(self.holds(values), index=values.index)

    def admits(self, value: float) -> bool:
        """Whether one value keeps the rule."""
        return bool(self.holds(np.asarray([value]))[0])

    def field_bounds(self) -> dict[str, float]:
        """The rule's bounds as pydantic `Field` keywords (`ge`/`gt`, `le`/`lt`), integers for
        a whole-number rule so that the API's document shows them as such."""
        low: float = int(self.low) if self.integer else self.low
        high: float = int(self.high) if self.integer else self.high
        return {
            "gt" if self.low_open else "ge": low,
            "lt" if self.high_open else "le": high,
        }


@dataclass(frozen=True)
class TimeRule:
    """A time in `[earliest, latest)`, both aware (UTC).

    The bounds keep every accepted time convertible to int64 nanoseconds since the epoch
    (1677 to 2262), which is how the features and the online store count time.
    """

    earliest: datetime
    latest: datetime

    @property
    def meaning(self) -> str:
        return f"a time from {self.earliest:%Y-%m-%d} to before {self.latest:%Y-%m-%d}"

    def holds(self, stamps: pd.Series) -> pd.Series:
        """Per UTC timestamp, whether it is in range; NaT is not."""
        return (stamps >= pd.Timestamp(self.earliest)) & (stamps < pd.Timestamp(self.latest))

    def admits(self, value: datetime) -> bool:
        """Whether one aware time is in range (compared as instants, never converted)."""
        return self.earliest <= value < self.latest
