"""Load benchmark: `clearshelf serve --workers 2` on Complete Journey, driven over loopback.

The whole sequence runs once per result-cache mode (`--cache both`: a server
with the per-worker result cache on, then a fresh server with it off,
`CLEARSHELF_RESULT_CACHE=false`; the store and model are the same). Phases,
each against the same running server:

1. baseline: `wrk` on GET /healthz (the HTTP stack alone: uvicorn + uvloop +
   httptools + our middleware), the floor the recommendation figures are read against;
2. fixed rate: an open-loop asyncio/httpx client (below) at `--rate` requests/s
   with explain=true: latency is measured from each request's *scheduled* time, so a
   stalled server cannot hide its queueing (no coordinated omission). It runs
   first, so with the cache on it starts from an empty cache;
3. saturated: `wrk` on GET /recommendations with explain=true, then explain=false,
   `--duration` seconds each: throughput, p50/p99 (wrk's --latency), non-2xx,
   memory per worker and how many connections (and requests) each worker served;
   then `--cold-duration` seconds on the cold-start ids alone (the API's default
   explain=true: popular items with their reasons, what every first visit gets);
4. fixed rate again (`fixed_rate_explain_true_after`): with the cache on, a cache
   the saturated phases filled;
5. soak: the same fixed-rate client for `--soak` seconds, memory sampled every 10 s.

Every phase records the result cache's hits and misses (from /metrics, summed
over the workers) so the hit rate behind each figure is in the JSON.

Customers: every Complete Journey household (`--customers 0`, the default; or
a seeded sample of that many) plus 10% ids the store never saw (cold start).
Each request draws its customer uniformly at random from that set (seeded; wrk
draws per thread), so the repeat rate, and with it the cache's hit rate, is
what uniform traffic over the whole customer base gives, not a replay of one
id. `--events-rate R` also posts R purchase events a second for random known
customers during every phase (each one invalidates that customer's cached
answers). The load generator runs in other processes on the same machine
(loopback only).

    python benchmarks/load_serve.py --data ../shared/data/completejourney \
        --out benchmarks/results/load_serve_completejourney.json

`--home DIR` keeps the loaded store and the trained model between runs (the
first run loads the dataset and trains, several minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLEARSHELF = str(Path(sys.executable).parent / "clearshelf")
PSEUDONYM_KEY = "load-benchmark-pseudonym-key-0123456789"


def code_version() -> dict[str, Any]:
    """Which code served: the git commit of ROOT and whether the tree had changes, or, for a
    snapshot made with `git archive` (no .git), the commit its COMMIT file names."""
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if git.returncode == 0:
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return {"root": str(ROOT), "commit": git.stdout.strip(), "dirty": bool(dirty)}
    marker = ROOT / "COMMIT"
    return {"root": str(ROOT), "commit": marker.read_text().strip() if marker.exists() else None,
            "snapshot": True}


def sh(cmd: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, env=env, check=True, text=True, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    try:
        out = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(p) for p in out]


def connections_per_pid(port: int) -> dict[int, int]:
    """Established server-side connections on ``port`` by owning process (from `ss`)."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    counts: Counter[int] = Counter()
    for line in out.splitlines():
        for pid in set(re.findall(r"pid=(\d+)", line)):
            counts[int(pid)] += 1
    return dict(counts)


# -- preparing the store and the model -----------------------------------------------


def prepare(home: Path, data: Path, env: dict[str, str], *, content: bool) -> dict[str, Any]:
    if (home / "models" / "ACTIVE").exists():
        print(f"reusing the store and model in {home}")
        return {"reused": True}
    started = time.perf_counter()
    sh([CLEARSHELF, "load-dataset", "completejourney", "--path", str(data)], env)
    loaded = time.perf_counter()
    cmd = [CLEARSHELF, "train", "--hierarchy", "department,product_type"]
    if not content:
        cmd.append("--no-content")
    sh(cmd, env)
    return {"reused": False, "load_seconds": round(loaded - started, 1),
            "train_seconds": round(time.perf_counter() - loaded, 1)}


