"""Top-k accuracy and beyond-accuracy metrics, per customer and vectorised.

Recommendations are an int array of shape (customers, width) of item indices,
best first, padded with -1 where a model had fewer items to offer. Relevance is
binary: a CSR matrix of shape (customers, columns) whose nonzeros are the
relevant items (see :meth:`recsys.evaluation.splits.Truth.relevance`), or a list
of sets of item indices, one per customer.

Everything goes through :func:`hit_matrix` (``hits[u, r]``: the item at rank
``r + 1`` is relevant for customer ``u``) and the number of relevant items per
customer; each metric then returns one value per customer (float64), so a
bootstrap can resample customers. Definitions, with ``R`` the relevant set and
``rel_r`` 1 if rank ``r`` is a hit:

- ``ndcg@k = DCG / IDCG``, ``DCG = sum_{r<=k} rel_r / log2(r + 1)``, ``IDCG`` the
  DCG of ``min(k, |R|)`` hits at the top.
- ``recall@k = hits / |R|`` (standard recall: a customer with more relevant
  items than ``k`` cannot reach 1; the same as ``ir_measures``' ``R@k``).
- ``precision@k = hits / k`` (slots a model left empty count as misses).
- ``hr@k = 1`` if any hit.
- ``ap@k = sum_{r<=k, hit} precision@r / min(k, |R|)``; its mean over customers
  is MAP@k. ``ir_measures``/trec_eval divide by ``|R|`` instead, so the two
  agree only where ``|R| <= k``.

A customer with no relevant items scores 0 on every metric (the truth builder
drops such customers, so this only matters for hand-made inputs). An item
recommended twice to one customer is an error, not a second hit.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from recsys.errors import EvaluationError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Relevance = sp.csr_matrix | sp.csr_array | Sequence[Collection[int]]

ERR_SHAPE = "recommendations must be a 2-D array (customers x k); got shape {shape}"
ERR_ROWS = "recommendations have {recs} rows but relevance has {rel}; they must be aligned per customer"
ERR_DUPLICATE = (
    "customer row {row} recommends item {item} more than once; a recommender must "
    "return distinct items (pad with -1 instead)"
)
ERR_K = "k must be a positive integer; got {k}"


def relevance_matrix(relevant: Relevance, *, n_columns: int | None = None) -> sp.csr_matrix:
    """Binary CSR relevance (float32, sorted indices) from a CSR matrix or a list of sets."""
    if sp.issparse(relevant):
        m = sp.csr_matrix(relevant, dtype=np.float32, copy=True)
        m.eliminate_zeros()
        m.data[:] = 1.0
        m.sort_indices()
        return m
    sets = [np.unique(np.fromiter(s, dtype=np.int64, count=len(s))) for s in relevant]  # type: ignore[union-attr]
    lengths = np.array([len(s) for s in sets], dtype=np.int64)
    indices = np.concatenate(sets) if sets else np.empty(0, dtype=np.int64)
    if len(indices) and indices.min() < 0:
        raise EvaluationError("relevant item indices must be >= 0")
    width = int(indices.max()) + 1 if len(indices) else 0
    if n_columns is not None:
        width = max(width, n_columns)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    return sp.csr_matrix(
        (np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(len(sets), width)
    )


def hit_matrix(recommendations: npt.ArrayLike, relevant: Relevance) -> tuple[BoolArray, IntArray]:
    """``(hits, n_relevant)``: hits shape (customers, width), n_relevant shape (customers,).

    ``-1`` entries are never hits. Raises ``ValueError`` when shapes disagree
    or a row repeats an item.
    """
    recs = _as_recs(recommendations)
    rel = relevance_matrix(relevant)
    n = recs.shape[0]
    if rel.shape[0] != n:
        raise EvaluationError(ERR_ROWS.format(recs=n, rel=rel.shape[0]))
    _check_distinct(recs)
    n_relevant = np.diff(rel.indptr).astype(np.int64)
    n_cols = max(rel.shape[1], 1)
    # one sorted key per relevant (customer, item); a recommendation is a hit if its key is there
    keys = np.repeat(np.arange(n, dtype=np.int64), n_relevant) * n_cols + rel.indices.astype(np.int64)
    valid = (recs >= 0) & (recs < n_cols)
    query = np.arange(n, dtype=np.int64)[:, None] * n_cols + np.where(valid, recs, 0)
    pos = np.searchsorted(keys, query)
    found = np.zeros(recs.shape, dtype=bool)
    inside = pos < len(keys)
    found[inside] = keys[pos[inside]] == query[inside]
    return found & valid, n_relevant


def ndcg(hits: BoolArray, n_relevant: IntArray, k: int | None = None) -> FloatArray:
    """NDCG@k per customer with binary gains and a log2 discount."""
    h = _cut(hits, k)
    width = h.shape[1]
    discount = 1.0 / np.log2(np.arange(2, width + 2, dtype=np.float64))
    dcg = h.astype(np.float64) @ discount
    ideal_hits = np.minimum(n_relevant, width)
    idcg = np.concatenate([[0.0], np.cumsum(discount)])[ideal_hits]
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def recall(hits: BoolArray, n_relevant: IntArray, k: int | None = None) -> FloatArray:
    """Recall@k per customer: hits in the top k over all relevant items."""
    found = _cut(hits, k).sum(axis=1).astype(np.float64)
    denom = n_relevant.astype(np.float64)
    return np.divide(found, denom, out=np.zeros_like(found), where=denom > 0)


def precision(hits: BoolArray, k: int | None = None) -> FloatArray:
    """Precision@k per customer: hits in the top k over k."""
    h = _cut(hits, k)
    return h.sum(axis=1).astype(np.float64) / max(h.shape[1], 1)


def hit_rate(hits: BoolArray, k: int | None = None) -> FloatArray:
    """HR@k per customer: 1.0 if any of the top k is relevant, else 0.0."""
    return _cut(hits, k).any(axis=1).astype(np.float64)


def average_precision(hits: BoolArray, n_relevant: IntArray, k: int | None = None) -> FloatArray:
    """AP@k per customer: precision at each hit in the top k, summed, over ``min(k, |R|)``."""
    h = _cut(hits, k).astype(np.float64)
    width = h.shape[1]
    precision_at = np.cumsum(h, axis=1) / np.arange(1, width + 1, dtype=np.float64)
    total = (precision_at * h).sum(axis=1)
    denom = np.minimum(n_relevant, width).astype(np.float64)
    return np.divide(total, denom, out=np.zeros_like(total), where=denom > 0)


def coverage(recommendations: npt.ArrayLike, catalog_size: int, k: int | None = None) -> float:
    """Distinct items in anyone's top k over the catalog size (0..1)."""
    if catalog_size <= 0:
        raise EvaluationError(f"catalog_size must be positive; got {catalog_size}")
    recs = _cut(_as_recs(recommendations), k)
    distinct = np.unique(recs[recs >= 0])
    return float(len(distinct) / catalog_size)


