"""The real replay grids: learning curves of exhaustive grids of real trainer runs, committed as JSON.

A grid is built once with `automix search ... search.sampler=grid search.scheduler=none` (hours of
CPU), then `python benchmarks/_grids.py export WORK_DIR NAME --space SPACE --set K=V ...` writes
`benchmarks/grids/NAME.json`, so the search benchmarks re-run from a clone in minutes:

    {"name", "space", "set": [overrides of examples/ar_en_cpu.yaml the grid ran with],
     "metric", "decay_frac", "eval_every_tokens", "defaults": {param: the example's value},
     "points": [{"params": {...}, "curve": [[tokens, loss], ...]}, ...]}   # in the order they ran

Each curve is the point's `target_val_loss` at every evaluation (step = tokens trained), the last
entry its final loss at its T.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRIDS = ROOT / "benchmarks" / "grids"
TOLERANCE = 0.005  # a search reaches a grid when a finished trial is within 0.5% of its best


@dataclass
class Grid:
    """One committed grid: its axes (values per param), each point's curve, and what it ran with."""

    name: str
    space: str
    overrides: list[str]
    decay_frac: float
    eval_every: int
    defaults: dict
    axes: dict[str, list]
    curves: dict[tuple[int, ...], list[tuple[int, float]]]  # grid indices -> [(tokens, loss), ...]
    order: list[tuple[int, ...]]  # the points in the order the grid ran them

    @property
    def best(self) -> float:
        """The best final loss; a diverged point's NaN is no loss (the synthetic cliff surfaces)."""
        return min(v for c in self.curves.values() if not math.isnan(v := c[-1][1]))

    @property
    def target(self) -> float:
        return self.best * (1 + TOLERANCE)

    @property
    def total(self) -> float:
        """Tokens of the exhaustive grid: what it costs to know its best."""
        return float(sum(c[-1][0] for c in self.curves.values()))

    def cost(self, index: tuple[int, ...]) -> float:
        return float(self.curves[index][-1][0])

    def final(self, index: tuple[int, ...]) -> float:
        return self.curves[index][-1][1]

    def qualifying(self) -> list[tuple[int, ...]]:
        """The points within the target."""
        return [i for i, c in self.curves.items() if c[-1][1] <= self.target]

    def oracle_floor(self) -> float:
        """Tokens of the cheapest qualifying point alone: what a search that knew the answer spends."""
        return min(self.cost(i) for i in self.qualifying())

    def index(self, params: dict) -> tuple[int, ...]:
        return tuple(self.axes[name].index(params[name]) for name in self.axes)

    def params(self, index: tuple[int, ...]) -> dict:
        return {name: self.axes[name][i] for name, i in zip(self.axes, index, strict=True)}

    def dearest_at_defaults(self) -> tuple[int, ...]:
        """The trivial rule "train the dearest point at the example's defaults": the point with the
        most tokens, ties broken by closeness to the defaults (log distance), then by mixing most."""

        def distance(index: tuple[int, ...]) -> float:
            params = self.params(index)
            near = [(params[k], v) for k, v in self.defaults.items() if k in params and v > 0 and params[k] > 0]
            return sum(abs(math.log(p / v)) for p, v in near)

        return min(self.curves, key=lambda i: (-self.cost(i), distance(i), -self.params(i).get("mix_ratio", 0.0)))


def load(name_or_path: str | Path) -> Grid:
    """A committed grid by name (`benchmarks/grids/NAME.json`) or path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = GRIDS / f"{name_or_path}.json"
    raw = json.loads(path.read_text())
    names = list(raw["points"][0]["params"])
    axes = {n: sorted({p["params"][n] for p in raw["points"]}) for n in names}
    curves, order = {}, []
    for point in raw["points"]:
        index = tuple(axes[n].index(point["params"][n]) for n in names)
        curves[index] = [(int(t), float(v)) for t, v in point["curve"]]
        order.append(index)
    return Grid(
        raw["name"], raw["space"], raw["set"], raw["decay_frac"], raw["eval_every_tokens"], raw["defaults"],
        axes, curves, order,
    )  # fmt: skip


def export(work: Path, name: str, space: str, overrides: list[str]) -> Path:
    """Write the grid study in `work` to benchmarks/grids/NAME.json (see the module doc)."""
    import optuna
    from optuna.trial import TrialState

    from automix.config._space import load_space
    from automix.config._study import load_config
    from automix.protocol import REQUEUED_FROM
    from automix.scheduling._searcher import earlier_reports

    example = load_config(ROOT / "examples" / "ar_en_cpu.yaml", overrides)
    axes = load_space(ROOT / space).grid
    storage = optuna.storages.RDBStorage(f"sqlite:///{work / 'optuna.db'}")
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    trials.sort(key=lambda t: t.datetime_complete or t.datetime_start)
    by_number = {t.number: t for t in trials}
    points = []
    for trial in trials:
        if trial.state != TrialState.COMPLETE or any(trial.params[n] not in v for n, v in axes.items()):
            continue
        tokens = int(trial.user_attrs["tokens"])
        reports = dict(trial.intermediate_values)
        # A point re-queued after a crash continued the crashed trial's checkpoint: its curve starts
        # with the crashed trial's reports (the trainer resumes bit for bit).
        if (crashed := by_number.get(trial.user_attrs.get(REQUEUED_FROM))) is not None:
            reports |= earlier_reports(reports, crashed.intermediate_values)
        curve = [[int(s), round(float(v), 6)] for s, v in sorted(reports.items()) if s < tokens]
        points.append({"params": {n: trial.params[n] for n in axes}, "curve": [*curve, [tokens, float(trial.value)]]})
    expected = math.prod(len(v) for v in axes.values())
    if len(points) != expected:
        raise SystemExit(f"{len(points)} finished grid points of {expected}: finish the grid first (--resume)")
    base = example.base_train_config()
    defaults = {
        "learning_rate": base.optim.learning_rate,
        "weight_decay": base.optim.weight_decay,
        "epochs": base.budget.epochs,
        "mix_ratio": base.budget.mix_ratio,
    }
    out = {
        "name": name,
        "space": space,
        "set": overrides,
        "metric": "target_val_loss",
        "decay_frac": base.optim.decay_frac,
        "eval_every_tokens": example.eval_every_tokens,
        "defaults": defaults,
        "points": points,
    }
    GRIDS.mkdir(parents=True, exist_ok=True)
    path = GRIDS / f"{name}.json"
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="export a finished grid study to benchmarks/grids/NAME.json")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export")
    ex.add_argument("work", type=Path, help="the grid study's work dir (runs/NAME)")
    ex.add_argument("name")
    ex.add_argument("--space", required=True, help="the grid's space, relative to the repository root")
    ex.add_argument("--set", nargs="*", default=[], help="the key=value overrides the grid ran with")
    show = sub.add_parser("show")
    show.add_argument("name")
    args = parser.parse_args()
    if args.command == "export":
        print(export(args.work, args.name, args.space, args.set))
        return
    grid = load(args.name)
    print(
        f"{grid.name}: {len(grid.curves)} points, {grid.total / 1e6:.1f}M tokens, best {grid.best:.4f} at "
        f"{grid.params(min(grid.curves, key=grid.final))}; {len(grid.qualifying())} qualify; oracle floor "
        f"{grid.oracle_floor() / grid.total:.1%}; dearest at defaults {grid.params(grid.dearest_at_defaults())} "
        f"final {grid.final(grid.dearest_at_defaults()):.4f}"
    )


if __name__ == "__main__":
    main()
