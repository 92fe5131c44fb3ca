"""Evaluation: splits, metrics (hand-computed, properties, ir_measures), bootstrap, runner, report."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.errors import NotFittedError
from recsys.evaluation.bootstrap import mean_ci, paired_ratio_ci
from recsys.evaluation.metrics import (
    average_precision,
    coverage,
    hit_matrix,
    hit_rate,
    mean_popularity,
    ndcg,
    precision,
    ranking_metrics,
    recall,
)
from recsys.evaluation.report import export_recs, export_result_recs, read_results, write_results
from recsys.evaluation.runner import (
    Exclusions,
    Recommender,
    RetrieverRecommender,
    compare,
    evaluate_models,
    grid_edges,
    tune,
)
from recsys.evaluation.splits import (
    Split,
    Truth,
    normalise_events,
    random_split,
    temporal_split,
    test_truth,
    train_history,
    validation_split,
)
from recsys.interactions import IdVocabulary, Interactions

DAY = 86_400
START = 1_700_000_000


# --- generated data -------------------------------------------------------------


def make_events(
    n_customers: int = 40, n_items: int = 30, n_events: int = 1200, seed: int = 0
) -> pl.DataFrame:
    """Purchases with distinct timestamps; item popularity is skewed (low ids popular)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1)
    items = rng.choice(n_items, size=n_events, p=weights / weights.sum())
    customers = rng.integers(0, n_customers, size=n_events)
    ts = START + rng.permutation(n_events) * 3_600
    return pl.DataFrame(
        {
            "customer_id": [f"c{c:02d}" for c in customers],
            "item_id": [f"i{i:02d}" for i in items],
            "event_type": ["purchase"] * n_events,
            "ts": ts,
            "value": [1.0] * n_events,
        }
    )


def item_catalog(n_items: int = 30) -> pl.DataFrame:
    return pl.DataFrame({"item_id": [f"i{i:02d}" for i in range(n_items)]})


# --- splits -----------------------------------------------------------------------


def test_temporal_split_holds_out_the_last_fifth() -> None:
    ev = make_events()
    split = temporal_split(ev, test_fraction=0.2)
    assert split.kind == "temporal"
    assert split.train.height + split.test.height == ev.height
    assert split.test.height / ev.height == pytest.approx(0.2, abs=0.01)
    assert split.cutoff is not None
    assert split.test["ts"].min() > split.cutoff
    assert split.train["ts"].max() <= split.cutoff


def test_temporal_split_keeps_ties_at_the_cutoff_in_training() -> None:
    ev = pl.DataFrame({"customer_id": ["a"] * 10, "item_id": [f"i{j}" for j in range(10)],
                       "ts": [0, 0, 0, 0, 0, 0, 0, 0, 5, 5]})
    split = temporal_split(ev, test_fraction=0.3)  # the 70% quantile is a tie at 0
    assert split.cutoff == 0
    assert split.test.height == 2


def test_temporal_split_needs_times() -> None:
    ev = pl.DataFrame({"customer_id": ["a", "b"], "item_id": ["x", "y"], "ts": [1, None]})
    with pytest.raises(ValueError, match="timestamp on every event"):
        temporal_split(ev)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        temporal_split(make_events(), test_fraction=1.0)


def test_normalise_events_reads_a_datetime_timestamp() -> None:
    ev = pl.DataFrame({"customer_id": [1], "item_id": ["x"],
                       "timestamp": [datetime(2024, 1, 1, tzinfo=UTC)]})
    out = normalise_events(ev)
    assert out.columns == ["customer_id", "item_id", "event_type", "ts", "value"]
    assert out.row(0) == ("1", "x", "purchase", 1_704_067_200, None)


