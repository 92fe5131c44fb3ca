"""The ranker's trees as flat arrays, walked by a compiled loop: LightGBM's raw score, without LightGBM.

Every request scores a few hundred candidate rows, and the explainer's
counterfactual check a few dozen more; for so few rows, LightGBM's
``Booster.predict`` spends much of its time outside the trees (argument
checks, the C API's row iterator, a float64 copy). :class:`Forest` holds the
same trees as arrays read from the model dump and :meth:`Forest.predict`
walks them with a numba loop: for each row, every tree from its root to a
leaf with LightGBM's ``NumericalDecision`` (missing values, zero-as-missing,
the 1e-35 zero threshold), adding the leaf values in tree order in float64,
as ``GBDT::PredictRaw`` does. The scores are therefore LightGBM's bit for bit
(tested on rows at every threshold, NaN, zeros and near-zeros);
``benchmarks/forest_predict.py`` measures both.

Categorical or linear trees are not covered: :func:`build_forest` returns None
and the caller uses LightGBM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recsys.compiled import lazily_compiled

_MISSING = {"None": 0, "Zero": 1, "NaN": 2}


@dataclass(frozen=True)
class Forest:
    """A LightGBM model's numerical trees as arrays (nodes numbered across the trees)."""

    n_features: int
    # per tree: its root, a node (>= 0) or, for a single-leaf tree, ~leaf (< 0)
    root: npt.NDArray[np.int64]
    # per internal node; a child >= 0 is a node, < 0 is ~leaf
    split_feature: npt.NDArray[np.int64]
    threshold: npt.NDArray[np.float64]
    default_left: npt.NDArray[np.bool_]
    missing_type: npt.NDArray[np.int8]  # 0 None, 1 Zero, 2 NaN
    children: npt.NDArray[np.int64]  # (2 * nodes,): left, right of each node
    leaf_value: npt.NDArray[np.float64]

    def predict(self, features: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
        """Raw scores, shape (rows,): what ``Booster.predict(features)`` gives, bit for bit."""
        x = np.ascontiguousarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected (rows, {self.n_features}) features, got shape {x.shape}")
        out = np.zeros(x.shape[0], np.float64)
        if x.shape[0] and len(self.root):
            _kernel()(
                x, self.root, self.split_feature, self.threshold, self.default_left, self.missing_type,
                self.children, self.leaf_value, out,
            )
        return out


def _predict_loop(
    x: Any, root: Any, split_feature: Any, threshold: Any, default_left: Any, missing_type: Any,
    children: Any, leaf_value: Any, out: Any,
) -> None:  # pragma: no cover -- the source numba compiles (the tests run it compiled)
    """``out[r]`` = the sum over trees, in order, of the leaf row ``r`` reaches."""
    n_features = x.shape[1]
    value = np.empty(n_features)  # the row as LightGBM reads it: NaN and |x| <= 1e-35 become 0
    is_nan = np.empty(n_features, np.bool_)
    is_zero = np.empty(n_features, np.bool_)
    for r in range(x.shape[0]):
        for f in range(n_features):
            v = x[r, f]
            is_nan[f] = np.isnan(v)
            # |x| <= kZeroThreshold (1e-35f) is read as an absent entry: 0
            is_zero[f] = is_nan[f] or abs(v) <= 1.0000000180025095e-35
            value[f] = 0.0 if is_zero[f] else v
        total = 0.0
        for t in range(len(root)):
            node = root[t]
            while node >= 0:  # LightGBM's NumericalDecision
                f = split_feature[node]
                kind = missing_type[node]
                if (kind == 1 and is_zero[f]) or (kind == 2 and is_nan[f]):
                    go_left = default_left[node]
                else:
                    go_left = value[f] <= threshold[node]
                node = children[2 * node + (0 if go_left else 1)]
            total += leaf_value[~node]
        out[r] = total


# compiled on first use (about a second; Explainer.prepare() does it when a model is loaded)
_kernel = lazily_compiled(_predict_loop)


def build_forest(booster: Any) -> Forest | None:
    """:class:`Forest` of a LightGBM booster, or None if a tree is categorical or linear."""
    dump = booster.dump_model()
    if dump.get("num_tree_per_iteration", 1) != 1:
        return None
    split_feature: list[int] = []
    threshold: list[float] = []
    default_left: list[bool] = []
    missing_type: list[int] = []
    left: list[int] = []
    right: list[int] = []
    leaf_value: list[float] = []
    root: list[int] = []

    def add(node: dict[str, Any]) -> int:
        if "split_index" not in node:
            leaf_value.append(float(node.get("leaf_value", 0.0)))
            return ~(len(leaf_value) - 1)
        if node.get("decision_type") != "<=" or "leaf_coeff" in node:
            raise _Unsupported
        at = len(split_feature)
        split_feature.append(int(node["split_feature"]))
        threshold.append(float(node["threshold"]))
        default_left.append(bool(node["default_left"]))
        missing_type.append(_MISSING[str(node["missing_type"])])
        left.append(0)
        right.append(0)
        left[at] = add(node["left_child"])
        right[at] = add(node["right_child"])
        return at

    try:
        for tree in dump["tree_info"]:
            if tree.get("is_linear"):
                return None
            root.append(add(tree["tree_structure"]))
    except _Unsupported:
        return None
    return Forest(
        n_features=int(dump["max_feature_idx"]) + 1,
        root=np.asarray(root, np.int64),
        split_feature=np.asarray(split_feature, np.int64),
        threshold=np.asarray(threshold, np.float64),
        default_left=np.asarray(default_left, bool),
        missing_type=np.asarray(missing_type, np.int8),
        children=np.stack([np.asarray(left, np.int64), np.asarray(right, np.int64)], axis=1).reshape(-1),
        leaf_value=np.asarray(leaf_value, np.float64),
    )


class _Unsupported(Exception):
    """A categorical or linear split."""
