"""Response shapes of the ops API (``/ops``): what an operator sees, field by field."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec


class SagaStatus(StrEnum):
    """The statuses ``saga.instance`` allows (its CHECK constraint)."""

    RUNNING = "RUNNING"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    COMPENSATED = "COMPENSATED"
    PARKED = "PARKED"


class QueueStatsView(msgspec.Struct, kw_only=True):
    queue_name: str
    length: int
    visible_length: int
    oldest_age_seconds: float | None
    newest_age_seconds: float | None
    total_messages: int


class RelayLagView(msgspec.Struct, kw_only=True):
    pending: int
    oldest_seconds: float


class ProjectionPositionView(msgspec.Struct, kw_only=True):
    name: str
    position: int
    head: int
    lag: int


class SagaCountView(msgspec.Struct, kw_only=True):
    saga_type: str
    status: str
    instances: int


class Overview(msgspec.Struct, kw_only=True):
    """The snapshot behind ``/metrics`` and ``haengbok status``, as JSON."""

    queues: list[QueueStatsView]
    relay: RelayLagView
    log_head: int
    projections: list[ProjectionPositionView]
    sagas: list[SagaCountView]
    parked: dict[str, int]


class QueueView(msgspec.Struct, kw_only=True):
    """One pgmq queue; ``exists`` is false for a dropped queue that still has parked messages."""

    queue_name: str
    depth: int
    visible: int
    oldest_age_seconds: float | None
    parked: int
    exists: bool


class SagaSummary(msgspec.Struct, kw_only=True):
    saga_id: uuid.UUID
    saga_type: str
    status: str
    step: str
    version: int
    correlation_id: uuid.UUID
    parked_reason: str | None
    deadline_at: datetime | None
    started_at: datetime
    updated_at: datetime
    state: Any


class SagaMessage(msgspec.Struct, kw_only=True):
    """A log entry of the saga's flow (same correlation id)."""

    position: int
    global_position: int | None
    event_id: uuid.UUID
    kind: str
    type: str
    stream: str
    version: int
    payload: Any
    causation_id: uuid.UUID | None
    actor: str | None
    occurred_at: datetime


class SagaDetail(SagaSummary, kw_only=True):
    completed_steps: Any
    messages: list[SagaMessage]


class ProjectionView(msgspec.Struct, kw_only=True):
    name: str
    checkpoint: int
    head: int
    lag_events: int
    lag_seconds: float


class DeadLetter(msgspec.Struct, kw_only=True):
    """A parked message: where it came from, why it stopped, and what it was about."""

    id: int
    queue_name: str
    group_key: str | None
    msg_id: int
    read_ct: int
    error: str
    enqueued_at: datetime | None
    parked_at: datetime
    actor: str | None
    message_type: str | None
    correlation_id: str | None


class Requeued(msgspec.Struct, kw_only=True):
    """What a retry sent back: the parked message and those that waited behind it."""

    id: int
    queue_name: str
    group_key: str | None
    msg_ids: list[int]
