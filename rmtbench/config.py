"""Load, validate and expand a sweep configuration into cells.

The YAML is parsed with ``yaml.safe_load`` (values are data, never code), validated against one JSON
schema composed from every experiment kind and data-set kind, checked for semantic errors (unknown
activation, dangling data-set names, paths leaving the project), and expanded into :class:`Cell`\\ s.
Every rejection is a :class:`ConfigError` whose message names the offending key and what is allowed.
"""
from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from rmtbench.canonical import canonical_value, short_hash
from rmtbench.experiments import get_experiment, experiment_kinds
from rmtbench.experiments.base import Cell, Experiment
from rmtbench.reduction import REDUCTION_ROWS, STRIPE_UNITS

DEFAULT_SEED = 20250422


class ConfigError(ValueError):
    """A user mistake in a sweep configuration. The message names the key and the allowed values."""


# --------------------------------------------------------------------------------------------------
# schema
# --------------------------------------------------------------------------------------------------
def _top_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "rmtbench sweep configuration",
        "description": "One sweep: global settings, named data sets, and a list of experiments whose grids expand to cells.",
        "type": "object",
        "additionalProperties": False,
        "required": ["sweep", "experiments"],
        "properties": {
            "sweep": {
                "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                "description": "Name of the sweep; outputs go to <results>/<sweep>/.",
            },
            "seed": {
                "type": "integer", "minimum": 0, "default": DEFAULT_SEED,
                "description": "Root seed: every random draw derives from it and the cell's parameters.",
            },
            "results": {
                "type": "string", "minLength": 1, "default": "results",
                "description": "Results folder, relative to the project directory; must stay inside it.",
            },
            "data_dir": {
                "type": "string", "minLength": 1, "default": "data",
                "description": "Folder holding real data files (relative to the project, or absolute). Never downloaded.",
            },
            "compute": {
                "type": "object", "additionalProperties": False, "default": {},
                "description": "How cells are computed; never changes a number, so not part of cell ids.",
                "properties": {
                    "block_rows": {
                        "type": "integer", "minimum": REDUCTION_ROWS, "default": 1024,
                        "description": (f"Feature rows formed at once: per Dask task in deep-net forward passes, baseline feature maps "
                                        f"and matrix-free products, per W X product inside the random-feature Grams' fixed stripes of "
                                        f"{REDUCTION_ROWS * STRIPE_UNITS} rows (capped there); a multiple of {REDUCTION_ROWS}. "
                                        f"Changes memory and speed, never a number."),
                    },
                    "slurm_node_minutes": {
                        "type": "number", "exclusiveMinimum": 0, "default": 240,
                        "description": "On a cluster: a Dask cell whose estimated single-node runtime (minutes) exceeds this runs as one "
                                       "multi-task SLURM job whose tasks form its Dask cluster. Never changes a number.",
                    },
                    "slurm_max_tasks": {
                        "type": "integer", "minimum": 1, "default": 16,
                        "description": "Most SLURM tasks (Dask workers on several nodes) one cell may span. Never changes a number.",
                    },
                },
            },
            "dask": {
                "type": "object", "additionalProperties": False, "default": {},
                "description": "Which Dask cluster runs each cell's graph.",
                "properties": {
                    "mode": {
                        "enum": ["local", "address", "scheduler_file", "synchronous"], "default": "local",
                        "description": "local: embedded LocalCluster sized from the job's threads; address: existing scheduler; scheduler_file: scheduler named in a file (multi-node jobs); synchronous: no cluster (debugging).",
                    },
                    "address": {"type": ["string", "null"], "default": None, "description": "Scheduler address for mode 'address', e.g. tcp://host:8786."},
                    "scheduler_file": {"type": ["string", "null"], "default": None, "description": "Scheduler file for mode 'scheduler_file'."},
                    "workers": {"type": ["integer", "null"], "minimum": 1, "default": None, "description": "LocalCluster worker processes (default: the job's threads)."},
                },
            },
            "datasets": {
                "type": "object", "default": {},
                "description": "Named data-set specs referenced by experiments' 'dataset' axis.",
                "propertyNames": {"pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
                "additionalProperties": _dataset_schema(),
            },
            "experiments": {
                "type": "array", "minItems": 1,
                "description": "Experiments of the sweep; each has a unique name, a kind and a grid.",
                "items": _experiment_schema(),
            },
        },
    }


def _dataset_schema() -> dict[str, Any]:
    from rmtbench.data import dataset_kinds, dataset_schema

    kinds = dataset_kinds()
    return {
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"enum": kinds, "description": "Data-set kind."}},
        "allOf": [
            {"if": {"properties": {"kind": {"const": k}}, "required": ["kind"]}, "then": dataset_schema(k)}
            for k in kinds
        ],
    }


