"""The evaluation job: dataset frames -> split -> tuned baselines + clearshelf -> results.

Used by ``clearshelf evaluate``; pure apart from the files it is told to write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import polars as pl

from recsys.evaluation.baselines import BASELINE_NAMES, baseline_models, tune_baselines
from recsys.evaluation.models import ClearshelfModel
from recsys.evaluation.report import export_result_recs, write_results
from recsys.evaluation.runner import EvaluationResult, compare, evaluate_models, tune
from recsys.evaluation.splits import Split, SplitConfig, make_split, normalise_events
from recsys.recommender import RecommenderConfig

# called with (clearshelf's fitted Recommender, the split, the result)
AfterFit = Callable[[Any, Split, EvaluationResult], dict[str, Any]]


@dataclass(frozen=True)
class EvaluationJob:
    """What to evaluate and how. ``tune=False`` uses each baseline's default grid centre."""

    dataset: str
    split: Literal["temporal", "random"] = "temporal"
    test_fraction: float = 0.2
    seed: int = 42
    k: int = 10
    discovery: bool = True
    baselines: tuple[str, ...] = tuple(BASELINE_NAMES)
    tune: bool = True
    tuning_customers: int | None = 1000
    config: RecommenderConfig = field(default_factory=RecommenderConfig)
    # with tuning: also choose on validation whether clearshelf's ALS, EASE and
    # co-purchase sources keep their defaults or take the baselines' tuned settings
    choose_sources: bool = True


def run_evaluation(
    job: EvaluationJob,
    events: pl.DataFrame,
    catalog: pl.DataFrame,
    *,
    out: Path | None = None,
    export_dir: Path | None = None,
    say: Callable[[str], None] | None = None,
    after_fit: AfterFit | None = None,
) -> tuple[EvaluationResult, dict[str, Any]]:
    """Split, tune the baselines on a validation part of train, fit all, score on test.

    ``after_fit(model, split, result)``, if given, runs once every model is
    scored, with clearshelf's fitted :class:`~recsys.recommender.Recommender`;
    its dict goes into the results JSON under ``"explanations"`` (the
    explanations' faithfulness check; recsys does not import who provides it).
    """
    say = say or (lambda _m: None)
    ev = normalise_events(events)
    split = make_split(ev, SplitConfig(kind=job.split, test_fraction=job.test_fraction, seed=job.seed))
    say(f"split: {split.train.height:,} train events, {split.test.height:,} test events")
    tuning = {}
    params: dict[str, dict[str, Any]] = {}
    if job.tune:
        tuning = tune_baselines(
            split, names=job.baselines, k=job.k, discovery=job.discovery, seed=job.seed,
            catalog=catalog, max_customers=job.tuning_customers, progress=say,
        )
        params = {n: dict(t.params) for n, t in tuning.items()}
    else:
        params = {n: {} for n in job.baselines}
    mode: Literal["repeats", "discovery"] = "discovery" if job.discovery else "repeats"
    config = replace(job.config, mode=mode, seed=job.seed)
    if job.split == "random" and config.label_split == "auto":
        # the ranker's labels are held out the way the test is: at random, not the last weeks
        config = replace(config, label_split="random")
    if job.tune and job.choose_sources:
        # which sources serve the ranker best is data-dependent (Complete Journey:
        # the defaults; MovieLens: the tuned ones): decided on validation, never test
        candidates = {"default": config, "tuned": tuned_sources(config, params)}
        say("choosing clearshelf's source settings on the validation split")
        choice = tune(
            lambda sources: ClearshelfModel(candidates[sources]), {"sources": list(candidates)}, split,
            k=job.k, discovery=job.discovery, seed=job.seed, catalog=catalog,
            max_customers=job.tuning_customers, progress=say,
        )
        config = candidates[choice.params["sources"]]
        tuning = {**tuning, "clearshelf_sources": choice}
    fitted: list[ClearshelfModel] = []

    def clearshelf() -> ClearshelfModel:
        fitted.append(ClearshelfModel(config))
        return fitted[-1]

    models: dict[str, Any] = {"clearshelf": clearshelf}
    models.update(baseline_models(params, seed=job.seed))
    result = evaluate_models(
        split, models, k=job.k, discovery=job.discovery, catalog=catalog, progress=say,
    )
    comparison = compare(result, "clearshelf")
    extra: dict[str, Any] = {"tuned": job.tune, "baseline_params": params}
    if after_fit is not None:
        extra["explanations"] = after_fit(fitted[-1].model_, split, result)
    if out is not None:
        write_results(
            result, out, dataset=job.dataset, split=split, k=job.k, seed=job.seed,
            comparison=comparison, tuning=tuning or None, extra=extra,
        )
    if export_dir is not None:
        export_result_recs(result, export_dir)
    return result, {
        "comparison": comparison, "tuning": tuning, "params": params, "explanations": extra.get("explanations"),
    }


