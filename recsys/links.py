"""Compiled passes over a history's co-purchase links: :func:`gather` for the candidate step (the links,
their sums and each item's largest link), :func:`link_pass` for the counterfactual check (the sums, which
items they reach, and the largest links into a few asked-for items), and :func:`subtract_owners` for the
check's sums without one history item each.

A grocery history has tens of thousands of links (each history item's row of
the pruned co-purchase similarity). The counterfactual check needs, from the
same links, the float64 sum per item (as ``np.bincount`` adds them: in link
order, each float32 link widened to float64), which items have a link at
all, and for each of the list's items its largest link, that link's
position and the largest of the others. Done with NumPy that is a dozen
passes over the links and over the catalogue plus a sort; :func:`link_pass`
is one numba loop over the links, with the same results bit for bit (sums in
the same order; maxima by comparisons only, the first of equal links
counting as the largest, as a stable sort would order them; tested against
the NumPy formulation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recsys.compiled import lazily_compiled


@dataclass(frozen=True)
class LinkPass:
    """What :func:`link_pass` found; per asked-for item: ``best`` its largest link (raw, may be
    negative), ``best_link`` that link's position (-1: no link), ``runner`` the largest of its other
    links and ``seen`` how many links it has, capped at 2 (``runner`` is meaningful when 2)."""

    sums: npt.NDArray[np.float64]  # (n_items,): np.bincount(cols, weights=vals, minlength=n_items)
    present: npt.NDArray[np.bool_]  # (n_items,): has at least one link
    best: npt.NDArray[np.float32]
    best_link: npt.NDArray[np.int64]
    runner: npt.NDArray[np.float32]
    seen: npt.NDArray[np.int8]
    min_abs: float  # the smallest nonzero |link| (0.0 if none)
    negative: bool  # some link is negative


def link_pass(
    cols: npt.NDArray[np.integer[Any]], vals: npt.NDArray[np.float32], n_items: int, item_slot: npt.NDArray[np.int64]
) -> LinkPass:
    """One pass over links ``(cols, vals)`` (float32); ``item_slot`` maps each item to its place among
    the asked-for items (-1: not asked for)."""
    n = int(item_slot.max(initial=-1)) + 1
    sums = np.zeros(n_items, np.float64)
    present = np.zeros(n_items, np.bool_)
    best = np.zeros(n, np.float32)
    best_link = np.full(n, -1, np.int64)
    runner = np.zeros(n, np.float32)
    seen = np.zeros(n, np.int8)
    flags = np.zeros(2, np.float64)  # smallest nonzero |link|, any negative
    if len(cols):
        _kernel()(
            np.ascontiguousarray(cols), np.ascontiguousarray(vals, np.float32), np.ascontiguousarray(item_slot, np.int64),
            sums, present, best, best_link, runner, seen, flags,
        )
    return LinkPass(sums, present, best, best_link, runner, seen, float(flags[0]), bool(flags[1]))


def _link_loop(
    cols: Any, vals: Any, item_slot: Any, sums: Any, present: Any, best: Any, best_link: Any, runner: Any, seen: Any,
    flags: Any,
) -> None:  # pragma: no cover -- compiled by numba (the tests run it compiled)
    min_abs = np.float32(np.inf)
    negative = False
    for e in range(len(cols)):
        c = cols[e]
        v = vals[e]
        sums[c] += np.float64(v)
        present[c] = True
        a = abs(v)
        if a > 0 and a < min_abs:
            min_abs = a
        if v < 0:
            negative = True
        j = item_slot[c]
        if j >= 0:
            if seen[j] == 0:
                best[j] = v
                best_link[j] = e
                seen[j] = 1
            elif v > best[j]:
                runner[j] = best[j]
                best[j] = v
                best_link[j] = e
                seen[j] = 2
            elif seen[j] == 1 or v > runner[j]:
                runner[j] = v
                seen[j] = 2
    flags[0] = 0.0 if min_abs == np.inf else np.float64(min_abs)
    flags[1] = 1.0 if negative else 0.0


# compiled on first use (about a second; Explainer.prepare() does it when a model is loaded)
_kernel = lazily_compiled(_link_loop)


@dataclass(frozen=True)
class Gathered:
    """A history's co-purchase links and what the candidate step reads off them (:func:`gather`)."""

    cols: npt.NDArray[np.int32]  # every link out of the history's items: the item it reaches ...
    vals: npt.NDArray[np.float32]  # ... and its similarity; history items in row order, each's row in order
    scores: npt.NDArray[np.float32]  # (n_items,): the float64 sum of each item's links, rounded to float32
    largest: npt.NDArray[np.float32]  # (n_items,): each item's largest link, floored at 0
    linked: npt.NDArray[np.int32]  # the items whose score is nonzero, ascending


