"""Stock peers on the replay grids, run the way their users run them.

    .venv/bin/python benchmarks/peers.py [--grids fixed_grid paper ...] [--seeds 10] [--trials 40] \\
        [--methods tpe gp+hyperband dehb ...] [--out peers.json]

Each search replays a grid: the committed real grids (`benchmarks/grids/*.json`, `_grids.load`) and
synthetic grids with learning curves (`curves.synthetic_grid`: `Surface.curve` at the 5⁴ points of
`samplers.grid5` over search_spaces/paper.yaml, an evaluation every 2·U tokens). A trial's params
pick a grid point; it reports the point's recorded curve. Cost: the tokens trained (a pruned or
truncated trial: up to its last report). Measured per seed: the tokens spent until a *finished*
trial (one that trained its point's full T) is within `TOLERANCE` (0.5%) of the grid's best final
loss, within `--trials` trained trials (a pruned trial counts); inf if none is.

The peers, as a user writes them:
- Optuna 5 `TPESampler(seed=s)` (its default is multivariate TPE), `TPESampler(seed=s,
  multivariate=False)` (Optuna 4's default), `GPSampler(seed=s)`, and `GridSampler` (the grid in a
  seeded random order), through plain `study.ask()` / `study.tell()`, each also with
  `HyperbandPruner()` (`+hyperband`, all defaults). The trial loop is Optuna's documented one: after
  each evaluation `trial.report(loss, step)` with step = the evaluation's index (0, 1, 2, ..., as in
  Optuna's examples, where step is the epoch), then `trial.should_prune()`; a pruned trial is told
  PRUNED. Every evaluation is reported, the last one too (so a trial can be pruned at its last
  evaluation, as in a user's loop: it spent its T but is not a finished trial). Equal steps are
  equal tokens: Hyperband compares trials at equal tokens, where mixed and long runs look worse
  than they end. `max_resource="auto"` takes the first finished trial's number of evaluations.
- Params are grid indices per axis (`suggest_int(axis, 0, len(values) - 1)`), as in
  search_efficiency.py, so every method searches exactly the grid's points. A point proposed again
  trains again and its tokens count again: that is what the user pays (column "repeats").
- DEHB (`dehb` 0.1.2) and SMAC3 (`smac` 2.4.1: `MultiFidelityFacade`, its BOHB-like Hyperband with a
  random forest, and `HyperbandFacade`, random configurations), through their ask/tell interfaces,
  fidelity = training tokens from max T/9 to the grid's largest T, eta = 3 (their documented
  defaults). An evaluation at fidelity b trains a point from scratch (neither reuses checkpoints)
  up to min(b, T) tokens: it returns the point's loss at its last evaluation at or before b (the
  first evaluation if b comes before it), costs those tokens, and is a finished trial when b ≥ T.
  A truncated run is the full-T run stopped early (still at its stable lr): the only thing a replay
  of recorded curves knows; training each fidelity with its own lr schedule would differ.
  Both install with pip into a separate venv, `python3 -m venv /tmp/peervenv &&
  /tmp/peervenv/bin/pip install dehb smac`, but not into the project's .venv: DEHB 0.1.2 requires
  numpy < 2.0 (the .venv has numpy 2.4, which torch and Optuna's GPSampler use). So this script
  runs them through that interpreter (`--peer-python`: a subprocess running this file with
  `--worker` on the grid written as JSON); without it they are skipped. SMAC 2.4's random forest is
  scikit-learn's, so pyrfr (which needs SWIG to build) is not needed.

Printed: a Markdown table per grid (seeds reaching the target, median tokens as a share of the
grid's tokens, median trials to reach it, median re-proposals among the trials run) with the oracle
floor (the cheapest qualifying point alone). `--out`: per-seed tokens as JSON (`Infinity` where a
seed did not reach the target), for geometric means against automix's own methods.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _grids import GRIDS, TOLERANCE, Grid, load  # noqa: E402
from curves import dump, synthetic_grid  # noqa: E402

SYNTHETIC = ("paper", "scarce", "no_mix", "sharp", "cliff", "noisy")
OPTUNA = ("tpe", "tpe+hyperband", "tpe-univariate", "tpe-univariate+hyperband", "gp", "gp+hyperband", "grid")
EXTERNAL = ("dehb", "smac-bohb", "smac-hyperband")  # run by --peer-python
PEER_PYTHON = Path("/tmp/peervenv/bin/python")
ETA = 3  # the multi-fidelity peers' reduction factor (their default)


@dataclass
class Run:
    """One seed of one method: tokens until the target (inf: not reached), trials run, re-proposals."""

    tokens: float
    trials: int
    repeats: int


def index_of(grid: Grid, params: dict) -> tuple[int, ...]:
    return tuple(int(params[axis]) for axis in grid.axes)


# ---- Optuna: ask/tell, optionally HyperbandPruner -------------------------------------------------


def optuna_sampler(name: str, grid: Grid, seed: int):
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "tpe-univariate":
        return optuna.samplers.TPESampler(seed=seed, multivariate=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler({a: list(range(len(v))) for a, v in grid.axes.items()}, seed=seed)
    raise ValueError(f"unknown Optuna sampler {name!r}")


def run_optuna(grid: Grid, method: str, seed: int, trials: int) -> Run:
    """One seed of `method` ("SAMPLER" or "SAMPLER+hyperband") through study.ask()/tell()."""
    import optuna
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState

    sampler, _, pruner = method.partition("+")
    study = optuna.create_study(
        study_name=f"{method}-{seed}",  # Hyperband's brackets hash the study name: fixed, so reruns agree
        sampler=optuna_sampler(sampler, grid, seed),
        pruner=optuna.pruners.HyperbandPruner() if pruner == "hyperband" else optuna.pruners.NopPruner(),
    )
    space = {axis: IntDistribution(0, len(values) - 1) for axis, values in grid.axes.items()}
    goal, spent, seen, repeats = grid.target, 0.0, set(), 0
    for n in range(1, trials + 1):
        trial = study.ask(space)
        index = index_of(grid, trial.params)
        repeats, _ = repeats + (index in seen), seen.add(index)
        tokens, pruned = user_loop(trial, grid.curves[index])
        spent += tokens
        if pruned:
            study.tell(trial, state=TrialState.PRUNED)
            continue
        final = grid.final(index)
        study.tell(trial, final)  # a NaN (diverged) final: Optuna records the trial FAIL
        if final <= goal:
            return Run(spent, n, repeats)
    return Run(math.inf, trials, repeats)


def user_loop(trial, curve: list[tuple[int, float]]) -> tuple[float, bool]:
    """Optuna's documented loop: report each evaluation at step = its index, stop if told to.
    Returns (tokens trained, pruned)."""
    for step, (tokens, loss) in enumerate(curve):
        trial.report(loss, step)
        if trial.should_prune():
            return float(tokens), True
    return float(curve[-1][0]), False


# ---- DEHB and SMAC3: fidelity = tokens (run in --peer-python) -------------------------------------


def evaluate(grid: Grid, index: tuple[int, ...], fidelity: float) -> tuple[float, float, bool]:
    """Train point `index` from scratch up to `fidelity` tokens: (tokens, loss, finished)."""
    curve = grid.curves[index]
    if fidelity >= curve[-1][0] - 0.5:
        return float(curve[-1][0]), curve[-1][1], True
    before = [entry for entry in curve if entry[0] <= fidelity] or curve[:1]
    tokens, loss = before[-1]
    return float(tokens), loss, tokens == curve[-1][0]


def config_space(grid: Grid, seed: int):
    import ConfigSpace as CS

    space = CS.ConfigurationSpace(seed=seed)
    space.add([CS.UniformIntegerHyperparameter(axis, 0, len(v) - 1) for axis, v in grid.axes.items()])
    return space


def fidelities(grid: Grid) -> tuple[float, float]:
    """(min, max) fidelity in tokens: two reductions by ETA below the grid's largest T."""
    largest = max(c[-1][0] for c in grid.curves.values())
    return largest / ETA**2, float(largest)