def sample_customers(data: Path, n: int, seed: int) -> tuple[list[str], list[str]]:
    """(known household ids, cold-start ids): all households when ``n`` is 0, else a seeded
    sample of ``n``; cold-start ids are a further 10% of the total."""
    import polars as pl

    ids = pl.read_parquet(data / "transactions.parquet", columns=["household_id"])["household_id"]
    known = sorted({str(v) for v in ids.unique().to_list()})
    rng = random.Random(seed)
    chosen = rng.sample(known, n) if 0 < n < len(known) else known
    cold = [f"new-shopper-{i}" for i in range(max(1, len(chosen) // 9))]
    return chosen, cold


def catalog_sample(data: Path, n: int, seed: int) -> list[str]:
    import polars as pl

    ids = pl.read_parquet(data / "transactions.parquet", columns=["product_id"])["product_id"].unique().sort()
    return [str(v) for v in random.Random(seed).sample(ids.to_list(), n)]


# -- the server --------------------------------------------------------------------------


class Server:
    def __init__(self, env: dict[str, str], workers: int, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [CLEARSHELF, "serve", "--port", str(self.port), "--workers", str(workers)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.workers = workers
        self.ready_pids: list[int] = []

    def wait_ready(self, timeout: float = 300) -> list[int]:
        import httpx

        deadline = time.monotonic() + timeout
        pids: set[int] = set()
        while time.monotonic() < deadline and len(pids) < self.workers:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                r = httpx.get(self.base + "/readyz", headers={"Connection": "close"}, timeout=5)
                if r.status_code == 200:
                    pids.add(r.json()["pid"])
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        if len(pids) < self.workers:
            raise SystemExit("workers not ready in time")
        self.ready_pids = sorted(pids)
        return self.ready_pids

    def worker_pids(self) -> list[int]:
        """The serving workers (children of the supervisor that answered /readyz; not helper processes)."""
        kids = set(children(self.proc.pid))
        return sorted(kids & set(self.ready_pids)) if self.ready_pids else sorted(kids)

    def memory(self) -> dict[str, float | None]:
        return {str(p): rss_mb(p) for p in self.worker_pids()}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


# -- wrk ------------------------------------------------------------------------------------


LUA = """
local paths = {%s}
local n = #paths
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  math.randomseed(%d + tid)
end
request = function()
  return wrk.format("GET", paths[math.random(n)])
end
"""

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    res: dict[str, Any] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["requests_per_second"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    res["requests"] = int(m.group(1)) if m else None
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+\w+)", out, re.M)
        res[f"p{pct}_ms"] = round(_ms(m.group(1)), 3) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True)) if m else {}
    return res


def cache_counts(base: str) -> dict[str, float]:
    """The result cache's hits and misses so far, and the bytes it keeps now, summed over the workers."""
    import httpx

    text = httpx.get(base + "/metrics", timeout=30).text
    out = {}
    for name in ("hits", "misses"):
        m = re.search(rf"^clearshelf_recommendation_cache_{name}_total (\S+)$", text, re.M)
        out[name] = float(m.group(1)) if m else 0.0
    out["bytes"] = sum(float(v) for v in re.findall(r"^clearshelf_recommendation_cache_bytes\{[^}]*\} (\S+)$", text, re.M))
    return out


def cache_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    hits, misses = after["hits"] - before["hits"], after["misses"] - before["misses"]
    total = hits + misses
    return {"hits": int(hits), "misses": int(misses), "hit_rate": round(hits / total, 4) if total else None,
            "bytes_kept_after": int(after.get("bytes", 0))}


class EventStream:
    """Posts ``rate`` purchase events a second (one per request) for random known customers
    in a background thread while a phase runs, so cached answers keep being invalidated."""

    def __init__(self, base: str, customers: list[str], items: list[str], *, rate: float, seed: int) -> None:
        self.base, self.customers, self.items, self.rate = base, customers, items, rate
        self.rng = random.Random(seed)
        self.sent: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> EventStream:
        if self.rate > 0:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.base, timeout=30) as client:
            t0, i = time.monotonic(), 0
            while not self._stop.is_set():
                delay = t0 + i / self.rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                event = {"customer_id": self.rng.choice(self.customers), "item_id": self.rng.choice(self.items),
                         "event_type": "purchase"}
                try:
                    r = client.post("/events", json={"events": [event]})
                    self.sent[str(r.status_code)] += 1
                except httpx.HTTPError as exc:
                    self.sent[exc.__class__.__name__] += 1
                i += 1


def run_wrk(server: Server, paths: list[str], *, duration: int, connections: int, threads: int,
            workdir: Path, name: str, seed: int = 0) -> dict[str, Any]:
    script = workdir / f"{name}.lua"
    script.write_text(LUA % (", ".join(json.dumps(p) for p in paths), seed))
    mem_before = server.memory()
    seen: dict[int, int] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(2.0):
            for pid, n in connections_per_pid(server.port).items():
                seen[pid] = max(seen.get(pid, 0), n)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    log_before = _requests_per_pid(server.log_path)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), server.base]
    print("$", " ".join(cmd), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    stop.set()
    watcher.join()
    log_after = _requests_per_pid(server.log_path)
    res = parse_wrk(out)
    workers = server.worker_pids()
    res.update({
        "connections": connections, "threads": threads, "duration_s": duration,
        "memory_mb_before": mem_before, "memory_mb_after": server.memory(),
        "connections_per_worker": {str(p): seen.get(p, 0) for p in workers},
        "requests_per_worker": {str(p): log_after.get(p, 0) - log_before.get(p, 0) for p in workers},
        "wrk_output": out,
    })
    print(json.dumps({k: v for k, v in res.items() if k != "wrk_output"}, indent=1), flush=True)
    return res


def _requests_per_pid(log: Path) -> dict[int, int]:
    counts: Counter[int] = Counter()
    try:
        with log.open() as fh:
            for line in fh:
                if '"msg": "request"' in line:
                    m = re.search(r'"pid": (\d+)', line)
                    if m:
                        counts[int(m.group(1))] += 1
    except OSError:
        pass
    return dict(counts)


# -- the fixed-rate client -------------------------------------------------------------


async def fixed_rate(base: str, paths: list[str], *, rate: float, duration: float, connections: int,
                     server: Server | None = None, sample_every: float = 10.0, seed: int = 0) -> dict[str, Any]:
    """Open loop: request i is due at t0 + i/rate whatever happened before; latency counts from
    the due time. At most ``connections`` requests are in flight; a due request waiting for a free
    slot is late, and that wait is in its latency. Request i's path is a seeded uniform draw."""
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    total = int(rate * duration)
    order = random.Random(seed).choices(range(len(paths)), k=total)
    latencies = np.full(total, np.nan)
    service = np.full(total, np.nan)
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    samples: list[dict[str, Any]] = []
    slots = asyncio.Semaphore(connections)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.5

        async def one(i: int) -> None:
            due = t0 + i / rate
            async with slots:
                sent = loop.time()
                try:
                    r = await client.get(paths[order[i]])
                    statuses[r.status_code] += 1
                except httpx.HTTPError as exc:
                    errors[exc.__class__.__name__] += 1
                    return
                done = loop.time()
            latencies[i] = (done - due) * 1000
            service[i] = (done - sent) * 1000

        async def sampler() -> None:
            while True:
                await asyncio.sleep(sample_every)
                if server is not None:
                    samples.append({"t": round(loop.time() - t0, 1), "memory_mb": server.memory()})

        sampling = asyncio.create_task(sampler())
        tasks = []
        for i in range(total):
            delay = t0 + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        sampling.cancel()
        elapsed = loop.time() - t0
    ok = latencies[np.isfinite(latencies)]
    return {
        "target_rate": rate, "duration_s": duration, "requests": total, "achieved_rate": round(total / elapsed, 1),
        "statuses": {str(k): v for k, v in statuses.items()}, "errors": dict(errors),
        "p50_ms": round(float(np.percentile(ok, 50)), 3) if len(ok) else None,
        "p99_ms": round(float(np.percentile(ok, 99)), 3) if len(ok) else None,
        "max_ms": round(float(ok.max()), 3) if len(ok) else None,
        "service_p50_ms": round(float(np.nanpercentile(service, 50)), 3) if len(ok) else None,
        "service_p99_ms": round(float(np.nanpercentile(service, 99)), 3) if len(ok) else None,
        "memory_samples": samples,
    }


def run_mode(name: str, env: dict[str, str], args: argparse.Namespace, tmp: Path, known: list[str],
             cold: list[str], items: list[str]) -> dict[str, Any]:
    """Every phase against one fresh server started with ``env``."""
    from urllib.parse import quote

    import httpx

    customers = known + cold

    def paths(explain: bool, k: int = 10) -> list[str]:
        flag = "true" if explain else "false"
        return [f"/recommendations?customer_id={quote(c)}&k={k}&explain={flag}" for c in customers]

    def events(seed: int) -> EventStream:
        return EventStream(server.base, known, items, rate=args.events_rate, seed=seed)

    result: dict[str, Any] = {"result_cache": env["CLEARSHELF_RESULT_CACHE"]}
    server = Server(env, args.workers, tmp / f"server-{name}.log")
    try:
        result["worker_pids"] = server.wait_ready()
        # warm every worker (first requests build lazy model caches) with k=9, which the
        # phases never ask for: the result cache holds none of their answers when they start
        for p in random.Random(args.seed).sample(paths(True, k=9), 200):
            httpx.get(server.base + p, headers={"Connection": "close"}, timeout=30)
        result["memory_mb_warm"] = server.memory()
        result["baseline_healthz"] = run_wrk(server, ["/healthz"], duration=args.baseline_duration,
                                             connections=args.connections, threads=args.threads,
                                             workdir=tmp, name=f"{name}-healthz", seed=args.seed)
        print(f"[{name}] fixed rate {args.rate}/s for {args.fixed_duration} s ...", flush=True)
        before = cache_counts(server.base)
        with events(args.seed + 1) as stream:
            result["fixed_rate_explain_true"] = asyncio.run(
                fixed_rate(server.base, paths(True), rate=args.rate, duration=args.fixed_duration, connections=16,
                           server=server, seed=args.seed))
        result["fixed_rate_explain_true"]["cache"] = cache_delta(before, cache_counts(server.base))
        result["fixed_rate_explain_true"]["events_posted"] = dict(stream.sent)
        print(json.dumps({k: v for k, v in result["fixed_rate_explain_true"].items() if k != "memory_samples"}),
              flush=True)
        for explain in (True, False):
            phase = f"saturated_explain_{str(explain).lower()}"
            before = cache_counts(server.base)
            with events(args.seed + 2 + explain) as stream:
                result[phase] = run_wrk(server, paths(explain), duration=args.duration,
                                        connections=args.connections, threads=args.threads, workdir=tmp,
                                        name=f"{name}-{phase}", seed=args.seed)
            result[phase]["cache"] = cache_delta(before, cache_counts(server.base))
            result[phase]["events_posted"] = dict(stream.sent)
            print(f"[{name}] {phase} cache: {result[phase]['cache']}", flush=True)
        # customers the store never saw (and, as ever, no personalisation consent needed): the popular
        # list with its reasons, the path of every first visit
        phase = "saturated_cold_start"
        before = cache_counts(server.base)
        result[phase] = run_wrk(server, [f"/recommendations?customer_id={quote(c)}&k=10" for c in cold],
                                duration=args.cold_duration, connections=args.connections, threads=args.threads,
                                workdir=tmp, name=f"{name}-{phase}", seed=args.seed)
        result[phase]["cache"] = cache_delta(before, cache_counts(server.base))
        print(f"[{name}] {phase}: {result[phase]['requests_per_second']} req/s", flush=True)
        print(f"[{name}] fixed rate again ...", flush=True)
        before = cache_counts(server.base)
        with events(args.seed + 4) as stream:
            result["fixed_rate_explain_true_after"] = asyncio.run(
                fixed_rate(server.base, paths(True), rate=args.rate, duration=args.fixed_duration, connections=16,
                           server=server, seed=args.seed + 4))
        result["fixed_rate_explain_true_after"]["cache"] = cache_delta(before, cache_counts(server.base))
        result["fixed_rate_explain_true_after"]["events_posted"] = dict(stream.sent)
        for explain in (True, False):
            rps = result[f"saturated_explain_{str(explain).lower()}"]["requests_per_second"]
            base = result["baseline_healthz"]["requests_per_second"]
            result[f"ratio_explain_{str(explain).lower()}_to_healthz"] = round(rps / base, 4) if rps and base else None
        if args.soak:
            print(f"[{name}] soak at {args.rate}/s for {args.soak} s ...", flush=True)
            before = cache_counts(server.base)
            with events(args.seed + 5) as stream:
                result["soak_explain_true"] = asyncio.run(
                    fixed_rate(server.base, paths(True), rate=args.rate, duration=args.soak, connections=16,
                               server=server, sample_every=10.0, seed=args.seed + 5))
            result["soak_explain_true"]["cache"] = cache_delta(before, cache_counts(server.base))
            result["soak_explain_true"]["events_posted"] = dict(stream.sent)
            samples = result["soak_explain_true"]["memory_samples"]
            if len(samples) >= 2:
                result["soak_memory_growth_mb"] = {
                    pid: round((samples[-1]["memory_mb"].get(pid) or 0) - (samples[0]["memory_mb"].get(pid) or 0), 1)
                    for pid in samples[0]["memory_mb"]
                }
            print(json.dumps({k: v for k, v in result["soak_explain_true"].items() if k != "memory_samples"}),
                  flush=True)
        metrics = httpx.get(server.base + "/metrics", timeout=30).text
        result["metrics_excerpt"] = [line for line in metrics.splitlines()
                                     if line.startswith(("clearshelf_recommendations_served_total",
                                                         "clearshelf_cold_start_share",
                                                         "clearshelf_explanation_additivity_failures_total",
                                                         "clearshelf_recommendation_cache_",
                                                         "clearshelf_events_ingested_total"))]
    finally:
        server.stop()
        result["model_load_seconds"] = [
            json.loads(line).get("seconds") for line in server.log_path.read_text().splitlines()
            if '"msg": "model loaded"' in line
        ]
    return result


SUMMARY_PHASES = ("saturated_explain_true", "saturated_explain_false", "saturated_cold_start",
                  "fixed_rate_explain_true", "fixed_rate_explain_true_after")


def summary(mode: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for phase in SUMMARY_PHASES:
        r = mode[phase]
        out[phase] = {
            "requests_per_second": r.get("requests_per_second", r.get("achieved_rate")),
            "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
            "non_2xx": r.get("non_2xx", sum(v for k, v in r.get("statuses", {}).items() if not k.startswith("2"))),
            "cache_hit_rate": r["cache"]["hit_rate"],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "completejourney")
    ap.add_argument("--home", type=Path, help="keep the store and model here (default: a temporary directory)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", choices=("both", "on", "off"), default="both",
                    help="run everything with the result cache on, off, or both (one server each)")
    ap.add_argument("--duration", type=int, default=60, help="seconds per saturated setting")
    ap.add_argument("--baseline-duration", type=int, default=20)
    ap.add_argument("--cold-duration", type=int, default=20, help="seconds of the saturated cold-start phase")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--fixed-duration", type=int, default=60)
    ap.add_argument("--soak", type=int, default=600, help="soak seconds at --rate (0 skips)")
    ap.add_argument("--customers", type=int, default=0, help="known households to draw from (0: all of them)")
    ap.add_argument("--events-rate", type=float, default=0.0,
                    help="purchase events posted per second during every phase (0: none)")
    ap.add_argument("--no-content", action="store_true", help="train without the text-embedding source")
    ap.add_argument("--model-threads", type=int, default=None,
                    help="CLEARSHELF_MODEL_THREADS for the server (default: the service's own default)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "load_serve_completejourney.json")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="clearshelf-load-"))
    home = args.home or tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        CLEARSHELF_HOME=str(home), CLEARSHELF_PSEUDONYM_KEY=PSEUDONYM_KEY, OPENBLAS_NUM_THREADS="1",
        HF_HUB_OFFLINE="1", CLEARSHELF_RATE_LIMIT_PER_SECOND="0", CLEARSHELF_AUDIT_TIME="",
        CLEARSHELF_LOG_LEVEL="info",
    )
    env.pop("CLEARSHELF_DATABASE_URL", None)
    if args.model_threads is not None:
        env["CLEARSHELF_MODEL_THREADS"] = str(args.model_threads)
    result: dict[str, Any] = {
        "benchmark": "load_serve", "dataset": "completejourney",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_at_start": os.getloadavg(),
                    "note": "2 cores shared with other jobs; load generator on the same machine"},
        "settings": vars(args) | {"data": str(args.data), "home": str(home), "out": str(args.out)},
        "code": code_version(),
    }
    result["prepare"] = prepare(home, args.data, env, content=not args.no_content)
    known, cold = sample_customers(args.data, args.customers, args.seed)
    result["customers"] = {"known": len(known), "cold_start": len(cold),
                           "draw": "uniform with replacement per request, seeded"}
    items = catalog_sample(args.data, 2000, args.seed) if args.events_rate > 0 else []
    modes = {"both": ("on", "off"), "on": ("on",), "off": ("off",)}[args.cache]
    result["modes"] = {}
    for mode in modes:
        mode_env = env | {"CLEARSHELF_RESULT_CACHE": "true" if mode == "on" else "false"}
        result["modes"][f"cache_{mode}"] = run_mode(f"cache-{mode}", mode_env, args, tmp, known, cold, items)
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    result["summary"] = {m: summary(r) for m, r in result["modes"].items()}
    print(json.dumps(result["summary"], indent=1), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"results written to {args.out}")
    if args.home is None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
