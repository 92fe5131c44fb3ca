"""Where a served request's time goes: the same bundle in-process, no network.

Loads the active bundle of `--home` through the app factory (as `clearshelf
serve` does), then for a seeded sample of Complete Journey households times,
one request at a time: `Recommender.recommend` (k=10), the same with
`explainable=False` (what `explain=false` calls: the bundle's precomputed
candidates where it has them), recommend +
`Explainer.explain`, and the whole route through the ASGI test client with
`explain=false|true`; the baseline in the same run is `GET /healthz` through the
same client. The route runs with the result cache on: the first request for
each customer is a miss (computed), and `route_explain_true_cached` repeats
the explained requests, all hits. Also a cProfile of the recommends and one of
the explained route on misses (cumulative seconds of the top functions).
Also what the catalogue-wide scans of a recommend() read from memory, against
this machine's memory read speed measured in the same run (`memory_traffic`),
and where a recommend() spends its time, each step timed inside real calls
(`recommend_steps`).
Writes JSON.

    python benchmarks/load_inprocess.py --home /tmp/cj-home \
        --out benchmarks/results/load_inprocess_completejourney.json

`--home` is the directory `benchmarks/load_serve.py --home` prepared (store + model).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PSEUDONYM_KEY = "load-benchmark-pseudonym-key-0123456789"  # the one load_serve.py uses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "completejourney")
    ap.add_argument("--customers", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "load_inprocess_completejourney.json")
    args = ap.parse_args()

    import polars as pl
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    settings = Settings(home=args.home, pseudonym_key=PSEUDONYM_KEY, audit_time="", rate_limit_per_second=0,
                        log_level="warning")
    ids = pl.read_parquet(args.data / "transactions.parquet", columns=["household_id"])["household_id"]
    rng = random.Random(args.seed)
    customers = [str(x) for x in rng.sample(sorted(ids.unique().to_list()), args.customers)]
    app = create_app(settings)
    out: dict[str, Any] = {"benchmark": "load_inprocess", "loadavg_at_start": os.getloadavg(),
                           "customers": len(customers), "note": "2 shared cores; other jobs running"}
    with TestClient(app) as client:
        state = app.state.serving
        model, explainer = state.current.model, state.current.explainer
        keys = [state.pseudonymise(c) for c in customers]
        for k in keys[:30]:  # warm lazy caches
            model.recommend(k, 10)

        def timed(fn: Any, items: list[Any]) -> dict[str, float]:
            ms = []
            for x in items:
                t = time.perf_counter()
                fn(x)
                ms.append((time.perf_counter() - t) * 1000)
            a = np.asarray(ms)
            return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
                    "mean_ms": round(float(a.mean()), 3)}

        out["healthz_route"] = timed(lambda _: client.get("/healthz"), keys)
        out["recommend"] = timed(lambda k: model.recommend(k, 10), keys)
        # what the route calls for explain=false: the precomputed candidates when the bundle has them
        pre = model.precomputed
        out["precomputed_customers"] = 0 if pre is None else sum(k in pre.slots for k in keys)
        out["recommend_unexplained"] = timed(lambda k: model.recommend(k, 10, explainable=False), keys)
        out["recommend_and_explain"] = timed(lambda k: explainer.explain(model.recommend(k, 10)), keys)
        out["route_explain_false"] = timed(
            lambda c: client.get("/recommendations", params={"customer_id": c, "explain": "false"}), customers)
        out["route_explain_true"] = timed(
            lambda c: client.get("/recommendations", params={"customer_id": c}), customers)
        out["route_explain_true_cached"] = timed(
            lambda c: client.get("/recommendations", params={"customer_id": c}), customers)
        prof = cProfile.Profile()
        prof.enable()
        for k in keys[:100]:
            model.recommend(k, 10)
        prof.disable()
        stats = pstats.Stats(prof)
        total = sum(v[3] for k, v in stats.stats.items() if k[2] == "recommend")  # type: ignore[attr-defined]
        rows = sorted(((v[3], f"{Path(k[0]).name}:{k[1]}({k[2]})") for k, v in stats.stats.items()),  # type: ignore[attr-defined]
                      reverse=True)[:25]
        out["profile_100_recommends"] = {"recommend_cumulative_s": round(total, 3),
                                         "top_cumulative_s": [[name, round(s, 4)] for s, name in rows]}
        del rows
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(15)
        print(buf.getvalue())
        # what the explained route runs in the thread pool on a miss (recommend, explain,
        # shaping and serialising the answer); the HTTP stack around it is not in this profile
        from api.routers.recommendations import _answer
        from recsys.recommender import Filters

        loaded = state.current
        prof = cProfile.Profile()
        prof.enable()
        for k in keys[:100]:
            _answer(loaded, k, 10, Filters(), explain=True, personalise=True, policy=None, thresholds_version=None)
        prof.disable()
        out["profile_100_route_answers_explain_true"] = _top(prof, 40)
        # what returning a dict through response_model cost per explained answer (FastAPI
        # validates it into the model, dumps it in JSON mode, then json.dumps it), against
        # json.dumps alone, which the route does now
        from pydantic import TypeAdapter

        from api.routers.recommendations import RecommendationsOut

        adapter = TypeAdapter(RecommendationsOut)
        payloads = [
            json.loads(b'{"request_id":"x",' + _answer(loaded, k, 10, Filters(), explain=True, personalise=True,
                                                      policy=None, thresholds_version=None).body)
            for k in keys[:100]
        ]
        dumps = lambda d: json.dumps(d, ensure_ascii=False, allow_nan=False, separators=(",", ":"))  # noqa: E731
        out["serialise_explained_answer_via_response_model"] = timed(
            lambda d: dumps(adapter.dump_python(adapter.validate_python(d), mode="json")), payloads)
        out["serialise_explained_answer_json_dumps"] = timed(dumps, payloads)
        out["explained_answer_bytes_mean"] = round(sum(len(dumps(d)) for d in payloads) / len(payloads))
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(30)
        print(buf.getvalue())
        out["memory_traffic"] = memory_traffic(model, keys)
        out["recommend_steps"] = recommend_steps(model, keys)
    out["loadavg_at_end"] = os.getloadavg()
    print(json.dumps({k: v for k, v in out.items() if k != "profile_100_recommends"}, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"results written to {args.out}")


def recommend_steps(model: Any, keys: list[str]) -> dict[str, Any]:
    """Where a recommend() spends its time, timed inside real calls (so with the caches as the other
    steps leave them, unlike a step timed alone in a loop): each step's function is wrapped with a
    clock for the run, then restored. Per step the median over the customers of its time in one
    recommend() (ms), the median total, and the median of what no wrapped step accounts for (the
    candidate merge, ranks, filters, the list's items). ``selections`` are the EASE and
    co-purchase top-k picks (:func:`recsys.recommender._top`)."""
    import recsys.recommender as rec
    from recsys.ranking.ranker import LambdaRanker

    steps = {
        "history": (rec.Stage, "history"),
        "als_scan": (rec.Stage, "als_top"),
        "ease_rows": (rec, "_ease_modelled_scores"),
        "copurchase_gather": (rec, "gather_links"),
        "selections": (rec, "_top"),
        "content_profile": (rec, "_content_profile_scores"),
        "content_pool": (rec.ContentPool, "top"),
        "content_scores_of_candidates": (rec._ProfileScores, "__call__"),
        "features": (rec, "build_features"),
        "ranker": (LambdaRanker, "predict"),
    }
    spent: dict[str, float] = {}

    def clocked(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    originals = {name: owner.__dict__[attr] for name, (owner, attr) in steps.items()}
    per_step: dict[str, list[float]] = {name: [] for name in steps}
    totals, rest = [], []
    try:
        for name, (owner, attr) in steps.items():
            setattr(owner, attr, clocked(name, originals[name]))
        for k in keys:
            spent.clear()
            t = time.perf_counter()
            model.recommend(k, 10)
            total = time.perf_counter() - t
            totals.append(total)
            rest.append(total - sum(spent.values()))
            for name in steps:
                per_step[name].append(spent.get(name, 0.0))
    finally:
        for name, (owner, attr) in steps.items():
            setattr(owner, attr, originals[name])
    ms = lambda v: round(float(np.median(v)) * 1000, 3)  # noqa: E731
    return {"median_ms": {name: ms(v) for name, v in per_step.items()}, "rest_median_ms": ms(rest),
            "recommend_median_ms": ms(totals), "customers": len(keys)}


def memory_traffic(model: Any, keys: list[str]) -> dict[str, Any]:
    """What a recommend() must read from memory for its catalogue-wide scans, against how fast this
    machine reads memory (a float32 dot product over 256 MB, the baseline in the same run).

    EASE adds one weight row (all modelled items, float32) per modelled history item; the content
    source screens every distinct pool vector in its reduced space; ALS scans item factors in order
    of decreasing norm until a bound stops it, so its whole factor matrix is an upper bound. These
    matrices are far larger than the caches, so the scans run at memory speed.
    """
    stage = model.stage_
    r = stage.retrievers
    per_request: dict[str, Any] = {}
    if "ease" in r:
        ease = r["ease"]
        rows = [len(ease._history(stage.history(k).row)[0]) for k in keys if stage.history(k) is not None]
        row_bytes = ease.weights_.shape[1] * ease.weights_.itemsize
        per_request["ease_rows_median"] = float(np.median(rows))
        per_request["ease_mb_median"] = round(float(np.median(rows)) * row_bytes / 1e6, 2)
    if "content" in r and stage.content_pool is not None:
        pool = stage.pool_index()
        screened = pool.reduced if pool.reduced is not None else pool.vectors
        per_request["content_screen_mb"] = round(screened.nbytes / 1e6, 2)
    if "als" in r:
        per_request["als_factors_mb_upper_bound"] = round(stage.als_norm_index()[1].nbytes / 1e6, 2)
    big = np.ones(64 * 2**20, np.float32)  # 256 MB
    seconds = []
    for _ in range(7):
        t = time.perf_counter()
        float(np.dot(big, big))
        seconds.append(time.perf_counter() - t)
    gbps = big.nbytes / float(np.median(seconds)) / 1e9
    floor_ms = sum(v for k, v in per_request.items() if k in ("ease_mb_median", "content_screen_mb")) / gbps
    return {"per_request": per_request, "read_gb_per_s_median_of_7": round(gbps, 2),
            "ease_and_content_scan_floor_ms": round(floor_ms, 3)}


def _top(prof: cProfile.Profile, n: int) -> dict[str, Any]:
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    name = lambda k: f"{Path(k[0]).name}:{k[1]}({k[2]})"  # noqa: E731
    return {
        "top_cumulative_s": [[name(k), round(v[3], 4)] for k, v in sorted(stats.items(), key=lambda kv: -kv[1][3])[:n]],
        "top_own_s": [[name(k), round(v[2], 4)] for k, v in sorted(stats.items(), key=lambda kv: -kv[1][2])[:n]],
    }


if __name__ == "__main__":
    main()
