"""LR × width and WD × width sweeps, μP vs SP, on the shared Arabic/English corpora.

    flock /tmp/automix-cpu.lock .venv/bin/python benchmarks/transfer.py [--widths 32 64 128 256]

Each run: byte-level tokens, depth 2, seq 128, batch 16, U = 32,768 Arabic tokens, E = 10
(T = 327,680 tokens, 160 steps), warmup-stable-decay; base_width = the smallest width. Prints the
best learning rate (and weight decay) per width and the grid steps it drifts; the figure and the raw
losses land in runs/transfer_bench/verify_transfer/. Resumable: a second call reuses finished runs.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from _sweeps import SHORT_RUN

from automix.config._study import load_config
from automix.scaling._verify import LR_GRID, WD_GRID, verify_transfer

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = ["study=transfer_bench", "work_dir=runs/transfer_bench", *SHORT_RUN]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256])
    args = parser.parse_args()
    start = time.time()
    config = load_config(ROOT / "examples" / "ar_en_cpu.yaml", OVERRIDES)
    result = verify_transfer(config, args.widths, LR_GRID, WD_GRID, verbose=False)
    print(f"{platform.node()} {platform.processor() or platform.machine()}, {time.time() - start:.0f} s")
    for sweep in ("lr", "wd"):
        table = result.best[result.best.sweep == sweep].pivot(
            index="width", columns="parametrization", values=["value", "loss"]
        )
        print(f"\nbest {sweep} per width (and its final target_val_loss):\n{table.to_string()}")
    for key, steps in result.drift.items():
        print(f"{key}: best value drifts {steps} grid step(s) across widths {args.widths}")
    print("\nall losses (rows: value, columns: width):")
    for (sweep, p), rows in result.losses.groupby(["sweep", "parametrization"]):
        print(f"\n{sweep} / {p}\n{rows.pivot(index='value', columns='width', values='loss').round(4)}")
    print(f"\nplot: {result.plot}\njson: {result.path}")


if __name__ == "__main__":
    main()
