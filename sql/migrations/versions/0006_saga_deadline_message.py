"""Sagas remember the pgmq message of their pending deadline, to delete it when they move on.

Revision ID: 0006_saga_deadline_message
Revises: 0005_fifo_reads
Create Date: 2026-11-21
"""

from sql.migrate import run_sql_file

revision = "0006_saga_deadline_message"
down_revision = "0005_fifo_reads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0006_saga_deadline_message.up.sql")


def downgrade() -> None:
    run_sql_file("0006_saga_deadline_message.down.sql")
