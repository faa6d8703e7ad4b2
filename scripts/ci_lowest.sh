#!/usr/bin/env bash
# CI's lowest-versions job: a second, fresh venv with the LOWEST versions that pyproject.toml's
# ranges allow of the libraries automix calls, then tests in it.
#
# The floors are read from pyproject.toml ("name>=X" becomes "name==X" in a generated constraints
# file), so raising a floor there is all it takes to move this job. torch stays 2.13.0 (the CPU build
# on this machine's disk; the floor torch>=2.11 is checked on a GPU machine, see docs/install.md), and
# mup comes in with --no-deps as in scripts/install.sh. Everything else resolves to its newest
# release that those floors admit.
#
# Tests: the fast tests of the files that touch version-dependent APIs (`fast` below), plus
# test_samplers_run_trials_through_ray_into_storage[botorch]: the fast tests run no BoTorch sampler,
# so without it the ray, botorch and optuna-integration floors would go unchecked (it runs a real
# Tuner with the StudySearcher, the BoTorch sampler and the MLflow callback). Set
# LOWEST_PYTEST_ARGS to run something else instead.
# Usage: ci_lowest.sh. .ci/run runs it beside the main suite: every Ray cluster here and there is
# started with address="local", so the two never join each other's.
# Budget: CI must stay under 15 minutes on 2 cores (docs/install.md has the measured figures).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${AUTOMIX_LOWEST_VENV:-build/venv-lowest}  # build/ is git-ignored
PYTHON=${PYTHON:-python3}
LOWEST=(optuna optuna-integration ray mlflow transformers datasets botorch)
PY="$VENV/bin/python"
start=$(date +%s)

install() {
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
PIP=("$PY" -m pip --disable-pip-version-check)
"$PY" - "${LOWEST[@]}" >"$VENV/lowest.txt" <<'EOF'
import re, sys, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
for name in sys.argv[1:]:
    pattern = rf"{re.escape(name)}(\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)"
    found = [m for d in deps if (m := re.fullmatch(pattern + r"\s*(,.*)?", d.split(";")[0].strip()))]
    if len(found) != 1:
        sys.exit(f"ci_lowest: pyproject.toml has no single '{name}>=X' dependency")
    print(f"{name}=={found[0].group(2)}")
print("torch==2.13.0")
EOF
echo "lowest constraints: $(tr '\n' ' ' <"$VENV/lowest.txt")"
# torch through pip, which finds the CPU build on this machine's disk; the rest through uv, which
# resolves and installs in seconds where pip takes minutes here, and keeps the installed torch
# (it satisfies the torch==2.13.0 constraint).
"${PIP[@]}" install -q torch==2.13.0 uv
"$VENV/bin/uv" pip install -q --python "$PY" -c "$VENV/lowest.txt" -e ".[dev]"
"$VENV/bin/uv" pip install -q --python "$PY" --no-deps mup==1.0.0
"$PY" - "${LOWEST[@]}" torch <<'EOF'
import sys
from importlib.metadata import version
print("installed:", ", ".join(f"{n}=={version(n)}" for n in sys.argv[1:]))
EOF
"$PY" -c "import mup, torch, transformers, datasets, ray.tune, optuna, optuna_integration, botorch, mlflow"
# datasets is only called for hub corpora, which no test reaches (no network): stream a local
# parquet file through the same load_dataset(..., streaming=True) path instead.
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 "$PY" - <<'EOF'
import tempfile
import datasets, pyarrow as pa, pyarrow.parquet as pq
path = f"{tempfile.mkdtemp()}/corpus.parquet"
pq.write_table(pa.table({"text": ["a b", "c d", "e"]}), path)
rows = datasets.load_dataset("parquet", data_files=path, split="train", streaming=True)
assert [r["text"] for r in rows] == ["a b", "c d", "e"]
EOF
if "$PY" -c "import torchvision" 2>/dev/null; then
  echo "ci_lowest: torchvision got installed: something pulled a second torch" >&2
  exit 1
fi
echo "lowest venv installed in $(($(date +%s) - start)) s"
}

# pytest in the lowest venv, in one process (-n 0: it runs beside the main suite), with a basetemp of its
# own per call (pytest makes it, not its parents).
lowest_pytest() {
  local name=$1
  shift
  mkdir -p build/lowest-tmp
  "$PY" -m pytest -q -n 0 -p no:cacheprovider --basetemp="build/lowest-tmp/$name" "$@"
}

# The fast tests that touch the version-dependent APIs (MLflow store, Optuna storage and samplers,
# transformers export, datasets, the trainer), not the whole fast lane: CI must stay under 15 min.
# The one of them that runs a search (so starts Ray) goes with the Ray test.
JOURNAL_SEARCH=tests/study/test_storage.py::test_a_journal_study_goes_through_search_and_report

fast() {
  lowest_pytest fast -m "not slow and not cluster" --deselect "$JOURNAL_SEARCH" tests/tracking/test_tracking.py \
    tests/study/test_storage.py tests/trainer/test_export.py tests/trainer/test_data.py \
    tests/samplers/test_cost_sampler.py tests/samplers/test_robust_sampler.py tests/trainer/test_train.py tests/cli/test_cli.py
}

ray_test() {
  lowest_pytest ray "$JOURNAL_SEARCH" \
    "tests/driver/test_search_objective.py::test_samplers_run_trials_through_ray_into_storage[botorch]"
}

install
status=0
if [ -n "${LOWEST_PYTEST_ARGS:-}" ]; then
  read -r -a args <<<"$LOWEST_PYTEST_ARGS"
  lowest_pytest custom "${args[@]}" || status=$?
else
  fast || status=$?
  ray_test || status=$?
fi
echo "lowest-versions job: $(($(date +%s) - start)) s"
exit "$status"
