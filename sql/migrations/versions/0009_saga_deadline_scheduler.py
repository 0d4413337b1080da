"""Saga deadlines fired by a scheduler in the workers, not by a delayed message per saga.

Revision ID: 0009_saga_deadline_scheduler
Revises: 0008_saga_deadline_reuse
Create Date: 2026-11-21
"""

from sql.migrate import run_sql_file

revision = "0009_saga_deadline_scheduler"
down_revision = "0008_saga_deadline_reuse"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0009_saga_deadline_scheduler.up.sql")


def downgrade() -> None:
    run_sql_file("0009_saga_deadline_scheduler.down.sql")
