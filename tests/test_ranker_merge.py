"""The merged booster the ranker serves with is the average of its seeds' boosters."""

from __future__ import annotations

import pickle

import numpy as np

from recsys.ranking.ranker import LambdaRanker, RankerConfig


def _data(rng: np.random.Generator, groups: int = 60, per: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from recsys.ranking.features import FEATURE_NAMES

    x = rng.normal(size=(groups * per, len(FEATURE_NAMES))).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 3] + rng.normal(scale=0.5, size=len(x)) > 1).astype(float)
    return x, y, np.full(groups, per)


def test_merged_booster_scores_and_explains_as_the_seeds_average(tmp_path) -> None:
    rng = np.random.default_rng(7)
    x, y, groups = _data(rng)
    ranker = LambdaRanker(RankerConfig(n_estimators=12, num_leaves=7, min_child_samples=5, seeds=(1, 2, 3))).fit(x, y, groups)
    rows = x[:40]
    average = np.mean([b.predict(rows) for b in ranker.boosters_], axis=0)
    contrib_average = np.mean([b.predict(rows, pred_contrib=True) for b in ranker.boosters_], axis=0)
    assert ranker.booster_.num_trees() == 36
    assert np.allclose(ranker.predict(rows), average, rtol=0, atol=1e-12)
    assert np.allclose(ranker.contributions(rows), contrib_average, rtol=0, atol=1e-12)
    assert np.allclose(ranker.contributions(rows).sum(axis=1), ranker.predict(rows), rtol=0, atol=1e-12)
    # saved per seed, merged again after loading: the same scores
    files = ranker.save(tmp_path)
    loaded = LambdaRanker.load(tmp_path, files, ranker.config, ranker.feature_names_)
    assert np.array_equal(loaded.predict(rows), ranker.predict(rows))
    # a pickled ranker (inside a model bundle) arrives merged, not on its first request
    unpickled = pickle.loads(pickle.dumps(ranker))
    assert "_merged" in unpickled.__dict__
    assert np.array_equal(unpickled.predict(rows), ranker.predict(rows))


def test_one_seed_is_served_by_its_own_booster() -> None:
    rng = np.random.default_rng(8)
    x, y, groups = _data(rng)
    ranker = LambdaRanker(RankerConfig(n_estimators=5, num_leaves=7, min_child_samples=5, seeds=(4,))).fit(x, y, groups)
    assert ranker.booster_ is ranker.boosters_[0]
    assert np.array_equal(ranker.predict(x[:5]), ranker.boosters_[0].predict(x[:5]))
