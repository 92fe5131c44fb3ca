"""The two-stage recommender on a small generated world: serving path, filters, bundles, quality."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recsys.bundle import ModelRegistry
from recsys.data.demo import DemoConfig, generate_demo
from recsys.errors import BundleError, NotFittedError
from recsys.interactions import Interactions
from recsys.ranking.features import FEATURE_NAMES
from recsys.ranking.ranker import RankerConfig
from recsys.recommender import Filters, Recommender, RecommenderConfig
from recsys.retrieval.als import AlsConfig
from recsys.retrieval.ease import EaseConfig

SMALL = RecommenderConfig(
    als=AlsConfig(factors=16, iterations=8),
    ease=EaseConfig(l2=50.0, max_items=2000),
    content=None,
    ranker=RankerConfig(n_estimators=30, min_child_samples=10),
    label_window_days=21.0,
)


def demo_interactions(seed: int = 3) -> Interactions:
    data = generate_demo(DemoConfig(customers=300, items=120, categories=8, days=120, seed=seed))
    events = data.events.with_columns(
        pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC").dt.epoch("s").alias("ts")
    )
    catalog = data.items.with_columns(pl.lit(True).alias("active"))
    return Interactions.from_events(events, catalog=catalog)


@pytest.fixture(scope="module")
def inter() -> Interactions:
    return demo_interactions()


@pytest.fixture(scope="module")
def model(inter: Interactions) -> Recommender:
    return Recommender(SMALL).fit(inter)


def a_known_customer(inter: Interactions) -> str:
    counts = np.diff(inter.matrix.indptr)
    return str(inter.customers.ids[int(np.argsort(-counts)[len(counts) // 3])])


def test_use_before_fit_raises() -> None:
    with pytest.raises(NotFittedError):
        Recommender(SMALL).recommend("x", 5)


def test_known_customer_gets_ranked_distinct_items(model: Recommender, inter: Interactions) -> None:
    customer = a_known_customer(inter)
    ranked = model.recommend(customer, 10)
    assert ranked.status == "known"
    assert len(ranked.items) == 10
    assert len(set(ranked.item_ids)) == 10
    scores = [it.score for it in ranked.items]
    assert scores == sorted(scores, reverse=True)
    assert [it.rank for it in ranked.items] == list(range(1, 11))
    for it in ranked.items:
        assert it.features.shape == (len(FEATURE_NAMES),)
        assert it.sources
    # already-bought items only come back as buy-again repeats
    history = set(inter.history(customer).tolist())
    for it in ranked.items:
        if it.index in history:
            assert "buy_again" in it.sources


def test_discovery_filters_exclude_every_history_item(model: Recommender, inter: Interactions) -> None:
    customer = a_known_customer(inter)
    ranked = model.recommend(customer, 10, filters=Filters(allow_repeats=False))
    assert not set(it.index for it in ranked.items) & set(inter.history(customer).tolist())


def test_unknown_customer_is_cold_start_with_popular_items(model: Recommender) -> None:
    ranked = model.recommend("never-seen", 5)
    assert ranked.status == "cold_start"
    assert len(ranked.items) == 5
    assert all(it.sources == ("popularity",) for it in ranked.items)


def test_without_consent_the_list_is_not_personalised(model: Recommender, inter: Interactions) -> None:
    customer = a_known_customer(inter)
    a = model.recommend(customer, 5, personalise=False)
    b = model.recommend("someone-else", 5)
    assert a.status == "not_personalised"
    assert a.item_ids == b.item_ids


def test_category_and_price_filters(model: Recommender, inter: Interactions) -> None:
    customer = a_known_customer(inter)
    category = inter.catalog["category"][0]
    ranked = model.recommend(customer, 5, filters=Filters(category=category))
    cats = dict(zip(inter.catalog["item_id"], inter.catalog["category"], strict=True))
    assert ranked.items and all(cats[i] == category for i in ranked.item_ids)
    cheap = float(inter.catalog["price"].median())
    ranked = model.recommend(customer, 5, filters=Filters(max_price=cheap))
    prices = dict(zip(inter.catalog["item_id"], inter.catalog["price"], strict=True))
    assert ranked.items and all(prices[i] <= cheap for i in ranked.item_ids)
    cold = model.recommend("nobody", 5, filters=Filters(category=category, max_price=cheap))
    assert all(cats[i] == category and prices[i] <= cheap for i in cold.item_ids)


def test_inactive_items_are_never_returned(inter: Interactions) -> None:
    customer = a_known_customer(inter)
    first = Recommender(SMALL).fit(inter).recommend(customer, 10)
    banned = set(first.item_ids[:3]) | set(Recommender(SMALL).fit(inter).recommend("nobody", 3).item_ids)
    catalog = inter.catalog.with_columns(pl.col("item_id").is_in(list(banned)).not_().alias("active"))
    inter2 = Interactions.from_events(inter.events, catalog=catalog)
    model = Recommender(SMALL).fit(inter2)
    assert not banned & set(model.recommend(customer, 10).item_ids)
    assert not banned & set(model.recommend("nobody", 10).item_ids)


def test_top_picks_are_the_best_n_plus_excluded_less_the_excluded() -> None:
    from recsys.recommender import _top
    from recsys.retrieval.base import top_k

    rng = np.random.default_rng(4)
    for trial in range(300):
        n_items = int(rng.integers(1, 4000))
        size = int(rng.integers(1, n_items + 1))
        ids = np.sort(rng.choice(n_items, size, replace=False)) if trial % 2 else None
        scores = rng.integers(-5, 20, size if ids is not None else n_items).astype(np.float32)  # ties, zeros
        scores[rng.random(len(scores)) < 0.05] = -np.inf
        excluded = np.zeros(n_items, bool)
        excluded[rng.choice(n_items, int(rng.integers(0, min(n_items, 300) + 1)), replace=False)] = True
        n = int(rng.integers(1, 200))
        pos = top_k(scores, n + int(excluded.sum()))  # the formulation it replaces
        pos = pos[np.isfinite(scores[pos]) & (scores[pos] > 0)]
        want = pos if ids is None else ids[pos]
        want = want[~excluded[want]][:n]
        got = _top(scores, n, int(excluded.sum()), excluded, ids=ids)
        assert got.tolist() == want.tolist(), trial


def test_cold_start_lists_are_the_popularity_sources_order_past_any_filtered_head(inter: Interactions) -> None:
    """The cold-start list reads the cached popularity order: it is the popularity source's own
    selection over the whole catalogue, filtered, scores included, even when every item of the
    first 3k is inactive (a selection of the first 3k alone would come back short)."""
    probe = Recommender(SMALL).fit(inter)
    pop = probe.stage_.retrievers["popularity"]
    n = len(inter.items)
    head = pop.candidates("nobody", 12).items
    banned = {str(inter.items.ids[i]) for i in head}
    catalog = inter.catalog.with_columns(pl.col("item_id").is_in(list(banned)).not_().alias("active"))
    model = Recommender(SMALL).fit(Interactions.from_events(inter.events, catalog=catalog))
    pop = model.stage_.retrievers["popularity"]
    active = ~catalog["item_id"].is_in(list(banned)).to_numpy()
    price = model.stage_.table.price
    cheap = float(np.nanmedian(price))
    category = str(inter.catalog["category"][0])
    for filters in (Filters(), Filters(category=category), Filters(max_price=cheap),
                    Filters(category=category, max_price=cheap), Filters(category="no such category")):
        whole = pop.candidates("nobody", n, category=filters.category)
        ok = active[whole.items]
        if filters.max_price is not None:
            ok &= np.isfinite(price[whole.items]) & (price[whole.items] <= filters.max_price)
        want_items, want_scores = whole.items[ok][:4], whole.scores[ok][:4]
        got = model.recommend("nobody", 4, filters=filters)
        assert [it.index for it in got.items] == want_items.tolist(), filters
        assert [it.score for it in got.items] == want_scores.tolist(), filters
        assert got.status == "cold_start"
    assert len(model.recommend("nobody", 4).items) == 4
    assert not banned & set(model.recommend("nobody", 4).item_ids)


def test_popularity_proposals_under_a_category_are_the_sources_own_picks(model: Recommender, inter: Interactions) -> None:
    """Under a category filter the popularity source proposes the category's head past the history,
    plus the category's own head: what its candidates() selects, read off the cached orders."""
    stage = model.stage_
    pop, count = stage.retrievers["popularity"], stage.config.candidates.popularity
    counts = np.diff(inter.matrix.indptr)
    for customer in inter.customers.ids[counts > 0][:10].tolist():
        history = inter.history(customer)
        mask = np.zeros(len(inter.items), bool)
        mask[history] = True
        for category in [*sorted(set(inter.catalog["category"].to_list()))[:4], "no such category"]:
            head = pop.candidates(customer, count + len(history), category=category).items
            want = np.union1d(head[~mask[head]][:count], pop.candidates(customer, count, category=category).items)
            got = stage.popularity_proposals(customer, len(history), lambda h, m=mask: m[h], category=category)
            assert got.tolist() == want.tolist(), (customer, category)


