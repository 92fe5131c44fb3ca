"""Global SHAP summary of a trained model, saved with each model bundle.

Rows are what the model actually serves: the top ``k`` candidates of a seeded
sample of known customers. Their TreeSHAP values come from the serving path
(``LambdaRanker.contributions``, averaged over seeds); the ``shap`` package
draws them (``shap.Explanation`` + bar and beeswarm plots, matplotlib Agg
backend, nothing shown on screen).

Files written into a bundle by :func:`bundle_files` (the ``extra_files``
callable of ``recsys.training.train_from_store``):

- ``shap_summary.json``: rows, customers, base value, and per feature its
  label, group and mean |SHAP|, largest first;
- ``shap_summary.png``: mean |SHAP| bars next to the beeswarm.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recsys.ranking.features import SPECS

SUMMARY_JSON = "shap_summary.json"
SUMMARY_PNG = "shap_summary.png"


@dataclass(frozen=True, eq=False)
class ShapSummary:
    """SHAP values of served rows: ``values`` (rows, features), ``data`` the feature values."""

    feature_names: tuple[str, ...]
    values: npt.NDArray[np.float64]
    base_values: npt.NDArray[np.float64]
    data: npt.NDArray[np.float32]
    customers: int

    def mean_abs(self) -> dict[str, float]:
        """Mean |SHAP| per feature, largest first (ties: feature order)."""
        m = np.abs(self.values).mean(axis=0) if len(self.values) else np.zeros(len(self.feature_names))
        order = np.lexsort((np.arange(len(m)), -m))
        return {self.feature_names[j]: float(m[j]) for j in order}

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": len(self.values),
            "customers": self.customers,
            "base_value": float(self.base_values[0]) if len(self.base_values) else None,
            "features": [
                {"feature": n, "label": SPECS[n].label if n in SPECS else n,
                 "group": SPECS[n].group if n in SPECS else "other", "mean_abs_shap": v}
                for n, v in self.mean_abs().items()
            ],
        }

    def explanation(self) -> Any:
        """The values as a ``shap.Explanation`` (for shap's plots)."""
        import shap

        return shap.Explanation(
            values=self.values, base_values=self.base_values, data=self.data,
            feature_names=list(self.feature_names),
        )


def shap_summary(model: Any, *, customers: int = 300, k: int = 20, seed: int = 42) -> ShapSummary:
    """TreeSHAP values of the top ``k`` served rows of ``customers`` sampled known customers."""
    inter = model.stage_.interactions
    known = inter.customers.ids[np.diff(inter.matrix.indptr) > 0]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(known, min(customers, len(known)), replace=False) if len(known) else []
    rows = []
    used = 0
    for c in chosen:
        ranked = model.recommend(str(c), k)
        feats = [it.features for it in ranked.items if ranked.status == "known" and it.features.any()]
        if feats:
            rows.append(np.stack(feats))
            used += 1
    names = tuple(model.ranker_.feature_names_)
    if not rows:
        empty = np.zeros((0, len(names)))
        return ShapSummary(names, empty, np.zeros(0), empty.astype(np.float32), 0)
    data = np.concatenate(rows).astype(np.float32)
    contrib = model.ranker_.contributions(data)
    return ShapSummary(names, contrib[:, :-1], contrib[:, -1], data, used)


def summary_png(summary: ShapSummary, *, max_display: int = 12) -> bytes:
    """Bar chart of mean |SHAP| beside the beeswarm, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import shap

    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 6.5))
    try:
        if len(summary.values):
            exp = summary.explanation()
            shap.plots.bar(exp, max_display=max_display, ax=left, show=False)
            shap.plots.beeswarm(exp, max_display=max_display, ax=right, show=False, plot_size=None)
        left.set_title("mean |SHAP| per feature (served top rows)")
        right.set_title(f"SHAP values of {len(summary.values)} rows, {summary.customers} customers")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        return buf.getvalue()
    finally:
        plt.close(fig)


def bundle_files(model: Any, interactions: Any = None, *, customers: int = 300) -> dict[str, bytes]:
    """The summary files for a model bundle (``train_from_store(..., extra_files=bundle_files)``)."""
    summary = shap_summary(model, customers=customers)
    doc = json.dumps(summary.as_dict(), indent=2) + "\n"
    return {SUMMARY_JSON: doc.encode(), SUMMARY_PNG: summary_png(summary)}
