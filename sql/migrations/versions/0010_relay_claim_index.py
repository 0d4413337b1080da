"""The global_position index holds relayed rows only, so the relay claim cannot pick it.

Revision ID: 0010_relay_claim_index
Revises: 0009_saga_deadline_scheduler
Create Date: 2026-11-21
"""

from sql.migrate import run_sql_file

revision = "0010_relay_claim_index"
down_revision = "0009_saga_deadline_scheduler"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0010_relay_claim_index.up.sql")


def downgrade() -> None:
    run_sql_file("0010_relay_claim_index.down.sql")
