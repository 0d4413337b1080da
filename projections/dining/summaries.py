"""One line of plain language per Dining message, for the customer's timeline.

Commands are included: they show the steps under way ("refund requested") before the event
that settles them arrives, which is what a customer wondering "where is my refund?" needs.
"""

from __future__ import annotations

from domain.dining import messages as m
from domain.messages import Message


def _krw(amount: int) -> str:
    return f"{amount:,} KRW"


def summary(message: Message) -> str:
    """What happened (or was asked for), as the customer center shows it."""
    match message:
        case m.ReservationRequested():
            return (
                f"Reservation requested at {message.restaurant_name} on {message.date} at "
                f"{message.slot} for {message.party_size} (deposit {_krw(message.deposit_amount)})"
            )
        case m.RecordDepositPaid():
            return "Reservation asked to record the paid deposit"
        case m.ReservationDepositPaid():
            return "Deposit recorded on the reservation"
        case m.ConfirmReservation():
            return "Confirmation requested"
        case m.ReservationConfirmed():
            return "Reservation confirmed"
        case m.RejectReservation():
            return f"Rejection requested: {message.reason}"
        case m.ReservationRejected():
            return f"Reservation rejected: {message.reason}"
        case m.ReservationCancelled():
            return "Reservation cancelled by the customer"
        case m.VisitRecorded():
            return "Visit completed" if message.outcome == "COMPLETED" else "Marked as a no-show"
        case m.ReservationRated():
            said = f": {message.comment}" if message.comment else ""
            return f"Rated {message.score}/5{said}"
        case m.RatingWithdrawn():
            return f"Rating of {message.score}/5 withdrawn: marked as a no-show"
        case m.TakeDeposit():
            return f"Deposit of {_krw(message.amount)} requested"
        case m.DepositPaid():
            return f"Deposit of {_krw(message.amount)} paid"
        case m.DepositFailed():
            return f"Deposit payment failed: {message.reason}"
        case m.RefundDeposit():
            return f"Deposit refund requested: {message.reason}"
        case m.DepositRefunded():
            return f"Deposit of {_krw(message.amount)} refunded"
        case m.ForfeitDeposit():
            return "Deposit forfeiture requested"
        case m.DepositForfeited():
            return f"Deposit of {_krw(message.amount)} forfeited"
        case m.AcceptReservation():
            return (
                f"Sent to the restaurant: {message.party_size} on {message.date} at {message.slot}"
            )
        case m.ReservationAccepted():
            return "The restaurant accepted the reservation"
        case m.ReservationRefused():
            return f"The restaurant refused the reservation: {message.reason}"
        case m.ReleaseReservation():
            return "The restaurant was asked to release the table"
        case m.ReservationReleased():
            return "The restaurant released the table"
        case m.RegisterRecommendationEntry():
            return "Recommendation entry requested"
        case m.RecommendationEntryRegistered():
            return "Registered for recommendations"
        case m.RecommendationEntryRejected():
            return f"Recommendation entry rejected: {message.reason}"
        case m.DeleteRecommendationEntry():
            return "Recommendation entry removal requested"
        case m.RecommendationEntryDeleted():
            return "Removed from recommendations"
    # A new contract message without a line here would otherwise vanish from timelines.
    raise TypeError(f"no timeline summary for {type(message).__name__}")
