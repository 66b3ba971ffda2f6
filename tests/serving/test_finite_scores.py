"""A score that is not a finite number is never answered nor logged (`serving.predictors`)."""

from __future__ import annotations

import math

import pytest

from serving.errors import InvalidInput
from serving.predictors import finite_score


@pytest.mark.parametrize("score", [math.nan, math.inf, -math.inf])
def test_a_non_finite_score_is_invalid_input(score: float) -> None:
    with pytest.raises(InvalidInput, match="no finite score"):
        finite_score(score)


def test_a_finite_score_passes_unchanged() -> None:
    assert finite_score(0.25) == 0.25
