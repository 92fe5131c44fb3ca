"""What proposed thresholds would cost, read off a report's sweep (the admin preview)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fairness.errors import AuditInputError
from fairness.thresholds import ThresholdSettings

NO_SWEEP = (
    "report {report_id} has no trade-off sweep; run `clearshelf audit --sweep` (or the nightly audit with "
    "sweep on) to get one"
)


def _at(sweep: list[dict[str, Any]], strength: float) -> dict[str, Any]:
    xs = np.array([p["strength"] for p in sweep], dtype=float)
    order = np.argsort(xs)
    xs = xs[order]
    point: dict[str, Any] = {"strength": float(strength)}
    for key in ("ndcg", "max_gap", "coverage"):
        ys = np.array([np.nan if sweep[i][key] is None else sweep[i][key] for i in order], dtype=float)
        ok = np.isfinite(ys)
        point[key] = round(float(np.interp(strength, xs[ok], ys[ok])), 6) if ok.any() else None
    point["interpolated"] = bool(not np.isclose(xs, strength).any())
    return point


def preview(report: dict[str, Any], settings: ThresholdSettings) -> dict[str, Any]:
    """Expected overall NDCG, largest group gap and coverage under ``settings``, and under the report's own.

    Linear interpolation between the sweep's strengths (clipped to its
    range). ``min_score`` is not part of the sweep: a proposed floor other
    than the report's is flagged in ``notes``.
    """
    sweep = report.get("sweep")
    if not sweep:
        raise AuditInputError(NO_SWEEP.format(report_id=report.get("id")))
    current_strength = float(report.get("policy", {}).get("rerank_strength", 0.0))
    proposed_strength = float(settings.policy.rerank_strength)
    notes = []
    if settings.policy.min_score != report.get("policy", {}).get("min_score"):
        notes.append("min_score differs from the audited one; its effect is not in the sweep (run a new audit)")
    return {
        "report_id": report.get("id"),
        "attribute": report.get("sweep_attribute"),
        "metric": report.get("sweep_metric"),
        "sweep": sweep,
        "current": _at(sweep, current_strength),
        "proposed": _at(sweep, proposed_strength),
        "notes": notes,
    }
