"""The side-by-side evaluation: fit every model on one split, score them alike.

Every model is fit on the same :class:`~recsys.interactions.Interactions` (one
item vocabulary), asked for the same customers' top items with the same
exclusions, and scored against the same :class:`~recsys.evaluation.splits.Truth`.
Per-customer metric arrays are kept so :func:`compare` can bootstrap the ratio
of two models' means over customers; :func:`tune` grid-searches a model's
parameters on a validation split carved from the training part.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt
import polars as pl

from recsys.errors import EvaluationError, NotFittedError
from recsys.evaluation.bootstrap import RatioCI, paired_ratio_ci
from recsys.evaluation.metrics import coverage, mean_popularity, ranking_metrics
from recsys.evaluation.splits import Split, Truth, test_truth, train_history, validation_split
from recsys.interactions import IdVocabulary, InteractionConfig, Interactions

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Exclusions = Mapping[str, npt.NDArray[np.integer[Any]]]

ERR_NO_CUSTOMERS = (
    "no customer can be evaluated: none has both a training event and a relevant test item "
    "(with discovery on, a new one); use a larger test_fraction, turn discovery off, or check "
    "the event types"
)
ERR_BAD_MODEL = (
    "model '{name}' is neither a Recommender nor a factory returning one (got {type}); wrap a "
    "retriever in RetrieverRecommender(retriever)"
)


@runtime_checkable
class Recommender(Protocol):
    """What the evaluation needs from a model.

    ``recommend`` returns item indices of the vocabulary of the interactions
    given to ``fit``: shape ``(len(customer_ids), k)``, int64, best first,
    distinct within a row, padded with -1. ``exclude`` maps a customer id to
    item indices that must not be returned.
    """

    name: str

    def fit(self, interactions: Interactions) -> Self: ...

    def recommend(
        self, customer_ids: Sequence[str], k: int, *, exclude: Exclusions | None = None
    ) -> IntArray: ...


class RetrieverRecommender:
    """Any retriever from :mod:`recsys.retrieval` as a :class:`Recommender`.

    ``recommend`` asks ``retriever.candidates(customer, k, exclude=...)`` per
    customer; a customer the retriever does not know gets an all -1 row.
    """

    def __init__(self, retriever: Any, *, name: str | None = None) -> None:
        self.retriever = retriever
        self.name = name or str(getattr(retriever, "name", type(retriever).__name__))

    def fit(self, interactions: Interactions) -> Self:
        self.retriever.fit(interactions)
        self.n_items_ = len(interactions.items)
        return self

    def recommend(
        self, customer_ids: Sequence[str], k: int, *, exclude: Exclusions | None = None
    ) -> IntArray:
        if not hasattr(self, "n_items_"):
            raise NotFittedError(type(self).__name__)
        out = np.full((len(customer_ids), k), -1, dtype=np.int64)
        for row, customer in enumerate(customer_ids):
            skip = exclude.get(customer) if exclude is not None else None
            items = self.retriever.candidates(customer, k, exclude=skip).items[:k]
            out[row, : len(items)] = items
        return out

    def __repr__(self) -> str:
        return f"RetrieverRecommender({self.retriever!r}, name={self.name!r})"


ModelSpec = Recommender | Callable[[], Recommender]


@dataclass(frozen=True, eq=False)
class ModelResult:
    """One model's scores on one split.

    ``metrics`` has the report keys (``ndcg@k, recall@k, recall@20, hr@k,
    map@k, precision@k, coverage, mean_popularity, train_seconds,
    customers``); ``per_customer`` the accuracy metrics per evaluated customer
    (aligned with :attr:`EvaluationResult.customer_ids`);
    ``recommendations`` the item indices shown, shape (customers, width).
    """

    name: str
    metrics: Mapping[str, float]
    per_customer: Mapping[str, FloatArray]
    recommendations: IntArray
    train_seconds: float
    recommend_seconds: float


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Every model's :class:`ModelResult` on the same customers, items and truth."""

    k: int
    discovery: bool
    customer_ids: tuple[str, ...]
    items: IdVocabulary
    truth: Truth
    models: Mapping[str, ModelResult]
    split: Mapping[str, Any]
    catalog_size: int

    def metric_key(self, metric: str = "ndcg") -> str:
        """``"ndcg"`` -> ``"ndcg@10"`` for this result's k (full keys pass through)."""
        return metric if "@" in metric else f"{metric}@{self.k}"

    def table(self) -> pl.DataFrame:
        """One row per model, one column per metric (report order)."""
        rows = [{"model": name, **dict(r.metrics)} for name, r in self.models.items()]
        return pl.DataFrame(rows)

    def best(self, metric: str = "ndcg", *, exclude: Sequence[str] = ()) -> str:
        """The model with the highest mean ``metric`` (first on ties), skipping ``exclude``."""
        key = self.metric_key(metric)
        names = [n for n in self.models if n not in exclude]
        if not names:
            raise EvaluationError(f"no model to choose from besides {list(exclude)}")
        return max(names, key=lambda n: self.models[n].metrics[key])


