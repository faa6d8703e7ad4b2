# automix on a public PyTorch CUDA image, keeping the image's own torch (docs/install.md, "Docker").
#
#   docker build -t automix .
#   docker build -t automix --build-arg BASE_IMAGE=pytorch/pytorch:<tag> .   # another torch/CUDA
#   docker run --gpus all --shm-size=8g -v "$PWD/runs:/opt/automix/runs" -v "$PWD/data:/data" \
#       automix search /data/my_study.yaml
#
# Any pytorch/pytorch image with torch >= 2.11 (automix's floor) and Python >= 3.11 will do; pick a
# tag that exists for your driver's CUDA version. Not built in CI (its machines cannot pull images);
# CI's lowest-versions job checks that the ranges in pyproject.toml install beside a given torch.
ARG BASE_IMAGE=pytorch/pytorch:2.11.0-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

# EXTRAS: "" or "cluster" (PostgreSQL driver for a shared Optuna study).
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
WORKDIR /opt/automix

COPY pyproject.toml README.md ./
COPY scripts/constraints.txt scripts/constraints.txt
COPY automix automix
COPY trainer trainer
COPY search_spaces search_spaces
COPY examples examples

# The tested set (scripts/constraints.txt) with its torch pin swapped for the image's own torch, so
# pip can only keep that torch: a plan that needs another one fails here instead of downloading it.
# mup goes in with --no-deps: it declares torchvision, which would bring a second torch.
RUN set -eux; \
    python -c "import sys; assert sys.version_info >= (3, 11), sys.version"; \
    before="$(python -c 'import torch; print(torch.__version__, torch.version.cuda, torch.__file__)')"; \
    torch_dist="$(python -c 'from importlib.metadata import version; print(version("torch"))')"; \
    { grep -v '^torch==' scripts/constraints.txt; echo "torch==${torch_dist}"; } > /tmp/constraints.txt; \
    python -m pip install -c /tmp/constraints.txt ".${EXTRAS:+[$EXTRAS]}"; \
    python -m pip install --no-deps -c /tmp/constraints.txt mup==1.0.0; \
    after="$(python -c 'import torch; print(torch.__version__, torch.version.cuda, torch.__file__)')"; \
    test "$before" = "$after" || { echo "torch changed: $before -> $after" >&2; exit 1; }; \
    if python -c "import torchvision" 2>/dev/null; then echo "note: the image ships torchvision; automix does not use it"; fi; \
    python -c "import automix, mup, ray.tune, optuna, mlflow, transformers, torch; print('automix on torch', torch.__version__, 'CUDA', torch.version.cuda)"

ENTRYPOINT ["automix"]
CMD ["--help"]