def _experiment_schema() -> dict[str, Any]:
    kinds = experiment_kinds()
    branches = []
    for kind in kinds:
        exp = get_experiment(kind)
        branches.append({
            "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
            "then": {
                "additionalProperties": False,
                "required": ["name", "kind", "grid", *exp.required_options],
                "properties": {
                    "name": {}, "kind": {}, "description": {},
                    "grid": {
                        "type": "object", "additionalProperties": False, "required": list(exp.axes),
                        "description": f"Grid axes of {kind}: {', '.join(exp.axes)}; each a non-empty list.",
                        "properties": exp.grid_schema,
                    },
                    **exp.options_schema,
                },
            },
        })
    return {
        "type": "object",
        "required": ["name", "kind", "grid"],
        "description": "An experiment: name, kind, grid (lists, expanded as a Cartesian product), options.",
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]*$", "description": "Unique name; outputs are named after it."},
            "kind": {"enum": kinds, "description": "Experiment kind."},
            "description": {"type": "string", "description": "Free text shown in the report."},
            "grid": {"type": "object"},
        },
        "allOf": branches,
    }


def config_schema() -> dict[str, Any]:
    """The full JSON schema of a sweep config (written to ``workflow/schemas/config.schema.yaml``)."""
    return _top_schema()


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------
def _format_path(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top level>"


def _describe(error: Any) -> str:
    import jsonschema

    where = _format_path(error.absolute_path)
    message = error.message
    if error.validator == "additionalProperties" and isinstance(error.schema.get("properties"), dict):
        allowed = sorted(k for k in error.schema["properties"])
        message += f"; allowed keys: {', '.join(allowed)}"
    if error.validator == "enum":
        message = f"{error.instance!r} is not allowed; allowed values: {', '.join(map(str, error.validator_value))}"
    if error.validator == "required":
        message = message.replace("is a required property", "is required but missing")
    _ = jsonschema
    return f"config key '{where}': {message}"


def _fill_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """Insert schema defaults into ``value`` (recursively through objects with ``properties``)."""
    if not isinstance(value, dict):
        return value
    for key, sub in schema.get("properties", {}).items():
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            _fill_defaults(sub, value[key])
    for branch in schema.get("allOf", []):
        cond = branch.get("if", {}).get("properties", {})
        if all(value.get(k) == c.get("const") for k, c in cond.items()) and "then" in branch:
            _fill_defaults(branch["then"], value)
    return value


def validate(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a raw config mapping against :func:`config_schema` and return it with defaults filled.

    Raises
    ------
    ConfigError
        Listing every violation, each naming its key.
    """
    import jsonschema

    if not isinstance(raw, Mapping):
        raise ConfigError(f"config must be a mapping of keys to values, got {type(raw).__name__}")
    raw = coerce_scientific(copy.deepcopy(dict(raw)))
    non_finite = _non_finite(raw)
    if non_finite:
        raise ConfigError("invalid config:\n  " + "\n  ".join(f"config key '{_format_path(p)}': {v!r} is not allowed; numbers must be finite" for p, v in non_finite))
    schema = config_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(raw), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    # if/then branches report the inner error; drop the uninformative outer ones
    errors = [e for e in errors if e.validator not in ("allOf", "if")]
    if errors:
        lines = [_describe(e) for e in errors[:12]]
        more = f"\n  ... and {len(errors) - 12} more" if len(errors) > 12 else ""
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines) + more)
    config = _fill_defaults(schema, copy.deepcopy(dict(raw)))
    for exp in config["experiments"]:
        _fill_defaults(schema["properties"]["experiments"]["items"], exp)
    for spec in config["datasets"].values():
        _fill_defaults(schema["properties"]["datasets"]["additionalProperties"], spec)
    return config


_SCIENTIFIC = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that reads ``1e-5`` as a float, as YAML 1.2 does (PyYAML's 1.1 reads a string)."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _SCIENTIFIC, list("-+0123456789."))


def coerce_scientific(value: Any) -> Any:
    """Turn strings such as ``'1e-5'`` into floats, recursively.

    Snakemake parses config files with YAML 1.1 rules, where a number without a dot before its
    exponent stays a string; users mean a number.
    """
    if isinstance(value, str) and _SCIENTIFIC.match(value):
        return float(value)
    if isinstance(value, dict):
        return {k: coerce_scientific(v) for k, v in value.items()}
    if isinstance(value, list):
        return [coerce_scientific(v) for v in value]
    return value


def read_config(path: str | Path) -> dict[str, Any]:
    """Parse a YAML (or JSON) config file safely: no tags, no code, ``1e-5`` read as a number."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_Loader)  # noqa: S506 (safe loader)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must contain a mapping at top level")
    return data


# --------------------------------------------------------------------------------------------------
# the sweep
# --------------------------------------------------------------------------------------------------
@dataclass
class ExperimentPlan:
    """One experiment of a sweep with its expanded cells."""

    name: str
    kind: Experiment
    cells: list[Cell]
    options: dict[str, Any]

    def cell(self, cell_id: str) -> Cell:
        """The cell with id ``cell_id`` (KeyError naming the experiment otherwise)."""
        for cell in self.cells:
            if cell.id == cell_id:
                return cell
        raise KeyError(f"experiment {self.name!r} has no cell {cell_id!r}")

    _groups: dict[str, list[Cell]] | None = field(default=None, init=False, repr=False, compare=False)

    def theory_groups(self) -> dict[str, list[Cell]]:
        """Cells grouped by theory key (cells without theory are left out)."""
        if self._groups is None:
            groups: dict[str, list[Cell]] = {}
            for cell in self.cells:
                key = self.kind.theory_key(cell)
                if key is not None:
                    groups.setdefault(key, []).append(cell)
            self._groups = groups
        return dict(self._groups)

    def theory_members(self, key: str) -> str:
        """A short hash of the ids of the cells that share theory ``key``.

        A theory is computed for its group (rf_ridge's, for instance, at the group's widths), so its
        store is named by the group too: a config edit that adds a width to a group computes that
        theory anew instead of serving one without the new width.
        """
        return short_hash(sorted(cell.id for cell in self.theory_groups()[key]))


@dataclass
class Sweep:
    """A validated sweep: settings, data sets and experiments with their cells, plus output paths."""

    name: str
    seed: int
    project_dir: Path
    results_root: Path
    data_dir: Path
    compute: dict[str, Any]
    dask: dict[str, Any]
    datasets: dict[str, Any]
    experiments: dict[str, ExperimentPlan]
    config: dict[str, Any] = field(repr=False)

    # output layout, all relative to project_dir (Snakemake works with relative paths)
    @property
    def out(self) -> Path:
        """``<results>/<sweep>`` relative to the project."""
        return self.results_root / self.name

    def cell_store(self, experiment: str, cell_id: str) -> Path:
        return self.out / "cells" / experiment / f"{cell_id}.zarr"

    def theory_store(self, experiment: str, key: str) -> Path:
        return self.out / "theory" / experiment / key / f"{self.experiments[experiment].theory_members(key)}.zarr"

    def gathered_store(self, experiment: str) -> Path:
        return self.out / f"{experiment}.zarr"

    def table(self, experiment: str) -> Path:
        return self.out / "tables" / f"{experiment}.csv"

    def figures_dir(self, experiment: str) -> Path:
        return self.out / "figures" / experiment


_SHELL_SAFE_PATH = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_./-]*")


