"""The package's import surface: layers never point up, and the exported API (docs/design.md, "Layers")."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded_after(module: str, forbidden: tuple[str, ...]) -> list[str]:
    code = f"import sys, {module}\nprint(' '.join(m for m in {forbidden!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, timeout=120, capture_output=True, text=True)
    return out.stdout.split()


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("automix.protocol", ("ray", "torch", "mlflow", "optuna")),
        ("automix.samplers", ("ray", "torch", "mlflow", "automix.engine", "automix.study", "automix.trial")),
        ("automix.tracking", ("ray", "torch", "automix.engine", "automix.trial")),
        ("automix.study", ("ray", "torch", "automix.engine", "automix.trial")),
        ("automix.analysis", ("ray", "torch", "automix.engine", "automix.trial")),
        # A Ray worker unpickles a trial: it must not pay for MLflow or the driver's engine.
        ("automix.trial._trainable", ("mlflow", "automix.engine", "automix.tracking", "automix.scaling")),
    ],
)
def test_layers_do_not_import_the_layers_above(module, forbidden):
    assert _loaded_after(module, forbidden) == []


def test_a_config_checks_its_sampler_name_in_the_registry_without_the_engine():
    """`search.sampler` is looked up in the samplers' registry (the one list of names) when a config
    is validated; that loads the samplers layer, never Ray, torch or MLflow."""
    code = (
        "import sys\n"
        "from automix.config import SearchConfig\n"
        "from automix.samplers import sampler_names\n"
        "assert all(SearchConfig(sampler=name).sampler == name for name in sampler_names())\n"
        "forbidden = ('ray', 'torch', 'mlflow', 'automix.engine')\n"
        "print(' '.join(m for m in forbidden if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, timeout=120, capture_output=True, text=True)
    assert out.stdout.split() == []


def test_exports_are_the_functions_after_every_subpackage_loads():
    code = (
        "import automix, automix.engine, automix.scaling, automix.analysis\n"
        "from automix.engine import search\n"
        "assert automix.search is search and callable(automix.transfer), (automix.search, automix.transfer)\n"
        "assert automix.SearchSpace.__name__ == 'SearchSpace'\n"
        "assert all(getattr(automix, name) is not None for name in automix.__all__)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
