"""The truthfulness rules, reason choice and template file: pure helpers, checked by example and by property."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from explain.errors import TemplateError
from explain.evidence import BACKING, Evidence, EvidenceItem
from explain.reasons import FALLBACK, GROUP_ORDER, choose, rank_groups
from explain.rules import FORBIDDEN_WORDS, text_problems, violations
from explain.templates import DEFAULT_TEMPLATES, REASON_TYPES, Templates

GROUP_OF = {name: rt.group for name, rt in REASON_TYPES.items()}
ALL_FEATURES = sorted({f for groups in BACKING.values() for fs in groups for f in fs})


def hist(item: int, contribution: float | None = 1.0) -> EvidenceItem:
    return EvidenceItem(item, f"I{item}", f"Item {item}", "history", "purchase", contribution)


def positive_shap() -> dict[str, float]:
    return {f: 0.1 for f in ALL_FEATURES}


# -- rules by example -------------------------------------------------------------------


def test_citing_an_item_outside_the_history_is_a_violation() -> None:
    ev = Evidence("because_you_bought", "als", (hist(7),))
    assert violations(ev, history={7}, shap=positive_shap()) == []
    problems = violations(ev, history={1, 2}, shap=positive_shap())
    assert problems and "not in the customer's history" in problems[0]


def test_because_you_bought_x_needs_a_positive_contribution_of_x() -> None:
    for value in (0.0, -0.3, None):
        ev = Evidence("bought_together", "copurchase", (hist(3, value),))
        assert any("not positive" in p for p in violations(ev, history={3}, shap=positive_shap()))


def test_a_reason_needs_its_backing_features_to_raise_the_score() -> None:
    ev = Evidence("trending", "popularity", (EvidenceItem(5, "I5", None, "recommended"),), {"category": "Dairy"})
    shap = positive_shap() | {"trend": -0.2}
    assert any("trend" in p for p in violations(ev, history=set(), shap=shap))
    assert violations(ev, history=set(), shap=positive_shap()) == []
    assert violations(ev, history=set(), shap=None) == []  # not ranker-scored: no SHAP to check


def test_the_rules_judge_a_reasons_items_as_a_set() -> None:
    """The explainer checks a reason once for all its variants naming another of its items."""
    import itertools

    from explain.explainer import _with_alternatives

    odd = EvidenceItem(9, "I9", "x", "history", "purchase", 0.5, {"customer_id": "C1"})
    for items, history, shap in [
        ((hist(1), hist(2, 0.4), hist(3, 0.2)), {1, 2, 3}, positive_shap()),
        ((hist(1), hist(2, -0.4), hist(8)), {1, 2}, positive_shap()),  # a negative one, one outside the history
        ((hist(1), odd, hist(3, None)), {1, 3, 9}, positive_shap() | {"als_score": -1.0, "als_rank": 0.0}),
    ]:
        ev = Evidence("because_you_bought", "als", items)
        want = sorted(violations(ev, history=history, shap=shap))
        for order in itertools.permutations(items):
            assert sorted(violations(Evidence(ev.reason_type, ev.group, order), history=history, shap=shap)) == want
        variants = _with_alternatives([ev])
        assert [v.cited for v in variants] == list(items)
        assert all(v.variant_of is ev for v in variants[1:]) and variants[0].variant_of is None


def test_evidence_may_not_carry_unexpected_keys() -> None:
    item = EvidenceItem(3, "I3", "x", "history", "purchase", 1.0, {"customer_id": "C1"})
    ev = Evidence("because_you_bought", "als", (item,))
    assert any("unexpected keys" in p for p in violations(ev, history={3}, shap=positive_shap()))
    # the rule reads keys() instead of building as_dict(): the same keys, with and without the optional ones
    for e in (item, EvidenceItem(4, "I4", None, "recommended"), EvidenceItem(5, "I5", "t", "history", None, 0.2)):
        assert e.keys() == set(e.as_dict())


@pytest.mark.parametrize(
    "text",
    ["Customers like you bought this", "Popular with people your age", "Because of your gender",
     "Popular in your REGION", "Others also bought {item}", "Great for women"],
)
def test_texts_about_other_customers_or_sensitive_attributes_are_rejected(text: str) -> None:
    assert text_problems(text)


def test_extra_sensitive_names_and_placeholders_are_checked() -> None:
    assert text_problems("Picked for your loyalty tier", extra_forbidden={"loyalty"})
    assert "only" in text_problems("Because you are {age_band}")[0]
    assert text_problems("Because you bought {item}") == []


# -- rules by property --------------------------------------------------------------------

evidence_items = st.builds(
    EvidenceItem,
    item=st.integers(0, 30),
    item_id=st.just("x"),
    title=st.none(),
    role=st.sampled_from(["history", "recommended"]),
    interaction=st.none(),
    contribution=st.one_of(st.none(), st.floats(-1, 1, allow_nan=False)),
)
candidate = st.builds(
    lambda t, items: Evidence(t, GROUP_OF[t], tuple(items)),
    st.sampled_from(sorted(n for n in REASON_TYPES if n != FALLBACK)),
    st.lists(evidence_items, max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    group_shap=st.dictionaries(st.sampled_from([*GROUP_ORDER, "price", "activity"]), st.floats(-2, 2, allow_nan=False)),
    feature_shap=st.dictionaries(st.sampled_from(ALL_FEATURES), st.floats(-1, 1, allow_nan=False)),
    pool=st.lists(candidate, max_size=12),
    history=st.frozensets(st.integers(0, 30), max_size=15),
)
def test_chosen_reason_is_true_and_from_the_strongest_group_that_has_one(
    group_shap: dict[str, float], feature_shap: dict[str, float], pool: list[Evidence], history: frozenset[int]
) -> None:
    by_group: dict[str, list[Evidence]] = {}
    for ev in pool:
        by_group.setdefault(ev.group, []).append(ev)
    chosen, shap = choose(group_shap, lambda g: by_group.get(g, []), history=history, feature_shap=feature_shap)
    again = choose(dict(reversed(group_shap.items())), lambda g: by_group.get(g, []), history=history, feature_shap=feature_shap)
    assert (chosen, shap) == again, "the choice may not depend on dict order"

    def ok(ev: Evidence) -> bool:
        backed = all(sum(feature_shap.get(f, 0.0) for f in fs) > 0 for fs in BACKING[ev.reason_type])
        return backed and violations(ev, history=history, shap=feature_shap) == []

    ranked = rank_groups(group_shap)
    if chosen is None:
        assert not any(ok(ev) for g, _ in ranked for ev in by_group.get(g, []))
        return
    assert shap is not None and shap > 0 and group_shap[chosen.group] == shap
    for e in chosen.items:
        if e.role == "history":
            assert e.item in history  # never an item the customer did not interact with
        if chosen.cites_history and e.role == "history":
            assert e.contribution is not None and e.contribution > 0
    for fs in BACKING[chosen.reason_type]:
        assert sum(feature_shap.get(f, 0.0) for f in fs) > 0
    stronger = [g for g, _ in ranked][: [g for g, _ in ranked].index(chosen.group)]
    assert not any(ok(ev) for g in stronger for ev in by_group.get(g, []))


@given(
    word=st.sampled_from(sorted(FORBIDDEN_WORDS)),
    before=st.text(alphabet="abc {}", max_size=10).filter(lambda t: "{" not in t and "}" not in t),
    upper=st.booleans(),
)
def test_any_forbidden_word_anywhere_is_caught(word: str, before: str, upper: bool) -> None:
    text = f"{before} {word.upper() if upper else word.capitalize()} love this"
    assert text_problems(text)


# -- the template file --------------------------------------------------------------------


def test_bundled_templates_cover_every_reason_type() -> None:
    t = Templates.load()
    assert set(t.texts) == set(REASON_TYPES)
    assert t.render("because_you_bought", {"item": "Whole Milk"}, interaction="purchase") == "Because you bought Whole Milk"
    assert t.render("because_you_bought", {"item": "Heat"}, interaction="rating") == "Because you rated Heat"
    assert t.render("buy_again", {"n": 7}) == "You buy this about every 7 days"
    assert t.render("popular", {}) == "Popular right now"


def reworded(tmp_path: Path, change: dict[str, object]) -> Path:
    doc = json.loads(DEFAULT_TEMPLATES.read_text())
    doc["reasons"].update(change)
    path = tmp_path / "templates.json"
    path.write_text(json.dumps(doc, ensure_ascii=False))
    return path


def test_a_reworded_or_translated_file_is_used(tmp_path: Path) -> None:
    path = reworded(tmp_path, {
        "because_you_bought": {"text": {"purchase": "Weil Sie {item} gekauft haben", "default": "Wegen {item}"}},
        "popular": {"text": "Gerade beliebt"},
    })
    t = Templates.load(path)
    assert t.render("because_you_bought", {"item": "Milch"}, interaction="purchase") == "Weil Sie Milch gekauft haben"
    assert t.render("because_you_bought", {"item": "Milch"}, interaction="view") == "Wegen Milch"
    assert t.render("popular", {}) == "Gerade beliebt"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"popular": {"text": "People love this"}}, "other customers or a sensitive attribute"),
        ({"buy_again": {"text": "You buy this often"}}, "lacks placeholder"),
        ({"trending": {"text": "Trending with {customer_id}"}}, "only"),
        ({"popularr": {"text": "typo"}}, "unknown reason types"),
        ({"similar_to": {"text": {"purchase": "Like {item}"}}}, '"default"'),
        ({"popular": {"text": ""}}, "non-empty"),
    ],
)
def test_a_bad_template_file_is_rejected_saying_what_to_fix(tmp_path: Path, change: dict[str, object], message: str) -> None:
    with pytest.raises(TemplateError, match=message) as exc:
        Templates.load(reworded(tmp_path, change))
    assert str(tmp_path / "templates.json") in str(exc.value)


def test_a_missing_type_or_broken_file_is_rejected(tmp_path: Path) -> None:
    doc = json.loads(DEFAULT_TEMPLATES.read_text())
    del doc["reasons"]["popular"]
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(TemplateError, match=r"\['popular'\] are missing"):
        Templates.load(tmp_path / "a.json")
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(TemplateError, match="not valid JSON"):
        Templates.load(tmp_path / "b.json")
    with pytest.raises(TemplateError, match="does not exist"):
        Templates.load(tmp_path / "nope.json")


def test_declared_sensitive_attribute_names_may_not_appear(tmp_path: Path) -> None:
    path = reworded(tmp_path, {"popular": {"text": "Popular in your loyalty_tier"}})
    Templates.load(path)  # fine unless declared
    with pytest.raises(TemplateError, match="loyalty"):
        Templates.load(path, sensitive=("loyalty_tier",))
