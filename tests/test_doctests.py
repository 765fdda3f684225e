"""The docstring examples of every rmtbench module, and the examples in docs/*.md, run as doctests.

Modules named ``_wip_*`` (work in progress, outside the registry) are skipped; every other module must
import and its examples must pass. Examples stay small (the whole file runs in seconds).
"""
from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    names = ["rmtbench"]
    for info in pkgutil.walk_packages([str(ROOT / "rmtbench")], prefix="rmtbench."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf == "__main__" or leaf.startswith("_wip_"):
            continue
        names.append(info.name)
    return sorted(names)


MODULES = _modules()
DOCS = sorted(p for p in (ROOT / "docs").glob("*.md") if ">>> " in p.read_text(encoding="utf-8"))


def _run(test_finder_results: list[doctest.DocTest]) -> tuple[int, list[str]]:
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    failures: list[str] = []
    attempted = 0
    for test in test_finder_results:
        out: list[str] = []
        result = runner.run(test, out=out.append)
        attempted += result.attempted
        if result.failed:
            failures.append("".join(out))
    return attempted, failures


def test_modules_are_found():
    assert {"rmtbench.api", "rmtbench.estimators", "rmtbench.ridge", "rmtbench.theory.equivalent"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name: str):
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)  # globs: the module, as `python -m doctest`
    _, failures = _run(tests)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_docs_examples(path: Path):
    text = path.read_text(encoding="utf-8")
    test = doctest.DocTestParser().get_doctest(text, {"np": np}, path.name, str(path), 0)
    attempted, failures = _run([test])
    assert attempted > 0
    assert not failures, "\n".join(failures)