class Tally:
    """Counts one multi-fidelity search's trials and tokens until a finished trial reaches the target."""

    def __init__(self, grid: Grid) -> None:
        self.grid, self.goal, self.spent, self.n, self.repeats, self.seen = grid, grid.target, 0.0, 0, 0, set()

    def __call__(self, config, fidelity: float) -> tuple[float, float, bool]:
        """Evaluate `config` at `fidelity`: (the loss the optimizer is told, tokens, reached)."""
        index = index_of(self.grid, dict(config))
        self.n += 1
        self.repeats += (index, fidelity) in self.seen  # the same point at the same fidelity again
        self.seen.add((index, fidelity))
        tokens, loss, finished = evaluate(self.grid, index, fidelity)
        self.spent += tokens
        told = loss if math.isfinite(loss) else 1e9  # the peers want a number; a user returns a large one
        return told, tokens, finished and loss <= self.goal

    def run(self, reached: bool, trials: int) -> Run | None:
        if reached:
            return Run(self.spent, self.n, self.repeats)
        return Run(math.inf, self.n, self.repeats) if self.n >= trials else None


def run_dehb(grid: Grid, seed: int, trials: int) -> Run:
    from dehb import DEHB

    low, high = fidelities(grid)
    with tempfile.TemporaryDirectory() as out:
        dehb = DEHB(
            cs=config_space(grid, seed), f=None, min_fidelity=low, max_fidelity=high, eta=ETA, n_workers=1,
            seed=seed, output_path=out, log_level="ERROR",
        )  # fmt: skip
        tally = Tally(grid)
        while True:
            job = dehb.ask()
            loss, tokens, reached = tally(job["config"], job["fidelity"])
            dehb.tell(job, {"fitness": loss, "cost": tokens})
            if (run := tally.run(reached, trials)) is not None:
                return run


