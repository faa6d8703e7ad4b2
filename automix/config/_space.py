"""Search spaces: a YAML spec → Optuna distributions, fixed values, and the map onto a trainer config.

The four vocabulary names (weight_decay, learning_rate, epochs, mix_ratio; docs/design.md,
"Vocabulary") map onto the trainer's fields; any other name is a dotted path into the trainer
config (`optim.beta2`, `model.depth`). `parse_space` has the format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna.distributions as od
from pydantic import ValidationError

from automix.config._study import config_keys, did_you_mean, format_validation_error, read_yaml_mapping
from automix.errors import ConfigError
from trainer.config import TrainConfig

ALIASES = {
    "weight_decay": "optim.weight_decay",
    "learning_rate": "optim.learning_rate",
    "epochs": "budget.epochs",
    "mix_ratio": "budget.mix_ratio",
    "unique_tokens": "budget.unique_tokens",
}
BUNDLED = Path(__file__).resolve().parents[2] / "search_spaces"


@dataclass
class SearchSpace:
    """Distributions to search and values to fix; `apply` turns a trial's params into a config."""

    distributions: dict[str, od.BaseDistribution]
    fixed: dict[str, Any] = field(default_factory=dict)
    source: str = "<python>"
    grid: dict[str, list] = field(default_factory=dict)  # explicit sweep values for the grid sampler

    def apply(self, params: dict[str, Any], base: TrainConfig) -> TrainConfig:
        """Return `base` with fixed values and `params` written into it (validated)."""
        tree = base.model_dump()
        for name, value in {**self.fixed, **params}.items():
            *parents, leaf = ALIASES.get(name, name).split(".")
            node = tree
            for key in parents:
                node = node[key]
            node[leaf] = value
        return TrainConfig.model_validate(tree)


SPEC_KEYS = {
    "float": ("type", "low", "high", "log", "step", "grid"),
    "int": ("type", "low", "high", "log", "step", "grid"),
    "categorical": ("type", "choices", "grid"),
}


