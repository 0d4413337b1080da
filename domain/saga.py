"""Saga (process manager) definitions: pure decisions, no I/O.

A definition says which message starts an instance, which instance a message belongs to, and
how the instance reacts: the commands to issue, the step it moves to, what undoes a finished
step, when a deadline should fire. The runtime (``outbox.sagas``) stores the instance, sends the
commands through the log, schedules deadlines as delayed pgmq messages, and on failure runs
the recorded compensations in reverse order, one at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from domain.messages import Command

Outcome = Literal["complete", "fail", "park"]


@dataclass(frozen=True)
class Compensation:
    """How to undo a finished step, and which message type confirms the undo (None: no wait)."""

    command: Command
    confirmed_by: str | None = None


@dataclass(frozen=True)
class Deadline:
    name: str
    after_ms: int


@dataclass(frozen=True)
class Reaction:
    """What a saga decides in answer to one message."""

    commands: tuple[Command, ...] = ()
    step: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    finished_step: str | None = None
    compensation: Compensation | None = None
    deadline: Deadline | None = None
    outcome: Outcome | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.outcome in ("fail", "park") and not self.reason:
            raise ValueError(f"a saga that must {self.outcome} needs a reason")
        if self.compensation is not None and self.finished_step is None:
            raise ValueError("a compensation belongs to a finished step")


IGNORE = Reaction()


@dataclass(frozen=True)
class SagaView:
    """The stored state of one instance, as a definition sees it."""

    saga_id: uuid.UUID
    status: str
    step: str
    data: Mapping[str, Any]


class SagaDefinition:
    """Subclass per saga type; the runtime calls these with message types and payloads."""

    saga_type: ClassVar[str]
    starts_with: ClassVar[frozenset[str]]
    reacts_to: ClassVar[frozenset[str]]

    def saga_id_for(self, message_type: str, payload: Mapping[str, Any]) -> uuid.UUID | None:
        """Which instance a message belongs to (None: not ours)."""
        raise NotImplementedError

    def start(self, saga_id: uuid.UUID, message_type: str, payload: Mapping[str, Any]) -> Reaction:
        raise NotImplementedError

    def react(self, saga: SagaView, message_type: str, payload: Mapping[str, Any]) -> Reaction:
        raise NotImplementedError

    def on_deadline(self, saga: SagaView, name: str) -> Reaction:
        """By default a passed deadline fails the saga, which compensates what was done."""
        return Reaction(outcome="fail", reason=f"deadline {name!r} passed in step {saga.step!r}")


class CannotProceed(Exception):
    """Raised by a definition when a message makes no sense in the saga's state: the runtime
    parks the instance with this reason instead of retrying a decision that cannot change."""
