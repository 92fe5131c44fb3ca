"""Popularity and buy-again retrieval: the shared contract and known answers."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from recsys.interactions import Interactions
from recsys.retrieval.buy_again import BuyAgainConfig, BuyAgainRetriever
from recsys.retrieval.popularity import PopularityConfig, PopularityRetriever
from tests.retriever_suite import DAY, START, RetrieverContract

# --- shared contract -----------------------------------------------------------


class TestPopularityContract(RetrieverContract):
    needs_history = False
    min_cluster_hits = 0  # the same list for everyone: no taste to match

    def make(self, seed: int = 7) -> PopularityRetriever:
        return PopularityRetriever(PopularityConfig(seed=seed))


class TestBuyAgainContract(RetrieverContract):
    needs_history = True

    def make(self, seed: int = 7) -> BuyAgainRetriever:
        return BuyAgainRetriever(BuyAgainConfig(seed=seed))

    def test_known_customer_gets_the_known_answer(self, fitted: Any) -> None:
        # Buy-again only proposes the customer's own repeat items, so the suite's
        # "exclude the history" answer is empty by design. c00 bought A0 and A1
        # three times each, a week apart, and A2, A3 once.
        cands = fitted.candidates("c00", 6)
        assert set(cands.item_ids) == {"A0", "A1"}
        assert np.all(np.diff(cands.scores) <= 1e-6)
        inter = self.interactions()
        assert len(fitted.candidates("c00", 6, exclude=inter.history("c00"))) == 0


# --- popularity: known answers ---------------------------------------------------

NOW = START + 28 * DAY


def _event(customer: str, item: str, days_before_now: float) -> dict[str, Any]:
    return {"customer_id": customer, "item_id": item, "event_type": "purchase",
            "ts": int(NOW - days_before_now * DAY), "value": 1.0}


def popularity_events() -> pl.DataFrame:
    """steady: 3 new buyers every week; rising: 1 a week, then 6 this week;
    old: 20 buyers two months ago; cheese: 1 buyer, right now."""
    rows = []
    for week in range(4):
        for k in range(3):
            rows.append(_event(f"s{week}{k}", "steady", week * 7 + 3.5))
        for k in range(6 if week == 0 else 1):
            rows.append(_event(f"r{week}{k}", "rising", week * 7 + 3.5))
    rows += [_event(f"o{k}", "old", 60) for k in range(20)]
    rows.append(_event("z", "cheese", 0))
    rows.append(_event("s00", "steady", 1.0))  # a repeat buyer counts once
    return pl.DataFrame(rows)


def popularity_catalog() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "item_id": ["steady", "rising", "old", "cheese", "unsold"],
            "title": ["Steady", "Rising", "Old", "Cheese", "Unsold"],
            "category": ["Dairy", "Dairy", "Tools", "Dairy", None],
        }
    )


@pytest.fixture
def popular() -> tuple[PopularityRetriever, Interactions]:
    inter = Interactions.from_events(popularity_events(), catalog=popularity_catalog())
    return PopularityRetriever().fit(inter), inter


def test_popularity_counts_distinct_customers(popular: tuple[PopularityRetriever, Interactions]) -> None:
    r, inter = popular
    idx = {i: inter.items.index(i) for i in ("steady", "rising", "old", "cheese", "unsold")}
    assert inter.now == NOW
    assert r.counts_[idx["steady"]] == 12
    assert r.counts_[idx["rising"]] == 9
    assert r.counts_[idx["old"]] == 20
    assert r.recent_[idx["old"]] == 0
    assert r.recent_[idx["steady"]] == 12
    assert r.counts_[idx["unsold"]] == 0


def test_popularity_orders_by_recent_counts(popular: tuple[PopularityRetriever, Interactions]) -> None:
    r, _ = popular
    cands = r.candidates("anyone", 10)
    # old has no recent buyer but ranks above never-sold items (which never appear)
    assert cands.item_ids == ("steady", "rising", "cheese", "old")
    np.testing.assert_allclose(cands.scores[:3], np.log1p([12, 9, 1]), rtol=1e-3)
    assert r.candidates("anyone", 2).item_ids == ("steady", "rising")


def test_popularity_per_category(popular: tuple[PopularityRetriever, Interactions]) -> None:
    r, inter = popular
    assert r.candidates("x", 10, category="Dairy").item_ids == ("steady", "rising", "cheese")
    assert r.candidates("x", 10, category="Tools").item_ids == ("old",)
    assert len(r.candidates("x", 10, category="Garden")) == 0
    excluded = r.candidates("x", 10, category="Dairy", exclude=np.array([inter.items.index("steady")]))
    assert excluded.item_ids == ("rising", "cheese")
    assert r.item_stats(inter.items.index("cheese"))["category_rank"] == 3
    assert r.item_stats(inter.items.index("unsold"))["category"] == "(none)"


def test_trending_detects_the_rising_item(popular: tuple[PopularityRetriever, Interactions]) -> None:
    r, inter = popular
    rising = inter.items.index("rising")
    stats = r.item_stats(rising)
    assert stats["trend_recent_count"] == 6
    assert stats["trend_previous_count"] == 3
    assert stats["trend_ratio"] == pytest.approx((6 + 1) / (3 / 3 + 1))
    assert stats["category"] == "Dairy"
    assert stats["category_trend_rank"] == 1
    assert stats["recent_count"] == 9 and stats["count"] == 9 and stats["timed"]
    assert r.item_stats(inter.items.index("steady"))["trend_ratio"] == pytest.approx(1.0)
    trending = r.candidates("x", 10, mode="trending")
    assert trending.item_ids[0] == "rising"
    assert "steady" not in trending.item_ids and "old" not in trending.item_ids
    assert r.candidates("x", 10, mode="trending", category="Tools").item_ids == ()


def test_popularity_without_timestamps() -> None:
    events = popularity_events().with_columns(pl.lit(None, dtype=pl.Int64).alias("ts"))
    inter = Interactions.from_events(events, catalog=popularity_catalog())
    r = PopularityRetriever().fit(inter)
    np.testing.assert_array_equal(r.recent_, r.counts_)
    np.testing.assert_array_equal(r.trend_, np.ones(len(inter.items), np.float32))
    assert r.candidates("x", 10).item_ids[0] == "old"
    assert len(r.candidates("x", 10, mode="trending")) == 0
    assert r.item_stats(0)["timed"] is False


def test_popularity_rejects_bad_windows_and_indices(popular: tuple[PopularityRetriever, Interactions]) -> None:
    r, inter = popular
    with pytest.raises(ValueError, match="shorter"):
        PopularityRetriever(PopularityConfig(window_days=7, trend_window_days=7)).fit(inter)
    with pytest.raises(IndexError):
        r.item_stats(len(inter.items))
    with pytest.raises(ValueError, match="mode"):
        r.candidates("x", 3, mode="hot")  # type: ignore[arg-type]


# --- buy-again: known answers ------------------------------------------------------


def buy_events(rows: list[tuple[str, str, float]]) -> pl.DataFrame:
    """(customer, item, day) purchases; day 0 is START (plus two hours)."""
    return pl.DataFrame(
        {
            "customer_id": [c for c, _, _ in rows],
            "item_id": [i for _, i, _ in rows],
            "event_type": ["purchase"] * len(rows),
            "ts": [int(START + 7200 + d * DAY) for _, _, d in rows],
        }
    )


@pytest.fixture
def routine() -> tuple[BuyAgainRetriever, Interactions]:
    rows = [("a", "weekly", d) for d in (0, 7, 14, 21)]
    rows += [("a", "fresh", d) for d in (0, 7, 14, 28)]  # bought again just now
    rows += [("a", "once", 5)]
    rows += [("a", "twice_a_day", 10), ("a", "twice_a_day", 10.01), ("a", "twice_a_day", 20)]
    rows += [("a", "rare", -200), ("a", "rare", 0)]
    rows += [("b", "weekly", 27)]
    inter = Interactions.from_events(buy_events(rows))
    return BuyAgainRetriever().fit(inter), inter


def test_weekly_purchases_have_a_seven_day_interval(routine: tuple[BuyAgainRetriever, Interactions]) -> None:
    r, inter = routine
    ev = r.evidence("a", inter.items.index("weekly"))
    assert ev is not None
    assert ev["purchases"] == 4
    assert ev["typical_interval_days"] == 7.0
    assert ev["days_since_last"] == pytest.approx(7.0)
    assert ev["interval_ratio"] == pytest.approx(1.0)
    assert ev["score"] == pytest.approx(np.log1p(4))


def test_due_item_ranks_above_just_bought_item(routine: tuple[BuyAgainRetriever, Interactions]) -> None:
    r, inter = routine
    cands = r.candidates("a", 10)
    assert cands.item_ids[0] == "weekly"
    assert cands.item_ids.index("weekly") < cands.item_ids.index("fresh")
    fresh = r.evidence("a", inter.items.index("fresh"))
    assert fresh is not None and fresh["days_since_last"] == 0.5
    assert fresh["score"] == pytest.approx(np.log1p(4) * 0.5 / 7)


def test_reference_time_can_be_moved(routine: tuple[BuyAgainRetriever, Interactions]) -> None:
    r, inter = routine
    later = START + 7200 + 35 * DAY  # a week after "fresh", two after "weekly"
    cands = r.candidates("a", 10, now=later)
    assert cands.item_ids.index("fresh") < cands.item_ids.index("weekly")
    scores = r.score_all("a", now=later)
    assert scores[inter.items.index("fresh")] == pytest.approx(np.log1p(4))
    assert scores[inter.items.index("weekly")] == pytest.approx(np.log1p(4) / 2)
    ev = r.evidence("a", inter.items.index("weekly"), now=later)
    assert ev is not None and ev["interval_ratio"] == pytest.approx(2.0)


def test_one_offs_rare_and_same_day_purchases(routine: tuple[BuyAgainRetriever, Interactions]) -> None:
    r, inter = routine
    cands = r.candidates("a", 10)
    assert "once" not in cands.item_ids
    assert r.evidence("a", inter.items.index("once")) is None
    assert r.score_all("a")[inter.items.index("once")] == 0.0
    assert "rare" not in cands.item_ids  # a 200-day interval is not a routine
    twice = r.evidence("a", inter.items.index("twice_a_day"))
    assert twice is not None and twice["purchases"] == 2 and twice["typical_interval_days"] == 10.0
    assert len(r.candidates("b", 10)) == 0  # one purchase is no routine
    assert len(r.candidates("nobody", 10)) == 0
    assert r.evidence("nobody", 0) is None
    assert not r.score_all("nobody").any()
    stricter = BuyAgainRetriever(BuyAgainConfig(min_purchases=3)).fit(inter)
    assert set(stricter.candidates("a", 10).item_ids) == {"weekly", "fresh"}
    looser = BuyAgainRetriever(BuyAgainConfig(max_interval_days=365)).fit(inter)
    assert "rare" in looser.candidates("a", 10).item_ids


def test_buy_again_without_timestamps_proposes_nothing() -> None:
    events = buy_events([("a", "x", 0), ("a", "x", 7)]).with_columns(pl.lit(None, dtype=pl.Int64).alias("ts"))
    r = BuyAgainRetriever().fit(Interactions.from_events(events))
    assert len(r.candidates("a", 5)) == 0


def test_buy_again_rejects_bad_config() -> None:
    inter = Interactions.from_events(buy_events([("a", "x", 0)]))
    with pytest.raises(ValueError, match="min_purchases"):
        BuyAgainRetriever(BuyAgainConfig(min_purchases=1)).fit(inter)
    with pytest.raises(ValueError, match="max_interval_days"):
        BuyAgainRetriever(BuyAgainConfig(max_interval_days=0)).fit(inter)
