"""Comparing score files: batch scoring and `mlops score` must give the same probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd


def assert_same_probabilities(
    got: pd.DataFrame, want: pd.DataFrame, columns: tuple[str, str], *, tolerance: float
) -> None:
    """Two score files hold the same ids in the same order and probabilities within
    `tolerance`; `columns` names the id and the probability column."""
    ids, probability = columns
    assert list(got[ids]) == list(want[ids])
    np.testing.assert_allclose(got[probability], want[probability], atol=tolerance, rtol=0)
