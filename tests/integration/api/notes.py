"""A test-only product line: "notes", to drive the platform's command helper over real HTTP.

A note is one row in ``notes_test.note`` plus a ``notes.NoteWritten`` event, written in the
command's transaction. Every handler first takes a share lock on ``notes_test.gate``: tests
that need a request to stop half-way (concurrent duplicates) hold that row locked.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
import psycopg
import structlog
from litestar import Controller, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from psycopg.rows import dict_row

from api.auth import Role, requires_roles
from api.commands import CommandResult, CommandRunner
from api.openapi import COMMAND_RESPONSE_HEADERS, command_responses
from api.problems import TemporarilyUnavailable
from api.schemas import Command
from outbox.envelope import MessageContext, NewMessage
from outbox.log import ConcurrencyConflict, append_after_write_async, append_async

log = structlog.get_logger("tests.notes")

SCHEMA_DDL = """
CREATE SCHEMA notes_test;
CREATE TABLE notes_test.note (
    id        uuid PRIMARY KEY,
    text      text    NOT NULL,
    priority  integer NOT NULL,
    processed boolean NOT NULL DEFAULT false
);
CREATE TABLE notes_test.gate (id integer PRIMARY KEY);
INSERT INTO notes_test.gate VALUES (1);
"""


class NoteCreate(Command):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    priority: int = 0


class NoteAccepted(msgspec.Struct):
    id: str
    text: str
    status: str
    log_position: int | None


async def _write_note(conn: psycopg.AsyncConnection[Any], data: NoteCreate) -> uuid.UUID:
    await conn.execute("SELECT 1 FROM notes_test.gate WHERE id = 1 FOR SHARE")
    note_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO notes_test.note (id, text, priority) VALUES (%s, %s, %s)",
        (note_id, data.text, data.priority),
    )
    return note_id


async def note_settled(
    conn: psycopg.AsyncConnection[Any], accepted: dict[str, Any]
) -> dict[str, Any] | None:
    """The note once something marked it processed (the tests play the saga)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id::text, text, 'PROCESSED' AS status FROM notes_test.note "
            "WHERE id = %s AND processed",
            (accepted["id"],),
        )
        return await cur.fetchone()


class NotesController(Controller):
    path = "/notes"
    tags = ["notes (test only)"]
    guards = [requires_roles(Role.CUSTOMER)]

    @post(
        "/",
        operation_id="createNote",
        status_code=202,
        responses=command_responses(settled=NoteAccepted),
        response_headers=COMMAND_RESPONSE_HEADERS,
    )
    async def create(
        self, data: JSONBody[NoteCreate], command_runner: NamedDependency[CommandRunner]
    ) -> Response[NoteAccepted]:
        async def handle(conn: psycopg.AsyncConnection[Any], ctx: MessageContext) -> CommandResult:
            note_id = await _write_note(conn, data)
            # No ids passed: the request's correlation and request ids come from contextvars.
            log.info("note_written", note_id=str(note_id))
            appended = await append_async(
                conn,
                [
                    NewMessage(
                        type="notes.NoteWritten",
                        stream=f"note-{note_id}",
                        payload={"note_id": str(note_id), "text": data.text},
                    )
                ],
                ctx,
            )
            return CommandResult(
                resource={"id": str(note_id), "text": data.text, "status": "PENDING"},
                location=f"/notes/{note_id}",
                appended=appended,
            )

        return await command_runner.run(handle, settled=note_settled)

    @post("/once", operation_id="createNoteInOneStatement", status_code=202)
    async def once(
        self, data: JSONBody[NoteCreate], command_runner: NamedDependency[CommandRunner]
    ) -> Response[Any]:
        """Row and event in one statement (``writes_once``); the answer says whether the
        handler ran inside a transaction."""

        async def handle(conn: psycopg.AsyncConnection[Any], ctx: MessageContext) -> CommandResult:
            in_transaction = conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
            note_id = uuid.uuid4()
            write = (
                "INSERT INTO notes_test.note (id, text, priority) "
                "VALUES (%(note_id)s, %(text)s, %(priority)s)",
                {"note_id": note_id, "text": data.text, "priority": data.priority},
            )
            message = NewMessage("notes.NoteWritten", f"note-{note_id}", {"note_id": str(note_id)})
            appended = await append_after_write_async(conn, write, [message], ctx)
            resource = {"id": str(note_id), "in_transaction": in_transaction}
            return CommandResult(resource, f"/notes/{note_id}", appended)

        return await command_runner.run(handle, writes_once=True)

    @post("/conflicting", operation_id="createConflictingNote", status_code=202)
    async def conflicting(
        self, data: JSONBody[NoteCreate], command_runner: NamedDependency[CommandRunner]
    ) -> Response[Any]:
        async def handle(conn: psycopg.AsyncConnection[Any], ctx: MessageContext) -> CommandResult:
            await _write_note(conn, data)
            raise ConcurrencyConflict("note stream moved on")

        return await command_runner.run(handle)

    @post("/overloaded", operation_id="createNoteWhileOverloaded", status_code=202)
    async def overloaded(
        self, data: JSONBody[NoteCreate], command_runner: NamedDependency[CommandRunner]
    ) -> Response[Any]:
        async def handle(conn: psycopg.AsyncConnection[Any], ctx: MessageContext) -> CommandResult:
            await _write_note(conn, data)
            raise TemporarilyUnavailable("the note provider is overloaded", retry_after_seconds=7)

        return await command_runner.run(handle)

    @post("/broken", operation_id="createBrokenNote", status_code=202)
    async def broken(
        self, data: JSONBody[NoteCreate], command_runner: NamedDependency[CommandRunner]
    ) -> Response[Any]:
        async def handle(conn: psycopg.AsyncConnection[Any], ctx: MessageContext) -> CommandResult:
            await _write_note(conn, data)
            raise RuntimeError("password=hunter2 leaked into an exception message")

        return await command_runner.run(handle)
