"""Helpers shared by the performance benchmarks: configs, machine line, tables, timing."""

from __future__ import annotations

import os
import platform
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from automix.config._study import StudyConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ar_en_cpu.yaml"


def study_config(name: str, overrides: Sequence[str] = (), fresh: bool = True) -> StudyConfig:
    """`examples/ar_en_cpu.yaml` with `overrides`, in its own work dir `runs/<name>` (emptied when `fresh`)."""
    work = ROOT / "runs" / name
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
    return load_config(EXAMPLE, [f"study={name}", f"work_dir={work}", *overrides])


def machine() -> str:
    """One line naming what the figures were measured on."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}"
    )


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table, ready to paste into BENCHMARKS.md."""

    def cell(v: object) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    print(f"\n{title}\n")
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(cell(v) for v in row) + " |")


class Clock:
    """Seconds since construction; `lap()` also restarts it."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def lap(self) -> float:
        now = time.perf_counter()
        seconds, self.start = now - self.start, now
        return seconds