def test_same_seed_same_recommendations(inter: Interactions, model: Recommender) -> None:
    customer = a_known_customer(inter)
    again = Recommender(SMALL).fit(inter)
    assert again.recommend(customer, 10).item_ids == model.recommend(customer, 10).item_ids


def test_bundle_round_trip_activation_and_pruning(model: Recommender, inter: Interactions, tmp_path: Path) -> None:
    from recsys.training import save_bundle

    infos = [save_bundle(model, inter, tmp_path, started=0.0, keep=2) for _ in range(3)]
    reg = ModelRegistry(tmp_path)
    versions = [b.version for b in reg.versions()]
    assert len(versions) == 2 and infos[-1].version == reg.active_version()
    loaded, manifest = reg.load()
    customer = a_known_customer(inter)
    assert loaded.recommend(customer, 10).item_ids == model.recommend(customer, 10).item_ids
    assert loaded.recommend(customer, 3).model_version == manifest["version"]
    for key in ("version", "created_at", "data", "config", "metrics", "libraries", "files"):
        assert key in manifest
    assert manifest["data"]["events"] == inter.events.height
    assert "lightgbm" in manifest["libraries"]
    reg.activate(versions[1])
    assert reg.active_version() == versions[1]


def test_broken_bundles_say_what_is_wrong(model: Recommender, inter: Interactions, tmp_path: Path) -> None:
    from recsys.training import save_bundle

    info = save_bundle(model, inter, tmp_path, started=0.0)
    reg = ModelRegistry(tmp_path)
    (info.path / "recommender.pkl").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="does not match its checksum"):
        reg.load()
    manifest = json.loads((info.path / "manifest.json").read_text())
    del manifest["files"]
    (info.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="lacks files"):
        reg.load()
    with pytest.raises(BundleError, match="no model bundle 'nope'"):
        reg.load("nope")
    with pytest.raises(BundleError, match="run `clearshelf train` first"):
        ModelRegistry(tmp_path / "empty").load()


