"""Fairness audits: run now (role ``admin``), and the nightly schedule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, status
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from api import audit_log
from api.auth import Principal
from api.deps import AdminDep, AuditConfigDep, JobsDep, SettingsDep, StateDep, default_audit_config
from api.errors import ApiProblem
from api.jobs import JobRunner, throttled_progress
from api.logs import get_logger
from api.settings import Settings
from api.state import ServingState

if TYPE_CHECKING:
    from fairness.audit import AuditConfig

router = APIRouter(prefix="/admin/audits", tags=["admin: audits"])


class JobCreated(BaseModel):
    job_id: str


def start_audit(state: ServingState, jobs: JobRunner, *, config: AuditConfig, without_content: bool, principal: Principal | None,
                job_id: str | None = None, reason: str = "manual") -> str:
    """Queue an audit; returns the job id (an explicit ``job_id`` makes it once-only).

    The audit trains its own model on the data before its cutoff with the
    active bundle's configuration (the serving model has seen the held-out
    period, so it cannot be judged on it); ``model_version`` in the report is
    the serving model's. It holds the ``audit`` lease in ``job_locks``.
    """
    from fairness.job import run_audit

    loaded = state.current
    job_id = jobs.create("audit", {"reason": reason, "model_version": loaded.version if loaded else None},
                         job_id=job_id)

    def run(update: Any) -> dict[str, Any]:
        progress = throttled_progress(update)

        result = run_audit(state.store, state.home, config=config, without_content=without_content,
                           progress=progress)
        outcome = result.report.get("status")
        audit_log.record(state.store, principal=principal, action="audit.run", target=f"report:{result.report_id}",
                         detail={"job_id": job_id, "reason": reason, "status": outcome})
        return {"report_id": result.report_id, "status": outcome}

    jobs.submit(job_id, run)
    return job_id


@router.post("", response_model=JobCreated, status_code=status.HTTP_202_ACCEPTED)
def run_audit_now(
    state: StateDep, settings: SettingsDep, jobs: JobsDep, admin: AdminDep, config: AuditConfigDep
) -> dict[str, str]:
    """Run the fairness audit now, in the background; poll GET /admin/jobs/{id} for the report id."""
    if jobs.running("audit"):
        raise ApiProblem(409, "Conflict", "an audit is already queued or running; wait for it", slug="job-running")
    job_id = start_audit(state, jobs, config=config, without_content=not settings.train_content, principal=admin)
    return {"job_id": job_id}


def next_run(audit_time: str, now: datetime) -> datetime:
    hh, mm = (int(x) for x in audit_time.split(":"))
    at = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    return at if at > now else at + timedelta(days=1)


async def nightly_audits(state: ServingState, jobs: JobRunner, settings: Settings) -> None:
    """Sleep until ``audit_time`` (UTC) every day and queue an audit, once across all workers:
    the job id is the date, and the ``jobs`` primary key lets only the first worker create it."""
    log = get_logger()
    while True:
        now = datetime.now(UTC).replace(tzinfo=None)
        at = next_run(settings.audit_time, now)
        await asyncio.sleep((at - now).total_seconds())
        job_id = f"audit-nightly-{at:%Y%m%d}"
        try:
            await asyncio.to_thread(
                start_audit, state, jobs, config=default_audit_config(),
                without_content=not settings.train_content, principal=None, job_id=job_id, reason="nightly",
            )
            log.info("nightly audit queued", extra={"job_id": job_id})
        except IntegrityError:
            log.info("nightly audit already queued by another worker", extra={"job_id": job_id})
        except Exception as exc:  # keep the schedule alive whatever one night does
            log.error("nightly audit not started", extra={"job_id": job_id, "error": repr(exc)})
        await asyncio.sleep(1.0)
