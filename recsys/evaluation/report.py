"""The side-by-side report: a JSON results file, a console table, Parquet exports.

This is the I/O edge of the evaluation package: everything here writes or
prints what :mod:`recsys.evaluation.runner` computed. Files are written to a
temporary name and moved into place, so a failed write leaves no half file.

Results JSON (``schema_version`` 1)::

    {
      "schema_version": 1,
      "dataset": "completejourney",
      "split": "temporal",            # the split kind
      "split_details": {"cutoff": ..., "train_events": ..., "test_events": ...},
      "k": 10,
      "test_fraction": 0.2,
      "seed": 42,                     # the run's seed (split, models, bootstrap)
      "discovery": true,
      "customers_evaluated": 2412,
      "models": {"ease": {"ndcg@10": ..., "recall@10": ..., "recall@20": ...,
                          "hr@10": ..., "map@10": ..., "precision@10": ...,
                          "coverage": ..., "mean_popularity": ...,
                          "train_seconds": ..., "customers": ...}, ...},
      "comparison": {"model": "clearshelf", "baseline": "ease", "metric": "ndcg@10",
                     "ndcg_ratio": 1.12, "ci_low": 1.05, "ci_high": 1.19,
                     "n_resamples": 1000, "alpha": 0.05} | null,
      "tuning": {"ease": {"params": {...}, "at_edge": {...}, "trials": [...]}, ...},
      ...extra keys
    }

Non-finite numbers are written as ``null`` (JSON has no NaN).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from recsys.errors import EvaluationError
from recsys.evaluation.runner import Comparison, EvaluationResult, TuningResult, compare
from recsys.evaluation.splits import Split, Truth
from recsys.interactions import IdVocabulary

SCHEMA_VERSION = 1
RESERVED_KEYS = frozenset(
    {
        "schema_version",
        "dataset",
        "split",
        "split_details",
        "k",
        "test_fraction",
        "seed",
        "discovery",
        "customers_evaluated",
        "models",
        "comparison",
        "tuning",
    }
)


def results_document(
    result: EvaluationResult,
    *,
    dataset: str,
    split: Split | str | None = None,
    seed: int = 42,
    comparison: Comparison | None = None,
    tuning: Mapping[str, TuningResult] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The results JSON as a dict (see the module docstring for the schema).

    ``split`` (a :class:`Split`) defaults to the split description stored in
    ``result``; a string only renames the split kind (e.g. ``"temporal-2017"``).
    ``comparison`` is written as given; :func:`write_results` computes it.
    ``extra`` adds top-level keys; it may not replace one of the schema's.
    """
    details = dict(split.describe() if isinstance(split, Split) else result.split)
    if isinstance(split, str):
        details["kind"] = split
    clash = sorted(RESERVED_KEYS & set(extra or {}))
    if clash:
        raise EvaluationError(f"extra may not replace report keys {clash}; rename them")
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "dataset": dataset,
        "split": details.get("kind"),
        "split_details": {k: v for k, v in details.items() if k not in ("kind", "test_fraction", "seed")},
        "k": result.k,
        "test_fraction": details.get("test_fraction"),
        "seed": seed,
        "discovery": result.discovery,
        "customers_evaluated": len(result.customer_ids),
        "models": {
            name: {**r.metrics, "customers": int(r.metrics["customers"])}
            for name, r in result.models.items()
        },
        "comparison": _comparison_json(comparison),
        "tuning": {name: t.to_json() for name, t in (tuning or {}).items()},
    }
    doc.update(extra or {})
    return _finite(doc)


def write_results(
    result: EvaluationResult,
    path: Path | str,
    *,
    dataset: str,
    split: Split | str | None = None,
    k: int | None = None,
    extra: Mapping[str, Any] | None = None,
    seed: int = 42,
    model: str = "clearshelf",
    comparison: Comparison | None = None,
    tuning: Mapping[str, TuningResult] | None = None,
    n_resamples: int = 1000,
) -> Path:
    """Write the results JSON to ``path`` and return it.

    Unless ``comparison`` is given, ``model`` is compared with the best other
    model by NDCG@k (paired bootstrap, ``n_resamples``, ``seed``) when it was
    evaluated alongside at least one other model; otherwise ``comparison`` is
    null. ``k``, if given, must equal the result's.
    """
    if k is not None and k != result.k:
        raise EvaluationError(f"k={k} but the result was evaluated at k={result.k}; pass the same k")
    if comparison is None and model in result.models and len(result.models) > 1:
        comparison = compare(result, model, n_resamples=n_resamples, seed=seed)
    doc = results_document(
        result, dataset=dataset, split=split, seed=seed, comparison=comparison, tuning=tuning, extra=extra
    )
    text = json.dumps(doc, indent=2, allow_nan=False, default=_json_default) + "\n"
    return _atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_results(path: Path | str) -> dict[str, Any]:
    """Read a results JSON back, checking its schema version."""
    doc: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise EvaluationError(
            f"{path} has schema_version {doc.get('schema_version')!r}; this clearshelf reads "
            f"version {SCHEMA_VERSION}: re-run the evaluation"
        )
    return doc


