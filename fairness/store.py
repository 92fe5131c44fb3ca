"""Stored fairness reports: the ``fairness_reports`` and ``audit_outcomes`` tables.

A report row carries the full JSON report; its per-customer outcomes (by
pseudonym, never a raw id) sit in ``audit_outcomes``, one row per customer,
so an erasure request can remove them. The HTML page lives on disk under
``home/reports`` and the row records its path.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import delete, func, insert, select

from fairness.errors import UNKNOWN_REPORT, ReportNotFoundError
from recsys.data import schema
from recsys.data.store import Store

_BATCH = 5000


def _created(report: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(report["created_at"].replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")


class ReportRepository:
    """Read and write stored reports (SQLite or PostgreSQL)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def save(self, report: dict[str, Any], *, html_path: Path | None, outcomes: Iterable[dict[str, Any]] = ()) -> str:
        """Store ``report`` and its outcome rows (``customer_key`` + values) in one transaction."""
        t = schema.fairness_reports
        o = schema.audit_outcomes
        with self.store.transaction() as conn:
            conn.execute(
                insert(t).values(
                    id=report["id"], created_at=_created(report), model_version=report.get("model_version"),
                    status=report["status"], cohort_size=int(report["cohort_size"]),
                    thresholds_version=report.get("thresholds_version"), report=report,
                    html_path=str(html_path) if html_path else None,
                )
            )
            batch: list[dict[str, Any]] = []
            for row in outcomes:
                key = row["customer_key"]
                batch.append({"report_id": report["id"], "customer_key": key,
                              "outcomes": {k: v for k, v in row.items() if k != "customer_key"}})
                if len(batch) >= _BATCH:
                    conn.execute(insert(o), batch)
                    batch = []
            if batch:
                conn.execute(insert(o), batch)
        return str(report["id"])

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first: ``{"id","created_at","model_version","status","cohort_size","thresholds_version"}``."""
        t = schema.fairness_reports
        q = select(t.c.id, t.c.created_at, t.c.model_version, t.c.status, t.c.cohort_size, t.c.thresholds_version)
        with self.store.engine.connect() as conn:
            rows = conn.execute(q.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)).fetchall()
        return [
            {"id": r.id, "created_at": _iso(r.created_at), "model_version": r.model_version, "status": r.status,
             "cohort_size": r.cohort_size, "thresholds_version": r.thresholds_version}
            for r in rows
        ]

    def latest(self, *, with_sweep: bool = False) -> dict[str, Any] | None:
        """The newest report's JSON, or None when none is stored.

        ``with_sweep``: the newest report that carries a trade-off sweep (what
        the admin preview needs), looking back over the last 50 reports.
        """
        for row in self.list(limit=50 if with_sweep else 1):
            report = self.get(row["id"])
            if not with_sweep or report.get("sweep"):
                return report
        return None

    def get(self, report_id: str) -> dict[str, Any]:
        t = schema.fairness_reports
        with self.store.engine.connect() as conn:
            report = conn.execute(select(t.c.report).where(t.c.id == report_id)).scalar_one_or_none()
        if report is None:
            raise ReportNotFoundError(UNKNOWN_REPORT.format(report_id=report_id))
        return dict(report)

    def html_path(self, report_id: str) -> Path | None:
        """Where the report's page is on disk (None if it was not written or is gone)."""
        t = schema.fairness_reports
        with self.store.engine.connect() as conn:
            row = conn.execute(select(t.c.id, t.c.html_path).where(t.c.id == report_id)).first()
        if row is None:
            raise ReportNotFoundError(UNKNOWN_REPORT.format(report_id=report_id))
        if not row.html_path or not Path(row.html_path).is_file():
            return None
        return Path(row.html_path)

    def history(self, limit: int = 30) -> list[dict[str, Any]]:
        """The newest ``limit`` full reports (for the trend), oldest first."""
        t = schema.fairness_reports
        q = select(t.c.report).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        with self.store.engine.connect() as conn:
            reports = conn.execute(q).scalars().all()
        return [dict(r) for r in reversed(reports)]

    def outcomes(self, report_id: str) -> pl.DataFrame:
        """The stored per-customer outcomes of a report: customer_key + one column per value."""
        o = schema.audit_outcomes
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(o.c.customer_key, o.c.outcomes).where(o.c.report_id == report_id).order_by(o.c.id)
            ).fetchall()
        return pl.DataFrame([{"customer_key": r.customer_key, **r.outcomes} for r in rows])

    def count_outcomes(self, customer_key: str) -> int:
        o = schema.audit_outcomes
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(o).where(o.c.customer_key == customer_key)).scalar_one())


def erase_customer(store: Store, home: Path, customer_key: str) -> dict[str, int]:
    """Delete a customer's audit outcomes from the database and from outcome files under ``home/reports``.

    Returns ``{"audit_outcomes": rows deleted, "outcome_files": files rewritten,
    "outcome_file_rows": rows removed from them}``. Reports themselves hold
    only group aggregates, never a customer's row.
    """
    o = schema.audit_outcomes
    with store.transaction() as conn:
        deleted = conn.execute(delete(o).where(o.c.customer_key == customer_key)).rowcount or 0
    files = rows = 0
    reports_dir = Path(home) / "reports"
    if reports_dir.is_dir():
        for path in sorted(reports_dir.rglob("*.parquet")):
            frame = pl.read_parquet(path)
            column = "customer_key" if "customer_key" in frame.columns else "customer_id" if "customer_id" in frame.columns else None
            if column is None:
                continue
            keep = frame.filter(pl.col(column) != customer_key)
            if keep.height != frame.height:
                tmp = path.with_suffix(".parquet.tmp")
                keep.write_parquet(tmp)
                tmp.replace(path)
                files += 1
                rows += frame.height - keep.height
    return {"audit_outcomes": int(deleted), "outcome_files": files, "outcome_file_rows": rows}
