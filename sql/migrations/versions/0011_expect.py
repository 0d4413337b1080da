"""outbox.expect: a one-statement write fails (SQLSTATE YH001) when what it read has changed.

Revision ID: 0011_expect
Revises: 0010_relay_claim_index
Create Date: 2026-12-02
"""

from sql.migrate import run_sql_file

revision = "0011_expect"
down_revision = "0010_relay_claim_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0011_expect.up.sql")


def downgrade() -> None:
    run_sql_file("0011_expect.down.sql")