def test_random_split_is_seeded_per_customer_and_order_free() -> None:
    ev = make_events()
    ev = pl.concat([ev, pl.DataFrame({"customer_id": ["solo"], "item_id": ["i00"],
                                      "event_type": ["purchase"], "ts": [START], "value": [1.0]})])
    a = random_split(ev, test_fraction=0.2, seed=1)
    b = random_split(ev.sample(fraction=1.0, shuffle=True, seed=9), test_fraction=0.2, seed=1)
    c = random_split(ev, test_fraction=0.2, seed=2)
    assert a.kind == "random" and a.cutoff is None
    assert a.test.equals(b.test) and a.train.equals(b.train)
    assert not a.test.equals(c.test)
    assert a.test.height / ev.height == pytest.approx(0.2, abs=0.03)
    per = (
        ev.group_by("customer_id").len("n")
        .join(a.test.group_by("customer_id").len("t"), on="customer_id", how="left")
        .fill_null(0)
    )
    for customer, n, t in per.iter_rows():
        if n < 2:
            assert t == 0, customer  # a lone event stays in training
        else:
            assert 1 <= t <= n - 1
            assert t == min(max(round(0.2 * n), 1), n - 1)


def test_validation_split_carves_from_train_the_same_way() -> None:
    split = temporal_split(make_events())
    val = validation_split(split)
    assert val.kind == "temporal"
    assert val.train.height + val.test.height == split.train.height
    assert val.cutoff is not None and split.cutoff is not None and val.cutoff < split.cutoff
    rnd = random_split(make_events(), seed=3)
    rval = validation_split(rnd)
    assert rval.kind == "random" and rval.seed == 3
    assert rval.train.height + rval.test.height == rnd.train.height


def _split(train: list[tuple[str, str]], test: list[tuple[str, str, str, float | None]]) -> Split:
    tr = normalise_events(pl.DataFrame(train, schema=["customer_id", "item_id"], orient="row"))
    te = normalise_events(
        pl.DataFrame(test, schema=["customer_id", "item_id", "event_type", "value"], orient="row")
    )
    return Split(train=tr, test=te, cutoff=None, kind="random")


def test_truth_discovery_and_evaluated_customers() -> None:
    split = _split(
        train=[("a", "x"), ("a", "y"), ("b", "x"), ("d", "x")],
        test=[
            ("a", "x", "purchase", 1.0),  # already had it
            ("a", "z", "purchase", 1.0),  # new: relevant
            ("a", "w", "view", None),  # a view is not relevant
            ("b", "x", "purchase", 1.0),  # only a repeat: b is dropped with discovery
            ("c", "z", "purchase", 1.0),  # cold customer: never evaluated
        ],
    )
    truth = test_truth(split)
    assert truth.customer_ids == ("a",)
    assert truth.item_sets() == [frozenset({"z"})]
    repeat = test_truth(split, discovery=False)
    assert repeat.customer_ids == ("a", "b")
    assert repeat.item_sets() == [frozenset({"x", "z"}), frozenset({"x"})]
    # the exclusions the runner uses agree with what discovery removed
    vocab = IdVocabulary(["w", "x", "y", "z"])
    hist = train_history(split, vocab, ["a", "b"])
    assert vocab.ids[hist["a"]].tolist() == ["x", "y"]


def test_truth_ratings_need_four_stars_by_default() -> None:
    split = _split(
        train=[("a", "x"), ("b", "x")],
        test=[("a", "m1", "rating", 5.0), ("a", "m2", "rating", 3.0), ("b", "m3", "rating", 4.0)],
    )
    assert test_truth(split).item_sets() == [frozenset({"m1"}), frozenset({"m3"})]
    assert test_truth(split, min_rating=None).item_sets()[0] == frozenset({"m1", "m2"})


def test_relevance_gives_unknown_items_their_own_columns() -> None:
    split = _split(train=[("a", "x"), ("b", "x")],
                   test=[("a", "y", "purchase", 1.0), ("a", "new", "purchase", 1.0),
                         ("b", "new2", "purchase", 1.0)])
    truth = test_truth(split)
    rel = truth.relevance(IdVocabulary(["x", "y"]))
    assert rel.shape == (2, 4)
    assert rel.toarray().tolist() == [[0, 1, 1, 0], [0, 0, 0, 1]]


# --- metrics: a hand-computed example -----------------------------------------------


