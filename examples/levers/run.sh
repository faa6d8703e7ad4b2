#!/usr/bin/env bash
# The whole mix-vs-tune study of RESULTS.md, from the repository root: `bash examples/levers/run.sh`.
# Every step resumes or reads its cache, so after an interruption the same command continues.
#   1. the three lever searches (joint, mix_only, tune_only), 40 trials each;
#   2. equal data: each study's best re-trained from seeds the search never used, the joint study
#      minus each single lever paired by seed (runs/levers_joint/compare.json);
#   3. equal compute: mix_only and tune_only searched again with the joint best's tokens as the cap
#      of every trial (search.max_train_tokens) and within reach (epochs up to cap / U), then
#      compared the same way (compare_equal_compute.json);
#   4. the effective-data multiplier: the tune-only best at r = 0 over five U, inverted at the joint
#      best (runs/levers_joint/multiplier.json);
#   5. the report of the joint study, with all of the above.
# About 2.5 h on 2 CPU cores (measured: the three searches 40 min, the first compare 11 min).
# SEEDS and UNITS override the defaults.
set -euo pipefail
cd "$(dirname "$0")/../.."
AUTOMIX=${AUTOMIX:-.venv/bin/automix}
SEEDS=${SEEDS:-1,2,3}
UNITS=${UNITS:-25000,50000,100000,200000,400000}
L=examples/levers

for lever in joint mix_only tune_only; do
  "$AUTOMIX" search "$L/$lever.yaml" --resume
done
"$AUTOMIX" compare "$L/joint.yaml" "$L/mix_only.yaml" "$L/tune_only.yaml" --seeds "$SEEDS"

# The equal-compute studies: the same configs under new names, every trial capped at the joint
# best's trained tokens, and the epochs' range widened so that a lever without mixing can spend them.
cap=$(.venv/bin/python -c 'import json; print(int(json.load(open("runs/levers_joint/best.json"))["best_attrs"]["tokens"]))')
mkdir -p runs/levers_equal_compute
for lever in mix_only tune_only; do
  config=runs/levers_equal_compute/$lever.yaml
  .venv/bin/python - "$L/$lever.yaml" "$config" "$lever" "$cap" <<'EOF'
import math, sys, yaml
source, target, lever, cap = sys.argv[1:]
config = yaml.safe_load(open(source))
config["study"] = f"levers_{lever}_equal_compute"
config["work_dir"] = f"runs/levers_{lever}_equal_compute"
config["search"]["max_train_tokens"] = int(cap)
space = yaml.safe_load(open(config["search"]["space"]))
epochs = space["params"].get("epochs")
if isinstance(epochs, dict):
    epochs["high"] = max(epochs["high"], math.ceil(int(cap) / config["budget"]["unique_tokens"]))
    epochs.pop("grid", None)
config["search"]["space"] = target.removesuffix(".yaml") + "_space.yaml"
yaml.safe_dump(space, open(config["search"]["space"], "w"), sort_keys=False)
yaml.safe_dump(config, open(target, "w"), sort_keys=False)
EOF
  "$AUTOMIX" search "$config" --resume
done
"$AUTOMIX" compare "$L/joint.yaml" runs/levers_equal_compute/mix_only.yaml runs/levers_equal_compute/tune_only.yaml \
  --seeds "$SEEDS" --out runs/levers_joint/compare_equal_compute.json

"$AUTOMIX" multiplier "$L/joint.yaml" --reference "$L/tune_only.yaml" --units "$UNITS" --seeds "$SEEDS"
"$AUTOMIX" report "$L/joint.yaml"
