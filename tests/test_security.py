"""Security: config values are data, outputs stay under the results folder, no shell injection, no unpickling.

Trust boundary: a config file may come from someone else, so nothing in it is evaluated, and nothing
in it can direct a write outside ``<project>/<results>/<sweep>/`` or reach a shell unquoted. Command-line
arguments (``--out`` of the CLI verbs) come from the person or the Snakemake rule running the command,
who already has a shell: they are not confined (``rmtbench schema --out``, ``export-data --out
/tmp/x.npz`` are legitimate), and the rules only ever pass paths derived from the validated config.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings, strategies as st

from conftest import ROOT, small_config
from rmtbench.config import ConfigError, load_sweep

# ------------------------------------------------------------------------------------------------
# config values are never evaluated
# ------------------------------------------------------------------------------------------------
YAML_TAGS = [
    "sweep: !!python/object/apply:os.system ['touch {marker}']",
    "sweep: x\nseed: !!python/object/apply:os.system ['touch {marker}']",
    "sweep: !!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "sweep: !!python/name:os.system",
    "sweep: x\nexperiments: [{{name: a, kind: rf_ridge, grid: !!python/object/apply:os.system ['touch {marker}']}}]",
]


@pytest.mark.parametrize("text", YAML_TAGS, ids=range(len(YAML_TAGS)))
def test_yaml_tags_are_refused_without_side_effects(tmp_path, text):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(text.format(marker=marker) + "\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_sweep(path, project_dir=tmp_path)
    assert not marker.exists()


CODE_AS_VALUES = [
    ("activation", ["leaky_relu(a=__import__('os').system('touch {marker}'),b=1)"]),
    ("activation", ["__import__('os').system('touch {marker}')"]),
    ("weights", ["ternary-eps__import__('os').system('touch {marker}')"]),
    ("weights", [{"law": "ternary", "eps": "__import__('os').system('touch {marker}')"}]),
]


@pytest.mark.parametrize("axis,values", CODE_AS_VALUES, ids=["activation-param", "activation", "eps-string", "eps-mapping"])
def test_code_in_config_values_is_never_evaluated(tmp_path, axis, values):
    marker = tmp_path / "pwned"
    config = small_config()
    config["experiments"][0]["grid"][axis] = json.loads(json.dumps(values).replace("{marker}", str(marker)))
    with pytest.raises(ConfigError, match=rf"experiments\[0\]\.grid\.{axis}\[0\]"):
        load_sweep(config)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------
# every output path stays under the results folder
# ------------------------------------------------------------------------------------------------
NAME = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,12}\Z")
SWEEP_NAME = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,12}\Z")
RESULTS = st.lists(st.from_regex(r"\A[A-Za-z0-9_.-]{1,8}\Z"), min_size=1, max_size=3).map("/".join)


def _outputs(sweep) -> list[Path]:
    paths = [sweep.out / "sweep.json"]
    for name, plan in sweep.experiments.items():
        paths += [sweep.gathered_store(name), sweep.table(name), sweep.figures_dir(name)]
        paths += [sweep.cell_store(name, c.id) for c in plan.cells]
        paths += [sweep.theory_store(name, k) for k in plan.theory_groups()]
    return paths


@settings(max_examples=40, deadline=None)
@given(sweep=SWEEP_NAME, experiment=NAME, results=RESULTS)
def test_every_output_path_of_an_accepted_config_stays_under_the_results_folder(sweep, experiment, results):
    config = small_config(sweep=sweep, results=results)
    config["experiments"][0]["name"] = experiment
    project = Path("/project")
    try:
        loaded = load_sweep(config, project_dir=project)
    except ConfigError:
        return  # refused: nothing is written
    root = (project / results).resolve()
    for path in _outputs(loaded):
        resolved = (project / path).resolve()
        assert resolved.is_relative_to(root / loaded.name) and resolved != root, (results, sweep, path)


@pytest.mark.parametrize("results", ["../x", "/tmp/x", "a/../../x", "results/../../x"])
def test_results_outside_the_project_is_refused(results):
    with pytest.raises(ConfigError, match="results"):
        load_sweep(small_config(results=results))


@pytest.mark.parametrize("results", ["r$(touch pwned)", "r;touch pwned", "r`touch pwned`", "my results", "r|x", "r&x"])
def test_results_with_shell_metacharacters_is_refused(results):
    with pytest.raises(ConfigError, match="results"):
        load_sweep(small_config(results=results))


# ------------------------------------------------------------------------------------------------
# Snakemake: wildcards cannot inject shell; commands only carry validated values
# ------------------------------------------------------------------------------------------------
def _project(tmp_path: Path) -> Path:
    for item in ("Snakefile", "workflow", "profiles"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(small_config(dask={"mode": "synchronous"})))
    return tmp_path


def _snakemake(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "--profile", "profiles/default", "--cores", "1", *args],
                          cwd=project, capture_output=True, text=True, timeout=300)


@pytest.mark.workflow
def test_snakemake_targets_with_shell_in_a_wildcard_match_no_rule(tmp_path):
    project = _project(tmp_path)
    targets = [
        "results/unit/cells/rf/$(touch pwned).zarr",          # cell wildcard: 12 hex digits only
        "results/unit/$(touch pwned).zarr",                    # experiment wildcard (gather)
    ]
    for target in targets:
        result = _snakemake(project, target)  # a real run, not a dry run: a matched rule would execute
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert "MissingRuleException" in output or "No rule to produce" in output, output[-2000:]
        assert not (project / "pwned").exists() and not list(project.rglob("pwned*"))
        assert not (project / "results" / "unit" / "cells").exists()


@pytest.mark.workflow
def test_every_shell_command_writes_under_the_sweep_folder_and_carries_only_safe_text(tmp_path):
    project = _project(tmp_path)
    result = _snakemake(project, "-n", "-p")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    commands = [line.split(":", 1)[1].strip() for line in output.splitlines() if line.startswith("Shell command:")]
    commands = sorted(set(c for c in commands if c != "None"))
    python = re.escape(sys.executable)
    # `python -m rmtbench <verb>` or a runner module such as `python -m rmtbench.slurm <verb>`
    safe = re.compile(rf"{python} -m rmtbench(?:\.[a-z_]+)? ([a-z-]+)( --[a-z-]+ [A-Za-z0-9_./=-]+)* > [A-Za-z0-9_./-]+ 2>&1")
    verbs = {m.group(1) for m in map(safe.fullmatch, commands) if m}
    assert verbs >= {"simulate", "theory", "gather", "compare", "plot"}, commands
    for command in commands:
        assert safe.fullmatch(command), command
        for flag in ("--out", "--store", "--sweep"):
            for value in re.findall(rf"{flag} (\S+)", command):
                assert value.startswith("results/unit/"), command
        assert command.split(" > ")[1].startswith("results/unit/logs/")


# ------------------------------------------------------------------------------------------------
# opening a store never unpickles
# ------------------------------------------------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_store(root: Path, marker: Path, *, dtype: str, filters, compressor) -> Path:
    import xarray as xr

    xr.Dataset({"v": ("x", np.arange(3.0))}).to_zarr(root, mode="w", zarr_format=2, consolidated=False)
    array = root / "w"
    array.mkdir()
    meta = {"zarr_format": 2, "shape": [1], "chunks": [1], "dtype": dtype, "compressor": compressor, "fill_value": None,
            "order": "C", "filters": filters, "dimension_separator": "."}
    (array / ".zarray").write_text(json.dumps(meta))
    (array / ".zattrs").write_text(json.dumps({"_ARRAY_DIMENSIONS": ["y"]}))
    payload = np.array([_Payload(marker)], dtype=object) if dtype == "|O" else _Payload(marker)
    (array / "0").write_bytes(pickle.dumps(payload))
    return root


PICKLE = {"id": "pickle", "protocol": 5}
EVIL_LAYOUTS = {
    "object-dtype-pickle-filter": dict(dtype="|O", filters=[PICKLE], compressor=None),
    "float-pickle-filter": dict(dtype="<f8", filters=[PICKLE], compressor=None),
    "float-pickle-compressor": dict(dtype="<f8", filters=None, compressor=PICKLE),
}


@pytest.mark.parametrize("layout", list(EVIL_LAYOUTS))
def test_opening_a_store_with_a_pickle_codec_never_runs_its_payload(tmp_path, layout):
    from rmtbench.store import open_dataset

    marker = tmp_path / "pwned"
    # the payload is real: unpickling it does run the command
    pickle.loads(pickle.dumps(_Payload(tmp_path / "control")))
    assert (tmp_path / "control").exists()
    store = _evil_store(tmp_path / "evil.zarr", marker, **EVIL_LAYOUTS[layout])
    with pytest.raises(Exception):
        dataset = open_dataset(store)
        dataset["w"].values  # noqa: B018  (force a read in case opening were lazy)
    assert not marker.exists()


def test_stores_written_by_rmtbench_hold_no_object_arrays_or_pickle_codecs(tmp_path):
    import xarray as xr

    from rmtbench.store import open_dataset, provenance, write_dataset

    dataset = xr.Dataset(
        {"v": (("cell", "seed"), np.ones((2, 3))), "flag": (("cell",), np.array([True, False]))},
        coords={"cell": ["relu-gaussian", "erf-gaussian"], "label": ("cell", ["a", "bb"])},
        attrs=provenance(config={"sweep": "x"}),
    )
    write_dataset(dataset, tmp_path / "s.zarr")
    for meta in (tmp_path / "s.zarr").rglob(".zarray"):
        text = meta.read_text()
        assert '"|O"' not in text and "pickle" not in text, meta
    again = open_dataset(tmp_path / "s.zarr")
    assert again["label"].values.tolist() == ["a", "bb"]
