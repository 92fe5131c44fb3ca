"""The admin console: one server-rendered page plus its script and stylesheet.

``router`` serves ``GET /admin/console`` (the page, which needs no key) and
``GET /admin/console/static/{name}`` (its assets). Everything the page shows
comes from the admin routes, called from the browser with the admin key in
the ``X-API-Key`` header; the key lives in ``sessionStorage`` only, never in
a URL or a cookie. Nothing is loaded from outside the service, so the console
works offline.

The page is sent with a Content-Security-Policy that allows scripts from this
origin only: even a catalog string that slipped past the script's
text-only rendering could not run.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_FILES", "router"]

# The full fairness report is shown in a sandboxed iframe (srcdoc), which
# inherits this policy: its own <style> blocks and inline plots (data: URLs)
# must render, its scripts never run.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-src 'self' blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
STATIC_FILES: Final = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
_PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/admin/console", tags=["console"], include_in_schema=False)


@cache
def _asset(folder: str, name: str) -> bytes:
    return resources.files(__package__).joinpath(folder, name).read_bytes()


@router.get("", response_class=HTMLResponse)
def console_page() -> HTMLResponse:
    """The console page (public: it holds no data until the admin signs in)."""
    return HTMLResponse(_asset("templates", "console.html"), headers=_PAGE_HEADERS)


@router.get("/static/{name}")
def console_static(name: str) -> Response:
    """One of the console's own assets; anything else is a 404."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise HTTPException(
            status_code=404,
            detail=f"the console has no asset {name!r}; it serves {', '.join(sorted(STATIC_FILES))}",
        )
    return Response(
        _asset("static", name),
        media_type=media_type,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )
