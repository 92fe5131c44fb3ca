"""Path-dependent TreeSHAP for a LightGBM model, by precomputed per-leaf tables.

LightGBM's ``predict(..., pred_contrib=True)`` runs Lundberg's TreeSHAP
(what ``shap.TreeExplainer`` runs for LightGBM): for every row, every tree
is walked and every leaf's path is extended and unwound, O(leaves x
depth²) per tree and row: most of an explanation's cost for a small ranker
(``benchmarks/treeshap_tables.py`` measures both ways).

The same values come cheaper from one observation: a leaf's share of the
contributions depends on the row only through which of the path's (unique)
features the row agrees with. Each path feature ``j`` has a zero fraction
``z_j`` (the product of the cover ratios of the path's splits on it: fixed
by the model) and a one fraction ``o_j`` (1 if the row goes the path's way
at every split on it, else 0), and the leaf adds, for each ``j``,
``w_j(o) (o_j - z_j) v`` (``v`` the leaf value, ``w_j`` the Shapley weight
sum of the unwound path) to feature ``j``'s contribution. So for a path with
``d`` unique features there are only ``2**d`` cases, and all of them are
computed once, when the tables are built (the same EXTEND / UNWIND
recurrences as LightGBM's ``tree.cpp``, vectorised over the cases). Per
request, a compiled loop (numba) decides every split once for every row,
carries down each tree which path features the row has left the path on
(one bit per feature slot), and adds each leaf's table entry for that case
to the features' contributions.

The ranker's paths have at most 8 unique features (2**8 cases); a model
with deeper paths (more than :data:`MAX_UNIQUE` unique features), with
categorical or linear trees, or a split with an empty side is not
tabulated and :func:`build_tables` returns None (the caller uses
LightGBM's own ``pred_contrib``). The result equals LightGBM's up to
float64 rounding (the same terms, summed in another order; tested against
LightGBM and ``shap.TreeExplainer``), so ``base + sum(contributions)``
equals the score as closely as LightGBM's own does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recsys.compiled import lazily_compiled

MAX_UNIQUE = 12  # 2**12 cases x 12 features x 8 bytes = 393 KB for one such path
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}


@dataclass(frozen=True)
class PathTables:
    """Everything :meth:`contributions` needs, from one model dump."""

    n_features: int
    base_value: float  # the sum of the trees' expected values: the last column
    # splits (internal nodes), numbered across the trees
    split_feature: npt.NDArray[np.int64]
    threshold: npt.NDArray[np.float64]
    default_left: npt.NDArray[np.bool_]
    missing_type: npt.NDArray[np.int8]  # 0 None, 1 Zero, 2 NaN
    # edges (split -> child), every edge after its parent edge (-1: the root's): which split, which
    # way, and the bit of the split feature's slot among the unique features of the path down to it
    edge_parent: npt.NDArray[np.int64]
    edge_split: npt.NDArray[np.int64]
    edge_left: npt.NDArray[np.bool_]
    edge_bit: npt.NDArray[np.int64]
    # leaves (single-leaf trees have none): the edge into it, its unique features by slot (offsets
    # leaf_start) and its table of 2**d cases x d slots at table_start
    leaf_edge: npt.NDArray[np.int64]
    leaf_start: npt.NDArray[np.int64]  # (leaves + 1,)
    leaf_feature: npt.NDArray[np.int64]
    table_start: npt.NDArray[np.int64]
    table: npt.NDArray[np.float64]

    def contributions(self, features: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
        """TreeSHAP contributions, shape (rows, n_features + 1), the last column the base value."""
        x = np.ascontiguousarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected (rows, {self.n_features}) features, got shape {x.shape}")
        out = np.zeros((x.shape[0], self.n_features + 1), np.float64)
        out[:, -1] = self.base_value
        if x.shape[0] and len(self.leaf_edge):
            _kernel()(
                x, self.split_feature, self.threshold, self.default_left, self.missing_type, self.edge_parent,
                self.edge_split, self.edge_left, self.edge_bit, self.leaf_edge, self.leaf_start, self.leaf_feature,
                self.table_start, self.table, out,
            )
        return out


def _contributions_loop(
    x: Any, split_feature: Any, threshold: Any, default_left: Any, missing_type: Any, edge_parent: Any,
    edge_split: Any, edge_left: Any, edge_bit: Any, leaf_edge: Any, leaf_start: Any, leaf_feature: Any,
    table_start: Any, table: Any, out: Any,
) -> None:  # pragma: no cover -- the source numba compiles (the tests run it compiled)
    """Adds, for each row, every leaf's table entry for the row's case to ``out``."""
    left = np.empty(len(split_feature), np.bool_)
    failed = np.empty(len(edge_split), np.int64)  # per edge: the slots where the row left the path above
    for r in range(x.shape[0]):
        for s in range(len(split_feature)):  # LightGBM's NumericalDecision
            v = x[r, split_feature[s]]
            kind = missing_type[s]
            if np.isnan(v):
                if kind != 2:
                    v = 0.0
            elif abs(v) <= 1.0000000180025095e-35:
                v = 0.0  # LightGBM reads rows as sparse pairs: |x| <= kZeroThreshold (1e-35f) is not stored, so is 0
            if (kind == 1 and v == 0.0) or (kind == 2 and np.isnan(v)):
                left[s] = default_left[s]
            else:
                left[s] = v <= threshold[s]
        for e in range(len(edge_split)):
            above = failed[edge_parent[e]] if edge_parent[e] >= 0 else 0
            failed[e] = above | (edge_bit[e] if left[edge_split[e]] != edge_left[e] else 0)
        for p in range(len(leaf_edge)):
            lo, d = leaf_start[p], leaf_start[p + 1] - leaf_start[p]
            at = table_start[p] + (((1 << d) - 1) & ~failed[leaf_edge[p]]) * d
            for j in range(d):
                out[r, leaf_feature[lo + j]] += table[at + j]


# compiled on first use (about a second; Explainer.prepare() does it when a model is loaded)
_kernel = lazily_compiled(_contributions_loop)


def _path_weights(zero: npt.NDArray[np.float64], one: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``w_j (o_j - z_j)`` for paths of ``d`` unique features, for every case at once.

    ``zero`` (paths, d): the zero fractions; ``one`` (cases, d) of 0/1: the
    one fractions of each case. LightGBM's ``ExtendPath`` over the root's
    dummy element (z = o = 1) and the ``d`` features, then
    ``UnwoundPathSum`` for each feature, with paths and cases as vector
    dimensions. Returns (paths, cases, d).
    """
    n, d = zero.shape
    cases = one.shape[0]
    zf = np.concatenate([np.ones((n, 1)), zero], axis=1)[:, None, :]  # (paths, 1, d + 1)
    of = np.concatenate([np.ones((cases, 1)), one], axis=1)[None, :, :]  # (1, cases, d + 1)
    pweight = np.zeros((n, cases, d + 1))
    for depth in range(d + 1):  # ExtendPath(unique_path, depth, zf[depth], of[depth])
        pweight[:, :, depth] = 1.0 if depth == 0 else 0.0
        for i in range(depth - 1, -1, -1):
            pweight[:, :, i + 1] += of[:, :, depth] * pweight[:, :, i] * (i + 1) / (depth + 1)
            pweight[:, :, i] = zf[:, :, depth] * pweight[:, :, i] * (depth - i) / (depth + 1)
    out = np.empty((n, cases, d))
    for j in range(1, d + 1):  # UnwoundPathSum(unique_path, d, j)
        o, z = of[:, :, j], zf[:, :, j]
        next_one = pweight[:, :, d].copy()
        total = np.zeros((n, cases))
        nonzero = o != 0
        safe_o = np.where(nonzero, o, 1.0)
        for i in range(d - 1, -1, -1):
            tmp = next_one * (d + 1) / ((i + 1) * safe_o)
            total += np.where(nonzero, tmp, (pweight[:, :, i] / z) / ((d - i) / (d + 1)))
            next_one = pweight[:, :, i] - tmp * z * ((d - i) / (d + 1))
        out[:, :, j - 1] = total * (o - z)
    return out


def build_tables(booster: Any) -> PathTables | None:
    """:class:`PathTables` of a LightGBM booster, or None where it cannot be tabulated (see the module)."""
    dump = booster.dump_model()
    n_features = int(dump["max_feature_idx"]) + 1
    split_feature: list[int] = []
    threshold: list[float] = []
    default_left: list[bool] = []
    missing_type: list[int] = []
    edges: list[tuple[int, int, bool, int]] = []  # (parent edge, split, left, bit)
    # per leaf: value, the edge into it, unique features in slot order, their zero fractions
    leaves: list[tuple[float, int, list[int], list[float]]] = []
    base_value = 0.0

    def count(node: dict[str, Any]) -> float:
        return float(node["leaf_count"] if "leaf_index" in node else node["internal_count"])

    for tree in dump["tree_info"]:
        root = tree["tree_structure"]
        if "split_index" not in root:
            base_value += float(root.get("leaf_value", 0.0))  # a single leaf: its value is its expectation
            continue
        total = count(root)
        if total <= 0:
            return None
        stack: list[tuple[dict[str, Any], int, list[int], list[float]]] = [(root, -1, [], [])]
        while stack:
            node, edge, feats, zero = stack.pop()
            if "split_index" not in node:
                value = float(node["leaf_value"])
                base_value += count(node) / total * value
                leaves.append((value, edge, feats, zero))
                continue
            if node.get("decision_type") != "<=" or "leaf_coeff" in node:
                return None  # categorical or linear splits: not tabulated
            f = int(node["split_feature"])
            g = len(split_feature)
            split_feature.append(f)
            threshold.append(float(node["threshold"]))
            default_left.append(bool(node["default_left"]))
            missing_type.append(_MISSING[str(node["missing_type"])])
            slot = feats.index(f) if f in feats else len(feats)
            if slot >= MAX_UNIQUE:
                return None
            here = count(node)
            for child, left in ((node["left_child"], True), (node["right_child"], False)):
                ratio = count(child) / here if here > 0 else 0.0
                if ratio <= 0:
                    return None  # an empty side: TreeSHAP's unwinding would divide by zero
                edges.append((edge, g, left, 1 << slot))
                child_zero = [*zero, 1.0] if slot == len(feats) else list(zero)
                child_zero[slot] *= ratio
                stack.append((child, len(edges) - 1, [*feats, f] if slot == len(feats) else feats, child_zero))

    widths = np.asarray([len(feats) for _, _, feats, _ in leaves], np.int64)
    sizes = (1 << widths) * widths
    table_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if len(leaves) else np.zeros(0, np.int64)
    table = np.zeros(int(sizes.sum()))
    values = np.asarray([v for v, _, _, _ in leaves])
    for d in np.unique(widths).tolist():  # the leaves with d unique features, all cases at once
        which = np.flatnonzero(widths == d)
        zero = np.asarray([leaves[p][3] for p in which], np.float64).reshape(len(which), d)
        cases = np.arange(1 << d)
        one = ((cases[:, None] >> np.arange(d)[None, :]) & 1).astype(np.float64)
        block = _path_weights(zero, one) * values[which][:, None, None]  # (leaves, cases, d)
        at = table_start[which][:, None] + np.arange((1 << d) * d)[None, :]
        table[at] = block.reshape(len(which), -1)
    return PathTables(
        n_features=n_features,
        base_value=base_value,
        split_feature=np.asarray(split_feature, np.int64),
        threshold=np.asarray(threshold, np.float64),
        default_left=np.asarray(default_left, bool),
        missing_type=np.asarray(missing_type, np.int8),
        edge_parent=np.asarray([e[0] for e in edges], np.int64),
        edge_split=np.asarray([e[1] for e in edges], np.int64),
        edge_left=np.asarray([e[2] for e in edges], bool),
        edge_bit=np.asarray([e[3] for e in edges], np.int64),
        leaf_edge=np.asarray([e for _, e, _, _ in leaves], np.int64),
        leaf_start=np.concatenate([[0], np.cumsum(widths)]).astype(np.int64),
        leaf_feature=np.asarray([f for _, _, feats, _ in leaves for f in feats], np.int64),
        table_start=table_start,
        table=table,
    )
