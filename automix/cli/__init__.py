"""`automix search | train | report | compare | multiplier | ui | μP commands`: a thin layer over the Python API.

μP commands: `transfer`, `coord-check`, `verify-transfer`, `export`. One module per group of
commands (`_run`, `_analysis`, `_scaling`, `_ui`), each registering its own subcommands; a command
imports what it uses when it runs, so `automix --help` and `automix ui` load no torch and no Ray.
Bad input (config, space, corpora, budget) ends with one line on stderr and exit code 2.
"""

from automix.cli._main import EXIT_USAGE, build_parser, main

__all__ = ["EXIT_USAGE", "build_parser", "main"]
