"""Independent searches per lever at one budget, then `automix compare` over all of them.
From the repository root (examples/levers/run.sh calls it for every budget of RESULTS.md):

    .venv/bin/python examples/levers/searches.py NAME BASE --lever joint=SPACE --lever tune_only=SPACE ...
        [--train-tokens T] [--searches 1,2,3] [--seeds 101,102,103,104,105] [--also CONFIG] [--no-compare]

For each lever and search s it writes `runs/levers/NAME/{lever}_s{s}.yaml` (BASE with the lever's
space, study `levers_NAME_{lever}_s{s}`, its own work dir, search seed = trainer seed = s, and at
a fixed T the evaluations at T/8), runs `automix search --resume` on it, then compares every search
from the unseen SEEDS (`runs/levers/NAME/compare.json`), with the studies named by --also (searched
the same way, e.g. a dense grid). Every step resumes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import yaml

AUTOMIX = os.environ.get("AUTOMIX", ".venv/bin/automix")


def write_config(base: Path, out: Path, name: str, space: str, seed: int, train_tokens: int | None) -> Path:
    """BASE as one search of one lever; the file is rewritten only when its content changes."""
    config = yaml.safe_load(base.read_text())
    config.update(study=name, work_dir=str(out.with_suffix("")), seed=seed)
    config["search"].update(space=space, seed=seed)
    if train_tokens is not None:
        config["budget"]["train_tokens"] = train_tokens
        config["eval_every_tokens"] = train_tokens // 8  # ASHA's one rung (1/9 of T) at the first evaluation
    text = yaml.safe_dump(config, sort_keys=False)
    if not out.exists() or out.read_text() != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the budget's folder under runs/levers/, e.g. T1600000 or equal_data")
    parser.add_argument("base", type=Path, help="the study config every search starts from")
    parser.add_argument("--lever", action="append", required=True, help="LEVER=SPACE, once per lever")
    parser.add_argument("--train-tokens", type=int, help="T of every trial (a fixed_tokens BASE)")
    parser.add_argument("--searches", default="1,2,3", help="search seeds, one search each")
    parser.add_argument("--seeds", default="101,102,103,104,105", help="trainer seeds of compare's re-runs")
    parser.add_argument("--also", action="append", default=[], help="another study config to search and compare")
    parser.add_argument("--no-compare", action="store_true", help="search only")
    args = parser.parse_args()
    folder = Path("runs/levers") / args.name
    configs = []
    for lever, space in (item.split("=", 1) for item in args.lever):
        for s in (int(x) for x in args.searches.split(",")):
            name = f"levers_{args.name}_{lever}_s{s}"
            configs.append(write_config(args.base, folder / f"{lever}_s{s}.yaml", name, space, s, args.train_tokens))
    for config in [*configs, *map(Path, args.also)]:
        subprocess.run([AUTOMIX, "search", str(config), "--resume"], check=True)
    if not args.no_compare:
        studies = [*map(str, configs), *args.also]
        command = [AUTOMIX, "compare", *studies, "--seeds", args.seeds, "--out", str(folder / "compare.json")]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
