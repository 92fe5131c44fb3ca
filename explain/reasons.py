"""Choosing the reason shown for an item.

The reason is backed by the feature group with the largest positive summed
SHAP contribution whose evidence exists and passes the truthfulness rules
(:mod:`explain.rules`); ties between groups break by :data:`GROUP_ORDER`.
Groups that cannot be put into words for a shopper (price, activity, the
number of sources) never back a reason. When no group qualifies, the item
gets the ``picked_for_you`` reason, marked unverified.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from explain.evidence import BACKING, Evidence, EvidenceItem
from explain.rules import violations

# reason-backing groups, most specific first (the tie-break)
GROUP_ORDER: Final[tuple[str, ...]] = ("buy_again", "copurchase", "als", "ease", "content", "category", "popularity")
FALLBACK: Final[str] = "picked_for_you"


@dataclass(frozen=True)
class Reason:
    """The reason shown for one item.

    ``verified``: the reason's group raises the ranker's score and its
    evidence passed every truthfulness rule (for cold-start items: the item
    was indeed chosen for its popularity). ``group_shap`` is None when no
    ranker scored the item.
    """

    type: str
    text: str
    evidence: tuple[EvidenceItem, ...]
    verified: bool
    group: str | None = None
    group_shap: float | None = None
    cites_history: bool = False

    @property
    def cited(self) -> EvidenceItem | None:
        """The history item the text names, if any."""
        return self.evidence[0] if self.cites_history and self.evidence else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "text": self.text,
            "evidence": [e.as_dict() for e in self.evidence],
            "verified": self.verified,
        }


def rank_groups(group_shap: Mapping[str, float]) -> list[tuple[str, float]]:
    """Reason-backing groups with a positive summed SHAP, largest first (ties: :data:`GROUP_ORDER`)."""
    positive = [(g, float(group_shap[g])) for g in GROUP_ORDER if g in group_shap and group_shap[g] > 0]
    return sorted(positive, key=lambda gs: (-gs[1], GROUP_ORDER.index(gs[0])))


def choose(
    group_shap: Mapping[str, float],
    candidates: Callable[[str], Sequence[Evidence]],
    *,
    history: Collection[int],
    feature_shap: Mapping[str, float],
    on_violation: Callable[[Evidence, list[str]], None] | None = None,
    accept: Callable[[Evidence], bool] | None = None,
    checked: dict[int, tuple[Evidence, list[str]]] | None = None,
    backed: dict[str, bool] | None = None,
) -> tuple[Evidence | None, float | None]:
    """The first candidate reason, in group order, that breaks no rule; ``(None, None)`` if none.

    ``candidates(group)`` gives a group's candidate reasons (evaluated
    lazily, so only the groups tried cost anything); ``feature_shap`` the
    item's SHAP value per feature. A candidate that breaks a rule is
    reported to ``on_violation`` and skipped; a reason whose backing
    features do not raise the score is skipped silently (that is the normal
    way a group's evidence does not qualify, not a violation). ``accept``, if
    given, has the last word on a candidate that passed the rules (the
    optional counterfactual check). ``checked`` keeps each candidate's rule
    check by ``id`` (a variant's is its original's: ``Evidence.variant_of``),
    and ``backed`` whether each reason type's backing features raise the
    score, for a caller that offers the same candidates (for the same item)
    again.
    """
    backed = {} if backed is None else backed  # per reason type: do its backing features raise the score?
    for group, shap in rank_groups(group_shap):
        for ev in candidates(group):
            ok = backed.get(ev.reason_type)
            if ok is None:
                ok = backed[ev.reason_type] = all(
                    sum(feature_shap.get(f, 0.0) for f in fs) > 0 for fs in BACKING.get(ev.reason_type, ())
                )
            if not ok:
                continue
            judged = ev.variant_of or ev  # a variant (the same items in another order) shares the rule check
            seen = None if checked is None else checked.get(id(judged))
            if seen is not None and seen[0] is judged:
                problems = seen[1]
            else:
                problems = violations(judged, history=history, shap=feature_shap)
                if checked is not None:
                    checked[id(judged)] = (judged, problems)
            if problems:
                if on_violation is not None:
                    on_violation(ev, problems)
                continue
            if accept is not None and not accept(ev):
                continue
            return ev, shap
    return None, None