def test_ranker_beats_its_best_single_source_on_held_out_weeks() -> None:
    """Quality with a known direction: on held-out later weeks the ranker is better than popularity."""
    from recsys.evaluation.models import ClearshelfModel
    from recsys.evaluation.runner import RetrieverRecommender, evaluate_models
    from recsys.evaluation.splits import temporal_split
    from recsys.retrieval.popularity import PopularityRetriever

    full = demo_interactions(seed=5)
    events = full.events.select("customer_id", "item_id", "event_type", "ts", "value")
    split = temporal_split(events, test_fraction=0.2)
    result = evaluate_models(
        split,
        {
            "clearshelf": lambda: ClearshelfModel(replace(SMALL, mode="discovery")),
            "popularity": lambda: RetrieverRecommender(PopularityRetriever()),
        },
        k=10,
        catalog=full.catalog,
    )
    ours, pop = result.models["clearshelf"].metrics["ndcg@10"], result.models["popularity"].metrics["ndcg@10"]
    assert ours > pop * 1.1, (ours, pop)


def test_feature_docs_match_the_code() -> None:
    from recsys.ranking.features import FEATURES, feature_table_markdown

    docs = (Path(__file__).resolve().parents[1] / "docs" / "features.md").read_text()
    assert feature_table_markdown() in docs, "regenerate docs/features.md from recsys/ranking/features.py"
    assert len({f.name for f in FEATURES}) == len(FEATURES)


def test_random_label_split_trains_on_held_out_events(inter: Interactions) -> None:
    """The ranker can learn from random hold-outs (random evaluation splits) instead of the last weeks."""
    from recsys.errors import TrainingDataError

    model = Recommender(replace(SMALL, label_split="random", label_windows=2)).fit(inter)
    assert model.training_groups_ > 0.5 * len(inter.customers)  # almost everyone has held-out events
    assert model.recommend(a_known_customer(inter), 5).status == "known"
    untimed = Interactions.from_events(inter.events.with_columns(pl.lit(None, dtype=pl.Int64).alias("ts")),
                                       catalog=inter.catalog)
    with pytest.raises(TrainingDataError, match="timestamp"):
        Recommender(replace(SMALL, label_split="time")).fit(untimed)


def test_tuned_sources_take_the_baselines_validation_choices() -> None:
    from recsys.evaluation.job import tuned_sources

    params = {
        "als": {"factors": 16, "regularization": 10.0, "alpha": 3.0, "scaling": "log"},
        "ease": {"l2": 300.0},
        "itemknn": {"similarity": "bm25", "neighbours": 400, "shrinkage": 10.0},
        "bpr": {"factors": 64},
    }
    base = RecommenderConfig()
    tuned = tuned_sources(base, params)
    assert (tuned.als.factors, tuned.als.regularization, tuned.als.alpha) == (16, 10.0, 3.0)
    assert tuned.ease is not None and base.ease is not None
    assert tuned.ease.l2 == 300.0 and tuned.ease.max_items == base.ease.max_items
    assert (tuned.copurchase.similarity, tuned.copurchase.neighbours) == ("bm25", 400)
    assert tuned.ranker == base.ranker and tuned.label_windows == base.label_windows
    assert tuned_sources(base, {}) == base
    assert tuned_sources(replace(base, ease=None), params).ease is None


# -- batched counterfactual scoring ---------------------------------------------------


class _HashingEncoder:
    """A tiny deterministic text encoder (bag of hashed words): the content source without a model download."""

    name = "test-hashing-recommender"

    def __init__(self, **_: object) -> None:
        pass

    def encode(self, texts: list[str]) -> np.ndarray:
        import zlib

        out = np.zeros((len(texts), 16), np.float32)
        for r, t in enumerate(texts):
            for w in t.lower().split():
                out[r, zlib.crc32(w.encode()) % 16] += 1.0
        return out


def _without(row: object, item: int) -> object:
    out = row.copy()  # type: ignore[attr-defined]
    out.data[out.indices == item] = 0
    out.eliminate_zeros()
    return out


