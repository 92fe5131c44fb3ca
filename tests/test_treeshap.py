"""The ranker's TreeSHAP path tables give LightGBM's own contributions (``pred_contrib``)."""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np
import pytest

from recsys.ranking.ranker import LambdaRanker, RankerConfig
from recsys.ranking.treeshap import build_tables


def _rows_with_edges(booster: lgb.Booster, rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """Random rows, plus rows sitting exactly on split thresholds (the `<=` side must match LightGBM's)."""
    rows = rng.normal(size=(n, width))
    dump = booster.dump_model()
    thresholds: list[tuple[int, float]] = []

    def walk(node: dict) -> None:
        if "split_index" in node:
            thresholds.append((int(node["split_feature"]), float(node["threshold"])))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in dump["tree_info"]:
        walk(tree["tree_structure"])
    on_edge = rng.normal(size=(len(thresholds), width))
    for r, (f, t) in enumerate(thresholds):
        on_edge[r, f] = t
    return np.concatenate([rows, on_edge])


def test_tables_equal_lightgbm_on_a_merged_lambdarank_ranker() -> None:
    from recsys.ranking.features import FEATURE_NAMES

    rng = np.random.default_rng(3)
    width, groups, per = len(FEATURE_NAMES), 60, 20
    x = rng.normal(size=(groups * per, width)).astype(np.float32)
    x[:, 5] = rng.integers(0, 3, size=len(x))  # a few distinct values: repeated splits on one feature
    y = (x[:, 0] + 0.5 * x[:, 3] - x[:, 5] + rng.normal(scale=0.5, size=len(x)) > 0.5).astype(float)
    ranker = LambdaRanker(RankerConfig(n_estimators=25, num_leaves=15, min_child_samples=5, seeds=(1, 2))).fit(
        x, y, np.full(groups, per)
    )
    tables = ranker.shap_tables_
    assert tables is not None
    tiny = np.repeat(np.array([1e-35, -1e-35, 2e-35, -2e-35, 0.0], np.float32)[:, None], width, axis=1)
    rows = np.concatenate([_rows_with_edges(ranker.booster_, rng, 200, width).astype(np.float32), tiny])
    ours = ranker.contributions(rows)
    theirs = ranker.lightgbm_contributions(rows)
    assert ours.shape == theirs.shape == (len(rows), width + 1)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.sum(axis=1), ranker.predict(rows), rtol=0, atol=1e-12)
    # features no tree splits on get exactly 0, as from LightGBM
    unused = np.flatnonzero(np.all(theirs[:, :-1] == 0, axis=0))
    assert np.all(ours[:, unused] == 0)
    # the tables are not pickled (rebuilt on first use) and an empty batch is fine
    unpickled = pickle.loads(pickle.dumps(ranker))
    assert "_shap_tables" not in unpickled.__dict__
    np.testing.assert_array_equal(unpickled.contributions(rows), ours)
    assert ranker.contributions(rows[:0]).shape == (0, width + 1)
    with pytest.raises(ValueError, match="features"):
        tables.contributions(rows[:, :3])


@pytest.mark.parametrize("zero_as_missing", [False, True])
def test_tables_follow_lightgbm_on_missing_values(zero_as_missing: bool) -> None:
    """NaN-as-missing and zero-as-missing splits send missing values the default way, as LightGBM does."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(3000, 6))
    x[rng.random(x.shape) < 0.2] = np.nan if not zero_as_missing else 0.0
    y = np.nan_to_num(x[:, 0]) * 2 + np.nan_to_num(x[:, 1]) + np.isnan(x[:, 2]) + (x[:, 3] == 0) + rng.normal(size=len(x))
    params = {"objective": "regression", "num_leaves": 12, "min_data_in_leaf": 10, "verbose": -1,
              "zero_as_missing": zero_as_missing, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=20)
    kinds = {node["missing_type"] for t in booster.dump_model()["tree_info"] for node in _splits(t["tree_structure"])}
    assert kinds & {"NaN", "Zero"}, kinds  # the model does have missing-value splits
    tables = build_tables(booster)
    assert tables is not None
    tiny = [1e-40, 1e-35, -1e-35, float(np.float32(1e-35)), -float(np.float32(1e-35)), 2e-35]  # around kZeroThreshold
    edges = _rows_with_edges(booster, rng, 0, 6)
    rows = np.concatenate([x[:300], edges, np.full((1, 6), np.nan), np.zeros((1, 6)), *[np.full((1, 6), v) for v in tiny]])
    np.testing.assert_allclose(
        tables.contributions(rows), booster.predict(rows, pred_contrib=True), rtol=0, atol=1e-12
    )


def _splits(node: dict) -> list[dict]:
    if "split_index" not in node:
        return []
    return [node, *_splits(node["left_child"]), *_splits(node["right_child"])]


def test_a_model_the_tables_cannot_cover_falls_back_to_lightgbm() -> None:
    rng = np.random.default_rng(5)
    x = np.column_stack([rng.integers(0, 6, 2000), rng.normal(size=2000)])
    y = (x[:, 0] % 2) * 3 + x[:, 1] + rng.normal(size=2000)
    params = {"objective": "regression", "num_leaves": 8, "min_data_in_leaf": 10, "verbose": -1, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(x, y, categorical_feature=[0]), num_boost_round=5)
    assert build_tables(booster) is None  # categorical splits are not tabulated

    ranker = LambdaRanker(RankerConfig())
    ranker.boosters_ = [booster]
    ranker.feature_names_ = ("a", "b")
    assert ranker.shap_tables_ is None
    np.testing.assert_array_equal(ranker.contributions(x[:20]), booster.predict(x[:20], pred_contrib=True))


def test_compiled_trees_give_lightgbms_scores_bit_for_bit() -> None:
    from recsys.ranking.features import FEATURE_NAMES

    rng = np.random.default_rng(4)
    width, groups, per = len(FEATURE_NAMES), 60, 20
    x = rng.normal(size=(groups * per, width)).astype(np.float32)
    x[:, 5] = rng.integers(0, 3, size=len(x))
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values in training: NaN-as-missing splits
    x[:, 7] = np.where(rng.random(len(x)) < 0.3, 0.0, x[:, 7])
    y = (np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 3]) - x[:, 5] + rng.normal(scale=0.5, size=len(x)) > 0.5)
    for extra in ({}, {"zero_as_missing": True}):
        ranker = LambdaRanker(
            RankerConfig(n_estimators=25, num_leaves=15, min_child_samples=5, seeds=(1, 2), extra=extra)
        ).fit(x, y.astype(float), np.full(groups, per))
        assert ranker.forest_ is not None
        tiny = np.repeat(np.array([1e-35, -1e-35, 2e-35, -2e-35, 0.0, np.nan], np.float32)[:, None], width, axis=1)
        rows = np.concatenate([_rows_with_edges(ranker.booster_, rng, 300, width).astype(np.float32), tiny, x[:200]])
        ours = ranker.predict(rows)
        theirs = ranker.lightgbm_predict(rows)
        assert ours.dtype == theirs.dtype == np.float64
        assert ours.tobytes() == theirs.tobytes()
        assert ranker.predict(rows[:0]).shape == (0,)
        unpickled = pickle.loads(pickle.dumps(ranker))
        assert "_forest" not in unpickled.__dict__
        assert unpickled.predict(rows).tobytes() == theirs.tobytes()
