"""Collaborative retrievers: ALS, BPR, EASE, co-purchase.

Each passes the shared contract; the specific tests check known answers on
tiny matrices (EASE closed form, cosine by hand) and that the per-history-item
contributions add up to the scores they explain.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recsys.interactions import Interactions
from recsys.retrieval.als import AlsConfig, AlsRetriever, BprConfig, BprRetriever, bm25_rows
from recsys.retrieval.copurchase import CoPurchaseConfig, CoPurchaseRetriever, binarise, history_row
from recsys.retrieval.ease import EaseConfig, EaseRetriever
from tests.retriever_suite import RetrieverContract, cluster_events, cluster_items


def small_als(seed: int = 7, **overrides: Any) -> AlsRetriever:
    return AlsRetriever(AlsConfig(factors=8, iterations=10, seed=seed, num_threads=1, **overrides))


class TestAlsContract(RetrieverContract):
    def make(self, seed: int = 7) -> AlsRetriever:
        return small_als(seed)


class TestBprContract(RetrieverContract):
    def make(self, seed: int = 7) -> BprRetriever:
        # one thread: BPR's parallel SGD is not reproducible
        return BprRetriever(BprConfig(factors=8, iterations=200, seed=seed, num_threads=1))


class TestEaseContract(RetrieverContract):
    def make(self, seed: int = 7) -> EaseRetriever:
        return EaseRetriever(EaseConfig(l2=10.0, seed=seed))


class TestCoPurchaseContract(RetrieverContract):
    def make(self, seed: int = 7) -> CoPurchaseRetriever:
        return CoPurchaseRetriever(CoPurchaseConfig(seed=seed))


def clusters() -> Interactions:
    return Interactions.from_events(cluster_events(), catalog=cluster_items())


def from_pairs(pairs: list[tuple[str, str]], items: list[str] | None = None) -> Interactions:
    frame = pl.DataFrame({"customer_id": [c for c, _ in pairs], "item_id": [i for _, i in pairs]})
    return Interactions.from_events(frame, item_ids=items)


def with_item(row: sp.csr_matrix, item: int, weight: float = 1.0) -> sp.csr_matrix:
    dense = row.toarray()
    dense[0, item] = weight
    return sp.csr_matrix(dense)


# --- EASE ---------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_ease_two_items_by_hand(solver: str) -> None:
    # X = [[1, 1], [1, 0]], l2 = 1: XᵀX + I = [[3, 1], [1, 2]], P = [[2, -1], [-1, 3]] / 5,
    # B_01 = -P_01 / P_11 = 1/3, B_10 = -P_10 / P_00 = 1/2
    inter = from_pairs([("u0", "a"), ("u0", "b"), ("u1", "a")])
    ease = EaseRetriever(EaseConfig(l2=1.0, solver=solver)).fit(inter)  # type: ignore[arg-type]
    np.testing.assert_allclose(ease.weights_, [[0.0, 1 / 3], [1 / 2, 0.0]], atol=1e-6)


def numpy_ease(x: np.ndarray, l2: float) -> np.ndarray:
    p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


@pytest.mark.parametrize("solver", ["primal", "dual", "auto"])
@pytest.mark.parametrize(
    "pairs",
    [
        # 3 customers x 3 items
        [("u0", "a"), ("u0", "b"), ("u1", "b"), ("u1", "c"), ("u2", "a"), ("u2", "b"), ("u2", "c")],
        # 2 customers x 4 items (fewer customers than items: "auto" picks the dual)
        [("u0", "a"), ("u0", "b"), ("u0", "d"), ("u1", "b"), ("u1", "c")],
    ],
)
def test_ease_matches_numpy_closed_form(solver: str, pairs: list[tuple[str, str]]) -> None:
    inter = from_pairs(pairs)
    ease = EaseRetriever(EaseConfig(l2=0.5, solver=solver)).fit(inter)  # type: ignore[arg-type]
    expected = numpy_ease(inter.matrix.toarray().astype(np.float64), 0.5)
    np.testing.assert_allclose(ease.weights_, expected, atol=1e-5)
    row = inter.row("u1")
    np.testing.assert_allclose(ease.score_history(row), row.toarray()[0] @ expected, atol=1e-5)


def test_ease_primal_and_dual_agree_on_clusters() -> None:
    inter = clusters()
    primal = EaseRetriever(EaseConfig(l2=10.0, solver="primal")).fit(inter)
    dual = EaseRetriever(EaseConfig(l2=10.0, solver="dual")).fit(inter)
    np.testing.assert_allclose(primal.weights_, dual.weights_, atol=1e-4)


def test_ease_restricts_to_the_most_popular_items() -> None:
    # popularity: a 4 customers, b 3, c 2, d 1
    pairs = [(f"u{k}", item) for item, n in (("a", 4), ("b", 3), ("c", 2), ("d", 1)) for k in range(n)]
    inter = from_pairs(pairs, items=["a", "b", "c", "d", "never"])
    ease = EaseRetriever(EaseConfig(l2=1.0, max_items=2)).fit(inter)
    assert ease.restricted_
    assert ease.n_items_used_ == 2
    assert ease.item_index_.tolist() == [0, 1]
    scores = ease.score_all("u0")
    assert np.all(scores[2:] == 0)
    assert set(ease.candidates("u0", 10).item_ids) <= {"a", "b"}
    assert ease.contributions("u0", 2) == []
    full = EaseRetriever(EaseConfig(l2=1.0)).fit(inter)
    assert not full.restricted_
    assert full.n_items_used_ == 4  # "never" was never bought: not modelled, not a restriction


def test_ease_contributions_sum_to_score() -> None:
    inter = clusters()
    ease = EaseRetriever(EaseConfig(l2=10.0)).fit(inter)
    history = set(inter.history("c00").tolist())
    for item in range(len(inter.items)):
        parts = ease.contributions("c00", item)
        assert {j for j, _ in parts} <= history
        total = sum(v for _, v in parts)
        assert total == pytest.approx(float(ease.score_all("c00")[item]), abs=1e-5)


@pytest.mark.parametrize("binarize", [True, False])
def test_ease_scores_are_scipys_sparse_product_bit_for_bit(binarize: bool) -> None:
    inter = clusters()
    ease = EaseRetriever(EaseConfig(l2=10.0, binarize=binarize, max_items=len(inter.items) - 3)).fit(inter)
    rng = np.random.default_rng(4)
    n_items = len(inter.items)
    for _ in range(30):
        dense = np.where(rng.random(n_items) < 0.4, rng.normal(0.5, 1.0, n_items), 0.0).astype(np.float32)
        row = sp.csr_matrix(dense.reshape(1, -1))
        # the old formulation: the checked copy, binarised, its modelled items, SciPy's product
        clean = history_row(row, inter)
        if binarize:
            clean = binarise(clean)
        keep = ease.slot_[clean.indices] >= 0
        slots, values = ease.slot_[clean.indices][keep], clean.data[keep].astype(np.float32)
        got_slots, got_values = ease._history(row)  # a float32 CSR row: read as is, negatives dropped
        assert np.array_equal(got_slots, slots) and np.array_equal(got_values, values)
        assert np.array_equal(ease._history(dense)[1], values)  # the general path agrees
        x = sp.csr_matrix((values, slots, np.array([0, len(slots)])), shape=(1, ease.n_items_used_))
        want = np.asarray(x @ ease.weights_, dtype=np.float32).ravel()
        assert np.array_equal(ease.modelled_scores(slots, values), want)
        assert np.array_equal(ease.score_history(row)[ease.item_index_], want)


# --- co-purchase --------------------------------------------------------------


def buyers(item: str) -> set[str]:
    ev = cluster_events()
    return set(ev.filter(pl.col("item_id") == item)["customer_id"].to_list())


def test_cosine_similarity_by_hand() -> None:
    inter = clusters()
    cfg = CoPurchaseConfig(neighbours=50, min_support=1, shrinkage=10.0)
    knn = CoPurchaseRetriever(cfg).fit(inter)
    a, b = buyers("A4"), buyers("A7")
    expected = len(a & b) / (np.sqrt(len(a) * len(b)) + 10.0)
    i, j = inter.items.index("A4"), inter.items.index("A7")
    assert knn.similarity_[i, j] == pytest.approx(expected, rel=1e-6)
    assert knn.similarity_[j, i] == pytest.approx(expected, rel=1e-6)
    assert knn.support_[i, j] == len(a & b)
    assert knn.similarity_.diagonal().max() == 0
    # the clusters never meet
    assert knn.similarity_[i, inter.items.index("B4")] == 0


def test_min_support_and_neighbours_prune() -> None:
    inter = clusters()
    knn = CoPurchaseRetriever(CoPurchaseConfig(neighbours=3, min_support=6)).fit(inter)
    assert np.diff(knn.similarity_.indptr).max() <= 3
    assert knn.support_.data.min() >= 6
    # each kept row holds the row's 3 most similar items of all those with enough support
    full = CoPurchaseRetriever(CoPurchaseConfig(neighbours=100, min_support=6)).fit(inter)
    for row in range(knn.similarity_.shape[0]):
        top = np.sort(full.similarity_[row].toarray().ravel())[::-1][:3]
        kept = np.sort(knn.similarity_[row].toarray().ravel())[::-1][:3]
        np.testing.assert_allclose(kept, top, rtol=1e-6)


@pytest.mark.parametrize("similarity", ["cosine", "bm25"])
def test_copurchase_contributions_sum_to_score(similarity: str) -> None:
    inter = clusters()
    cfg = CoPurchaseConfig(similarity=similarity)  # type: ignore[arg-type]
    knn = CoPurchaseRetriever(cfg).fit(inter)
    history = set(inter.history("c00").tolist())
    scores = knn.score_all("c00")
    assert scores.max() > 0
    for item in range(len(inter.items)):
        parts = knn.contributions("c00", item)
        assert {j for j, _ in parts} <= history
        assert [v for _, v in parts] == sorted((v for _, v in parts), reverse=True)
        assert sum(v for _, v in parts) == pytest.approx(float(scores[item]), rel=1e-5, abs=1e-7)
    assert knn.contributions("nobody", 0) == []


def test_bm25_similarity_is_the_weighted_dot_product() -> None:
    from implicit.nearest_neighbours import bm25_weight

    inter = clusters()
    knn = CoPurchaseRetriever(CoPurchaseConfig(similarity="bm25", min_support=1)).fit(inter)
    binary = (inter.matrix > 0).astype(np.float64)
    w = sp.csr_matrix(bm25_weight(binary.T, K1=1.2, B=0.75).T).toarray()
    i, j = inter.items.index("A4"), inter.items.index("A7")
    assert knn.similarity_[i, j] == pytest.approx(float(w[:, i] @ w[:, j]), rel=1e-5)


# --- ALS ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def als() -> AlsRetriever:
    return small_als().fit(clusters())


def test_als_fold_in_of_own_row_tracks_trained_scores(als: AlsRetriever) -> None:
    inter = als.interactions_
    for customer in ("c00", "c05", "c25"):
        trained = als.score_all(customer)
        folded = als.score_history(inter.row(customer))
        assert np.corrcoef(trained, folded)[0, 1] > 0.95


def test_als_fold_in_is_implicits_recalculate_user(als: AlsRetriever) -> None:
    row = als._scale(als.interactions_.row("c05"))
    factor = als.model_.recalculate_user(0, row)
    np.testing.assert_allclose(
        als.score_history(als.interactions_.row("c05")), als.item_factors_ @ factor, atol=1e-4
    )


def test_als_explain_sums_to_fold_in_score(als: AlsRetriever) -> None:
    inter = als.interactions_
    row = inter.row("c00")
    folded = als.score_history(row)
    history = set(inter.history("c00").tolist())
    for item in range(len(inter.items)):
        parts = als.explain("c00", item)
        assert {j for j, _ in parts} <= history  # an item nobody bought has zero factors
        assert [v for _, v in parts] == sorted((v for _, v in parts), reverse=True)
        assert sum(v for _, v in parts) == pytest.approx(float(folded[item]), abs=1e-5)
    # the same numbers as implicit's own explain
    item = inter.items.index("A5")
    total, top, _ = als.model_.explain(0, als._scale(row), item, N=len(history))
    assert sum(v for _, v in als.explain(row, item)) == pytest.approx(total, abs=1e-5)
    assert dict(als.explain(row, item)) == pytest.approx(dict(top), abs=1e-5)


def test_als_bm25_scaling_matches_implicit() -> None:
    from implicit.nearest_neighbours import bm25_weight

    inter = clusters()
    m = inter.matrix
    totals = np.asarray(m.sum(axis=0), dtype=np.float64).ravel()
    expected = sp.csr_matrix(bm25_weight(m.T, K1=1.2, B=0.75).T)
    expected.sort_indices()
    np.testing.assert_allclose(bm25_rows(m, totals, k1=1.2, b=0.75), expected.data, rtol=1e-5)
    fitted = small_als(scaling="bm25").fit(inter)
    assert fitted.candidates("c00", 5, exclude=inter.history("c00")).item_ids[0].startswith("A")


@pytest.mark.parametrize(
    "make",
    [
        lambda: small_als(),
        lambda: EaseRetriever(EaseConfig(l2=10.0)),
        lambda: CoPurchaseRetriever(CoPurchaseConfig()),
    ],
    ids=["als", "ease", "copurchase"],
)
def test_adding_an_item_changes_score_history(make: Any) -> None:
    inter = clusters()
    model = make().fit(inter)
    row = inter.row("c00")
    before = model.score_history(row)
    after = model.score_history(with_item(row, inter.items.index("A6")))
    assert not np.allclose(before, after)
    # a brand-new customer's history can be scored too
    new = sp.csr_matrix(([1.0], ([0], [inter.items.index("A2")])), shape=(1, len(inter.items)))
    assert model.score_history(new).any()
    with pytest.raises(ValueError, match="shape"):
        model.score_history(sp.csr_matrix((1, 3)))


def test_unknown_customers_get_no_explanation(als: AlsRetriever) -> None:
    assert als.explain("nobody", 0) == []
    assert not als.score_all("nobody").any()
    with pytest.raises(IndexError):
        als.explain("c00", 10_000)


@pytest.mark.parametrize(
    ("retriever", "message"),
    [
        (AlsRetriever(AlsConfig(factors=0)), "factors"),
        (BprRetriever(BprConfig(learning_rate=0.0)), "learning_rate"),
        (EaseRetriever(EaseConfig(l2=0.0)), "l2"),
        (CoPurchaseRetriever(CoPurchaseConfig(neighbours=0)), "neighbours"),
    ],
)
def test_bad_config_is_rejected_at_fit(retriever: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        retriever.fit(clusters())


@pytest.mark.parametrize("scaling", ["log", "linear", "bm25"])
def test_als_confidences_of_a_csr_row_are_the_general_paths(scaling: str) -> None:
    from recsys.retrieval.copurchase import history_row

    model = small_als(scaling=scaling).fit(clusters())
    n_items = len(model.interactions_.items)
    rng = np.random.default_rng(3)
    for _ in range(20):
        cols = np.sort(rng.choice(n_items, int(rng.integers(0, n_items)), replace=False))
        data = rng.choice([-1.0, 0.0, np.nan, 0.5, 1.0, 3.0, 7.25], len(cols)).astype(np.float32)
        row = sp.csr_matrix((data, cols, [0, len(cols)]), shape=(1, n_items))
        items, conf = model._confidences(row)  # the fast path (log, linear) on the served row
        scaled = model._scale(history_row(row.toarray()[0], model.interactions_))  # the general steps
        keep = scaled.data > 0
        assert np.array_equal(items, scaled.indices[keep])
        assert conf.tobytes() == (model.config.alpha * scaled.data[keep].astype(np.float64)).tobytes()