def _distribution(name: str, spec: dict, source: str) -> od.BaseDistribution:
    kind = spec.get("type", "float")
    if kind not in SPEC_KEYS:
        raise ConfigError(f"search space {source}: param '{name}': type '{kind}' is not float, int or categorical")
    unknown = [k for k in spec if k not in SPEC_KEYS[kind]]
    if unknown:
        hint = did_you_mean(str(unknown[0]), list(SPEC_KEYS[kind]))
        raise ConfigError(
            f"search space {source}: param '{name}': unknown key '{unknown[0]}'{hint}; "
            f"{'an' if kind == 'int' else 'a'} {kind} param takes {', '.join(SPEC_KEYS[kind])}"
        )
    try:
        if kind == "float":
            return od.FloatDistribution(spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step"))
        if kind == "int":
            return od.IntDistribution(spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step", 1))
        return od.CategoricalDistribution(spec["choices"])
    except KeyError as e:
        raise ConfigError(f"search space {source}: param '{name}': missing key {e} (spec {spec})") from None
    except (ValueError, TypeError) as e:
        raise ConfigError(f"search space {source}: param '{name}': {e} (spec {spec})") from None


def resolve_space_path(path: str | Path) -> Path:
    """A path as given, else the file of that name among the bundled `search_spaces/`."""
    p = Path(path)
    for candidate in (p, BUNDLED / p.name, BUNDLED / f"{p.name}.yaml"):
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(f"search space {path} not found: give a YAML path or one of {sorted(BUNDLED.glob('*.yaml'))}")


def parse_space(params: dict[str, Any], source: str = "<python>") -> SearchSpace:
    """Build a space from the `params` mapping of a space file.

    A plain value is fixed, not searched; a `grid: [...]` list gives the values the `grid` sampler
    sweeps (a paper-style full sweep), the other samplers use the range::

        params:
          weight_decay:  {type: float, low: 0.01, high: 10, log: true}
          epochs:        {type: int, low: 1, high: 32, log: true}
          mix_ratio:     {type: float, low: 0.0, high: 0.75, step: 0.05}
          model.depth:   {type: categorical, choices: [2, 3]}
          learning_rate: 3.0e-3
    """
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"search space {source} needs a non-empty 'params' mapping")
    distributions, fixed, grid = {}, {}, {}
    for name, spec in params.items():
        if not isinstance(spec, dict):
            fixed[name] = spec
            continue
        spec = dict(spec)
        if "grid" in spec:
            grid[name] = list(spec.pop("grid"))
        distributions[name] = _distribution(name, spec, source)
        bad = [v for v in grid.get(name, []) if not _in_range(distributions[name], v)]
        if bad:
            raise ConfigError(f"search space {source}: param '{name}': grid values {bad} lie outside its range")
    return SearchSpace(distributions, fixed, source, grid)


def load_space(path: str | Path, base: TrainConfig | None = None) -> SearchSpace:
    """Parse a space YAML strictly (the format: `parse_space`).

    Args:
        path: The space file; a bare name is looked up in the installed `search_spaces/`.
        base: A trainer config: every name must then map onto one of its fields, and every bound,
            choice and grid value must be one the trainer accepts.

    Returns:
        The `SearchSpace`: distributions to search, values to fix, grid values.

    Raises:
        ConfigError: one line naming the file (`params` is the only top-level key).

    Example:
        >>> space = load_space("search_spaces/paper.yaml")  # doctest: +SKIP
        >>> sorted(space.distributions)  # doctest: +SKIP
    """
    source = resolve_space_path(path)
    raw = read_yaml_mapping(source, f"search space {source}", "a mapping with a 'params' key")
    for key in raw:
        if key != "params":
            # A param written at the top level (or a misspelt `params`) would otherwise be ignored.
            where = " (params are listed under 'params:')" if key in ALIASES or "." in str(key) else ""
            hint = did_you_mean(str(key), ["params"]) or where
            raise ConfigError(f"search space {source}: unknown top-level key '{key}'{hint}: only 'params' is read")
    space = parse_space(raw.get("params"), str(source))
    if base is not None:
        _check_domain(space, base, source)
    return space


def _check_domain(space: SearchSpace, base: TrainConfig, source: Path) -> None:
    """Every name is a trainer field, and every value the space can suggest passes the trainer's checks."""
    known = [*ALIASES, *config_keys(TrainConfig)]
    for name in [*space.distributions, *space.fixed]:
        if name not in ALIASES and name not in known:
            raise ConfigError(
                f"search space {source}: param '{name}' is not a trainer config field{did_you_mean(name, known)}"
            )
    low = {n: _any_value(d) for n, d in space.distributions.items()}
    probes = [("", low)]
    for name, d in space.distributions.items():
        categorical = isinstance(d, od.CategoricalDistribution)
        values = [("choice", v) for v in d.choices] if categorical else [("low", d.low), ("high", d.high)]
        values += [("grid value", v) for v in space.grid.get(name, [])]
        probes += [(f"{name} {label}={v!r}", {**low, name: v}) for label, v in values]
    for what, probe in probes:
        try:
            space.apply(probe, base)
        except (KeyError, TypeError) as e:
            raise ConfigError(f"search space {source}: param {e} is not a trainer config field") from None
        except ValidationError as e:
            what = what or _named(e, space, low)
            where = f"{what} is outside what the trainer accepts: " if what else ""
            raise ConfigError(f"search space {source}: {where}{format_validation_error(e)}") from None


def _named(err: ValidationError, space: SearchSpace, values: dict[str, Any]) -> str:
    """`name low=value` for the searched param whose trainer field the error is about, else ''."""
    first = err.errors()[0]
    loc, msg = ".".join(str(p) for p in first["loc"]), first["msg"]
    for name, value in values.items():
        field = ALIASES.get(name, name)
        # The field's own check, or its section's check that names it (budget: "budget.epochs ...").
        if field == loc or (field.startswith(f"{loc}.") and field in msg):
            label = "choice" if isinstance(space.distributions[name], od.CategoricalDistribution) else "low"
            return f"{name} {label}={value!r}"
    return ""


SpaceLike = SearchSpace | str | Path | dict[str, Any]


def as_space(space: SpaceLike) -> SearchSpace:
    """A parsed space from any form the Python API takes: a `SearchSpace`, a space file's path, a dict
    of Optuna distributions, or a dict in the space-file format (with or without `params`)."""
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, str | Path):
        return load_space(space)
    if not isinstance(space, dict) or not space:
        raise ConfigError(
            f"space must be a SearchSpace, a path or a non-empty dict, got {type(space).__name__}: "
            "e.g. space={'x': {'type': 'float', 'low': 0, 'high': 1}}"
        )
    if all(isinstance(d, od.BaseDistribution) for d in space.values()):
        return SearchSpace(dict(space))
    params = space["params"] if set(space) == {"params"} else space
    return parse_space(params)


def _in_range(d: od.BaseDistribution, value: Any) -> bool:
    if isinstance(d, od.CategoricalDistribution):
        return value in d.choices
    return d.low <= value <= d.high


def _any_value(d: od.BaseDistribution) -> Any:
    if isinstance(d, od.CategoricalDistribution):
        return d.choices[0]
    return d.low
