"""The training job: store snapshot -> interactions -> fitted recommender -> bundle."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from recsys.bundle import BundleInfo, ModelRegistry
from recsys.data.store import Store
from recsys.interactions import InteractionConfig, Interactions
from recsys.recommender import Progress, Recommender, RecommenderConfig

# Builds extra bundle files (name -> bytes) from the fitted model and its
# training data, e.g. the explanations' SHAP summary plot; recsys never
# imports who provides it.
ExtraFiles = Callable[[Recommender, Interactions], dict[str, bytes]]


def flatten_catalog(items: pl.DataFrame) -> pl.DataFrame:
    """Items from the store with their ``attributes`` dicts spread into columns (text)."""
    if "attributes" not in items.columns:
        return items
    attrs = items["attributes"].to_list()
    keys = sorted({k for a in attrs for k in (a or {})} - set(items.columns))
    extra = pl.DataFrame(
        {k: [None if a is None or a.get(k) is None else str(a.get(k)) for a in attrs] for k in keys},
        schema={k: pl.Utf8 for k in keys},
    )
    return pl.concat([items.drop("attributes"), extra], how="horizontal")


def interactions_from_store(store: Store, config: InteractionConfig | None = None) -> Interactions:
    """Consenting customers' events over the whole catalog (pseudonyms as customer ids).

    Customers without personalisation consent leave training: their events
    are not read.
    """
    events = store.events_frame(consented_only=True).rename({"customer_key": "customer_id"})
    catalog = flatten_catalog(store.items_frame())
    return Interactions.from_events(events, catalog=catalog, config=config)


def train_from_store(
    store: Store,
    home: Path,
    *,
    config: RecommenderConfig | None = None,
    keep: int = 5,
    progress: Progress | None = None,
    extra_files: ExtraFiles | None = None,
) -> BundleInfo:
    """Train on everything in the store, write a bundle under ``home/models`` and activate it.

    ``extra_files(model, interactions)`` adds files to the bundle (listed
    and checksummed in its manifest like the rest).
    """
    started = time.perf_counter()
    config = config or RecommenderConfig()
    if config.content is not None and config.content.cache_dir is None:
        config = replace(config, content=replace(config.content, cache_dir=str(Path(home) / "embeddings")))
    inter = interactions_from_store(store, config.interactions)
    if inter.events.height == 0:
        from recsys.errors import ClearshelfError

        raise ClearshelfError("the store holds no events to train on: import data or run `clearshelf demo` first")
    model = Recommender(config).fit(inter, progress=progress)
    model.precompute_candidates(config.precomputed_customers, progress=progress)
    return save_bundle(model, inter, Path(home) / "models", started=started, keep=keep, extra_files=extra_files)


def save_bundle(
    model: Recommender,
    inter: Interactions,
    models_dir: Path,
    *,
    started: float,
    keep: int = 5,
    extra_metrics: dict[str, Any] | None = None,
    extra_files: dict[str, bytes] | ExtraFiles | None = None,
) -> BundleInfo:
    """Write ``model`` as a new active bundle; ``extra_files`` is a dict or an :data:`ExtraFiles` callable."""
    registry = ModelRegistry(models_dir)
    train_seconds = round(time.perf_counter() - started, 2)
    extra_seconds = 0.0
    if callable(extra_files):
        extra_started = time.perf_counter()
        extra_files = extra_files(model, inter)
        extra_seconds = round(time.perf_counter() - extra_started, 2)
    fingerprint = inter.fingerprint()
    stage = model.stage_
    data = {
        "events": inter.events.height,
        "customers": len(inter.customers),
        "items": len(inter.items),
        "nonzero_pairs": int(inter.matrix.nnz),
        "fingerprint": fingerprint,
        "first_ts": inter.events["ts"].min(),
        "last_ts": inter.now,
    }
    metrics = {
        "train_seconds": train_seconds,
        "extra_files_seconds": extra_seconds,
        "ranker_training_rows": model.training_rows_,
        "ranker_training_customers": model.training_groups_,
        "retriever_fit_seconds": {k: round(v, 2) for k, v in stage.fit_seconds.items()},
        "feature_importance_gain": {k: round(v, 3) for k, v in model.ranker_.importance().items()},
        **_precomputed_metrics(model),
        **(extra_metrics or {}),
    }
    return registry.save(
        model,
        version=registry.new_version(fingerprint),
        data=data,
        config=model.config,
        metrics=metrics,
        extra_files=extra_files,
        keep=keep,
    )


def _precomputed_metrics(model: Recommender) -> dict[str, Any]:
    pre = model.precomputed
    if pre is None:
        return {"precomputed_customers": 0, "precomputed_mb": 0.0, "precomputed_seconds": 0.0}
    return {"precomputed_customers": len(pre.slots), "precomputed_mb": round(pre.nbytes / 2**20, 1),
            "precomputed_seconds": round(pre.seconds, 2)}