@dataclass(frozen=True)
class Comparison:
    """``model`` against ``baseline`` on ``metric``: the paired bootstrap ratio of means."""

    model: str
    baseline: str
    metric: str
    ci: RatioCI

    @property
    def ratio(self) -> float:
        return self.ci.ratio

    @property
    def low(self) -> float:
        return self.ci.low

    @property
    def high(self) -> float:
        return self.ci.high

    @property
    def n_resamples(self) -> int:
        return self.ci.n_resamples


class _Evaluator:
    """Everything shared by the models of one evaluation, built once."""

    def __init__(
        self,
        split: Split,
        *,
        k: int,
        discovery: bool,
        recall_ks: Sequence[int],
        catalog: pl.DataFrame | None,
        interaction_config: InteractionConfig | None,
        truth: Truth | None,
        catalog_size: int | None,
        item_popularity: npt.ArrayLike | None,
    ) -> None:
        if k < 1:
            raise EvaluationError(f"k must be a positive integer; got {k}")
        self.split = split
        self.k = k
        self.discovery = discovery
        self.recall_ks = tuple(recall_ks)
        self.width = max(k, *self.recall_ks) if self.recall_ks else k
        self.interactions = Interactions.from_events(
            split.train, catalog=catalog, config=interaction_config
        )
        self.items = self.interactions.items
        self.truth = truth if truth is not None else test_truth(split, discovery=discovery)
        if len(self.truth) == 0:
            raise EvaluationError(ERR_NO_CUSTOMERS)
        self.customer_ids = self.truth.customer_ids
        self.relevance = self.truth.relevance(self.items)
        self.exclude = (
            train_history(split, self.items, self.customer_ids) if discovery else None
        )
        self.catalog_size = int(catalog_size) if catalog_size is not None else len(self.items)
        if item_popularity is None:
            self.popularity = training_popularity(split.train, self.items)
        else:
            self.popularity = np.asarray(item_popularity, dtype=np.float64)
            if len(self.popularity) != len(self.items):
                raise EvaluationError(
                    f"item_popularity has {len(self.popularity)} entries but the training "
                    f"vocabulary has {len(self.items)} items; align it with the vocabulary "
                    "(or leave it out to count distinct training customers)"
                )

    def run(self, name: str, spec: ModelSpec) -> ModelResult:
        model = _instantiate(name, spec)
        start = time.perf_counter()
        model.fit(self.interactions)
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        recs = model.recommend(list(self.customer_ids), self.width, exclude=self.exclude)
        recommend_seconds = time.perf_counter() - start
        recs = self._check_recs(name, recs)
        per_customer = ranking_metrics(recs, self.relevance, k=self.k, recall_ks=self.recall_ks)
        metrics: dict[str, float] = {key: float(v.mean()) for key, v in per_customer.items()}
        metrics["coverage"] = coverage(recs, self.catalog_size, k=self.k)
        metrics["mean_popularity"] = mean_popularity(recs, self.popularity, k=self.k)
        metrics["train_seconds"] = train_seconds
        metrics["customers"] = float(len(self.customer_ids))
        return ModelResult(
            name=name,
            metrics=metrics,
            per_customer=per_customer,
            recommendations=recs,
            train_seconds=train_seconds,
            recommend_seconds=recommend_seconds,
        )

    def _check_recs(self, name: str, recs: npt.ArrayLike) -> IntArray:
        arr = np.asarray(recs)
        n = len(self.customer_ids)
        if arr.ndim != 2 or arr.shape[0] != n:
            raise EvaluationError(
                f"model '{name}' returned recommendations of shape {arr.shape}; expected "
                f"({n}, {self.width}): one row per customer asked for"
            )
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise EvaluationError(f"model '{name}' returned {arr.dtype} recommendations; expected item indices")
        arr = arr.astype(np.int64)[:, : self.width]
        if arr.shape[1] < self.width:
            pad = np.full((n, self.width - arr.shape[1]), -1, dtype=np.int64)
            arr = np.concatenate([arr, pad], axis=1)
        if arr.size and (arr.min() < -1 or arr.max() >= len(self.items)):
            raise EvaluationError(
                f"model '{name}' returned item indices outside [-1, {len(self.items) - 1}]; "
                "recommend indices of the vocabulary of the interactions it was fit on"
            )
        if self.exclude is not None:
            for row, customer in enumerate(self.customer_ids):
                banned = self.exclude[customer]
                if len(banned) and np.isin(arr[row], banned).any():
                    raise EvaluationError(
                        f"model '{name}' recommended an excluded (already seen) item to "
                        f"customer '{customer}'; honour the exclude argument"
                    )
        return arr


