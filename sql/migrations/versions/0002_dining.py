"""Dining write side: the restaurant, reservation, deposit and recommendation contexts' tables.

Revision ID: 0002_dining
Revises: 0001_platform
Create Date: 2026-11-24
"""

from sql.migrate import run_sql_file

revision = "0002_dining"
down_revision = "0001_platform"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0002_dining.up.sql")


def downgrade() -> None:
    run_sql_file("0002_dining.down.sql")