def test_metrics_two_customer_hand_example() -> None:
    # customer A: ranks 1 and 3 relevant out of {1, 3};
    # customer B: rank 2 relevant, plus two relevant items never recommended
    recs = np.array([[1, 2, 3], [4, 5, 6]])
    relevant = [{1, 3}, {5, 7, 8}]
    m = ranking_metrics(recs, relevant, k=3, recall_ks=(3,))
    # A: DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3)
    # B: DCG = 1/log2(3); IDCG = 1 + 1/log2(3) + 1/log2(4)
    np.testing.assert_allclose(m["ndcg@3"], [0.9197207891481876, 0.2960819109658652], rtol=1e-12)
    np.testing.assert_allclose(m["recall@3"], [1.0, 1 / 3])
    np.testing.assert_allclose(m["precision@3"], [2 / 3, 1 / 3])
    np.testing.assert_allclose(m["hr@3"], [1.0, 1.0])
    # A: (1/1 + 2/3) / min(3, 2); B: (1/2) / min(3, 3)
    np.testing.assert_allclose(m["map@3"], [0.8333333333333333, 0.16666666666666666])
    assert list(m) == ["ndcg@3", "recall@3", "hr@3", "map@3", "precision@3"]


def test_padding_shorter_lists_and_errors() -> None:
    hits, n_rel = hit_matrix(np.array([[3, -1, -1]]), [{3, 4}])
    assert hits.tolist() == [[True, False, False]]
    assert precision(hits, 10)[0] == pytest.approx(0.1)  # empty slots are misses
    assert recall(hits, n_rel, 10)[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="more than once"):
        hit_matrix(np.array([[1, 2, 1]]), [{1}])
    with pytest.raises(ValueError, match="aligned per customer"):
        hit_matrix(np.array([[1, 2]]), [{1}, {2}])
    # a customer with nothing relevant scores 0, not NaN
    h0, n0 = hit_matrix(np.array([[1, 2]]), [set()])
    assert ndcg(h0, n0)[0] == 0.0 and average_precision(h0, n0)[0] == 0.0


def test_coverage_and_mean_popularity() -> None:
    recs = np.array([[0, 1, -1], [1, 2, 3]])
    pop = np.array([10.0, 4.0, 2.0, 0.0])
    assert coverage(recs, 8) == pytest.approx(4 / 8)
    assert coverage(recs, 8, k=1) == pytest.approx(2 / 8)
    assert mean_popularity(recs, pop) == pytest.approx((10 + 4 + 4 + 2 + 0) / 5)
    assert math.isnan(mean_popularity(np.full((2, 2), -1), pop))


# --- metrics: properties ---------------------------------------------------------


@st.composite
def ranking_case(draw: st.DrawFn) -> tuple[np.ndarray, list[set[int]], int]:
    """A few customers' distinct rankings (-1 padded) over a small catalog and relevant sets."""
    n_items = draw(st.integers(1, 25))
    width = draw(st.integers(1, 12))
    rows, rels = [], []
    for _ in range(draw(st.integers(1, 5))):
        ranked = draw(st.permutations(range(n_items)))[: draw(st.integers(0, min(width, n_items)))]
        rows.append(list(ranked) + [-1] * (width - len(ranked)))
        rels.append(set(draw(st.lists(st.integers(0, n_items - 1), min_size=1, max_size=n_items))))
    return np.array(rows, dtype=np.int64), rels, draw(st.integers(1, 15))


@given(ranking_case())
@settings(max_examples=150, deadline=None)
def test_metrics_lie_in_unit_interval(case: tuple[np.ndarray, list[set[int]], int]) -> None:
    recs, rels, k = case
    for name, values in ranking_metrics(recs, rels, k=k, recall_ks=(k + 5,)).items():
        assert np.all((values >= 0) & (values <= 1 + 1e-12)), name


@given(ranking_case())
@settings(max_examples=150, deadline=None)
def test_perfect_ranking_scores_one(case: tuple[np.ndarray, list[set[int]], int]) -> None:
    _, rels, k = case
    recs = np.array([sorted(r) + [-1] * (30 - len(r)) for r in rels])
    m = ranking_metrics(recs, rels, k=k)
    np.testing.assert_allclose(m[f"ndcg@{k}"], 1.0)
    np.testing.assert_allclose(m[f"map@{k}"], 1.0)
    np.testing.assert_allclose(m[f"hr@{k}"], 1.0)
    np.testing.assert_allclose(m[f"recall@{k}"], [min(k, len(r)) / len(r) for r in rels])


