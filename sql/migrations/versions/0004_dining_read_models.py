"""Dining read models: customer center (my reservations, my timeline) and recommendation views.

The live tables are created from the same named SQL blocks their projectors use to create a
rebuild twin (``sql/queries/dining_*.sql``), so a rebuilt table is the migrated table again.

Revision ID: 0004_dining_read_models
Revises: 0003_payments
Create Date: 2026-11-24
"""

from psycopg import sql as pgsql

from sql import query
from sql.migrate import run_sql, run_sql_file

revision = "0004_dining_read_models"
down_revision = "0003_payments"
branch_labels = None
depends_on = None

# (named block, schema, table): the live tables of projections.dining's projectors.
_TABLES = [
    ("dining_customer_center.create_reservation_table", "customer_center", "reservation"),
    ("dining_customer_center.create_timeline_table", "customer_center", "timeline"),
    ("dining_recommendation_view.create_restaurant_rating_table", "recommendation", "restaurant_rating"),
    ("dining_recommendation_view.create_entry_activity_table", "recommendation", "entry_activity"),
]  # fmt: skip


def upgrade() -> None:
    for block, schema, table in _TABLES:
        ddl = pgsql.SQL(query(block)).format(table=pgsql.Identifier(schema, table))
        run_sql(ddl.as_string())


def downgrade() -> None:
    run_sql_file("0004_dining_read_models.down.sql")
