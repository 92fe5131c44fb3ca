"""The service's ASGI middleware: request id, size limit, rate limit, metrics, access log.

Written as plain ASGI (no ``BaseHTTPMiddleware``) because it runs on every
request of the hot path.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import uuid
from typing import Any

from api import metrics
from api.errors import PROBLEM_JSON, TYPE_PREFIX
from api.logs import get_logger

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class TokenBuckets:
    """A token bucket per client identity (per worker process)."""

    def __init__(self, rate: float, burst: int, *, max_clients: int = 50_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, identity: str, now: float | None = None) -> float:
        """0.0 if the request may pass, else the seconds to wait before the next one."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(identity, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            if len(self._buckets) >= self.max_clients and identity not in self._buckets:
                self._buckets.clear()  # bounded memory; a reset only ever lets clients through
            self._buckets[identity] = (tokens - 1.0, now)
            return 0.0
        self._buckets[identity] = (tokens, now)
        return (1.0 - tokens) / self.rate


class BodyTooLarge(Exception):
    pass


def _problem(status: int, title: str, detail: str, slug: str, request_id: str) -> bytes:
    return json.dumps(
        {"type": TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail, "request_id": request_id}
    ).encode()


class ServiceMiddleware:
    def __init__(self, app: Any, *, max_body_bytes: int, limiter: TokenBuckets) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.limiter = limiter
        self.log = get_logger()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        rid_in = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = rid_in if _REQUEST_ID.match(rid_in) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        rid_header = (b"x-request-id", request_id.encode())
        status_holder = [0]
        path = scope.get("path", "")

        async def send_wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], rid_header]
            await send(message)

        async def reject(status: int, title: str, detail: str, slug: str, extra: list[tuple[bytes, bytes]]) -> None:
            body = _problem(status, title, detail, slug, request_id)
            await send_wrapped(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", PROBLEM_JSON.encode()),
                        (b"content-length", str(len(body)).encode()),
                        *extra,
                    ],
                }
            )
            await send_wrapped({"type": "http.response.body", "body": body})

        try:
            if path not in EXEMPT:
                key = headers.get(b"x-api-key")
                if key:
                    identity = "k:" + hashlib.sha256(key).hexdigest()[:16]
                else:
                    client = scope.get("client") or ("?", 0)
                    identity = f"ip:{client[0]}"
                wait = self.limiter.take(identity)
                if wait > 0:
                    retry = max(1, math.ceil(wait))
                    await reject(
                        429, "Too many requests",
                        f"rate limit of {self.limiter.rate:g} requests/s (burst {self.limiter.burst:g}) "
                        f"exceeded; retry after {retry} s",
                        "rate-limited", [(b"retry-after", str(retry).encode())],
                    )
                    return
            length = headers.get(b"content-length")
            if length is not None:
                try:
                    too_big = int(length) > self.max_body_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await reject(
                        413, "Request too large",
                        f"the request body is {int(length):,} bytes; the limit is {self.max_body_bytes:,} bytes "
                        "(send smaller batches)",
                        "too-large", [(b"connection", b"close")],
                    )
                    return
            received = [0]

            async def receive_limited() -> dict[str, Any]:
                message = await receive()
                if message["type"] == "http.request":
                    received[0] += len(message.get("body", b""))
                    if received[0] > self.max_body_bytes:
                        raise BodyTooLarge
                return message

            try:
                await self.app(scope, receive_limited, send_wrapped)
            except BodyTooLarge:
                if status_holder[0] == 0:
                    await reject(
                        413, "Request too large",
                        f"the request body exceeds the limit of {self.max_body_bytes:,} bytes (send smaller batches)",
                        "too-large", [(b"connection", b"close")],
                    )
        finally:
            elapsed = time.perf_counter() - started
            route_obj = scope.get("route")
            route = getattr(route_obj, "path", None) or "unmatched"
            status = status_holder[0] or 500
            method = scope.get("method", "")
            metrics.REQUEST_SECONDS.labels(method, route).observe(elapsed)
            metrics.REQUESTS.labels(method, route, str(status)).inc()
            if path not in EXEMPT or status >= 400:
                state = scope.get("state", {})
                self.log.info(
                    "request",
                    extra={
                        "request_id": request_id, "method": method, "route": route, "status": status,
                        "duration_ms": round(elapsed * 1000, 2), "key_id": state.get("key_id"),
                        "customer": state.get("customer"),
                    },
                )
