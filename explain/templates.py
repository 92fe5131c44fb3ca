"""Reason templates: one data file of texts per reason type, validated on load.

The file (default :data:`DEFAULT_TEMPLATES`, ``explain/templates.json``) maps
each reason type to a text, or, for reasons that cite a history item, to one
text per kind of interaction (``purchase``, ``rating``, ``cart``, ``view``,
and ``default``). A retailer rewords or translates the texts; the file is
rejected with a message saying what to fix when a type is missing or
unknown, a text lacks a placeholder its type needs or uses one that is not
allowed, or a text mentions other customers or a sensitive attribute.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from explain.errors import ERR_TEMPLATE_FILE, TemplateError
from explain.evidence import HISTORY_CITING
from explain.rules import placeholders, text_problems

DEFAULT_TEMPLATES: Final[Path] = Path(__file__).with_name("templates.json")
INTERACTIONS: Final[tuple[str, ...]] = ("purchase", "rating", "cart", "view")


@dataclass(frozen=True)
class ReasonType:
    """A kind of reason: the feature group that backs it and the placeholders its text needs."""

    name: str
    group: str
    needs: frozenset[str]


REASON_TYPES: Final[dict[str, ReasonType]] = {
    r.name: r
    for r in (
        ReasonType("bought_together", "copurchase", frozenset({"item"})),
        ReasonType("because_you_bought", "als", frozenset({"item"})),
        ReasonType("goes_with", "ease", frozenset({"item"})),
        ReasonType("similar_to", "content", frozenset({"item"})),
        ReasonType("buy_again", "buy_again", frozenset({"n"})),
        ReasonType("new_in_category", "category", frozenset({"category"})),
        ReasonType("category_affinity", "category", frozenset({"category"})),
        ReasonType("trending", "popularity", frozenset({"category"})),
        ReasonType("popular_in_category", "popularity", frozenset({"category"})),
        ReasonType("popular", "popularity", frozenset()),
        ReasonType("picked_for_you", "none", frozenset()),
    )
}


@dataclass(frozen=True)
class Templates:
    """Validated reason texts: ``texts[type][interaction or "default"]``."""

    language: str
    texts: Mapping[str, Mapping[str, str]]
    source: str

    @classmethod
    def load(cls, path: Path | str | None = None, *, sensitive: Collection[str] = ()) -> Templates:
        """Read and validate a template file (default: the bundled English one).

        ``sensitive`` adds words (e.g. the dataset's sensitive attribute
        names) that no text may contain. Raises :class:`TemplateError`.
        """
        p = Path(path) if path is not None else DEFAULT_TEMPLATES
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TemplateError(ERR_TEMPLATE_FILE.format(path=p, problem="the file does not exist")) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TemplateError(ERR_TEMPLATE_FILE.format(path=p, problem=f"not valid JSON ({exc})")) from None
        return cls.from_dict(doc, source=str(p), sensitive=sensitive)

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "<dict>", sensitive: Collection[str] = ()) -> Templates:
        problems = _problems(doc, sensitive)
        if problems:
            raise TemplateError(ERR_TEMPLATE_FILE.format(path=source, problem="; ".join(problems)))
        texts: dict[str, dict[str, str]] = {}
        for name, entry in doc["reasons"].items():
            text = entry["text"]
            texts[name] = dict(text) if isinstance(text, dict) else {"default": text}
        return cls(str(doc.get("language", "en")), texts, source)

    def render(self, reason_type: str, values: Mapping[str, Any], *, interaction: str | None = None) -> str:
        """The text of ``reason_type`` filled with ``values`` (variant by ``interaction``)."""
        variants = self.texts[reason_type]
        text = variants.get(interaction or "default") or variants["default"]
        return text.format(**{k: values[k] for k in placeholders(text)})


def _problems(doc: Any, sensitive: Collection[str]) -> list[str]:
    from explain.rules import sensitive_terms

    if not isinstance(doc, dict) or not isinstance(doc.get("reasons"), dict):
        return ['the top level must be an object with a "reasons" object']
    extra = sensitive_terms(sensitive)
    reasons = doc["reasons"]
    out = []
    missing = sorted(set(REASON_TYPES) - set(reasons))
    if missing:
        out.append(f"reason types {missing} are missing (every type needs a text)")
    unknown = sorted(set(reasons) - set(REASON_TYPES))
    if unknown:
        out.append(f"unknown reason types {unknown}; the types are {sorted(REASON_TYPES)}")
    for name in sorted(set(reasons) & set(REASON_TYPES)):
        kind = REASON_TYPES[name]
        entry = reasons[name]
        if not isinstance(entry, dict) or "text" not in entry:
            out.append(f'{name}: needs a "text"')
            continue
        if "group" in entry and entry["group"] != kind.group:
            out.append(f'{name}: "group" is {entry["group"]!r} but this reason is backed by {kind.group!r}')
        text = entry["text"]
        if isinstance(text, dict):
            if name not in HISTORY_CITING:
                out.append(f"{name}: takes one text, not one per interaction")
                continue
            if "default" not in text:
                out.append(f'{name}: the per-interaction texts need a "default"')
            bad = sorted(set(text) - {*INTERACTIONS, "default"})
            if bad:
                out.append(f"{name}: unknown interaction kinds {bad}; use {[*INTERACTIONS, 'default']}")
            variants = list(text.items())
        else:
            variants = [("default", text)]
        for variant, t in variants:
            if not isinstance(t, str) or not t.strip():
                out.append(f"{name}.{variant}: the text must be a non-empty string")
                continue
            out += [f"{name}.{variant}: {p}" for p in text_problems(t, extra_forbidden=extra)]
            try:
                have = placeholders(t)
            except ValueError:
                continue
            lacking = sorted(kind.needs - have)
            if lacking:
                out.append(f"{name}.{variant}: text {t!r} lacks placeholder(s) {['{' + x + '}' for x in lacking]}")
    return out
