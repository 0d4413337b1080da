"""Rows of Dining's tables as domain objects (the queries in ``sql/queries/dining.sql`` name
the columns)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.dining.deposit import Deposit, DepositStatus
from domain.dining.recommendation import EntryStatus, RecommendationEntry
from domain.dining.reservation import Reservation, ReservationStatus
from domain.dining.restaurant import Booking, BookingStatus, Restaurant

Row = Mapping[str, Any]


def restaurant_from_row(row: Row) -> Restaurant:
    return Restaurant(
        row["restaurant_id"],
        row["owner"],
        row["name"],
        row["cuisine"],
        tuple(row["slots"]),
        row["capacity_per_slot"],
        row["deposit_amount"],
    )


def booking_from_row(row: Row) -> Booking:
    return Booking(
        row["reservation_id"],
        row["restaurant_id"],
        row["date"],
        row["slot"],
        row["party_size"],
        BookingStatus(row["status"]),
    )


def reservation_from_row(row: Row) -> Reservation:
    return Reservation(
        row["reservation_id"],
        row["customer"],
        row["restaurant_id"],
        row["restaurant_name"],
        row["date"],
        row["slot"],
        row["party_size"],
        row["deposit_amount"],
        ReservationStatus(row["status"]),
        row["status_reason"],
        row["rated"],
    )


def deposit_from_row(row: Row) -> Deposit:
    return Deposit(
        row["reservation_id"],
        row["customer"],
        row["amount"],
        DepositStatus(row["status"]),
        row["charge_reference"],
        row["failure_reason"],
        row["refund_reference"],
    )


def entry_from_row(row: Row) -> RecommendationEntry:
    return RecommendationEntry(
        row["reservation_id"], row["restaurant_id"], row["customer"], EntryStatus(row["status"])
    )
