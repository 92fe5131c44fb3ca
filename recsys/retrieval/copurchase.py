"""Co-purchase: items bought together with the customer's purchases (item-kNN).

The similarity of two items comes from how many customers bought both. Each
item keeps its ``neighbours`` most similar items, so a customer's score of an
item is a sum over their history of "how strongly this purchase points to that
item", which is also the evidence behind a reason ("Because you bought
Organic Whole Milk"). This is the item-kNN baseline of the evaluation too.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from recsys.errors import ConfigError, InvalidHistoryError
from recsys.interactions import Interactions
from recsys.retrieval.base import BaseRetriever, Candidates

Similarity = Literal["cosine", "bm25"]
HistoryLike = str | sp.spmatrix | sp.sparray | npt.NDArray[np.floating[Any]]

# items x items products are computed for this many item rows at a time, which
# bounds the memory of the unpruned co-occurrence block (about 3 GB on
# Complete Journey if done at once)
BLOCK_ROWS = 4096


@dataclass(frozen=True)
class CoPurchaseConfig:
    """Settings of :class:`CoPurchaseRetriever`.

    - ``neighbours``: similar items kept per item (the k of item-kNN).
    - ``min_support``: pairs bought together by fewer customers are dropped.
    - ``similarity``: ``"cosine"`` is ``c_ij / (sqrt(n_i * n_j) + shrinkage)``
      with ``c_ij`` the customers who bought both and ``n_i`` the customers
      who bought ``i``; ``"bm25"`` is the dot product of the items' BM25
      weighted customer vectors (as ``implicit``'s ``BM25Recommender``:
      customers who buy many items and items bought by many count less;
      ``bm25_k1``/``bm25_b`` are its parameters; ``shrinkage`` is unused).
    - ``seed``: kept for the common contract; nothing here is random.
    - ``num_threads``: blocks of item rows computed at once (0: every core);
      the result does not depend on it.
    """

    neighbours: int = 100
    min_support: int = 2
    similarity: Similarity = "cosine"
    shrinkage: float = 10.0
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    seed: int = 42
    num_threads: int = 0


class CoPurchaseRetriever(BaseRetriever):
    """Items bought together with what the customer bought.

    ``score(u, i) = sum_j x_uj * S_ji`` over the items ``j`` in the customer's
    history, with ``x_uj`` = 1 (histories are binarised) and ``S`` the pruned
    similarity. Scores are >= 0; 0 means no history item points to ``i`` (such
    items are never candidates). Unknown customers get all-zero scores and
    empty candidates.

    Learned:

    - ``similarity_``: CSR float32, shape (items, items); row ``j`` holds the
      at most ``neighbours`` most similar items of ``j`` (no diagonal).
    - ``support_``: CSR float32, same pattern: customers who bought both.
    - ``item_customers_``: customers per item, shape (items,), int64.
    """

    name: ClassVar[str] = "copurchase"

    def __init__(self, config: CoPurchaseConfig = CoPurchaseConfig()) -> None:
        self.config = config

    def fit(self, interactions: Interactions) -> Self:
        """Compute the pruned item-item similarity from co-purchases.

        Raises ``ValueError`` for a non-positive ``neighbours`` or
        ``min_support``, a negative ``shrinkage`` or an unknown ``similarity``.
        """
        cfg = self.config
        if cfg.neighbours < 1:
            raise ConfigError(f"neighbours must be at least 1; got {cfg.neighbours}")
        if cfg.min_support < 1:
            raise ConfigError(f"min_support must be at least 1; got {cfg.min_support}")
        if cfg.shrinkage < 0:
            raise ConfigError(f"shrinkage must be >= 0; got {cfg.shrinkage}")
        if cfg.num_threads < 0:
            raise ConfigError(f"num_threads must be >= 0 (0 means every core); got {cfg.num_threads}")
        if cfg.similarity not in ("cosine", "bm25"):
            raise ConfigError(f"similarity must be 'cosine' or 'bm25'; got {cfg.similarity!r}")
        binary = binarise(interactions.matrix)
        self.item_customers_ = np.diff(binary.tocsc().indptr).astype(np.int64)
        self.similarity_, self.support_ = item_similarity(binary, cfg, self.item_customers_)
        self.interactions_ = interactions
        return self

    def score_all(self, customer: str) -> npt.NDArray[np.float32]:
        """Scores of every item for the customer, shape (items,); zeros if unknown."""
        self._check_fitted()
        return self.score_history(self._row(customer))

    def score_history(self, row: HistoryLike) -> npt.NDArray[np.float32]:
        """Scores of every item for a history row, shape (items,).

        ``row`` has shape (1, items) (sparse or dense; only its positive
        entries count, as 1); it need not belong to a known customer, so new
        events are scored without refitting.
        """
        self._check_fitted()
        x = binarise(history_row(row, self.interactions_))
        return np.asarray((x @ self.similarity_).todense(), dtype=np.float32).ravel()

    def candidates(
        self, customer: str, n: int, *, exclude: npt.NDArray[np.integer[Any]] | None = None
    ) -> Candidates:
        """The ``n`` best-scoring items with a positive score, best first.

        Unknown customers (and customers whose history has no neighbours) get
        empty candidates.
        """
        self._check_fitted()
        scores = self.score_all(customer)
        return Candidates.from_scores(self.name, scores, n, self.items_, exclude=exclude, min_score=0.0)

    def contributions(self, customer_or_row: HistoryLike, item: int) -> list[tuple[int, float]]:
        """What each history item adds to the score of ``item``, largest first.

        Returns ``(history item index, x_uj * S_ji)`` for each history item
        ``j`` with a nonzero contribution; they sum to the score of ``item``.
        ``customer_or_row`` is a customer id (unknown: empty list) or a history
        row as for :meth:`score_history`. Raises ``IndexError`` for an item
        outside the vocabulary.
        """
        self._check_fitted()
        item = check_item(item, len(self.items_))
        x = binarise(history_row(customer_or_row, self.interactions_))
        history = x.indices
        if not len(history):
            return []
        column = np.asarray(self.similarity_[history][:, [item]].todense()).ravel()
        values = x.data * column
        return sorted_contributions(history, values)


def item_similarity(
    binary: sp.csr_matrix, config: CoPurchaseConfig, item_customers: npt.NDArray[np.int64]
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The pruned similarity and support matrices, both CSR (items, items).

    ``binary`` is the 0/1 customer x item matrix. Only items bought by at
    least ``min_support`` customers can have a pair with enough support, so
    the products run over those items only, ``BLOCK_ROWS`` item rows at a time.
    """
    n_items = binary.shape[1]
    active = np.flatnonzero(item_customers >= config.min_support)
    empty = sp.csr_matrix((n_items, n_items), dtype=np.float32)
    if len(active) < 2:
        return empty, empty.copy()
    x = binary[:, active].tocsr()
    xt = x.T.tocsr()
    weighted: tuple[sp.csr_matrix, sp.csr_matrix] | None = None
    if config.similarity == "bm25":
        w = bm25_weight_items(binary, k1=config.bm25_k1, b=config.bm25_b)[:, active].tocsr()
        weighted = (w.T.tocsr(), w)
    norms = np.sqrt(item_customers[active].astype(np.float32))
    starts = range(0, len(active), BLOCK_ROWS)

    def block(start: int) -> tuple[npt.NDArray[np.int64], ...]:
        stop = min(start + BLOCK_ROWS, len(active))
        return _similarity_block((xt, x), weighted, norms, start, stop, config)

    workers = config.num_threads or os.cpu_count() or 1
    # the sparse products release the GIL, so blocks overlap; results keep block order
    with ThreadPoolExecutor(max_workers=min(workers, len(starts))) as pool:
        parts = list(pool.map(block, starts))
    r_all = active[np.concatenate([part[0] for part in parts])]
    c_all = active[np.concatenate([part[1] for part in parts])]
    sims = np.concatenate([part[2] for part in parts])
    supports = np.concatenate([part[3] for part in parts])
    similarity = sp.csr_matrix((sims, (r_all, c_all)), shape=(n_items, n_items))
    support_matrix = sp.csr_matrix((supports, (r_all, c_all)), shape=(n_items, n_items))
    return similarity, support_matrix


