"""Where listed items would rank in a source's proposals, counted by a compiled loop.

The explainer's counterfactual check needs, for each history item it removes,
the rank features of the list's items: each item's 1-based place in each
source's proposals for the history without that item. A source proposes the
``count`` best positive, finite scores among the positions not excluded
(the customer's history, except the removed item), ties to the lower
position. So an item's place is one plus the number of positions that beat
it (a higher score, or the same score at a lower position), when the item
itself is proposable and fewer than ``count`` beat it; there is no need to
sort or partition the row. :func:`listed_ranks` counts that for every
removal's row in one compiled pass per row (numba): positions below the
lowest listed score still counted are skipped with one comparison, and an
item stops being counted once ``count`` positions beat it, so the work is
about one read of the row. Only comparisons are made, no arithmetic, so the ranks
are exactly those of sorting the same scores (tested against
``recsys.recommender._top``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from recsys.compiled import lazily_compiled
from recsys.ranking.features import MISSING_RANK


def listed_ranks(
    scores: npt.NDArray[np.float32],
    count: int,
    items: npt.NDArray[np.integer[Any]],
    excluded: npt.NDArray[np.bool_],
    removed: npt.NDArray[np.integer[Any]],
    *,
    ids: npt.NDArray[np.integer[Any]] | None = None,
) -> npt.NDArray[np.float32]:
    """Each row's 1-based rank of ``items`` among its proposals, ``MISSING_RANK`` where not proposed.

    Row ``t`` of ``scores`` (rows, positions) proposes the ``count`` best
    positive finite scores among the positions whose item is not
    ``excluded`` (a mask over all items), ``removed[t]`` counting as not
    excluded; ties go to the lower position. ``ids`` maps positions to item
    indices (ascending); None: positions are item indices.
    """
    rows, width = scores.shape
    if width == 0:
        return np.full((rows, len(items)), MISSING_RANK, np.float32)
    found = np.arange(width) if ids is None else np.asarray(ids)
    return ranks_at(
        scores, count, _positions(found, items), excluded[found], _positions(found, removed), found.astype(np.int64)
    )


def ranks_at(
    scores: npt.NDArray[np.float32],
    count: int,
    item_pos: npt.NDArray[np.int64],
    hidden: npt.NDArray[np.bool_],
    removed_pos: npt.NDArray[np.int64],
    tie: npt.NDArray[np.int64],
    *,
    width: int | None = None,
) -> npt.NDArray[np.float32]:
    """:func:`listed_ranks` by positions: ``item_pos`` (-1: not scored, so not proposed) and
    ``removed_pos`` (-1: none) index the columns of ``scores``, ``hidden`` marks the excluded
    columns and ``tie`` orders equal scores (lower first: the columns' item indices). ``width``:
    only the first so many columns are scores (the rest of each row is ignored)."""
    rows = scores.shape[0]
    width = scores.shape[1] if width is None else int(width)
    out = np.full((rows, len(item_pos)), MISSING_RANK, np.float32)
    if rows == 0 or width == 0 or count <= 0 or not len(item_pos):
        return out
    _kernel()(
        np.ascontiguousarray(scores, np.float32), width, int(count), np.asarray(item_pos, np.int64),
        np.ascontiguousarray(hidden, np.bool_), np.asarray(removed_pos, np.int64), np.ascontiguousarray(tie, np.int64),
        out,
    )
    return out


def _positions(found: npt.NDArray[np.integer[Any]], wanted: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int64]:
    """The position of each of ``wanted`` in the ascending ``found``, -1 where absent."""
    wanted = np.asarray(wanted, np.int64)
    at = np.minimum(np.searchsorted(found, wanted), len(found) - 1)
    return np.where(found[at] == wanted, at, -1).astype(np.int64)


def _ranks_loop(
    scores: Any, width: int, count: int, item_pos: Any, hidden: Any, removed_pos: Any, tie: Any, out: Any
) -> None:  # pragma: no cover -- compiled by numba (the tests run it compiled)
    rows = scores.shape[0]
    n = len(item_pos)
    listed = np.empty(n, np.float32)
    valid = np.zeros(n, np.bool_)
    better = np.zeros(n, np.int64)
    for t in range(rows):
        gone = removed_pos[t]
        low = np.inf
        anyone = False
        for j in range(n):
            p = item_pos[j]
            ok = p >= 0 and (not hidden[p] or p == gone)
            if ok:
                s = scores[t, p]
                ok = np.isfinite(s) and s > 0
                if ok:
                    listed[j] = s
                    low = min(low, s)
                    anyone = True
            valid[j] = ok
            better[j] = 0
        if not anyone:
            continue
        for q in range(width):
            sq = scores[t, q]
            if not sq >= low:  # below every listed score (or NaN)
                continue
            if (hidden[q] and q != gone) or not np.isfinite(sq):
                continue
            saturated = False
            for j in range(n):
                if valid[j]:
                    s = listed[j]
                    if sq > s or (sq == s and tie[q] < tie[item_pos[j]]):
                        better[j] += 1
                        if better[j] >= count:  # not proposed: stop counting for it
                            valid[j] = False
                            saturated = True
            if saturated:  # the lowest score still counted may have risen
                low = np.inf
                for j in range(n):
                    if valid[j]:
                        low = min(low, listed[j])
                if low == np.inf:
                    break
        for j in range(n):
            if valid[j]:
                out[t, j] = better[j] + 1


# compiled on first use (about a second; Explainer.prepare() does it when a model is loaded)
_kernel = lazily_compiled(_ranks_loop)


def prepare() -> None:
    """Compile the kernel now (about a second), e.g. when a model is loaded, not on the first request."""
    listed_ranks(np.ones((1, 2), np.float32), 1, np.array([0], np.int32), np.zeros(2, bool), np.array([1]))
