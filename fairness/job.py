"""The audit job on the configured store: run, store (DB + files), and a DB lease so it runs once.

``run_audit`` is what ``clearshelf audit`` and the service's nightly
scheduler call. It takes the ``audit`` lease in ``job_locks`` itself (the
lease is re-entrant for the same thread, so a caller may also hold it around
the call) and raises :class:`~fairness.errors.AuditLockedError` if another
process holds it.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from fairness.audit import AuditConfig, AuditRun, ReasonFactory, audit_frames
from fairness.errors import AuditLockedError
from fairness.outcomes import Progress
from fairness.report import render_html
from fairness.store import ReportRepository
from fairness.thresholds import ThresholdRepository
from recsys.data import schema
from recsys.data.store import Store
from recsys.recommender import Recommender, RecommenderConfig
from recsys.training import flatten_catalog

_PROCESS = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
_depth: dict[tuple[str, str, str], int] = {}
_depth_guard = threading.Lock()


def _holder() -> str:
    return f"{_PROCESS}:{threading.get_ident()}"[:128]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@contextmanager
def audit_lock(store: Store, name: str = "audit", ttl_seconds: float = 3600.0) -> Iterator[bool]:
    """Hold the named lease while the block runs; yields False (and holds nothing) if another holder has it.

    A lease past its ``expires_at`` (a crashed holder) is taken over. The
    same thread may nest the lock; it is released when the outermost block ends.
    """
    t = schema.job_locks
    holder = _holder()
    slot = (store.safe_url, name, holder)
    with _depth_guard:
        nested = _depth.get(slot, 0) > 0
        if nested:
            _depth[slot] += 1
    if nested:
        try:
            yield True
        finally:
            with _depth_guard:
                _depth[slot] -= 1
        return
    now = _now()
    with store.transaction() as conn:
        conn.execute(delete(t).where((t.c.name == name) & (t.c.expires_at < now)))
    try:
        with store.transaction() as conn:
            conn.execute(
                insert(t).values(name=name, holder=holder, acquired_at=now, expires_at=now + timedelta(seconds=ttl_seconds))
            )
    except IntegrityError:
        yield False
        return
    with _depth_guard:
        _depth[slot] = 1
    try:
        yield True
    finally:
        with _depth_guard:
            _depth.pop(slot, None)
        with store.transaction() as conn:
            conn.execute(delete(t).where((t.c.name == name) & (t.c.holder == holder)))


def lock_holder(store: Store, name: str = "audit") -> dict[str, Any] | None:
    """Who holds the lease now (None if free or expired)."""
    t = schema.job_locks
    with store.engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.name == name)).first()
    if row is None or row.expires_at < _now():
        return None
    return {"holder": row.holder, "acquired_at": row.acquired_at, "expires_at": row.expires_at}


def _json_value(v: Any) -> Any:
    # PostgreSQL's JSON type rejects NaN; an undefined outcome is stored as null
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@dataclass(frozen=True)
class AuditResult:
    report_id: str
    report: dict[str, Any]
    json_path: Path
    html_path: Path
    outcomes_path: Path | None = None
    model: Recommender | None = field(default=None, repr=False, compare=False)  # the audit model, for reuse


def write_outcomes(run: AuditRun, path: Path, *, id_column: str = "customer_id") -> Path:
    """The per-customer table as Parquet: ``customer_id``, one column per group attribute, one per metric."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = run.outcomes
    if id_column != "customer_id":
        frame = frame.rename({"customer_id": id_column})
    frame.write_parquet(path)
    return path


def write_files(report: dict[str, Any], html: str, directory: Path) -> tuple[Path, Path]:
    import json

    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{report['id']}.json"
    html_path = directory / f"{report['id']}.html"
    json_path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    html_path.write_text(html, encoding="utf-8")
    return json_path, html_path


