"""The exception -> problem registry the product lines extend."""

from __future__ import annotations

import pytest

from api.problems import ProblemRegistry, ProblemType, default_problems, problem_type
from outbox.log import ConcurrencyConflict, StaleRead


class SeatTaken(Exception):
    pass


class SeatTakenTwice(SeatTaken):
    pass


class TestProblemRegistry:
    def test_the_most_specific_registered_class_wins(self) -> None:
        registry = ProblemRegistry()
        registry.register(Exception, ProblemType(500, "Oops"))
        registry.register(SeatTaken, ProblemType(409, "Seat taken", problem_type("seat-taken")))

        found = registry.lookup(SeatTakenTwice("A1"))

        assert found is not None
        assert (found.status, found.type_uri) == (409, "urn:haengbok:problem:seat-taken")

    def test_unregistered_exceptions_are_not_found(self) -> None:
        assert ProblemRegistry().lookup(SeatTaken()) is None

    def test_copies_are_independent(self) -> None:
        base = default_problems()
        extended = base.copy()
        extended.register(SeatTaken, ProblemType(409, "Seat taken"))
        assert base.lookup(SeatTaken()) is None
        assert extended.lookup(SeatTaken()) is not None

    @pytest.mark.parametrize("conflict", [ConcurrencyConflict, StaleRead])
    def test_concurrency_conflicts_are_409s_by_default(
        self, conflict: type[ConcurrencyConflict]
    ) -> None:
        found = default_problems().lookup(conflict("x"))
        assert found is not None
        assert found.status == 409