def run_smac(grid: Grid, facade_name: str, seed: int, trials: int) -> Run:
    from smac import HyperbandFacade, MultiFidelityFacade, Scenario
    from smac.runhistory.dataclasses import TrialValue

    facade = {"smac-bohb": MultiFidelityFacade, "smac-hyperband": HyperbandFacade}[facade_name]
    low, high = fidelities(grid)
    with tempfile.TemporaryDirectory() as out:
        scenario = Scenario(
            config_space(grid, seed), deterministic=True, n_trials=trials, min_budget=low, max_budget=high,
            seed=seed, output_directory=Path(out),
        )  # fmt: skip
        intensifier = facade.get_intensifier(scenario, eta=ETA)
        smac = facade(scenario, _unused_target, intensifier=intensifier, overwrite=True, logging_level=40)
        tally = Tally(grid)
        while True:
            info = smac.ask()
            loss, _, reached = tally(info.config, info.budget)
            smac.tell(info, TrialValue(cost=loss))
            if (run := tally.run(reached, trials)) is not None:
                return run


def _unused_target(config, seed: int = 0, budget: float = 0.0) -> float:
    raise AssertionError("driven through ask/tell")


def run_method(grid: Grid, method: str, seed: int, trials: int) -> Run:
    if method == "dehb":
        return run_dehb(grid, seed, trials)
    if method.startswith("smac-"):
        return run_smac(grid, method, seed, trials)
    return run_optuna(grid, method, seed, trials)


