"""Sagas reuse one deadline message from step to step (deadline name and firing time).

Revision ID: 0008_saga_deadline_reuse
Revises: 0007_direct_queue_statements
Create Date: 2026-11-21
"""

from sql.migrate import run_sql_file

revision = "0008_saga_deadline_reuse"
down_revision = "0007_direct_queue_statements"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0008_saga_deadline_reuse.up.sql")


def downgrade() -> None:
    run_sql_file("0008_saga_deadline_reuse.down.sql")
