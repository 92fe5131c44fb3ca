"""EASE: a closed-form linear item-item model (Steck, WWW 2019).

``B = argmin ||X - X B||² + l2 ||B||²`` subject to ``diag(B) = 0`` has the
closed form ``B = I - P / diag(P)`` (column ``j`` divided by ``P_jj``) with
``P = (XᵀX + l2 I)⁻¹``. A strong baseline, and its scores decompose exactly
over the customer's history: ``score(u, i) = sum_j x_uj B_ji``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
import scipy.linalg as sla
import scipy.sparse as sp

from recsys.compiled import lazily_compiled
from recsys.errors import ConfigError, TrainingDataError
from recsys.interactions import Interactions
from recsys.retrieval.base import BaseRetriever, Candidates, top_k
from recsys.retrieval.copurchase import (
    HistoryLike,
    binarise,
    check_item,
    history_row,
    sorted_contributions,
)

Solver = Literal["auto", "primal", "dual"]


@dataclass(frozen=True)
class EaseConfig:
    """Settings of :class:`EaseRetriever`.

    - ``l2``: the ridge penalty λ (larger: smoother, more popularity-like).
    - ``max_items``: B is dense (items x items, float32: 15k items take
      900 MB), so only the ``max_items`` items bought by the most customers
      are modelled.
    - ``binarize``: X is 0/1 (True) or the interaction weights (False).
    - ``solver``: ``"primal"`` inverts the items x items Gram matrix;
      ``"dual"`` uses the Woodbury identity and solves a customers x customers
      system instead (much faster when customers < items); ``"auto"`` picks
      the smaller system. Both give the same B up to rounding.
    - ``seed``: kept for the common contract; nothing here is random.
    """

    l2: float = 200.0
    max_items: int = 15_000
    binarize: bool = True
    solver: Solver = "auto"
    seed: int = 42


class EaseRetriever(BaseRetriever):
    """Items predicted by a linear model of the customer's whole history.

    ``score(u, i) = sum_j x_uj B_ji``; scores can be negative (an item that
    usually replaces one already bought). Items outside the modelled set score
    0 and are never candidates. Unknown customers get all-zero scores and
    empty candidates.

    Learned:

    - ``weights_``: B, float32, shape (n_items_used_, n_items_used_), zero
      diagonal; rows and columns follow ``item_index_``.
    - ``item_index_``: the modelled item indices (int64, ascending).
    - ``slot_``: position of each item in ``item_index_``, shape (items,),
      -1 for items that are not modelled.
    - ``n_items_used_``; ``restricted_``: True if ``max_items`` left out an
      item someone bought.
    """

    name: ClassVar[str] = "ease"

    def __init__(self, config: EaseConfig = EaseConfig()) -> None:
        self.config = config

    def fit(self, interactions: Interactions) -> Self:
        """Solve for B over the most popular items.

        Raises ``ValueError`` for ``l2 <= 0``, ``max_items < 1``, an unknown
        solver, or interactions without any positive weight.
        """
        cfg = self.config
        if cfg.l2 <= 0:
            raise ConfigError(f"l2 must be positive (it keeps the Gram matrix invertible); got {cfg.l2}")
        if cfg.max_items < 1:
            raise ConfigError(f"max_items must be at least 1; got {cfg.max_items}")
        if cfg.solver not in ("auto", "primal", "dual"):
            raise ConfigError(f"solver must be 'auto', 'primal' or 'dual'; got {cfg.solver!r}")
        matrix = self._prepare(interactions.matrix)
        if matrix.nnz == 0:
            raise TrainingDataError("interactions have no positive weight: EASE needs at least one event")
        popularity = np.diff(binarise(matrix).tocsc().indptr)
        bought = int(np.count_nonzero(popularity))
        chosen = top_k(popularity.astype(np.float64), min(cfg.max_items, bought))
        item_index = np.sort(chosen).astype(np.int64)
        x = matrix[:, item_index].tocsr()
        solver = cfg.solver
        if solver == "auto":
            solver = "dual" if x.shape[0] < x.shape[1] else "primal"
        weights = ease_dual(x, cfg.l2) if solver == "dual" else ease_primal(x, cfg.l2)
        slot = np.full(matrix.shape[1], -1, dtype=np.int64)
        slot[item_index] = np.arange(len(item_index))
        self.weights_ = weights
        self.item_index_ = item_index
        self.slot_ = slot
        self.n_items_used_ = len(item_index)
        self.restricted_ = bought > len(item_index)
        self.interactions_ = interactions
        return self

    def score_all(self, customer: str) -> npt.NDArray[np.float32]:
        """Scores of every item for the customer, shape (items,); zeros if unknown."""
        self._check_fitted()
        return self.score_history(self._row(customer))

    def score_history(self, row: HistoryLike) -> npt.NDArray[np.float32]:
        """``row · B`` for every item, shape (items,); 0 for items not modelled.

        ``row`` has shape (1, items) (sparse or dense, binarised when
        ``config.binarize``); it need not belong to a known customer. History
        items outside the modelled set are ignored.
        """
        self._check_fitted()
        slots, values = self._history(row)
        out = np.zeros(len(self.slot_), dtype=np.float32)
        if len(slots):
            out[self.item_index_] = self.modelled_scores(slots, values)
        return out

    def modelled_scores(
        self, slots: npt.NDArray[np.integer[Any]], values: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """``x · B`` over the modelled items (aligned with ``item_index_``) for a history given as
        the slots and values :meth:`_history` returns.

        Adds the history's rows of ``B``, each times its value, in float32 and in slot order: what
        SciPy's sparse-times-dense product does, bit for bit (tested), in one compiled loop that
        reads each row once (a grocery history reads a few hundred rows of 32 KB).
        """
        out = np.zeros(self.n_items_used_, np.float32)
        if len(slots):
            _rows_kernel()(self.weights_, np.asarray(slots, np.int64), np.asarray(values, np.float32), out)
        return out

    def candidates(
        self, customer: str, n: int, *, exclude: npt.NDArray[np.integer[Any]] | None = None
    ) -> Candidates:
        """The ``n`` best-scoring modelled items, best first; empty for unknown customers."""
        self._check_fitted()
        if customer not in self.interactions_.customers:
            return Candidates.empty(self.name)
        scores = self.score_all(customer)
        scores[self.slot_ < 0] = -np.inf
        return Candidates.from_scores(self.name, scores, n, self.items_, exclude=exclude)

    def contributions(self, customer_or_row: HistoryLike, item: int) -> list[tuple[int, float]]:
        """``(history item index, x_uj * B_ji)`` for each modelled history item, largest first.

        Zero contributions are left out; the rest sum to the score of
        ``item``. Empty for an unknown customer or an item not modelled.
        Raises ``IndexError`` for an item outside the vocabulary.
        """
        self._check_fitted()
        item = check_item(item, len(self.slot_))
        target = self.slot_[item]
        slots, values = self._history(customer_or_row)
        if target < 0 or not len(slots):
            return []
        contributions = values * self.weights_[slots, target]
        return sorted_contributions(self.item_index_[slots], contributions)

    def _prepare(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        if self.config.binarize:
            return binarise(matrix)
        return sp.csr_matrix(matrix, dtype=np.float32)

    def _history(
        self, customer_or_row: HistoryLike
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Slots and values of the modelled items of a history (its positive entries, in order;
        each value 1 when ``config.binarize``)."""
        row = customer_or_row
        if not (isinstance(row, sp.csr_matrix) and row.dtype == np.float32 and row.shape == (1, len(self.slot_))):
            row = history_row(row, self.interactions_)  # checked, and a copy; a float32 CSR row is read as is
        keep = row.data > 0
        slots = self.slot_[row.indices[keep]]
        used = slots >= 0
        if self.config.binarize:
            return slots[used], np.ones(int(used.sum()), np.float32)
        return slots[used], row.data[keep][used]


