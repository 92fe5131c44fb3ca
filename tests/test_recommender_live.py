"""Serving hooks on a small generated world: counterfactual scores, live updates, erasure."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recsys.errors import InvalidEventsError, InvalidHistoryError, UnknownItemError
from recsys.interactions import DAY, Interactions
from recsys.ranking.features import FEATURE_INDEX
from recsys.recommender import Filters, Recommender
from tests.test_recommender import SMALL, a_known_customer, demo_interactions


@pytest.fixture(scope="module")
def inter() -> Interactions:
    return demo_interactions()


@pytest.fixture(scope="module")
def fitted(inter: Interactions) -> Recommender:
    return Recommender(SMALL).fit(inter)


@pytest.fixture()
def model(fitted: Recommender) -> Recommender:
    """A private copy (observe/forget mutate the model), through pickle as a bundle would be."""
    return pickle.loads(pickle.dumps(fitted))


def test_score_items_equals_recommend_exactly(fitted: Recommender, inter: Interactions) -> None:
    customer = a_known_customer(inter)
    for filters in (Filters(), Filters(allow_repeats=False)):
        ranked = fitted.recommend(customer, 10, filters=filters)
        items = np.array([it.index for it in ranked.items])
        scores = fitted.score_items(customer, items, filters=filters)
        assert scores.dtype == np.float64
        np.testing.assert_array_equal(scores, [it.score for it in ranked.items])
        # passing the customer's own row back is the same history
        again = fitted.score_items(customer, items, history=fitted.history_row(customer), filters=filters)
        np.testing.assert_array_equal(again, scores)
        features = fitted.item_features(customer, items, filters=filters)
        np.testing.assert_array_equal(features, np.stack([it.features for it in ranked.items]))


def test_removing_the_evidence_removes_its_share_of_the_copurchase_score(
    fitted: Recommender, inter: Interactions
) -> None:
    """Known answer: co-purchase scores are sums over history items, so removing one subtracts its term."""
    customer = a_known_customer(inter)
    cop = fitted.stage_.retrievers["copurchase"]
    ranked = fitted.recommend(customer, 10, filters=Filters(allow_repeats=False))
    item = next(it for it in ranked.items if it.features[FEATURE_INDEX["copurchase_score"]] > 0)
    (evidence, share), *_ = cop.contributions(customer, item.index)
    row = fitted.history_row(customer)
    without = row.tolil()
    without[0, evidence] = 0
    before = fitted.item_features(customer, [item.index])[0]
    after = fitted.item_features(customer, [item.index], history=without.tocsr())[0]
    j = FEATURE_INDEX["copurchase_score"]
    assert after[j] == pytest.approx(before[j] - share, abs=1e-5)
    # ALS factors move too (folded in), and the score is a real ranker re-run
    assert after[FEATURE_INDEX["als_score"]] != before[FEATURE_INDEX["als_score"]]
    s_before, s_after = fitted.score_items(customer, [item.index, item.index], history=None)[0], fitted.score_items(
        customer, [item.index], history=without.tocsr()
    )[0]
    assert s_before == pytest.approx(item.score)
    assert fitted.ranker_.predict(after[None, :])[0] == s_after


def test_empty_counterfactual_history_has_no_personal_evidence(fitted: Recommender, inter: Interactions) -> None:
    customer = a_known_customer(inter)
    items = np.arange(10)
    empty = sp.csr_matrix((1, len(inter.items)), dtype=np.float32)
    f = fitted.item_features(customer, items, history=empty)
    for name in ("als_score", "ease_score", "copurchase_score", "buy_again_score", "in_history", "purchases_of_item"):
        assert not f[:, FEATURE_INDEX[name]].any(), name
    assert np.isfinite(fitted.score_items(customer, items, history=empty)).all()


def test_bad_items_and_histories_get_domain_errors(fitted: Recommender, inter: Interactions) -> None:
    customer = a_known_customer(inter)
    with pytest.raises(UnknownItemError, match="unknown item"):
        fitted.score_items(customer, [0, len(inter.items)])
    with pytest.raises(InvalidHistoryError, match="shape"):
        fitted.score_items(customer, [0], history=np.zeros((1, 3)))
    negative = fitted.history_row(customer)
    negative.data[0] = -1
    with pytest.raises(InvalidHistoryError, match=">= 0"):
        fitted.score_items(customer, [0], history=negative)


def _events(item_ids: list[str], ts: list[int], event_type: str = "purchase") -> pl.DataFrame:
    return pl.DataFrame({"item_id": item_ids, "event_type": [event_type] * len(item_ids), "ts": ts,
                         "value": [None] * len(item_ids)}, schema_overrides={"value": pl.Float64})


def test_observe_a_known_customer_updates_history_without_retraining(model: Recommender, inter: Interactions) -> None:
    customer = a_known_customer(inter)
    before = model.recommend(customer, 10, filters=Filters(allow_repeats=False))
    top = before.items[0]
    now = int(inter.now)
    model.observe(customer, _events([top.item_id], [now]))
    row = model.history_row(customer)
    assert row[0, top.index] > 0
    after = model.recommend(customer, 10, filters=Filters(allow_repeats=False))
    assert top.item_id not in after.item_ids  # bought now: excluded like any purchase
    f = model.item_features(customer, [top.index])[0]
    assert f[FEATURE_INDEX["in_history"]] == 1 and f[FEATURE_INDEX["purchases_of_item"]] == 1
    # the other customers and the stored matrix are untouched
    assert model.stage_.interactions.matrix[inter.customers.index(customer), top.index] == 0


def test_the_check_rescores_the_history_a_list_was_ranked_from(model: Recommender, inter: Interactions) -> None:
    """An event between recommend() and explain() does not change what the list's check compares against."""
    customer = a_known_customer(inter)
    filters = Filters(allow_repeats=False)
    ranked = model.recommend(customer, 10, filters=filters)
    assert ranked.basis is not None
    items = np.array([it.index for it in ranked.items])
    removed = model.history_row(customer).indices[:3].tolist()
    before = model.score_without(customer, items, removed, filters=filters)
    model.observe(customer, _events([ranked.items[0].item_id], [int(inter.now)]))
    now_scores = model.score_without(customer, items, removed, filters=filters)
    from_list = model.score_without(customer, items, removed, filters=filters, basis=ranked.basis)
    np.testing.assert_array_equal(from_list, before)
    assert not np.array_equal(now_scores, before)  # the live history did change the scores
    with pytest.raises(ValueError, match="another history"):
        model.stage_.removal_features(
            customer, model._history(customer), removed, items, allow_repeats=False, basis=ranked.basis
        )


