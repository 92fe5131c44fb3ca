"""The relational schema: one ``MetaData`` that Alembic migrations keep in step.

Customer rows carry only a pseudonym (``customer_key``, HMAC-SHA256 of the
external id); raw customer ids are never stored. Timestamps of events are epoch
seconds (UTC) so SQLite and PostgreSQL agree exactly.
"""

from __future__ import annotations

from typing import Final, Literal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

EventType = Literal["view", "cart", "purchase", "rating"]
EVENT_TYPES: Final[tuple[str, ...]] = ("view", "cart", "purchase", "rating")

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

items = Table(
    "items",
    metadata,
    Column("item_id", String(128), primary_key=True),
    Column("title", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("category", String(200), nullable=True),
    Column("brand", String(200), nullable=True),
    Column("price", Float, nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("attributes", JSON, nullable=False, default=dict),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

customers = Table(
    "customers",
    metadata,
    Column("customer_key", String(64), primary_key=True),
    Column("attributes", JSON, nullable=False, default=dict),
    Column("consent_personalisation", Boolean, nullable=False, default=True),
    Column("consent_updated_at", DateTime, nullable=True),
    Column("created_at", DateTime, nullable=False),
)

# Which customer attribute names are sensitive (audit-only: never model
# features, never in reason text). One row per attribute name ever imported.
attribute_definitions = Table(
    "attribute_definitions",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("sensitive", Boolean, nullable=False, default=False),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=True),
    Column(
        "customer_key",
        String(64),
        ForeignKey("customers.customer_key", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("item_id", String(128), ForeignKey("items.item_id"), nullable=False),
    Column("event_type", String(16), nullable=False),
    Column("ts", BigInteger, nullable=True),
    Column("value", Float, nullable=True),
    Index("uq_events_event_id", "event_id", unique=True),
    Index("ix_events_customer_key", "customer_key"),
    Index("ix_events_item_id", "item_id"),
    Index("ix_events_ts", "ts"),
)
