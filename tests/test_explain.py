"""Explanations on a real model trained on a small generated world.

Attributions must add up on every explained item and agree with the ``shap``
package; reasons must pass the truthfulness rules; the counterfactual check
must give the known answer where there is one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from explain import Explainer, ExplainerConfig, ModelMismatchError
from explain.evidence import BACKING, HISTORY_CITING
from explain.faithfulness import check_list, evaluate_explanations
from explain.rules import FORBIDDEN_WORDS, words
from explain.summary import SUMMARY_JSON, SUMMARY_PNG, bundle_files, shap_summary
from recsys.interactions import DAY, Interactions
from recsys.recommender import Filters, Recommender
from tests.test_recommender import SMALL, demo_interactions


@pytest.fixture(scope="module")
def inter() -> Interactions:
    return demo_interactions()


@pytest.fixture(scope="module")
def model(inter: Interactions) -> Recommender:
    m = Recommender(SMALL).fit(inter)
    m.version_ = "test-model"
    return m


@pytest.fixture(scope="module")
def explainer(model: Recommender) -> Explainer:
    return Explainer(model, ExplainerConfig(strict=True, sensitive=("age_band", "region", "gender"))).prepare()


def known_customers(inter: Interactions, n: int = 40) -> list[str]:
    counts = np.diff(inter.matrix.indptr)
    ids = inter.customers.ids[counts > 0]
    return [str(c) for c in ids[:: max(1, len(ids) // n)][:n]]


def test_after_prepare_serving_compiles_no_loop(model: Recommender, inter: Interactions, tmp_path: Path) -> None:
    """Explainer.prepare() compiles every loop that recommend() and explain() run, for the argument
    types they run them with, so the first requests of a worker pay no compilation. The model is
    loaded in a fresh interpreter, as a worker loads its bundle (in this one, training and other
    tests have compiled loops already)."""
    import pickle
    import subprocess
    import sys

    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    customers = known_customers(inter, 12)
    script = f"""
import json, pickle
from explain import Explainer
from recsys.compiled import compiled_signatures
from recsys.recommender import Filters

model = pickle.loads(open({str(tmp_path / "model.pkl")!r}, "rb").read())
explainer = Explainer(model).prepare()
before = compiled_signatures()
for customer in {customers!r}:
    for filters in (Filters(), Filters(allow_repeats=False), Filters(category={str(inter.catalog["category"][0])!r})):
        explainer.explain(model.recommend(customer, 10, filters=filters))
