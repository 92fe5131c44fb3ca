"""Fairness audits: run now (role ``admin``), and the nightly schedule."""

from __future__ import annotations

import asyncio
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from api import audit_log, fairness_bridge
from api.auth import Principal
from api.deps import AdminDep, JobsDep, StateDep, StoreDep
from api.errors import ApiProblem
from api.logs import get_logger

router = APIRouter(prefix="/admin/audits", tags=["admin: audits"])


class JobCreated(BaseModel):
    job_id: str


def start_audit(state: Any, jobs: Any, *, principal: Principal | None, job_id: str | None = None,
                reason: str = "manual") -> str:
    """Queue an audit of the loaded model; returns the job id (``job_id`` makes it once-only)."""
    run_audit = fairness_bridge.run_audit()
    loaded = state.current
    if loaded is None:
        raise ApiProblem(503, "No model loaded", "no model is loaded: train one before auditing it", slug="no-model")
    job_id = jobs.create("audit", {"reason": reason, "model_version": loaded.version}, job_id=job_id)

    def run(update: Any) -> dict[str, Any]:
        lock = fairness_bridge.audit_lock()
        guard = lock(state.store, name="audit", ttl_seconds=3 * 3600) if lock is not None else nullcontext(True)
        with guard as acquired:
            if not acquired:
                raise RuntimeError("another process is running an audit (lease 'audit' held); try again later")
            result = run_audit(state.store, state.home, model=loaded.model)
        audit_log.record(state.store, principal=principal, action="audit.run", target=f"report:{result.report_id}",
                         detail={"job_id": job_id, "reason": reason,
                                 "status": (result.report or {}).get("status")})
        return {"report_id": result.report_id, "status": (result.report or {}).get("status")}

    jobs.submit(job_id, run)
    return job_id


@router.post("", response_model=JobCreated, status_code=status.HTTP_202_ACCEPTED)
def run_audit_now(state: StateDep, store: StoreDep, jobs: JobsDep, admin: AdminDep) -> dict[str, str]:
    """Audit the loaded model now, in the background; poll GET /admin/jobs/{id} for the report id."""
    if jobs.running("audit"):
        raise ApiProblem(409, "Conflict", "an audit is already queued or running; wait for it", slug="job-running")
    job_id = start_audit(state, jobs, principal=admin)
    return {"job_id": job_id}


def next_run(audit_time: str, now: datetime) -> datetime:
    hh, mm = (int(x) for x in audit_time.split(":"))
    at = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    return at if at > now else at + timedelta(days=1)


async def nightly_audits(state: Any, jobs: Any, audit_time: str) -> None:
    """Sleep until ``audit_time`` (UTC) every day and queue an audit, once across all workers:
    the job id is the date, and the ``jobs`` primary key lets only the first worker create it."""
    log = get_logger()
    while True:
        now = datetime.now(UTC).replace(tzinfo=None)
        at = next_run(audit_time, now)
        await asyncio.sleep((at - now).total_seconds())
        job_id = f"audit-nightly-{at:%Y%m%d}"
        try:
            await asyncio.to_thread(start_audit, state, jobs, principal=None, job_id=job_id, reason="nightly")
            log.info("nightly audit queued", extra={"job_id": job_id})
        except IntegrityError:
            log.info("nightly audit already queued by another worker", extra={"job_id": job_id})
        except Exception as exc:  # keep the schedule alive whatever one night does
            log.error("nightly audit not started", extra={"job_id": job_id, "error": repr(exc)})
        await asyncio.sleep(1.0)
