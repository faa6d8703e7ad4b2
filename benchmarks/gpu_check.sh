#!/usr/bin/env bash
# Prove the GPU path in one run of at most 8 minutes on one H100/H200: ours vs HF GPT-2 at ~150M
# (eager, compiled, MFU), packing K = 1/4/8/16 trials on the GPU, bf16-on-GPU vs fp32-on-CPU
# fidelity of the example trial, then (time allowing) an lr x width sweep and a coordinate check.
# Sections and budget: benchmarks/gpu_check.py. Build the carry folder first, here:
#   bash benchmarks/prepare_gpu_carry.sh          (.gpu_carry/: wheels for pydantic, mup, pandas, pytest; ~4 MB per corpus)
# then, on the GPU machine, from the repository root (the carry folder travels with the tree):
#   bash benchmarks/gpu_check.sh                  (report: $OUT/gpu_check.md when OUT is set, and stdout)
#   DEVICE=cpu bash benchmarks/gpu_check.sh       (tiny CPU mode: the same code paths, a couple of minutes)
# Environment: PYTHON (default python3), CARRY (.gpu_carry), WHEELS ($CARRY/wheels), DATA (../shared/data,
# else $CARRY/data), BUDGET_S (420: sections that would not fit are skipped), OUT, TINY_COMPILE=1 (cpu mode).
# The GPU machine has torch, transformers, numpy and yaml but not pydantic or mup: the carried wheels
# are installed into a scratch folder on PYTHONPATH, only where the interpreter lacks them.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null && command -v python >/dev/null; then
  PY=python  # the interpreter that has torch
fi
CARRY=${CARRY:-.gpu_carry}
WHEELS=${WHEELS:-$CARRY/wheels}
SITE=${SITE:-${TMPDIR:-/tmp}/automix-gpu-site}

install() {  # install() FOLDER MODULE...: the folder's wheels, if any of the modules is missing
  local folder=$1; shift
  if ! "$PY" -c "import $(IFS=,; echo "$*")" 2>/dev/null && compgen -G "$folder/*.whl" >/dev/null; then
    echo "installing $(ls "$folder" | wc -l) wheels from $folder into $SITE"
    if ! "$PY" -m pip install --quiet --no-index --no-deps --target "$SITE" "$folder"/*.whl; then
      for whl in "$folder"/*.whl; do  # no pip: a wheel is a zip laid out as site-packages
        "$PY" -m zipfile -e "$whl" "$SITE"
      done
    fi
  fi
}
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
install "$WHEELS" pydantic mup
install "${WHEELS}-pandas" pandas
install "${WHEELS}-pytest" pytest

DATA=${DATA:-../shared/data}
if [[ ! -f "$DATA/ar/valid.txt" && -f "$CARRY/data/ar/valid.txt" ]]; then
  DATA=$CARRY/data
fi
args=(--device "${DEVICE:-cuda}" --data "$DATA" --budget-s "${BUDGET_S:-420}" --start "$START")
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  args+=(--out "$OUT/gpu_check.md")
fi
if [[ -n "${TINY_COMPILE:-}" ]]; then
  args+=(--tiny-compile)
fi
exec "$PY" -W ignore benchmarks/gpu_check.py "${args[@]}"
