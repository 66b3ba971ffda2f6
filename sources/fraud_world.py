"""The served fraud world: the simulated history the pipeline published, and what comes next.

Traffic (`stack.traffic`) continues this world past its last payment, and retraining
(`pipelines.monitoring_flow`) draws fresh data from it, so both need where it ends. The
history is the raw file the fraud pipeline ran on (the newest simulated one under
`MLOPS_HOME/raw` by default); its end then moves past the payments traffic has sent,
recorded in `MLOPS_HOME/traffic/fraud_cursor.json` (`record_sent`). The simulator rerun on
the same cards and terminals, with the same seed and from the history's first day, gives
the payments after it (`fraud_payments`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.fraud_schema import CUSTOMER_ID, TERMINAL_ID, TRANSACTION_ID, TX_DATETIME
from sources.fraud_simulator import simulate_transactions

if TYPE_CHECKING:
    from mlops.settings import Settings


class NoFraudHistory(LookupError):
    """No served history to continue: no simulated run on record, or an unreadable file."""


@dataclass(frozen=True)
class FraudHistory:
    """What traffic must continue: the world's size and where the served history ends."""

    first_day: pd.Timestamp
    last_time: pd.Timestamp
    last_transaction_id: int
    n_customers: int
    n_terminals: int
    rows_per_day: float


def _cursor_path(settings: Settings) -> Path:
    return settings.home / "traffic" / "fraud_cursor.json"


def default_history_file(settings: Settings) -> Path | None:
    """The raw file of the newest simulated fraud pipeline run, if there is one."""
    runs = sorted(
        settings.raw_dir.glob("fraud-*/transactions.parquet"), key=lambda p: p.stat().st_mtime
    )
    return runs[-1] if runs else None


def fraud_history(settings: Settings, history_file: Path | None) -> FraudHistory:
    """Read the history the pipeline trained on and published (its file), then move its end
    past the payments earlier traffic sent (`MLOPS_HOME/traffic/fraud_cursor.json`)."""
    path = history_file or default_history_file(settings)
    if path is None or not path.is_file():
        raise NoFraudHistory(
            f"no fraud history to continue under {settings.raw_dir} "
            "(pass --history, the transactions file the fraud pipeline ran on)"
        )
    columns = [TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID]
    raw = (
        pd.read_parquet(path, columns=columns)
        if path.suffix.lower() == ".parquet"
        else pd.read_csv(path, usecols=columns, dtype=str)
    )
    # The rows the contract would quarantine are left out; the rest is what was served.
    ids = {c: pd.to_numeric(raw[c], errors="coerce") for c in columns if c != TX_DATETIME}
    times = pd.to_datetime(raw[TX_DATETIME], errors="coerce", utc=True, format="ISO8601")
    ok = times.notna() & pd.concat(ids, axis=1).notna().all(axis=1)
    if not ok.any():
        raise NoFraudHistory(f"{path}: no readable transactions")
    times = times[ok]
    first_day, last_time = times.min().normalize(), times.max()
    history = FraudHistory(
        first_day=first_day,
        last_time=last_time,
        last_transaction_id=int(ids[TRANSACTION_ID][ok].max()),
        n_customers=int(ids[CUSTOMER_ID][ok].max()) + 1,
        n_terminals=int(ids[TERMINAL_ID][ok].max()) + 1,
        rows_per_day=int(ok.sum()) / max((last_time - first_day) / pd.Timedelta(days=1), 1.0),
    )
    cursor = _cursor_path(settings)
    if cursor.is_file():
        sent = json.loads(cursor.read_text())
        history = FraudHistory(
            first_day=history.first_day,
            last_time=max(history.last_time, pd.Timestamp(sent["last_event_time"])),
            last_transaction_id=max(history.last_transaction_id, int(sent["last_transaction_id"])),
            n_customers=history.n_customers,
            n_terminals=history.n_terminals,
            rows_per_day=history.rows_per_day,
        )
    return history


def fraud_payments(history: FraudHistory, count: int, scenario: str, seed: int) -> pd.DataFrame:
    """The next `count` payments of the simulated world after the history's last one."""
    days_before = int((history.last_time.normalize() - history.first_day) / pd.Timedelta(days=1))
    extra_days = math.ceil(count / max(history.rows_per_day, 1.0)) + 1
    while True:
        frame = simulate_transactions(
            history.n_customers,
            history.n_terminals,
            days_before + extra_days,
            history.first_day,
            seed=seed,
            scenario=scenario,
        )
        later = frame[frame[TX_DATETIME] > history.last_time]
        # A scenario may make fewer payments a day than the history; a bounded retry.
        if len(later) >= count or extra_days > 4 * 366:
            break
        extra_days *= 2
    later = later.iloc[:count].reset_index(drop=True)
    later[TRANSACTION_ID] = history.last_transaction_id + 1 + np.arange(len(later))
    return later


def record_sent(settings: Settings, payments: pd.DataFrame) -> None:
    """Move the world's end past `payments` (TX_DATETIME, TRANSACTION_ID), just sent."""
    cursor = _cursor_path(settings)
    cursor.parent.mkdir(parents=True, exist_ok=True)
    last_time = pd.Timestamp(payments[TX_DATETIME].max()).tz_convert(UTC).isoformat()
    cursor.write_text(
        json.dumps(
            {
                "last_event_time": last_time,
                "last_transaction_id": int(payments[TRANSACTION_ID].max()),
            }
        )
    )