def mean_popularity(
    recommendations: npt.ArrayLike, popularity: npt.ArrayLike, k: int | None = None
) -> float:
    """Mean training popularity of every recommended item (slot by slot, -1 skipped).

    ``popularity[i]`` is item ``i``'s popularity, by convention the number of
    distinct training customers; NaN when nothing was recommended.
    """
    recs = _cut(_as_recs(recommendations), k)
    pop = np.asarray(popularity, dtype=np.float64)
    shown = recs[recs >= 0]
    if len(shown) == 0:
        return float("nan")
    if shown.max() >= len(pop):
        raise EvaluationError(
            f"recommended item index {int(shown.max())} is outside the popularity array "
            f"of length {len(pop)}; use the popularity of the vocabulary the model was fit on"
        )
    return float(pop[shown].mean())


def metric_names(k: int, recall_ks: Sequence[int] = (20,)) -> tuple[str, ...]:
    """The per-customer metric names :func:`ranking_metrics` returns, in report order."""
    names = [f"ndcg@{k}", f"recall@{k}"]
    names += [f"recall@{r}" for r in recall_ks if f"recall@{r}" not in names]
    return (*names, f"hr@{k}", f"map@{k}", f"precision@{k}")


def ranking_metrics(
    recommendations: npt.ArrayLike,
    relevant: Relevance,
    *,
    k: int = 10,
    recall_ks: Sequence[int] = (20,),
) -> dict[str, FloatArray]:
    """Every per-customer accuracy metric, keyed ``ndcg@k, recall@k, recall@20, hr@k, map@k, precision@k``.

    ``recommendations`` should be at least ``max(k, *recall_ks)`` wide; a
    narrower array counts the missing slots as misses. ``map@k`` holds AP@k
    per customer (its mean is MAP@k).
    """
    if k < 1:
        raise EvaluationError(ERR_K.format(k=k))
    hits, n_rel = hit_matrix(recommendations, relevant)
    out: dict[str, FloatArray] = {
        f"ndcg@{k}": ndcg(hits, n_rel, k),
        f"recall@{k}": recall(hits, n_rel, k),
    }
    for r in recall_ks:
        out.setdefault(f"recall@{r}", recall(hits, n_rel, r))
    out[f"hr@{k}"] = hit_rate(hits, k)
    out[f"map@{k}"] = average_precision(hits, n_rel, k)
    out[f"precision@{k}"] = precision(hits, k)
    return {name: out[name] for name in metric_names(k, recall_ks)}


def _as_recs(recommendations: npt.ArrayLike) -> IntArray:
    recs = np.asarray(recommendations)
    if recs.ndim != 2:
        raise EvaluationError(ERR_SHAPE.format(shape=recs.shape))
    if recs.size and not np.issubdtype(recs.dtype, np.integer):
        raise EvaluationError(f"recommendations must be integer item indices; got dtype {recs.dtype}")
    return recs.astype(np.int64, copy=False)


def _cut(a: npt.NDArray[Any], k: int | None) -> npt.NDArray[Any]:
    """The first ``k`` columns, padding with misses (False / -1) when ``a`` is narrower."""
    if k is None:
        return a
    if k < 1:
        raise EvaluationError(ERR_K.format(k=k))
    if a.shape[1] >= k:
        return a[:, :k]
    fill = False if a.dtype == np.bool_ else -1
    pad = np.full((a.shape[0], k - a.shape[1]), fill, dtype=a.dtype)
    return np.concatenate([a, pad], axis=1)


def _check_distinct(recs: IntArray) -> None:
    if recs.shape[1] < 2:
        return
    s = np.sort(recs, axis=1)
    dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
    if dup.any():
        row, col = np.argwhere(dup)[0]
        raise EvaluationError(ERR_DUPLICATE.format(row=int(row), item=int(s[row, col + 1])))