@given(ranking_case(), st.data())
@settings(max_examples=200, deadline=None)
def test_moving_a_hit_earlier_never_lowers_ndcg(
    case: tuple[np.ndarray, list[set[int]], int], data: st.DataObject
) -> None:
    recs, rels, k = case
    row = recs[:1].copy()
    hits, n_rel = hit_matrix(row, rels[:1])
    hit_pos = np.flatnonzero(hits[0])
    miss_pos = np.flatnonzero(~hits[0])
    if len(hit_pos) == 0 or len(miss_pos) == 0 or miss_pos.min() > hit_pos.max():
        return
    j = data.draw(st.sampled_from(hit_pos.tolist()))
    earlier = [i for i in miss_pos.tolist() if i < j]
    if not earlier:
        return
    i = data.draw(st.sampled_from(earlier))
    moved = row.copy()
    moved[0, i], moved[0, j] = row[0, j], row[0, i]
    before = ndcg(hits, n_rel, k)[0]
    h2, n2 = hit_matrix(moved, rels[:1])
    assert ndcg(h2, n2, k)[0] >= before - 1e-12


@given(ranking_case())
@settings(max_examples=150, deadline=None)
def test_recall_and_hit_rate_never_fall_as_k_grows(case: tuple[np.ndarray, list[set[int]], int]) -> None:
    recs, rels, _ = case
    hits, n_rel = hit_matrix(recs, rels)
    prev_r, prev_h = np.zeros(len(rels)), np.zeros(len(rels))
    for k in range(1, recs.shape[1] + 3):
        r, h = recall(hits, n_rel, k), hit_rate(hits, k)
        assert np.all(r >= prev_r - 1e-12) and np.all(h >= prev_h)
        prev_r, prev_h = r, h


def test_metrics_agree_with_ir_measures_on_random_data() -> None:
    ir_measures = pytest.importorskip("ir_measures")
    from ir_measures import AP, P, R, nDCG

    rng = np.random.default_rng(5)
    n_customers, n_items, k = 60, 80, 10
    recs = np.stack([rng.choice(n_items, size=k, replace=False) for _ in range(n_customers)])
    # some customers have more relevant items than k, where the AP definitions part ways
    rels = [set(rng.choice(n_items, size=rng.integers(1, 25), replace=False).tolist())
            for _ in range(n_customers)]
    ours = ranking_metrics(recs, rels, k=k)
    qrels = [ir_measures.Qrel(f"q{u}", f"d{i}", 1) for u, r in enumerate(rels) for i in r]
    run = [ir_measures.ScoredDoc(f"q{u}", f"d{i}", float(k - rank))
           for u in range(n_customers) for rank, i in enumerate(recs[u])]
    theirs: dict[tuple[str, str], float] = {
        (m.query_id, str(m.measure)): m.value for m in ir_measures.iter_calc([nDCG @ k, R @ k, P @ k, AP @ k], qrels, run)
    }
    n_rel = np.array([len(r) for r in rels])
    for u in range(n_customers):
        q = f"q{u}"
        assert ours[f"ndcg@{k}"][u] == pytest.approx(theirs[(q, f"nDCG@{k}")], abs=1e-9)
        assert ours[f"recall@{k}"][u] == pytest.approx(theirs[(q, f"R@{k}")], abs=1e-9)
        assert ours[f"precision@{k}"][u] == pytest.approx(theirs[(q, f"P@{k}")], abs=1e-9)
        # trec_eval's AP@k divides by |R|, ours by min(k, |R|): same where |R| <= k
        rescaled = ours[f"map@{k}"][u] * min(k, n_rel[u]) / n_rel[u]
        assert rescaled == pytest.approx(theirs[(q, f"AP@{k}")], abs=1e-9)
    assert (n_rel > k).any() and (n_rel <= k).any()
    aggregate = ir_measures.calc_aggregate([nDCG @ k, R @ k, P @ k], qrels, run)
    assert ours[f"ndcg@{k}"].mean() == pytest.approx(aggregate[nDCG @ k], abs=1e-9)
    assert ours[f"recall@{k}"].mean() == pytest.approx(aggregate[R @ k], abs=1e-9)
    assert ours[f"precision@{k}"].mean() == pytest.approx(aggregate[P @ k], abs=1e-9)


# --- bootstrap --------------------------------------------------------------------


