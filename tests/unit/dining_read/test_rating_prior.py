"""The ranking's Bayesian prior: C imaginary ratings of m."""

from __future__ import annotations

import pytest

from api.dining.views import RatingPrior
from haengbok.settings import Settings


class TestRatingPrior:
    def test_defaults_to_five_ratings_of_three(self) -> None:
        assert RatingPrior.from_settings(Settings()) == RatingPrior(mean=3.0, weight=5.0)

    @pytest.mark.parametrize("weight", [0.0, -1.0])
    def test_a_weight_must_be_positive(self, weight: float) -> None:
        with pytest.raises(ValueError, match="positive"):
            RatingPrior(mean=3.0, weight=weight)
