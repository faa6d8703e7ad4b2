"""examples/levers/tables.py prints RESULTS.md's tables from the committed result files: its figures are the files'."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "examples" / "levers" / "tables.py"
RESULTS = ROOT / "benchmarks" / "results" / "levers"


def _print(*files: Path) -> str:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, files)], capture_output=True, text=True, check=True
    ).stdout


def test_a_compare_prints_every_search_and_every_pair_from_the_file():
    path = RESULTS / "T800000_compare.json"
    result, out = json.loads(path.read_text()), _print(path)
    for lever in result["levers"]:
        mean = np.mean([x for s in lever["searches"] for x in s["reruns"]["target_val_loss"]])
        assert f"| {lever['lever']} | {mean:.3f} | 15 |" in out
    assert out.count(" − ") == 3  # three levers, three pairs
    assert len([r for r in out.splitlines() if r.startswith("| equal_tokens_joint | ")]) == 3 + 1  # 3 searches, 1 mean


def test_a_multiplier_prints_the_chosen_and_held_out_reference_and_the_estimate():
    path = RESULTS / "T1600000_multiplier.json"
    ref, out = json.loads(path.read_text())["points"]["reference"], _print(path)
    held = np.array(ref["holdout"]["target_val_loss"][0])
    assert f"| {ref['target_val_loss'][0]:.3f} | {held.mean():.3f} ± {held.std(ddof=1):.3f} |" in out
    assert "| target_val_loss | 1.479 | ×1.24 | [0.69, 1.45] | power | 0/1000 |" in out


def test_a_file_of_another_kind_is_refused(tmp_path):
    other = tmp_path / "x.json"
    other.write_text("{}")
    done = subprocess.run([sys.executable, str(SCRIPT), str(other)], capture_output=True, text=True)
    assert done.returncode == 1 and "not a compare, multiplier or proxy_target result" in done.stderr


def test_a_proxy_target_prints_every_configuration_its_gap_and_rho():
    path = RESULTS / "T800000_proxy_target_w256d4.json"
    result, out = json.loads(path.read_text()), _print(path)
    for row in result["rows"]:
        proxy, target = np.array(row["proxy"]), np.array(row["target"])
        assert f"| {row['name']} | {proxy.mean():.3f} ± {proxy.std(ddof=1):.3f} | {target.mean():.3f} ±" in out
    sp = result["spearman"]
    n = len(result["rows"])
    assert f"Spearman ρ = {sp['rho']:.2f} [{sp['low']:.2f}, {sp['high']:.2f}] over {n} configurations" in out
    assert f"{result['gap']['mean']:+.4f}" in out


def test_the_trend_reads_each_levels_differences_and_their_change_with_the_searches_spread():
    files = [RESULTS / f"T{t}_compare.json" for t in (400000, 800000, 1600000)]
    tune = "equal_tokens_tune_only_wide"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--trend", tune, *map(str, files)], capture_output=True, text=True, check=True
    )
    row = next(r for r in done.stdout.splitlines() if r.startswith(f"| equal_tokens_joint − {tune} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    means = []
    for path in files:
        by = {
            lv["lever"]: [np.mean(s["reruns"]["target_val_loss"]) for s in lv["searches"]]
            for lv in json.loads(path.read_text())["levers"]
        }
        means.append((np.array(by["equal_tokens_joint"]), np.array(by[tune])))
        assert f"{np.mean(by['equal_tokens_joint']) - np.mean(by[tune]):+.3f}" == cells[len(means)]
    change = (means[-1][0].mean() - means[-1][1].mean()) - (means[0][0].mean() - means[0][1].mean())
    low, high = (float(x) for x in cells[-2].split("[")[1].rstrip("]").split(","))
    assert cells[-2].startswith(f"{change:+.3f} [") and low < change < high
    wide_low, wide_high = (float(x) for x in cells[-1].strip("[]").split(","))
    assert wide_low < low and wide_high > high  # 2 degrees of freedom: wider than Welch's
    # Four groups of three searches: wider than any one level's search spread alone, narrower than ±0.1.
    assert 0.01 < high - low < 0.2