def test_identical_models_give_ratio_one() -> None:
    a = np.random.default_rng(0).random(500)
    ci = paired_ratio_ci(a, a.copy())
    assert ci.ratio == pytest.approx(1.0)
    assert ci.low <= 1.0 <= ci.high
    assert not ci.excludes_one()


def test_clearly_better_model_has_interval_above_one() -> None:
    rng = np.random.default_rng(1)
    b = rng.random(800)
    a = np.clip(b * 1.3 + rng.normal(0, 0.05, 800), 0, None)
    ci = paired_ratio_ci(a, b, n_resamples=500, seed=3)
    assert ci.low > 1.0 and ci.low < ci.ratio < ci.high
    assert ci == paired_ratio_ci(a, b, n_resamples=500, seed=3)  # seeded
    m = mean_ci(b, n_resamples=500)
    assert m.low < b.mean() < m.high


def test_bootstrap_is_fast_and_checks_inputs() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random(2_500), rng.random(2_500)
    paired_ratio_ci(a, b, n_resamples=10)  # warm up
    start = time.perf_counter()
    paired_ratio_ci(a, b, n_resamples=1000)
    assert time.perf_counter() - start < 1.0
    with pytest.raises(ValueError, match="same customers"):
        paired_ratio_ci(a, b[:-1])
    with pytest.raises(ValueError, match="mean is 0"):
        paired_ratio_ci(a, np.zeros_like(a))


# --- runner -----------------------------------------------------------------------


class PopularRecommender:
    """Most distinct customers first; ``depth`` caps how many of the top items it may use."""

    name = "popular"

    def __init__(self, depth: int = 1_000) -> None:
        self.depth = depth

    def fit(self, interactions: Interactions) -> Self:
        pop = interactions.item_popularity()
        self.order_ = np.lexsort((np.arange(len(pop)), -pop))[: self.depth]
        return self

    def recommend(self, customer_ids: Sequence[str], k: int, *, exclude: Exclusions | None = None) -> np.ndarray:
        if not hasattr(self, "order_"):
            raise NotFittedError("PopularRecommender")
        out = np.full((len(customer_ids), k), -1, dtype=np.int64)
        for row, c in enumerate(customer_ids):
            banned = exclude.get(c, ()) if exclude else ()
            items = self.order_[~np.isin(self.order_, banned)][:k]
            out[row, : len(items)] = items
        return out


class OracleRecommender:
    """Returns each customer's relevant test items (knows the answer)."""

    name = "oracle"

    def __init__(self, answers: dict[str, frozenset[str]]) -> None:
        self.answers = answers

    def fit(self, interactions: Interactions) -> Self:
        self.items_ = interactions.items
        return self

    def recommend(self, customer_ids: Sequence[str], k: int, *, exclude: Exclusions | None = None) -> np.ndarray:
        out = np.full((len(customer_ids), k), -1, dtype=np.int64)
        for row, c in enumerate(customer_ids):
            idx = self.items_.indices(sorted(self.answers.get(c, ())))[:k]
            out[row, : len(idx)] = idx
        return out