def ease_primal(x: sp.csr_matrix, l2: float) -> npt.NDArray[np.float32]:
    """B from ``P = (XᵀX + l2 I)⁻¹`` by Cholesky; ``x`` is (customers, items)."""
    gram = np.asarray((x.T @ x).todense(), dtype=np.float32)
    gram[np.diag_indices_from(gram)] += np.float32(l2)
    factor, info = sla.lapack.spotrf(gram, lower=False, overwrite_a=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"the Gram matrix is not positive definite (potrf info {info})")
    inverse, info = sla.lapack.spotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"inverting the Gram matrix failed (potri info {info})")
    # potri fills the upper triangle only
    p = np.triu(inverse)
    del inverse, factor
    p += np.triu(p, 1).T
    diagonal = p.diagonal().copy()
    p /= -diagonal[None, :]
    np.fill_diagonal(p, 0.0)
    return p


def ease_dual(x: sp.csr_matrix, l2: float) -> npt.NDArray[np.float32]:
    """B through the customers x customers system; ``x`` is (customers, items).

    Woodbury: ``P = (I - M) / l2`` with ``M = Xᵀ (l2 I + XXᵀ)⁻¹ X``, so for
    ``i != j`` ``B_ij = -P_ij / P_jj = M_ij / (1 - M_jj)``.
    """
    x64 = sp.csr_matrix(x, dtype=np.float64)
    kernel = np.asarray((x64 @ x64.T).todense())
    kernel[np.diag_indices_from(kernel)] += l2
    kernel_inv = sla.inv(kernel, overwrite_a=True, check_finite=False)
    kernel_inv = (kernel_inv + kernel_inv.T) / 2
    z_t = np.asarray(x64.T @ kernel_inv)  # (items, customers) = ((l2 I + XXᵀ)⁻¹ X)ᵀ
    m_diag = np.asarray(x64.T.multiply(z_t).sum(axis=1)).ravel()
    z = np.ascontiguousarray(z_t.T, dtype=np.float32)
    del z_t, kernel_inv
    m = np.asarray(sp.csr_matrix(x.T, dtype=np.float32) @ z, dtype=np.float32)
    m /= (1.0 - m_diag).astype(np.float32)[None, :]
    np.fill_diagonal(m, 0.0)
    return m


def _rows_loop(weights: Any, slots: Any, values: Any, out: Any) -> None:  # pragma: no cover -- compiled by numba
    width = weights.shape[1]
    for t in range(len(slots)):
        s = slots[t]
        v = values[t]
        for k in range(width):
            out[k] += v * weights[s, k]


# compiled on first use (about a second; Explainer.prepare() does it when a model is loaded)
_rows_kernel = lazily_compiled(_rows_loop)


def prepare() -> None:
    """Compile the kernel now, e.g. when a model is loaded, not on the first request."""
    _rows_kernel()(np.zeros((1, 1), np.float32), np.zeros(1, np.int64), np.ones(1, np.float32), np.zeros(1, np.float32))