def test_observed_repeat_purchases_become_buy_again_candidates(model: Recommender, inter: Interactions) -> None:
    customer = a_known_customer(inter)
    history = set(model.history_row(customer).indices.tolist())
    item = next(i for i in range(len(inter.items)) if i not in history)
    item_id = str(inter.items.ids[item])
    now = int(inter.now)
    # bought every 7 days, last 7 days ago: exactly due now
    model.observe(customer, _events([item_id] * 3, [now - 21 * int(DAY), now - 14 * int(DAY), now - 7 * int(DAY)]))
    f = model.item_features(customer, [item])[0]
    assert f[FEATURE_INDEX["buy_again_interval_ratio"]] == pytest.approx(1.0, rel=1e-3)
    assert f[FEATURE_INDEX["buy_again_score"]] == pytest.approx(np.log1p(3), rel=1e-3)
    ranked = model.recommend(customer, 200)
    assert any(it.index == item and "buy_again" in it.sources for it in ranked.items)


def test_observe_makes_an_unknown_customer_known(model: Recommender, inter: Interactions) -> None:
    assert model.recommend("new-shopper", 5).status == "cold_start"
    items = [str(i) for i in inter.items.ids[:3]]
    model.observe("new-shopper", _events(items, [int(inter.now)] * 3))
    ranked = model.recommend("new-shopper", 5)
    assert ranked.status == "known"
    assert not set(items) & set(ranked.item_ids)
    als = model.stage_.retrievers["als"]
    expected = als.score_history(model.history_row("new-shopper"))
    idx = np.array([it.index for it in ranked.items])
    f = model.item_features("new-shopper", idx)
    np.testing.assert_allclose(f[:, FEATURE_INDEX["als_score"]], expected[idx], rtol=1e-5)
    # a second batch adds to the first
    model.observe("new-shopper", _events([str(inter.items.ids[5])], [int(inter.now)]))
    assert set(model.history_row("new-shopper").indices.tolist()) == {0, 1, 2, 5}