explainer.explain(model.recommend("never-seen", 5))
after = compiled_signatures()
print(json.dumps({{name: sorted(set(sigs) - set(before.get(name, ()))) for name, sigs in after.items()
                  if set(sigs) - set(before.get(name, ()))}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=str(Path(__file__).resolve().parents[1]))
    assert done.returncode == 0, done.stderr[-3000:]
    compiled_while_serving = json.loads(done.stdout.strip().splitlines()[-1])
    assert compiled_while_serving == {}


# -- schema and additivity --------------------------------------------------------------


def test_one_explanation_per_item_with_the_documented_schema(model: Recommender, inter: Interactions, explainer: Explainer) -> None:
    ranked = model.recommend(known_customers(inter)[0], 10)
    out = explainer.explain(ranked)
    assert [e.item_id for e in out] == ranked.item_ids
    for e in out:
        d = e.as_dict()
        assert set(d) == {"reason", "attributions"}
        assert set(d["reason"]) == {"type", "text", "evidence", "verified"}
        assert all({"item_id", "title"} <= set(ev) for ev in d["reason"]["evidence"])
        assert set(d["attributions"]) == {"base_value", "score", "contributions"}
        for c in d["attributions"]["contributions"]:
            assert set(c) == {"feature", "label", "value", "shap"}
        shaps = [abs(c["shap"]) for c in d["attributions"]["contributions"]]
        assert shaps == sorted(shaps, reverse=True)
        json.dumps(d)  # the API returns it as is


def test_attributions_add_up_on_every_explained_item(model: Recommender, inter: Interactions) -> None:
    ex = Explainer(model)
    n = 0
    for customer in known_customers(inter):
        ranked = model.recommend(customer, 10, filters=Filters(allow_repeats=customer[-1] in "02468"))
        for it, e in zip(ranked.items, ex.explain(ranked), strict=True):
            a = e.as_dict()["attributions"]
            total = a["base_value"] + sum(c["shap"] for c in a["contributions"])
            assert a["score"] == it.score
            assert abs(total - it.score) <= 1e-6
            n += 1
    assert n >= 300
    assert ex.additivity_failures == 0
    assert ex.max_additivity_error <= 1e-6


def test_a_fairness_reranked_list_still_adds_up(model: Recommender, inter: Interactions) -> None:
    from recsys.ranking.policy import ServingPolicy

    ex = Explainer(model)
    policy = ServingPolicy(rerank_strength=1.0)
    for customer in known_customers(inter, 15):
        ranked = model.recommend(customer, 10, policy=policy)
        for it, e in zip(ranked.items, ex.explain(ranked), strict=True):
            assert e.attributions is not None and e.attributions.score == it.score
    assert ex.additivity_failures == 0 and ex.max_additivity_error <= 1e-6


def test_an_additivity_violation_is_logged_and_counted(model: Recommender, inter: Interactions, caplog: pytest.LogCaptureFixture) -> None:
    ex = Explainer(model)
    ranked = model.recommend(known_customers(inter)[1], 5)
    tampered = replace(ranked, items=(replace(ranked.items[0], score=ranked.items[0].score + 0.5), *ranked.items[1:]))
    with caplog.at_level(logging.WARNING, logger="explain"):
        out = ex.explain(tampered)
    assert ex.additivity_failures == 1
    assert "additivity failure" in caplog.text and ranked.items[0].item_id in caplog.text
    assert out[0].attributions is not None and out[0].attributions.additivity_error == pytest.approx(0.5)


def test_shap_tree_explainer_agrees_with_the_serving_path(model: Recommender, inter: Interactions) -> None:
    import shap

    rows = np.concatenate([
        np.stack([it.features for it in model.recommend(c, 10).items]) for c in known_customers(inter, 10)
    ])
    booster = model.ranker_.booster_  # the one the serving path calls (all seeds merged)
    explainer = shap.TreeExplainer(booster)
    values = explainer.shap_values(rows)
    serving = model.ranker_.contributions(rows)
    assert np.allclose(values, serving[:, :-1], atol=1e-6)
    assert np.allclose(explainer.expected_value, serving[:, -1], atol=1e-6)


# -- reasons and the truthfulness rules -------------------------------------------------


def test_every_reason_passes_the_truthfulness_rules(model: Recommender, inter: Interactions, explainer: Explainer) -> None:
    seen: set[str] = set()
    customer_ids = set(inter.customers.to_list())
    for customer in known_customers(inter):
        history = set(model.history_row(customer).indices.tolist())
        ranked = model.recommend(customer, 10)
        for e in explainer.explain(ranked):
            r = e.reason
            seen.add(r.type)
            assert r.verified or r.type == "picked_for_you"
            for ev in r.evidence:
                assert not {str(v) for v in ev.as_dict().values()} & customer_ids, "names a customer"
                if ev.role == "history":
                    assert ev.item in history, "cites an item the customer never interacted with"
            if r.type in HISTORY_CITING:
                cited = r.cited
                assert cited is not None and cited.contribution is not None and cited.contribution > 0
                assert (cited.title or cited.item_id) in r.text
            assert e.attributions is not None
            shap = e.attributions.feature_shap()
            for features in BACKING.get(r.type, ()):
                assert sum(shap[f] for f in features) > 0, (r.type, features)
            assert not set(words(r.text)) & FORBIDDEN_WORDS
    assert explainer.rule_violations == 0
    assert seen & HISTORY_CITING, "the world should produce at least one history-citing reason"
    assert len(seen) >= 3


def test_reason_group_is_the_strongest_positive_group_with_evidence(model: Recommender, inter: Interactions) -> None:
    from explain.reasons import rank_groups

    # the choice among groups alone, without the counterfactual check (tested below)
    explainer = Explainer(model, ExplainerConfig(strict=True, counterfactual=False))
    for customer in known_customers(inter, 15):
        ranked = model.recommend(customer, 10)
        for it, e in zip(ranked.items, explainer.explain(ranked), strict=True):
            if e.reason.group is None:
                continue
            assert e.attributions is not None
            order = [g for g, _ in rank_groups(e.attributions.by_group())]
            stronger = order[: order.index(e.reason.group)]
            row = model.history_row(customer)
            for g in stronger:  # every stronger group had no qualifying evidence
                shap = e.attributions.feature_shap()
                for cand in explainer.finder.candidates(g, customer, it.index, it.features, row=row):
                    assert not all(sum(shap[f] for f in fs) > 0 for fs in BACKING[cand.reason_type])


def test_group_sums_of_a_list_are_each_rows_own_bit_for_bit() -> None:
    from explain.attributions import _GROUPS, _group_sums
    from recsys.ranking.features import FEATURE_NAMES

    rng = np.random.default_rng(5)
    names = tuple(FEATURE_NAMES)
    for _ in range(50):
        shap = rng.normal(size=(int(rng.integers(1, 12)), len(names))) * rng.random(len(names))
        shap[rng.random(shap.shape) < 0.4] = 0.0  # features without a contribution; some groups without any
        for row, got in zip(shap, _group_sums(names, shap), strict=True):
            want: dict[str, float] = {}
            for name, v in zip(names, row.tolist(), strict=True):  # feature order, from 0.0: as one bincount adds
                if v != 0.0 or _GROUPS[name] in want:
                    want[_GROUPS[name]] = want.get(_GROUPS[name], 0.0) + v
            assert got == want  # the same groups, the same floats


def test_batched_history_contributions_equal_the_retrievers_own(model: Recommender, inter: Interactions, explainer: Explainer) -> None:
    r = model.stage_.retrievers
    for customer in known_customers(inter, 8):
        row = model.history_row(customer)
        ctx = explainer.finder.context(row)
        for it in model.recommend(customer, 10).items:
            for mine, theirs in (
                (ctx.copurchase(it.index), r["copurchase"].contributions(row, it.index)),
                (ctx.ease(it.index), r["ease"].contributions(row, it.index)),
                (ctx.als(it.index), r["als"].explain(row, it.index)),
            ):
                assert [j for j, _ in mine] == [j for j, _ in theirs]
                assert np.allclose([v for _, v in mine], [v for _, v in theirs], rtol=1e-6, atol=1e-9)


class HashingEncoder:
    """A tiny deterministic text encoder (bag of hashed words), so the test needs no model download."""

    name = "test-hashing"

    def encode(self, texts: list[str]) -> np.ndarray:
        import zlib

        out = np.zeros((len(texts), 32), np.float32)
        for r, t in enumerate(texts):
            for w in t.lower().split():
                out[r, zlib.crc32(w.encode()) % 32] += 1.0
        return out


def test_content_contributions_add_up_to_the_content_score(inter: Interactions) -> None:
    from types import SimpleNamespace

    from explain.evidence import EvidenceFinder
    from recsys.retrieval.content import ContentConfig, ContentRetriever

    content = ContentRetriever(ContentConfig(), encoder=HashingEncoder()).fit(inter)
    fake = SimpleNamespace(stage_=SimpleNamespace(retrievers={"content": content}, interactions=inter))
    finder = EvidenceFinder(fake)
    for customer in known_customers(inter, 5):
        ctx = finder.context(inter.row(customer), customer)
        scores = content.score_all(customer)
        for item in range(0, len(inter.items), 17):
            pairs, sims = ctx.content(item)
            own = content.history_row(customer)[0, item]
            norm = np.linalg.norm(content.history_row(customer).data @ content.embeddings_[content.history_row(customer).indices])
            self_part = own * sims.get(item, 0.0) / norm if own else 0.0
            assert sum(v for _, v in pairs) + self_part == pytest.approx(float(scores[item]), abs=1e-5)
            assert all(np.sign(v) == np.sign(sims[j]) for j, v in pairs)


def test_explanations_are_deterministic(model: Recommender, inter: Interactions) -> None:
    customer = known_customers(inter)[3]
    a = [e.as_dict() for e in Explainer(model).explain(model.recommend(customer, 10))]
    b = [e.as_dict() for e in Explainer(model).explain(model.recommend(customer, 10))]
    assert a == b


def test_cold_start_and_no_consent_say_popular_honestly(model: Recommender, inter: Interactions, explainer: Explainer) -> None:
    for ranked in (model.recommend("never-seen", 5), model.recommend(known_customers(inter)[0], 5, personalise=False)):
        assert ranked.status in ("cold_start", "not_personalised")
        for e in explainer.explain(ranked):
            d = e.as_dict()
            assert d["attributions"] is None
            assert d["reason"] == {**d["reason"], "type": "popular", "text": "Popular right now", "verified": True}
            assert d["reason"]["evidence"][0]["role"] == "recommended"
            assert d["reason"]["evidence"][0]["item_id"] == e.item_id


def test_a_list_from_another_model_is_refused(model: Recommender, inter: Interactions, explainer: Explainer) -> None:
    ranked = replace(model.recommend(known_customers(inter)[0], 3), model_version="other-model")
    with pytest.raises(ModelMismatchError, match="other-model"):
        explainer.explain(ranked)


def test_live_events_are_history_the_reasons_may_cite(model: Recommender, inter: Interactions) -> None:
    import pickle

    model = pickle.loads(pickle.dumps(model))  # a private copy: observe() changes the model
    customer = known_customers(inter)[5]
    before = set(model.history_row(customer).indices.tolist())
    new_item = next(i for i in range(len(inter.items)) if i not in before)
    model.observe(customer, pl.DataFrame({"item_id": [str(inter.items.ids[new_item])], "event_type": ["purchase"]}))
    ex = Explainer(model, ExplainerConfig(strict=True))
    history = set(model.history_row(customer).indices.tolist())
    assert new_item in history
    for e in ex.explain(model.recommend(customer, 10)):
        for ev in e.reason.evidence:
            if ev.role == "history":
                assert ev.item in history


def test_buy_again_evidence_is_the_repeat_rhythm_the_list_was_ranked_with(model: Recommender, inter: Interactions) -> None:
    """Repeat purchases that arrived after training: the evidence gives the live rhythm the features used."""
    import pickle

    from recsys.ranking.features import FEATURE_INDEX

    model = pickle.loads(pickle.dumps(model))  # a private copy: observe() changes the model
    customer = known_customers(inter)[3]
    before = set(model.history_row(customer).indices.tolist())
    item = next(i for i in range(len(inter.items)) if i not in before)
    now = int(inter.now)
    days = [now - 21 * int(DAY), now - 14 * int(DAY), now - 7 * int(DAY)]
    model.observe(customer, pl.DataFrame({"item_id": [str(inter.items.ids[item])] * 3, "event_type": ["purchase"] * 3,
                                          "ts": days}))
    ranked = model.recommend(customer, len(inter.items))
    it = next(x for x in ranked.items if x.index == item)
    assert model.stage_.retrievers["buy_again"].evidence(customer, item) is None  # not in the trained pairs
    finder = Explainer(model).finder
    ctx = finder.context(ranked.basis.history.row, customer, ranked.basis, [item])
    (ev,) = finder.candidates("buy_again", customer, item, it.features, row=ctx, now=ranked.now)
    figures = ev.items[0].figures
    assert figures["purchases"] == 3 and figures["typical_interval_days"] == 7.0
    assert figures["interval_ratio"] == pytest.approx(it.features[FEATURE_INDEX["buy_again_interval_ratio"]], rel=1e-6)
    assert figures["due_score"] == pytest.approx(it.features[FEATURE_INDEX["buy_again_score"]], rel=1e-6)
    assert ev.values == {"n": 7}


def test_content_evidence_of_a_live_list_adds_up_to_the_score_it_was_ranked_with(
    inter: Interactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recsys.retrieval.content as content_module
    from recsys.ranking.features import FEATURE_INDEX
    from recsys.retrieval.content import ContentConfig
    from tests.test_recommender import _HashingEncoder

    monkeypatch.setattr(content_module, "SentenceTransformerEncoder", _HashingEncoder)
    model = Recommender(replace(SMALL, content=ContentConfig(cache_dir=None))).fit(inter)
    customer = known_customers(inter)[7]
    before = set(model.history_row(customer).indices.tolist())
    new_items = [i for i in range(len(inter.items)) if i not in before][:3]
    model.observe(customer, pl.DataFrame({
        "item_id": [str(inter.items.ids[i]) for i in new_items], "event_type": ["purchase"] * len(new_items),
    }))
    ranked = model.recommend(customer, 10, filters=Filters(exclude_purchased=True, allow_repeats=False))
    assert ranked.basis is not None
    ctx = Explainer(model).finder.context(ranked.basis.history.row, customer, ranked.basis)
    compared = 0
    for it in ranked.items:
        if it.index in ranked.basis.history.items:
            continue  # an item's own vector is left out of its evidence
        history, values, _ = ctx.content_arrays(it.index)
        assert set(new_items) <= set(history.tolist())  # the live purchases are in the profile
        assert abs(values.sum() - it.features[FEATURE_INDEX["content_score"]]) < 1e-5
        compared += 1
    assert compared >= 5


# -- faithfulness -----------------------------------------------------------------------


def two_worlds(seed: int = 0) -> tuple[Interactions, str, str]:
    """Two disjoint item clusters; one customer bought one item of A and, often, one item X of B.

    Nothing but X links that customer to cluster B, so every B item explained
    by X must lose its score when X is removed, and fall below the A items
    that owe nothing to X: the known answer.
    """
    rng = np.random.default_rng(seed)
    rows = []
    start = 1_700_000_000
    for c in range(160):
        cluster = c % 2
        items = rng.choice(20, 8, replace=False) + 20 * cluster
        for day in sorted(rng.choice(120, 12, replace=False)):
            for i in rng.choice(items, 3, replace=False):
                rows.append((f"c{c:03d}", f"i{i:02d}", "purchase", start + int(day * DAY) + c))
    x = "i25"
    for day in (3, 60, 110):
        rows.append(("target", "i00", "purchase", start + int(day * DAY)))
    for day in (10, 30, 50, 70, 90, 100, 115):
        rows.append(("target", x, "purchase", start + int(day * DAY)))
    events = pl.DataFrame(rows, schema=["customer_id", "item_id", "event_type", "ts"], orient="row")
    catalog = pl.DataFrame({
        "item_id": [f"i{i:02d}" for i in range(40)],
        "title": [f"{'Alpha' if i < 20 else 'Beta'} item {i}" for i in range(40)],
        "category": ["A" if i < 20 else "B" for i in range(40)],
    })
    return Interactions.from_events(events, catalog=catalog), "target", x


def test_counterfactual_known_answer_removing_the_only_link_removes_its_evidence() -> None:
    from explain.faithfulness import _ranks
    from recsys.ranking.features import FEATURE_INDEX

    inter, customer, x = two_worlds()
    config = replace(SMALL, mode="discovery", als=replace(SMALL.als, num_threads=1))
    model = Recommender(config).fit(inter)
    filters = Filters(exclude_purchased=True, allow_repeats=False)
    ranked = model.recommend(customer, 40, filters=filters)
    explained = Explainer(model).explain(ranked)
    item_item = [e for e in explained if e.reason.type in ("bought_together", "goes_with")]
    assert item_item, [e.reason.text for e in explained]
    for e in item_item:  # co-purchase and EASE links never cross the clusters
        assert e.reason.cited is not None
        assert (e.reason.cited.item_id == x) == (e.item_id >= "i20")
    results = {r.item_id: r for r in check_list(model, ranked, explained, filters=filters)}
    row = model.history_row(customer)
    without = row.copy()
    without.data[without.indices == inter.items.index(x)] = 0
    without.eliminate_zeros()
    pool = np.asarray([it.index for it in model.recommend(customer, 100, filters=filters).items])
    after_all = model.score_items(customer, pool, history=without, filters=filters)
    after_rank = _ranks(pool, after_all)
    for e in (e for e in item_item if e.item_id >= "i20"):
        # the known answer: without X, nothing co-purchase or EASE is left for a cluster B item
        before = model.item_features(customer, [e.index], filters=filters)[0]
        after = model.item_features(customer, [e.index], history=without, filters=filters)[0]
        for f in ("copurchase_score", "copurchase_max"):
            assert before[FEATURE_INDEX[f]] > 0 and after[FEATURE_INDEX[f]] == 0, f
        # EASE's regression sees the one customer who bought both clusters: a trace is left
        ease = FEATURE_INDEX["ease_score"]
        assert before[ease] > 0 and abs(after[ease]) <= 0.05 * before[ease]
        # and the check reports exactly the re-run ranker's score and rank on those features
        r = results[e.item_id]
        p = int(np.flatnonzero(pool == e.index)[0])
        assert r.score_after == pytest.approx(float(model.ranker_.predict(after[None, :])[0]))
        assert r.score_after == pytest.approx(float(after_all[p])) and r.rank_after == after_rank[p]
        assert r.passed == (r.score_after < r.score_before and r.rank_after > r.rank_before)


def test_history_reasons_shown_by_default_pass_the_full_pool_check(model: Recommender, inter: Interactions) -> None:
    checked = Explainer(model, ExplainerConfig(strict=True))  # the serving-time check is on by default
    plain = Explainer(model, ExplainerConfig(strict=True, counterfactual=False))
    filters = Filters(allow_repeats=False)
    shown = plain_failures = 0
    for customer in known_customers(inter, 12):
        ranked = model.recommend(customer, 10, filters=filters)
        out = checked.explain(ranked, filters=filters)
        # the list check passed, so the offline check against the whole pool passes too
        results = check_list(model, ranked, out, filters=filters)
        assert all(r.passed for r in results)
        assert all(e.reason.verified for e in out if e.reason.cited is not None)
        shown += len(results)
        unchecked = plain.explain(ranked)
        assert not any(e.reason.verified for e in unchecked if e.reason.cited is not None)
        plain_failures += sum(not r.passed for r in check_list(model, ranked, unchecked, filters=filters))
    assert shown > 0
    # every reason the plain explainer shows and that fails was the checked one's first, rejected candidate
    counters = checked.counters()
    assert counters["counterfactual_rejections"] + counters["counterfactual_unchecked"] >= plain_failures
    assert 0 < counters["counterfactual_rescored"] <= 12 * checked.config.counterfactual_budget


def test_a_category_filtered_list_is_checked_under_its_own_filters(model: Recommender, inter: Interactions) -> None:
    # the list records what it was made under, so a caller that passes only the list (as the API
    # does) gets the check under the list's category, not an unfiltered one: the features differ
    checked = Explainer(model, ExplainerConfig(strict=True))
    categories = inter.catalog["category"].value_counts(sort=True)["category"].to_list()
    seen = 0
    for customer in known_customers(inter, 12):
        for category in categories[:3]:
            filters = Filters(category=category, allow_repeats=False)
            ranked = model.recommend(customer, 10, filters=filters)
            assert ranked.filters == filters
            out = checked.explain(ranked)
            assert [e.as_dict() for e in out] == [e.as_dict() for e in checked.explain(ranked, filters=filters)]
            results = check_list(model, ranked, out)
            assert all(r.passed for r in results), [r for r in results if not r.passed]
            seen += len(results)
    assert seen > 0


def test_list_check_is_the_batched_score_without(model: Recommender, inter: Interactions) -> None:
    from explain.faithfulness import ListCheck, _ranks

    filters = Filters(allow_repeats=False)
    customer = known_customers(inter)[4]
    ranked = model.recommend(customer, 10, filters=filters)
    assert ranked.runner_up is not None
    # the list and the pool's next item: the list's last item can fall below it
    items = np.asarray([it.index for it in ranked.items] + [ranked.runner_up[0]])
    before = np.asarray([it.score for it in ranked.items] + [ranked.runner_up[1]])
    history = model.history_row(customer).indices[:3].tolist()
    check = ListCheck(model, ranked, filters=filters, budget=2)
    for x in history:  # the item at position 0 would cite these, in this order; position 1 only the third
        check.want(0, x)
    check.want(1, history[2])
    # the third is worth 1/3 to position 0 and 1 to position 1: re-scored first, then the first
    assert check.plan() == [history[2], history[0]]
    check.run()
    assert check.rescored == 2
    assert check.verdict(0, history[1]) is False and check.unchecked == 1  # over budget: never shown
    for x in (history[0], history[2]):
        without = model.history_row(customer)
        without.data[without.indices == x] = 0
        without.eliminate_zeros()
        after = model.score_items(customer, items, history=without, filters=filters)
        want = (after < before) & (_ranks(items, after) > _ranks(items, before))
        assert [check.verdict(p, x) for p in range(len(ranked.items))] == want[:-1].tolist()


def test_the_runner_up_is_the_pools_next_item_and_lets_the_last_item_cite_history(
    model: Recommender, inter: Interactions
) -> None:
    from recsys.ranking.policy import ServingPolicy

    filters = Filters(allow_repeats=False)
    explainer = Explainer(model, ExplainerConfig(strict=True))
    last_cited = 0
    for customer in known_customers(inter, 12):
        ranked = model.recommend(customer, 10, filters=filters)
        longer = model.recommend(customer, 11, filters=filters)
        assert [(it.index, it.score) for it in ranked.items] == [(it.index, it.score) for it in longer.items[:10]]
        assert ranked.runner_up == (longer.items[10].index, longer.items[10].score)
        out = explainer.explain(ranked)
        last_cited += out[-1].reason.cited is not None
        assert all(r.passed for r in check_list(model, ranked, out))
    assert last_cited > 0  # the bottom item can pass by falling below the runner-up
    customer = known_customers(inter)[0]
    # no runner-up when the pool ends with the list, or when a policy re-orders it (then the list is not
    # the pool's top and its last item gets no history-citing reason)
    everything = model.recommend(customer, len(inter.items), filters=filters)
    assert everything.runner_up is None
    assert everything.items and explainer.explain(everything)[-1].reason.cited is None
    reordered = model.recommend(customer, 10, filters=filters, policy=ServingPolicy(rerank_strength=0.5))
    assert reordered.items and reordered.runner_up is None


def test_a_zero_budget_shows_no_history_reason(model: Recommender, inter: Interactions) -> None:
    explainer = Explainer(model, ExplainerConfig(strict=True, counterfactual_budget=0))
    out = [e for c in known_customers(inter, 8) for e in explainer.explain(model.recommend(c, 10))]
    assert not any(e.reason.cited is not None for e in out)
    assert explainer.counters()["counterfactual_unchecked"] > 0


def test_rank_and_pass_logic_by_hand() -> None:
    from explain.faithfulness import CounterfactualResult, _ranks

    items = np.array([5, 3, 9, 1])
    assert _ranks(items, np.array([0.5, 0.9, 0.5, 0.1])).tolist() == [2, 1, 3, 4]  # tie: lower index first
    def result(before: float, after: float, rb: int, ra: int) -> CounterfactualResult:
        return CounterfactualResult("i", "goes_with", "x", before, after, rb, ra, 10)
    assert result(1.0, 0.5, 2, 4).passed and result(1.0, 0.5, 2, 4).rank_drop == 2
    assert not result(1.0, 0.5, 2, 2).passed  # fell, but kept its place
    assert not result(1.0, 1.2, 2, 3).passed  # lost a place, but its own score rose
    assert not result(1.0, 0.5, 3, 1).passed and result(1.0, 0.5, 3, 1).rank_drop == -2


def test_counterfactual_baseline_is_the_served_list(model: Recommender, inter: Interactions) -> None:
    customer = known_customers(inter)[2]
    ranked = model.recommend(customer, 10)
    served = np.asarray([it.score for it in ranked.items])
    again = model.score_items(customer, [it.index for it in ranked.items], history=model.history_row(customer))
    assert np.allclose(served, again, atol=1e-9)


def test_evaluation_summary_has_the_reported_keys(model: Recommender, inter: Interactions) -> None:
    out = evaluate_explanations(model, known_customers(inter, 20), k=10, discovery=False, max_customers=20)
    assert {"faithfulness_rate", "checked", "max_additivity_error", "reason_types", "rank_drop"} <= set(out)
    assert out["checked"] > 0 and 0.0 <= out["faithfulness_rate"] <= 1.0
    assert out["max_additivity_error"] <= 1e-6 and out["additivity_failures"] == 0
    assert sum(out["reason_types"].values()) == out["explained_items"] == 200
    assert sum(out["rank_drop"]["histogram"].values()) == out["checked"]


# -- the global summary -----------------------------------------------------------------


def test_shap_summary_files_for_the_bundle(model: Recommender) -> None:
    summary = shap_summary(model, customers=40, k=10)
    mean_abs = summary.mean_abs()
    assert list(mean_abs) and list(mean_abs.values()) == sorted(mean_abs.values(), reverse=True)
    assert np.allclose(list(mean_abs.values()), np.sort(np.abs(summary.values).mean(axis=0))[::-1])
    files = bundle_files(model, customers=40)
    assert files[SUMMARY_PNG][:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(files[SUMMARY_JSON])
    assert doc["rows"] > 0 and doc["features"][0]["mean_abs_shap"] >= doc["features"][-1]["mean_abs_shap"]


def test_the_cited_items_are_the_largest_positive_contributions_in_order() -> None:
    from explain.evidence import _top_kernel

    rng = np.random.default_rng(9)
    for trial in range(400):
        size = int(rng.integers(0, 40))
        history = rng.choice(60, size, replace=trial % 4 != 0).astype(np.int64)  # sometimes an item twice
        # coarse values: ties (also across the n-th place), zeros and negatives; now and then a NaN
        values = np.round(rng.normal(0.2, 1.0, size), 1).astype(np.float64)
        if trial % 7 == 0 and size:
            values[rng.integers(0, size)] = np.nan
        item = int(rng.integers(0, 60))
        n = int(rng.integers(1, 6))
        out = np.empty(n, np.int64)
        got = out[: _top_kernel()(values, history, item, out)]
        keep = np.flatnonzero((values > 0) & (history != item))
        want = keep[np.lexsort((history[keep], -values[keep]))][:n]  # stable: equal pairs by position
        assert np.array_equal(got, want), trial
