"""The retriever contract: ``fit(interactions)``, then ``candidates(customer, n)``.

A retriever proposes items for a customer and scores any item for a customer
(the ranker uses every retriever's score of every candidate as a feature).
Scores are "higher is better" and only comparable within one retriever.

Contract (checked for every retriever by ``tests/retriever_suite.py``):

- ``__init__(config)`` only stores the config; ``fit`` validates, learns,
  returns ``self``; learned attributes end in ``_``; use before ``fit`` raises
  :class:`~recsys.errors.NotFittedError`.
- An unknown customer gets an empty :class:`Candidates` (never an exception),
  except for retrievers that need no history (popularity).
- ``candidates`` never returns items in ``exclude`` and is deterministic for a
  fixed config seed.
- ``save(path)``/``load(path)`` round-trip: the loaded retriever gives the same
  candidates.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from recsys.compiled import lazily_compiled
from recsys.errors import NotFittedError
from recsys.interactions import IdVocabulary, Interactions


@dataclass(frozen=True)
class Candidates:
    """Items proposed by one retriever for one customer, best first.

    ``items`` are item indices of the fitted vocabulary (int32), ``scores`` the
    retriever's scores (float32, descending), ``item_ids`` the external ids.
    """

    source: str
    items: npt.NDArray[np.int32]
    scores: npt.NDArray[np.float32]
    item_ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def empty(cls, source: str) -> Candidates:
        return cls(source, np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float32), ())

    @classmethod
    def from_scores(
        cls,
        source: str,
        scores: npt.NDArray[np.floating[Any]],
        n: int,
        vocab: IdVocabulary,
        *,
        exclude: npt.NDArray[np.integer[Any]] | None = None,
        min_score: float = -np.inf,
    ) -> Candidates:
        """Top ``n`` of a dense score vector over all items, ties broken by index."""
        scores = np.asarray(scores, dtype=np.float32).copy()
        if exclude is not None and len(exclude):
            scores[np.asarray(exclude, dtype=np.int64)] = -np.inf
        items = top_k(scores, n)
        items = items[np.isfinite(scores[items]) & (scores[items] > min_score)]
        return cls(
            source,
            items.astype(np.int32),
            scores[items].astype(np.float32),
            tuple(vocab.ids[items].tolist()),
        )


def top_k(scores: npt.NDArray[np.floating[Any]], k: int) -> npt.NDArray[np.int64]:
    """Indices of the ``k`` largest scores, best first; ties go to the lower index.

    NaN scores are left out (asked for every score: they come last). For ``k`` up to a
    32nd of the scores (a request picks a few hundred of ten thousands),
    one compiled pass keeps the best ``k`` so far in a heap: most scores are
    compared with the heap's worst and dropped, several times faster than
    a partition. For larger ``k`` the heap's replacements and its final sort
    cost more than NumPy's partition and sort of the best, which is used.
    """
    n = len(scores)
    if k <= 0 or n == 0:
        return np.empty(0, dtype=np.int64)
    k = min(k, n)
    if k * 32 <= n:
        out = np.empty(k, np.int64)
        return out[: _top_kernel()(np.ascontiguousarray(scores), k, out)]
    if k < n:
        part = np.argpartition(-scores, k - 1)[:k]
        # include every item tied with the k-th so the tie-break is by index
        kth = scores[part].min()
        if kth != kth:  # NaN among them (fewer than k others): every other score
            kth = np.nanmin(scores[part]) if not np.isnan(scores[part]).all() else np.inf
        part = np.flatnonzero(scores >= kth)
    else:
        part = np.arange(n)
    order = np.lexsort((part, -scores[part]))
    return part[order][:k]


def _top_loop(scores: Any, k: int, out: Any) -> int:  # pragma: no cover -- compiled by numba (tests run it so)
    """The best ``k`` of ``scores`` (higher score, then lower index), best first, into ``out``; their count.

    ``out[:size]`` is a heap whose root is the worst item kept (lowest score, then highest index).
    """

    def worse(a: int, b: int) -> bool:
        return scores[a] < scores[b] or (scores[a] == scores[b] and a > b)

    def sift_down(i: int, size: int) -> None:  # put item i at the root and sift it down
        at = 0
        while True:
            child = 2 * at + 1
            if child >= size:
                break
            if child + 1 < size and worse(out[child + 1], out[child]):
                child += 1
            if worse(out[child], i):
                out[at] = out[child]
                at = child
            else:
                break
        out[at] = i

    size = 0
    for i in range(len(scores)):
        s = scores[i]
        if s != s:  # NaN
            continue
        if size < k:  # push: sift up past every parent that is better
            at = size
            size += 1
            while at > 0 and worse(i, out[(at - 1) // 2]):
                out[at] = out[(at - 1) // 2]
                at = (at - 1) // 2
            out[at] = i
        elif s > scores[out[0]]:  # beats the worst kept (an equal score comes later: a higher index)
            sift_down(i, size)
    for end in range(size - 1, 0, -1):  # take the worst off the heap, last place first: best first
        worst = out[0]
        sift_down(out[end], end)
        out[end] = worst
    return size


_top_kernel = lazily_compiled(_top_loop)


def prepare() -> None:
    """Compile the top-k selection now (float32 and float64 scores), e.g. when a model is loaded."""
    for dtype in (np.float32, np.float64):
        top_k(np.zeros(64, dtype), 1)


@runtime_checkable
class Retriever(Protocol):
    name: str

    def fit(self, interactions: Interactions) -> Self: ...

    def candidates(
        self, customer: str, n: int, *, exclude: npt.NDArray[np.integer[Any]] | None = None
    ) -> Candidates: ...

    def score(self, customer: str, items: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.float32]: ...


class BaseRetriever(ABC):
    """Shared plumbing: fitted check, pickling save/load, history lookup."""

    name: ClassVar[str] = "base"
    interactions_: Interactions

    def _check_fitted(self) -> None:
        if not hasattr(self, "interactions_"):
            raise NotFittedError(type(self).__name__)

    @property
    def items_(self) -> IdVocabulary:
        self._check_fitted()
        return self.interactions_.items

    def _row(self, customer: str) -> sp.csr_matrix:
        return self.interactions_.row(customer)

    def score(self, customer: str, items: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.float32]:
        """Scores of the given item indices for the customer (0 for unknown customers)."""
        self._check_fitted()
        full = self.score_all(customer)
        return full[np.asarray(items, dtype=np.int64)].astype(np.float32)

    @abstractmethod
    def score_all(self, customer: str) -> npt.NDArray[np.float32]:
        """Scores of every item for the customer, shape (items,)."""

    def save(self, path: Path) -> None:
        self._check_fitted()
        with Path(path).open("wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, path: Path) -> Self:
        with Path(path).open("rb") as fh:
            obj = pickle.load(fh)
        if not isinstance(obj, cls):
            raise TypeError(f"{path} holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj
