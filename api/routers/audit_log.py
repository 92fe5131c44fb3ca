"""``GET /admin/audit-log``: who changed what and when (role ``admin``)."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api import audit_log
from api.deps import AdminDep, StoreDep

router = APIRouter(prefix="/admin/audit-log", tags=["admin: audit log"])


class Entry(BaseModel):
    id: int
    at: str
    key_id: str | None
    action: str
    target: str | None
    detail: dict[str, Any]


class EntriesOut(BaseModel):
    entries: list[Entry]


@router.get("", response_model=EntriesOut)
def get_audit_log(
    store: StoreDep,
    _admin: AdminDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, description="Page back: entries older than this id.")] = None,
    action: Annotated[str | None, Query(max_length=64, description="Only this action, e.g. thresholds.set")] = None,
) -> dict[str, Any]:
    """Newest first."""
    rows = audit_log.entries(store, limit=limit, before_id=before_id, action=action)
    return {"entries": [{**r, "at": r["at"].replace(tzinfo=UTC).isoformat()} for r in rows]}
