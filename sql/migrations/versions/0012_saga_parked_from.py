"""A saga waiting on a dead-lettered command is parked visibly, and resumes when it is re-queued.

Revision ID: 0012_saga_parked_from
Revises: 0011_expect
Create Date: 2026-12-03
"""

from sql.migrate import run_sql_file

revision = "0012_saga_parked_from"
down_revision = "0011_expect"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0012_saga_parked_from.up.sql")


def downgrade() -> None:
    run_sql_file("0012_saga_parked_from.down.sql")
