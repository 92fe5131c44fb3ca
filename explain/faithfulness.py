"""The faithfulness check: remove the cited history item, re-score, the item must fall.

For a reason that cites a history item X ("Because you bought X"), the
customer's history row loses X, every candidate the customer was served from
is re-scored as if that were the history (``Recommender.score_items``: ALS
folded in, co-purchase / EASE / content recomputed from the row, features
rebuilt, the ranker re-run), and the check passes when the item's score
falls *and* its rank among those candidates gets worse. The baseline is the
served list itself (``score_items`` without a history gives exactly the
served scores), so nothing but X differs between the two rankings.

:class:`PoolCheck` is that check, one removal at a time, against the whole
pool (the offline audit). :class:`ListCheck` is the one the explainer runs
while serving: against the served list only (passing it implies passing
:class:`PoolCheck`), every removal of a list in one batched re-scoring.

:func:`evaluate_explanations` runs this over a sample of customers and sums
it up for ``clearshelf evaluate --explanations``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

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


class PoolCheck:
    """The counterfactual check for one customer's list, against everything they were ranked from.

    Built lazily: the pool (every candidate ``recommend()`` ranks for the
    customer under ``filters``) and its served scores are computed on the
    first :meth:`check`; each check re-scores the pool once, with one history
    item removed. Re-scores are cached per removed item.
    """

    def __init__(self, model: Any, customer: str, *, filters: Any = None, now: float | None = None) -> None:
        from recsys.recommender import Filters

        self.model = model
        self.customer = customer
        self.filters = filters if filters is not None else Filters()
        self.now = now
        self._ready = False
        self._after: dict[int, npt.NDArray[np.float64]] = {}

    def _prepare(self) -> None:
        m = self.model
        full = m.recommend(self.customer, len(m.stage_.interactions.items), filters=self.filters, now=self.now)
        self.pool = np.asarray([it.index for it in full.items], dtype=np.int64)
        self.before = np.asarray([it.score for it in full.items], dtype=np.float64)
        self.rank_before = _ranks(self.pool, self.before)
        self.where = {int(i): p for p, i in enumerate(self.pool.tolist())}
        self.row = m.history_row(self.customer)
        self._ready = True

    def check(self, item: int, cited: int, *, item_id: str = "", reason_type: str = "", cited_id: str = "") -> CounterfactualResult | None:
        """Remove history item ``cited`` and compare ``item``'s score and rank; None if ``item`` is not in the pool."""
        if not self._ready:
            self._prepare()
        p = self.where.get(int(item))
        if p is None:
            return None
        after = self._after.get(int(cited))
        if after is None:
            without = self.row.copy()
            without.data[without.indices == cited] = 0
            without.eliminate_zeros()
            after = self.model.score_items(self.customer, self.pool, history=without, filters=self.filters, now=self.now)
            self._after[int(cited)] = after
        rank_after = _ranks(self.pool, after)
        return CounterfactualResult(
            item_id=item_id, reason_type=reason_type, cited_item_id=cited_id,
            score_before=float(self.before[p]), score_after=float(after[p]),
            rank_before=int(self.rank_before[p]), rank_after=int(rank_after[p]), pool_size=len(self.pool),
        )


