"""Synthetic replay grids: the learning curves of `synthetic.Surface` over a finite grid, as a `_grids.Grid`.

The real replay grids (`benchmarks/grids/*.json`, `_grids.load`) hold the recorded curves of real
trainer runs; these hold `Surface.curve` at the points of a grid, so a search replayed on either
reads the same interface (`axes`, `curves[index]`, `cost`, `target`, `total`, `oracle_floor`).
The default grid is `samplers.grid5` over search_spaces/paper.yaml: five values per axis, 5⁴ points.

    .venv/bin/python benchmarks/curves.py paper --out /tmp/paper.json   # the same JSON as a real grid
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _grids import Grid
from synthetic import SURFACES, Surface


def grid5_axes(space: str = "paper") -> dict[str, list]:
    """Five values per axis of a search space (`samplers.grid5`), each axis sorted."""
    from samplers import grid5  # imports automix and Optuna: only where a grid is built

    from automix.config._space import load_space

    points = grid5(load_space(space))
    return {name: sorted({p[name] for p in points}) for name in points[0]}


def eval_every_for(surface: Surface) -> int:
    """Evaluate every 2·U tokens: 1 to 64 reports per trial on paper.yaml's grid5 (the real example: 2.5·U)."""
    return int(2 * surface.unique)


def synthetic_grid(name: str, axes: dict[str, list] | None = None, eval_every: int | None = None) -> Grid:
    """The grid of surface `name` (`synthetic.SURFACES`) at `axes` (default: grid5 of paper.yaml).

    Tokens are rounded to integers as the trainer counts them; the last entry of each curve is the
    surface's final loss at the point.
    """
    surface = SURFACES[name]
    axes = axes if axes is not None else grid5_axes()
    eval_every = eval_every or eval_every_for(surface)
    curves = {}
    for index in _indices(axes):
        params = {axis: values[i] for (axis, values), i in zip(axes.items(), index, strict=True)}
        curves[index] = [(int(round(t)), loss) for t, loss in surface.curve(params, eval_every)]
    return Grid(
        name, f"synthetic:{name}", [], surface.decay_frac, eval_every, {}, {k: list(v) for k, v in axes.items()},
        curves, list(curves),
    )  # fmt: skip


def _indices(axes: dict[str, list]) -> list[tuple[int, ...]]:
    indices = [()]
    for values in axes.values():
        indices = [(*i, k) for i in indices for k in range(len(values))]
    return indices


def dump(grid: Grid, path: Path) -> Path:
    """Write `grid` in the committed grids' JSON format (`_grids.load` reads it back)."""
    points = [{"params": grid.params(i), "curve": [[t, v] for t, v in grid.curves[i]]} for i in grid.order]
    out = {
        "name": grid.name,
        "space": grid.space,
        "set": grid.overrides,
        "metric": "target_val_loss",
        "decay_frac": grid.decay_frac,
        "eval_every_tokens": grid.eval_every,
        "defaults": grid.defaults,
        "points": points,
    }
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")  # a diverged NaN is written as NaN
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="write a synthetic surface's grid5 curves as a grid JSON")
    parser.add_argument("surface", choices=sorted(SURFACES))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    grid = synthetic_grid(args.surface)
    print(dump(grid, args.out), f"{len(grid.curves)} points, {grid.total / 1e6:.1f}M tokens, best {grid.best:.4f}")


if __name__ == "__main__":
    main()
