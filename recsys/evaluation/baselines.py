"""The baselines clearshelf must beat, their tuning grids, and plain factories.

Each baseline is a retriever from :mod:`recsys.retrieval` behind
:class:`~recsys.evaluation.runner.RetrieverRecommender`:

==============  ==========================================================
``popularity``  most bought lately (``PopularityRetriever``)
``itemknn``     item-item neighbours of the history (``CoPurchaseRetriever``)
``als``         implicit-feedback matrix factorisation (``AlsRetriever``)
``bpr``         Bayesian personalised ranking (``BprRetriever``)
``ease``        the closed-form linear autoencoder (``EaseRetriever``)
==============  ==========================================================

Retrievers are imported inside the factories, so importing this module
costs nothing and needs none of them.

The grids are sized so the chosen value is normally inside them (the tuning
result flags any value at an edge) and so a dataset the size of Complete
Journey tunes in about ten minutes on two cores (scoring a seeded
sample of 1,000 validation customers): single-parameter grids are searched
exhaustively, multi-parameter ones by coordinate search (see
:func:`~recsys.evaluation.runner.tune`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

import polars as pl

from recsys.errors import EvaluationError
from recsys.evaluation.runner import Recommender, RetrieverRecommender, TuningResult, tune
from recsys.evaluation.splits import Split
from recsys.interactions import InteractionConfig

BaselineName = Literal["popularity", "itemknn", "als", "bpr", "ease"]
BASELINE_NAMES: Final[tuple[str, ...]] = ("popularity", "itemknn", "als", "bpr", "ease")


@dataclass(frozen=True)
class TuningPlan:
    """What to try for one baseline: the grid, how to search it, and fixed parameters.

    ``fixed`` parameters are passed to every trial and are part of the chosen
    params (so :func:`baseline_models` rebuilds exactly what was tuned).
    ``limits`` are hard bounds of a parameter: a chosen value there is not
    reported as at the edge of the grid.
    """

    grid: Mapping[str, tuple[Any, ...]]
    strategy: Literal["grid", "coordinate"] = "grid"
    max_rounds: int = 1
    fixed: Mapping[str, Any] = field(default_factory=dict)
    limits: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)


# Trials per plan (one coordinate round tries sum(len) - (params - 1)) and the
# measured cost of a trial on the Complete Journey validation split on 2
# cores (fit + top-k for 1,000 customers): popularity 7 (~2 s), itemknn 9
# (~13 s), als ~24 (two rounds, ~10 s), bpr 11 (~25 s), ease 7 (~10 s);
# about 10 minutes in all (MovieLens 100K: under a minute). A coordinate search
# starts from each grid's middle value and sweeps the parameters in the order
# given, so the most sensitive one comes first.
DEFAULT_PLANS: Final[Mapping[str, TuningPlan]] = MappingProxyType({
    # 3650 days is "all time" on every dataset we have; at that edge there is nothing to widen
    "popularity": TuningPlan(
        {"window_days": (3.0, 7.0, 14.0, 28.0, 90.0, 365.0, 3650.0)},
        limits={"window_days": (None, 3650.0)},
    ),
    "itemknn": TuningPlan(
        {
            "similarity": ("bm25", "cosine"),
            "neighbours": (10, 25, 50, 100, 200, 400, 800),
            "shrinkage": (0.0, 10.0, 100.0),
        },
        strategy="coordinate",
        limits={"shrinkage": (0.0, None)},
    ),
    "als": TuningPlan(
        {
            "factors": (8, 16, 32, 64, 128),
            "regularization": (0.01, 0.1, 1.0, 10.0, 100.0),
            "alpha": (0.1, 0.3, 1.0, 3.0, 10.0),
        },
        strategy="coordinate",
        max_rounds=2,
        fixed={"scaling": "log"},
    ),
    "bpr": TuningPlan(
        {
            "regularization": (0.001, 0.01, 0.1, 1.0),
            "learning_rate": (0.001, 0.003, 0.01, 0.03, 0.1),
            "factors": (32, 64, 128, 256),
        },
        strategy="coordinate",
        fixed={"iterations": 100},
    ),
    "ease": TuningPlan({"l2": (30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0, 30000.0)}),
})


def default_grid(name: str) -> dict[str, list[Any]]:
    """The default tuning grid of baseline ``name`` (a fresh, editable copy)."""
    return {p: list(v) for p, v in _plan(name).grid.items()}


def build_baseline(name: str, *, seed: int = 42, **params: Any) -> Recommender:
    """An unfitted baseline ``name`` with config ``params`` (the rest default).

    Raises ``ValueError`` for an unknown name and ``TypeError`` for a
    parameter the baseline's config does not have.
    """
    if name == "popularity":
        from recsys.retrieval.popularity import PopularityConfig, PopularityRetriever

        window = float(params.get("window_days", PopularityConfig.window_days))
        # the trend window must be shorter than the window; popularity ranking ignores it
        params.setdefault("trend_window_days", min(PopularityConfig.trend_window_days, window / 2))
        return RetrieverRecommender(PopularityRetriever(PopularityConfig(**params, seed=seed)), name=name)
    if name == "itemknn":
        from recsys.retrieval.copurchase import CoPurchaseConfig, CoPurchaseRetriever

        return RetrieverRecommender(CoPurchaseRetriever(CoPurchaseConfig(**params, seed=seed)), name=name)
    if name == "als":
        from recsys.retrieval.als import AlsConfig, AlsRetriever

        return RetrieverRecommender(AlsRetriever(AlsConfig(**params, seed=seed)), name=name)
    if name == "bpr":
        from recsys.retrieval.als import BprConfig, BprRetriever

        return RetrieverRecommender(BprRetriever(BprConfig(**params, seed=seed)), name=name)
    if name == "ease":
        from recsys.retrieval.ease import EaseConfig, EaseRetriever

        return RetrieverRecommender(EaseRetriever(EaseConfig(**params, seed=seed)), name=name)
    raise EvaluationError(f"unknown baseline '{name}'; choose one of: {', '.join(BASELINE_NAMES)}")


def baseline_factory(name: str, *, seed: int = 42) -> Callable[..., Recommender]:
    """``factory(**params)`` building baseline ``name``, the shape :func:`tune` takes."""
    _plan(name)

    def factory(**params: Any) -> Recommender:
        return build_baseline(name, seed=seed, **params)

    return factory


def baseline_models(
    params: Mapping[str, Mapping[str, Any]], *, seed: int = 42
) -> dict[str, Callable[[], Recommender]]:
    """Zero-argument factories for :func:`~recsys.evaluation.runner.evaluate_models`.

    ``params`` maps a baseline name to its config parameters, e.g. the
    ``params`` of each :func:`tune_baselines` result.
    """
    out: dict[str, Callable[[], Recommender]] = {}
    for name, p in params.items():
        _plan(name)
        out[name] = _bind(name, dict(p), seed)
    return out


def tune_baselines(
    split: Split,
    *,
    names: Sequence[str] = BASELINE_NAMES,
    plans: Mapping[str, TuningPlan] | None = None,
    k: int = 10,
    discovery: bool = True,
    seed: int = 42,
    catalog: pl.DataFrame | None = None,
    interaction_config: InteractionConfig | None = None,
    max_customers: int | None = 1000,
    progress: Callable[[str], None] | None = None,
) -> dict[str, TuningResult]:
    """Tune each baseline in ``names`` on a validation split carved from ``split.train``.

    ``plans`` overrides :data:`DEFAULT_PLANS` per name. Each trial is scored
    on the same seeded sample of at most ``max_customers`` validation
    customers (None: all). Check each result's ``at_edge`` and widen that
    grid when it is not empty.
    """
    chosen = {**DEFAULT_PLANS, **(plans or {})}
    say = progress or (lambda _msg: None)
    results: dict[str, TuningResult] = {}
    for name in names:
        if name not in chosen:
            raise EvaluationError(f"unknown baseline '{name}'; choose one of: {', '.join(BASELINE_NAMES)}")
        plan = chosen[name]
        say(f"tuning {name}")
        results[name] = tune(
            baseline_factory(name, seed=seed),
            {p: list(v) for p, v in plan.grid.items()},
            split,
            k=k,
            discovery=discovery,
            strategy=plan.strategy,
            max_rounds=plan.max_rounds,
            fixed=plan.fixed,
            limits=plan.limits,
            max_customers=max_customers,
            seed=seed,
            catalog=catalog,
            interaction_config=interaction_config,
            progress=progress,
        )
    return results


def _bind(name: str, params: dict[str, Any], seed: int) -> Callable[[], Recommender]:
    return lambda: build_baseline(name, seed=seed, **params)


def _plan(name: str) -> TuningPlan:
    if name not in DEFAULT_PLANS:
        raise EvaluationError(f"unknown baseline '{name}'; choose one of: {', '.join(BASELINE_NAMES)}")
    return DEFAULT_PLANS[name]
