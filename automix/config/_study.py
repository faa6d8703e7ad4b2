"""Study configuration: YAML file + `key=value` overrides → a validated `StudyConfig`.

A study config is a trainer config (data, model, optim, budget: the values every trial starts
from) plus how to search (`search`) and where to track (`tracking`). Every failure is a
`ConfigError` with one line that names the key and says how to fix it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from automix.errors import ConfigError
from trainer.config import RunSettings, TrainConfig


def _no_scheduler(value: object) -> object:
    """`none` for the words a user means it by: YAML reads off/no/false as False."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "no", "false")):
        return "none"
    return value


def _registered_sampler(name: str) -> str:
    """`name` if it is a registered sampler, else the error a Literal of the names would give.

    The names live in one place, the samplers' registry (automix/samplers/_registry.py). It is
    looked up when a config is validated, not when this module loads: the samplers import this
    layer (SearchSpace, ConfigError), and a name registered later is accepted too.
    """
    from automix.samplers import sampler_names

    names = sampler_names()
    if name not in names:
        quoted = [repr(n) for n in names]
        expected = f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else quoted[0]
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchConfig(_Strict):
    """How trials are suggested, scheduled, resourced and budgeted."""

    space: str = Field("search_spaces/paper.yaml", description="search space YAML")
    sampler: Annotated[str, AfterValidator(_registered_sampler)] = Field(
        "tpe", description="a registered sampler name (automix.samplers.sampler_names())"
    )
    n_trials: int = Field(12, ge=1, description="trained trials to reach (rejected suggestions don't count)")
    concurrency: int = Field(2, ge=1, description="trials running at once")
    cpus_per_trial: float = Field(1, gt=0)
    gpus_per_trial: float | Literal["auto"] = Field(
        "auto",
        description="GPU share per trial; auto packs as many trials per GPU as memory, compute and CPU cores "
        "allow (automix/resources/_packing.py), 0 without a GPU; a fraction such as 0.25 sets it",
    )
    scheduler: Annotated[Literal["asha", "median", "none"], BeforeValidator(_no_scheduler)] = Field(
        "asha", description="early stopping: asha, median, or none (also off/false/no) to train every trial to its end"
    )
    fidelity: Literal["progress", "tokens"] = Field(
        "progress",
        description="where schedulers compare trials: at the same share of each trial's own budget (progress), "
        "or at equal tokens trained (tokens: a mixed or long run looks worse early)",
    )
    grace_progress: float = Field(1 / 9, gt=0, le=1, description="first stopping point on the progress axis")
    grace_tokens: int | None = Field(
        None, ge=1, description="first stopping point on the tokens axis; default 2 evaluations"
    )
    reduction_factor: float = Field(3, gt=1)
    rungs: int | None = Field(
        1, ge=1, description="ASHA's stopping points per trial (grace·rf^k, k < rungs); none: every one before the end"
    )
    metric: str | list[str] = Field("target_val_loss", description="a list for multi-objective search")
    mode: Literal["min", "max"] | list[Literal["min", "max"]] = "min"
    seed: int = 0
    max_train_tokens: int | None = Field(None, ge=1, description="per-trial cap on T: larger configs are rejected")
    max_total_tokens: int | None = Field(None, ge=1, description="stop the search after this many tokens")
    time_budget_s: float | None = Field(None, gt=0, description="stop the search after this wall time")
    enqueue: list[dict[str, Any]] = Field(default_factory=list, description="known configs to try first")
    trial_retries: int = Field(0, ge=0, description="Ray restarts of a failed trial; it resumes from its checkpoint")

    @model_validator(mode="after")
    def _metric_mode_shapes(self) -> SearchConfig:
        if isinstance(self.metric, list) != isinstance(self.mode, list) or (
            isinstance(self.metric, list) and len(self.metric) != len(self.mode)
        ):
            raise ValueError("metric and mode must both be single values or lists of the same length")
        return self

    @property
    def metrics(self) -> list[str]:
        return self.metric if isinstance(self.metric, list) else [self.metric]

    @property
    def modes(self) -> list[str]:
        return self.mode if isinstance(self.mode, list) else [self.mode]


class TrackingConfig(_Strict):
    """MLflow: an embedded sqlite store in the work directory unless `uri` names another."""

    uri: str | None = None
    experiment: str | None = Field(None, description="default: the study name")
    log_models: bool = Field(
        True, description="each COMPLETE trial's final checkpoint and tokenizer as artifacts of its run (model/)"
    )
    system_metrics: Literal["auto"] | bool = Field(
        "auto",
        description="MLflow's system metrics (CPU, memory, GPU) on each trial's run; auto: when trials use a GPU",
    )


class StudyConfig(RunSettings):
    """Everything `automix search` needs: the trainer's run settings (`trainer.config.RunSettings`:
    data, model, optim, budget, seed, cadences, device) every trial starts from, plus the study's
    name and storage, how to search and where to track."""

    study: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    work_dir: str | None = Field(None, description="default: runs/<study>")
    storage: str | None = Field(
        None,
        description="Optuna storage: an SQLAlchemy URL (postgresql+psycopg2://...), journal:PATH, or the default "
        "sqlite file in work_dir; the --storage flag overrides it",
    )
    storage_retry_s: float = Field(60, ge=0, description="how long calls wait out an unreachable database server")
    search: SearchConfig = SearchConfig()
    tracking: TrackingConfig = TrackingConfig()

    def base_train_config(self) -> TrainConfig:
        """The trainer config every trial starts from, before the space's params are applied."""
        return TrainConfig.model_validate(self.model_dump(include=set(RunSettings.model_fields)))


