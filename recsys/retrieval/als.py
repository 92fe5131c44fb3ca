"""Matrix factorisation retrievers on ``implicit``: ALS (ours) and BPR (a baseline).

ALS (Hu, Koren & Volinsky 2008) learns customer and item factors from
confidence-weighted implicit feedback. Its score of an item for a history is
linear in the history's confidences once the customer's factors are solved
for ("folded in"), so each purchase's share of a score can be stated exactly
(section 5 of the paper; ``implicit``'s ``explain``).

``implicit`` runs its own thread pool; BLAS must then stay single-threaded, so
every call into ``implicit`` runs under ``threadpool_limits(1, "blas")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
import scipy.linalg as sla
import scipy.sparse as sp

from recsys.errors import ConfigError, TrainingDataError
from recsys.interactions import Interactions
from recsys.retrieval.base import BaseRetriever, Candidates
from recsys.retrieval.copurchase import (
    HistoryLike,
    binarise,
    check_item,
    history_row,
    sorted_contributions,
)

Scaling = Literal["bm25", "log", "linear"]



class _FactorScores:
    """Scoring shared by the matrix-factorisation retrievers (learned ``user_factors_``, ``item_factors_``)."""

    name: ClassVar[str]
    interactions_: Interactions
    user_factors_: npt.NDArray[np.float32]
    item_factors_: npt.NDArray[np.float32]

    def score_all(self, customer: str) -> npt.NDArray[np.float32]:
        """Trained factors' scores of every item, shape (items,); zeros if unknown."""
        self._check_fitted()  # type: ignore[attr-defined]
        u = self.interactions_.customers.index(customer)
        if u < 0:
            return np.zeros(len(self.item_factors_), dtype=np.float32)
        return (self.item_factors_ @ self.user_factors_[u]).astype(np.float32)

    def candidates(
        self, customer: str, n: int, *, exclude: npt.NDArray[np.integer[Any]] | None = None
    ) -> Candidates:
        """The ``n`` best-scoring items, best first; empty for unknown customers."""
        self._check_fitted()  # type: ignore[attr-defined]
        if customer not in self.interactions_.customers:
            return Candidates.empty(self.name)
        return Candidates.from_scores(
            self.name, self.score_all(customer), n, self.items_, exclude=exclude  # type: ignore[attr-defined]
        )

@dataclass(frozen=True)
class AlsConfig:
    """Settings of :class:`AlsRetriever`.

    - ``factors``, ``regularization``, ``iterations``: as in ``implicit``.
    - Confidence of an observed (customer, item) is ``alpha * s(w)`` with
      ``w`` the interaction weight and ``s`` by ``scaling``: ``"log"``
      ``log1p(w)``, ``"linear"`` ``w``, ``"bm25"`` the BM25 weight of the
      item x customer matrix with ``bm25_k1``/``bm25_b`` (as
      ``implicit.nearest_neighbours.bm25_weight(X.T).T``). Unobserved pairs
      have confidence 1 and preference 0.
    - ``seed``: initial factors; ``num_threads``: 0 means every core.
    """

    factors: int = 64
    regularization: float = 0.05
    iterations: int = 15
    alpha: float = 1.0
    scaling: Scaling = "log"
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    seed: int = 42
    num_threads: int = 0


