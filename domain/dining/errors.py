"""Dining's domain errors. Their messages are written for the client that caused them."""

from __future__ import annotations


class DiningError(Exception):
    """Base of every rule Dining refuses to break."""


class InvalidRestaurant(DiningError):
    """Registration data that no restaurant can have (duplicate slots, no seats...)."""


class ReservationNotPossible(DiningError):
    """The request names something the restaurant does not offer (or a time already gone)."""


class IllegalTransition(DiningError):
    """The aggregate's current state does not allow this change."""


class AlreadyRated(IllegalTransition):
    """A reservation is rated once."""


class ReservationNotFound(DiningError):
    """No such reservation for this caller (another customer's looks exactly like none)."""


class NoSeatsLeft(DiningError):
    """The slot does not have enough free seats for the party."""
