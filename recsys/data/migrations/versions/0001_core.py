"""Core tables: items, customers, attribute definitions, events.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("item_id", sa.String(128), primary_key=True),
        sa.Column("title", sa.Text, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("category", sa.String(200), nullable=True),
        sa.Column("brand", sa.String(200), nullable=True),
        sa.Column("price", sa.Float, nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("item_id", name="pk_items"),
    )
    op.create_table(
        "customers",
        sa.Column("customer_key", sa.String(64), nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("consent_personalisation", sa.Boolean, nullable=False),
        sa.Column("consent_updated_at", sa.DateTime, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("customer_key", name="pk_customers"),
    )
    op.create_table(
        "attribute_definitions",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("sensitive", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_attribute_definitions"),
    )
    op.create_table(
        "events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(128), nullable=True),
        sa.Column("customer_key", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(128), nullable=False),
        sa.Column("event_type", sa.String(16), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(
            ["customer_key"],
            ["customers.customer_key"],
            name="fk_events_customer_key_customers",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["item_id"], ["items.item_id"], name="fk_events_item_id_items"),
    )
    # a unique index rather than a table constraint, so a bulk import can drop
    # and rebuild it (rebuilding sorted is far faster than random inserts)
    op.create_index("uq_events_event_id", "events", ["event_id"], unique=True)
    op.create_index("ix_events_customer_key", "events", ["customer_key"])
    op.create_index("ix_events_item_id", "events", ["item_id"])
    op.create_index("ix_events_ts", "events", ["ts"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("attribute_definitions")
    op.drop_table("customers")
    op.drop_table("items")
