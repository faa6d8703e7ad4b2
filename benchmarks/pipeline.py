"""Data pipeline: tokenize-and-cache once per content hash, and how much of a step waits on data.

    flock /tmp/automix-cpu.lock .venv/bin/python benchmarks/pipeline.py

On the shared corpora (`examples/ar_en_cpu.yaml`: ~21 MB Arabic, ~29 MB English, byte tokens) in an
empty cache under runs/bench_pipeline: the first `prepare` (what a search does before its first
trial) tokenizes and caches; the second (a second search) only hashes the corpora and maps the
arrays; `load_datasets` is what every trial does. Then one mixed trial (r = 0.5) is trained and
the time its batches take to assemble is set against its time in training steps.
"""

from __future__ import annotations

import os

import torch
from _common import ROOT, Clock, machine, print_table, study_config

from trainer.data import load_datasets, prepare
from trainer.train import run

TRIAL = ["budget.epochs=4", "budget.mix_ratio=0.5", "data.valid_tokens=129", "eval_every_tokens=1000000000000"]


def main() -> None:
    torch.set_num_threads(1)  # as a 1-CPU trial
    os.environ["AUTOMIX_CACHE"] = str(ROOT / "runs" / "bench_pipeline" / "cache")  # emptied with the work dir
    config = study_config("bench_pipeline", TRIAL).base_train_config()
    clock = Clock()
    prepare(config)
    cold = clock.lap()
    prepare(config)
    warm = clock.lap()
    data = load_datasets(config)
    per_trial = clock.lap()
    result = run(config.model_copy(update={"threads": 1}))
    step_time = result.metrics["compute_time_s"]
    clock.lap()
    for step in range(data.stream.n_batches):
        data.stream.batch(step)
    batch_time = clock.lap()
    print(f"{machine()}; trial: U=100k, E=4, r=0.5, {data.stream.n_batches} steps of 16 x 128, 1 thread")
    print_table(
        "data preparation (goal: second prepare < 2 s) and data wait (goal: < 2% of step time)",
        ["what", "seconds", "ratio"],
        [
            ("first prepare: tokenize + cache both corpora", f"{cold:.2f}", "1.00"),
            ("second prepare: cache hit (a second search)", f"{warm:.2f}", f"{warm / cold:.3f}"),
            ("load_datasets: cache hit (every trial)", f"{per_trial:.2f}", f"{per_trial / cold:.3f}"),
            ("training steps of the trial (compute_time_s)", f"{step_time:.2f}", "1.00"),
            ("assembling its batches (stream.batch)", f"{batch_time:.3f}", f"{100 * batch_time / step_time:.2f}%"),
        ],
    )


if __name__ == "__main__":
    main()