def results_table(result: EvaluationResult, *, comparison: Comparison | None = None) -> Any:
    """A ``rich`` table of the result: one row per metric, one column per model.

    The best model on each metric is in bold (highest, except lowest for
    ``mean_popularity`` and ``train_seconds``).
    """
    from rich.table import Table

    names = list(result.models)
    keys = [k for k in (next(iter(result.models.values())).metrics if names else []) if k != "customers"]
    lower_is_better = {"mean_popularity", "train_seconds"}
    title = f"Top-{result.k} results on {len(result.customer_ids)} customers"
    caption = None
    if comparison is not None:
        level = round(100 * (1 - comparison.ci.alpha))
        caption = (
            f"{comparison.model} / {comparison.baseline} on {comparison.metric}: "
            f"{comparison.ratio:.3f}, {level}% CI [{comparison.low:.3f}, {comparison.high:.3f}]"
        )
    table = Table(title=title, caption=caption)
    table.add_column("metric", style="bold", no_wrap=True)
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)
    for key in keys:
        values = {n: result.models[n].metrics[key] for n in names}
        finite = [v for v in values.values() if math.isfinite(v)]
        best = (min(finite) if key in lower_is_better else max(finite)) if finite else None
        cells = []
        for n in names:
            text = _fmt(key, values[n])
            cells.append(f"[bold]{text}[/bold]" if len(names) > 1 and values[n] == best else text)
        table.add_row(key, *cells)
    return table


def print_results(
    result: EvaluationResult, *, comparison: Comparison | None = None, console: Any | None = None
) -> None:
    """Print :func:`results_table` to ``console`` (a ``rich.console.Console``; default stdout)."""
    from rich.console import Console

    (console or Console()).print(results_table(result, comparison=comparison))


def export_recs(
    directory: Path | str,
    recommendations: Mapping[str, npt.ArrayLike],
    truth: Truth,
    customer_ids: Sequence[str],
    items: IdVocabulary | Sequence[str],
) -> tuple[Path, Path]:
    """Write ``recommendations.parquet`` and ``test.parquet`` into ``directory``.

    ``recommendations`` maps a model name to item indices, shape
    (len(customer_ids), width), -1 padded; ``items`` maps an index to the
    dataset's own item id. ``recommendations.parquet`` has ``customer_id,
    model, rank`` (1-based) ``, item_id``; ``test.parquet`` has
    ``customer_id, item_id`` (the relevant held-out pairs of ``truth``).
    Returns both paths.
    """
    ids = np.asarray(items.to_list() if isinstance(items, IdVocabulary) else list(items), dtype=object)
    customers = np.asarray(list(customer_ids), dtype=object)
    frames = []
    for model, recs in recommendations.items():
        arr = np.asarray(recs, dtype=np.int64)
        if arr.ndim != 2 or arr.shape[0] != len(customers):
            raise EvaluationError(
                f"recommendations of '{model}' have shape {arr.shape}; expected one row per "
                f"customer ({len(customers)} rows)"
            )
        if arr.size and arr.max() >= len(ids):
            raise EvaluationError(f"recommendations of '{model}' name item {int(arr.max())}, outside the vocabulary")
        rows, cols = np.nonzero(arr >= 0)
        frames.append(
            pl.DataFrame(
                {
                    "customer_id": customers[rows].tolist(),
                    "model": [model] * len(rows),
                    "rank": (cols + 1).astype(np.int32),
                    "item_id": ids[arr[rows, cols]].tolist(),
                },
                schema={"customer_id": pl.Utf8, "model": pl.Utf8, "rank": pl.Int32, "item_id": pl.Utf8},
            )
        )
    recs_frame = (
        pl.concat(frames)
        if frames
        else pl.DataFrame(schema={"customer_id": pl.Utf8, "model": pl.Utf8, "rank": pl.Int32, "item_id": pl.Utf8})
    )
    test_frame = truth.pairs.select(pl.col("customer_id").cast(pl.Utf8), pl.col("item_id").cast(pl.Utf8))
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    recs_path = _atomic_write(out / "recommendations.parquet", recs_frame.write_parquet)
    test_path = _atomic_write(out / "test.parquet", test_frame.write_parquet)
    return recs_path, test_path


def export_result_recs(result: EvaluationResult, directory: Path | str) -> tuple[Path, Path]:
    """:func:`export_recs` of every model's top-k in ``result``."""
    return export_recs(
        directory,
        {name: r.recommendations[:, : result.k] for name, r in result.models.items()},
        result.truth,
        result.customer_ids,
        result.items,
    )


def _comparison_json(c: Comparison | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "model": c.model,
        "baseline": c.baseline,
        "metric": c.metric,
        f"{c.metric.split('@')[0]}_ratio": c.ratio,
        "ci_low": c.low,
        "ci_high": c.high,
        "n_resamples": c.n_resamples,
        "alpha": c.ci.alpha,
    }


def _fmt(key: str, v: float) -> str:
    if not math.isfinite(v):
        return "-"
    if key == "train_seconds":
        return f"{v:.1f}"
    if key == "mean_popularity":
        return f"{v:.1f}"
    return f"{v:.4f}"


def _finite(obj: Any) -> Any:
    """``obj`` with NaN/inf floats replaced by None and numpy scalars made plain."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to the results JSON; pass plain values in extra")


def _atomic_write(path: Path, write: Any) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
