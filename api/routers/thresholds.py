"""Serving policy and audit thresholds (role ``admin``): read, change, roll back, preview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from api import audit_log
from api.auth import Principal
from api.deps import AdminDep, StateDep, StoreDep
from api.errors import ApiProblem
from fairness.store import ReportRepository
from fairness.thresholds import ThresholdRepository, ThresholdSettings, ThresholdVersion
from fairness.tradeoff import preview
from recsys.data.store import Store

router = APIRouter(prefix="/admin/thresholds", tags=["admin: thresholds"])


class ThresholdsOut(BaseModel):
    version: int
    created_at: str | None
    actor: str
    note: str | None
    settings: dict[str, Any]


class ThresholdsIn(BaseModel):
    settings: ThresholdSettings
    note: str | None = Field(default=None, max_length=1000)


class RollbackIn(BaseModel):
    to_version: int | None = Field(default=None, ge=0, description="Default: the version before the current one.")


class PreviewIn(BaseModel):
    settings: ThresholdSettings


class HistoryOut(BaseModel):
    versions: list[ThresholdsOut]


def _changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.update(_changes(a, b, f"{prefix}{key}."))
        elif a != b:
            out[f"{prefix}{key}"] = {"old": a, "new": b}
    return out


def _record(store: Store, admin: Principal, action: str, old: ThresholdVersion, new: ThresholdVersion,
            **extra: Any) -> None:
    """One audit-log entry for a new thresholds version: what it replaced and which settings changed."""
    audit_log.record(store, principal=admin, action=action, target=f"thresholds:{new.version}",
                     detail={"old_version": old.version, "new_version": new.version, **extra,
                             "changes": _changes(old.settings.model_dump(mode="json"),
                                                 new.settings.model_dump(mode="json"))})


def _apply(state: StateDep) -> None:
    try:
        state.refresh_policy()  # this worker at once; the others within the sync interval
    except ValueError as exc:
        raise ApiProblem(422, "Invalid request", str(exc), slug="validation") from exc


@router.get("", response_model=ThresholdsOut)
def get_thresholds(store: StoreDep, _admin: AdminDep) -> dict[str, Any]:
    """The version in force (the defaults as version 0 when none was ever set)."""
    return ThresholdRepository(store).current().as_dict()


@router.put("", response_model=ThresholdsOut)
def put_thresholds(
    state: StateDep, store: StoreDep, admin: AdminDep, body: Annotated[ThresholdsIn, Body()]
) -> dict[str, Any]:
    """Store new settings as the next version; in force in every worker within the sync interval."""
    try:
        body.settings.policy.serving_policy()
    except ValueError as exc:
        raise ApiProblem(422, "Invalid request", f"body settings.policy: {exc}", slug="validation") from exc
    repo = ThresholdRepository(store)
    old = repo.current()
    new = repo.set(body.settings, actor=admin.key_id, note=body.note)
    _record(store, admin, "thresholds.set", old, new)
    _apply(state)
    return new.as_dict()


@router.post("/rollback", response_model=ThresholdsOut)
def rollback_thresholds(
    state: StateDep, store: StoreDep, admin: AdminDep, body: Annotated[RollbackIn | None, Body()] = None
) -> dict[str, Any]:
    """Append a new version equal to ``to_version`` (default: the previous one)."""
    repo = ThresholdRepository(store)
    old = repo.current()
    new = repo.rollback(actor=admin.key_id, to_version=body.to_version if body else None)
    _record(store, admin, "thresholds.rollback", old, new,
            restored=body.to_version if body and body.to_version is not None else old.version - 1)
    _apply(state)
    return new.as_dict()


@router.get("/history", response_model=HistoryOut)
def threshold_history(
    store: StoreDep, _admin: AdminDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """Every version, newest first."""
    return {"versions": [v.as_dict() for v in ThresholdRepository(store).history(limit=limit)]}


@router.post("/preview")
def preview_thresholds(store: StoreDep, _admin: AdminDep, body: Annotated[PreviewIn, Body()]) -> dict[str, Any]:
    """Expected overall NDCG, largest group gap and coverage for the proposed settings,
    interpolated on the latest report's trade-off sweep; nothing is applied."""
    latest = ReportRepository(store).latest()
    if latest is None:
        raise ApiProblem(409, "No report", "no fairness report is stored yet: run an audit (POST /admin/audits)",
                         slug="no-report")
    return dict(preview(latest, body.settings))