def evaluate_models(
    split: Split,
    models: Mapping[str, ModelSpec],
    *,
    k: int = 10,
    discovery: bool = True,
    catalog_size: int | None = None,
    item_popularity: npt.ArrayLike | None = None,
    catalog: pl.DataFrame | None = None,
    interaction_config: InteractionConfig | None = None,
    truth: Truth | None = None,
    recall_ks: Sequence[int] = (20,),
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Fit each model on ``split.train`` and score its top ``k`` on ``split.test``.

    ``models`` maps a name to a :class:`Recommender` or a zero-argument factory
    of one (factories keep unfitted models out of the caller's hands). Every
    model sees the same interactions (built from ``split.train`` with
    ``catalog`` and ``interaction_config``), is asked for the top
    ``max(k, *recall_ks)`` of every evaluated customer and, with
    ``discovery``, must not return items the customer had in training.

    ``truth`` defaults to ``test_truth(split, discovery=discovery)``.
    ``catalog_size`` (for coverage) defaults to the vocabulary size;
    ``item_popularity`` (aligned with the vocabulary) defaults to distinct
    training customers per item. ``progress`` receives one line per step.
    Raises ``ValueError`` when no customer can be evaluated or a model breaks
    the :class:`Recommender` contract.
    """
    say = progress or (lambda _msg: None)
    ev = _Evaluator(
        split,
        k=k,
        discovery=discovery,
        recall_ks=recall_ks,
        catalog=catalog,
        interaction_config=interaction_config,
        truth=truth,
        catalog_size=catalog_size,
        item_popularity=item_popularity,
    )
    results: dict[str, ModelResult] = {}
    for name, spec in models.items():
        say(f"fitting and scoring {name} on {len(ev.customer_ids)} customers")
        results[name] = ev.run(name, spec)
        m = results[name].metrics
        say(f"{name}: ndcg@{k}={m[f'ndcg@{k}']:.4f} ({m['train_seconds']:.1f}s to fit)")
    return EvaluationResult(
        k=k,
        discovery=discovery,
        customer_ids=ev.customer_ids,
        items=ev.items,
        truth=ev.truth,
        models=results,
        split=split.describe(),
        catalog_size=ev.catalog_size,
    )


def compare(
    result: EvaluationResult,
    model: str = "clearshelf",
    *,
    baseline: str | None = None,
    metric: str = "ndcg",
    n_resamples: int = 1000,
    seed: int = 42,
    alpha: float = 0.05,
) -> Comparison:
    """``model`` against ``baseline`` (default: the best other model by ``metric``).

    The ratio is ``mean(model) / mean(baseline)`` of the per-customer metric,
    with a paired bootstrap percentile interval over customers.
    """
    key = result.metric_key(metric)
    if model not in result.models:
        raise EvaluationError(f"model '{model}' was not evaluated; evaluated: {list(result.models)}")
    other = baseline or result.best(key, exclude=(model,))
    if other not in result.models:
        raise EvaluationError(f"baseline '{other}' was not evaluated; evaluated: {list(result.models)}")
    ci = paired_ratio_ci(
        result.models[model].per_customer[key],
        result.models[other].per_customer[key],
        n_resamples=n_resamples,
        seed=seed,
        alpha=alpha,
    )
    return Comparison(model=model, baseline=other, metric=key, ci=ci)


def training_popularity(train: pl.DataFrame, items: IdVocabulary) -> FloatArray:
    """Distinct training customers per item of ``items``, shape (items,), float64."""
    counts = train.group_by("item_id").agg(pl.col("customer_id").n_unique().alias("n"))
    idx = items.indices(counts["item_id"].to_list())
    out = np.zeros(len(items), dtype=np.float64)
    keep = idx >= 0
    out[idx[keep]] = counts["n"].to_numpy()[keep]
    return out


# --- tuning -------------------------------------------------------------------

Edge = Literal["low", "high"]


@dataclass(frozen=True)
class Trial:
    """One tried configuration and its validation metrics."""

    params: Mapping[str, Any]
    metrics: Mapping[str, float]


@dataclass(frozen=True, eq=False)
class TuningResult:
    """The chosen ``params`` (best ``metric`` on validation) and every trial.

    ``at_edge`` names each numeric parameter whose chosen value is the lowest
    or highest of its grid: the optimum may lie outside, so widen that grid.
    """

    params: Mapping[str, Any]
    score: float
    metric: str
    trials: tuple[Trial, ...]
    at_edge: Mapping[str, Edge]
    grid: Mapping[str, tuple[Any, ...]]
    validation: Mapping[str, Any] = field(default_factory=dict)

    def table(self) -> pl.DataFrame:
        """One row per trial: the parameters, then the metrics; best first."""
        rows = []
        for t in self.trials:
            row: dict[str, Any] = {p: _plain(v) for p, v in t.params.items()}
            row.update(t.metrics)
            rows.append(row)
        frame = pl.DataFrame(rows, strict=False, infer_schema_length=None)
        return frame.sort(self.metric, descending=True, maintain_order=True)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary for the report."""
        return {
            "params": {p: _plain(v) for p, v in self.params.items()},
            "metric": self.metric,
            "score": self.score,
            "at_edge": dict(self.at_edge),
            "grid": {p: [_plain(v) for v in vs] for p, vs in self.grid.items()},
            "trials": [
                {"params": {p: _plain(v) for p, v in t.params.items()}, **dict(t.metrics)}
                for t in self.trials
            ],
            "validation": dict(self.validation),
        }


def tune(
    factory: Callable[..., Recommender],
    grid: Mapping[str, Sequence[Any]],
    split: Split,
    *,
    k: int = 10,
    metric: str = "ndcg",
    discovery: bool = True,
    strategy: Literal["grid", "coordinate"] = "grid",
    max_rounds: int = 3,
    fixed: Mapping[str, Any] | None = None,
    limits: Mapping[str, tuple[float | None, float | None]] | None = None,
    max_customers: int | None = None,
    seed: int = 42,
    test_fraction: float | None = None,
    catalog: pl.DataFrame | None = None,
    interaction_config: InteractionConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> TuningResult:
    """Pick ``factory``'s parameters by validation ``metric`` on a split carved from ``split.train``.

    ``factory(**params)`` builds an unfitted model for one point of ``grid``
    (parameter name -> values to try). ``strategy="grid"`` tries every
    combination; ``"coordinate"`` starts from each grid's middle value and
    sweeps one parameter at a time, keeping the best, until a round changes
    nothing (at most ``max_rounds``): far fewer fits when a grid has several
    parameters. ``split.test`` is never looked at. Ties go to the first
    configuration tried. ``fixed`` parameters go to every trial unchanged
    and are included in the chosen ``params``. ``limits`` are hard bounds
    that do not count as grid edges (see :func:`grid_edges`). With
    ``max_customers`` only a seeded sample of that many validation customers
    is scored (the same sample for every trial): asking every retriever for
    every customer's top items is often slower than fitting it.
    """
    if not grid:
        raise EvaluationError("grid is empty; give at least one parameter with values to try")
    for name, values in grid.items():
        if len(values) == 0:
            raise EvaluationError(f"grid for '{name}' has no values; give at least one")
    constant = dict(fixed or {})
    both = sorted(set(constant) & set(grid))
    if both:
        raise EvaluationError(f"parameters {both} are both fixed and in the grid; keep each in one place")
    say = progress or (lambda _msg: None)
    val = validation_split(split, test_fraction=test_fraction)
    truth = test_truth(val, discovery=discovery)
    if max_customers is not None:
        truth = truth.sample(max_customers, seed=seed)
    ev = _Evaluator(
        val,
        k=k,
        discovery=discovery,
        recall_ks=(),
        catalog=catalog,
        interaction_config=interaction_config,
        truth=truth,
        catalog_size=None,
        item_popularity=None,
    )
    key = metric if "@" in metric else f"{metric}@{k}"
    names = list(grid)
    grids = {n: tuple(grid[n]) for n in names}
    tried: dict[tuple[Any, ...], Trial] = {}

    def trial(params: dict[str, Any]) -> Trial:
        cache_key = tuple(repr(params[n]) for n in names)
        if cache_key not in tried:
            say(f"trying {_describe(params)}")
            full = {**params, **constant}
            r = ev.run(_describe(params), lambda: factory(**full))
            tried[cache_key] = Trial(params=full, metrics=dict(r.metrics))
            say(f"  {key}={r.metrics[key]:.4f}")
        return tried[cache_key]

    if strategy == "grid":
        for combo in itertools.product(*(grids[n] for n in names)):
            trial(dict(zip(names, combo, strict=True)))
    elif strategy == "coordinate":
        current = {n: grids[n][len(grids[n]) // 2] for n in names}
        for _ in range(max_rounds):
            before = dict(current)
            for n in names:
                scored = [trial({**current, n: v}) for v in grids[n]]
                winner = max(scored, key=lambda t: t.metrics[key])
                current = {p: winner.params[p] for p in names}
            if current == before:
                break
    else:
        raise EvaluationError(f"unknown strategy '{strategy}'; choose 'grid' or 'coordinate'")

    trials = tuple(tried.values())
    best = max(trials, key=lambda t: t.metrics[key])
    return TuningResult(
        params=dict(best.params),
        score=best.metrics[key],
        metric=key,
        trials=trials,
        at_edge=grid_edges(best.params, grids, limits=limits),
        grid=grids,
        validation={**val.describe(), "customers": len(ev.customer_ids)},
    )


def grid_edges(
    params: Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]],
    *,
    limits: Mapping[str, tuple[float | None, float | None]] | None = None,
) -> dict[str, Edge]:
    """Which chosen numeric values sit at the low or high end of their grid.

    Only numbers count (not bools, strings or None); a grid with fewer than
    two distinct numbers has no edge. ``limits`` gives a parameter's hard
    bounds (``(low, high)``, None for open): a value at its bound is not an
    edge, since the grid cannot be widened past it (e.g. shrinkage 0).
    """
    out: dict[str, Edge] = {}
    for name, values in grid.items():
        numbers = sorted({v for v in values if _is_number(v)})
        chosen = params.get(name)
        if len(numbers) < 2 or not _is_number(chosen):
            continue
        low, high = (limits or {}).get(name, (None, None))
        if chosen == numbers[0] and (low is None or chosen > low):
            out[name] = "low"
        elif chosen == numbers[-1] and (high is None or chosen < high):
            out[name] = "high"
    return out


def _instantiate(name: str, spec: ModelSpec) -> Recommender:
    # a class is a factory too, even though its attributes look like a Recommender's
    is_instance = isinstance(spec, Recommender) and not isinstance(spec, type)
    model = spec if is_instance else spec() if callable(spec) else None
    if not isinstance(model, Recommender) or isinstance(model, type):
        raise TypeError(ERR_BAD_MODEL.format(name=name, type=type(model if model is not None else spec).__name__))
    return model


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _plain(v: Any) -> Any:
    """A JSON-friendly version of a parameter value."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, tuple):
        return list(v)
    return v


def _describe(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())
