"""A restaurant owner lists the reservations of one day.

Revision ID: 0013_restaurant_day_index
Revises: 0012_saga_parked_from
Create Date: 2026-12-03
"""

from sql.migrate import run_sql_file

revision = "0013_restaurant_day_index"
down_revision = "0012_saga_parked_from"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0013_restaurant_day_index.up.sql")


def downgrade() -> None:
    run_sql_file("0013_restaurant_day_index.down.sql")
