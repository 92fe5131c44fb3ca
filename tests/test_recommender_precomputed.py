"""Precomputed candidates: unexplained lists read the candidate step's stored output, with the same result."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from recsys.interactions import Interactions
from recsys.ranking.policy import ServingPolicy
from recsys.recommender import Filters, RankedList, Recommender
from tests.test_recommender import SMALL, _HashingEncoder, a_known_customer, demo_interactions


@pytest.fixture(scope="module")
def inter() -> Interactions:
    return demo_interactions(seed=11)


@pytest.fixture(scope="module")
def fitted(inter: Interactions) -> Recommender:
    """All six sources (content with a hashing encoder: no model load), the content source
    proposing from its pool as on big catalogues, then every customer precomputed."""
    from recsys.retrieval import content as content_module
    from recsys.retrieval.content import ContentConfig

    mp = pytest.MonkeyPatch()
    mp.setattr(content_module, "SentenceTransformerEncoder", _HashingEncoder)
    try:
        config = replace(SMALL, content=ContentConfig(cache_dir=None), content_full_scan_items=0,
                         content_pool_max_customers=len(inter.customers) // 4)
        model = Recommender(config).fit(inter)
    finally:
        mp.undo()
    assert model.precompute_candidates(len(inter.customers)) > 0.9 * len(inter.customers)
    return model


@pytest.fixture()
def model(fitted: Recommender) -> Recommender:
    """A private copy through pickle, as a bundle is loaded (observe/forget mutate it)."""
    return pickle.loads(pickle.dumps(fitted))


def _same(a: RankedList, b: RankedList) -> None:
    assert (a.status, a.customer, a.model_version) == (b.status, b.customer, b.model_version)
    assert [it.index for it in a.items] == [it.index for it in b.items]
    assert [it.rank for it in a.items] == [it.rank for it in b.items]
    assert [it.score for it in a.items] == [it.score for it in b.items]  # bit for bit: floats compare exactly
    assert [it.sources for it in a.items] == [it.sources for it in b.items]
    for x, y in zip(a.items, b.items, strict=True):
        assert np.array_equal(x.features, y.features)
    assert a.runner_up == b.runner_up


def test_every_stored_customer_gets_the_live_list_bit_for_bit(model: Recommender, inter: Interactions) -> None:
    prices = model.stage_.table.price
    cheap = float(np.nanmedian(prices))
    settings = [
        (Filters(), None),
        (Filters(max_price=cheap), None),
        (Filters(exclude_purchased=False), None),
        (Filters(), ServingPolicy(rerank_strength=0.6)),
        (Filters(), ServingPolicy(min_score=0.0)),
    ]
    stored = 0
    for customer in inter.customers.to_list():
        for filters, policy in settings:
            for k in (3, 10):
                fast = model.recommend(customer, k, filters=filters, policy=policy, explainable=False)
                live = model.recommend(customer, k, filters=filters, policy=policy)
                _same(fast, live)
                if live.status == "known":
                    # the live list carries the candidate step's work; the stored one did not run it
                    assert live.basis is not None and fast.basis is None
                    stored += 1
    assert stored > 0.9 * len(inter.customers) * len(settings) * 2


def test_lists_the_store_cannot_answer_run_the_candidate_step(model: Recommender, inter: Interactions) -> None:
    customer = a_known_customer(inter)
    category = str(inter.catalog["category"][0])
    for kwargs in (
        {"filters": Filters(category=category)},  # the category's own popular head joins the candidates
        {"filters": Filters(allow_repeats=False)},  # the buy-again source proposes nothing
        {"now": float(inter.now) + 86_400.0},  # recency features move with the clock
    ):
        fast = model.recommend(customer, 10, explainable=False, **kwargs)  # type: ignore[arg-type]
        live = model.recommend(customer, 10, **kwargs)  # type: ignore[arg-type]
        _same(fast, live)
        assert fast.basis is not None, kwargs


def test_new_events_bypass_the_store(model: Recommender, inter: Interactions) -> None:
    customer = a_known_customer(inter)
    before = model.recommend(customer, 10, explainable=False)
    bought = set(model.history_row(customer).indices.tolist())
    new = [int(i) for i in np.argsort(-model.stage_.retrievers["popularity"].scores_) if int(i) not in bought][:5]
    ids = [str(model.stage_.interactions.items.ids[i]) for i in new]
    model.observe(customer, pl.DataFrame({"item_id": ids, "event_type": ["purchase"] * len(ids)}))
    after = model.recommend(customer, 10, explainable=False)
    _same(after, model.recommend(customer, 10))
    assert after.basis is not None  # the live step ran, on the new history
    assert [it.index for it in after.items] != [it.index for it in before.items]


def test_erasure_drops_and_zeroes_the_customers_rows(model: Recommender, inter: Interactions) -> None:
    customer = a_known_customer(inter)
    pre = model.precomputed_
    slot = pre.slots[customer]
    a, b = int(pre.offsets[slot]), int(pre.offsets[slot + 1])
    assert np.any(pre.features[a:b] != 0)
    neighbour = next(c for c, s in pre.slots.items() if s == slot + 1)
    kept = pre.features[pre.offsets[slot + 1]:pre.offsets[slot + 2]].copy()
    in_flight = pre.get(customer)  # what a request being ranked holds
    assert in_flight is not None

    removed = model.forget(customer)

    assert removed["precomputed_candidates"] == 1
    assert customer not in pre.slots
    assert not np.any(pre.features[a:b]) and not np.any(pre.items[a:b]) and not np.any(pre.bought[a:b])
    assert model.recommend(customer, 10, explainable=False).status == "cold_start"
    assert np.array_equal(pre.features[pre.offsets[slot + 1]:pre.offsets[slot + 2]], kept)  # others untouched
    _same(model.recommend(neighbour, 10, explainable=False), model.recommend(neighbour, 10))
    assert model.forget(customer)["precomputed_candidates"] == 0
    # a copy: the zeroing does not reach a list already being ranked
    assert np.any(in_flight[0].features != 0) and np.any(in_flight[0].items != 0)


def test_the_most_recently_active_customers_are_kept(fitted: Recommender, inter: Interactions) -> None:
    model = pickle.loads(pickle.dumps(fitted))
    assert model.precompute_candidates(7) == 7
    last = inter.events.group_by("u").agg(pl.col("ts").max()).sort(["ts", "u"], descending=[True, False])
    want = {str(inter.customers.ids[u]) for u in last["u"].head(7).to_list()}
    assert set(model.precomputed_.slots) == want
    assert model.precompute_candidates(0) == 0
    assert "precomputed_" not in model.__dict__
    customer = next(iter(want))
    assert model.recommend(customer, 10, explainable=False).basis is not None
