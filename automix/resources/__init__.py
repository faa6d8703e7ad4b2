"""The resources a trial gets: how many trials share one GPU, from a trial's size and the GPU.

No Ray, Optuna or MLflow, and torch only when it looks at the GPU: the search's driver, the tests and
benchmarks/gpu_check.py use it alike.
"""

from automix.resources._packing import (
    Packing,
    TrialSize,
    gpu_fraction,
    gpu_share_line,
    pack,
    resolve_gpus_per_trial,
    trial_bytes,
    trial_size,
    visible_gpu_free_bytes,
)

__all__ = [
    "Packing",
    "TrialSize",
    "gpu_fraction",
    "gpu_share_line",
    "pack",
    "resolve_gpus_per_trial",
    "trial_bytes",
    "trial_size",
    "visible_gpu_free_bytes",
]
