"""Errors of the HTTP service and their ``application/problem+json`` rendering.

Every error answer has the RFC 9457 shape ``{"type", "title", "status",
"detail"}`` plus, where it helps, ``errors`` (one entry per invalid field or
row) and ``request_id``. Only this package maps domain errors to status codes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from fairness.errors import (
    AuditInputError,
    AuditLockedError,
    FairnessError,
    ReportNotFoundError,
    ThresholdError,
)
from recsys.errors import (
    BundleError,
    ClearshelfError,
    DataValidationError,
    NotFittedError,
    StoreError,
)

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:clearshelf:problem:"


class FieldProblem(BaseModel):
    field: str | None = None
    message: str
    row: int | None = None
    index: int | None = None


class ProblemOut(BaseModel):
    """The body of every error answer (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    request_id: str | None = None
    errors: list[FieldProblem] | None = None


def _problem_doc(description: str) -> dict[str, Any]:
    return {"description": description, "model": ProblemOut,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemOut"}}}}


# Documented on every route (the OpenAPI schema and /docs show the real error shape).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _problem_doc("No API key, or an unknown or revoked one"),
    403: _problem_doc("The key's role may not call this route"),
    422: _problem_doc("Invalid parameters or body; `errors` names each field"),
    429: _problem_doc("Rate limit exceeded; see the Retry-After header"),
}


class ApiProblem(ClearshelfError):
    """An error answer: ``status``, a short ``title`` and a ``detail`` a person can act on."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        slug: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.slug = slug or title.lower().replace(" ", "-")
        self.headers = headers or {}
        self.extra = extra or {}


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str = "about-blank",
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if extra:
        body.update(extra)
    if request is not None:
        rid = request.scope.get("state", {}).get("request_id")  # set by ServiceMiddleware (request.state reads the same dict)
        if rid:
            body["request_id"] = rid
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "header", "body", "cookie"):
        where, rest = parts[0], parts[1:]
        return f"{where} {'.'.join(rest)}" if rest else where
    return ".".join(parts)


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = err.get("loc", ())
        out.append({"field": _field_name(loc), "message": str(err.get("msg", "invalid value"))})
    return out


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for this type only
        raise exc
    errors = validation_errors(exc)
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:10]) or "invalid request"
    return problem_response(
        422, "Invalid request", detail, slug="validation", request=request, extra={"errors": errors}
    )


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}; see /docs for the allowed methods"
    titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorised", 403: "Forbidden"}
    return problem_response(
        exc.status_code,
        titles.get(exc.status_code, "HTTP error"),
        detail,
        slug=f"http-{exc.status_code}",
        request=request,
        headers=dict(exc.headers or {}),
    )


async def _problem_handler(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ApiProblem):
        raise exc
    return problem_response(
        exc.status, exc.title, exc.detail, slug=exc.slug, request=request, headers=exc.headers, extra=exc.extra
    )


_FAIRNESS_STATUS: dict[type[FairnessError], tuple[int, str]] = {
    AuditLockedError: (409, "Audit running"),
    ReportNotFoundError: (404, "Not found"),
    AuditInputError: (409, "Audit input problem"),
    ThresholdError: (422, "Invalid thresholds"),
}


async def _domain_handler(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DataValidationError):
        errors = [
            {"row": p.row, "index": None if p.row is None else p.row - 1, "field": p.column, "message": p.message}
            for p in exc.problems
        ]
        return problem_response(
            422, "Invalid data", str(exc).splitlines()[0], slug="invalid-data", request=request,
            extra={"errors": errors, "total": exc.total},
        )
    if type(exc) in _FAIRNESS_STATUS:
        status, title = _FAIRNESS_STATUS[type(exc)]
        slug = type(exc).__name__.removesuffix("Error").lower()
        return problem_response(status, title, str(exc), slug=slug, request=request)
    if isinstance(exc, BundleError):
        status = 404 if str(exc).startswith("no model bundle") else 409
        return problem_response(status, "Model bundle problem", str(exc), slug="bundle", request=request)
    if isinstance(exc, StoreError):
        return problem_response(503, "Database unavailable", str(exc), slug="store", request=request)
    if isinstance(exc, NotFittedError):
        return problem_response(503, "No model loaded", str(exc), slug="no-model", request=request)
    return problem_response(400, "Bad request", str(exc), slug="bad-request", request=request)


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    from api.logs import get_logger

    rid = request.scope.get("state", {}).get("request_id")
    get_logger().error(
        "unhandled error", extra={"request_id": rid, "error": exc.__class__.__name__}, exc_info=exc
    )
    return problem_response(
        500, "Internal error",
        "the server failed to answer this request; it has been logged with its request id",
        slug="internal", request=request,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(ApiProblem, _problem_handler)
    app.add_exception_handler(ClearshelfError, _domain_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