class AlsRetriever(_FactorScores, BaseRetriever):
    """Items whose factors align with the customer's (implicit ALS).

    Scores are dot products of customer and item factors (higher is better,
    roughly a predicted preference in [0, 1]). Unknown customers get all-zero
    scores and empty candidates; :meth:`score_history` scores any history,
    including a new customer's, by folding it in.

    Learned:

    - ``model_``: the fitted ``implicit.cpu.als.AlternatingLeastSquares``.
    - ``user_factors_`` (customers, factors), ``item_factors_`` (items,
      factors): float32 views of the model's factors.
    - ``gram_``: ``item_factorsᵀ item_factors`` in float64 (factors, factors).
    - ``item_totals_``: summed weight per item (used by ``"bm25"`` scaling).
    """

    name: ClassVar[str] = "als"

    def __init__(self, config: AlsConfig = AlsConfig()) -> None:
        self.config = config

    def fit(self, interactions: Interactions) -> Self:
        """Train ALS on the customer x item confidence matrix.

        Raises ``ValueError`` for non-positive ``factors``/``iterations``/
        ``alpha``, a negative ``regularization``, an unknown ``scaling`` or
        interactions without any positive weight.
        """
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        cfg = self.config
        _check_factorisation(cfg.factors, cfg.iterations, cfg.regularization, cfg.num_threads)
        if cfg.alpha <= 0:
            raise ConfigError(f"alpha must be positive; got {cfg.alpha}")
        if cfg.scaling not in ("bm25", "log", "linear"):
            raise ConfigError(f"scaling must be 'bm25', 'log' or 'linear'; got {cfg.scaling!r}")
        matrix = sp.csr_matrix(interactions.matrix, dtype=np.float32)
        if matrix.nnz == 0:
            raise TrainingDataError("interactions have no positive weight: ALS needs at least one event")
        self.item_totals_ = np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel()
        confidence = self._scale(matrix)
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=cfg.factors,
                regularization=cfg.regularization,
                alpha=cfg.alpha,
                iterations=cfg.iterations,
                num_threads=cfg.num_threads,
                random_state=cfg.seed,
            )
            model.fit(confidence, show_progress=False)
        self.model_ = model
        self.user_factors_ = model.user_factors
        self.item_factors_ = model.item_factors
        self.gram_ = model.item_factors.astype(np.float64).T @ model.item_factors.astype(np.float64)
        self.interactions_ = interactions
        return self

    def score_history(self, row: HistoryLike) -> npt.NDArray[np.float32]:
        """Scores of every item after folding in a history, shape (items,).

        ``row`` is a weight row of shape (1, items), scaled like the training
        data. The customer's factors are the exact least-squares solution
        given the trained item factors (``implicit``'s ``recalculate_user``),
        so for a known customer's own row they are close to, not equal to,
        the trained ones (training solves approximately). An empty history
        scores 0 everywhere.
        """
        self._check_fitted()
        return self.item_factors_ @ self.fold_in(row)

    def fold_in(self, row: HistoryLike) -> npt.NDArray[np.float32]:
        """The customer factors that best explain a history row, shape (factors,).

        The exact least-squares solve of :meth:`score_history`; zeros for an
        empty history.
        """
        self._check_fitted()
        items, confidence = self._confidences(row)
        if not len(items):
            return np.zeros(self.item_factors_.shape[1], dtype=np.float32)
        factor = sla.cho_solve(self._system(items, confidence), self._target(items, confidence))
        return factor.astype(np.float32)

    def explain(self, customer_or_row: HistoryLike, item: int) -> list[tuple[int, float]]:
        """Each history item's share of the folded-in score of ``item``, largest first.

        Returns ``(history item index, c_j * y_iᵀ A⁻¹ y_j)`` where ``A`` is
        the customer's regularised weighted Gram matrix (section 5 of Hu et
        al.; ``implicit``'s ``explain``); they sum to ``score_history(row)[item]``.
        Contributions can be negative. ``customer_or_row`` is a customer id
        (unknown: empty list) or a history row. Raises ``IndexError`` for an
        item outside the vocabulary.
        """
        self._check_fitted()
        item = check_item(item, len(self.item_factors_))
        items, confidence = self._confidences(customer_or_row)
        if not len(items):
            return []
        weighted_item = sla.cho_solve(
            self._system(items, confidence), self.item_factors_[item].astype(np.float64)
        )
        values = confidence * (self.item_factors_[items].astype(np.float64) @ weighted_item)
        return sorted_contributions(items, values)

    contributions = explain

    def _confidences(
        self, customer_or_row: HistoryLike
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]:
        """History items and their confidences ``alpha * s(w)`` (positive only)."""
        if (
            self.config.scaling != "bm25" and isinstance(customer_or_row, sp.csr_matrix)
            and customer_or_row.shape == (1, len(self.interactions_.items))
        ):
            # a served history row: the same float32 steps as history_row and _scale, on the arrays alone
            # (no two sparse copies per list); bm25 weighs by the whole row, so it takes the general path
            data = customer_or_row.data.astype(np.float32)
            data[data < 0] = 0
            if self.config.scaling == "log":
                data = np.log1p(data)
            data[data < 0] = 0
            keep = data > 0
            return customer_or_row.indices[keep], self.config.alpha * data[keep].astype(np.float64)
        row = self._scale(history_row(customer_or_row, self.interactions_))
        keep = row.data > 0
        return row.indices[keep], self.config.alpha * row.data[keep].astype(np.float64)

    def _system(
        self, items: npt.NDArray[np.int32], confidence: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], bool]:
        """Cholesky factor of ``YᵀY + reg I + Yᵀ (C - I) Y`` over the history."""
        y = self.item_factors_[items].astype(np.float64)
        a = self.gram_ + self.config.regularization * np.eye(self.gram_.shape[0])
        a += (y.T * (confidence - 1.0)) @ y
        # the model's factors and a history's confidences are finite; a is this call's own array
        return sla.cho_factor(a, check_finite=False, overwrite_a=True)

    def _target(
        self, items: npt.NDArray[np.int32], confidence: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """``Yᵀ C p``: preferences are 1 on the history."""
        return self.item_factors_[items].astype(np.float64).T @ confidence

    def _scale(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """Scaled weights (before ``alpha``), same pattern, float32; non-positive dropped."""
        cfg = self.config
        out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        if cfg.scaling == "log":
            out.data = np.log1p(out.data)
        elif cfg.scaling == "bm25":
            out.data = bm25_rows(out, self.item_totals_, k1=cfg.bm25_k1, b=cfg.bm25_b)
        out.data[out.data < 0] = 0
        out.eliminate_zeros()
        return out


def bm25_rows(
    rows: sp.csr_matrix, item_totals: npt.NDArray[np.float64], *, k1: float, b: float
) -> npt.NDArray[np.float32]:
    """BM25 weights of customer rows, items as documents, as new ``rows.data``.

    Equal to ``implicit.nearest_neighbours.bm25_weight(X.T, k1, b).T`` on the
    training matrix ``X``, whose per-item weight totals are ``item_totals``;
    the idf of a row depends on the row alone, so a new history is weighted
    the same way a training row was.
    """
    n_items = len(item_totals)
    mean_total = item_totals.mean() if n_items else 1.0
    length_norm = (1.0 - b) + b * item_totals / (mean_total if mean_total > 0 else 1.0)
    per_row = np.diff(rows.indptr)
    idf = np.log(float(n_items)) - np.log1p(per_row.astype(np.float64))
    data = rows.data.astype(np.float64)
    weighted = data * (k1 + 1.0) / (k1 * length_norm[rows.indices] + data)
    return (weighted * np.repeat(idf, per_row)).astype(np.float32)


@dataclass(frozen=True)
class BprConfig:
    """Settings of :class:`BprRetriever` (``implicit``'s BPR).

    ``num_threads``: 0 means every core; SGD across threads is not
    reproducible, so runs are repeatable for a seed only with
    ``num_threads=1``.
    """

    factors: int = 64
    learning_rate: float = 0.05
    regularization: float = 0.01
    iterations: int = 100
    seed: int = 42
    num_threads: int = 0


class BprRetriever(_FactorScores, BaseRetriever):
    """Bayesian personalised ranking on the 0/1 purchase matrix (a baseline).

    Scores are dot products of customer and item factors (the item factors
    carry a bias column); only their order means something. Unknown customers
    get all-zero scores and empty candidates.

    Learned: ``model_`` (``implicit.cpu.bpr.BayesianPersonalizedRanking``),
    ``user_factors_`` (customers, factors + 1) and ``item_factors_`` (items,
    factors + 1), float32.
    """

    name: ClassVar[str] = "bpr"

    def __init__(self, config: BprConfig = BprConfig()) -> None:
        self.config = config

    def fit(self, interactions: Interactions) -> Self:
        """Train BPR on the binarised customer x item matrix.

        Raises ``ValueError`` for non-positive ``factors``/``iterations``/
        ``learning_rate``, a negative ``regularization`` or interactions
        without any positive weight.
        """
        from implicit.cpu.bpr import BayesianPersonalizedRanking
        from threadpoolctl import threadpool_limits

        cfg = self.config
        _check_factorisation(cfg.factors, cfg.iterations, cfg.regularization, cfg.num_threads)
        if cfg.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be positive; got {cfg.learning_rate}")
        matrix = binarise(interactions.matrix)
        if matrix.nnz == 0:
            raise TrainingDataError("interactions have no positive weight: BPR needs at least one event")
        with threadpool_limits(1, "blas"):
            model = BayesianPersonalizedRanking(
                factors=cfg.factors,
                learning_rate=cfg.learning_rate,
                regularization=cfg.regularization,
                iterations=cfg.iterations,
                num_threads=cfg.num_threads,
                random_state=cfg.seed,
            )
            model.fit(matrix, show_progress=False)
        self.model_ = model
        self.user_factors_ = model.user_factors
        self.item_factors_ = model.item_factors
        self.interactions_ = interactions
        return self


def _check_factorisation(factors: int, iterations: int, regularization: float, threads: int) -> None:
    if factors < 1:
        raise ConfigError(f"factors must be at least 1; got {factors}")
    if iterations < 1:
        raise ConfigError(f"iterations must be at least 1; got {iterations}")
    if regularization < 0:
        raise ConfigError(f"regularization must be >= 0; got {regularization}")
    if threads < 0:
        raise ConfigError(f"num_threads must be >= 0 (0 means every core); got {threads}")