def _similarity_block(
    x: tuple[sp.csr_matrix, sp.csr_matrix],
    weighted: tuple[sp.csr_matrix, sp.csr_matrix] | None,
    norms: npt.NDArray[np.float32],
    start: int,
    stop: int,
    config: CoPurchaseConfig,
) -> tuple[npt.NDArray[np.int64], ...]:
    """Pruned similarities of item rows ``start..stop`` (indices into the active items).

    ``x`` and ``weighted`` are (transposed, plain) pairs of the 0/1 and the
    bm25 weighted customer x active-item matrices. Returns parallel arrays:
    row, column, similarity (float32), support (float32).
    """
    counts = (x[0][start:stop] @ x[1]).tocsr()  # customers who bought both
    dropped = counts.data < config.min_support
    if weighted is not None:
        # bm25 weights are strictly positive where x is 1, so this product has the
        # pattern (and entry order) of ``counts``
        sim_matrix = (weighted[0][start:stop] @ weighted[1]).tocsr()
        if not (
            np.array_equal(sim_matrix.indptr, counts.indptr)
            and np.array_equal(sim_matrix.indices, counts.indices)
        ):
            raise RuntimeError("bm25 co-occurrence pattern differs from the support pattern")
        sim_matrix.data[dropped] = 0
        sim_matrix.eliminate_zeros()
    counts.data[dropped] = 0
    counts.eliminate_zeros()  # most pairs are bought together once: drop them early
    r = np.repeat(np.arange(stop - start, dtype=np.int64), np.diff(counts.indptr))
    c = counts.indices.astype(np.int64)
    support = counts.data
    if weighted is None:
        sim = support / (norms[start + r] * norms[c] + np.float32(config.shrinkage))
    else:
        sim = sim_matrix.data
    eligible = (c != start + r) & (sim > 0)
    keep = _top_per_row(counts.indptr, r, c, sim, eligible, config.neighbours)
    return start + r[keep], c[keep], sim[keep].astype(np.float32), support[keep].astype(np.float32)