def _assert_score_without_is_score_items(model: Recommender, inter: Interactions, filters: Filters) -> int:
    counts = np.diff(inter.matrix.indptr)
    compared = 0
    for customer in inter.customers.ids[counts > 1][:12].tolist():
        ranked = model.recommend(customer, 40, filters=filters)
        pool = np.asarray([it.index for it in ranked.items])
        row = model.history_row(customer)
        outside = int(np.setdiff1d(np.arange(len(inter.items)), row.indices)[0])
        removed = [*row.indices[:: max(1, row.nnz // 5)].tolist(), outside]
        batched = model.score_without(customer, pool, removed, filters=filters)
        assert batched.shape == (len(removed), len(pool))
        # starting from the list's basis (recommend()'s history and work) gives the same bits
        assert ranked.basis is not None
        assert np.array_equal(model.score_without(customer, pool, removed, filters=filters, basis=ranked.basis), batched)
        for t, x in enumerate(removed):
            one = model.score_items(customer, pool, history=_without(row, x), filters=filters)
            assert np.array_equal(batched[t], one), f"removing {x} for {customer}"
            compared += 1
    return compared


def test_score_without_equals_score_items_one_history_at_a_time(model: Recommender, inter: Interactions) -> None:
    compared = 0
    for filters in (Filters(), Filters(allow_repeats=False), Filters(category=str(inter.catalog["category"][0]))):
        compared += _assert_score_without_is_score_items(model, inter, filters)
    assert compared > 30
    customer = a_known_customer(inter)
    assert model.score_without(customer, [0, 1], []).shape == (0, 2)
    # an unknown customer scores with an empty history, as score_items does
    assert np.array_equal(model.score_without("nobody", [0, 1, 2], [5])[0], model.score_items("nobody", [0, 1, 2]))


def test_score_without_with_content_and_bm25_als(inter: Interactions, monkeypatch: pytest.MonkeyPatch) -> None:
    from recsys.retrieval import content as content_module
    from recsys.retrieval.content import ContentConfig

    monkeypatch.setattr(content_module, "SentenceTransformerEncoder", _HashingEncoder)
    config = replace(SMALL, content=ContentConfig(cache_dir=None), als=replace(SMALL.als, scaling="bm25"))
    model = Recommender(config).fit(inter)
    assert "content" in model.stage_.retrievers
    assert _assert_score_without_is_score_items(model, inter, Filters(allow_repeats=False)) > 10
    assert np.array_equal(model.score_without("nobody", [0, 1, 2], [5])[0], model.score_items("nobody", [0, 1, 2]))


def test_score_without_with_a_content_pool(inter: Interactions, monkeypatch: pytest.MonkeyPatch) -> None:
    """The content source proposing from its pool (big catalogues): the check re-scores as from scratch."""
    from recsys.retrieval import content as content_module
    from recsys.retrieval.content import ContentConfig

    monkeypatch.setattr(content_module, "SentenceTransformerEncoder", _HashingEncoder)
    config = replace(SMALL, content=ContentConfig(cache_dir=None), content_full_scan_items=0,
                     content_pool_max_customers=len(inter.customers))
    model = Recommender(config).fit(inter)
    assert model.stage_.content_pool is not None and len(model.stage_.content_pool) > 0
    assert _assert_score_without_is_score_items(model, inter, Filters(allow_repeats=False)) > 10
    # an unknown customer scores with an empty history, as score_items does
    assert np.array_equal(model.score_without("nobody", [0, 1, 2], [5])[0], model.score_items("nobody", [0, 1, 2]))


def test_monotone_ranker_passes_its_constraints_to_lightgbm() -> None:
    from recsys.ranking.ranker import LambdaRanker, monotone_constraints

    rng = np.random.default_rng(0)
    X = rng.random((400, len(FEATURE_NAMES))).astype(np.float32)
    y = (X[:, FEATURE_NAMES.index("als_score")] > 0.7).astype(np.float32)
    ranker = LambdaRanker(RankerConfig(n_estimators=5, min_child_samples=5, monotone=True)).fit(X, y, np.full(20, 20))
    want = monotone_constraints(FEATURE_NAMES)
    assert want[FEATURE_NAMES.index("als_score")] == 1 and want[FEATURE_NAMES.index("als_rank")] == -1
    assert [int(v) for v in ranker.boosters_[0].params["monotone_constraints"]] == want
    # raising a constrained score never lowers the prediction
    lower, higher = X.copy(), X.copy()
    higher[:, FEATURE_NAMES.index("als_score")] += 0.5
    assert (ranker.predict(higher) >= ranker.predict(lower) - 1e-12).all()


def test_copurchase_removals_are_the_from_scratch_sums_bit_for_bit() -> None:
    from recsys.recommender import _CopurchaseRemovals

    rng = np.random.default_rng(3)
    n_items = 400
    paths: set[bool] = set()
    for trial in range(40):
        owners = np.sort(rng.choice(n_items, size=int(rng.integers(1, 30)), replace=False))
        parts = [np.sort(rng.choice(n_items, size=int(rng.integers(0, 60)), replace=False)) for _ in owners]
        if trial % 3 == 2:  # a history row whose items are not in index order
            owners = owners[::-1].copy()
        owner = np.repeat(owners.astype(np.int64), [len(p) for p in parts])
        cols = np.concatenate(parts).astype(np.int32)
        vals = rng.random(len(cols)).astype(np.float32) * 3
        if trial % 4 == 0:
            vals -= 1.0  # negative links too: sums can cancel to zero or below
        if trial % 5 == 0:
            vals[::3] *= np.float32(1e-9)  # too wide a range for exact float64 sums: the recount path
        items = np.unique(rng.integers(0, n_items, 25)).astype(np.int32)
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
        removals = _CopurchaseRemovals((owners.astype(np.int64), offsets, cols, vals), items, n_items)
        paths.add(removals.exact)
        removed = np.array([*owners[:: max(1, len(owners) // 4)].tolist(), n_items + 5], np.int64)
        rng.shuffle(removed)  # rows follow the removals' order, whatever it is
        linked, scores, item_scores, item_max = removals.many(removed)
        assert scores.shape == (len(removed), len(linked)) and item_max.shape == (len(removed), len(items))
        for t, x in enumerate(removed.tolist()):
            kept = owner != x
            scratch = np.bincount(cols[kept], weights=vals[kept], minlength=n_items).astype(np.float32)
            assert np.array_equal(scores[t], scratch[linked]) and not scratch[np.setdiff1d(np.arange(n_items), linked)].any()
            assert np.array_equal(item_scores[t], scratch[items])
            largest = np.zeros(n_items, np.float32)
            np.maximum.at(largest, cols[kept], vals[kept])
            assert np.array_equal(item_max[t], largest[items])
    assert paths == {True, False}  # both the subtraction and the recount were compared


def test_gathered_links_are_the_numpy_formulation_bit_for_bit() -> None:
    from recsys.links import gather

    rng = np.random.default_rng(5)
    for trial in range(40):
        n_items = int(rng.integers(1, 300))
        dense = rng.random((n_items, n_items)) < rng.uniform(0.0, 0.2)
        vals = rng.normal(0.2, 1.0, (n_items, n_items)).astype(np.float32)
        if trial % 3 == 0:
            vals = np.round(vals, 1)  # equal links and sums that cancel to exactly zero
        if trial % 5 == 0:
            vals[::2] *= np.float32(1e-9)  # sums wider than float32 keeps
        sim = sp.csr_matrix(np.where(dense, vals, 0).astype(np.float32))
        sim.indptr = sim.indptr.astype(np.int64 if trial % 2 else np.int32)
        history = rng.permutation(n_items)[: int(rng.integers(0, min(n_items, 40) + 1))]  # any order
        got = gather(sim.indptr, sim.indices, sim.data, history, n_items)
        parts = [np.arange(sim.indptr[h], sim.indptr[h + 1]) for h in history]
        offsets = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        cols, link_vals = sim.indices[offsets], sim.data[offsets]
        assert np.array_equal(got.cols, cols) and np.array_equal(got.vals, link_vals)
        scores = np.bincount(cols, weights=link_vals, minlength=n_items).astype(np.float32)
        assert got.scores.dtype == np.float32 and np.array_equal(got.scores, scores)
        largest = np.zeros(n_items, np.float32)
        np.maximum.at(largest, cols, link_vals)
        assert np.array_equal(got.largest, largest)
        assert np.array_equal(got.linked, np.flatnonzero(scores != 0))


def test_link_pass_is_the_numpy_sums_and_a_stable_sort_of_the_links() -> None:
    from recsys.links import link_pass

    rng = np.random.default_rng(11)
    for trial in range(60):
        n_items = int(rng.integers(1, 200))
        cols = rng.integers(0, n_items, int(rng.integers(0, 400))).astype(np.int32)
        # coarse values: equal links into one item are common, so the first-of-equals rule is exercised
        vals = np.round(rng.normal(0.3, 1.0, len(cols)), 1 if trial % 2 else 4).astype(np.float32)
        items = np.unique(rng.integers(0, n_items, int(rng.integers(1, 12)))).astype(np.int32)
        slot = np.full(n_items, -1, np.int64)
        slot[items] = np.arange(len(items))
        got = link_pass(cols, vals, n_items, slot)
        assert np.array_equal(got.sums, np.bincount(cols, weights=vals, minlength=n_items))
        present = np.zeros(n_items, bool)
        present[cols] = True
        assert np.array_equal(got.present, present)
        nonzero = np.abs(vals)[vals != 0]
        assert got.min_abs == (float(nonzero.min()) if len(nonzero) else 0.0)
        assert got.negative == bool((vals < 0).any())
        for j, item in enumerate(items.tolist()):
            mine = np.flatnonzero(cols == item)
            order = mine[np.argsort(-vals[mine], kind="stable")]  # largest first, equal ones in link order
            assert got.seen[j] == min(len(mine), 2)
            if len(mine):
                assert got.best_link[j] == order[0] and got.best[j] == vals[order[0]]
            if len(mine) > 1:
                assert got.runner[j] == vals[order[1]]


def test_content_ranks_without_are_the_full_scans_ranks() -> None:
    from recsys.ranks import listed_ranks
    from recsys.recommender import _ContentRemovals, _dot_rows, _rowdot

    rng = np.random.default_rng(17)
    pruned = scanned = surely_missing = 0
    for trial in range(80):
        n_items, dim = int(rng.integers(200, 900)), 8
        emb = rng.normal(size=(n_items, dim)).astype(np.float32)
        emb[rng.random(n_items) < 0.1] = 0  # items without text
        dup = rng.integers(0, n_items, n_items // 5)
        emb[rng.integers(0, n_items, len(dup))] = emb[dup]  # equal embeddings: equal scores, ties by item index
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0).astype(np.float32)
        history = np.unique(rng.integers(0, n_items, int(rng.integers(2, 80))))
        weights = rng.random(len(history)).astype(np.float32) + 0.1
        in_history = np.zeros(n_items, bool)
        in_history[history] = True

        def profile(w: np.ndarray, emb: np.ndarray = emb, history: np.ndarray = history) -> np.ndarray:
            p = (w @ emb[history]).astype(np.float32)
            norm = np.linalg.norm(p)
            return (p / norm if norm > 0 else p).astype(np.float32)

        base = profile(weights)
        base_scores = (emb @ base).astype(np.float32)
        removed = np.concatenate([rng.choice(history, min(6, len(history) - 1), replace=False), [int(np.argmin(in_history))]])
        profiles = np.stack([profile(np.where(history == x, 0, weights).astype(np.float32)) for x in removed])
        # listed: some of the best open items, some anywhere (history items too)
        best_open = np.argsort(-np.where(in_history, -np.inf, base_scores), kind="stable")[:30]
        items = np.unique(np.concatenate([rng.choice(best_open, 6, replace=False), rng.integers(0, n_items, 4)]))
        items = items.astype(np.int32)
        listed_scores = np.stack([_rowdot(emb[items], p) for p in profiles])
        count = int(rng.choice([5, 20, 40]))
        want = listed_ranks(_dot_rows(profiles, emb).astype(np.float32), count, items, in_history, removed)
        scan = (base, base_scores)
        asked = _ContentRemovals(profiles, listed_scores, count, items, in_history, removed)
        got = asked.ranks(emb, 1.0, scan, min_items=0)
        assert np.array_equal(got, want), trial
        missing, few, ids = asked.near(1.0, scan)
        assert len(ids) <= n_items // 4 + len(items)
        pruned += int(few.sum())
        scanned += int((~few).sum())
        surely_missing += int(missing.sum())
    # the shortcuts were taken, and the full scan too
    assert pruned > 100 and scanned > 0 and surely_missing > 100


def test_listed_ranks_are_the_ranks_in_top_row_by_row() -> None:
    from recsys.ranks import listed_ranks
    from recsys.recommender import _ranks_in, _top

    rng = np.random.default_rng(7)
    for trial in range(300):
        width = int(rng.integers(10, 300))
        rows = int(rng.integers(1, 6))
        # coarse values: many ties, some of them across the partition's cut; some zero or negative
        scores = np.round(rng.normal(0.5, 1.0, (rows, width)), 1 if trial % 2 else 3).astype(np.float32)
        if trial % 5 == 0:  # masked (-inf) or undefined scores are never proposed
            scores[rng.random(scores.shape) < 0.05] = np.nan if trial % 2 else -np.inf
        ids = np.sort(rng.choice(width * 3, width, replace=False)) if trial % 3 == 0 else None
        n_items = width * 3
        history = rng.choice(n_items, int(rng.integers(0, 20)), replace=False)
        excluded = np.zeros(n_items, bool)
        excluded[history] = True
        removed = rng.choice(np.r_[history, rng.integers(0, n_items, 3)], rows).astype(np.int64)
        items = rng.choice(n_items, int(rng.integers(1, 30)), replace=False).astype(np.int32)
        count = int(rng.integers(1, 40))
        got = listed_ranks(scores, count, items, excluded, removed, ids=ids)
        for t in range(rows):
            mask = excluded.copy()
            mask[removed[t]] = False
            want = _ranks_in(_top(scores[t], count, int(mask.sum()), mask, ids=ids), items)
            assert np.array_equal(got[t], want), (trial, t)


def test_removal_features_are_the_from_scratch_features(model: Recommender, inter: Interactions) -> None:
    from recsys.ranking.features import FEATURE_INDEX

    rounding = [FEATURE_INDEX[f] for f in ("als_score", "ease_score")]  # shared products: last-bit rounding
    exact = [j for j in range(len(FEATURE_NAMES)) if j not in rounding]
    counts = np.diff(inter.matrix.indptr)
    compared = 0
    for filters in (Filters(), Filters(allow_repeats=False)):
        for customer in inter.customers.ids[counts > 1][:8].tolist():
            pool = np.asarray([it.index for it in model.recommend(customer, 40, filters=filters).items], np.int32)
            row = model.history_row(customer)
            removed = [*row.indices[:: max(1, row.nnz // 4)].tolist(), int(np.setdiff1d(np.arange(len(inter.items)), row.indices)[0])]
            stage = model.stage_
            batched = stage.removal_features(
                customer, model._history(customer), removed, pool,
                allow_repeats=filters.allow_repeats and model.config.mode == "repeats",
            )
            for t, x in enumerate(removed):
                one = model.item_features(customer, pool, history=_without(row, x), filters=filters)
                assert np.array_equal(batched[t][:, exact], one[:, exact]), f"removing {x} for {customer}"
                assert np.allclose(batched[t][:, rounding], one[:, rounding], rtol=1e-5, atol=1e-6)
                compared += 1
    assert compared > 20


def test_als_top_scans_part_of_the_catalogue_and_proposes_what_a_full_scan_does(model: Recommender) -> None:
    import copy

    from recsys.recommender import _ranks_in, _top

    rng = np.random.default_rng(11)
    n_items, dim = 6000, 16
    # popularity-like norms (a few long factors), duplicated rows (exact ties) and zero-score directions
    factors = (rng.normal(size=(n_items, dim)) * rng.pareto(2.0, n_items)[:, None]).astype(np.float32)
    factors[100:140] = factors[99]
    ids = np.sort(rng.choice(n_items * 2, n_items, replace=False)).astype(np.int32)
    stage = copy.copy(model.stage_)
    stage.__dict__.pop("_als_norm_index", None)
    stage.__dict__.pop("_als_norm_position", None)
    stage._als_index = (ids, factors)
    by_norm_ids, by_norm, norms = stage.als_norm_index()
    scanned: list[int] = []

    class Tracked(np.ndarray):
        def __getitem__(self, key: object) -> object:
            if isinstance(key, slice):
                scanned.append(int(key.stop if key.stop is not None else len(self)))
            return super().__getitem__(key)

    stage._als_norm_index = (by_norm_ids, by_norm.view(Tracked), norms)
    partial = 0
    for trial in range(40):
        f = rng.normal(size=dim).astype(np.float32)
        if trial % 5 == 0:
            f = factors[99] * np.float32(0.5)  # the tied rows at the top
        excluded = np.zeros(n_items * 2, bool)
        history = rng.choice(ids, int(rng.integers(0, 50)), replace=False)
        excluded[history] = True
        n = int(rng.integers(1, 120))
        scanned.clear()
        got = stage.als_top(f, n, len(history), excluded)
        want = _top(factors @ f, n, len(history), excluded, ids=ids)
        assert np.array_equal(got, want), trial
        partial += max(scanned) < n_items
        # the check's ranks of listed items: proposed ones, excluded ones, ones without factors, far down ones
        listed = np.unique(np.r_[got[:: max(1, len(got) // 7)], history[:3], rng.integers(0, n_items * 2, 8)]).astype(np.int32)
        one = stage.als_ranks_many(f[None, :], n, excluded, np.array([-1]), listed)
        assert np.array_equal(one[0], _ranks_in(got, listed)), trial
        # several factors at once (the check's removals): each row as if its own history had item back[t] out
        many = np.stack([f, f * np.float32(0.9) + np.float32(0.01), rng.normal(size=dim).astype(np.float32)])
        back = np.array([history[0] if len(history) else -1, -1, history[-1] if len(history) else -1])
        n_hist = np.array([len(history) - (b >= 0) for b in back])
        ranks = stage.als_ranks_many(many, n, excluded, back, listed)
        for t in range(len(many)):
            mask = excluded.copy()
            if back[t] >= 0:
                mask[back[t]] = False
            want = _ranks_in(_top(factors @ many[t], n, int(n_hist[t]), mask, ids=ids), listed)
            assert np.array_equal(ranks[t], want), (trial, t)
    assert partial >= 10  # the bound stopped the scan early for many of them
    # equal norms: no bound can stop the scan early, every chunk must be scanned
    flat = copy.copy(model.stage_)
    for cache in ("_als_norm_index", "_als_norm_position"):
        flat.__dict__.pop(cache, None)
    unit = (factors / np.linalg.norm(factors, axis=1, keepdims=True)).astype(np.float32)
    flat._als_index = (ids, unit)
    for trial in range(5):
        many = rng.normal(size=(3, dim)).astype(np.float32)
        listed = rng.choice(ids, 40, replace=False).astype(np.int32)
        ranks = flat.als_ranks_many(many, 100, np.zeros(n_items * 2, bool), np.full(3, -1), listed)
        for t in range(3):
            want = _ranks_in(_top(unit @ many[t], 100, 0, np.zeros(n_items * 2, bool), ids=ids), listed)
            assert np.array_equal(ranks[t], want), (trial, t)


def _one_drop_keeps(rng: np.random.Generator, rows: int, size: int) -> np.ndarray:
    """Rows as the check's removals make them: each keeps every history entry but at most one."""
    keeps = np.ones((rows, size), bool)
    if size:
        drop = rng.integers(-1, size, rows)
        keeps[np.flatnonzero(drop >= 0), drop[drop >= 0]] = False
    return keeps


def test_kept_price_medians_are_numpy_medians_bit_for_bit() -> None:
    from recsys.ranking.features import _dropped_entry, _kept_medians

    rng = np.random.default_rng(0)
    for trial in range(400):
        size, rows = int(rng.integers(0, 40)), int(rng.integers(1, 8))
        if trial % 3 == 0:  # unknown, non-positive and repeated prices
            prices = rng.choice([np.nan, -1.0, 0.0, 1.0, 2.5, 3.99, 0.1], size).astype(np.float32)
        else:
            prices = rng.lognormal(0, 1, size).astype(np.float32)
        keeps = rng.random((rows, size)) < (0.9 if trial % 2 else 0.5)
        drop = None
        if trial % 4 == 3:
            keeps = _one_drop_keeps(rng, rows, size)
            drop = _dropped_entry(keeps)
        got = _kept_medians(prices, keeps, drop=drop)
        for t in range(rows):
            known = prices[keeps[t]]
            known = known[np.isfinite(known) & (known > 0)]
            if len(known):
                assert got[t].tobytes() == np.float32(np.median(known)).tobytes(), (trial, t)
            else:
                assert np.isnan(got[t])


def test_category_shares_are_the_bincount_formulation_bit_for_bit() -> None:
    from recsys.ranking.features import _shares_kernel

    rng = np.random.default_rng(8)
    for trial in range(300):
        size, rows, n_codes, n = int(rng.integers(0, 50)), int(rng.integers(1, 8)), int(rng.integers(1, 9)), 30
        codes = rng.integers(0, n_codes, size)
        weights = rng.lognormal(0, 2, size).astype(np.float32)  # wide: sums that round in float64
        if trial % 3 == 0:
            weights[rng.random(size) < 0.3] = 0  # rows whose kept weight is zero
        keeps = rng.random((rows, size)) < (0.9 if trial % 2 else 0.4)
        totals = np.array([float(weights[k].sum()) for k in keeps])
        item_codes = rng.integers(0, n_codes, n)
        out = np.full((rows, n, 3), -7, np.float32)
        _shares_kernel()(codes.astype(np.int64), weights, keeps, totals, item_codes.astype(np.int64), n_codes, out, 1)
        r, at = np.nonzero(keeps)
        sums = np.bincount(r * n_codes + codes[at], weights=weights[at], minlength=rows * n_codes)
        for t in range(rows):
            if totals[t] > 0:
                want = (sums.reshape(rows, n_codes)[t] / totals[t])[item_codes].astype(np.float32)
                assert out[t, :, 1].tobytes() == want.tobytes(), (trial, t)
            else:
                assert (out[t, :, 1] == -7).all()  # left as it was
        assert (out[:, :, [0, 2]] == -7).all()


def test_kept_category_latest_is_each_rows_own_maximum() -> None:
    from recsys.ranking.features import _dropped_entry, _kept_category_latest

    rng = np.random.default_rng(5)
    for trial in range(300):
        size, rows, n_cat = int(rng.integers(0, 40)), int(rng.integers(1, 8)), int(rng.integers(1, 6))
        categories = rng.integers(0, n_cat, size)
        # coarse times: equal latest entries in one category; undated (NaN) entries
        ts = rng.integers(0, 6, size).astype(np.float64)
        ts[rng.random(size) < 0.2] = np.nan
        keeps = rng.random((rows, size)) < (0.95 if trial % 2 else 0.5)
        drop = None
        if trial % 3 == 2:
            keeps = _one_drop_keeps(rng, rows, size)
            drop = _dropped_entry(keeps)
        got = _kept_category_latest(categories, ts, keeps, n_cat, drop=drop)
        for t in range(rows):
            for g in range(n_cat):
                mine = ts[keeps[t] & (categories == g)]
                mine = mine[np.isfinite(mine)]
                assert got[t, g] == (mine.max() if len(mine) else -np.inf), (trial, t, g)


def test_buy_again_ranks_without_each_item_are_the_proposals_ranks() -> None:
    from recsys.recommender import _buy_again_proposals, _buy_again_ranks_without, _ranks_in
    from recsys.retrieval.buy_again import RepeatPairs

    rng = np.random.default_rng(5)
    for trial in range(200):
        size = int(rng.integers(0, 60))
        items = np.sort(rng.choice(200, size, replace=False)).astype(np.int32)
        pairs = RepeatPairs(items, rng.integers(2, 9, size).astype(np.int32), rng.normal(size=size), rng.random(size))
        # coarse due scores: ties broken by item; some not due at all
        due = np.round(rng.normal(0.5, 1.0, size), 1)
        count = int(rng.integers(1, 30))
        listed = rng.choice(200, 25, replace=False).astype(np.int32)
        gone = np.r_[rng.choice(items, min(size, 4), replace=False), rng.integers(0, 200, 2)].astype(np.int64)
        got = _buy_again_ranks_without(pairs, due, count, listed, gone)
        for t, x in enumerate(gone.tolist()):
            keep = pairs.items != x
            want = _ranks_in(_buy_again_proposals(pairs.restrict(keep), due[keep], count), listed)
            assert np.array_equal(got[t], want), (trial, t)


def test_popularity_ranks_without_each_item_are_the_proposals_ranks(model: Recommender, inter: Interactions) -> None:
    from recsys.recommender import _ranks_in

    stage = model.stage_
    rng = np.random.default_rng(6)
    order = stage.popular_order()
    n_items = len(inter.items)
    for trial in range(40):
        history = np.sort(rng.choice(order[:80], int(rng.integers(0, 40)), replace=False))
        in_history = np.zeros(n_items, bool)
        in_history[history] = True
        gone = np.r_[rng.choice(history, min(len(history), 5), replace=False), rng.integers(0, n_items, 2)].astype(np.int64)
        keeps = history[None, :] != gone[:, None]
        listed = np.unique(np.r_[order[:60:3], history[:4], rng.integers(0, n_items, 6)]).astype(np.int32)
        got = stage._popularity_ranks_without(in_history, len(history), listed, gone, keeps)
        for t, x in enumerate(gone.tolist()):
            mask = in_history.copy()
            mask[x] = False
            want = _ranks_in(stage.popularity_proposals("c", int(keeps[t].sum()), lambda head, mask=mask: mask[head]), listed)
            assert np.array_equal(got[t], want), (trial, t)


def test_als_downdates_are_the_from_scratch_fold_ins(model: Recommender, inter: Interactions) -> None:
    import scipy.linalg as sla

    from recsys.recommender import _AlsDowndate

    als = model.stage_.retrievers["als"]
    checked = 0
    for customer in inter.customers.ids[np.diff(inter.matrix.indptr) > 3][:6]:
        items, conf = als._confidences(model.history_row(str(customer)))
        got = _AlsDowndate(als, items, conf).many(range(len(items)))
        for j in range(len(items)):
            keep = np.arange(len(items)) != j
            want = sla.cho_solve(als._system(items[keep], conf[keep]), als._target(items[keep], conf[keep]))
            assert got[j] is not None
            np.testing.assert_allclose(got[j], want.astype(np.float32), rtol=1e-5, atol=1e-6)
            checked += 1
    assert checked > 10
