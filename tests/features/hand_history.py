"""A hand-made history of card transactions and its fraud window features worked out by hand.

The offline windows (`features.fraud_windows`) and the online ones (`features.fraud_online`)
must both give HAND_EXPECTED on HAND_HISTORY; each transaction pins one convention.
"""

from __future__ import annotations

from math import sqrt

import pandas as pd

from features.fraud_windows import SECONDS_SINCE_PREV_CAP

# Monday 2024-01-01 00:00 UTC: day 5 is a Saturday, days 13 and 20 are Sundays.
ORIGIN = pd.Timestamp("2024-01-01", tz="UTC")
DAY = pd.Timedelta(days=1)
CAP = SECONDS_SINCE_PREV_CAP  # 30 days in seconds
assert CAP == 2_592_000.0


def at(day: int, clock: str) -> pd.Timestamp:
    """`day` days after ORIGIN, at `clock` ("HH:MM:SS")."""
    return ORIGIN + day * DAY + pd.Timedelta(clock)


def frame(rows: list[tuple[int, pd.Timestamp, int, int, float, int]]) -> pd.DataFrame:
    """A typed transactions frame, as the schema module validates it."""
    tx = pd.DataFrame(
        rows,
        columns=[
            "TRANSACTION_ID",
            "TX_DATETIME",
            "CUSTOMER_ID",
            "TERMINAL_ID",
            "TX_AMOUNT",
            "TX_FRAUD",
        ],
    )
    return tx.astype(
        {
            "TRANSACTION_ID": "int64",
            "TX_DATETIME": "datetime64[ns, UTC]",
            "CUSTOMER_ID": "int64",
            "TERMINAL_ID": "int64",
            "TX_AMOUNT": "float64",
            "TX_FRAUD": "int64",
        }
    )


# Customers 1 and 2, terminals 10 and 20, label delay 7 days. The comments say which
# convention each transaction pins.
HAND_HISTORY = frame(
    [
        (1, at(0, "10:00:00"), 1, 10, 100.0, 0),  # first ever: empty windows
        (2, at(1, "10:00:00"), 1, 10, 50.0, 0),  # #1 exactly 1 day before: in the 1d window
        (3, at(1, "10:00:00"), 1, 20, 30.0, 0),  # same second as #2: they don't see each other
        (4, at(2, "12:00:00"), 2, 10, 10.0, 1),
        (5, at(5, "03:00:00"), 1, 20, 20.0, 1),  # Saturday night
        (6, at(8, "10:00:00"), 1, 10, 70.0, 0),  # #2/#3 exactly 7 days before; #2 exactly delay
        (7, at(9, "12:00:00"), 2, 10, 15.0, 0),  # fraud #4 exactly `delay` before: not known
        (8, at(9, "12:00:01"), 2, 10, 25.0, 0),  # fraud #4 one second more: known
        (9, at(13, "05:59:59"), 2, 20, 40.0, 1),  # Sunday, last second of the night
        (10, at(20, "06:00:00"), 2, 20, 60.0, 0),  # Sunday, day; #9 is 7 days + 1 s before
        (11, at(30, "10:00:00"), 1, 10, 200.0, 1),  # #1 exactly 30 days before: in
        (12, at(39, "09:00:00"), 1, 20, 40.0, 0),
    ]
)

# Worked out by hand from the history above, in FRAUD_FEATURES order:
# amount, weekend, night,
# customer nb/avg 1d, 7d, 30d, terminal nb/risk 1d, 7d, 30d,
# amount / customer avg 30d, seconds since customer's previous tx, customer's tx at terminal 30d,
# amount z-score to the customer's 30 days, terminal in a run of known frauds, days since
# that run's first fraud.
# The amount's z-score against the customer's 30-day amounts, the spread floored at 1:
# one earlier amount has no spread (#2, #3, #7, #12), so the floor divides.
Z_1 = 0
Z_2 = -50
Z_3 = -70
Z_4 = 0
Z_5 = -40 / sqrt(2_600 / 3)
Z_6 = 20 / sqrt(950)
Z_7 = 5
Z_8 = 5
Z_9 = (40 - 50 / 3) / sqrt(350 / 9)
Z_10 = 37.5 / sqrt(131.25)
Z_11 = 146 / sqrt(824)
Z_12 = -160
RUN_8 = 7 + 1 / 86_400  # fraud #4 known one second ago, after genuine #1 and #2
RUN_9 = 8 + 10_799 / 86_400  # fraud #5 (day 5 03:00) known, after genuine #3
RUN_10 = 15 + 3 / 24  # frauds #5 and #9 known, the run still from #5; genuine #10 ends it for #12
HAND_EXPECTED = {
    1: (100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.0, CAP, 0, Z_1, 0, 0),
    2: (50, 0, 0, 1, 100, 1, 100, 1, 100, 0, 0, 0, 0, 0, 0, 0.5, 86_400, 1, Z_2, 0, 0),
    3: (30, 0, 0, 1, 100, 1, 100, 1, 100, 0, 0, 0, 0, 0, 0, 0.3, 86_400, 0, Z_3, 0, 0),
    4: (10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.0, CAP, 0, Z_4, 0, 0),
    5: (20, 1, 1, 0, 0, 3, 60, 3, 60, 0, 0, 0, 0, 0, 0, 1 / 3, 320_400, 1, Z_5, 0, 0),
    6: (70, 0, 0, 0, 0, 3, 100 / 3, 4, 50, 1, 0, 1, 0, 1, 0, 1.4, 284_400, 2, Z_6, 0, 0),
    7: (15, 0, 0, 0, 0, 1, 10, 1, 10, 0, 0, 2, 0, 2, 0, 1.5, 604_800, 1, Z_7, 0, 0),
    8: (25, 0, 0, 1, 15, 1, 15, 2, 12.5, 1, 1.0, 3, 1 / 3, 3, 1 / 3, 2.0, 1, 2, Z_8, 1, RUN_8),
    9: (40, 1, 1, 0, 0, 2, 20, 3, 50 / 3, 0, 0, 2, 0.5, 2, 0.5, 2.4, 323_998, 0, Z_9, 1, RUN_9),
    10: (
        60,
        1,
        0,
        0,
        0,
        0,
        0,
        4,
        22.5,
        1,
        1.0,
        1,
        1.0,
        3,
        2 / 3,
        8 / 3,
        604_801,
        1,
        Z_10,
        1,
        RUN_10,
    ),
    11: (200, 0, 0, 0, 0, 0, 0, 5, 54, 0, 0, 0, 0, 6, 1 / 6, 100 / 27, 1_900_800, 3, Z_11, 0, 0),
    12: (40, 0, 0, 0, 0, 0, 0, 1, 200, 0, 0, 0, 0, 3, 2 / 3, 0.2, 774_000, 0, Z_12, 0, 0),
}
