"""How good is the console's time-left estimate? Read back from real searches' plain-text logs.

Without a terminal a search prints its status every 30 s: `search 5/20 done, ..., ~4m10s left, 3m00s in`.
The search really ended when its last trial did (the Optuna study's last `datetime_complete`,
counted from its first `datetime_start`), so each status line's estimate can be scored against
the time that was actually left. Usage (BENCHMARKS.md "Console: time left"):

    .venv/bin/python benchmarks/eta_accuracy.py LOG [LOG ...] [--after 0.25]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import optuna

STATUS = re.compile(r"^search (\d+)/(\d+) done, .*?~(\S+) left, (\S+) in$")
STUDY = re.compile(r"^study (\S+): (\S+)$")


def seconds(text: str) -> float:
    """`42s`, `3m05s`, `1h02m` (the console's `fmt_duration`) in seconds."""
    parts = dict((unit, int(n)) for n, unit in re.findall(r"(\d+)([hms])", text))
    return 3600 * parts.get("h", 0) + 60 * parts.get("m", 0) + parts.get("s", 0)


def searches(log: Path) -> list[tuple[str, str, list[tuple[int, int, float, float]]]]:
    """(study, storage, [(done, total, estimate_s, elapsed_s)]) for each search in `log`."""
    out, lines = [], []
    for line in log.read_text(errors="replace").splitlines():
        if m := STATUS.match(line.strip()):
            lines.append((int(m[1]), int(m[2]), seconds(m[3]), seconds(m[4])))
        elif m := STUDY.match(line.strip()):
            if lines:
                out.append((m[1], m[2], lines))
            lines = []
    return out


def actual_length_s(study: str, storage: str, total: int) -> float | None:
    """First trial start to last trial end of the newest `total` trials (the invocation that logged)."""
    trials = optuna.load_study(study_name=study, storage=storage).trials[-total:]
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--after", type=float, default=0.25, help="score lines once this share of trials is done")
    args = parser.parse_args()
    ratios = []
    for log in args.logs:
        for study, storage, lines in searches(log):
            length = actual_length_s(study, storage, lines[0][1])
            scored = [(est, length - elapsed) for done, total, est, elapsed in lines if done >= args.after * total]
            scored = [(est, left) for est, left in scored if length is not None and left > 30]
            ratios += [est / left for est, left in scored]
            if scored:
                worst = max(scored, key=lambda p: abs(np.log(p[0] / p[1])))
                print(f"{study}: {len(scored)} lines, worst estimate {worst[0]:.0f}s for {worst[1]:.0f}s left")
    r = np.array(ratios)
    print(
        f"{len(r)} status lines past {args.after:.0%} of the trials: estimate/actual median {np.median(r):.2f}, "
        f"within ±30% in {np.mean(np.abs(r - 1) <= 0.3):.0%}, range {r.min():.2f}–{r.max():.2f}"
    )


if __name__ == "__main__":
    main()
