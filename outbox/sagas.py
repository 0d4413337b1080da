"""Saga runtime: stores instances, sends their commands through the log, keeps each instance's
deadline, and compensates finished steps in reverse order.

A step's deadline is a column of the instance row, nothing more: while steps answer in time,
no message is sent for it. Once it passes, the deadline scheduler of a worker process
(``outbox.saga_deadlines``) sends the instance one deadline message, names it in the row, and
the runtime applies the definition's ``on_deadline`` when that message arrives, unless the
saga moved on meanwhile.

Each message is handled inside the consumer's transaction (``outbox.consumers``), so the
instance update, the commands it issues, any deadline and the ack commit together. In a batch
(``subscriber(batch_size=...)``) the instances of all its messages are locked in one statement
in saga id order, each message changes them in turn, and they are saved in one statement
before the commit.

A saga belongs to one context, and its commands to that same context need no trip through the
log: ``local`` handlers run them in the saga's own transaction (one delivery, one transaction
and two log rows fewer per such command). Commands to other contexts always go through the
log, the relay and their queue.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from domain.messages import Command
from domain.saga import CannotProceed, Reaction, SagaDefinition, SagaView
from outbox.consumers import BatchScope, Handler, HandlerContext, Subscriber
from outbox.envelope import Envelope, MessageContext, NewMessage
from sql import query

log = logging.getLogger(__name__)

DEADLINE_TYPE = "saga.DeadlineReached"
TERMINAL = frozenset({"COMPLETED", "COMPENSATED"})


def command_stream(saga_type: str, saga_id: uuid.UUID) -> str:
    """The stream every command of one saga instance is appended to.

    Not the target aggregate's stream: the contexts append their own events there, from other
    transactions, and two appends to one stream at once collide on its next version. The saga
    holds its instance's lock while it appends, so its own stream never sees a collision; and
    since one instance sends all the commands any context gets about it, they stay in order
    (each stream is one FIFO group in a queue): an undo never overtakes the step it undoes.
    """
    return f"saga-{saga_type}-{saga_id}"


def to_new_message(command: Command, stream: str | None = None) -> NewMessage:
    """The log message of ``command``, on ``stream`` (default: the command's own)."""
    return NewMessage(
        command.TYPE, stream or command.stream(), command.payload(), kind=command.KIND
    )


def _stored_command(command: Command, stream: str) -> dict[str, Any]:
    return {"type": command.TYPE, "kind": command.KIND, "stream": stream,
            "payload": command.payload()}  # fmt: skip


def _message_of(stored: Mapping[str, Any]) -> NewMessage:
    return NewMessage(stored["type"], stored["stream"], stored["payload"], kind=stored["kind"])


class SagaParked(Exception):
    """A message for a parked saga: kept, never applied to it nor dropped.

    A saga parked waiting on its dead-lettered command resumes when that is re-queued, so the
    message waits: the failure is ``transient`` (retried with back-off, no attempt counted,
    never dead-lettered for it) and goes through once the saga runs again. A saga its
    definition parked needs a person; the message then runs out of attempts and is parked
    itself, with this text, next to the saga's reason. Both were dropped with a log line once,
    which lost a late reply or a cancel the resumed saga then never saw.
    """

    def __init__(self, saga_type: str, inst: _Instance, message_type: str) -> None:
        self.transient = inst.parked_from is not None
        then = (
            "it runs once the saga resumes (re-queue the saga's parked command)"
            if self.transient
            else "re-queue this message once the saga can go on"
        )
        super().__init__(
            f"{saga_type} saga {inst.saga_id} is parked ({inst.parked_reason}): "
            f"{message_type} kept for it; {then}"
        )


@dataclass
class _Instance:
    saga_id: uuid.UUID
    status: str
    step: str
    data: dict[str, Any]
    stack: list[dict[str, Any]]
    version: int
    correlation_id: uuid.UUID
    parked_reason: str | None = None
    #: What a parked saga was doing before (``saga.park_waiting``): it resumes when its
    #: dead-lettered command is re-queued. None for a saga its definition parked.
    parked_from: str | None = None
    deadline_at: datetime | None = None
    deadline_name: str | None = None
    deadline_msg_id: int | None = None
    deadline_msg_at: datetime | None = None

    def view(self) -> SagaView:
        return SagaView(self.saga_id, self.status, self.step, dict(self.data))


class SagaRunner:
    """Applies one saga definition to the messages its subscriber receives."""

    def __init__(
        self,
        definition: SagaDefinition,
        *,
        local: Mapping[str, Handler] | None = None,
        starts_in_commands: bool = False,
    ) -> None:
        """``local``: command type -> the handler of the saga's own context that runs it in
        the saga's transaction, instead of the command being appended to the log. The handler
        gets an envelope that is not in the log (position 0), caused by the saga's message.

        ``starts_in_commands``: the commands that append the saga's start messages also start
        its instances, in their own transactions (``start_now``), so the subscriber is not
        routed the start messages. It still starts an instance from one delivered to it (one
        routed before this was so)."""
        self.definition = definition
        self.local = dict(local or {})
        self.starts_in_commands = starts_in_commands

    def subscriber(
        self, *, queue_name: str | None = None, batch_size: int = 1, **actor_options: Any
    ) -> Subscriber:
        """The saga's subscriber; with ``batch_size`` > 1 a batch takes its instances' locks
        in saga id order, so two batches never wait on each other in a cycle."""
        d = self.definition
        starts = frozenset() if self.starts_in_commands else d.starts_with
        return Subscriber(
            name=f"saga_{d.saga_type}",
            handles=starts | d.reacts_to | {DEADLINE_TYPE},
            handler=self.handle,
            queue_name=queue_name,
            actor_options=actor_options,
            saga_type=d.saga_type,
            batch_size=batch_size,
            batch_key=self.instance_key,
            prepare_batch=self.prepare_batch,
        )

    def prepare_batch(self, conn: psycopg.Connection[Any], scope: BatchScope) -> None:
        """Create the instances the batch's start messages need, then load and lock all of
        the batch's instances, one statement each; they are saved in one statement before the
        commit, with every change the batch's messages made to them."""
        keys = {self.instance_key(env) for env in scope.envelopes}
        ids = sorted(uuid.UUID(k) for k in keys if k)
        starts = {
            uuid.UUID(key): env.correlation_id
            for env in scope.envelopes
            if env.type in self.definition.starts_with and (key := self.instance_key(env))
        }
        if starts:
            conn.execute(query("saga.insert_many"), {
                "saga_type": self.definition.saga_type, "saga_ids": list(starts),
                "correlation_ids": list(starts.values()),
            })  # fmt: skip
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(query("saga.lock_many"), {"saga_ids": ids}).fetchall()
        loaded = _Loaded({row["saga_id"]: _instance(row) for row in rows})
        scope.state[self] = loaded
        scope.before_commit(loaded.save)

    def start_now(
        self, saga_id: uuid.UUID, start: NewMessage, context: MessageContext
    ) -> StartedSaga:
        """Start an instance in the transaction that appends its start message ``start``
        (with ``context``), as a delivery of that message would: the insert of the instance
        row and the commands it sends, for the caller to write in that transaction, e.g. in
        the same statement (``outbox.log.append_after_writes_async``). The commands' context
        is the one a consumer would give them: caused by ``start``. Their deadline counts
        from now. Local commands (``local``) cannot run here: a start that sends one fails."""
        if start.type not in self.definition.starts_with:
            raise ValueError(f"{start.type} does not start a {self.definition.saga_type} saga")
        inst = _Instance(saga_id, "RUNNING", "started", {}, [], 0, context.correlation_id)
        reaction = self._decide(
            inst, lambda: self.definition.start(saga_id, start.type, start.payload)
        )
        local = [c.TYPE for c in reaction.commands if c.TYPE in self.local]
        if local:
            raise ValueError(f"a saga started in a command cannot run its local {local}")
        sent = _Collected()
        self._transition(sent, inst, reaction)
        caused = MessageContext(context.correlation_id, start.event_id, context.actor)
        row = {
            "saga_id": saga_id, "saga_type": self.definition.saga_type,
            "saga_status": inst.status, "saga_step": inst.step, "saga_state": Jsonb(inst.data),
            "saga_completed_steps": Jsonb(inst.stack), "saga_correlation_id": inst.correlation_id,
            "saga_parked_reason": inst.parked_reason, "saga_deadline_at": inst.deadline_at,
            "saga_deadline_name": inst.deadline_name,
        }  # fmt: skip
        return StartedSaga(
            (query("saga.insert_started"), row), [(m, caused) for m in sent.messages]
        )

    def instance_key(self, env: Envelope) -> str:
        """The id of the instance a message is for ("" when it is for none)."""
        if env.type == DEADLINE_TYPE:
            return str(env.payload["saga_id"])
        saga_id = self.definition.saga_id_for(env.type, env.payload)
        return "" if saga_id is None else str(saga_id)

    def handle(self, ctx: HandlerContext, env: Envelope) -> None:
        if env.type == DEADLINE_TYPE:
            self._on_deadline(ctx, env)
            return
        saga_id = self.definition.saga_id_for(env.type, env.payload)
        if saga_id is None:
            return
        inst = self._load(ctx, saga_id)
        if inst is None:
            if env.type not in self.definition.starts_with:
                log.warning(
                    "no %s saga %s for %s; ignored", self.definition.saga_type, saga_id, env.type
                )
                return
            ctx.conn.execute(query("saga.insert"), {"saga_id": saga_id, "correlation_id": env.correlation_id,
                                                    "saga_type": self.definition.saga_type})  # fmt: skip
            inst = self._load(ctx, saga_id)
            assert inst is not None
        if inst.version == 0 and env.type in self.definition.starts_with:
            # Created for this message (here, or by the batch's insert_many) and not started.
            start = self.definition.start
            self._apply(
                ctx, inst, self._decide(inst, lambda: start(saga_id, env.type, env.payload))
            )
            return
        if inst.status == "PARKED":
            raise SagaParked(self.definition.saga_type, inst, env.type)
        if (
            inst.status == "COMPENSATING"
            and inst.stack
            and inst.stack[-1].get("confirmed_by") == env.type
        ):
            inst.stack.pop()
            self._continue_compensation(ctx, inst)
            self._save(ctx, inst)
            return
        self._apply(
            ctx,
            inst,
            self._decide(inst, lambda: self.definition.react(inst.view(), env.type, env.payload)),
        )

    # -- decisions ------------------------------------------------------------------------

    def _decide(self, inst: _Instance, decide: Any) -> Reaction:
        try:
            reaction: Reaction = decide()
        except CannotProceed as exc:
            return Reaction(outcome="park", reason=str(exc) or type(exc).__name__)
        return reaction

    def _apply(self, ctx: HandlerContext, inst: _Instance, r: Reaction) -> None:
        if r == Reaction():
            return
        self._transition(ctx, inst, r)
        self._save(ctx, inst)

    def _transition(self, ctx: HandlerContext | _Collected, inst: _Instance, r: Reaction) -> None:
        """What ``r`` does to ``inst`` and sends, short of saving the instance."""
        stream = command_stream(self.definition.saga_type, inst.saga_id)
        self._send(ctx, [to_new_message(c, stream) for c in r.commands])
        inst.data.update(r.data)
        if r.step is not None:
            inst.step = r.step
        if r.finished_step is not None:
            comp = r.compensation
            inst.stack.append({
                "step": r.finished_step,
                "compensation": _stored_command(comp.command, stream) if comp else None,
                "confirmed_by": comp.confirmed_by if comp else None,
            })  # fmt: skip
        terminal_or_undoing = inst.status in TERMINAL or inst.status == "COMPENSATING"
        if r.outcome == "park":
            inst.status, inst.parked_reason = "PARKED", r.reason
        elif r.outcome == "fail" and not terminal_or_undoing:
            inst.status, inst.parked_reason = "COMPENSATING", None
            inst.data["failure_reason"] = r.reason
            self._continue_compensation(ctx, inst)
        elif r.outcome == "complete" and not terminal_or_undoing:
            inst.status = "COMPLETED"
        if r.deadline is not None and inst.status == "RUNNING":
            due = datetime.now(UTC) + timedelta(milliseconds=r.deadline.after_ms)
            inst.deadline_at, inst.deadline_name = due, r.deadline.name
        else:
            inst.deadline_at, inst.deadline_name = None, None
        # A deadline message still pending was sent for a deadline that no longer holds (fired
        # but not yet handled, or sent by an earlier release): delete it rather than have it
        # delivered only to be ignored. The scheduler sends one for the new deadline when due.
        self._drop_deadline_message(ctx, inst)

    def _continue_compensation(self, ctx: HandlerContext | _Collected, inst: _Instance) -> None:
        """Issue the undo of the most recent finished step; skip steps with nothing to undo."""
        while inst.stack:
            top = inst.stack[-1]
            if top["compensation"] is None:
                inst.stack.pop()
                continue
            self._send(ctx, [_message_of(top["compensation"])])
            if top["confirmed_by"] is None:
                inst.stack.pop()
                continue
            top["compensation"] = None  # issued once; now waiting for confirmed_by
            return
        inst.status = "COMPENSATED"

    def _send(self, ctx: HandlerContext | _Collected, messages: Sequence[NewMessage]) -> None:
        """Append ``messages`` to the log, but run local ones here, in their order."""
        batch: list[NewMessage] = []
        for message in messages:
            handler = self.local.get(message.type)
            if handler is None:
                batch.append(message)
                continue
            if not isinstance(ctx, HandlerContext):  # start_now checked for these first
                raise TypeError(f"{message.type} runs locally, in a delivery only")
            if batch:
                ctx.emit(*batch)
                batch = []
            handler(ctx, self._local_envelope(ctx, message))
        if batch:
            ctx.emit(*batch)

    def _local_envelope(self, ctx: HandlerContext, message: NewMessage) -> Envelope:
        cause = ctx.envelope
        return Envelope(
            position=0, global_position=None, event_id=message.event_id, kind=message.kind,
            type=message.type, stream=message.stream, version=0, payload=message.payload,
            correlation_id=cause.correlation_id, causation_id=cause.event_id, actor=cause.actor,
            occurred_at=datetime.now(UTC),
        )  # fmt: skip

    # -- deadlines ------------------------------------------------------------------------

    def _drop_deadline_message(self, ctx: HandlerContext | _Collected, inst: _Instance) -> None:
        if inst.deadline_msg_id is not None:
            ctx.cancel_scheduled(inst.deadline_msg_id)
        inst.deadline_msg_id, inst.deadline_msg_at = None, None

    def _on_deadline(self, ctx: HandlerContext, env: Envelope) -> None:
        inst = self._load(ctx, uuid.UUID(env.payload["saga_id"]))
        if inst is None or inst.status != "RUNNING" or inst.deadline_at is None:
            return  # the saga moved on: nothing is due
        # Messages sent before instances remembered theirs (migration 0006) name a version.
        legacy = inst.deadline_msg_id is None and env.payload.get("version") == inst.version
        if ctx.message_id != inst.deadline_msg_id and not legacy:
            return  # not the instance's pending deadline message (replaced since it was sent)
        sent_for = inst.deadline_msg_at
        if not legacy and (sent_for is None or sent_for < inst.deadline_at):
            # Sent by the release before 0009 for an earlier step's deadline, which a later
            # one replaced: not due. The scheduler fires the current deadline when it passes.
            inst.deadline_msg_id, inst.deadline_msg_at = None, None  # acked with this commit
            self._save(ctx, inst)
            return
        name = inst.deadline_name or str(env.payload["name"])
        self._apply(
            ctx, inst, self._decide(inst, lambda: self.definition.on_deadline(inst.view(), name))
        )

    # -- storage --------------------------------------------------------------------------

    def _loaded(self, ctx: HandlerContext) -> _Loaded | None:
        """The instances of the batch this message runs in (None outside a batch)."""
        if ctx.batch is None:
            return None
        loaded: _Loaded | None = ctx.batch.state.get(self)
        return loaded

    def _load(self, ctx: HandlerContext, saga_id: uuid.UUID) -> _Instance | None:
        loaded = self._loaded(ctx)
        if loaded is not None and saga_id in loaded.instances:
            return loaded.instances[saga_id]
        with ctx.conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(query("saga.lock"), {"saga_id": saga_id}).fetchone()
        if row is None:
            return None
        inst = _instance(row)
        if loaded is not None:  # created by this batch: saved with the others
            loaded.add(inst)
        return inst

    def _save(self, ctx: HandlerContext, inst: _Instance) -> None:
        loaded = self._loaded(ctx)
        if loaded is not None and inst.saga_id in loaded.instances:
            inst.version += 1
            loaded.changed.add(inst.saga_id)
            return
        saved = ctx.conn.execute(query("saga.save"), {
            "saga_id": inst.saga_id, "status": inst.status, "step": inst.step,
            "state": Jsonb(inst.data), "completed_steps": Jsonb(inst.stack),
            "parked_reason": inst.parked_reason, "deadline_at": inst.deadline_at,
            "deadline_name": inst.deadline_name, "deadline_msg_id": inst.deadline_msg_id,
            "deadline_msg_at": inst.deadline_msg_at, "version": inst.version,
        }).fetchone()  # fmt: skip
        if saved is None:  # the row is locked FOR UPDATE, so this would be a bug
            raise RuntimeError(f"saga {inst.saga_id} changed under its lock")
        inst.version = saved[0]


def _instance(row: Mapping[str, Any]) -> _Instance:
    return _Instance(row["saga_id"], row["status"], row["step"], dict(row["state"]),
                     list(row["completed_steps"]), row["version"], row["correlation_id"],
                     deadline_at=row["deadline_at"], deadline_name=row["deadline_name"],
                     deadline_msg_id=row["deadline_msg_id"],
                     deadline_msg_at=row["deadline_msg_at"],
                     parked_reason=row["parked_reason"],
                     parked_from=row["parked_from"])  # fmt: skip


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class StartedSaga:
    """An instance started in a command's transaction (``SagaRunner.start_now``): ``write``,
    the insert of its row (SQL and parameters, all named ``saga_...``), and ``commands``, what
    it sends, each with its context, to append in the same transaction."""

    write: tuple[str, dict[str, Any]]
    commands: list[tuple[NewMessage, MessageContext]]


class _Collected:
    """Stands in for the consumer's context while ``start_now`` decides: keeps what is sent."""

    def __init__(self) -> None:
        self.messages: list[NewMessage] = []

    def emit(self, *messages: NewMessage) -> None:
        self.messages.extend(messages)

    def cancel_scheduled(self, msg_id: int) -> None:  # a new instance has no deadline message
        raise AssertionError("a saga being started has no scheduled message to cancel")


class _Loaded:
    """A batch's instances, locked, and which of them its messages changed."""

    def __init__(self, instances: dict[uuid.UUID, _Instance]) -> None:
        self.instances = instances
        self.versions = {saga_id: inst.version for saga_id, inst in instances.items()}
        self.changed: set[uuid.UUID] = set()

    def add(self, inst: _Instance) -> None:
        self.instances[inst.saga_id] = inst
        self.versions[inst.saga_id] = inst.version

    def save(self, conn: psycopg.Connection[Any]) -> None:
        if not self.changed:
            return
        rows = []
        for saga_id in sorted(self.changed):
            inst = self.instances[saga_id]
            rows.append({
                "saga_id": str(saga_id), "status": inst.status, "step": inst.step,
                "state": inst.data, "completed_steps": inst.stack, "version": inst.version,
                "loaded_version": self.versions[saga_id], "parked_reason": inst.parked_reason,
                "deadline_at": _iso(inst.deadline_at), "deadline_name": inst.deadline_name,
                "deadline_msg_id": inst.deadline_msg_id, "deadline_msg_at": _iso(inst.deadline_msg_at),
            })  # fmt: skip
        params = {"rows": Jsonb(rows), "saga_ids": sorted(self.changed)}
        saved = conn.execute(query("saga.save_many"), params).fetchall()
        if len(saved) != len(rows):  # the rows are locked FOR UPDATE, so this would be a bug
            raise RuntimeError(f"{len(rows) - len(saved)} saga instances changed under their lock")
