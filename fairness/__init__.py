"""The fairness audit: groups, per-customer outcomes, Fairlearn statistics with
bootstrap intervals, thresholds and status, the report, mitigation sweep.

Imports nothing from ``explain`` or ``api``; reason types come in through an
optional callable. Heavy modules load on first use of these names.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuditConfig",
    "AuditResult",
    "ReportRepository",
    "ThresholdRepository",
    "ThresholdSettings",
    "audit_frames",
    "audit_lock",
    "erase_customer",
    "preview",
    "run_audit",
]

_WHERE = {
    "AuditConfig": "fairness.audit",
    "audit_frames": "fairness.audit",
    "AuditResult": "fairness.job",
    "audit_lock": "fairness.job",
    "run_audit": "fairness.job",
    "ReportRepository": "fairness.store",
    "erase_customer": "fairness.store",
    "ThresholdRepository": "fairness.thresholds",
    "ThresholdSettings": "fairness.thresholds",
    "preview": "fairness.tradeoff",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'fairness' has no attribute {name!r}")
