"""The package's import surface: what a Ray worker pays for, and the exported API."""

from __future__ import annotations

import subprocess
import sys


def _python(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_worker_imports_the_trainable_without_mlflow_or_samplers():
    _python(
        "import sys, automix.trainable\n"
        "heavy = [m for m in ('mlflow', 'automix.search', 'automix.tracking', 'automix.transfer')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy"
    )


def test_exports_stay_functions_after_their_submodules_load():
    _python(
        "import automix, automix.search, automix.transfer\n"
        "from automix.search import search\n"
        "assert automix.search is search and callable(automix.transfer), (automix.search, automix.transfer)\n"
        "assert automix.SearchSpace.__name__ == 'SearchSpace'"
    )
