"""A normalised text picture of the schemas our migrations own (pgmq excluded: it has its own
versioning), so a test can keep migrations and ``reference_schema.txt`` in step.

Catalog queries rather than pg_dump: the output must not depend on the client's or the server's
major version (the embedded server is 16, the CI service may be 15).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

REFERENCE_FILE = Path(__file__).parent / "reference_schema.txt"
_OWNED = """
    SELECT n.oid FROM pg_namespace n
    WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT IN ('information_schema', 'public', 'pgmq')
"""

_SECTIONS: list[tuple[str, str]] = [
    (
        "schema",
        f"SELECT nspname FROM pg_namespace WHERE oid IN ({_OWNED}) ORDER BY 1",
    ),
    (
        "column",
        f"""
        SELECT n.nspname || '.' || c.relname || '.' || a.attname || ' ' ||
               format_type(a.atttypid, a.atttypmod) ||
               CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END ||
               CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END ||
               coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.oid IN ({_OWNED}) AND c.relkind IN ('r', 'p', 'v', 'm')
          AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY n.nspname, c.relname, a.attnum
        """,
    ),
    (
        "constraint",
        f"""
        SELECT n.nspname || '.' || c.relname || ' ' || con.conname || ' ' ||
               pg_get_constraintdef(con.oid)
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.oid IN ({_OWNED})
        ORDER BY 1
        """,
    ),
    (
        "index",
        f"""
        SELECT pg_get_indexdef(i.indexrelid)
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE c.relnamespace IN ({_OWNED})
        ORDER BY 1
        """,
    ),
    (
        "view",
        f"""
        SELECT n.nspname || '.' || c.relname || ': ' || regexp_replace(pg_get_viewdef(c.oid), '\\s+', ' ', 'g')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.oid IN ({_OWNED}) AND c.relkind IN ('v', 'm')
        ORDER BY 1
        """,
    ),
    (
        "function",
        f"""
        SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.oid IN ({_OWNED})
        ORDER BY 1
        """,
    ),
    (
        "trigger",
        f"""
        SELECT n.nspname || '.' || c.relname || ' ' || t.tgname
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.oid IN ({_OWNED}) AND NOT t.tgisinternal
        ORDER BY 1
        """,
    ),
]


def snapshot(conn: psycopg.Connection[Any]) -> str:
    lines: list[str] = []
    for title, stmt in _SECTIONS:
        lines.append(f"## {title}")
        lines.extend(str(row[0]) for row in conn.execute(stmt).fetchall())
    return "\n".join(lines) + "\n"