def default_cache_dir() -> Path:
    """Where content-keyed caches live unless `data.cache_dir` says otherwise.

    One folder per user, shared by every study ($AUTOMIX_CACHE, else $XDG_CACHE_HOME/automix, else
    ~/.cache/automix): a corpus is tokenized once per content hash, not once per work directory.
    """
    if os.environ.get("AUTOMIX_CACHE"):
        return Path(os.environ["AUTOMIX_CACHE"]).expanduser().resolve()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser().resolve() / "automix"


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: '{k}' is not a section")
    node[keys[-1]] = value


def _resolve_paths(raw: dict) -> None:
    """Make corpus, cache and work paths absolute: Ray runs trials in other working directories."""
    data = raw.get("data") or {}
    for key in ("target", "target_valid", "auxiliary", "aux_valid", "cache_dir"):
        value = data.get(key)
        if isinstance(value, str):
            data[key] = _local_hub_path(value) if value.startswith("hf:") else str(Path(value).expanduser().resolve())
    for key in ("eval_sets", "aux_eval_sets"):
        if isinstance(data.get(key), dict):
            data[key] = {name: str(Path(str(v)).expanduser().resolve()) for name, v in data[key].items()}
    if isinstance(raw.get("work_dir"), str):
        raw["work_dir"] = str(Path(raw["work_dir"]).expanduser().resolve())


def _local_hub_path(source: str) -> str:
    """`hf:PATH[:CONFIG]` with PATH made absolute where it is a local folder, else `source` as given.

    `datasets` reads a name that is a local folder from there before asking the hub; an absolute
    path keeps that folder (and the token cache's key) the same in every working directory.
    """
    name, sep, config = source[len("hf:") :].partition(":")
    folder = Path(name).expanduser()
    return f"hf:{folder.resolve()}{sep}{config}" if name and folder.is_dir() else source


def format_validation_error(err: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line from pydantic's report: the first problem, with the key that has it.

    With `model` (the validated class), an unknown key gets the closest known keys as a hint,
    searched in its own section and in every other one (`n_trials` → `search.n_trials`).
    """
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    if first["type"] == "extra_forbidden":
        hint = did_you_mean(where, model) if model is not None else ""
        return f"unknown key '{where}'{hint}: remove it or check its spelling"
    if first["type"] == "missing":
        return f"missing key '{where}': add it to the config"
    got = first.get("input")
    # A section's own check (a model validator) gets the whole section as input: not worth printing.
    return f"'{where}': {first['msg']}" + ("" if isinstance(got, dict | list) else f" (got {got!r})")


def config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key a config model accepts (`search.n_trials`, `optim.learning_rate`, ...)."""
    keys = []
    for name, info in model.model_fields.items():
        keys.append(f"{prefix}{name}")
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys += config_keys(sub, f"{prefix}{name}.")
    return keys


def did_you_mean(key: str, model: type[BaseModel] | list[str]) -> str:
    """` (did you mean 'x' or 'y'?)` for the known keys closest to `key`, or '' when none is close."""
    known = model if isinstance(model, list) else config_keys(model)
    section, _, leaf = key.rpartition(".")
    # The same name in another section first (a key put in the wrong place), then the closest
    # spelling in its own section, then the closest spelling anywhere.
    close = [k for k in known if k.rpartition(".")[2] == leaf and k != key]
    siblings = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == section}
    close += [siblings[m] for m in difflib.get_close_matches(leaf, list(siblings), n=1, cutoff=0.7)]
    if not close:
        leaves = {k.rpartition(".")[2]: k for k in known}
        close = [leaves[m] for m in difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.75)]
    close = list(dict.fromkeys(close))[:2]
    return f" (did you mean {' or '.join(repr(k) for k in close)}?)" if close else ""


def read_yaml_mapping(path: Path, name: str, shape: str) -> dict:
    """The YAML mapping in `path`; a one-line ConfigError, naming the file as `name`, if it is not one."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{name} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{name} must hold {shape}")
    return raw


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> StudyConfig:
    """Read a YAML study config, apply `a.b=value` overrides (values parsed as YAML), validate.

    Args:
        path: The YAML file (data, model, optim, budget, search, tracking sections).
        overrides: `key=value` items with dotted keys, e.g. `search.n_trials=4`.

    Returns:
        The validated `StudyConfig`, with corpus, cache and work paths made absolute.

    Raises:
        ConfigError: one line that says whether the key came from the file or from an override,
            and suggests the closest known key for an unknown one.

    Example:
        >>> config = load_config("examples/ar_en_cpu.yaml", ["search.n_trials=4"])  # doctest: +SKIP
        >>> config.base_train_config().budget.total_tokens  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found: pass the path of a YAML study config")
    raw = read_yaml_mapping(path, str(path), "a mapping of config sections")
    given: dict[str, str] = {}  # dotted key -> the override that set it
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not key=value (e.g. search.n_trials=4)")
        _set_dotted(raw, key.strip(), yaml.safe_load(value))
        given[key.strip()] = item
    raw.setdefault("data", {}).setdefault("cache_dir", None)
    if raw["data"]["cache_dir"] is None:
        raw["data"]["cache_dir"] = str(default_cache_dir())
    _resolve_paths(raw)
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_where(e, path, given) + format_validation_error(e, StudyConfig)) from None


def _where(err: ValidationError, path: Path, given: dict[str, str]) -> str:
    """`override X=Y: ` when the failing key came from the command line, else `FILE: `."""
    loc = ".".join(str(p) for p in err.errors()[0]["loc"])
    for key, item in given.items():
        if loc == key or loc.startswith(f"{key}.") or key.startswith(f"{loc}."):
            return f"override {item} (command line): "
    return f"{path}: "
