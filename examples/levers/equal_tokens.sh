#!/usr/bin/env bash
# Mix or tune at exactly equal compute (RESULTS.md "Levers at equal compute"), from the repository root:
#   bash examples/levers/equal_tokens.sh
# For each compute level T (U = 50k, so E = T/U without mixing) and each lever (joint, mix_only,
# tune_only), SEARCHES independent searches with the default sampler and early stopping (search seed
# and trainer seed s), each in its own study and work dir; then `automix compare` re-trains the best of
# every search from the unseen SEEDS and bootstraps over searches and seeds. Every step resumes.
# LEVELS, SEARCHES and SEEDS override the defaults.
set -euo pipefail
cd "$(dirname "$0")/../.."
AUTOMIX=${AUTOMIX:-.venv/bin/automix}
LEVELS=${LEVELS:-1600000 800000 3200000}
SEARCHES=${SEARCHES:-1 2 3}
SEEDS=${SEEDS:-101,102,103,104,105}
BASE=examples/levers/equal_tokens.yaml

declare -A SPACE=([joint]=equal_tokens_joint [mix_only]=mix_only [tune_only]=equal_tokens_tune_only)
for T in $LEVELS; do
  configs=()
  for lever in joint mix_only tune_only; do
    for s in $SEARCHES; do
      name=levers_T${T}_${lever}_s${s}
      dir=runs/levers/T${T}
      mkdir -p "$dir"
      config=$dir/${lever}_s${s}.yaml
      .venv/bin/python - "$BASE" "$config" "$name" "$dir/${lever}_s${s}" "${SPACE[$lever]}" "$T" "$s" <<'PY'
import sys, yaml
base, out, name, work_dir, space, T, s = sys.argv[1:]
config = yaml.safe_load(open(base))
config.update(study=name, work_dir=work_dir, eval_every_tokens=int(T) // 8, seed=int(s))
config["budget"]["train_tokens"] = int(T)
config["search"].update(space=f"search_spaces/{space}.yaml", seed=int(s))
yaml.safe_dump(config, open(out, "w"), sort_keys=False)
PY
      "$AUTOMIX" search "$config" --resume
      configs+=("$config")
    done
  done
  [ "${SKIP_COMPARE:-0}" = 1 ] || "$AUTOMIX" compare "${configs[@]}" --seeds "$SEEDS" --out "runs/levers/T${T}/compare.json"
done