def _non_finite(value: Any, path: tuple = ()) -> list[tuple[tuple, float]]:
    """(path, value) of every NaN or infinite float in a nested config."""
    if isinstance(value, float) and not math.isfinite(value):
        return [(path, value)]
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in _non_finite(v, (*path, k))]
    if isinstance(value, list):
        return [hit for i, v in enumerate(value) for hit in _non_finite(v, (*path, i))]
    return []


def _check_relative_inside(value: str, key: str) -> Path:
    if not _SHELL_SAFE_PATH.fullmatch(value):
        raise ConfigError(f"config key '{key}': {value!r} may only contain letters, digits and _ . / - (it becomes part of the workflow's shell commands)")
    path = Path(value)
    if path.is_absolute() or ".." in path.parts:
        raise ConfigError(f"config key '{key}': {value!r} must be a relative path inside the project (no '..', not absolute)")
    return path


def _check_cell_data(cell: Cell, axis: str, key: str, checked: set[str]) -> None:
    """Refuse, naming ``key``, a data-set spec that the cell's data could not be built from."""
    from rmtbench.experiments.common import check_cell_data, data_key

    identity = data_key(cell, axis=axis)
    if identity in checked:
        return
    try:
        check_cell_data(cell, axis=axis)
    except ValueError as exc:
        raise ConfigError(f"config key '{key}': {exc} (cell {cell.label} of {cell.experiment}, n = {cell['n']})") from None
    checked.add(identity)


def _resolve_dataset(name: Any, datasets: Mapping[str, Any], where: str) -> dict[str, Any]:
    from rmtbench.data import dataset_kinds

    if not isinstance(name, str):
        raise ConfigError(f"config key '{where}': data sets are named by strings, got {name!r}")
    if name in datasets:
        return dict(datasets[name])
    if name in dataset_kinds():
        schema = config_schema()["properties"]["datasets"]["additionalProperties"]
        return _fill_defaults(schema, {"kind": name})
    allowed = sorted(set(datasets) | set(dataset_kinds()))
    raise ConfigError(f"config key '{where}': unknown data set {name!r}; allowed: {', '.join(allowed)} (names under 'datasets:' or data-set kinds)")


