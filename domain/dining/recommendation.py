"""The recommendation context: every paid reservation is an entry that ratings later weigh.

An entry is refused while its restaurant is suspended from the recommendation programme (e.g.
under review for rating fraud); since a reservation needs its entry, such a restaurant cannot
take reservations until the suspension is lifted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from domain.dining.errors import IllegalTransition
from domain.dining.messages import (
    RecommendationEntryDeleted,
    RecommendationEntryRegistered,
    RecommendationEntryRejected,
)


class EntryStatus(StrEnum):
    REGISTERED = "REGISTERED"
    DELETED = "DELETED"


@dataclass
class RecommendationEntry:
    """A paid reservation as the recommendation context counts it."""

    reservation_id: uuid.UUID
    restaurant_id: uuid.UUID
    customer: str
    status: EntryStatus = EntryStatus.REGISTERED

    @classmethod
    def register(
        cls,
        reservation_id: uuid.UUID,
        restaurant_id: uuid.UUID,
        customer: str,
        suspension: str | None,
    ) -> tuple[
        RecommendationEntry | None, RecommendationEntryRegistered | RecommendationEntryRejected
    ]:
        """The entry, or no entry and the rejection when the restaurant is suspended."""
        if suspension is not None:
            reason = f"the restaurant is suspended from recommendations: {suspension}"
            return None, RecommendationEntryRejected(reservation_id, reason)
        entry = cls(reservation_id, restaurant_id, customer)
        return entry, RecommendationEntryRegistered(reservation_id, restaurant_id)

    def delete(self) -> RecommendationEntryDeleted:
        """The reservation did not go ahead (cancel or compensation)."""
        if self.status is not EntryStatus.REGISTERED:
            raise IllegalTransition(f"the entry of {self.reservation_id} is already deleted")
        self.status = EntryStatus.DELETED
        return RecommendationEntryDeleted(self.reservation_id)
