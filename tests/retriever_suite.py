"""One contract test suite that every retriever must pass.

Subclass :class:`RetrieverContract` in a test module, set ``needs_history``
and implement ``make``; the data is two clusters with a known answer: customers
0-19 buy items A0-A9, customers 20-39 buy items B0-B9, and customer "c00" has
seen only part of cluster A.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from recsys.errors import NotFittedError
from recsys.interactions import Interactions
from recsys.retrieval.base import Candidates

DAY = 86_400
START = 1_700_000_000


def cluster_events(seed: int = 0) -> pl.DataFrame:
    """Two taste clusters; customer c00 bought only A0-A3 (so A4-A9 are the known answer)."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for c in range(40):
        cluster = "A" if c < 20 else "B"
        owned = [0, 1, 2, 3] if c == 0 else sorted(rng.choice(10, size=6, replace=False).tolist())
        for k, i in enumerate(owned):
            repeats = 3 if i in (0, 1) else 1  # staples bought again
            for r in range(repeats):
                rows.append(
                    {
                        "customer_id": f"c{c:02d}",
                        "item_id": f"{cluster}{i}",
                        "event_type": "purchase",
                        "ts": START + (k * 3 + r * 7) * DAY + c * 60,
                        "value": 1.0,
                    }
                )
    return pl.DataFrame(rows)


def cluster_items() -> pl.DataFrame:
    """Catalog for the cluster data, with text that also separates the clusters."""
    rows = []
    for cluster, words in (("A", "organic dairy milk cheese yogurt"), ("B", "garden tools hammer saw drill")):
        for i in range(10):
            rows.append(
                {
                    "item_id": f"{cluster}{i}",
                    "title": f"{words.split()[i % 5].title()} {cluster}{i}",
                    "description": f"{words} product number {i}",
                    "category": "Dairy" if cluster == "A" else "Tools",
                    "brand": "House" if i % 3 == 0 else "Name",
                    "price": 1.0 + i,
                }
            )
    # one new item with no interactions yet (content retrievers must be able to find it)
    rows.append({"item_id": "A_new", "title": "Organic Milk New", "description": "organic dairy milk new arrival",
                 "category": "Dairy", "brand": "House", "price": 2.0})
    return pl.DataFrame(rows)


class RetrieverContract:
    """Mixin of contract tests; subclasses provide ``make``."""

    needs_history: bool = True
    # for "known answer": how many of the top 6 for c00 must be cluster-A items it has not bought
    min_cluster_hits: int = 4

    def make(self, seed: int = 7) -> Any:
        """Subclasses return an unfitted retriever built with ``seed``."""
        raise TypeError(f"{type(self).__name__} must define make()")

    def interactions(self) -> Interactions:
        return Interactions.from_events(cluster_events(), catalog=cluster_items())

    @pytest.fixture
    def fitted(self) -> Any:
        return self.make().fit(self.interactions())

    def test_fit_returns_self(self) -> None:
        r = self.make()
        assert r.fit(self.interactions()) is r

    def test_use_before_fit_raises(self) -> None:
        with pytest.raises(NotFittedError):
            self.make().candidates("c00", 5)

    def test_known_customer_gets_the_known_answer(self, fitted: Any) -> None:
        inter = self.interactions()
        history = inter.history("c00")
        cands = fitted.candidates("c00", 6, exclude=history)
        assert isinstance(cands, Candidates)
        assert len(cands) > 0
        assert not set(cands.items.tolist()) & set(history.tolist()), "excluded items came back"
        hits = sum(1 for i in cands.item_ids if i.startswith("A"))
        assert hits >= self.min_cluster_hits, cands.item_ids
        assert np.all(np.diff(cands.scores) <= 1e-6), "scores must be descending"

    def test_unknown_customer(self, fitted: Any) -> None:
        cands = fitted.candidates("nobody", 5)
        if self.needs_history:
            assert len(cands) == 0
        else:
            assert len(cands) == 5

    def test_scores_match_candidates(self, fitted: Any) -> None:
        cands = fitted.candidates("c05", 5)
        np.testing.assert_allclose(fitted.score("c05", cands.items), cands.scores, rtol=1e-5, atol=1e-6)

    def test_save_load_round_trip(self, fitted: Any, tmp_path: Path) -> None:
        path = tmp_path / "retriever.bin"
        fitted.save(path)
        loaded = type(fitted).load(path)
        a, b = fitted.candidates("c03", 8), loaded.candidates("c03", 8)
        assert a.item_ids == b.item_ids
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)

    def test_deterministic_with_seed(self) -> None:
        a = self.make(seed=3).fit(self.interactions()).candidates("c21", 8)
        b = self.make(seed=3).fit(self.interactions()).candidates("c21", 8)
        assert a.item_ids == b.item_ids
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
