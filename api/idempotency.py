"""Idempotency keys: the same ``Idempotency-Key`` gives one effect and the same response.

The key row is inserted first in the command's transaction and the response is stored in that
same transaction, so "effects committed" and "response remembered" cannot disagree: a crash
before commit leaves neither, and the client's retry runs the command again.

Retention: rows are purged after a horizon (``purge_idempotency``) that must exceed the
longest time any client keeps retrying one request (client back-off, gateway retries, and
queued offline clients). A key purged too early would run its command a second time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from litestar.datastructures import Headers
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from api.problems import problem
from sql import query

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# A week: longer than any client retry policy we ship; operators may choose longer, not shorter.
DEFAULT_RETENTION = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A command's response as sent, so that a replay is byte-for-byte the same."""

    status_code: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def idempotency_key(headers: Headers) -> str | None:
    """The request's key, or None; a malformed key is a 400 (never silently ignored)."""
    raw = headers.get(IDEMPOTENCY_HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise problem(
            400,
            "invalid-idempotency-key",
            title="Invalid Idempotency-Key",
            detail=f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
        )
    return key


def request_fingerprint(body: bytes, query_string: str) -> str:
    """What "the same request" means for a key: the same body and query parameters."""
    digest = hashlib.sha256()
    digest.update(query_string.encode())
    digest.update(b"\n")
    digest.update(body)
    return digest.hexdigest()


def idempotency_scope(subject: str, method: str, path: str) -> str:
    """Keys are per caller and per endpoint: two users may pick the same key."""
    return f"{subject} {method.upper()} {path}"


async def claim(
    conn: psycopg.AsyncConnection[Any], scope: str, key: str, fingerprint: str
) -> StoredResponse | None:
    """Claim ``key`` in the current transaction; None means "run the command".

    Otherwise the stored response of the first request is returned for replay. A concurrent
    first request makes this wait on its row lock until it commits (replay) or rolls back
    (this request claims the key). Another body under the same key is a 422.
    """
    params = {"scope": scope, "key": key, "request_hash": fingerprint}
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query("api.idempotency_claim"), params)
        if await cur.fetchone() is not None:
            return None
        await cur.execute(query("api.idempotency_get"), params)
        row = await cur.fetchone()
    if row is None or row[1] is None:
        # Purged between the two statements, or written by something other than this module.
        raise problem(
            409, "idempotency-key-in-use", title="Idempotency key in use", detail="Retry."
        )
    request_hash, status_code, body, headers = row
    if request_hash != fingerprint:
        raise problem(
            422,
            "idempotency-key-reused",
            title="Idempotency key reused",
            detail=f"This {IDEMPOTENCY_HEADER} was already used with a different request.",
        )
    return StoredResponse(
        int(status_code), bytes(body), {str(k): str(v) for k, v in headers.items()}
    )


async def remember(
    conn: psycopg.AsyncConnection[Any], scope: str, key: str, response: StoredResponse
) -> None:
    """Store the response under the claimed key, in the command's transaction."""
    await conn.execute(
        query("api.idempotency_store"),
        {
            "scope": scope,
            "key": key,
            "status_code": response.status_code,
            "response_body": response.body,
            "response_headers": Jsonb(response.headers),
        },
    )


def _check_horizon(older_than: timedelta, batch_size: int) -> None:
    if older_than <= timedelta(0):
        raise ValueError("older_than must be positive (and exceed the longest retry horizon)")
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")


def purge_idempotency(
    conn: psycopg.Connection[Any], older_than: timedelta = DEFAULT_RETENTION, batch_size: int = 1000
) -> int:
    """Delete records older than ``older_than`` in batches (one transaction each); returns count.

    ``older_than`` must exceed the longest horizon over which any client retries a request.
    """
    _check_horizon(older_than, batch_size)
    total = 0
    while True:
        with conn.transaction():
            cur = conn.execute(
                query("api.idempotency_purge"), {"older_than": older_than, "batch_size": batch_size}
            )
        total += cur.rowcount
        if cur.rowcount < batch_size:
            return total


async def purge_idempotency_async(
    conn: psycopg.AsyncConnection[Any],
    older_than: timedelta = DEFAULT_RETENTION,
    batch_size: int = 1000,
) -> int:
    """``purge_idempotency`` for async connections."""
    _check_horizon(older_than, batch_size)
    total = 0
    while True:
        async with conn.transaction():
            cur = await conn.execute(
                query("api.idempotency_purge"), {"older_than": older_than, "batch_size": batch_size}
            )
        total += cur.rowcount
        if cur.rowcount < batch_size:
            return total
