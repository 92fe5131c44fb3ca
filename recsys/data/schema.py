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

# -- service, audit and admin state (migration 0002) -----------------------------------
# Owned by: thresholds/fairness_reports/audit_outcomes -> fairness; api_keys,
# admin_audit_log, jobs, job_locks -> api. Customer rows appear only by pseudonym.

# Versioned serving policy + audit thresholds. A change (or a rollback) appends
# a new version; the highest version is in force.
thresholds = Table(
    "thresholds",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("created_at", DateTime, nullable=False),
    Column("actor", String(64), nullable=False),  # api key id, "cli" or "system"
    Column("settings", JSON, nullable=False),
    Column("note", Text, nullable=True),
)

fairness_reports = Table(
    "fairness_reports",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", DateTime, nullable=False),
    Column("model_version", String(128), nullable=True),
    Column("status", String(16), nullable=False),  # pass | warn | fail
    Column("cohort_size", Integer, nullable=False),
    Column("thresholds_version", Integer, nullable=True),
    Column("report", JSON, nullable=False),  # the full JSON report
    Column("html_path", Text, nullable=True),
    Index("ix_fairness_reports_created_at", "created_at"),
)

# Per-customer outcomes behind a stored report (erasure deletes a customer's rows).
audit_outcomes = Table(
    "audit_outcomes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "report_id",
        String(64),
        ForeignKey("fairness_reports.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("customer_key", String(64), nullable=False),
    Column("outcomes", JSON, nullable=False),
    Index("ix_audit_outcomes_report_id", "report_id"),
    Index("ix_audit_outcomes_customer_key", "customer_key"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(200), nullable=True),
    Column("role", String(16), nullable=False),  # admin | privacy | reader
    Column("key_hash", String(128), nullable=False),  # never the key itself
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime, nullable=True),
    Column("last_used_at", DateTime, nullable=True),
)

admin_audit_log = Table(
    "admin_audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("key_id", String(32), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(256), nullable=True),  # never a raw customer id
    Column("detail", JSON, nullable=False),
    Index("ix_admin_audit_log_at", "at"),
)

# Background jobs (training, audits) with their status, for the status routes.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # queued | running | succeeded | failed
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime, nullable=True),
    Column("finished_at", DateTime, nullable=True),
    Column("detail", JSON, nullable=False),
    Column("error", Text, nullable=True),
)

# Named leases so a job runs once even with several workers or processes.
job_locks = Table(
    "job_locks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("acquired_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
)
