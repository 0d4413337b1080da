"""Broker and relay use statements of their own on pgmq queue tables: two helpers go.

Revision ID: 0007_direct_queue_statements
Revises: 0006_saga_deadline_message
Create Date: 2026-11-21
"""

from sql.migrate import run_sql_file

revision = "0007_direct_queue_statements"
down_revision = "0006_saga_deadline_message"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0007_direct_queue_statements.up.sql")


def downgrade() -> None:
    run_sql_file("0007_direct_queue_statements.down.sql")