def run_external(grid: Grid, methods: list[str], seeds: range, trials: int, python: Path) -> dict[str, list[Run]]:
    """Run the DEHB/SMAC methods in the peers' interpreter (this file with --worker)."""
    with tempfile.TemporaryDirectory() as tmp:
        grid_file, out = dump(grid, Path(tmp) / "grid.json"), Path(tmp) / "runs.json"
        command = [str(python), __file__, "--worker", str(grid_file), str(out), "--methods", *methods]
        command += ["--seeds", str(len(seeds)), "--first-seed", str(seeds.start), "--trials", str(trials)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{python} {methods}: {done.stderr.strip().splitlines()[-1:]}")
        return {m: [Run(**r) for r in runs] for m, runs in json.loads(out.read_text()).items()}


# ---- the report -----------------------------------------------------------------------------------


def grids_named(names: list[str]) -> dict[str, Grid]:
    """Committed grids by name or path, synthetic ones by surface name."""
    out = {}
    for name in names:
        out[Path(name).stem] = synthetic_grid(name) if name in SYNTHETIC or name == "nan_cliff" else load(name)
    return out


def measure(grid: Grid, methods: list[str], seeds: range, trials: int, python: Path) -> dict[str, dict]:
    """Every method's runs on `grid`: {method: {"runs": [Run per seed], "seconds": wall seconds}}."""
    results = {}
    for method in [m for m in methods if m not in EXTERNAL]:
        start = time.perf_counter()
        results[method] = {"runs": [run_method(grid, method, s, trials) for s in seeds]}
        results[method]["seconds"] = time.perf_counter() - start
    external = [m for m in methods if m in EXTERNAL]
    if external and not python.is_file():
        print(f"(skipping {', '.join(external)}: no {python}; see this script's docstring)", file=sys.stderr)
    elif external:
        start = time.perf_counter()
        runs = run_external(grid, external, seeds, trials, python)
        seconds = (time.perf_counter() - start) / len(external)
        results |= {m: {"runs": runs[m], "seconds": seconds} for m in external}
    return results


def print_grid(name: str, grid: Grid, results: dict[str, dict], trials: int) -> None:
    goal, total = grid.target, grid.total
    near = sum(c[-1][1] <= goal for c in grid.curves.values())
    print(
        f"\n### {name}: {len(grid.curves)} points, {total / 1e6:.1f}M tokens, best {grid.best:.4f}, "
        f"target <= {goal:.4f} (+{TOLERANCE:.1%}): {near} points qualify; <= {trials} trials per seed\n"
    )
    print("| method | seeds reaching it | median tokens (share of the grid's) | median trials | repeats | s per seed |")
    print("|---|---|---|---|---|---|")
    for method, result in results.items():
        runs = result["runs"]
        tokens = statistics.median(r.tokens for r in runs)
        trials_to = statistics.median(r.trials if math.isfinite(r.tokens) else math.inf for r in runs)
        share = f"{tokens / 1e6:.1f}M ({tokens / total:.1%})" if math.isfinite(tokens) else "not reached"
        print(
            f"| {method} | {sum(math.isfinite(r.tokens) for r in runs)}/{len(runs)} | {share} | "
            f"{trials_to if math.isfinite(trials_to) else '-'} | {statistics.median(r.repeats for r in runs):.0f} | "
            f"{result['seconds'] / len(runs):.1f} |"
        )
    floor = grid.oracle_floor()
    share = f"{floor / 1e6:.1f}M ({floor / total:.1%})"
    print(f"| oracle floor (cheapest qualifying point alone) | - | {share} | 1 | - | - |")
    sys.stdout.flush()


def summary(grid: Grid, results: dict[str, dict], trials: int) -> dict:
    """The machine-readable record of one grid (per-seed tokens; inf where a seed did not reach it)."""
    return {
        "points": len(grid.curves),
        "total_tokens": grid.total,
        "best": grid.best,
        "target": grid.target,
        "oracle_floor_tokens": grid.oracle_floor(),
        "trials": trials,
        "methods": {
            m: {
                "tokens": [r.tokens for r in res["runs"]],
                "trials": [r.trials for r in res["runs"]],
                "repeats": [r.repeats for r in res["runs"]],
                "seconds": res["seconds"],
            }
            for m, res in results.items()
        },
    }


def worker(argv: list[str]) -> None:
    """`--worker GRID_JSON OUT_JSON --methods ... --seeds N --first-seed S --trials T` (peers' venv)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("grid", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--methods", nargs="+")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--first-seed", type=int)
    parser.add_argument("--trials", type=int)
    args = parser.parse_args(argv)
    grid, seeds = load(args.grid), range(args.first_seed, args.first_seed + args.seeds)
    runs = {m: [asdict(run_method(grid, m, s, args.trials)) for s in seeds] for m in args.methods}
    args.out.write_text(json.dumps(runs))


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2:])
        return
    committed = sorted(p.stem for p in GRIDS.glob("*.json"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", nargs="*", default=[*committed, *SYNTHETIC], help="committed grids or surfaces")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=40, help="trained trials per search (pruned ones count)")
    parser.add_argument("--methods", nargs="*", default=[*OPTUNA, *EXTERNAL], choices=[*OPTUNA, *EXTERNAL])
    parser.add_argument("--peer-python", type=Path, default=PEER_PYTHON, help="the interpreter with dehb and smac")
    parser.add_argument("--out", type=Path, help="write per-seed tokens as JSON here")
    args = parser.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    record = {"tolerance": TOLERANCE, "grids": {}}
    for name, grid in grids_named(args.grids).items():
        results = measure(grid, args.methods, seeds, args.trials, args.peer_python)
        print_grid(name, grid, results, args.trials)
        record["grids"][name] = summary(grid, results, args.trials)
        if args.out:  # after every grid, so a long run leaves what it has
            args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
