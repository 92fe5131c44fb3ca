"""Item side: each brand/provider group's share of exposure against its share of relevant items.

Exposure share of group ``p``: the share of all served slots (over the audit
cohort's top-k lists) that hold an item of ``p``. Relevant share: the share of
all held-out relevant (customer, item) pairs whose item is in ``p`` (items
the model's vocabulary lacks are left out: no model could show them). A ratio
below 1 means the group is shown less than customers went on to want it;
under the four-fifths rule a ratio below ``ratio_min`` is judged. Intervals:
the same customer bootstrap as the customer side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fairness.outcomes import ItemInfo
from fairness.stats import _interval, _num, judge, resampled_group_means
from fairness.thresholds import AuditSettings


def item_exposure(
    recs: npt.NDArray[np.int64],
    relevance: sp.csr_matrix,
    items: ItemInfo,
    *,
    settings: AuditSettings,
    seed: int = 42,
) -> dict[str, Any] | None:
    """The item-side section of the report, or None when the catalog has no provider column."""
    if items.provider_column is None or len(recs) == 0:
        return None
    names, codes = np.unique(items.provider.astype(str), return_inverse=True)
    P = len(names)
    n = recs.shape[0]
    shown = recs >= 0
    rows = np.repeat(np.arange(n), shown.sum(axis=1))
    E = np.zeros((n, P))
    np.add.at(E, (rows, codes[recs[shown]]), 1.0)
    rel = relevance.tocoo()
    known = rel.col < len(codes)
    R = np.zeros((n, P))
    np.add.at(R, (rel.row[known], codes[rel.col[known]]), 1.0)
    X = np.concatenate([E, R], axis=1)
    boot = resampled_group_means(X, resamples=settings.resamples, seed=(seed, 9999))
    alpha = 1.0 - settings.confidence

    def shares(M: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        total = M.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return M / total

    exp_point, rel_point = shares(E.sum(axis=0)), shares(R.sum(axis=0))
    exp_boot, rel_boot = shares(boot[:, :P]), shares(boot[:, P:])
    out: dict[str, Any] = {}
    for p, name in enumerate(names):
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = exp_point[p] / rel_point[p] if rel_point[p] > 0 else np.nan
            samples = exp_boot[:, p] / rel_boot[:, p]
        ci = _interval(float(ratio), samples[np.isfinite(samples)], alpha)
        status = (
            judge(ci.value, ci.low, ci.high, limit=settings.ratio_min, kind="min")
            if np.isfinite(ratio) and np.isfinite(ci.low)
            else "too_small"
        )
        out[str(name)] = {
            "exposure_share": _num(exp_point[p]),
            "relevant_share": _num(rel_point[p]),
            "ratio": _num(ratio),
            "ratio_ci": [_num(ci.low), _num(ci.high)],
            "status": status,
        }
    return {"column": items.provider_column, "groups": out, "ratio_min": settings.ratio_min}