def gather(
    indptr: npt.NDArray[np.integer[Any]],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    history: npt.NDArray[np.integer[Any]],
    n_items: int,
) -> Gathered:
    """The links out of ``history`` (items, in order) in the CSR similarity ``(indptr, indices, data)``,
    with their sums and largest link per item, in one compiled pass.

    Bit for bit what NumPy gives: ``np.bincount(cols, weights=vals).astype(np.float32)`` (float64 sums
    in link order), ``np.maximum.at`` into zeros, ``np.flatnonzero(scores != 0)`` (tested against it).
    Two catalogue-sized passes and one over the links, where NumPy takes a dozen.
    """
    history = np.ascontiguousarray(history, np.int64)
    total = int((indptr[history + 1] - indptr[history]).sum()) if len(history) else 0
    cols = np.empty(total, np.int32)
    vals = np.empty(total, np.float32)
    scores = np.empty(n_items, np.float32)
    largest = np.zeros(n_items, np.float32)
    linked = np.empty(n_items, np.int32)
    n = _gather_kernel()(
        indptr, np.asarray(indices, np.int32), np.asarray(data, np.float32), history,
        cols, vals, np.zeros(n_items, np.float64), scores, largest, linked,
    )
    return Gathered(cols, vals, scores, largest, linked[:n].copy())


def _gather_loop(
    indptr: Any, indices: Any, data: Any, history: Any, cols: Any, vals: Any, sums: Any, scores: Any, largest: Any,
    linked: Any,
) -> int:  # pragma: no cover -- compiled by numba (the tests run it compiled)
    e = 0
    for h in history:
        for p in range(indptr[h], indptr[h + 1]):
            c = indices[p]
            v = data[p]
            cols[e] = c
            vals[e] = v
            sums[c] += np.float64(v)
            if v > largest[c]:
                largest[c] = v
            e += 1
    n = 0
    for c in range(len(sums)):
        s = np.float32(sums[c])
        scores[c] = s
        if s != 0:
            linked[n] = c
            n += 1
    return n


_gather_kernel = lazily_compiled(_gather_loop)


def subtract_owners(
    sums: npt.NDArray[np.float64],
    removed: npt.NDArray[np.int64],
    sorted_owners: npt.NDArray[np.int64],
    by_owner: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int32],
    vals: npt.NDArray[np.float32],
    slot: npt.NDArray[np.int64],
) -> None:
    """Row ``t`` of ``sums`` (float64 sums per linked item; ``slot`` maps an item to its column) less
    the links of history item ``removed[t]``, in place, in one compiled loop.

    History item ``by_owner[q]`` (the ``q``-th of ``sorted_owners``) has its links at
    ``offsets[o]:offsets[o + 1]`` of ``(cols, vals)``. Each link is taken off as ``sums[t, slot[c]] -=
    vals[p]`` does it in NumPy (the float32 link widened to float64), so where every partial sum is
    exact (the caller's check) this is the from-scratch sum without the item, bit for bit.
    """
    if len(removed) and len(cols):
        _subtract_kernel()(sums, np.ascontiguousarray(removed, np.int64), sorted_owners, by_owner, offsets, cols,
                           vals, slot)


def _subtract_loop(
    sums: Any, removed: Any, sorted_owners: Any, by_owner: Any, offsets: Any, cols: Any, vals: Any, slot: Any
) -> None:  # pragma: no cover -- compiled by numba (the tests run it compiled)
    n = len(sorted_owners)
    for t in range(len(removed)):
        x = removed[t]
        q = np.searchsorted(sorted_owners, x)
        while q < n and sorted_owners[q] == x:
            o = by_owner[q]
            for p in range(offsets[o], offsets[o + 1]):
                sums[t, slot[cols[p]]] -= np.float64(vals[p])
            q += 1


_subtract_kernel = lazily_compiled(_subtract_loop)


def prepare() -> None:
    """Compile the kernels now, e.g. when a model is loaded, not on the first request."""
    link_pass(np.array([0], np.int32), np.array([1.0], np.float32), 1, np.array([0], np.int64))
    one = np.zeros(1, np.int64)
    subtract_owners(np.zeros((1, 1)), one, one, one, np.array([0, 1], np.int64), np.zeros(1, np.int32),
                    np.ones(1, np.float32), one)
    for indptr in (np.array([0, 1], np.int32), np.array([0, 1], np.int64)):  # as scipy gives them
        gather(indptr, np.array([0], np.int32), np.array([1.0], np.float32), np.array([0]), 1)
