"""Pieces shared by experiment kinds: schema fragments, data of a cell, seeds of a draw."""
from __future__ import annotations

from typing import Any

import numpy as np

from rmtbench.canonical import short_hash
from rmtbench.experiments.base import Cell, RunContext
from rmtbench.rng import seed_sequence

# JSON-schema fragments reused by experiment kinds ---------------------------------------------------
def list_of(item: dict[str, Any], description: str, *, default: list[Any] | None = None) -> dict[str, Any]:
    """Schema of a non-empty list axis."""
    schema: dict[str, Any] = {"type": "array", "minItems": 1, "items": item, "description": description}
    if default is not None:
        schema["default"] = default
    return schema


SIZE = {"type": "integer", "minimum": 2}
POSITIVE = {"type": "number", "exclusiveMinimum": 0}
ACTIVATION = {"type": ["string", "object"], "description": "Registered activation name, or {family: ..., parameters}"}
WEIGHTS = {"type": ["string", "object"], "description": "gaussian, rademacher, ternary-eps<eps>, student_t-dof<dof>, or {law: ternary, eps: 0.9}"}
DATASET = {"type": "string", "description": "Name under 'datasets:' or a data-set kind with default options"}
SEEDS = {"type": "integer", "minimum": 1, "default": 3, "description": "Independent draws of the weights per cell (data stay fixed)."}
N_TEST = {"type": "integer", "minimum": 1, "default": 512, "description": "Test samples per cell."}
GAMMA = list_of(POSITIVE, "Ridge parameters gamma > 0; one eigendecomposition serves them all.", default=[0.1, 0.01])


def data_key(cell: Cell, *, axis: str = "dataset") -> str:
    """Identity of a cell's data: the data-set spec, n and n_test (not d, activation or weights)."""
    return short_hash({"spec": cell.options[f"{axis}_spec"], "n": cell["n"], "n_test": cell.get("n_test", 0)})


def cell_data(cell: Cell, ctx: RunContext, *, axis: str = "dataset") -> Any:
    """The data of a cell: fixed by the data-set spec, n, n_test and the root seed alone."""
    from rmtbench.data import make_dataset

    return make_dataset(
        cell.options[f"{axis}_spec"], n=int(cell["n"]), n_test=int(cell.get("n_test", 0)),
        seed=seed_sequence(cell.root_seed, "data", data_key(cell, axis=axis)), data_dir=ctx.data_dir,
    )


def check_cell_data(cell: Cell, *, axis: str = "dataset") -> None:
    """Raise ``ValueError`` if :func:`cell_data` would refuse the cell's data-set spec at its sizes.

    Cheap (no files, no draws): the config loader runs it for every cell, so that a spec the schema
    cannot fault (both p and p_over_n, lists of the wrong length) is refused before any job starts.
    """
    from rmtbench.data import check_dataset

    check_dataset(cell.options[f"{axis}_spec"], n=int(cell["n"]), n_test=int(cell.get("n_test", 0)))


def width(cell: Cell) -> int:
    """Number of random features d = round(d_over_n * n), at least 1."""
    return max(1, int(round(float(cell["d_over_n"]) * int(cell["n"]))))


def seed_mean_and_error(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds and its standard error (0 for a single seed)."""
    values = np.asarray(values, dtype=float)
    count = values.shape[axis]
    mean = values.mean(axis=axis)
    if count < 2:
        return mean, np.zeros_like(mean)
    return mean, values.std(axis=axis, ddof=1) / np.sqrt(count)
