"""Threshold settings and their versioned repository, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from fairness.errors import ThresholdError
from fairness.thresholds import ThresholdRepository, ThresholdSettings
from recsys.data.store import Store
from recsys.ranking.policy import ServingPolicy


def test_defaults_are_version_zero(store: Store) -> None:
    repo = ThresholdRepository(store)
    current = repo.current()
    assert current.version == 0
    assert current.settings.audit.ratio_min == 0.8
    assert current.settings.audit.difference_max == 0.05
    assert current.settings.policy.rerank_strength == 0.0
    assert [v.version for v in repo.history()] == [0]


def test_set_rollback_and_history(store: Store) -> None:
    repo = ThresholdRepository(store)
    v1 = repo.set({"policy": {"rerank_strength": 0.4}}, actor="cli", note="try 0.4")
    v2 = repo.set(
        ThresholdSettings.parse({"policy": {"min_score": -1.5}, "audit": {"ratio_min": 0.9}}), actor="key1"
    )
    assert (v1.version, v2.version) == (1, 2)
    assert repo.current().settings.audit.ratio_min == 0.9
    assert repo.current().settings.policy.serving_policy() == ServingPolicy(min_score=-1.5, rerank_strength=0.0)
    back = repo.rollback(actor="key1")  # to the previous version: 1
    assert back.version == 3 and back.settings == v1.settings and "version 1" in (back.note or "")
    to_defaults = repo.rollback(actor="key1", to_version=0)
    assert to_defaults.version == 4 and to_defaults.settings == ThresholdSettings()
    hist = repo.history()
    assert [v.version for v in hist] == [4, 3, 2, 1, 0]
    assert hist[3].note == "try 0.4" and hist[3].actor == "cli"
    assert hist[0].created_at is not None and hist[0].created_at.tzinfo is not None
    assert [v.version for v in repo.history(limit=2)] == [4, 3]
    with pytest.raises(ThresholdError, match="version 17 does not exist"):
        repo.rollback(actor="cli", to_version=17)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"policy": {"rerank_strength": 1.5}}, "policy.rerank_strength"),
        ({"audit": {"ratio_min": 0}}, "audit.ratio_min"),
        ({"audit": {"resamples": 10}}, "audit.resamples"),
        ({"audit": {"ratio_mn": 0.8}}, "audit.ratio_mn"),
    ],
)
def test_invalid_settings_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(ThresholdError, match=field.replace(".", r"\.")):
        ThresholdSettings.parse(data)


def test_rollback_with_nothing_stored_is_an_error(sqlite_url: str) -> None:
    store = Store.open(sqlite_url)
    with pytest.raises(ThresholdError, match="nothing to roll back"):
        ThresholdRepository(store).rollback(actor="cli")
    store.dispose()
