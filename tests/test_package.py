"""The package's import surface: layers never point up, commands load only what they use, and the
exported API (docs/design.md, "Layers"). Each check runs in a fresh interpreter."""

from __future__ import annotations

import ast
import json
import os
import pathlib
import subprocess
import sys

import pytest

DRIVER_SIDE = ("automix.driver", "automix.scheduling", "automix.console")
LAYERS = [
    ("automix.protocol", ("ray", "torch", "mlflow", "optuna")),
    ("automix.errors", ("ray", "torch", "mlflow", "optuna", "automix.config")),
    ("trainer.errors", ("torch", "trainer.config")),
    ("automix.samplers", ("ray", "torch", "mlflow", *DRIVER_SIDE, "automix.study", "automix.trial")),
    ("automix.tracking", ("ray", "torch", *DRIVER_SIDE, "automix.trial")),
    ("automix.study", ("ray", "torch", *DRIVER_SIDE, "automix.trial")),
    ("automix.analysis", ("ray", "torch", *DRIVER_SIDE, "automix.trial")),
    ("automix.resources", ("ray", "torch", "mlflow", "optuna", *DRIVER_SIDE)),
    ("automix.console", ("torch", "mlflow", "optuna", "automix.driver", "automix.scheduling")),
    ("automix.scheduling", ("torch", "automix.driver")),
    # A Ray worker unpickles a trial: it must not pay for MLflow or the driver's side, nor, for a
    # user's own objective, for torch and the trainer (TrainerObjective's unpickling brings those).
    ("automix.trial._trainable", ("mlflow", "torch", "trainer", *DRIVER_SIDE, "automix.tracking", "automix.scaling")),
]
# Each command imports what it uses before it reads its input: here it stops at the missing input.
COMMANDS = {
    "ui": ["ui", "--work-dir", "{tmp}/nothing"],  # no MLflow store there: refused after its imports
    "report": ["report", "{tmp}/missing.yaml"],
    "compare": ["compare", "{tmp}/missing.yaml", "{tmp}/missing.yaml"],
}
# Imported once in the probe before it forks a child per check: libraries every checked layer may
# load (none of them is in a forbidden list), so that each child pays only for its own imports.
PRELOAD = ("numpy", "pandas", "pydantic", "yaml", "scipy.stats", "sqlalchemy", "rich.console")
PROBE = r"""
import contextlib, io, json, os, sys
for name in sys.argv[1].split(","):
    __import__(name)
results = {}
for key, check in json.loads(sys.argv[2]).items():
    read, write = os.pipe()
    if os.fork() == 0:  # a child per check: what it imports stays in it
        os.close(read)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            if check["module"]:
                __import__(check["module"])
                rc = None
            else:
                from automix.cli import main
                rc = main(check["argv"])
        loaded = [m for m in check["forbidden"] if m in sys.modules]
        os.write(write, json.dumps({"loaded": loaded, "rc": rc, "stderr": err.getvalue()}).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        results[key] = json.loads(pipe.read() or "null")
    os.wait()
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> dict[str, dict]:
    """The modules each check loaded, from one interpreter that forks a child per check."""
    tmp = tmp_path_factory.mktemp("commands")
    checks = {module: {"module": module, "forbidden": forbidden} for module, forbidden in LAYERS}
    for name, argv in COMMANDS.items():
        argv = [a.format(tmp=tmp) for a in argv]
        checks[name] = {"module": None, "argv": argv, "forbidden": ["torch", "ray"]}
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # no BLAS threads to fork
    cmd = [sys.executable, "-c", PROBE, ",".join(PRELOAD), json.dumps(checks)]
    out = subprocess.run(cmd, check=True, timeout=300, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.parametrize("module", [module for module, _ in LAYERS])
def test_layers_do_not_import_the_layers_above(module, probe):
    assert probe[module]["loaded"] == []


@pytest.mark.parametrize("command", list(COMMANDS))
def test_ui_report_and_compare_load_no_torch_and_no_ray(command, probe):
    assert probe[command]["rc"] == 2 and "automix: error:" in probe[command]["stderr"]
    assert probe[command]["loaded"] == []


def test_automix_help_loads_no_torch_and_no_ray():
    """`python -X importtime -m automix --help`: the parser and every command module import nothing heavy."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "automix", "--help"],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    loaded = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "usage: automix" in out.stdout
    assert not {m for m in loaded if m.split(".")[0] in ("torch", "ray")}, sorted(loaded)


def test_a_config_checks_its_sampler_name_in_the_registry_without_the_driver():
    """`search.sampler` is looked up in the samplers' registry (the one list of names) when a config
    is validated; that loads the samplers layer, never Ray, torch or MLflow."""
    code = (
        "import sys\n"
        "from automix.config import SearchConfig\n"
        "from automix.samplers import sampler_names\n"
        "assert all(SearchConfig(sampler=name).sampler == name for name in sampler_names())\n"
        f"forbidden = {('ray', 'torch', 'mlflow', *DRIVER_SIDE)!r}\n"
        "print(' '.join(m for m in forbidden if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, timeout=120, capture_output=True, text=True)
    assert out.stdout.split() == []


def test_exports_are_the_functions_after_every_subpackage_loads():
    code = (
        "import automix, automix.driver, automix.scaling, automix.analysis\n"
        "from automix.driver import search\n"
        "assert automix.search is search and callable(automix.transfer), (automix.search, automix.transfer)\n"
        "assert automix.SearchSpace.__name__ == 'SearchSpace'\n"
        "assert all(getattr(automix, name) is not None for name in automix.__all__)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _runtime_imports(path, name: str, modules: set[str]) -> set[str]:
    """The in-repo modules `path` imports when it runs (an `if TYPE_CHECKING:` block imports nothing)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING")
        for child in block.body
        for node in ast.walk(child)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            parts = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            base = ".".join([*parts, *([node.module] if node.module else [])])
            found |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return (found & modules) - {name}


def test_no_import_circles_in_automix_and_trainer():
    """docs/design.md, "Layers": every module's runtime imports, lazy ones included, form no circle."""
    root = pathlib.Path(__file__).resolve().parents[1]
    paths = {}
    for path in [*root.glob("automix/**/*.py"), *root.glob("trainer/**/*.py")]:
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        paths[name.removesuffix(".__init__")] = path
    graph = {name: _runtime_imports(path, name, set(paths)) for name, path in paths.items()}
    circles, state = [], {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for other in sorted(graph[name]):
            if state.get(other) == "open":
                circles.append([*trail[trail.index(other) :], other])
            elif other not in state:
                visit(other, [*trail, other])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert len(graph) > 50 and not circles, circles


def test_no_module_is_over_400_lines():
    """docs/design.md, "Layers": a module is read at once; past 400 lines it holds two concepts."""
    root = pathlib.Path(__file__).resolve().parents[1]
    lengths = {
        str(p.relative_to(root)): len(p.read_text().splitlines())
        for p in [*root.glob("automix/**/*.py"), *root.glob("trainer/**/*.py")]
    }
    assert len(lengths) > 50 and {p: n for p, n in lengths.items() if n > 400} == {}
