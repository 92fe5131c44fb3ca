#!/usr/bin/env bash
# A/B of the explanation benchmarks: two commits, each from a frozen copy (git archive), every
# benchmark run for the base then the new code back to back, one at a time (flock), ROUNDS times.
#
#   bash benchmarks/ab_explain.sh BASE NEW [ROUNDS] [OUTDIR]
#   python benchmarks/ab_summary.py OUTDIR
#
# Per round r and benchmark b it writes OUTDIR/r<r>/<b>.<base|new>.json (and .log):
#   el_demo  benchmarks/explain_latency.py on the demo world (latency lists, default filters)
#   ef_ml    benchmarks/explain_faithfulness.py --budgets 8 on MovieLens 100K's evaluation lists
#   ef_cj    the same on Complete Journey's, without the text source
# WHAT="el_demo ef_ml" runs a subset. The datasets are read from CLEARSHELF_SHARED_DATA
# (default ../shared/data); text embeddings are cached in OUTDIR/../emb.
set -u
BASE=${1:?usage: ab_explain.sh BASE NEW [ROUNDS] [OUTDIR]}
NEW=${2:?usage: ab_explain.sh BASE NEW [ROUNDS] [OUTDIR]}
ROUNDS=${3:-3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${4:-/tmp/clearshelf/ab/$(date +%Y%m%dT%H%M%S)}
DATA=$(cd "${CLEARSHELF_SHARED_DATA:-$REPO/../shared/data}" && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
LOCK=${LOCK:-/tmp/clearshelf/cpu.lock}
export OPENBLAS_NUM_THREADS=1 HF_HUB_OFFLINE=1
mkdir -p "$OUT/base" "$OUT/new" "$OUT/../emb" "$(dirname "$LOCK")"
EMB=$(cd "$OUT/../emb" && pwd)
git -C "$REPO" archive "$BASE" | tar -x -C "$OUT/base"
git -C "$REPO" archive "$NEW" | tar -x -C "$OUT/new"
{ git -C "$REPO" rev-parse --short "$BASE"; git -C "$REPO" rev-parse --short "$NEW"; } > "$OUT/commits"

run() {  # round name snapshot args...
  local round=$1 name=$2 snap=$3
  shift 3
  mkdir -p "$OUT/r$round"
  (cd "$OUT/$snap" && PYTHONPATH="$OUT/$snap" flock "$LOCK" "$PY" "$@" --out "$OUT/r$round/$name.$snap.json" \
    > "$OUT/r$round/$name.$snap.log" 2>&1)
  echo "$(date +%T) round $round $name $snap: exit $?"
}

for round in $(seq 1 "$ROUNDS"); do
  for what in ${WHAT:-el_demo ef_ml ef_cj}; do
    for snap in base new; do
      case $what in
        el_demo) run "$round" el_demo $snap benchmarks/explain_latency.py --cache-dir="$EMB" ;;
        ef_ml) run "$round" ef_ml $snap benchmarks/explain_faithfulness.py --cache-dir="$EMB" \
          --dataset movielens-100k --path "$DATA/ml-100k" --shares 0 --budgets 8 ;;
        ef_cj) run "$round" ef_cj $snap benchmarks/explain_faithfulness.py --cache-dir="$EMB" \
          --dataset completejourney --path "$DATA/completejourney" --no-content --shares 0 --budgets 8 ;;
      esac
    done
  done
done
