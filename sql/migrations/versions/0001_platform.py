"""Platform core: context schemas, event log, subscriptions, sagas, projections, ops, pgmq.

Revision ID: 0001_platform
Revises:
Create Date: 2026-11-20
"""

from sql.migrate import install_pgmq, run_sql_file, uninstall_pgmq

revision = "0001_platform"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    install_pgmq()
    run_sql_file("0001_platform.up.sql")


def downgrade() -> None:
    run_sql_file("0001_platform.down.sql")
    uninstall_pgmq()
