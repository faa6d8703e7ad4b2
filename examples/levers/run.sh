#!/usr/bin/env bash
# The mix-or-tune study of RESULTS.md, from the repository root:
#   bash examples/levers/run.sh [STEP ...]      (default: every step, in this order)
# Steps (each resumes or reads its cache, so after an interruption the same command continues):
#   regime       repetition's cost at equal tokens, 3 seeds, lr swept (regime.py)
#   T400000 T800000 T1600000 T3200000
#                levers at exactly equal compute T (U = 50k, so E = 8 to 64 for tuning alone): 3
#                searches per lever, compared (tune only with lr down to 3e-4; the first T = 1.6M
#                tune-only searches, lr from 1e-3, stay in runs/levers/T1600000/tune_only_s*)
#   target       the T = 0.8M levers' bests at a 32× larger model (w256 d4), a local sweep around the
#                transferred joint point and proxy → target rank correlation (proxy_target.py); T = 0.8M
#                because 45 runs at the target take ~2 h of both cores there, twice that at 1.6M
#   equal_data   U = 50k, E free: 3 searches per lever and a dense tune-only grid, compared
#   multiplier   at each T: the joint searches against a tune-only reference (the tune-only search
#                whose best re-trains lowest) re-tuned (wd × lr) at every U, at the same T; each U's
#                chosen point re-trained from 3 held-out seeds (the selection's bias)
# Wall times on 2 CPU cores are in RESULTS.md beside each table.
set -euo pipefail
cd "$(dirname "$0")/../.."
export AUTOMIX=${AUTOMIX:-.venv/bin/automix}
PY=.venv/bin/python
L=examples/levers
LEVELS=(400000 800000 1600000 3200000)
STEPS=("$@")
[ ${#STEPS[@]} -gt 0 ] || STEPS=(regime T400000 T800000 T1600000 target equal_data multiplier T3200000)

equal_tokens() {  # $1 = T
  $PY $L/searches.py "T$1" $L/equal_tokens.yaml --train-tokens "$1" \
    --lever joint=search_spaces/equal_tokens_joint.yaml --lever mix_only=search_spaces/mix_only.yaml \
    --lever tune_only_wide=search_spaces/equal_tokens_tune_only_wide.yaml
}

multiplier() {  # $1 = T: its studies must have been searched and compared
  local d=runs/levers/T$1 ref
  # The reference: the tune-only search whose best re-trains lowest (compare.json), re-tuned around it
  ref=$($PY -c '
import json, sys
import numpy as np
d = sys.argv[1]
searches = [s for lever in json.load(open(d + "/compare.json"))["levers"] if lever["lever"].endswith("tune_only_wide")
            for s in lever["searches"]]
best = min(searches, key=lambda s: np.mean(s["reruns"]["target_val_loss"]))
print(d + "/" + best["study"].split("_", 2)[2] + ".yaml")' "$d" 2>/dev/null) \
    || { echo "multiplier: T=$1 has no compare of the tune_only_wide searches yet, skipped"; return 0; }
  "$AUTOMIX" multiplier "$d/joint_s1.yaml" --searches "$d/joint_s2.yaml" "$d/joint_s3.yaml" \
    --reference "$ref" --units 50000,100000,200000,400000 --seeds 101,102 --holdout-seeds 103,104,105 \
    --retune weight_decay=0.33,1,3 --retune learning_rate=0.5,1,2
}

for step in "${STEPS[@]}"; do
  case $step in
    regime) $PY $L/regime.py --seeds 1,2,3 ;;
    T*) equal_tokens "${step#T}" ;;
    target)
      d=runs/levers/T800000
      "$AUTOMIX" compare "$d"/{joint,mix_only,tune_only_wide}_s{1,2,3}.yaml --seeds 101,102,103 --width 256 --depth 4 \
        --out "$d/compare_w256d4.json"
      $PY $L/proxy_target.py --level 800000 --width 256 --depth 4 ;;
    equal_data)
      $PY $L/searches.py equal_data $L/equal_data.yaml --also $L/equal_data_grid.yaml \
        --lever joint=search_spaces/equal_data_joint.yaml --lever mix_only=search_spaces/mix_only.yaml \
        --lever tune_only=search_spaces/equal_data_tune_only.yaml ;;
    multiplier) for T in "${LEVELS[@]}"; do multiplier "$T"; done ;;
    *) echo "run.sh: unknown step '$step' (regime, T400000, T800000, T1600000, T3200000, target, equal_data, multiplier)" >&2; exit 2 ;;
  esac
done
