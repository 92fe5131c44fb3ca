"""Service, audit and admin state: thresholds, fairness reports and outcomes,
API keys, the admin audit log, background jobs and job locks.

Revision ID: 0002_service
Revises: 0001_core
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_service"
down_revision = "0001_core"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "thresholds",
        sa.Column("version", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("version", name="pk_thresholds"),
    )
    op.create_table(
        "fairness_reports",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("model_version", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cohort_size", sa.Integer, nullable=False),
        sa.Column("thresholds_version", sa.Integer, nullable=True),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("html_path", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_fairness_reports"),
    )
    op.create_index("ix_fairness_reports_created_at", "fairness_reports", ["created_at"])
    op.create_table(
        "audit_outcomes",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("report_id", sa.String(64), nullable=False),
        sa.Column("customer_key", sa.String(64), nullable=False),
        sa.Column("outcomes", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_outcomes"),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["fairness_reports.id"],
            name="fk_audit_outcomes_report_id_fairness_reports",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_audit_outcomes_report_id", "audit_outcomes", ["report_id"])
    op.create_index("ix_audit_outcomes_customer_key", "audit_outcomes", ["customer_key"])
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
        sa.Column("last_used_at", sa.DateTime, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
    )
    op.create_table(
        "admin_audit_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(256), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_admin_audit_log"),
    )
    op.create_index("ix_admin_audit_log_at", "admin_audit_log", ["at"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=True),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_table(
        "job_locks",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("acquired_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_job_locks"),
    )


def downgrade() -> None:
    op.drop_table("job_locks")
    op.drop_table("jobs")
    op.drop_index("ix_admin_audit_log_at", table_name="admin_audit_log")
    op.drop_table("admin_audit_log")
    op.drop_table("api_keys")
    op.drop_index("ix_audit_outcomes_customer_key", table_name="audit_outcomes")
    op.drop_index("ix_audit_outcomes_report_id", table_name="audit_outcomes")
    op.drop_table("audit_outcomes")
    op.drop_index("ix_fairness_reports_created_at", table_name="fairness_reports")
    op.drop_table("fairness_reports")
    op.drop_table("thresholds")
