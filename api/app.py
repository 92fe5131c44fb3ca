"""The FastAPI application factory.

``create_app(settings)`` builds the app; nothing is loaded at import. The
``lifespan`` opens the store, loads the active model bundle, starts the
per-worker sync loop (new active model, thresholds, events, erasures, consent)
and the nightly audit schedule, and stops them on shutdown.

Run it with ``clearshelf serve`` or ``uvicorn --factory api.app:create_app``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api import metrics
from api.auth import KeyVerifier
from api.errors import ERROR_RESPONSES, install_error_handlers
from api.jobs import JobRunner
from api.logs import configure_logging, get_logger
from api.middleware import ServiceMiddleware, TokenBuckets
from api.result_cache import ResultCache
from api.settings import Settings, get_settings
from api.state import ServingState

DESCRIPTION = """\
Product recommendations with a true reason for every item, SHAP attributions
that add up to the score, and a fairness audit.

Send API keys in the `X-API-Key` header (`clearshelf keys create --role admin|privacy|reader`).
Errors are `application/problem+json`.
"""


async def _sync_loop(state: ServingState, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(state.sync_once)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    log = get_logger()
    from recsys.data.pseudonym import Pseudonymiser
    from recsys.data.store import Store

    settings.ensure_home()
    store = Store.open(settings.resolved_database_url)
    state = ServingState(
        store=store, home=settings.resolved_home, pseudonymiser=Pseudonymiser(settings.pseudonym_key_bytes()),
        results=ResultCache(
            max_entries=settings.result_cache_entries if settings.result_cache else 0,
            max_bytes=settings.result_cache_max_bytes,
            ttl_seconds=settings.result_cache_ttl_seconds,
        ),
        model_threads=settings.model_threads,
    )
    state.refresh_consent()
    await asyncio.to_thread(state.load_active)
    state.refresh_policy()
    app.state.serving = state
    app.state.verifier = KeyVerifier(store)
    app.state.jobs = JobRunner(store)
    tasks = [asyncio.create_task(_sync_loop(state, settings.sync_interval_seconds), name="clearshelf-sync")]
    if settings.audit_time:
        from api.routers.audits import nightly_audits

        tasks.append(asyncio.create_task(nightly_audits(state, app.state.jobs, settings),
                                         name="clearshelf-nightly-audit"))
    log.info(
        "service started",
        extra={"pid": os.getpid(), "model_version": state.current.version if state.current else None,
               "database": store.safe_url, "thresholds_version": state.policy.version},
    )
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        app.state.jobs.shutdown()
        store.dispose()
        metrics.mark_worker_dead(settings.prometheus_multiproc_dir, os.getpid())
        log.info("service stopped", extra={"pid": os.getpid()})


def create_app(settings: Settings | None = None) -> FastAPI:
    """The clearshelf HTTP service for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title="clearshelf",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(
        ServiceMiddleware,
        max_body_bytes=settings.max_body_bytes,
        limiter=TokenBuckets(settings.rate_limit_per_second, settings.rate_limit_burst),
    )
    from api.routers import (
        audit_log,
        audits,
        customers,
        events,
        fairness_reports,
        items,
        models,
        ops,
        recommendations,
        thresholds,
    )

    routers: list[Any] = [
        recommendations.router, events.router, items.router, customers.router, thresholds.router,
        models.router, audits.router, fairness_reports.router, audit_log.router, ops.router,
    ]
    for router in routers:
        app.include_router(router, responses=ERROR_RESPONSES)
    from api.console import router as console_router  # the admin console (its own package)

    app.include_router(console_router)
    return app