def test_runner_popularity_versus_oracle(tmp_path: Path) -> None:
    split = temporal_split(make_events())
    truth = test_truth(split)
    oracle = OracleRecommender(dict(zip(truth.customer_ids, truth.item_sets(), strict=True)))
    assert isinstance(oracle, Recommender)
    result = evaluate_models(
        split, {"popular": PopularRecommender, "oracle": oracle}, k=10, catalog=item_catalog()
    )
    keys = ["ndcg@10", "recall@10", "recall@20", "hr@10", "map@10", "precision@10",
            "coverage", "mean_popularity", "train_seconds", "customers"]
    for name in ("popular", "oracle"):
        assert list(result.models[name].metrics) == keys
        assert result.models[name].per_customer["ndcg@10"].shape == (len(truth),)
        assert result.models[name].recommendations.shape == (len(truth), 20)
    om, pm = result.models["oracle"].metrics, result.models["popular"].metrics
    assert om["ndcg@10"] == pytest.approx(1.0)
    assert om["hr@10"] == pytest.approx(1.0) and om["map@10"] == pytest.approx(1.0)
    assert 0 < pm["ndcg@10"] < 1
    assert om["customers"] == pm["customers"] == len(truth)
    few = truth.sample(5, seed=1)
    assert len(few) == 5 and set(few.customer_ids) <= set(truth.customer_ids)
    assert set(few.pairs["customer_id"].to_list()) == set(few.customer_ids)
    assert 0 < pm["coverage"] <= 1
    assert pm["mean_popularity"] > om["mean_popularity"]  # popular items, by construction
    assert result.best() == "oracle"

    cmp = compare(result, "oracle", n_resamples=200)
    assert cmp.baseline == "popular" and cmp.low > 1.0

    path = write_results(result, tmp_path / "results.json", dataset="generated", split=split,
                         model="oracle", extra={"note": "test"}, n_resamples=200)
    doc = read_results(path)
    json.loads(path.read_text())  # strict JSON
    assert doc["schema_version"] == 1 and doc["dataset"] == "generated"
    assert doc["split"] == "temporal" and doc["k"] == 10 and doc["test_fraction"] == 0.2
    assert doc["customers_evaluated"] == len(truth)
    assert set(doc["models"]) == {"popular", "oracle"}
    assert list(doc["models"]["oracle"]) == keys
    c = doc["comparison"]
    assert c["model"] == "oracle" and c["baseline"] == "popular"
    assert c["ci_low"] <= c["ndcg_ratio"] <= c["ci_high"] and c["n_resamples"] == 200
    assert doc["note"] == "test"
    with pytest.raises(ValueError, match="replace report keys"):
        write_results(result, tmp_path / "x.json", dataset="d", extra={"models": 1})


def test_runner_enforces_the_exclusions() -> None:
    split = temporal_split(make_events())

    class Repeater(PopularRecommender):
        def recommend(self, customer_ids: Sequence[str], k: int, *, exclude: Exclusions | None = None) -> np.ndarray:
            return super().recommend(customer_ids, k, exclude=None)

    with pytest.raises(ValueError, match="excluded"):
        evaluate_models(split, {"repeater": Repeater()}, k=10)
    # without discovery repeats are allowed (and truth keeps them)
    result = evaluate_models(split, {"repeater": Repeater()}, k=10, discovery=False)
    assert result.models["repeater"].metrics["ndcg@10"] > 0
    with pytest.raises(TypeError, match="RetrieverRecommender"):
        evaluate_models(split, {"bad": lambda: object()}, k=10)  # type: ignore[dict-item]


def test_export_recs_round_trips(tmp_path: Path) -> None:
    split = temporal_split(make_events())
    result = evaluate_models(split, {"popular": PopularRecommender()}, k=5)
    recs_path, test_path = export_result_recs(result, tmp_path / "out")
    recs = pl.read_parquet(recs_path)
    assert recs.columns == ["customer_id", "model", "rank", "item_id"]
    top = result.models["popular"].recommendations[:, :5]
    first = result.customer_ids[0]
    got = recs.filter(pl.col("customer_id") == first).sort("rank")["item_id"].to_list()
    assert got == [result.items.ids[i] for i in top[0] if i >= 0]
    test = pl.read_parquet(test_path)
    assert test.sort("customer_id", "item_id").equals(result.truth.pairs)
    # -1 padding is not written
    tiny = Truth(customer_ids=("a",), pairs=pl.DataFrame({"customer_id": ["a"], "item_id": ["x"]}),
                 discovery=True, event_types=("purchase",), min_rating=None)
    p2, _ = export_recs(tmp_path / "pad", {"m": np.array([[0, -1]])}, tiny, ["a"], ["x", "y"])
    assert pl.read_parquet(p2).rows() == [("a", "m", 1, "x")]