def _top_per_row(
    indptr: npt.NDArray[np.integer[Any]],
    row_of: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    values: npt.NDArray[np.floating[Any]],
    eligible: npt.NDArray[np.bool_],
    k: int,
) -> npt.NDArray[np.int64]:
    """Positions of the ``k`` largest eligible values in each CSR row (ties: lower column)."""
    n_rows = len(indptr) - 1
    counts = np.bincount(row_of[eligible], minlength=n_rows)
    crowded = counts > k
    keep = [np.flatnonzero(eligible & ~crowded[row_of])]
    for row in np.flatnonzero(crowded):
        lo, hi = int(indptr[row]), int(indptr[row + 1])
        pos = lo + np.flatnonzero(eligible[lo:hi])
        v = values[pos]
        kth = v[np.argpartition(-v, k - 1)[k - 1]]
        pos = pos[v >= kth]  # everything tied with the k-th, so ties break by column
        keep.append(pos[np.lexsort((cols[pos], -values[pos]))[:k]])
    return np.sort(np.concatenate(keep))


def bm25_weight_items(binary: sp.csr_matrix, *, k1: float, b: float) -> sp.csr_matrix:
    """BM25 weights of a customer x item matrix, items as documents (CSR, float32).

    The same as ``implicit.nearest_neighbours.bm25_weight(binary.T, k1, b).T``:
    idf per customer ``log(items) - log1p(items bought)``, length norm per item
    ``(1 - b) + b * n_i / mean(n)``.
    """
    from implicit.nearest_neighbours import bm25_weight

    weighted = sp.csr_matrix(bm25_weight(binary.T, K1=k1, B=b).T, dtype=np.float32)
    # an idf <= 0 (a customer who bought nearly every item) would drop or negate
    # entries; such a customer says next to nothing about item pairs
    weighted.data = np.maximum(weighted.data, np.float32(1e-12))
    return weighted


def binarise(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """A copy with every positive entry set to 1 and the rest dropped (CSR, float32)."""
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.data = (out.data > 0).astype(np.float32)
    out.eliminate_zeros()
    return out


def history_row(customer_or_row: HistoryLike, interactions: Interactions) -> sp.csr_matrix:
    """A history as a CSR row of shape (1, items), float32, positive entries only.

    A customer id gives the customer's weight row (all zeros if unknown); a
    sparse or dense row (shape (1, items) or (items,)) is checked and copied.
    Raises ``ValueError`` if the row has the wrong shape.
    """
    n_items = len(interactions.items)
    if isinstance(customer_or_row, str):
        return interactions.row(customer_or_row)
    if sp.issparse(customer_or_row):
        row = sp.csr_matrix(customer_or_row, dtype=np.float32, copy=True)
    else:
        dense = np.asarray(customer_or_row, dtype=np.float32)
        row = sp.csr_matrix(dense.reshape(1, -1) if dense.ndim == 1 else dense)
    if row.shape != (1, n_items):
        raise InvalidHistoryError(
            f"a history row must have shape (1, {n_items}) (one column per item of the "
            f"fitted vocabulary); got {row.shape}"
        )
    row.data[row.data < 0] = 0
    row.eliminate_zeros()
    return row


def check_item(item: int, n_items: int) -> int:
    """``item`` as an int, or ``IndexError`` if it is not an item index."""
    if not 0 <= int(item) < n_items:
        raise IndexError(f"item index {item} is outside 0..{n_items - 1}")
    return int(item)


def sorted_contributions(
    items: npt.NDArray[np.integer[Any]], values: npt.NDArray[np.floating[Any]]
) -> list[tuple[int, float]]:
    """Nonzero ``(item, value)`` pairs, largest value first (ties: lower item)."""
    nz = np.flatnonzero(values)
    order = nz[np.lexsort((items[nz], -values[nz]))]
    # tolist() converts to Python ints and floats in C, not one NumPy scalar at a time
    ids = np.asarray(items)[order].astype(np.int64).tolist()
    return list(zip(ids, np.asarray(values)[order].astype(np.float64).tolist(), strict=True))
