"""Lazy exports for a package: names imported from their submodule on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], table: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``table`` maps a public name to its submodule.

    The first access imports ``package.<submodule>`` and caches the value in ``namespace`` (the
    package's globals), so later accesses cost nothing.

    >>> ns = {}
    >>> get, names = lazy_exports("fsm_trainer", ns, {"TrainState": "state"})
    >>> get("TrainState").__name__, "TrainState" in ns, names()
    ('TrainState', True, ['TrainState'])
    """

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg)
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *table})

    return __getattr__, __dir__
