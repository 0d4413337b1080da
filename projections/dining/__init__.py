"""Dining read models (CQRS query side): the customer center and recommendation views.

Customers read reservation, deposit and recommendation state from these tables, never from
the write side's aggregates; the projection runner keeps them caught up with the log.
"""

from __future__ import annotations

from projections.dining.customer_reservations import CustomerReservations
from projections.dining.customer_timeline import CustomerTimeline
from projections.dining.recommendation_views import RecommendationEntries, RestaurantRatings
from projections.projector import Projector


def projectors() -> list[Projector]:
    """Every Dining projector, for the composition root's worker processes."""
    return [
        CustomerReservations(),
        CustomerTimeline(),
        RestaurantRatings(),
        RecommendationEntries(),
    ]
