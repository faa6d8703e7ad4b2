"""The `automix` parser and entry point: each command group registers its own subcommands."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from automix.cli._analysis import add_commands as add_analysis
from automix.cli._run import add_commands as add_run
from automix.cli._scaling import add_commands as add_scaling
from automix.cli._ui import add_commands as add_ui
from automix.errors import ConfigError
from trainer.errors import CorpusError

EXIT_USAGE = 2
DESCRIPTION = (
    "`automix search | train | report | compare | multiplier | ui | μP commands`: a thin layer over the Python API."
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command, in the order `automix --help` lists them."""
    parser = argparse.ArgumentParser(prog="automix", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for add_commands in (add_run, add_analysis, add_scaling, add_ui):
        add_commands(sub)
    return parser


# Messages raised in Python name keyword arguments; on the command line they are flags.
_FLAGS = {"resume=True": "--resume", "join=True": "--join"}


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `search --verbose`: Ray's and MLflow's own output on the console too (it always goes to
    # WORK/automix.log); read here so that it works with or without a parser entry for it.
    verbose = argv[:1] == ["search"] and "--verbose" in argv
    argv = [a for a in argv if not (verbose and a == "--verbose")]
    # Overrides may follow flags (`search cfg.yaml --resume a.b=1`): argparse leaves those unparsed.
    args, extra = parser.parse_known_args(argv)
    stray = [e for e in extra if e.startswith("-") or "=" not in e or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    logging.basicConfig(level=os.environ.get("AUTOMIX_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    before = os.environ.get("AUTOMIX_VERBOSE")
    if verbose or getattr(args, "verbose", False):
        os.environ["AUTOMIX_VERBOSE"] = "1"
    try:
        return args.func(args)
    except (ConfigError, CorpusError) as e:
        message = str(e)
        for python, flag in _FLAGS.items():
            message = message.replace(python, flag)
        print(f"automix: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM during a search: its cleanup has run
        print("automix: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    finally:
        if before is None:
            os.environ.pop("AUTOMIX_VERBOSE", None)
        else:
            os.environ["AUTOMIX_VERBOSE"] = before
