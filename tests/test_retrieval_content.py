"""Content retrieval: the embedding cache, the bundled model, and the retriever.

The real all-MiniLM-L6-v2 model is loaded once for the module (importing
sentence-transformers takes seconds); every embedding below comes from it.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest

from recsys.errors import NotFittedError
from recsys.interactions import Interactions
from recsys.retrieval.content import (
    EMBEDDING_DIM,
    MODEL_NAME,
    ContentConfig,
    ContentRetriever,
    EmbeddingCache,
    SentenceTransformerEncoder,
    TextEncoder,
    item_text,
)
from tests.retriever_suite import DAY, START, RetrieverContract, cluster_events, cluster_items


class CountingEncoder:
    """Wraps an encoder and records every batch it is asked to encode."""

    def __init__(self, inner: TextEncoder) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        return self.inner.encode(texts)


@pytest.fixture(scope="module")
def encoder() -> SentenceTransformerEncoder:
    enc = SentenceTransformerEncoder()
    enc.encode(["warm up"])  # load the model once for the whole module
    return enc


def cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- the shared contract ---------------------------------------------------


class TestContentContract(RetrieverContract):
    needs_history = True

    @pytest.fixture(autouse=True)
    def _context(self, tmp_path: Path, encoder: SentenceTransformerEncoder) -> None:
        self.cache_dir = tmp_path / "embeddings"
        self.encoder = encoder

    def make(self, seed: int = 7) -> ContentRetriever:
        return ContentRetriever(ContentConfig(cache_dir=str(self.cache_dir), seed=seed), encoder=self.encoder)


# --- the bundled model -----------------------------------------------------


def test_real_model_puts_milk_near_milk(encoder: SentenceTransformerEncoder) -> None:
    milk, fresh, drill = encoder.encode(["organic whole milk", "fresh milk 1L", "cordless drill"])
    assert milk.shape == (EMBEDDING_DIM,)
    assert milk.dtype == np.float32
    assert np.linalg.norm(milk) == pytest.approx(1.0, abs=1e-4)
    assert cosine(milk, fresh) > cosine(milk, drill) + 0.3
    assert cosine(fresh, milk) > cosine(fresh, drill) + 0.3
    assert encoder.name == MODEL_NAME


def test_encoder_pickles_without_the_model(encoder: SentenceTransformerEncoder) -> None:
    copy = pickle.loads(pickle.dumps(encoder))
    assert copy._model is None
    assert len(pickle.dumps(encoder)) < 10_000


# --- the cache ---------------------------------------------------------------


def test_cache_computes_each_text_once(tmp_path: Path, encoder: SentenceTransformerEncoder) -> None:
    counting = CountingEncoder(encoder)
    cache = EmbeddingCache(tmp_path, encoder=counting)
    first = cache.embed(["whole milk", "cordless drill", "whole milk"])
    assert first.shape == (3, EMBEDDING_DIM)
    assert first.dtype == np.float32
    assert (cache.hits, cache.misses) == (0, 2)
    assert counting.calls == [["whole milk", "cordless drill"]]
    np.testing.assert_array_equal(first[0], first[2])

    again = cache.embed(["cordless drill", "whole milk"])
    assert (cache.hits, cache.misses) == (2, 0)
    assert len(counting.calls) == 1
    np.testing.assert_array_equal(again, first[[1, 0]])

    changed = cache.embed(["whole milk", "cordless drill 18V"])
    assert (cache.hits, cache.misses) == (1, 1)
    assert counting.calls[-1] == ["cordless drill 18V"]
    np.testing.assert_array_equal(changed[0], first[0])


def test_cache_round_trips_through_a_new_object(tmp_path: Path, encoder: SentenceTransformerEncoder) -> None:
    texts = ["whole milk", "cordless drill", "greek yogurt"]
    stored = EmbeddingCache(tmp_path, encoder=encoder).embed(texts)

    counting = CountingEncoder(encoder)
    reopened = EmbeddingCache(tmp_path, encoder=counting)
    again = reopened.embed(texts[::-1])
    assert counting.calls == []
    assert (reopened.hits, reopened.misses) == (3, 0)
    np.testing.assert_array_equal(again, stored[::-1])
    assert not list(tmp_path.rglob(".tmp-*")), "temporary files were left behind"


def test_cache_keys_include_the_model(tmp_path: Path, encoder: SentenceTransformerEncoder) -> None:
    EmbeddingCache(tmp_path, encoder=encoder).embed(["whole milk"])

    class Other(CountingEncoder):
        pass

    other = Other(encoder)
    other.name = "another-model"
    cache = EmbeddingCache(tmp_path, encoder=other)
    cache.embed(["whole milk"])
    assert cache.misses == 1


def test_cache_merges_shards_and_keeps_everything(tmp_path: Path, encoder: SentenceTransformerEncoder) -> None:
    cache = EmbeddingCache(tmp_path, encoder=encoder, max_shards=2)
    words = ["milk", "bread", "eggs", "drill", "saw"]
    for w in words:
        cache.embed([w])
    assert cache.model_dir is not None
    assert len(list(cache.model_dir.glob("shard-*.npy"))) <= 3
    reopened = EmbeddingCache(tmp_path, encoder=CountingEncoder(encoder))
    out = reopened.embed(words)
    assert reopened.misses == 0
    np.testing.assert_allclose(out, encoder.encode(words), atol=1e-5)


def test_memory_only_cache(encoder: SentenceTransformerEncoder) -> None:
    counting = CountingEncoder(encoder)
    cache = EmbeddingCache(None, encoder=counting)
    cache.embed(["milk"])
    cache.embed(["milk"])
    assert len(counting.calls) == 1
    assert cache.embed([]).shape == (0, EMBEDDING_DIM)


# --- item text ----------------------------------------------------------------


def test_item_text_skips_nulls_and_repeats() -> None:
    row = {"item_id": "1", "title": "Whole Milk", "description": "DAIRY / MILK / Private",
           "category": "Milk", "brand": "Private", "price": 1.0}
    assert item_text(row) == "Whole Milk. DAIRY / MILK / Private"
    assert item_text({"title": "  Drill  ", "description": None, "category": "Tools", "brand": ""}) == "Drill. Tools"
    assert item_text({"title": None}) == ""
    assert item_text(row) == item_text(dict(reversed(list(row.items()))))


# --- the retriever: known answers -------------------------------------------------


@pytest.fixture(scope="module")
def cluster_fit(encoder: SentenceTransformerEncoder) -> tuple[ContentRetriever, Interactions]:
    inter = Interactions.from_events(cluster_events(), catalog=cluster_items())
    return ContentRetriever(ContentConfig(), encoder=encoder).fit(inter), inter


def test_finds_the_never_bought_item_for_cluster_a(cluster_fit: tuple[ContentRetriever, Interactions]) -> None:
    retriever, inter = cluster_fit
    new = inter.items.index("A_new")
    assert new >= 0 and inter.item_popularity()[new] == 0, "A_new must have no interactions"
    for c in range(1, 20):
        customer = f"c{c:02d}"
        cands = retriever.candidates(customer, 5, exclude=inter.history(customer))
        assert "A_new" in cands.item_ids, (customer, cands.item_ids)
    for c in range(20, 40):
        customer = f"c{c:02d}"
        assert "A_new" not in retriever.candidates(customer, 4).item_ids


def test_evidence_names_similar_history_items(cluster_fit: tuple[ContentRetriever, Interactions]) -> None:
    retriever, inter = cluster_fit
    new = inter.items.index("A_new")
    history = set(inter.history("c05").tolist())
    ev = retriever.evidence("c05", new, k=3)
    assert len(ev) == 3
    assert all(e.item in history for e in ev)
    assert all(inter.items.ids[e.item].startswith("A") for e in ev)
    sims = [e.similarity for e in ev]
    assert sims == sorted(sims, reverse=True)
    np.testing.assert_allclose(sims[0], retriever.embeddings_[ev[0].item] @ retriever.embeddings_[new], rtol=1e-5)
    # the same from a row, and nothing for an unknown customer
    assert retriever.evidence(retriever.history_row("c05"), new, k=3) == ev
    assert retriever.evidence("nobody", new) == []
    # an item never cites itself
    own = inter.history("c05")[0]
    assert all(e.item != own for e in retriever.evidence("c05", int(own), k=10))


def test_scores_are_cosines_with_the_profile(cluster_fit: tuple[ContentRetriever, Interactions]) -> None:
    retriever, inter = cluster_fit
    scores = retriever.score_all("c07")
    assert scores.shape == (len(inter.items),)
    assert scores.dtype == np.float32
    assert np.all(scores <= 1.0 + 1e-5) and np.all(scores >= -1.0 - 1e-5)
    np.testing.assert_allclose(scores, retriever.score_history(retriever.history_row("c07")), rtol=1e-6)
    dense = retriever.history_row("c07").toarray().ravel()
    np.testing.assert_allclose(scores, retriever.score_history(dense), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(retriever.score_all("nobody"), np.zeros(len(inter.items), np.float32))
    emb = retriever.embeddings_
    assert emb.dtype == np.float32 and emb.shape == (len(inter.items), EMBEDDING_DIM)


def test_max_profile_also_finds_the_new_item(encoder: SentenceTransformerEncoder) -> None:
    inter = Interactions.from_events(cluster_events(), catalog=cluster_items())
    r = ContentRetriever(ContentConfig(profile="max"), encoder=encoder).fit(inter)
    cands = r.candidates("c05", 5, exclude=inter.history("c05"))
    assert all(i.startswith("A") for i in cands.item_ids)


def test_recency_decays_old_history(encoder: SentenceTransformerEncoder) -> None:
    events = pl.DataFrame(
        {
            "customer_id": ["x", "x", "y"],
            "item_id": ["milk", "drill", "milk"],
            "ts": [START, START + 60 * DAY, None],
        }
    )
    catalog = pl.DataFrame({"item_id": ["milk", "drill", "bare"], "title": ["Whole milk", "Cordless drill", None]})
    inter = Interactions.from_events(events, catalog=catalog)
    r = ContentRetriever(ContentConfig(recency_half_life_days=30.0), encoder=encoder).fit(inter)
    row = r.history_row("x").toarray().ravel()
    assert row[inter.items.index("milk")] == pytest.approx(0.25)
    assert row[inter.items.index("drill")] == pytest.approx(1.0)
    assert r.history_row("y").toarray().ravel()[inter.items.index("milk")] == pytest.approx(1.0)
    # with decay the recent drill dominates; without it both weigh the same
    scores = r.score_all("x")
    assert scores[inter.items.index("drill")] > scores[inter.items.index("milk")]
    # an item without text is never proposed and scores 0
    assert r.score_all("x")[inter.items.index("bare")] == 0.0
    assert "bare" not in r.candidates("x", 10).item_ids
    flat = ContentRetriever(ContentConfig(recency_half_life_days=None), encoder=encoder).fit(inter)
    assert flat.history_row("x").toarray().ravel()[inter.items.index("milk")] == pytest.approx(1.0)


def test_saved_retriever_keeps_vectors_not_model(
    cluster_fit: tuple[ContentRetriever, Interactions], tmp_path: Path
) -> None:
    retriever, _ = cluster_fit
    retriever.save(tmp_path / "content.bin")
    loaded = ContentRetriever.load(tmp_path / "content.bin")
    assert loaded.encoder is None
    assert retriever.encoder is not None, "saving must not strip the live object"
    np.testing.assert_array_equal(loaded.embeddings_, retriever.embeddings_)
    assert b"safetensors" not in (tmp_path / "content.bin").read_bytes()


def test_fit_reuses_the_cache(tmp_path: Path, encoder: SentenceTransformerEncoder) -> None:
    inter = Interactions.from_events(cluster_events(), catalog=cluster_items())
    cfg = ContentConfig(cache_dir=str(tmp_path))
    first = ContentRetriever(cfg, encoder=encoder).fit(inter)
    assert (first.cache_hits_, first.cache_misses_) == (0, len(inter.items))
    counting = CountingEncoder(encoder)
    second = ContentRetriever(cfg, encoder=counting).fit(inter)
    assert counting.calls == []
    assert second.cache_misses_ == 0
    np.testing.assert_array_equal(first.embeddings_, second.embeddings_)


def test_errors(encoder: SentenceTransformerEncoder) -> None:
    bare = Interactions.from_events(cluster_events())
    with pytest.raises(ValueError, match="catalog"):
        ContentRetriever(encoder=encoder).fit(bare)
    with pytest.raises(ValueError, match="profile"):
        ContentRetriever(ContentConfig(profile="median"), encoder=encoder).fit(bare)  # type: ignore[arg-type]
    with pytest.raises(NotFittedError):
        ContentRetriever().evidence("c00", 0)


def test_encoders_satisfy_the_protocol(encoder: SentenceTransformerEncoder) -> None:
    assert isinstance(encoder, TextEncoder)
    assert isinstance(CountingEncoder(encoder), TextEncoder)
