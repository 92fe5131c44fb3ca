"""Benchmark: import 1.5 M events into a fresh SQLite store.

Measures the real path a user runs (`import_files`: read CSV, validate every
row, pseudonymise, write in one transaction) and, as a baseline in the same
run, a bare `sqlite3.executemany` of the same rows into the same schema with
no validation (the floor any importer pays). Reports medians over repeats and
the ratio. Writes JSON.

    python benchmarks/import_events.py --events 1500000 --repeats 3 \
        --out benchmarks/results/import.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from recsys.data.importer import import_files
from recsys.data.pseudonym import Pseudonymiser
from recsys.data.store import Store


def make_files(directory: Path, n_events: int, seed: int = 42) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    n_customers, n_items = max(n_events // 600, 10), max(n_events // 150, 10)
    items = pl.DataFrame(
        {
            "item_id": [f"P{i:06d}" for i in range(n_items)],
            "title": [f"Product {i}" for i in range(n_items)],
            "category": [f"cat{i % 40}" for i in range(n_items)],
            "price": np.round(rng.gamma(2.0, 2.0, n_items), 2),
        }
    )
    customers = pl.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in range(n_customers)],
            "age_band": rng.choice(["18-24", "25-34", "35-44", "45-54", "55+"], n_customers),
        }
    )
    start = 1_704_067_200
    events = pl.DataFrame(
        {
            "event_id": [f"E{i:09d}" for i in range(n_events)],
            "customer_id": [f"C{c:06d}" for c in rng.integers(0, n_customers, n_events)],
            "item_id": [f"P{i:06d}" for i in rng.zipf(1.3, n_events) % n_items],
            "event_type": rng.choice(["purchase", "view", "cart"], n_events, p=[0.6, 0.3, 0.1]),
            "timestamp": start + rng.integers(0, 180 * 86_400, n_events),
            "value": rng.integers(1, 4, n_events).astype(float),
        }
    )
    paths = {}
    for name, frame in (("items", items), ("customers", customers), ("events", events)):
        paths[name] = directory / f"{name}.csv"
        frame.write_csv(paths[name])
    return paths


def run_clearshelf(paths: dict[str, Path], db: Path) -> float:
    store = Store.open(f"sqlite:///{db}")
    started = time.perf_counter()
    report = import_files(store, Pseudonymiser(b"k" * 32), **paths, sensitive=["age_band"])
    elapsed = time.perf_counter() - started
    assert store.counts()["events"] == report.events_inserted
    store.dispose()
    return elapsed


def run_baseline(paths: dict[str, Path], db: Path) -> float:
    """Same schema, same rows, no validation: read with polars, executemany tuples."""
    store = Store.open(f"sqlite:///{db}")
    store.dispose()
    started = time.perf_counter()
    ev = pl.read_csv(paths["events"])
    con = sqlite3.connect(db)
    con.execute("PRAGMA foreign_keys=OFF")
    con.executemany(
        "INSERT INTO events (event_id, customer_key, item_id, event_type, ts, value) VALUES (?,?,?,?,?,?)",
        ev.select("event_id", "customer_id", "item_id", "event_type", "timestamp", "value").iter_rows(),
    )
    con.commit()
    con.close()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_500_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/import.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        paths = make_files(tmpdir, args.events)
        ours, base = [], []
        for r in range(args.repeats):
            ours.append(run_clearshelf(paths, tmpdir / f"ours{r}.db"))
            base.append(run_baseline(paths, tmpdir / f"base{r}.db"))
            print(f"repeat {r + 1}: clearshelf {ours[-1]:.1f} s, bare executemany {base[-1]:.1f} s", flush=True)
    result = {
        "benchmark": "import_events_sqlite",
        "events": args.events,
        "repeats": args.repeats,
        "clearshelf_seconds": ours,
        "baseline_seconds": base,
        "clearshelf_median_s": statistics.median(ours),
        "baseline_median_s": statistics.median(base),
        "ratio_median": statistics.median(ours) / statistics.median(base),
        "events_per_second_median": args.events / statistics.median(ours),
        "target_s": 60,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "command": f"python benchmarks/import_events.py --events {args.events} --repeats {args.repeats} --out {args.out}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("clearshelf_median_s", "baseline_median_s", "ratio_median")}, indent=2))


if __name__ == "__main__":
    main()
