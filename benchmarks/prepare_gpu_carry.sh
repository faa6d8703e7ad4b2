#!/usr/bin/env bash
# Build the carry folder that benchmarks/gpu_check.sh needs on a bare GPU machine (Python 3.12,
# torch, transformers, numpy, yaml; no pydantic, mup or pandas), here, with network access:
#   bash benchmarks/prepare_gpu_carry.sh        -> .gpu_carry/ (git-ignored), about 40 MB
#   .gpu_carry/wheels/         pydantic (the venv's version) and its dependencies, mup 1.0.0: cp312 manylinux
#   .gpu_carry/wheels-pandas/  pandas and its pure-Python dependencies (for the coordinate check)
#   .gpu_carry/wheels-pytest/  pytest and its dependencies (to run the CUDA tests there)
#   .gpu_carry/data/           the first ~CORPUS_MB (4) MB of each corpus file the example study reads,
#                              cut at a line end (one document per line), in ../shared/data's layout
# Environment: CARRY (.gpu_carry), DATA (../shared/data), CORPUS_MB (4), PIP (.venv/bin/pip).
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=${CARRY:-.gpu_carry}
DATA=${DATA:-../shared/data}
PIP=${PIP:-.venv/bin/pip}
PY=${PY:-.venv/bin/python}
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64)

rm -rf "$CARRY"
mkdir -p "$CARRY/wheels" "$CARRY/wheels-pandas" "$CARRY/wheels-pytest" "$CARRY/data"
PYDANTIC=$("$PY" -c "import pydantic; print(pydantic.VERSION)")
# pydantic pins its pydantic-core; the resolver picks that and the other dependencies for 3.12.
"$PIP" download --quiet "${TARGET[@]}" -d "$CARRY/wheels" "pydantic==$PYDANTIC"
"$PIP" wheel --quiet --no-deps -w "$CARRY/wheels" mup==1.0.0
# numpy is on the GPU machine already (torch needs it): not carried.
"$PIP" download --quiet "${TARGET[@]}" --no-deps -d "$CARRY/wheels-pandas" pandas python-dateutil pytz tzdata six
"$PIP" download --quiet "${TARGET[@]}" -d "$CARRY/wheels-pytest" pytest

"$PY" - "$DATA" "$CARRY/data" "${CORPUS_MB:-4}" <<'PYEOF'
import sys
from pathlib import Path

src, dst, limit = Path(sys.argv[1]), Path(sys.argv[2]), int(float(sys.argv[3]) * 1e6)
for rel in ("ar/train", "ar/valid.txt", "en/train", "en/valid.txt"):
    files = sorted((src / rel).glob("*.txt")) if (src / rel).is_dir() else [src / rel]
    for f in files:
        data = f.read_bytes()
        if len(data) > limit:
            data = data[: data.rindex(b"\n", 0, limit) + 1]  # whole documents only
        out = dst / f.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
PYEOF
du -sh "$CARRY"/*
du -sh "$CARRY"
ls "$CARRY"/wheels "$CARRY"/wheels-pandas "$CARRY"/wheels-pytest
