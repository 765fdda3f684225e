"""Registry of experiment kinds.

Every module in this package that defines a subclass of :class:`Experiment` with a ``kind`` is an
experiment kind; adding a kind means adding one module, nothing else.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from rmtbench.experiments.base import Cell, Experiment, RunContext

__all__ = ["Cell", "Experiment", "RunContext", "experiment_kinds", "get_experiment"]


@lru_cache(maxsize=1)
def _registry() -> dict[str, Experiment]:
    found: dict[str, Experiment] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Experiment) and obj is not Experiment and obj.kind:
                if obj.__module__ != module.__name__:
                    continue
                if obj.kind in found:
                    raise RuntimeError(f"experiment kind {obj.kind!r} defined twice")
                found[obj.kind] = obj()
    return found


def experiment_kinds() -> list[str]:
    """Names of all registered experiment kinds, sorted."""
    return sorted(_registry())


def get_experiment(kind: str) -> Experiment:
    """The experiment kind named ``kind``.

    Raises
    ------
    ValueError
        If no such kind exists; the message lists the registered kinds.
    """
    try:
        return _registry()[kind]
    except KeyError:
        raise ValueError(f"unknown experiment kind {kind!r}; allowed: {', '.join(experiment_kinds())}") from None
