"""Exports that load on first use (PEP 562), for packages a Ray worker imports on its way to a trial."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package` that imports `exports[name]` (a module) when `name` is first read.

    Example:
        >>> __getattr__ = lazy_exports(__name__, {"Reporter": "automix.trial._reporter"})  # doctest: +SKIP
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)  # read once: later lookups skip this function
        return value

    return __getattr__
