"""Shared by the in-process latency benchmarks: the model they time and the latency summary.

Imported by the scripts in this folder as ``from _timing import ...`` (they
are run as ``python benchmarks/<name>.py``, which puts this folder on the path);
importing it first sets one BLAS thread and offline model loading.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# before numpy and the model libraries load: one BLAS thread (implicit's ALS), no model downloads
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from recsys.data.demo import DemoConfig, generate_demo
from recsys.evaluation.job import dataset_hierarchy
from recsys.evaluation.splits import normalise_events
from recsys.interactions import Interactions
from recsys.recommender import Recommender, RecommenderConfig


def write_result(result: dict[str, Any], out: Path) -> None:
    """Write a benchmark's result as JSON to ``out`` (parents created) and print it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def percentiles(ms: Sequence[float] | np.ndarray, *, digits: int | None = None) -> dict[str, float]:
    """p50, p99 and mean of latencies in milliseconds, rounded to ``digits`` when given."""
    a = np.asarray(ms)
    out = {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}
    return out if digits is None else {k: round(v, digits) for k, v in out.items()}


@dataclass(frozen=True)
class FittedWorld:
    model: Recommender
    interactions: Interactions
    name: str
    train_seconds: float


def fit_world(dataset: str | None, path: Path | None, *, cache_dir: Path, content: bool = True) -> FittedWorld:
    """clearshelf trained on ``dataset`` (loaded from ``path``), or on the demo world when ``dataset`` is None.

    ``content=False`` leaves out the text-embedding source; otherwise its
    embeddings are cached under ``cache_dir``.
    """
    if dataset:
        from recsys.data.datasets import load_dataset

        ds = load_dataset(dataset, path)
        events, catalog, name = ds.events, ds.items, dataset
    else:
        demo = generate_demo(DemoConfig())
        events, catalog, name = demo.events, demo.items, "demo"
    level2, level3 = dataset_hierarchy(name)
    config = RecommenderConfig(level2_column=level2, level3_column=level3)
    if content:
        config = replace(config, content=replace(config.content, cache_dir=str(cache_dir)))  # type: ignore[arg-type]
    else:
        config = replace(config, content=None)
    inter = Interactions.from_events(normalise_events(events), catalog=catalog)
    started = time.perf_counter()
    model = Recommender(config).fit(inter)
    return FittedWorld(model, inter, name, time.perf_counter() - started)


def add_world_arguments(ap: Any) -> None:
    """The options of a benchmark that trains a world or loads a clearshelf home's active model."""
    ap.add_argument("--dataset", choices=["completejourney", "movielens-100k"])
    ap.add_argument("--path", type=Path)
    ap.add_argument("--home", type=Path, help="a clearshelf home: time its active model instead of training")
    ap.add_argument("--customers", type=int, default=300)
    ap.add_argument("--cache-dir", type=Path, default=Path(".clearshelf/embeddings"))


def world_from_arguments(args: Any) -> tuple[Recommender, Interactions, str]:
    """(model, interactions, name): the active model of ``args.home``, else trained as :func:`fit_world`."""
    if args.home:
        import sys

        from recsys.bundle import ModelRegistry

        registry = ModelRegistry(args.home / "models")
        version = registry.active_version()
        if version is None:
            sys.exit(f"{args.home} has no active model: run `clearshelf train` first")
        model, _ = registry.load(version)
        return model, model.stage_.interactions, f"home:{version}"
    world = fit_world(args.dataset, args.path, cache_dir=args.cache_dir)
    return world.model, world.interactions, world.name


def known_sample(inter: Interactions, n: int, seed: int = 42) -> list[str]:
    """A seeded sample of at most ``n`` customers with a history."""
    rng = np.random.default_rng(seed)
    known = inter.customers.ids[np.diff(inter.matrix.indptr) > 0]
    return [str(c) for c in rng.choice(known, min(n, len(known)), replace=False).tolist()]


def timed(call: Any) -> tuple[Any, float]:
    """``call()``'s result and the seconds it took (a build or a compilation, timed once)."""
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def interleaved(
    baseline: Any, candidate: Any, rows: Any, repeats: int, baseline_ms: list[float], candidate_ms: list[float]
) -> tuple[Any, Any]:
    """Time ``baseline(rows)`` then ``candidate(rows)``, ``repeats`` times in turn (machine noise hits
    both alike), appending milliseconds to the two lists; returns the last outputs of each."""
    theirs = ours = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        theirs = baseline(rows)
        t1 = time.perf_counter()
        ours = candidate(rows)
        t2 = time.perf_counter()
        baseline_ms.append((t1 - t0) * 1000)
        candidate_ms.append((t2 - t1) * 1000)
    return theirs, ours
