"""The Explainer: ranked list in, one explanation per item out.

Per ranked list: one TreeSHAP call for the ranker-scored rows (attributions,
additivity checked on each), then per item the reason backed by the strongest
positive feature group whose evidence exists and passes the rules, rendered
from the template file. Items no ranker scored (cold start, not personalised,
the popular fallback) get the honest "Popular right now" and no attributions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from explain.attributions import ADDITIVITY_TOLERANCE, Attribution, attribute_rows
from explain.errors import (
    ERR_FEATURES_MISMATCH,
    ERR_MODEL_MISMATCH,
    ModelMismatchError,
    UntruthfulReasonError,
)
from explain.evidence import SOURCE_OF, Evidence, EvidenceConfig, EvidenceFinder
from explain.reasons import FALLBACK, Reason, choose
from explain.rules import violations
from explain.templates import Templates

logger = logging.getLogger("explain")


# the groups whose reasons all cite a history item
HISTORY_GROUPS: frozenset[str] = frozenset(SOURCE_OF.values())


def _with_alternatives(found: list[Evidence]) -> list[Evidence]:
    """Each history-citing candidate, then the same one naming its 2nd, 3rd, ... listed item.

    With the counterfactual check on, a reason whose largest contributor
    fails the check may still name the next one, if that one passes: every
    listed item has a positive contribution, so the text stays true.
    """
    out = []
    for ev in found:
        out.append(ev)
        if ev.cites_history:
            for k in range(1, len(ev.items)):
                items = (ev.items[k], *ev.items[:k], *ev.items[k + 1 :])
                out.append(Evidence(ev.reason_type, ev.group, items, ev.values, variant_of=ev))
    return out


@dataclass(frozen=True)
class ExplainerConfig:
    """How explanations are made.

    - ``templates``: the template file (None: the bundled English one).
    - ``sensitive``: attribute names no reason text may contain (added to the
      built-in list of sensitive and other-customer words).
    - ``evidence``: thresholds of the non-history reasons.
    - ``additivity_tolerance``: absolute error above which an item's
      attribution counts as an additivity failure (logged and counted).
    - ``strict``: raise :class:`~explain.errors.UntruthfulReasonError` instead
      of skipping a candidate reason that breaks a rule (for tests and audits).
    - ``counterfactual``: run the counterfactual check
      (:class:`explain.faithfulness.ListCheck`) on history-citing candidates
      at explain time and show one only if it passes (else the next
      candidate): the cited item X is removed from the history, the served
      list is re-scored (``Recommender.score_without``, one batched pass for
      all the list's removals) and the item's score must fall and its rank
      in the list worsen. On by default; off, history-citing reasons are
      shown unchecked and marked ``verified: false``.
    - ``counterfactual_budget``: at most this many distinct history items are
      removed (re-scored) per list; a history-citing candidate left unchecked
      by the budget is not shown (the next candidate is tried).
    """

    templates: str | None = None
    sensitive: tuple[str, ...] = ()
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    additivity_tolerance: float = ADDITIVITY_TOLERANCE
    strict: bool = False
    counterfactual: bool = True
    counterfactual_budget: int = 8


@dataclass(frozen=True)
class ItemExplanation:
    """Why one item was recommended: the reason shown and the ranker's attribution."""

    item_id: str
    index: int
    rank: int
    reason: Reason
    attributions: Attribution | None

    def as_dict(self) -> dict[str, Any]:
        """``{"reason": {type, text, evidence, verified}, "attributions": {...} | None}``."""
        return {
            "reason": self.reason.as_dict(),
            "attributions": None if self.attributions is None else self.attributions.as_dict(),
        }


class Explainer:
    """Explains a fitted :class:`~recsys.recommender.Recommender`'s ranked lists.

    Cheap to build (the template file is read and checked; lookups are built
    on first use). ``additivity_failures``, ``rule_violations`` and
    ``max_additivity_error`` count over the explainer's life; each failure is
    also logged. Safe to share between threads.
    """

    def __init__(self, model: Any, config: ExplainerConfig = ExplainerConfig()) -> None:
        if not hasattr(model, "ranker_"):
            from recsys.errors import NotFittedError

            raise NotFittedError("Recommender")
        self.model = model
        self.config = config
        self.templates = Templates.load(
            Path(config.templates) if config.templates else None, sensitive=config.sensitive
        )
        self.finder = EvidenceFinder(model, config.evidence)
        self.additivity_failures = 0
        self.rule_violations = 0
        self.counterfactual_rejections = 0
        self.counterfactual_unchecked = 0
        self.counterfactual_rescored = 0
        self.explained = 0
        self.max_additivity_error = 0.0
        self._lock = threading.Lock()

    def prepare(self) -> Explainer:
        """Build the lookups the first ``explain`` would build (interaction kinds, titles,
        the co-purchase column index, the ranker's TreeSHAP tables and compiled trees,
        the check's compiled rank counting) and compile the loops of the first ``recommend``
        (the top-k picks, the features), e.g. in a web app's startup; returns ``self``."""
        from explain.evidence import prepare as prepare_evidence
        from recsys import links, ranks
        from recsys.ranking.features import prepare as prepare_features
        from recsys.retrieval import ease
        from recsys.retrieval.base import prepare as prepare_selection

        ranker = self.model.ranker_
        ranker.contributions(np.zeros((1, len(ranker.feature_names_)), np.float32))
        ranker.predict(np.zeros((1, len(ranker.feature_names_)), np.float32))  # the compiled trees
        ranks.prepare()  # the counterfactual check's rank counting
        links.prepare()  # the passes over the co-purchase links
        ease.prepare()  # EASE's sum of weight rows
        prepare_evidence()  # the evidence's pick of the largest contributions
        prepare_features()  # the features' shares, price medians and category times
        prepare_selection()  # the top-k picks of the candidate step
        self.finder.kinds()
        self.finder.title(0)
        if "copurchase" in self.model.stage_.retrievers:
            self.finder.similarity_csc()
        return self

    def explain(
        self, ranked: Any, *, now: float | None = None, filters: Any = None
    ) -> tuple[ItemExplanation, ...]:
        """One :class:`ItemExplanation` per item of ``ranked`` (a RankedList), in order.

        ``now`` (epoch s) is the time the list was made for (buy-again
        intervals) and ``filters`` those it was made with; both default to
        what ``ranked`` records (``RankedList.now`` / ``.filters``, set by
        :meth:`~recsys.recommender.Recommender.recommend`), so callers need not
        repeat them: the counterfactual check re-scores the list under them,
        and a category filter changes the features. Raises
        :class:`~explain.errors.ModelMismatchError` if another model ranked the list.
        """
        model = self.model
        if filters is None:
            filters = getattr(ranked, "filters", None)
        if now is None:
            now = getattr(ranked, "now", None)
        if ranked.model_version != model.version_:
            raise ModelMismatchError(ERR_MODEL_MISMATCH.format(ranked=ranked.model_version, model=model.version_))
        names = tuple(ranked.feature_names)
        if names != tuple(model.ranker_.feature_names_):
            raise ModelMismatchError(ERR_FEATURES_MISMATCH.format(got=names, want=model.ranker_.feature_names_))
        items = ranked.items
        if not items:
            return ()
        scored = [j for j, it in enumerate(items) if ranked.status == "known" and it.features.any()]
        attributions: dict[int, Attribution] = {}
        if scored:
            feats = np.stack([items[j].features for j in scored])
            rows = attribute_rows(model.ranker_, feats, [items[j].score for j in scored], feature_names=names)
            attributions = dict(zip(scored, rows, strict=True))
            self._check_additivity(ranked, attributions)
        # the history the list was ranked from (recommend() hands it over), else the customer's current one;
        # only scored lists need it (cold-start and non-personalised ones get popularity reasons)
        basis = getattr(ranked, "basis", None)
        row = None
        if attributions:
            history_row = basis.history.row if basis is not None else model.history_row(ranked.customer)
            row = self.finder.context(history_row, ranked.customer, basis, [it.index for it in items])
        history: Collection[int] = frozenset(row.items.tolist()) if row is not None else frozenset()
        check = None
        if self.config.counterfactual and attributions:
            from explain.faithfulness import ListCheck

            check = ListCheck(model, ranked, filters=filters, now=now, budget=self.config.counterfactual_budget)
        memo: dict[tuple[int, str], list[Evidence]] = {}
        checked: dict[int, tuple[Evidence, list[str]]] = {}  # each candidate's rule check, for the second pass
        backed: dict[int, dict[str, bool]] = {}  # per position: which reason types' backing raises the score
        reported: set[int] = set()
        scored_positions = [j for j in range(len(items)) if j in attributions]
        if check is not None:
            # first the plan: every history-citing candidate each item would try before its first
            # other acceptable reason; then one batched re-scoring of the removals chosen from them
            for j in scored_positions:
                self._reason(
                    ranked.customer, row, items[j], attributions[j], history, now, check, memo, j, reported,
                    plan=True, checked=checked, backed=backed,
                )
            check.run()
        reasons = {
            j: self._reason(
                ranked.customer, row, items[j], attributions[j], history, now, check, memo, j, reported,
                checked=checked, backed=backed,
            )
            for j in scored_positions
        }
        out = []
        for j, it in enumerate(items):
            attr = attributions.get(j)
            reason = reasons.get(j) if attr else None  # the final pass always gives one
            if reason is None:
                reason = self._popular(it)
            out.append(ItemExplanation(it.item_id, it.index, it.rank, reason, attr))
        with self._lock:
            self.explained += len(items)
            if check is not None:
                self.counterfactual_rejections += check.rejected
                self.counterfactual_unchecked += check.unchecked
                self.counterfactual_rescored += check.rescored
        return tuple(out)

    # -- internals --

    def _check_additivity(self, ranked: Any, attributions: dict[int, Attribution]) -> None:
        worst = max(a.additivity_error for a in attributions.values())
        failed = [(j, a) for j, a in attributions.items() if not a.additivity_error <= self.config.additivity_tolerance]
        with self._lock:
            self.max_additivity_error = max(self.max_additivity_error, worst)
            self.additivity_failures += len(failed)
        for j, a in failed:
            logger.warning(
                "additivity failure: item %s of model %s: base %.9g + contributions %.9g = %.9g, score %.9g (error %.3g > %.3g)",
                ranked.items[j].item_id, ranked.model_version, a.base_value, sum(c.shap for c in a.contributions),
                a.base_value + sum(c.shap for c in a.contributions), a.score, a.additivity_error,
                self.config.additivity_tolerance,
            )

    def _violation(self, ev: Evidence, problems: list[str]) -> None:
        with self._lock:
            self.rule_violations += 1
        message = f"reason {ev.reason_type} rejected: {'; '.join(problems)}"
        logger.warning(message)
        if self.config.strict:
            raise UntruthfulReasonError(message)

    def _reason(
        self,
        customer: str,
        row: Any,
        it: Any,
        attr: Attribution,
        history: Collection[int],
        now: float | None,
        check: Any = None,
        memo: dict[tuple[int, str], list[Evidence]] | None = None,
        position: int = 0,
        reported: set[int] | None = None,
        *,
        plan: bool = False,
        checked: dict[int, tuple[Evidence, list[str]]] | None = None,
        backed: dict[int, dict[str, bool]] | None = None,
    ) -> Reason | None:
        """The item's reason (None in the plan pass).

        With a counterfactual ``check``: ``plan=True`` only tells the check
        which history items this item's candidates would cite, in order,
        and returns None; afterwards a history-citing
        candidate is shown only if the check ran for it and passed.
        ``memo`` keeps the evidence found per (position, group) and
        ``reported`` the candidates whose rule violations were already
        reported, ``checked`` their rule checks and ``backed`` (per position)
        which reason types' backing features raise the score, so the second
        pass costs no new evidence or rule check and counts nothing twice.
        """
        memo = {} if memo is None else memo
        reported = set() if reported is None else reported

        def candidates(group: str) -> list[Evidence]:
            if check is not None and group in HISTORY_GROUPS and not check.can_pass(position):
                return []  # its rank among the checked items cannot worsen: no history-citing reason can pass
            key = (position, group)
            if key not in memo:
                found = self.finder.candidates(group, customer, it.index, it.features, row=row, now=now)
                memo[key] = _with_alternatives(found) if check is not None else found
            return memo[key]

        def on_violation(ev: Evidence, problems: list[str]) -> None:
            if id(ev) not in reported:
                reported.add(id(ev))
                self._violation(ev, problems)

        accept = None
        if check is not None:

            def accept(ev: Evidence) -> bool:
                cited = ev.cited
                if cited is None:
                    return True
                if plan:
                    check.want(position, cited.item)
                    return False
                return check.verdict(position, cited.item)

        ev, shap = choose(
            attr.by_group(), candidates, history=history, feature_shap=attr.feature_shap(),
            on_violation=on_violation, accept=accept, checked=checked,
            backed=None if backed is None else backed.setdefault(position, {}),
        )
        if plan:
            return None  # the plan only told the check what to re-score: nothing is shown yet
        if ev is None:
            text = self.templates.render(FALLBACK, {})
            return Reason(FALLBACK, text, (), False, None, None, False)
        # a history-citing reason is verified only by a counterfactual check that ran and passed
        return self._render(ev, shap, verified=check is not None or not ev.cites_history)

    def _render(self, ev: Evidence, shap: float | None, *, verified: bool) -> Reason:
        values = dict(ev.values)
        cited = ev.cited
        interaction = None
        if cited is not None:
            values["item"] = cited.title or cited.item_id
            interaction = cited.interaction
        text = self.templates.render(ev.reason_type, values, interaction=interaction)
        return Reason(ev.reason_type, text, ev.items, verified, ev.group, shap, ev.cites_history)

    def _popular(self, it: Any) -> Reason:
        ev = self.finder.popular(it.index)
        problems = violations(ev, history=(), shap=None)
        if problems:  # cannot happen for popularity evidence; kept as a guard
            self._violation(ev, problems)
        return self._render(ev, None, verified="popularity" in it.sources and not problems)

    def counters(self) -> dict[str, float | int]:
        """The explainer's counters (for logs, metrics and the evaluation report)."""
        with self._lock:
            return {
                "explained": self.explained,
                "additivity_failures": self.additivity_failures,
                "max_additivity_error": self.max_additivity_error,
                "rule_violations": self.rule_violations,
                "counterfactual_rejections": self.counterfactual_rejections,
                "counterfactual_unchecked": self.counterfactual_unchecked,
                "counterfactual_rescored": self.counterfactual_rescored,
            }
