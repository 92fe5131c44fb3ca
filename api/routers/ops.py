"""Operations: liveness, readiness, Prometheus metrics (no key needed)."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api import metrics
from api.deps import SettingsDep, StateDep
from api.errors import PROBLEM_JSON, TYPE_PREFIX
from api.state import ServingState

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, Any]:
    """The process answers."""
    return {"status": "ok", "pid": os.getpid()}


@router.get("/readyz", response_model=None)
def readyz(state: StateDep) -> Any:
    """Ready when a model is loaded and the database answers (503 otherwise, saying which)."""
    loaded = state.current
    db_ok = state.store.ping()
    checks = {
        "model": {"ok": loaded is not None, "version": loaded.version if loaded else None},
        "database": {"ok": db_ok, "dialect": state.store.dialect},
        "sync": {"last": state.last_sync, "error": state.last_sync_error},
        "thresholds_version": state.policy.version,
        "pid": os.getpid(),
    }
    if loaded is not None and db_ok:
        return {"status": "ready", **checks}
    missing = [n for n, ok in (("no model is loaded (train one)", loaded is not None),
                               ("the database does not answer", db_ok)) if not ok]
    return JSONResponse(
        {"type": TYPE_PREFIX + "not-ready", "title": "Not ready", "status": 503,
         "detail": "; ".join(missing), **checks},
        status_code=503, media_type=PROBLEM_JSON,
    )


def _last_audit(state: ServingState) -> dict[str, Any] | None:
    from fairness.store import ReportRepository

    try:  # the summary row only: a full report is megabytes of JSON, read on every scrape
        rows = ReportRepository(state.store).list(1)
    except Exception:
        return None
    if not rows:
        return None
    latest = rows[0]
    created = latest.get("created_at")
    ts = None
    if isinstance(created, str):
        from datetime import UTC, datetime

        try:
            dt = datetime.fromisoformat(created)
            ts = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
        except ValueError:
            ts = None
    return {"status": latest.get("status"), "created_at_unix": ts}


@router.get("/metrics", response_class=Response)
def metrics_route(state: StateDep, settings: SettingsDep) -> Response:
    """Prometheus exposition format (aggregated over all workers)."""
    body = metrics.render(settings.prometheus_multiproc_dir, last_audit=_last_audit(state))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
