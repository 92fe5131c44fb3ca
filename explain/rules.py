"""Truthfulness rules every reason must pass before it is shown.

1. A reason never cites an item the customer did not interact with: every
   evidence item with ``role="history"`` is in the customer's history row.
2. A reason that cites a history item X ("Because you bought X") does so only
   when X's own contribution to the cited retriever's score is positive; and
   every reason is shown only when the ranker features its claim rests on
   (:data:`~explain.evidence.BACKING`, e.g. the trend for "Trending ...")
   raise the item's score (positive summed SHAP).
3. A reason never mentions a sensitive attribute or another customer: template
   texts are checked word by word against :data:`FORBIDDEN_WORDS` (plus the
   dataset's declared sensitive attribute names), placeholders are limited to
   catalog fields and numbers (:data:`ALLOWED_PLACEHOLDERS`), and evidence
   carries only the keys in :data:`EVIDENCE_KEYS` (never a customer id).

The checks are pure functions; :func:`violations` returns what is wrong (an
empty list when the reason may be shown).
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Iterable, Mapping
from typing import Final

from explain.evidence import BACKING, Evidence

# Words that would make a reason talk about the customer's sensitive attributes
# or about other customers. Matched as whole words, case-insensitively.
FORBIDDEN_WORDS: Final[frozenset[str]] = frozenset(
    {
        # other customers
        "customer", "customers", "shopper", "shoppers", "people", "person", "persons", "others",
        "someone", "somebody", "user", "users", "neighbour", "neighbours", "neighbor", "neighbors",
        "household", "households", "member", "members", "everyone", "friends", "family",
        # sensitive attributes
        "age", "aged", "ages", "old", "young", "older", "younger", "gender", "sex", "male",
        "female", "man", "men", "woman", "women", "nonbinary", "income", "salary", "wealthy",
        "poor", "rich", "ethnicity", "ethnic", "race", "racial", "religion", "religious",
        "nationality", "region", "marital", "married", "single", "divorced", "disability",
        "disabled", "pregnant", "pregnancy", "health", "occupation", "homeowner", "kids",
        "children",
    }
)
ALLOWED_PLACEHOLDERS: Final[frozenset[str]] = frozenset({"item", "category", "n"})
EVIDENCE_KEYS: Final[frozenset[str]] = frozenset(
    {
        "item_id", "title", "role", "interaction", "contribution", "similarity", "weight",
        "purchases", "typical_interval_days", "days_since_last", "interval_ratio",
        "last_purchase_ts", "due_score", "category", "category_share", "item_age_days",
        "recent_customers", "customers_all_time", "trend_ratio", "trend_window_days",
        "category_rank", "popularity_rank", "source",
    }
)

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (letters only; placeholders removed first)."""
    plain = re.sub(r"\{[^}]*\}", " ", text)
    return [w.lower() for w in _WORD.findall(plain)]


def sensitive_terms(attribute_names: Iterable[str]) -> frozenset[str]:
    """Words of declared sensitive attribute names (``age_band`` -> ``age``, ``band``, ``age_band``)."""
    out: set[str] = set()
    for name in attribute_names:
        low = name.lower()
        out.add(low)
        out.update(w for w in re.split(r"[_\W]+", low) if len(w) > 2)
    return frozenset(out)


def placeholders(text: str) -> set[str]:
    """Field names used in a ``str.format`` template."""
    return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}


def text_problems(text: str, *, extra_forbidden: Collection[str] = ()) -> list[str]:
    """Why a template text may not be shown (rule 3), or ``[]``."""
    problems = []
    banned = sorted({w for w in words(text) if w in FORBIDDEN_WORDS or w in extra_forbidden})
    if banned:
        problems.append(
            f"text {text!r} mentions {', '.join(repr(b) for b in banned)}: a reason may not mention "
            "other customers or a sensitive attribute"
        )
    try:
        fields = placeholders(text)
    except ValueError as exc:
        return [*problems, f"text {text!r} is not a valid template ({exc})"]
    unknown = sorted(fields - ALLOWED_PLACEHOLDERS)
    if unknown:
        problems.append(
            f"text {text!r} uses placeholder(s) {unknown}; only {sorted(ALLOWED_PLACEHOLDERS)} are allowed"
        )
    return problems


def violations(
    evidence: Evidence,
    *,
    history: Collection[int],
    shap: Mapping[str, float] | None,
) -> list[str]:
    """Every rule ``evidence`` breaks for a customer with ``history`` (item indices), or ``[]``.

    ``shap`` maps feature names to the item's SHAP values (None when no
    ranker scored the item, e.g. cold start: then only rules 1 and 3 apply).
    The rules judge the evidence's items as a set: the same items in another
    order break the same rules (the explainer checks a reason's variants
    naming another of its items once; ``tests/test_explain_rules.py``).
    """
    out = []
    for e in evidence.items:
        keys = e.keys()
        if not keys <= EVIDENCE_KEYS:
            out.append(f"evidence of item {e.item_id} carries unexpected keys {sorted(keys - EVIDENCE_KEYS)}")
        if e.role == "history" and e.item not in history:
            out.append(f"cites item {e.item_id}, which is not in the customer's history")
        if e.role == "history" and evidence.cites_history and not (e.contribution is not None and e.contribution > 0):
            out.append(f"cites {e.item_id} whose contribution ({e.contribution}) is not positive")
    if evidence.cites_history and not evidence.items:
        out.append("a history-citing reason without a history item")
    if shap is not None:
        for features in BACKING.get(evidence.reason_type, ()):
            total = sum(shap.get(f, 0.0) for f in features)
            if not total > 0:
                out.append(
                    f"{evidence.reason_type} rests on {', '.join(features)}, which do not raise the score "
                    f"(SHAP {total:+.4g})"
                )
    return out
