#!/usr/bin/env bash
# Install automix and the exact, tested set of its dependencies into ./.venv (or $AUTOMIX_VENV).
# (Into an environment you already have, e.g. one with your CUDA torch: docs/install.md.)
#
# pyproject.toml states version ranges; scripts/constraints.txt pins every package of the set CI
# passed (torch 2.13.0 among them), so the quickstart is reproducible and no dependency can swap
# torch for another build. mup 1.0.0 declares an unpinned torchvision, which would pull a CUDA torch
# and break `import transformers`: it is installed with --no-deps (its real needs are in pyproject.toml).
# GPU machines: PyPI's torch 2.13.0 wheel for Linux x86_64 is already a CUDA build; for another CUDA
# version set PIP_EXTRA_INDEX_URL to PyTorch's wheel index for it before running this script.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${AUTOMIX_VENV:-.venv}
PYTHON=${PYTHON:-python3}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# torch (and uv) through pip, so pip's configuration (PIP_EXTRA_INDEX_URL, a local wheel folder)
# picks the torch build; the rest through uv, which keeps that torch (it satisfies the pin) and
# installs the pinned set in seconds where pip takes about two minutes on 2 cores.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c scripts/constraints.txt torch uv
UV=("$VENV/bin/uv" pip install -q --python "$VENV/bin/python" -c scripts/constraints.txt)
"${UV[@]}" -e ".[dev]"
"${UV[@]}" --no-deps mup==1.0.0
# Fail here, not in the first trial, if the set is not co-installable.
"$VENV/bin/python" -c "import mup, torch, transformers, ray.tune, optuna, mlflow; print('automix installed: torch', torch.__version__)"
if "$VENV/bin/python" -c "import torchvision" 2>/dev/null; then
  echo "warning: torchvision is installed in $VENV; automix does not need it" >&2
fi
