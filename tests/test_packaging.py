"""The environment files agree, and CI runs the README's test command."""
import re
import tomllib

import yaml

from conftest import ROOT


def _name(requirement: str) -> set[str]:
    base = re.split(r"[<>=!~ ;]", requirement, maxsplit=1)[0].strip().lower()
    name, _, extras = base.partition("[")
    names = {name}
    if "distributed" in extras:
        names.add("distributed")
    return names


def test_environment_yml_lists_every_pyproject_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set()
    for requirement in project["dependencies"]:
        wanted |= _name(requirement)
    for extra, requirements in project["optional-dependencies"].items():
        if extra == "gpu":  # CUDA-specific, installed by hand on GPU machines
            continue
        for requirement in requirements:
            wanted |= _name(requirement)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d).pop() for d in env["dependencies"] if isinstance(d, str)}
    assert wanted - conda == set(), f"missing from environment.yml: {sorted(wanted - conda)}"
    extra = conda - wanted - {"python", "pip"}
    assert extra == set(), f"in environment.yml but not in pyproject.toml: {sorted(extra)}"


def _lower_bounds(requirements) -> dict[str, str]:
    bounds = {}
    for requirement in requirements:
        match = re.search(r">=\s*([0-9][0-9.]*)", requirement)
        for name in _name(requirement):
            if match:
                bounds[name] = match.group(1)
    return bounds


def test_environment_yml_has_the_same_lower_bounds_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"]) + [r for extra, rs in project["optional-dependencies"].items()
                                                     if extra != "gpu" for r in rs]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    ours, theirs = _lower_bounds(requirements), _lower_bounds(d for d in env["dependencies"] if isinstance(d, str))
    differ = {name: (bound, theirs.get(name)) for name, bound in ours.items() if theirs.get(name) != bound}
    assert differ == {}, f"lower bounds differ (pyproject, environment.yml): {differ}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make run" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\b", ci, re.MULTILINE)
