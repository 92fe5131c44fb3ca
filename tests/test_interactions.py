from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.interactions import IdVocabulary, InteractionConfig, Interactions
from recsys.retrieval.base import top_k


def test_weights_by_event_type_and_rating() -> None:
    ev = pl.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "b"],
            "item_id": ["x", "x", "y", "x", "z"],
            "event_type": ["purchase", "view", "cart", "rating", "rating"],
            "ts": [0, 0, 0, 0, 0],
            "value": [1.0, None, None, 5.0, 1.0],
        }
    )
    inter = Interactions.from_events(ev, config=InteractionConfig(rating_floor=1.0, rating_scale=0.25))
    m = inter.matrix.toarray()
    a, b = inter.customers.index("a"), inter.customers.index("b")
    x, y, z = (inter.items.index(i) for i in "xyz")
    assert m[a, x] == pytest.approx(1.1)
    assert m[a, y] == pytest.approx(0.5)
    assert m[b, x] == pytest.approx(1.0)  # (5 - 1) * 0.25
    assert m[b, z] == 0.0  # a 1-star rating is not a vote
    assert inter.counts.toarray()[a, x] == 1


def test_recency_decay_halves_at_half_life() -> None:
    day = 86_400
    ev = pl.DataFrame({"customer_id": ["a", "a"], "item_id": ["old", "new"], "ts": [0, 14 * day]})
    inter = Interactions.from_events(ev, config=InteractionConfig(half_life_days=14))
    m = inter.matrix.toarray()[0]
    assert m[inter.items.index("old")] == pytest.approx(0.5)
    assert m[inter.items.index("new")] == pytest.approx(1.0)


def test_fixed_vocabulary_and_unknowns() -> None:
    ev = pl.DataFrame({"customer_id": ["a", "zz"], "item_id": ["x", "gone"]})
    inter = Interactions.from_events(ev, item_ids=["x", "y"], customer_ids=["a", "b"])
    assert inter.shape == (2, 2)
    assert inter.history("b").size == 0
    assert inter.history("nobody").size == 0
    assert inter.row("nobody").nnz == 0
    assert inter.events.height == 1


def test_vocabulary_rejects_duplicates_and_maps_unknown_to_minus_one() -> None:
    v = IdVocabulary(["a", "b"])
    assert v.indices(["b", "q"]).tolist() == [1, -1]
    with pytest.raises(ValueError):
        IdVocabulary(["a", "a"])


@settings(deadline=None)  # the first call loads the compiled selection
@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=50), st.integers(0, 60))
def test_top_k_is_sorted_stable_and_complete(scores: list[float], k: int) -> None:
    arr = np.asarray(scores, dtype=np.float32)
    got = top_k(arr, k)
    assert len(got) == min(k, len(arr))
    expected = sorted(range(len(arr)), key=lambda i: (-arr[i], i))[: len(got)]
    assert got.tolist() == expected


def test_top_k_selects_by_score_then_index_through_ties_infinities_and_nan() -> None:
    rng = np.random.default_rng(2)
    for trial in range(300):
        n = int(rng.integers(1, 3000))
        dtype = np.float32 if trial % 2 else np.float64
        arr = rng.integers(-20, 20, n).astype(dtype)  # many ties
        if trial % 3 == 0:
            arr[rng.random(n) < 0.2] = -np.inf  # excluded items, as the candidate step marks them
        if trial % 5 == 0:
            arr[rng.random(n) < 0.1] = np.inf
        if trial % 7 == 0:
            arr = np.sort(arr)  # ascending: every score replaces the heap's worst
        if trial % 11 == 0:
            arr[rng.random(n) < 0.1] = np.nan  # never selected
        k = int(rng.integers(1, n + 1)) if trial % 4 else int(rng.integers(1, max(2, n // 32 + 1)))  # both ways
        valid = [i for i in range(n) if not np.isnan(arr[i])]
        expected = sorted(valid, key=lambda i: (-arr[i], i))
        got = top_k(arr, k).tolist()
        if k <= len(valid):
            assert got == expected[:k], trial
        else:  # every other score first; NaN only when every score was asked for
            assert got[: len(valid)] == expected and len(got) == (n if k == n else len(valid)), trial