def _normalise_axis_value(axis: str, value: Any, where: str) -> Any:
    """Canonical grid values: weight laws and activations become their canonical labels."""
    if axis == "weights":
        from rmtbench.weights import weight_law

        if isinstance(value, list):  # one law per layer (deep nets): their labels joined by '+'
            labels = []
            for i, item in enumerate(value):
                try:
                    labels.append(weight_law(item).label)
                except (ValueError, TypeError, KeyError) as exc:
                    raise ConfigError(f"config key '{where}[{i}]': {exc}") from None
            return "+".join(labels)
        try:
            return weight_law(value).label
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"config key '{where}': {exc}") from None
    if axis == "activation" or axis == "activations":
        from rmtbench.activations import get_activation

        items = value if axis == "activations" else [value]
        names = []
        for i, item in enumerate(items):
            try:
                names.append(get_activation(item).name)
            except (ValueError, TypeError, KeyError) as exc:
                sub = f"{where}[{i}]" if axis == "activations" else where
                raise ConfigError(f"config key '{sub}': {exc}") from None
        return names if axis == "activations" else names[0]
    return canonical_value(value)


def load_sweep(source: str | Path | Mapping[str, Any], *, project_dir: str | Path = ".", kind_checks: bool = True) -> Sweep:
    """Validate a config (path or mapping) and expand it into a :class:`Sweep`.

    Parameters
    ----------
    source
        Path of a YAML file, or an already parsed mapping (as Snakemake's ``config``).
    project_dir
        Directory that relative paths are resolved against; results must stay inside it.
    kind_checks
        Run each experiment kind's own checks of its cells (:meth:`Experiment.check`). The schema and
        the checks of this module always run. Jobs reading the resolved sweep file that the workflow
        wrote once these checks had passed skip them: some solve a matching problem, and importing
        scipy for it cost every job most of a second.

    Raises
    ------
    ConfigError
        For any invalid key or value, naming it.
    """
    raw = read_config(source) if isinstance(source, (str, Path)) else source
    config = validate(raw)
    project = Path(project_dir)
    results = _check_relative_inside(config["results"], "results")
    data_dir = Path(config["data_dir"])
    if not data_dir.is_absolute():
        data_dir = project / data_dir
    block_rows = config["compute"]["block_rows"]
    if block_rows % REDUCTION_ROWS:
        raise ConfigError(f"config key 'compute.block_rows': {block_rows} must be a multiple of {REDUCTION_ROWS}")
    mode = config["dask"]["mode"]
    if mode in ("address", "scheduler_file") and not config["dask"].get(mode):
        raise ConfigError(f"config key 'dask.{mode}': required when dask.mode is {mode!r}")

    plans: dict[str, ExperimentPlan] = {}
    for index, block in enumerate(config["experiments"]):
        where = f"experiments[{index}]"
        name = block["name"]
        if name in plans:
            raise ConfigError(f"config key '{where}.name': duplicate experiment name {name!r}; names must be unique")
        exp = get_experiment(block["kind"])
        options = {k: v for k, v in block.items() if k not in ("name", "kind", "grid", "description")}
        grid: dict[str, list[Any]] = {}
        for axis in exp.axes:
            values = block["grid"][axis]
            grid[axis] = [_normalise_axis_value(axis, v, f"{where}.grid.{axis}[{i}]") for i, v in enumerate(values)]
            if len(set(map(repr, grid[axis]))) != len(grid[axis]):
                raise ConfigError(f"config key '{where}.grid.{axis}': values must be distinct, got {values!r}")
        cells = []
        checked: set[str] = set()
        for point in exp.expand(grid):
            cell_options = canonical_value(dict(options))
            data_keys = {}
            for axis in exp.dataset_axes:
                if axis in point:
                    position = grid[axis].index(point[axis])
                    data_keys[axis] = f"{where}.grid.{axis}[{position}]"
                    spec = _resolve_dataset(point[axis], config["datasets"], data_keys[axis])
                    if point[axis] in config["datasets"]:
                        data_keys[axis] = f"datasets.{point[axis]}"
                    cell_options[f"{axis}_spec"] = canonical_value(spec)
            if kind_checks:
                exp.check(point, cell_options, where)
            cell = Cell(experiment=name, kind=exp.kind, point=canonical_value(point), options=cell_options,
                        root_seed=config["seed"], axes=exp.axes)
            for axis, key in data_keys.items():
                _check_cell_data(cell, axis, key, checked)
            cells.append(cell)
        plans[name] = ExperimentPlan(name=name, kind=exp, cells=cells, options=options)

    return Sweep(
        name=config["sweep"], seed=config["seed"], project_dir=project, results_root=results, data_dir=data_dir,
        compute=config["compute"], dask=config["dask"], datasets=config["datasets"], experiments=plans, config=config,
    )
