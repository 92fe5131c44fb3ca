#!/usr/bin/env bash
# Create (or reuse) .venv, install clearshelf with its test tools, run the whole suite:
# the default tests, then the slow ones that read the real datasets in ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev,datasets]'
export OPENBLAS_NUM_THREADS=1 HF_HUB_OFFLINE=1
.venv/bin/python -m pytest "$@"
.venv/bin/python -m pytest -m slow "$@"
