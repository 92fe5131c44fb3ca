"""Summary of an explanation A/B (``benchmarks/ab_explain.sh``): per benchmark, each round's figures
for the base and the new code, and their medians over the rounds. Writes JSON and prints a table.

    python benchmarks/ab_summary.py OUTDIR/r1 OUTDIR/r2 OUTDIR/r3 --out benchmarks/results/ab_TAG_summary.json

Each round directory holds ``<benchmark>.<base|new>.json`` as the runner writes them. The
figures: recommend() p50, explain p50, their ratio (the target is <= 2), and the explain p99
(explain_latency: recommend + explain p99), how many removals each list re-scored, and the
outcome of the check (how many history-citing reasons were shown, the share that passes the
whole-pool audit, the share of items whose reason cites history), which must not move between
base and new when a change only makes the same work cheaper.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

BENCHMARKS = ("el_demo", "ef_ml", "ef_cj")


def figures(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """The compared figures of one benchmark JSON."""
    if name == "el_demo":
        check = data["serving_check"]
        return {
            "recommend_p50_ms": data["recommend_baseline"]["p50_ms"],
            "explain_p50_ms": data["explain"]["p50_ms"],
            "ratio": data["ratio_p50_explain_to_recommend"],
            "p99_ms": data["recommend_plus_explain"]["p99_ms"],
            "rescored_per_list": check["rescored_per_list"],
            "history_citing_share": check["history_citing_share"],
            "max_additivity_error": data["max_additivity_error"],
        }
    run = data["serving_time_counterfactual"][0]
    return {
        "recommend_p50_ms": run["recommend_p50_ms"],
        "explain_p50_ms": run["explain_with_check_p50_ms"],
        "ratio": run["ratio_p50_explain_with_check_to_recommend"],
        "p99_ms": run["explain_with_check_p99_ms"],
        "rescored_per_list": run["rescored_per_list"],
        "history_citing_share": run["history_citing_share"],
        "checked": run["checked"],
        "faithfulness_rate": run["faithfulness_rate"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rounds", nargs="+", type=Path, help="round directories, in order")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    result: dict[str, Any] = {"rounds": [str(r) for r in args.rounds], "benchmarks": {}}
    for name in BENCHMARKS:
        per_round = []
        for r in args.rounds:
            pair = {}
            for side in ("base", "new"):
                path = r / f"{name}.{side}.json"
                if path.exists():
                    data = json.loads(path.read_text())
                    pair[side] = figures(name, data) | {"command": data.get("command")}
            if len(pair) == 2:
                per_round.append(pair)
        if not per_round:
            continue
        medians = {
            side: {
                key: statistics.median(p[side][key] for p in per_round)
                for key in ("recommend_p50_ms", "explain_p50_ms", "ratio", "p99_ms")
            }
            for side in ("base", "new")
        }
        result["benchmarks"][name] = {"rounds": per_round, "median_over_rounds": medians}
        print(f"{name}: ratio per round (base -> new): " + ", ".join(
            f"{p['base']['ratio']:.2f} -> {p['new']['ratio']:.2f}" for p in per_round
        ))
        for side in ("base", "new"):
            m = medians[side]
            print(f"  {side:4s} median: recommend {m['recommend_p50_ms']:.2f} ms, explain {m['explain_p50_ms']:.2f} ms, "
                  f"ratio {m['ratio']:.2f}, p99 {m['p99_ms']:.2f} ms")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
