#!/usr/bin/env bash
# Run the performance benchmarks one after another and print their tables.
#   bash benchmarks/run_all.sh            (from the repository root; ~35 minutes on 2 cores with the efficiency replay)
# Takes /tmp/automix-cpu.lock for the whole run so that no other heavy job skews the timings.
# The search-efficiency comparison replays an exhaustive grid of real trials; it runs when that grid
# exists (runs/real_grid, 41 minutes to make: the command is in benchmarks/search_efficiency.py).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${AUTOMIX_BENCH_LOCKED:-}" ]]; then
  exec env AUTOMIX_BENCH_LOCKED=1 flock /tmp/automix-cpu.lock bash "$0" "$@"
fi
for bench in throughput pipeline overhead "overhead --cold" parallel; do
  read -r -a cmd <<< "$bench"  # a script name, then its flags
  echo "== benchmarks/${cmd[0]}.py ${cmd[*]:1}"
  .venv/bin/python -W ignore "benchmarks/${cmd[0]}.py" "${cmd[@]:1}"
done
echo "== benchmarks/search_efficiency.py"
if [[ -f runs/real_grid/optuna.db ]]; then
  .venv/bin/python -W ignore benchmarks/search_efficiency.py
else
  echo "no grid in runs/real_grid: make it first (see benchmarks/search_efficiency.py)"
fi
