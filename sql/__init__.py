"""SQL lives in ``.sql`` files as named blocks, loaded once (``-- name: outbox.append``).

Parameters are always passed to the driver (``%(name)s``), never formatted into the text.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from psycopg import sql as pgsql

QUERIES_DIR = Path(__file__).parent / "queries"
_NAME = re.compile(r"^--\s*name:\s*(?P<name>[\w.\-]+)\s*$", re.MULTILINE)


class UnknownQuery(KeyError):
    """A named query that no ``.sql`` file defines."""


def parse_named_blocks(text: str, prefix: str) -> dict[str, str]:
    """Split one file into ``{prefix.name: sql}``; text before the first name is ignored."""
    blocks: dict[str, str] = {}
    matches = list(_NAME.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[match.end() : end].strip()
        name = f"{prefix}.{match.group('name')}"
        if name in blocks:
            raise ValueError(f"query {name} is defined twice")
        blocks[name] = body
    return blocks


@cache
def _all_queries() -> dict[str, str]:
    queries: dict[str, str] = {}
    for path in sorted(QUERIES_DIR.glob("*.sql")):
        queries.update(parse_named_blocks(path.read_text(encoding="utf-8"), path.stem))
    return queries


def query(name: str) -> str:
    """The SQL of a named block, e.g. ``query("outbox.append_one")``."""
    try:
        return _all_queries()[name]
    except KeyError:
        raise UnknownQuery(name) from None


@cache
def queue_query(name: str, queue: str) -> str:
    """A block of ``queue.sql`` for one pgmq queue: ``{queue_table}`` becomes its table
    ``pgmq.q_<queue>``, quoted as an identifier (pgmq's own naming, which lowercases), and
    ``{next_visible}`` and ``{nothing_taken}`` the blocks of those names (the reads' shared
    parts)."""
    table = pgsql.Identifier("pgmq", f"q_{queue}".lower())
    next_visible = pgsql.SQL(query("queue.next_visible")).format(queue_table=table)
    nothing_taken = pgsql.SQL(query("queue.nothing_taken"))
    return (
        pgsql.SQL(query(f"queue.{name}"))
        .format(queue_table=table, next_visible=next_visible, nothing_taken=nothing_taken)
        .as_string()
    )