SOURCE_PARAMS: dict[str, tuple[str, tuple[str, ...]]] = {
    # baseline -> (clearshelf config field, the tuned parameters it takes over)
    "als": ("als", ("factors", "regularization", "alpha", "scaling")),
    "ease": ("ease", ("l2",)),
    "itemknn": ("copurchase", ("similarity", "neighbours", "shrinkage")),
}


def tuned_sources(config: RecommenderConfig, params: dict[str, dict[str, Any]]) -> RecommenderConfig:
    """``config`` with its ALS, EASE and co-purchase sources set to the baselines' tuned parameters.

    EASE keeps clearshelf's item cap. Baselines missing from ``params`` leave
    their source as it is.
    """
    changes: dict[str, Any] = {}
    for baseline, (field_name, keys) in SOURCE_PARAMS.items():
        current = getattr(config, field_name)
        chosen = {k: v for k, v in params.get(baseline, {}).items() if k in keys}
        if current is not None and chosen:
            changes[field_name] = replace(current, **chosen)
    return replace(config, **changes)


def dataset_hierarchy(name: str) -> tuple[str | None, str | None]:
    """Catalog columns of the deeper product hierarchy of a known dataset."""
    return {"completejourney": ("department", "product_type")}.get(name, (None, None))


def baseline_names(value: Sequence[str] | None) -> tuple[str, ...]:
    names = tuple(value) if value else tuple(BASELINE_NAMES)
    unknown = [n for n in names if n not in BASELINE_NAMES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {', '.join(BASELINE_NAMES)}")
    return names


def load_data_dir(directory: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(events, catalog) from a generic dataset directory, validated like an import.

    Reads ``items`` and ``events`` (``.csv`` or ``.parquet``); customers come
    from ``customers.*`` when present, else from the events. Raises
    :class:`~recsys.errors.DataValidationError` listing every problem.
    """
    import json

    from recsys.data.validate import read_table, validate_events, validate_items
    from recsys.errors import DataValidationError, InputFileError

    def find(stem: str, required: bool) -> Path | None:
        for suffix in (".parquet", ".csv"):
            p = Path(directory) / f"{stem}{suffix}"
            if p.exists():
                return p
        if required:
            raise InputFileError(f"{directory} has no {stem}.csv or {stem}.parquet: --data-dir needs items and events")
        return None

    items_path, events_path = find("items", True), find("events", True)
    customers_path = find("customers", False)
    items, p1, n1 = validate_items(read_table(items_path, kind="items"))  # type: ignore[arg-type]
    events_table = read_table(events_path, kind="events")  # type: ignore[arg-type]
    if customers_path is not None:
        customers = read_table(customers_path, kind="customers").frame["customer_id"].cast(pl.Utf8)
    else:
        customers = events_table.frame["customer_id"].cast(pl.Utf8).str.strip_chars()
    events, p2, n2 = validate_events(
        events_table, item_ids=items["item_id"].drop_nulls() if items.height else [], customer_keys=customers.drop_nulls()
    )
    if p1 or p2:
        raise DataValidationError(p1 + p2, total=n1 + n2)
    attrs = [json.loads(a) for a in items["attributes"].to_list()]
    keys = sorted({k for a in attrs for k in a} - set(items.columns))
    extra = pl.DataFrame({k: [a.get(k) for a in attrs] for k in keys}, schema={k: pl.Utf8 for k in keys})
    catalog = pl.concat([items.drop("attributes"), extra], how="horizontal")
    return events.drop("customer_key"), catalog
