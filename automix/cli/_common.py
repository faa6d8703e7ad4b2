"""What the commands share: how a command names its study, and small argument helpers.

Nothing heavy at import: each command imports what it uses when it runs (docs/design.md, "Layers").
"""

from __future__ import annotations

import argparse

from automix.errors import ConfigError

STORAGE_HELP = "Optuna storage URL or journal:PATH; overrides the config's storage (default: sqlite in work_dir)"


def study_args(p: argparse.ArgumentParser, config_help: str = "study config YAML", optional: bool = False) -> None:
    """`CONFIG [key=value ...] [--storage URL]`: how every command names the study it opens."""
    p.add_argument("config", nargs="?" if optional else None, help=config_help)
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. search.n_trials=4 storage=journal:s.log")
    p.add_argument("--storage", help=STORAGE_HELP)


def workspace(args: argparse.Namespace):
    """The study config of a command (file + `key=value` overrides) and its workspace (`--storage` wins)."""
    from automix.config import load_config
    from automix.study import Workspace

    config = with_storage(load_config(args.config, args.overrides), args.storage)
    return config, Workspace.from_config(config)


def with_storage(config, storage: str | None):
    """`config` with the `--storage` flag's storage, when one is given."""
    return config.model_copy(update={"storage": storage}) if storage else config


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def tracking_store(args: argparse.Namespace) -> tuple[str, str | None]:
    """The MLflow store a command names (`--tracking-uri`, a CONFIG's, or `--work-dir`'s) and its experiment."""
    if args.tracking_uri:
        return args.tracking_uri, None
    if args.config:
        ws = workspace(args)[1]
        return ws.tracking_uri, ws.experiment
    from automix.study import Workspace

    return Workspace.at(args.work_dir).tracking_uri, None


def int_list(text: str, flag: str) -> list[int]:
    """`1,2` as [1, 2]; a ConfigError naming `flag` otherwise."""
    try:
        return [int(float(x)) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated integers (e.g. 1,2), got '{text}'") from None


def print_rows(rows: list[dict]) -> None:
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
