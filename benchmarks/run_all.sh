#!/usr/bin/env bash
# Run the performance benchmarks of issue 7 one after another and print their tables.
#   bash benchmarks/run_all.sh            (from the repository root; about 10 minutes on 2 cores)
# Takes /tmp/automix-cpu.lock for the whole run so that no other heavy job skews the timings.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${AUTOMIX_BENCH_LOCKED:-}" ]]; then
  exec env AUTOMIX_BENCH_LOCKED=1 flock /tmp/automix-cpu.lock bash "$0" "$@"
fi
for bench in throughput pipeline overhead parallel; do
  echo "== benchmarks/${bench}.py"
  .venv/bin/python -W ignore "benchmarks/${bench}.py"
done
echo "== search efficiency on the real task: not run on CPU (see BENCHMARKS.md, Performance)"
