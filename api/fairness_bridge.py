"""Where the service finds the fairness package's pieces (imported lazily, by name).

The fairness package is built alongside the service; a missing piece turns its
routes into a clear 503 instead of breaking the app.
"""

from __future__ import annotations

import importlib
from typing import Any

from api.errors import FeatureUnavailable


def _find(name: str, modules: tuple[str, ...]) -> Any | None:
    for module in modules:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(mod, name):
            return getattr(mod, name)
    return None


def report_repository(store: Any) -> Any:
    cls = _find("ReportRepository", ("fairness", "fairness.store", "fairness.reports", "fairness.report"))
    if cls is None:
        raise FeatureUnavailable("fairness reports (fairness.ReportRepository)")
    return cls(store)


def maybe_report_repository(store: Any) -> Any | None:
    cls = _find("ReportRepository", ("fairness", "fairness.store", "fairness.reports", "fairness.report"))
    return None if cls is None else cls(store)


def run_audit() -> Any:
    fn = _find("run_audit", ("fairness.job", "fairness"))
    if fn is None:
        raise FeatureUnavailable("the fairness audit (fairness.job.run_audit)")
    return fn


def audit_lock() -> Any | None:
    return _find("audit_lock", ("fairness.job", "fairness"))


def preview() -> Any:
    fn = _find("preview", ("fairness", "fairness.preview", "fairness.sweep", "fairness.tradeoff"))
    if fn is None or not callable(fn):
        raise FeatureUnavailable("the threshold preview (fairness.preview)")
    return fn


def thresholds() -> Any:
    try:
        return importlib.import_module("fairness.thresholds")
    except ImportError as exc:
        raise FeatureUnavailable("thresholds (fairness.thresholds)") from exc
