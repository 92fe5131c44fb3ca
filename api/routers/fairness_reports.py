"""Stored fairness reports (role ``admin``): list, latest, one; JSON, or HTML when asked for."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from api.deps import AdminDep, StoreDep
from api.errors import ApiProblem
from fairness.store import ReportRepository

router = APIRouter(prefix="/fairness/reports", tags=["fairness reports"])

Format = Annotated[Literal["json", "html"] | None, Query(description="html for the rendered report")]


def _wants_html(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


def _answer(request: Request, store: Any, report: dict[str, Any] | None, report_id: str | None, fmt: str | None) -> Any:
    if report is None:
        raise ApiProblem(404, "Not found", "no fairness report is stored yet: run an audit (POST /admin/audits)"
                         if report_id is None else f"no fairness report with id '{report_id}'", slug="unknown-report")
    if not _wants_html(request, fmt):
        return JSONResponse(report)
    rid = report_id or str(report["id"])
    path = ReportRepository(store).html_path(rid)
    if path is None or not FsPath(path).is_file():
        raise ApiProblem(404, "Not found", f"report '{rid}' has no HTML rendering stored; ask for JSON",
                         slug="no-html")
    return HTMLResponse(FsPath(path).read_text(encoding="utf-8"))


@router.get("")
def list_reports(store: StoreDep, _admin: AdminDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    """Newest first."""
    return {"reports": ReportRepository(store).list(limit)}


@router.get("/latest", response_model=None)
def latest_report(request: Request, store: StoreDep, _admin: AdminDep, format: Format = None) -> Any:
    """The newest report (JSON; HTML with ``Accept: text/html`` or ``?format=html``)."""
    return _answer(request, store, ReportRepository(store).latest(), None, format)


@router.get("/{report_id}", response_model=None)
def get_report(
    request: Request, store: StoreDep, _admin: AdminDep,
    report_id: Annotated[str, Path(min_length=1, max_length=64)], format: Format = None,
) -> Any:
    """One report by id (JSON; HTML with ``Accept: text/html`` or ``?format=html``)."""
    repo = ReportRepository(store)
    try:
        report = repo.get(report_id)
    except LookupError:
        report = None
    return _answer(request, store, report, report_id, format)
