"""Payments: the circuit breakers' shared state (``ops.circuit_breaker``).

Revision ID: 0003_payments
Revises: 0002_dining
Create Date: 2026-11-24
"""

from sql.migrate import run_sql_file

revision = "0003_payments"
down_revision = "0002_dining"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0003_payments.up.sql")


def downgrade() -> None:
    run_sql_file("0003_payments.down.sql")
