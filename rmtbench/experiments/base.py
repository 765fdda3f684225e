"""The contract every experiment kind fulfils, and the cell that every stage receives.

An experiment kind declares its grid axes and options once (as JSON-schema fragments), says what its
theory depends on, and implements four steps: ``simulate`` one cell, ``theory`` for a group of cells
sharing a theory key, ``compare`` the gathered dataset, and ``plot`` it. The pipeline (config
expansion, Snakemake rules, stores, gathering) is generic and never needs editing for a new kind.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from rmtbench.canonical import canonical_json, canonical_value, format_number, short_hash

if TYPE_CHECKING:  # heavy imports only for type checkers
    import pandas as pd
    import xarray as xr


@dataclass(frozen=True)
class Cell:
    """One point of a sweep grid, with every parameter that determines its numbers.

    Attributes
    ----------
    experiment
        Name of the experiment block in the config.
    kind
        Experiment kind (module in :mod:`rmtbench.experiments`).
    point
        The grid values of this cell, axis name to value (canonical JSON types).
    options
        Experiment-level options shared by all cells (seeds, gamma grid, ...), plus resolved dataset
        specs under ``"datasets"``.
    root_seed
        The sweep's seed.
    """

    experiment: str
    kind: str
    point: Mapping[str, Any]
    options: Mapping[str, Any]
    root_seed: int
    axes: tuple[str, ...] = field(default=())

    @property
    def id(self) -> str:
        """Canonical id: a short hash of everything that determines the cell's numbers."""
        return short_hash({"kind": self.kind, "point": self.point, "options": self.options, "seed": self.root_seed})

    @property
    def label(self) -> str:
        """Readable label, e.g. ``relu-gaussian-gmm2-n512-d_over_n0.5``."""
        parts = []
        for axis in self.axes or tuple(sorted(self.point)):
            value = self.point[axis]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                parts.append(f"{axis}{format_number(value)}")
            else:
                parts.append(label_of(value))
        return "-".join(parts)

    def __getitem__(self, key: str) -> Any:
        if key in self.point:
            return self.point[key]
        return self.options[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Grid value or option ``key``, else ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def to_json(self) -> str:
        """Canonical JSON of the cell (stored in provenance)."""
        return canonical_json(
            {"experiment": self.experiment, "kind": self.kind, "point": self.point, "options": self.options,
             "root_seed": self.root_seed, "id": self.id, "label": self.label}
        )


def label_of(value: Any) -> str:
    """Readable label of a grid value: strings as they are, mappings by their ``label`` or values."""
    if isinstance(value, Mapping):
        if "label" in value:
            return str(value["label"])
        return "_".join(f"{label_of(v)}" for _, v in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return "+".join(label_of(v) for v in value)
    return str(value)


@dataclass
class RunContext:
    """What a step needs beyond the cell: where data live, the Dask client, compute knobs.

    Nothing here changes a number: only *how* and *where* it is computed.
    """

    data_dir: Path
    client: Any = None
    block_rows: int = 1024

    @property
    def in_flight(self) -> int:
        """Stripes of a Gram computed ahead of its running total: one per worker thread, at least 2.

        Enough to keep every worker busy (a fold is cheap); more would only hold more n-by-n partials.
        """
        if self.client is None:
            return 2
        return max(2, sum(self.client.nthreads().values()))


class Experiment:
    """Base class of experiment kinds. Subclasses set the class variables and override the steps."""

    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""
    axes: ClassVar[tuple[str, ...]] = ()
    grid_schema: ClassVar[dict[str, Any]] = {}
    """JSON-schema ``properties`` of the ``grid`` block: one list-valued entry per axis."""
    options_schema: ClassVar[dict[str, Any]] = {}
    """JSON-schema ``properties`` of the experiment's other keys (seeds, gamma, ...)."""
    required_options: ClassVar[tuple[str, ...]] = ()
    uses_dask: ClassVar[bool] = False
    dataset_axes: ClassVar[tuple[str, ...]] = ("dataset",)
    """Grid axes whose values name entries of the config's ``datasets`` block."""

    # -- resources ----------------------------------------------------------------------------------
    def resource_estimate(self, cells: list[Cell], *, step: str) -> dict[str, float] | None:
        """Threads, memory (bytes) and compute (seconds) of one ``simulate`` or ``theory`` job, or None.

        None (the default) uses :func:`rmtbench.resources.estimate`, which models an n-by-n Gram, its
        eigendecomposition and feature blocks. Kinds whose cost has another shape override this, so
        that a cluster job asks for what it needs (see :mod:`rmtbench.resources`).
        """
        return None

    # -- config -----------------------------------------------------------------------------------
    def check(self, point: Mapping[str, Any], options: Mapping[str, Any], where: str) -> None:
        """Reject a grid point that is invalid as a combination; raise ``ConfigError`` naming ``where``."""

    def expand(self, grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
        """All grid points (the Cartesian product of the axes, in axis order)."""
        values = [grid[axis] for axis in self.axes]
        return [dict(zip(self.axes, combo)) for combo in itertools.product(*values)]

    # -- steps ------------------------------------------------------------------------------------
    def theory_key(self, cell: Cell) -> str | None:
        """Id of the theory computation this cell's prediction comes from (None: no theory step)."""
        return None

    def simulate(self, cell: Cell, ctx: RunContext) -> "xr.Dataset":
        """Compute the empirical quantities of one cell."""
        raise NotImplementedError

    def theory(self, cells: list[Cell], ctx: RunContext) -> "xr.Dataset":
        """Compute the theory for all ``cells`` that share one theory key."""
        raise NotImplementedError

    def combine(self, cells: list[Cell], simulated: list["xr.Dataset"], theories: Mapping[str, "xr.Dataset"]) -> "xr.Dataset":
        """Merge cell results and theory into one dataset indexed by the grid axes."""
        from rmtbench.gather import stack_cells

        return stack_cells(self, cells, simulated, theories)

    def compare(self, gathered: "xr.Dataset") -> "pd.DataFrame":
        """A tidy table of theory-versus-simulation errors."""
        import pandas as pd

        return pd.DataFrame()

    def plot(self, gathered: "xr.Dataset", outdir: Path) -> list[Path]:
        """Draw the experiment's figures into ``outdir`` and return their paths."""
        return []


def canonical_point(point: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical JSON types for a grid point."""
    return canonical_value(dict(point))