def test_observe_rejects_bad_events_and_applies_nothing(model: Recommender, inter: Interactions) -> None:
    customer = a_known_customer(inter)
    before = model.history_row(customer)
    ok = str(inter.items.ids[0])
    with pytest.raises(UnknownItemError, match="'no-such-item'"):
        model.observe(customer, _events([ok, "no-such-item"], [0, 0]))
    with pytest.raises(InvalidEventsError, match="event_type"):
        model.observe(customer, _events([ok], [0], event_type="wishlist"))
    with pytest.raises(InvalidEventsError, match="item_id"):
        model.observe(customer, pl.DataFrame({"sku": [ok]}))
    assert (model.history_row(customer) != before).nnz == 0


def test_forget_removes_the_customer_from_the_live_model(model: Recommender, inter: Interactions) -> None:
    customer = a_known_customer(inter)
    stage = model.stage_
    u = stage.interactions.customers.index(customer)
    ba = stage.retrievers["buy_again"]
    n_pairs = len(ba.pairs_of(customer))
    n_events = int((stage.interactions.events["customer_id"] == customer).sum())
    nnz = stage.interactions.matrix[u].nnz
    total_nnz = stage.interactions.matrix.nnz
    other = str(inter.customers.ids[(u + 1) % len(inter.customers)])
    other_before = model.recommend(other, 10).item_ids
    model.observe(customer, _events([str(inter.items.ids[0])], [int(inter.now)]))

    removed = model.forget(customer)

    assert removed["events"] == n_events > 0
    assert removed["matrix_entries"] == nnz > 0
    assert removed["buy_again_pairs"] == n_pairs
    assert removed["als_factors"] == 1 and removed["live_history"] == 1 and removed["vocabulary"] == 1
    # really gone, not hidden
    inter_now = stage.interactions
    assert customer not in inter_now.customers
    assert customer not in set(inter_now.customers.to_list())
    assert inter_now.matrix[u].nnz == 0 and inter_now.counts[u].nnz == 0
    assert inter_now.matrix.nnz == total_nnz - nnz
    assert (inter_now.events["customer_id"] == customer).sum() == 0
    assert not stage.retrievers["als"].user_factors_[u].any()
    assert not stage.retrievers["als"].model_.user_factors[u].any()
    assert stage.retrievers["content" if "content" in stage.retrievers else "buy_again"] is not None
    assert ba.indptr_[u + 1] == ba.indptr_[u]
    assert customer.encode() not in pickle.dumps(model)
    # and afterwards a stranger
    assert model.recommend(customer, 5).status == "cold_start"
    assert model.history_row(customer).nnz == 0
    assert model.recommend(other, 10).item_ids == other_before
    assert model.forget(customer) == dict.fromkeys(removed, 0)


def test_forget_a_live_only_customer(model: Recommender, inter: Interactions) -> None:
    model.observe("walk-in", _events([str(inter.items.ids[1])], [int(inter.now)]))
    assert model.forget("walk-in")["live_history"] == 1
    assert model.recommend("walk-in", 3).status == "cold_start"


def test_observe_and_recommend_from_several_threads(model: Recommender, inter: Interactions) -> None:
    customers = [str(c) for c in inter.customers.ids[:6]]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for step in range(5):
                c = customers[(n + step) % len(customers)]
                model.observe(c, _events([str(inter.items.ids[(n * 7 + step) % len(inter.items)])], [int(inter.now)]))
                model.recommend(c, 5)
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_bundle_extra_files_from_a_callable(fitted: Recommender, inter: Interactions, tmp_path: Path) -> None:
    from recsys.bundle import ModelRegistry
    from recsys.training import save_bundle

    seen: list[int] = []

    def extras(model: Recommender, data: Interactions) -> dict[str, bytes]:
        seen.append(data.events.height)
        return {"shap_summary.png": b"\x89PNG fake"}

    info = save_bundle(fitted, inter, tmp_path, started=0.0, extra_files=extras)
    assert seen == [inter.events.height]
    assert (info.path / "shap_summary.png").read_bytes() == b"\x89PNG fake"
    assert "shap_summary.png" in ModelRegistry(tmp_path).read_manifest(info.version)["files"]
