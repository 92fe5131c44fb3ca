"""Shared by the in-process latency benchmarks: the model they time and the latency summary.

Imported by the scripts in this folder as ``from _timing import ...`` (they
are run as ``python benchmarks/<name>.py``, which puts this folder on the path).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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