def store_frames(store: Store) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(events of consenting customers, flattened catalog, customers with attributes), ids as pseudonyms."""
    events = store.events_frame(consented_only=True).rename({"customer_key": "customer_id"})
    catalog = flatten_catalog(store.items_frame())
    customers = store.customers_frame().rename({"customer_key": "customer_id"})
    return events, catalog, customers


def audit_recommender(rc: RecommenderConfig, home: Path, *, without_content: bool) -> RecommenderConfig:
    """The audit model's configuration: without the text-embedding source, or with its cache under ``home/embeddings``."""
    if without_content:
        return replace(rc, content=None)
    if rc.content is not None and rc.content.cache_dir is None:
        return replace(rc, content=replace(rc.content, cache_dir=str(Path(home) / "embeddings")))
    return rc


def run_audit(
    store: Store,
    home: Path,
    *,
    model: Recommender | None = None,
    config: AuditConfig = AuditConfig(),
    reasons: ReasonFactory | None = None,
    progress: Progress | None = None,
    export_outcomes: Path | None = None,
    now: datetime | None = None,
    lock: bool = True,
    without_content: bool = False,
) -> AuditResult:
    """Audit the store's data now and store the report (DB row, JSON + HTML under ``home/reports``).

    The audit model is trained on the store's events up to the cutoff with
    the active bundle's configuration (or ``config.recommender``, or the
    defaults); ``model`` skips that (it must not have seen events after the
    cutoff). ``without_content`` drops the text-embedding source from the
    audit model (faster). ``model_version`` in the report is the active serving model.
    Sensitive attributes default to those declared in the store.
    """
    if not lock:
        return _run(store, home, model=model, config=config, reasons=reasons, progress=progress,
                    export_outcomes=export_outcomes, now=now, without_content=without_content)
    with audit_lock(store) as acquired:
        if not acquired:
            held = lock_holder(store)
            raise AuditLockedError(
                "another audit is running (lock 'audit' held by "
                f"{held['holder'] if held else 'another process'}); wait for it to finish or retry later"
            )
        return _run(store, home, model=model, config=config, reasons=reasons, progress=progress,
                    export_outcomes=export_outcomes, now=now, without_content=without_content)


def _run(
    store: Store, home: Path, *, model: Recommender | None, config: AuditConfig, reasons: ReasonFactory | None,
    progress: Progress | None, export_outcomes: Path | None, now: datetime | None, without_content: bool,
) -> AuditResult:
    from recsys.bundle import ModelRegistry
    from recsys.errors import BundleError

    home = Path(home)
    registry = ModelRegistry(home / "models")
    serving_version = registry.active_version() if (home / "models").is_dir() else None
    if config.recommender is None and model is None:
        rc = RecommenderConfig()
        if serving_version is not None:
            with suppress(BundleError):
                rc = registry.load(serving_version)[0].config
        config = replace(config, recommender=rc)
    if config.recommender is not None:
        config = replace(config, recommender=audit_recommender(config.recommender, home, without_content=without_content))
    thresholds = ThresholdRepository(store).current()
    events, catalog, customers = store_frames(store)
    if config.sensitive is None:
        # declared sensitive, and held by at least one customer (a declaration outlives erased data)
        config = replace(config, sensitive=tuple(a for a in store.sensitive_attributes() if a in customers.columns))
    run = audit_frames(
        events, catalog, customers, config=config, thresholds=thresholds, model=model,
        model_version=serving_version, source="store", reasons=reasons, progress=progress, now=now,
    )
    repo = ReportRepository(store)
    history = repo.history(limit=30)
    html = render_html(run.report, history=history)
    json_path, html_path = write_files(run.report, html, home / "reports")
    rows = (
        {"customer_key": r.pop("customer_id"), **{k: _json_value(v) for k, v in r.items()}}
        for r in run.outcomes.iter_rows(named=True)
    )
    repo.save(run.report, html_path=html_path, outcomes=rows)
    out_path = write_outcomes(run, export_outcomes) if export_outcomes is not None else None
    return AuditResult(run.report["id"], run.report, json_path, html_path, out_path, run.model)
