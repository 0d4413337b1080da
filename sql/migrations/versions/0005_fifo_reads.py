"""Ordered queues: read the heads of FIFO groups through an index, not a scan of the queue.

Revision ID: 0005_fifo_reads
Revises: 0004_dining_read_models
Create Date: 2026-11-20
"""

from sql.migrate import run_sql_file

revision = "0005_fifo_reads"
down_revision = "0004_dining_read_models"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0005_fifo_reads.up.sql")


def downgrade() -> None:
    run_sql_file("0005_fifo_reads.down.sql")
