"""Background jobs of the service (training, audits), tracked in the ``jobs`` table.

Each worker runs its jobs one at a time on its own thread; the status route
reads the table, so any worker can answer for a job another one runs.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from api.logs import get_logger
from recsys.data import schema
from recsys.data.store import Store


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def throttled_progress(update: Callable[[dict[str, Any]], None], *, every: float = 2.0) -> Callable[[str, int, int], None]:
    """A ``(stage, done, total)`` progress callback that writes the job row at most every ``every`` s."""
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] > every or done == total:
            last[0] = now
            update({"stage": stage, "done": done, "total": total})

    return progress


class JobRunner:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clearshelf-job")
        self._futures: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()

    def create(self, kind: str, detail: dict[str, Any] | None = None, *, job_id: str | None = None) -> str:
        """Insert a queued job row; ``job_id`` given explicitly makes creation idempotent (primary key)."""
        job_id = job_id or f"{kind}-{uuid.uuid4().hex[:16]}"
        with self.store.transaction() as conn:
            conn.execute(
                schema.jobs.insert().values(
                    id=job_id, kind=kind, status="queued", created_at=_now(), detail=detail or {}, error=None
                )
            )
        return job_id

    def submit(self, job_id: str, fn: Callable[[Callable[[dict[str, Any]], None]], dict[str, Any]]) -> None:
        """Run ``fn(update_detail)`` in the background; its return value becomes the job's detail."""

        def run() -> None:
            self._set(job_id, status="running", started_at=_now())
            try:
                result = fn(lambda d: self._merge_detail(job_id, d))
            except Exception as exc:
                get_logger().error("job failed", extra={"job_id": job_id, "error": repr(exc)})
                self._set(job_id, status="failed", finished_at=_now(), error=f"{exc.__class__.__name__}: {exc}")
                get_logger().debug(traceback.format_exc())
                return
            self._merge_detail(job_id, result or {})
            self._set(job_id, status="succeeded", finished_at=_now())

        with self._lock:
            self._futures[job_id] = self._pool.submit(run)

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        future = self._futures.get(job_id)
        if future is not None:
            future.result(timeout=timeout)

    def running(self, kind: str) -> bool:
        j = schema.jobs
        with self.store.engine.connect() as conn:
            return conn.execute(
                select(j.c.id).where(j.c.kind == kind, j.c.status.in_(("queued", "running"))).limit(1)
            ).first() is not None

    def get(self, job_id: str) -> dict[str, Any] | None:
        j = schema.jobs
        with self.store.engine.connect() as conn:
            row = conn.execute(select(j).where(j.c.id == job_id)).mappings().first()
        if row is None:
            return None
        out = dict(row)
        for k in ("created_at", "started_at", "finished_at"):
            if out[k] is not None:
                out[k] = out[k].replace(tzinfo=UTC).isoformat()
        return out

    def _set(self, job_id: str, **values: Any) -> None:
        with self.store.transaction() as conn:
            conn.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(**values))

    def _merge_detail(self, job_id: str, detail: dict[str, Any]) -> None:
        j = schema.jobs
        with self.store.transaction() as conn:
            old = conn.execute(select(j.c.detail).where(j.c.id == job_id)).scalar_one_or_none() or {}
            conn.execute(update(j).where(j.c.id == job_id).values(detail={**old, **detail}))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
