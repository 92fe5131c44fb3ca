"""The faithfulness check: remove the cited history item, re-score, the item must fall.

For a reason that cites a history item X ("Because you bought X"), the
customer's history row loses X, every candidate the customer was served from
is re-scored as if that were the history (``Recommender.score_items``: ALS
folded in, co-purchase / EASE / content recomputed from the row, features
rebuilt, the ranker re-run), and the check passes when the item's score
falls *and* its rank among those candidates gets worse. The baseline is the
served list itself (``score_items`` without a history gives exactly the
served scores), so nothing but X differs between the two rankings.

:func:`evaluate_explanations` runs this over a sample of customers and sums
it up for ``clearshelf evaluate --explanations``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from explain.errors import ERR_NO_HOOK, ExplainError
from explain.explainer import Explainer, ItemExplanation


@dataclass(frozen=True)
class CounterfactualResult:
    """The outcome of removing the cited history item from one item's reason.

    Ranks are 1-based among the customer's ``pool_size`` served candidates
    (ties broken by item index, as the recommender does).
    """

    item_id: str
    reason_type: str
    cited_item_id: str
    score_before: float
    score_after: float
    rank_before: int
    rank_after: int
    pool_size: int

    @property
    def score_fell(self) -> bool:
        return self.score_after < self.score_before

    @property
    def rank_drop(self) -> int:
        """How many places the item lost (negative: it rose)."""
        return self.rank_after - self.rank_before

    @property
    def passed(self) -> bool:
        return self.score_fell and self.rank_after > self.rank_before

    def as_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id, "reason_type": self.reason_type, "cited_item_id": self.cited_item_id,
            "score_before": self.score_before, "score_after": self.score_after,
            "rank_before": self.rank_before, "rank_after": self.rank_after, "pool_size": self.pool_size,
            "passed": self.passed,
        }


def _ranks(items: npt.NDArray[np.int64], scores: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """1-based rank of each pool entry by descending score, ties by item index."""
    order = np.lexsort((items, -scores))
    ranks = np.empty(len(items), np.int64)
    ranks[order] = np.arange(1, len(items) + 1)
    return ranks


def check_list(
    model: Any,
    ranked: Any,
    explanations: Sequence[ItemExplanation],
    *,
    filters: Any = None,
    now: float | None = None,
) -> list[CounterfactualResult]:
    """Counterfactual results for every history-citing reason of one ranked list.

    ``filters`` must be the ones ``ranked`` was made with (default
    ``Filters()``). The pool is everything :meth:`recommend` would rank for
    the customer under those filters.
    """
    for hook in ("score_items", "history_row"):
        if not hasattr(model, hook):
            raise ExplainError(ERR_NO_HOOK.format(name=hook))
    from recsys.recommender import Filters

    filters = filters if filters is not None else Filters()
    todo = [e for e in explanations if e.reason.cited is not None and e.attributions is not None]
    if not todo:
        return []
    n_items = len(model.stage_.interactions.items)
    full = model.recommend(ranked.customer, n_items, filters=filters, now=now)
    pool = np.asarray([it.index for it in full.items], dtype=np.int64)
    before = np.asarray([it.score for it in full.items], dtype=np.float64)
    rank_before = _ranks(pool, before)
    where = {int(i): p for p, i in enumerate(pool.tolist())}
    row = model.history_row(ranked.customer)
    out = []
    for e in todo:
        cited = e.reason.cited
        p = where.get(e.index)
        if cited is None or p is None:
            continue
        without = row.copy()
        without.data[without.indices == cited.item] = 0
        without.eliminate_zeros()
        after = model.score_items(ranked.customer, pool, history=without, filters=filters, now=now)
        rank_after = _ranks(pool, after)
        out.append(
            CounterfactualResult(
                item_id=e.item_id, reason_type=e.reason.type, cited_item_id=cited.item_id,
                score_before=float(before[p]), score_after=float(after[p]),
                rank_before=int(rank_before[p]), rank_after=int(rank_after[p]), pool_size=len(pool),
            )
        )
    return out


def summarise(
    results: Sequence[CounterfactualResult],
    explanations: Sequence[ItemExplanation],
    explainer: Explainer,
    *,
    customers: int,
) -> dict[str, Any]:
    """The ``"explanations"`` block of the evaluation results JSON."""
    drops = np.asarray([r.rank_drop for r in results], dtype=np.float64)
    passed = sum(r.passed for r in results)
    by_type: dict[str, dict[str, Any]] = {}
    for r in results:
        t = by_type.setdefault(r.reason_type, {"checked": 0, "passed": 0})
        t["checked"] += 1
        t["passed"] += int(r.passed)
    for t in by_type.values():
        t["rate"] = t["passed"] / t["checked"]
    counters = explainer.counters()
    reason_types = Counter(e.reason.type for e in explanations)
    attributed = [e.attributions for e in explanations if e.attributions is not None]

    def q(p: float) -> float | None:
        return float(np.percentile(drops, p)) if len(drops) else None

    return {
        "faithfulness_rate": passed / len(results) if results else None,
        "checked": len(results),
        "passed": passed,
        "score_fell_rate": sum(r.score_fell for r in results) / len(results) if results else None,
        "max_additivity_error": max((a.additivity_error for a in attributed), default=0.0),
        "additivity_failures": counters["additivity_failures"],
        "rule_violations": counters["rule_violations"],
        "explained_items": len(explanations),
        "attributed_items": len(attributed),
        "verified_share": sum(e.reason.verified for e in explanations) / len(explanations) if explanations else None,
        "customers": customers,
        "reason_types": dict(sorted(reason_types.items())),
        "by_reason_type": dict(sorted(by_type.items())),
        "rank_drop": {
            "mean": float(drops.mean()) if len(drops) else None,
            "p10": q(10), "median": q(50), "p90": q(90),
            "min": float(drops.min()) if len(drops) else None,
            "max": float(drops.max()) if len(drops) else None,
            "histogram": _histogram(drops),
        },
    }


def _histogram(drops: npt.NDArray[np.float64]) -> dict[str, int]:
    edges = [(-np.inf, -1, "rose"), (0, 0, "0"), (1, 1, "1"), (2, 5, "2-5"), (6, 20, "6-20"), (21, np.inf, ">20")]
    return {name: int(((drops >= lo) & (drops <= hi)).sum()) for lo, hi, name in edges}


def evaluate_explanations(
    model: Any,
    customers: Sequence[str],
    *,
    k: int = 10,
    discovery: bool = True,
    max_customers: int | None = 300,
    seed: int = 42,
    explainer: Explainer | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Explain every evaluated customer's top ``k`` (a seeded sample of at most ``max_customers``)
    and run the counterfactual check on each history-citing reason.

    The lists are made exactly as the accuracy evaluation makes them
    (``exclude_purchased``, no repeats in discovery mode).
    """
    from recsys.recommender import Filters

    explainer = explainer or Explainer(model)
    chosen = list(customers)
    if max_customers is not None and len(chosen) > max_customers:
        rng = np.random.default_rng(seed)
        chosen = sorted(rng.choice(chosen, max_customers, replace=False).tolist())
    filters = Filters(exclude_purchased=True, allow_repeats=not discovery)
    results: list[CounterfactualResult] = []
    explained: list[ItemExplanation] = []
    for n, customer in enumerate(chosen):
        ranked = model.recommend(customer, k, filters=filters)
        ex = explainer.explain(ranked)
        explained.extend(ex)
        results.extend(check_list(model, ranked, ex, filters=filters))
        if progress is not None and (n + 1) % 50 == 0:
            progress(f"explanations: {n + 1}/{len(chosen)} customers, {len(results)} reasons checked")
    return summarise(results, explained, explainer, customers=len(chosen))


def evaluation_hook(
    *,
    k: int,
    discovery: bool,
    max_customers: int | None = 300,
    seed: int = 42,
    say: Callable[[str], None] | None = None,
) -> Callable[[Any, Any, Any], dict[str, Any]]:
    """The ``after_fit`` callable of ``recsys.evaluation.job.run_evaluation``.

    Explains the evaluated customers' lists (same split, same filters as the
    accuracy evaluation) and returns the ``"explanations"`` block.
    """

    def after_fit(model: Any, split: Any, result: Any) -> dict[str, Any]:
        if say is not None:
            say(f"explanations: checking up to {max_customers} evaluated customers")
        out = evaluate_explanations(
            model, result.customer_ids, k=k, discovery=discovery, max_customers=max_customers, seed=seed,
            progress=say,
        )
        out["split"] = split.kind
        return out

    return after_fit
