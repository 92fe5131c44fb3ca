"""The serving policy inside Recommender.recommend: score floor and user-oriented re-rank."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys.ranking.policy import ServingPolicy, _percentile, active_boundary, inactivity
from recsys.recommender import Recommender
from tests.test_recommender import SMALL, demo_interactions


@pytest.fixture(scope="module")
def fitted() -> tuple[Recommender, list[str]]:
    inter = demo_interactions(seed=5)
    model = Recommender(SMALL).fit(inter)
    counts = np.diff(inter.matrix.indptr)
    order = np.argsort(counts, kind="stable")
    by_activity = [str(inter.customers.ids[i]) for i in order if counts[i] > 0]
    return model, by_activity


def test_identity_policy_changes_nothing(fitted: tuple[Recommender, list[str]]) -> None:
    model, customers = fitted
    for c in customers[:5] + customers[-5:]:
        plain = model.recommend(c, 10)
        same = model.recommend(c, 10, policy=ServingPolicy())
        assert plain.item_ids == same.item_ids
        assert [i.score for i in plain.items] == [i.score for i in same.items]


def test_min_score_drops_items_below_it(fitted: tuple[Recommender, list[str]]) -> None:
    model, customers = fitted
    c = customers[len(customers) // 2]
    plain = model.recommend(c, 10)
    floor = plain.items[4].score
    cut = model.recommend(c, 10, policy=ServingPolicy(min_score=floor))
    assert all(i.score >= floor for i in cut.items)
    assert cut.item_ids[:5] == plain.item_ids[:5]
    assert len(model.recommend(c, 10, policy=ServingPolicy(min_score=1e9)).items) == 0


def test_rerank_moves_less_active_lists_only_and_keeps_ranker_scores(
    fitted: tuple[Recommender, list[str]],
) -> None:
    model, customers = fitted
    strong = ServingPolicy(rerank_strength=1.0)
    changed = 0
    for c in customers[:15]:  # the least active
        plain = {i.item_id: i.score for i in model.recommend(c, 50).items}
        reranked = model.recommend(c, 10, policy=strong)
        # every served score is that item's own ranker score, never the blend
        for it in reranked.items:
            if it.item_id in plain:
                assert it.score == pytest.approx(plain[it.item_id])
        changed += reranked.item_ids != list(plain)[:10]
    assert changed > 0
    top = customers[-1]  # the most active customer is above the top-5% boundary
    assert model.recommend(top, 10, policy=strong).item_ids == model.recommend(top, 10).item_ids
    assert active_boundary(model) > np.log1p(1.0)


def test_strength_outside_unit_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        ServingPolicy(rerank_strength=1.5)


@given(st.floats(0, 20), st.floats(0, 20))
def test_inactivity_is_within_unit_interval_and_falls_with_activity(a: float, boundary: float) -> None:
    w = inactivity(a, boundary)
    assert 0.0 <= w <= 1.0
    assert inactivity(a + 1.0, boundary) <= w


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=40))
def test_percentile_is_monotone_and_in_unit_interval(xs: list[float]) -> None:
    x = np.asarray(xs)
    p = _percentile(x)
    assert p.min() >= 0.0 and p.max() <= 1.0
    i, j = np.argsort(x)[0], np.argsort(x)[-1]
    assert p[i] <= p[j]
    assert np.all((x[:, None] < x[None, :]) <= (p[:, None] < p[None, :]))
