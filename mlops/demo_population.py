"""The population `mlops demo` simulates by default, and who is in it.

`mlops demo` simulates churn customers, fraud cards and terminals in the sizes below,
with the settings' seed (`MLOPS_SEED`). The API's OpenAPI document shows requests that
name members of that population (`serving.openapi`), so Swagger's "Try it out" answers
on the home `mlops demo` builds. The churn simulator (`sources.churn_simulator`) draws
its customer ids with `draw_customer_ids`, before any other draw: the ids of a simulated
population follow from its size and seed alone, and `demo_customer_ids` names them
without simulating anything else.
"""

from __future__ import annotations

from typing import Final

import numpy as np

DEMO_CHURN_CUSTOMERS: Final = 5000
DEMO_FRAUD_CARDS: Final = 1000
DEMO_FRAUD_TERMINALS: Final = 2000


def draw_customer_ids(rng: np.random.Generator, n_customers: int) -> np.ndarray:
    """Unique IDs like "7590-VHVEG": four digits, a dash, five uppercase letters."""
    letter_codes = 26**5
    codes = rng.choice(10_000 * letter_codes, size=n_customers, replace=False)
    digits = np.strings.zfill((codes // letter_codes).astype(str), 4)
    remainder = codes % letter_codes
    powers = 26 ** np.arange(4, -1, -1)
    letters = (ord("A") + (remainder[:, None] // powers) % 26).astype(np.uint8)
    return digits + "-" + letters.view("S5").ravel().astype(str)


def demo_customer_ids(seed: int, n_customers: int = DEMO_CHURN_CUSTOMERS) -> list[str]:
    """The ids of the customers the churn simulator draws with `seed`, in its order."""
    return [str(i) for i in draw_customer_ids(np.random.default_rng(seed), n_customers)]
