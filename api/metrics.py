"""Prometheus metrics of the service.

With several workers (``clearshelf serve --workers N``) the server sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start, every worker writes its
samples there and ``/metrics`` (answered by any worker) aggregates all of them:
counters and histograms are summed over workers; the per-worker gauges carry a
``pid`` label. The cold-start share and the last audit status are computed at
scrape time from the summed counters and from the store, so they are the same
whichever worker answers.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    REGISTRY as DEFAULT_REGISTRY,
)
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # the *_created series double the exposition for no use here

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

REQUEST_SECONDS = Histogram(
    "clearshelf_http_request_duration_seconds",
    "Time to answer a request, by route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
REQUESTS = Counter(
    "clearshelf_http_requests", "Requests answered, by route template and status.", ["method", "route", "status"]
)
RECOMMENDATIONS = Counter(
    "clearshelf_recommendations_served",
    "Recommendation lists served, by customer status (known, cold_start, not_personalised).",
    ["customer_status"],
)
ADDITIVITY_FAILURES = Counter(
    "clearshelf_explanation_additivity_failures",
    "Explained items whose SHAP contributions did not add up to the ranker score.",
)
RESULT_CACHE_HITS = Counter(
    "clearshelf_recommendation_cache_hits",
    "GET /recommendations answers served from the worker's result cache.",
)
RESULT_CACHE_MISSES = Counter(
    "clearshelf_recommendation_cache_misses",
    "GET /recommendations answers computed because the result cache had none (counted only with the cache on).",
)
RESULT_CACHE_BYTES = Gauge(
    "clearshelf_recommendation_cache_bytes",
    "Bytes of answers this worker's result cache keeps (bounded by CLEARSHELF_RESULT_CACHE_MAX_BYTES).",
    multiprocess_mode="liveall",
)
EVENTS_INGESTED = Counter("clearshelf_events_ingested", "Events accepted by POST /events (new, not duplicates).")
MODEL_SWAPS = Counter("clearshelf_model_swaps", "Times a worker replaced its in-memory model.")
MODEL_LOADED = Gauge(
    "clearshelf_model_loaded_timestamp_seconds",
    "When this worker loaded its current model (unix time).",
    multiprocess_mode="liveall",
)
SYNC_ERRORS = Counter("clearshelf_sync_errors", "Failed periodic checks (active model, thresholds, events).")

STATUSES = ("known", "cold_start", "not_personalised")
AUDIT_STATUS_CODES = {"pass": 0, "warn": 1, "fail": 2}


def registry_for_scrape(multiproc_dir: str | None) -> Any:
    if not multiproc_dir:
        return DEFAULT_REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiproc_dir)
    return registry


def render(multiproc_dir: str | None, *, last_audit: dict[str, Any] | None) -> bytes:
    """The exposition text: every metric above plus the derived gauges."""
    registry = registry_for_scrape(multiproc_dir)
    text = generate_latest(registry)
    served = {
        s: registry.get_sample_value("clearshelf_recommendations_served_total", {"customer_status": s}) or 0.0
        for s in STATUSES
    }
    total = sum(served.values())
    lines = [
        "# HELP clearshelf_cold_start_share Share of recommendation lists served to cold-start customers.",
        "# TYPE clearshelf_cold_start_share gauge",
        f"clearshelf_cold_start_share {served['cold_start'] / total if total else 0.0}",
        "# HELP clearshelf_last_audit_status Status of the latest stored fairness report "
        "(0 pass, 1 warn, 2 fail, -1 none).",
        "# TYPE clearshelf_last_audit_status gauge",
    ]
    if last_audit is None:
        lines.append("clearshelf_last_audit_status -1")
    else:
        code = AUDIT_STATUS_CODES.get(str(last_audit.get("status")), -1)
        lines.append(f'clearshelf_last_audit_status{{status="{last_audit.get("status")}"}} {code}')
        ts = last_audit.get("created_at_unix")
        if ts is not None:
            lines += [
                "# HELP clearshelf_last_audit_timestamp_seconds When the latest fairness report was made.",
                "# TYPE clearshelf_last_audit_timestamp_seconds gauge",
                f"clearshelf_last_audit_timestamp_seconds {ts}",
            ]
    return text + ("\n".join(lines) + "\n").encode()


def mark_worker_dead(multiproc_dir: str | None, pid: int) -> None:
    if multiproc_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, path=multiproc_dir)
