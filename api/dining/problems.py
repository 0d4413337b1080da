"""What Dining's domain errors mean for an HTTP client."""

from __future__ import annotations

from api.problems import ProblemRegistry, ProblemType, problem_type
from domain.dining.errors import (
    AlreadyRated,
    IllegalTransition,
    InvalidRestaurant,
    ReservationNotFound,
    ReservationNotPossible,
)


def register_problems(registry: ProblemRegistry) -> ProblemRegistry:
    """Add Dining's mappings to ``registry`` (and return it)."""
    mappings = [
        (InvalidRestaurant, 422, "Invalid restaurant", "dining-invalid-restaurant"),
        (ReservationNotPossible, 422, "Reservation not possible", "dining-not-possible"),
        (IllegalTransition, 409, "Not allowed in the current state", "dining-illegal-transition"),
        (AlreadyRated, 409, "Already rated", "dining-already-rated"),
        (ReservationNotFound, 404, "Reservation not found", "dining-reservation-not-found"),
    ]
    for exc_type, status, title, slug in mappings:
        registry.register(exc_type, ProblemType(status, title, problem_type(slug)))
    return registry
