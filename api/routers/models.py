"""Model bundles and training (role ``admin``): list, activate (hot swap), train, job status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from pydantic import BaseModel

from api import audit_log
from api.deps import AdminDep, JobsDep, SettingsDep, StateDep, StoreDep, TrainConfigDep
from api.errors import ApiProblem
from api.jobs import throttled_progress
from api.state import FORGET_JOB

router = APIRouter(prefix="/admin", tags=["admin: models"])

Version = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]


class ModelOut(BaseModel):
    version: str
    created_at: str | None
    active: bool
    loaded: bool
    metrics: dict[str, Any]
    data: dict[str, Any]


class ModelsOut(BaseModel):
    active: str | None
    loaded: str | None
    models: list[ModelOut]


class JobCreated(BaseModel):
    job_id: str


class JobOut(BaseModel):
    id: str
    kind: str
    status: str
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    detail: dict[str, Any]
    error: str | None


@router.get("/models", response_model=ModelsOut)
def list_models(state: StateDep, _admin: AdminDep) -> dict[str, Any]:
    """Every stored bundle, newest first; ``active`` is the ACTIVE file, ``loaded`` what this worker serves."""
    loaded = state.current.version if state.current else None
    return {
        "active": state.registry.active_version(),
        "loaded": loaded,
        "models": [
            {"version": b.version, "created_at": b.manifest.get("created_at"), "active": b.active,
             "loaded": b.version == loaded, "metrics": b.manifest.get("metrics") or {},
             "data": b.manifest.get("data") or {}}
            for b in state.registry.versions()
        ],
    }


@router.post("/models/{version}/activate", response_model=ModelsOut)
def activate_model(state: StateDep, store: StoreDep, admin: AdminDep, version: Version) -> dict[str, Any]:
    """Make ``version`` active (a rollback is activating an older one). This worker swaps at once,
    without failing requests in flight; the others within the sync interval."""
    old = state.registry.active_version()
    state.registry.activate(version)
    state.load_active(version)
    audit_log.record(store, principal=admin, action="model.activate", target=f"model:{version}",
                     detail={"old": old, "new": version})
    return list_models(state, admin)


@router.post("/train", response_model=JobCreated, status_code=status.HTTP_202_ACCEPTED)
def train(
    state: StateDep, store: StoreDep, settings: SettingsDep, jobs: JobsDep, admin: AdminDep, config: TrainConfigDep
) -> dict[str, str]:
    """Train on the store in the background; the new bundle is activated when done. Poll GET /admin/jobs/{id}."""
    if jobs.running("train"):
        raise ApiProblem(409, "Conflict", "a training job is already queued or running; wait for it",
                         slug="job-running")
    job_id = jobs.create("train", {"requested_by": admin.key_id})

    def run(update: Any) -> dict[str, Any]:
        from api.training import train_bundle
        from fairness.job import audit_lock

        with audit_lock(store, name="train", ttl_seconds=6 * 3600) as acquired:
            if not acquired:
                raise RuntimeError("another process is training (lease 'train' held)")
            progress = throttled_progress(update)

            info = train_bundle(store, state.home, config=config, keep=settings.train_keep, progress=progress)
        state.load_active(info.version)
        audit_log.record(store, principal=admin, action="model.train", target=f"model:{info.version}",
                         detail={"job_id": job_id})
        return {"version": info.version, "train_seconds": info.manifest["metrics"]["train_seconds"]}

    jobs.submit(job_id, run)
    audit_log.record(store, principal=admin, action="job.train", target=f"job:{job_id}", detail={})
    return {"job_id": job_id}


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(jobs: JobsDep, _admin: AdminDep, job_id: Annotated[str, Path(min_length=1, max_length=64)]) -> dict[str, Any]:
    """A background job's status: queued, running, succeeded or failed (with the error)."""
    job = jobs.get(job_id)
    if job is not None and job["kind"] == FORGET_JOB:
        job = None  # erasure notices between workers carry a pseudonym: not for reading
    if job is None:
        raise ApiProblem(404, "Not found", f"no job '{job_id}'", slug="unknown-job")
    return job