def test_tune_picks_the_best_and_flags_edges() -> None:
    split = temporal_split(make_events(n_events=1500))
    # hide the test part: tuning must work from split.train alone
    blind = Split(train=split.train, test=split.train.head(0), cutoff=split.cutoff, kind="temporal")
    grid: dict[str, list[Any]] = {"depth": [2, 5, 30]}
    res = tune(lambda depth: PopularRecommender(depth), grid, blind, k=5)
    table = res.table()
    assert table.height == 3 and table["depth"].to_list()[0] == res.params["depth"]
    assert res.score == pytest.approx(table["ndcg@5"].max())
    assert res.params == {"depth": 30} and res.at_edge == {"depth": "high"}
    assert res.validation["kind"] == "temporal"
    sampled = tune(lambda depth: PopularRecommender(depth), grid, blind, k=5, max_customers=5)
    assert sampled.validation["customers"] == 5
    coord = tune(lambda depth, tag: PopularRecommender(depth), {"depth": [2, 5, 30], "tag": ["a", "b"]},
                 blind, k=5, strategy="coordinate")
    assert coord.params["depth"] == 30 and len(coord.trials) <= 6
    json.dumps(coord.to_json())


def test_grid_edges() -> None:
    grid = {"l2": [10, 100, 1000], "kind": ["a", "b"], "flag": [True, False], "one": [3]}
    assert grid_edges({"l2": 10, "kind": "a", "flag": True, "one": 3}, grid) == {"l2": "low"}
    assert grid_edges({"l2": 1000}, grid) == {"l2": "high"}
    assert grid_edges({"l2": 100}, grid) == {}
    assert grid_edges({"l2": 10}, grid, limits={"l2": (10, None)}) == {}  # nothing below a hard bound


def test_retriever_adapter_uses_candidates() -> None:
    popularity = pytest.importorskip("recsys.retrieval.popularity")
    split = temporal_split(make_events())
    rec = RetrieverRecommender(popularity.PopularityRetriever(popularity.PopularityConfig(window_days=3650)))
    assert rec.name == "popularity"
    with pytest.raises(NotFittedError):
        rec.recommend(["c00"], 3)
    result = evaluate_models(split, {"popularity": rec, "popular": PopularRecommender()}, k=10)
    a = result.models["popularity"].metrics["ndcg@10"]
    b = result.models["popular"].metrics["ndcg@10"]
    assert a == pytest.approx(b, abs=0.05)  # the same idea, two implementations


def test_evaluate_real_baselines_side_by_side(tmp_path: Path) -> None:
    pytest.importorskip("recsys.retrieval.popularity")
    pytest.importorskip("recsys.retrieval.copurchase")
    from recsys.evaluation.baselines import (
        BASELINE_NAMES,
        TuningPlan,
        baseline_models,
        build_baseline,
        default_grid,
        tune_baselines,
    )

    split = temporal_split(make_events(n_customers=60, n_events=2_000))
    tuned = tune_baselines(
        split,
        names=["popularity"],
        plans={"popularity": TuningPlan({"window_days": (7.0, 3650.0)})},
        k=10,
    )
    assert tuned["popularity"].params["window_days"] in (7.0, 3650.0)
    models = baseline_models(
        {"popularity": tuned["popularity"].params, "itemknn": {"neighbours": 20, "min_support": 1}}
    )
    result = evaluate_models(split, models, k=10, catalog=item_catalog())
    assert set(result.models) == {"popularity", "itemknn"}
    for r in result.models.values():
        assert 0 < r.metrics["ndcg@10"] <= 1
        assert r.metrics["customers"] == len(result.customer_ids)
    cmp = compare(result, "itemknn", n_resamples=100)
    assert cmp.baseline == "popularity" and cmp.low <= cmp.ratio <= cmp.high
    write_results(result, tmp_path / "r.json", dataset="generated", model="itemknn",
                  tuning=tuned, n_resamples=100)
    assert read_results(tmp_path / "r.json")["tuning"]["popularity"]["params"]["window_days"] in (7.0, 3650.0)
    assert default_grid("ease")["l2"][0] == 30.0
    # every baseline builds from its default grid's middle point and runs
    pytest.importorskip("recsys.retrieval.als")
    pytest.importorskip("recsys.retrieval.ease")
    middle = {name: {p: v[len(v) // 2] for p, v in default_grid(name).items()} for name in BASELINE_NAMES}
    middle["bpr"]["iterations"] = 20
    everything = evaluate_models(split, baseline_models(middle), k=10)
    assert list(everything.models) == list(BASELINE_NAMES)
    assert all(0 <= r.metrics["ndcg@10"] <= 1 for r in everything.models.values())
    with pytest.raises(ValueError, match="unknown baseline"):
        build_baseline("svd")
