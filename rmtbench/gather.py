"""Gather cell stores and theory stores into one dataset indexed by the swept parameters."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

    from rmtbench.config import Sweep
    from rmtbench.experiments.base import Cell, Experiment


def theory_for_cell(cell: "Cell", theory: "xr.Dataset") -> "xr.Dataset":
    """The part of a theory dataset that belongs to ``cell`` (selected along the cell's axes)."""
    selection = {axis: cell.point[axis] for axis in theory.dims if axis in cell.point}
    return theory.sel(selection)


def stack_cells(exp: "Experiment", cells: list["Cell"], simulated: list["xr.Dataset | None"], theories: Mapping[str, "xr.Dataset"]) -> "xr.Dataset":
    """One dataset with a dimension per grid axis; cells without results are NaN.

    Parameters
    ----------
    exp
        The experiment kind (gives the axes and theory keys).
    cells
        All cells of the experiment, in grid order.
    simulated
        The cell datasets, ``None`` for cells not yet computed.
    theories
        Theory datasets by theory key (missing keys leave NaN).
    """
    import xarray as xr

    pieces = []
    for cell, sim in zip(cells, simulated):
        # deep=False: the cell's provenance goes (gathered once below), the variables' descriptions stay
        parts = [] if sim is None else [sim.drop_attrs(deep=False)]
        key = exp.theory_key(cell)
        if key is not None and key in theories:
            parts.append(theory_for_cell(cell, theories[key]).drop_attrs(deep=False).drop_vars(list(exp.axes), errors="ignore"))
        if not parts:
            continue
        merged = xr.merge(parts, join="outer", compat="no_conflicts")
        merged = merged.expand_dims({"cell": [cell.id]})
        merged = merged.assign_coords({axis: ("cell", [cell.point[axis]]) for axis in exp.axes})
        merged = merged.assign_coords(label=("cell", [cell.label]))
        pieces.append(merged)
    if not pieces:
        raise ValueError(f"no results yet for any cell of experiment {cells[0].experiment!r}")
    pieces.sort(key=lambda piece: len(piece.variables))  # theory-only pieces first; axes are reordered below
    combined = xr.concat(pieces, dim="cell", join="outer", data_vars="all", coords="different", compat="equals", fill_value=np.nan)
    combined = combined.set_index(cell=list(exp.axes)).unstack("cell")
    for axis in exp.axes:
        order = _grid_order(cells, axis)
        combined = combined.reindex({axis: [v for v in order if v in set(combined[axis].values.tolist())]})
    return combined


def _grid_order(cells: list["Cell"], axis: str) -> list[Any]:
    seen: list[Any] = []
    for cell in cells:
        if cell.point[axis] not in seen:
            seen.append(cell.point[axis])
    return seen


def gather_experiment(sweep: "Sweep", name: str, *, allow_missing: bool = False) -> "xr.Dataset":
    """Read every finished cell and theory store of experiment ``name`` and combine them.

    Parameters
    ----------
    allow_missing
        Gather a partial sweep: missing cells become NaN and are listed in the ``missing_cells``
        attribute. Otherwise a missing store is an error naming it.
    """
    from rmtbench.store import attrs_json, open_dataset, provenance

    plan = sweep.experiments[name]
    root = sweep.project_dir
    simulated, missing = [], []
    for cell in plan.cells:
        path = root / sweep.cell_store(name, cell.id)
        try:
            simulated.append(open_dataset(path))
        except FileNotFoundError:
            if not allow_missing:
                raise FileNotFoundError(f"cell {cell.label} ({cell.id}) of experiment {name!r} has no store at {path}") from None
            simulated.append(None)
            missing.append({"id": cell.id, "label": cell.label})
    theories = {}
    for key in plan.theory_groups():
        path = root / sweep.theory_store(name, key)
        try:
            theories[key] = open_dataset(path)
        except FileNotFoundError:
            if not allow_missing:
                raise FileNotFoundError(f"theory {key} of experiment {name!r} has no store at {path}") from None
            missing.append({"theory": key})
    gathered = plan.kind.combine(plan.cells, simulated, theories)
    cell_labels = {c.id: c.label for c in plan.cells}
    gathered.attrs = provenance(
        experiment=name, kind=plan.kind.kind, description=plan.kind.description, sweep=sweep.name,
        config=sweep.config, cells=cell_labels, missing_cells=missing,
        cell_provenance=attrs_json({c.id: s.attrs.get("data", "") for c, s in zip(plan.cells, simulated) if s is not None}),
    )
    return gathered