class ListCheck:
    """The counterfactual check at explain time: against the served list, in one batch, within a budget.

    For a history item X cited by the reason of the item at ``position``:
    the list's items are re-scored with X removed from the history
    (``Recommender.score_without``), and the check passes when the item's
    score falls and its rank among the list's items (by score, ties by
    index) worsens. Without a serving policy the list is the top of the
    pool :class:`PoolCheck` ranks, so passing here implies passing there:
    the items above it are all in the list, and items from below the list
    can only push it further down.

    Use: :meth:`want` every (position, X) a candidate reason would cite, in
    each item's order of preference; :meth:`run` once; then :meth:`verdict`.
    One re-scoring answers for every item of the list, so :meth:`run`
    picks the removals greedily: each wanted X is worth ``1 / (1 + its
    place in that item's order)`` to every item that wants it (an item
    that already has a chosen X counts a third as much), and the best X is
    taken until ``budget`` removals are chosen. X's not re-scored answer
    False (counted in ``unchecked``).
    """

    def __init__(self, model: Any, ranked: Any, *, filters: Any = None, now: float | None = None, budget: int = 8) -> None:
        from recsys.recommender import Filters

        self.model = model
        self.customer = ranked.customer
        self.filters = filters if filters is not None else Filters()
        self.now = now
        self.budget = budget
        self.basis = getattr(ranked, "basis", None)  # the history the list was ranked from, and its work
        items = [it.index for it in ranked.items]
        before = [it.score for it in ranked.items]
        runner_up = getattr(ranked, "runner_up", None)  # the pool's next item: the last item can fall below it
        if runner_up is not None:
            items.append(runner_up[0])
            before.append(runner_up[1])
        self.items = np.asarray(items, dtype=np.int64)
        self.before = np.asarray(before, dtype=np.float64)
        self.rank_before = _ranks(self.items, self.before)
        self._passed: dict[int, npt.NDArray[np.bool_]] = {}
        self._wants: dict[int, list[int]] = {}  # position -> wanted X's in preference order
        self.rescored = 0
        self.rejected = 0
        self.unchecked = 0

    def can_pass(self, position: int) -> bool:
        """Whether the item at ``position`` can pass at all: its rank among the checked items can
        still worsen (not the bottom one; the list's last item is not, when the pool's next item is known)."""
        return bool(self.rank_before[position] < len(self.items))

    def want(self, position: int, cited: int) -> None:
        """Note that the item at ``position`` has a candidate reason citing history item ``cited``."""
        order = self._wants.setdefault(int(position), [])
        if int(cited) not in order:
            order.append(int(cited))

    def plan(self) -> list[int]:
        """The removals :meth:`run` re-scores, best first (at most ``budget``)."""
        chosen: list[int] = []
        covered: set[int] = set()
        left = {x for order in self._wants.values() for x in order}
        while left and len(chosen) < self.budget:
            worth: dict[int, float] = {}
            for p, order in self._wants.items():
                factor = 1 / 3 if p in covered else 1.0
                for place, x in enumerate(order):
                    if x in left:
                        worth[x] = worth.get(x, 0.0) + factor / (1 + place)
            best = max(sorted(worth), key=lambda x: worth[x])  # ties: the lower item index
            chosen.append(best)
            left.discard(best)
            covered.update(p for p, order in self._wants.items() if best in order)
        return chosen

    def run(self) -> None:
        """Re-score the list once, for every removal of :meth:`plan`."""
        chosen = self.plan()
        if not chosen:
            return
        after = self.model.score_without(
            self.customer, self.items, chosen, filters=self.filters, now=self.now, basis=self.basis
        )
        for x, scores in zip(chosen, after, strict=True):
            self._passed[x] = (scores < self.before) & (_ranks(self.items, scores) > self.rank_before)
        self.rescored += len(chosen)

    def verdict(self, position: int, cited: int) -> bool:
        """Whether removing history item ``cited`` made the list's item at ``position`` fall (False if not re-scored)."""
        passed = self._passed.get(int(cited))
        if passed is None:
            self.unchecked += 1
            return False
        ok = bool(passed[position])
        self.rejected += not ok
        return ok


def check_list(
    model: Any,
    ranked: Any,
    explanations: Sequence[ItemExplanation],
    *,
    filters: Any = None,
    now: float | None = None,
) -> list[CounterfactualResult]:
    """Counterfactual results for every history-citing reason of one ranked list.

    ``filters`` and ``now`` default to those ``ranked`` was made with
    (``RankedList.filters`` / ``.now``). The pool is everything
    :meth:`recommend` would rank for the customer under those filters.
    """
    if filters is None:
        filters = getattr(ranked, "filters", None)
    if now is None:
        now = getattr(ranked, "now", None)
    pool = PoolCheck(model, ranked.customer, filters=filters, now=now)
    out = []
    for e in explanations:
        cited = e.reason.cited
        if cited is None or e.attributions is None:
            continue
        r = pool.check(e.index, cited.item, item_id=e.item_id, reason_type=e.reason.type, cited_id=cited.item_id)
        if r is not None:
            out.append(r)
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
    citing = sum(e.reason.cited is not None for e in explanations)
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
        # coverage: the share of explained items whose reason cites a history item
        "history_citing_share": citing / len(explanations) if explanations else None,
        "serving_check": {
            "on": explainer.config.counterfactual,
            "budget": explainer.config.counterfactual_budget,
            "rescored_removals": counters["counterfactual_rescored"],
            "rejected_candidates": counters["counterfactual_rejections"],
            "unchecked_candidates": counters["counterfactual_unchecked"],
        },
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
    # the same lists explained without the serving-time check: what coverage the check costs
    unchecked = Explainer(model, replace(explainer.config, counterfactual=False))
    chosen = list(customers)
    if max_customers is not None and len(chosen) > max_customers:
        rng = np.random.default_rng(seed)
        chosen = sorted(rng.choice(chosen, max_customers, replace=False).tolist())
    filters = Filters(exclude_purchased=True, allow_repeats=not discovery)
    results: list[CounterfactualResult] = []
    explained: list[ItemExplanation] = []
    citing_unchecked = 0
    for n, customer in enumerate(chosen):
        ranked = model.recommend(customer, k, filters=filters)
        ex = explainer.explain(ranked, filters=filters)
        explained.extend(ex)
        citing_unchecked += sum(e.reason.cited is not None for e in unchecked.explain(ranked, filters=filters))
        results.extend(check_list(model, ranked, ex, filters=filters))
        if progress is not None and (n + 1) % 50 == 0:
            progress(f"explanations: {n + 1}/{len(chosen)} customers, {len(results)} reasons checked")
    out = summarise(results, explained, explainer, customers=len(chosen))
    out["history_citing_share_unchecked"] = citing_unchecked / len(explained) if explained else None
    return out


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
