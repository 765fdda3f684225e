"""Linearisation of the random-features kernel on the sphere (seed eq. 10) and its Marchenko–Pastur spectrum.

Formula sheet section 3; pitfalls P19 (errors relative to the bulk, not to the spike) and P21 (the
atom of about n − p eigenvalues when n > p). For data uniform on a sphere of radius τ in R^p, each cell
(activation, data set, n, d/n) measures a matrix M against the linear equivalent
K̃ = a0² 11^T + a1² X^TX/τ² + (a2²/p) 11^T + (ν − a0² − a1²) I:

* ``d_over_n: inf``: M = K, the expected kernel itself (closed form or quadrature; no random draw);
* finite d/n: M = Φ^TΦ/d, the empirical Gram of d = round(d/n · n) Gaussian random features, one
  per seed, accumulated on Dask without forming Φ. Its expectation is K, so as d grows it
  approaches K and the comparisons below approach those of the kernel.

Measured per cell: ‖M − K̃‖ relative to ‖a1² X^TX/τ² + (ν − a0² − a1²) I‖ (and, to show P19, relative
to ‖K̃‖), and the eigenvalues of M. The theory step (shared by every d/n of an (activation, data, n))
gives the Hermite coefficients, the shifted and scaled MP law (atom mass and location, edges), the
outlier location, and, for each finite width, the LLC18 limiting density of Φ^TΦ/d from the
eigenvalues of K. ``compare`` puts them together: KS distances of the bulk (top min(n, p)
eigenvalues after the outlier) to the MP law and to the finite-width law, outlier and atom
locations, and convergence rates over n.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from rmtbench.canonical import short_hash
from rmtbench.experiments.base import Cell, Experiment, RunContext
from rmtbench.experiments.common import ACTIVATION, DATASET, SEEDS, SIZE, cell_data, data_key, list_of

KERNEL = "inf"
"""The ``d_over_n`` value that stands for d = ∞: the expected kernel K itself."""

WIDTH = {
    "anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1e6}, {"const": KERNEL}],
    "description": "A width ratio d/n > 0, or the string 'inf' for the expected kernel K itself (d = infinity)",
}

#: Quantities of the comparison table whose decay with n is fitted.
RATE_QUANTITIES = ("linearization_error", "ks_mp_bulk")


def width_ratio(value: Any) -> float:
    """The grid value of ``d_over_n`` as a number: ``math.inf`` for ``'inf'``.

    Examples
    --------
    >>> width_ratio("inf"), width_ratio(2)
    (inf, 2.0)
    """
    return math.inf if value == KERNEL else float(value)


def _radius(cell: Cell) -> float:
    return float(cell.options["dataset_spec"].get("radius", 1.0))


def _linearization(cell: Cell, X: np.ndarray) -> Any:
    from rmtbench.theory.sphere import SphereLinearization

    return SphereLinearization.for_activation(cell["activation"], n=X.shape[1], p=X.shape[0], tau=_radius(cell))


def _measure(matrix: Any, k_tilde: np.ndarray, divide_by: float | None) -> dict[str, Any]:
    """Eigenvalues of M and ‖M − K̃‖ (runs on a worker for the empirical Grams).

    ``matrix`` is K itself (``divide_by`` None) or the (upper, cross) products of the Dask Gram.
    """
    from rmtbench.empirical import symmetric_from_upper
    from rmtbench.parallel import single_blas_thread

    with single_blas_thread():
        M = matrix if divide_by is None else symmetric_from_upper(matrix[0]) / divide_by
        eigenvalues = np.linalg.eigvalsh(M)
        gap = np.linalg.eigvalsh(M - k_tilde)
    return {"eigenvalues": eigenvalues, "error_norm": float(np.max(np.abs(gap)))}


@dataclasses.dataclass(frozen=True)
class _NumericCell(Cell):
    """A cell whose ``d_over_n`` is a number (``inf`` for the kernel) but whose id is the original one."""

    original_id: str = ""

    @property
    def id(self) -> str:
        return self.original_id


class KernelLinearization(Experiment):
    """The kernel K (and its finite-width estimates Φ^TΦ/d) against the linear equivalent K̃ on the sphere."""

    kind = "kernel_linearization"
    description = ("Sphere linearisation of the random-features kernel (seed eq. 10): ||K - K_tilde|| against the bulk, "
                   "eigenvalues vs the shifted/scaled Marchenko-Pastur law, outlier, and the d -> infinity limit of Phi^T Phi / d.")
    axes = ("activation", "dataset", "n", "d_over_n")
    uses_dask = True
    grid_schema = {
        "activation": list_of(ACTIVATION, "Activations phi."),
        "dataset": list_of(DATASET, "Data sets of kind 'sphere' (x uniform on the sphere of the set's radius; p from p or p_over_n)."),
        "n": list_of(SIZE, "Samples n (keep p_over_n fixed in the data set to fit a convergence rate over n)."),
        "d_over_n": list_of(WIDTH, "Width ratios d/n of the empirical Gram Phi^T Phi / d; 'inf' is the expected kernel K itself "
                                   "(d_over_n: [inf] analyses the kernel only)."),
    }
    options_schema = {
        "seeds": {**SEEDS, "description": "Independent draws of the weights per finite width (the kernel cell has no draw; data stay fixed)."},
        "kernel_nodes": {"type": "integer", "minimum": 8, "default": 48,
                         "description": "Gauss-Hermite nodes per dimension for kernels without closed form."},
        "density_points": {"type": "integer", "minimum": 0, "default": 512,
                           "description": "Grid points of the finite-width (LLC18) density of Phi^T Phi / d; 0 skips that law. "
                                          "Narrow bulks need many: tanh at d/n = 16, n = 128 gave KS 0.054 with 128 points, "
                                          "0.011 with 512 (grid resolution, not theory)."},
    }

    def check(self, point: Mapping[str, Any], options: Mapping[str, Any], where: str) -> None:
        from rmtbench.config import ConfigError

        spec = options.get("dataset_spec", {})
        if spec.get("kind") != "sphere":
            raise ConfigError(f"config key '{where}.grid.dataset': kernel_linearization needs data uniform on a sphere "
                              f"(a data set of kind 'sphere'); {point['dataset']!r} has kind {spec.get('kind')!r}")

    def theory_key(self, cell: Cell) -> str:
        return short_hash({"data": data_key(cell), "activation": cell["activation"], "nodes": cell["kernel_nodes"],
                           "points": cell["density_points"], "seed": cell.root_seed})

    # -- empirical ---------------------------------------------------------------------------------
    def simulate(self, cell: Cell, ctx: RunContext) -> Any:
        import dask
        import scipy.linalg
        import xarray as xr

        from rmtbench.empirical import RandomFeatureMap, gram_graph
        from rmtbench.parallel import compute
        from rmtbench.store import provenance
        from rmtbench.theory.kernels import expected_kernel
        from rmtbench.weights import weight_law

        data = cell_data(cell, ctx)
        X = data.X
        p, n = X.shape
        lin = _linearization(cell, X)
        k_tilde = lin.linear_equivalent(X)
        ratio = width_ratio(cell["d_over_n"])
        if math.isinf(ratio):
            d: float = math.inf
            results = [_measure(expected_kernel(cell["activation"], X, nodes=int(cell["kernel_nodes"])), k_tilde, None)]
            matrix = "expected kernel K (d = infinity)"
        else:
            d = max(1, int(round(ratio * n)))
            law = weight_law("gaussian")
            X_delayed, k_delayed = dask.delayed(X), dask.delayed(k_tilde)
            measure = dask.delayed(_measure, pure=True)
            graphs = []
            for seed in range(int(cell["seeds"])):
                # Same key for every activation and width: common random numbers, nested widths.
                fmap = RandomFeatureMap(cell["activation"], law, d, cell.root_seed, ("sphere_rf", data_key(cell), law.label, seed))
                graphs.append(measure(gram_graph(fmap, X_delayed, None, in_flight=ctx.in_flight, block_rows=ctx.block_rows), k_delayed, float(d)))
            results = list(compute(ctx.client, *graphs))
            matrix = f"empirical Gram Phi^T Phi / d with d = {d} Gaussian random features"
        # Norms of the references: ||bulk|| = shift + a1^2 ||X||^2 / tau^2; ||K_tilde|| (PSD) its top eigenvalue.
        bulk_norm = lin.shift + lin.scale * float(np.linalg.eigvalsh(X @ X.T)[-1]) / lin.tau**2
        kt_norm = float(scipy.linalg.eigh(k_tilde, eigvals_only=True, subset_by_index=[n - 1, n - 1])[0])
        errors = np.array([r["error_norm"] for r in results])
        return xr.Dataset(
            {
                "eigenvalues": (("seed", "eig"), np.stack([r["eigenvalues"] for r in results]), {"long_name": "eigenvalues of M", "matrix": matrix}),
                "linearization_error": (("seed",), errors / bulk_norm, {
                    "long_name": "||M - K_tilde|| / ||a1^2 X^T X / tau^2 + (nu - a0^2 - a1^2) I||",
                    "description": "spectral-norm error of the linear equivalent relative to the bulk (pitfall P19)"}),
                "error_vs_full_norm": (("seed",), errors / kt_norm, {
                    "long_name": "||M - K_tilde|| / ||K_tilde||",
                    "description": "the same error relative to the spiked norm: looks small when a0 != 0 (pitfall P19)"}),
                "bulk_norm": ((), bulk_norm, {"long_name": "||a1^2 X^T X / tau^2 + (nu - a0^2 - a1^2) I||"}),
                "d": ((), float(d), {"long_name": "number of random features (inf: the expected kernel)"}),
                "p": ((), int(p), {"long_name": "input dimension"}),
            },
            coords={"seed": np.arange(len(results)), "eig": np.arange(n)},
            attrs=provenance(cell=cell.to_json(), data=data.meta),
        )

    # -- theory ------------------------------------------------------------------------------------
    def theory(self, cells: list[Cell], ctx: RunContext) -> Any:
        import xarray as xr

        from rmtbench.spectra import gram_density_window
        from rmtbench.store import provenance
        from rmtbench.theory.kernels import expected_kernel

        first = cells[0]
        data = cell_data(first, ctx)
        X = data.X
        p, n = X.shape
        lin = _linearization(first, X)
        scalars = {
            "a0": lin.a0, "a1": lin.a1, "a2": lin.a2, "nu": lin.nu, "tau": lin.tau, "shift": lin.shift, "scale": lin.scale,
            "spike": lin.spike, "mp_ratio": lin.ratio, "atom_mass": lin.atom_mass, "atom_count": lin.atom_count,
            "outlier_count": lin.outlier_count, "outlier_theory": lin.outlier_location(), "p_theory": p,
        }
        variables: dict[str, Any] = {name: ((), value) for name, value in scalars.items()}
        variables["outlier_theory"] = ((), scalars["outlier_theory"], {
            "long_name": "predicted outlier of K", "source": "theta + shift + a1^2/(1 - c a1^2/theta), theta = n (a0^2 + a2^2/p)"})
        lo, hi = lin.bulk_edges
        margin = 0.05 * (hi - lo) + 1e-3 * max(hi, 1e-12)
        mp_x = np.linspace(lo - margin, hi + margin, 400)
        variables["mp_x"] = (("mp_grid",), mp_x)
        variables["mp_density"] = (("mp_grid",), lin.density(mp_x) if lin.has_bulk else np.full(mp_x.size, np.nan), {
            "long_name": "continuous part of the shifted/scaled MP law (mass 1 - atom)", "source": "formula sheet sec. 3"})
        coords: dict[str, Any] = {"mp_grid": np.arange(mp_x.size)}
        ratios = sorted({width_ratio(c["d_over_n"]) for c in cells})
        finite = [r for r in ratios if math.isfinite(r)]
        points = int(first["density_points"])
        if finite and points > 0:
            kernel_eigvals = np.linalg.eigvalsh(expected_kernel(first["activation"], X, nodes=int(first["kernel_nodes"])))
            laws = {r: gram_density_window(kernel_eigvals, d=max(1, int(round(r * n))), n=n, points=points,
                                           divide_by=max(1, int(round(r * n)))) for r in finite}
            size = max(law.x.size for law in laws.values())
            grid_x = np.full((len(ratios), size), np.nan)
            grid_f = np.full((len(ratios), size), np.nan)
            atom = np.full(len(ratios), np.nan)
            window = np.full(len(ratios), np.nan)
            for i, r in enumerate(ratios):
                if r in laws:
                    grid_x[i, : laws[r].x.size], grid_f[i, : laws[r].x.size] = laws[r].x, laws[r].density
                    atom[i], window[i] = laws[r].atom_mass, laws[r].window[1]
            variables["width_x"] = (("d_over_n", "width_grid"), grid_x)
            variables["width_density"] = (("d_over_n", "width_grid"), grid_f, {
                "long_name": "LLC18 limiting density of Phi^T Phi / d (continuous part)",
                "source": "deterministic equivalent of seed eq. 9 from the eigenvalues of K; formula sheet sec. 2"})
            variables["width_atom_mass"] = (("d_over_n",), atom, {"long_name": "atom at 0 of Phi^T Phi / d: 1 - min(d, rank K)/n"})
            variables["width_window"] = (("d_over_n",), window, {"long_name": "upper end of the bulk window (outliers lie beyond)"})
            coords.update(d_over_n=ratios, width_grid=np.arange(size))
        return xr.Dataset(variables, coords=coords,
                          attrs=provenance(cells=[c.id for c in cells], data=data.meta, activation=lin.activation))

    def combine(self, cells: list[Cell], simulated: list[Any], theories: Mapping[str, Any]) -> Any:
        """Stack as usual, with ``d_over_n = 'inf'`` stored as the number ``inf`` (one numeric axis)."""
        from rmtbench.gather import stack_cells

        numeric = [_NumericCell(experiment=c.experiment, kind=c.kind, point={**c.point, "d_over_n": width_ratio(c.point["d_over_n"])},
                                options=c.options, root_seed=c.root_seed, axes=c.axes, original_id=c.id) for c in cells]
        return stack_cells(self, numeric, simulated, theories)

    # -- comparison and figures --------------------------------------------------------------------
    def compare(self, gathered: Any) -> Any:
        import pandas as pd

        rows = [row for stats in _cell_statistics(gathered) for row in stats.rows()]
        rows += _rate_rows(rows)
        columns = ["quantity", "activation", "dataset", "n", "d_over_n", "p", "measured", "sem", "theory", "rel_error", "distance",
                   "seeds", "note"]
        return pd.DataFrame(rows, columns=columns)

    def plot(self, gathered: Any, outdir: Path) -> list[Path]:
        stats = _cell_statistics(gathered)
        table = self.compare(gathered)
        return _error_vs_n_figures(table, outdir) + _width_figures(table, outdir) + _spectrum_figures(stats, outdir)


# -- statistics of one gathered cell -----------------------------------------------------------------
@dataclasses.dataclass
class _CellStats:
    """What the comparison and the spectrum figures need from one cell of a gathered dataset."""

    point: dict[str, Any]
    lin: Any  # SphereLinearization built from the stored theory
    eigenvalues: list[np.ndarray]
    errors: np.ndarray
    full_errors: np.ndarray
    mp_x: np.ndarray
    mp_density: np.ndarray
    width_x: np.ndarray | None = None
    width_density: np.ndarray | None = None
    width_atom_mass: float = float("nan")
    width_window: float = float("nan")
    outlier_theory: float = float("nan")

    @property
    def finite(self) -> bool:
        return math.isfinite(self.point["d_over_n"])

    @property
    def has_width_law(self) -> bool:
        return self.width_x is not None and bool(np.isfinite(self.width_x).any())

    def mp_ks(self) -> float:
        """KS of the pooled bulk (outlier and atom left out by their predicted counts) to the MP law."""
        from rmtbench.spectra import bulk_ks

        if not self.lin.has_bulk:
            return float("nan")
        return bulk_ks(np.array(self.eigenvalues), self.lin.bulk_cdf, atom_count=self.lin.atom_count,
                       outlier_count=self.lin.outlier_count)

    def width_law(self) -> Any:
        from rmtbench.spectra import GramDensity

        keep = np.isfinite(self.width_x)
        return GramDensity(x=self.width_x[keep], density=self.width_density[keep], atom_mass=self.width_atom_mass,
                           window=(0.0, self.width_window))

    def width_ks(self) -> tuple[float, int]:
        """KS of the bulk to the finite-width (LLC18) law on its window, and the count beyond it."""
        from rmtbench.spectra import atom_count, bulk_ks

        law = self.width_law()
        atoms = atom_count(self.lin.n, law.atom_mass)
        ks = bulk_ks(np.array(self.eigenvalues), law.cdf(), atom_count=atoms, window=(-math.inf, law.window[1]))
        beyond = int(sum(np.count_nonzero(e > law.window[1]) for e in self.eigenvalues))
        return ks, beyond

    def rows(self) -> list[dict[str, Any]]:
        base = {**self.point, "p": self.lin.p, "seeds": len(self.eigenvalues)}
        rows = []

        def add(quantity: str, values: Any, *, theory: float = float("nan"), note: str = "", distance: bool = False) -> None:
            values = np.atleast_1d(np.asarray(values, dtype=float))
            mean = float(values.mean())
            sem = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else float("nan")
            rel = (mean - theory) / theory if math.isfinite(theory) and theory != 0 else float("nan")
            rows.append({**base, "quantity": quantity, "measured": mean, "sem": sem, "theory": theory, "rel_error": rel,
                         "distance": mean if distance else float("nan"), "note": note})

        what = "K" if not self.finite else "Phi^T Phi / d"
        add("linearization_error", self.errors, distance=True,
            note=f"||{what} - K_tilde|| / ||a1^2 X^T X + (nu - a0^2 - a1^2) I|| (P19)")
        add("error_vs_full_norm", self.full_errors, distance=True,
            note=f"||{what} - K_tilde|| / ||K_tilde||: hidden by the spike when a0 != 0 (P19)")
        lin = self.lin
        bulk = lin.n - lin.atom_count - lin.outlier_count
        if lin.has_bulk:
            add("ks_mp_bulk", self.mp_ks(), distance=True, note=(
                f"top {bulk} eigenvalues after {lin.outlier_count} outlier(s) vs shifted/scaled MP_(n/p); "
                f"{lin.atom_count} atom eigenvalue(s) left out (P21); pooled over {len(self.eigenvalues)} draw(s)"))
        else:
            add("ks_mp_bulk", float("nan"), note="a1 = 0: the linear equivalent has no continuous bulk")
        if self.finite and self.has_width_law:
            ks, beyond = self.width_ks()
            add("ks_width_law", ks, distance=True, note=(
                f"bulk vs the LLC18 law of Phi^T Phi / d at this width (atom {self.width_atom_mass:.3g} left out); "
                f"{beyond} eigenvalue(s) beyond its window {self.width_window:.4g} left out"))
        if lin.outlier_count:
            tops = [e[-1] for e in self.eigenvalues]
            add("outlier", tops, theory=self.outlier_theory, note="largest eigenvalue vs theta + shift + a1^2/(1 - c a1^2/theta)")
        if lin.atom_count:
            atoms = np.concatenate([e[: lin.atom_count] for e in self.eigenvalues])
            add("atom_location", atoms.mean(), theory=lin.shift,
                note=(f"mean of the lowest {lin.atom_count} eigenvalues (n - p, less one taken by the spike; spread {atoms.std():.3g}) "
                      "vs nu - a0^2 - a1^2; an O(1/p) bias below it is expected (K_tilde drops -(a2^2/p) I and the rho^3 terms)"))
        return rows


def _scalar(ds: Any, name: str) -> float:
    return float(ds[name].values) if name in ds else float("nan")


def _cell_statistics(gathered: Any) -> list[_CellStats]:
    """Statistics of every computed cell of a gathered dataset (cells without theory are skipped)."""
    from rmtbench.spectra import draws
    from rmtbench.theory.sphere import SphereLinearization

    out = []
    for act in gathered["activation"].values:
        for dataset in gathered["dataset"].values:
            for n in gathered["n"].values:
                for ratio in gathered["d_over_n"].values:
                    point = {"activation": str(act), "dataset": str(dataset), "n": int(n), "d_over_n": float(ratio)}
                    sub = gathered.sel({k: v for k, v in point.items()})
                    if "eigenvalues" not in sub or not np.isfinite(sub["eigenvalues"].values).any():
                        continue
                    if not np.isfinite(_scalar(sub, "a1")):
                        continue
                    lin = SphereLinearization(activation=str(act), n=int(n), p=int(_scalar(sub, "p_theory")), tau=_scalar(sub, "tau"),
                                              a0=_scalar(sub, "a0"), a1=_scalar(sub, "a1"), a2=_scalar(sub, "a2"), nu=_scalar(sub, "nu"))
                    errors, full = sub["linearization_error"].values, sub["error_vs_full_norm"].values
                    stats = _CellStats(
                        point=point, lin=lin, eigenvalues=draws(sub["eigenvalues"].transpose("seed", "eig").values),
                        errors=errors[np.isfinite(errors)], full_errors=full[np.isfinite(full)],
                        mp_x=sub["mp_x"].values, mp_density=sub["mp_density"].values, outlier_theory=_scalar(sub, "outlier_theory"),
                    )
                    if "width_x" in sub and math.isfinite(point["d_over_n"]):
                        stats.width_x, stats.width_density = sub["width_x"].values, sub["width_density"].values
                        stats.width_atom_mass, stats.width_window = _scalar(sub, "width_atom_mass"), _scalar(sub, "width_window")
                    out.append(stats)
    return out


def _rate_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fitted exponents of the decay over n of the quantities in :data:`RATE_QUANTITIES`."""
    from rmtbench.compare import convergence_rate

    groups: dict[tuple[Any, ...], list[tuple[int, float]]] = {}
    for row in rows:
        if row["quantity"] in RATE_QUANTITIES and math.isfinite(row["measured"]) and row["measured"] > 0:
            key = (row["quantity"], row["activation"], row["dataset"], row["d_over_n"])
            groups.setdefault(key, []).append((row["n"], row["measured"]))
    out = []
    for (quantity, act, dataset, ratio), pairs in groups.items():
        sizes = sorted({n for n, _ in pairs})
        if len(sizes) < 2:
            continue
        pairs.sort()
        slope, stderr = convergence_rate([n for n, _ in pairs], [v for _, v in pairs])
        out.append({"quantity": f"rate:{quantity}", "activation": act, "dataset": dataset, "n": float("nan"), "d_over_n": ratio,
                    "p": float("nan"), "measured": slope, "sem": stderr, "theory": float("nan"), "rel_error": float("nan"), "distance": float("nan"),
                    "seeds": float("nan"), "note": f"least-squares slope of log {quantity} vs log n over n = {', '.join(map(str, sizes))}"})
    return out


# -- figures -----------------------------------------------------------------------------------------
def _width_label(ratio: float) -> str:
    return "K (d = ∞)" if math.isinf(ratio) else f"ΦᵀΦ/d, d/n = {ratio:g}"


def _ticks_at(ax: Any, values: Any, axis: str = "x") -> None:
    """Log axis with plain tick labels exactly at ``values`` (few, known grid values)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    target = ax.xaxis if axis == "x" else ax.yaxis
    getattr(ax, f"set_{axis}scale")("log")
    target.set_major_locator(FixedLocator(sorted(set(float(v) for v in values))))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_locator(NullLocator())
    target.set_minor_formatter(NullFormatter())


def _error_vs_n_figures(table: Any, outdir: Path) -> list[Path]:
    """Relative error against the bulk vs n, log-log, with the fitted slope (one figure per data set)."""
    from rmtbench.plots import COLORS, legend_below, pyplot, save_figure

    plt = pyplot()
    paths = []
    errors = table[table.quantity == "linearization_error"]
    rates = table[table.quantity == "rate:linearization_error"]
    for dataset, sub in errors.groupby("dataset", sort=False):
        if sub["n"].nunique() < 2:
            continue
        fig, ax = plt.subplots(figsize=(5.2, 4.4))
        for i, ((act, ratio), series) in enumerate(sub.groupby(["activation", "d_over_n"], sort=False)):
            series = series.sort_values("n")
            color = COLORS[i % len(COLORS)]
            n, y = series["n"].to_numpy(float), series["measured"].to_numpy(float)
            ax.errorbar(n, y, yerr=np.nan_to_num(series["sem"].to_numpy(float)), fmt="o", ms=3.5, color=color)
            fit = rates[(rates.activation == act) & (rates.dataset == dataset) & (rates.d_over_n == ratio)]
            label = f"{act}, {_width_label(ratio)}"
            if len(fit) and np.all(y > 0):
                slope, stderr = float(fit["measured"].iloc[0]), float(fit["sem"].iloc[0])
                ax.plot(n, np.exp(np.mean(np.log(y) - slope * np.log(n))) * n**slope, "--", color=color,
                        label=f"{label}: slope {slope:.2f}" + (f" ± {stderr:.2f}" if math.isfinite(stderr) else ""))
        kernel = sub[np.isinf(sub["d_over_n"].to_numpy(float))]
        if len(kernel):
            n0 = np.unique(kernel["n"].to_numpy(float))
            top = kernel.sort_values("n")["measured"].to_numpy(float).max()
            ax.plot(n0, top * (n0 / n0[0]) ** -0.5, ":", color="0.4", label="n^(-1/2) reference")
        _ticks_at(ax, sub["n"].to_numpy(float))
        ax.set_yscale("log")
        ax.set_xlabel("n (p/n fixed by the data set)")
        ax.set_ylabel("‖M − K̃‖ / ‖a1² XᵀX + (ν − a0² − a1²) I‖")
        ax.set_title(f"sphere linearisation error · {dataset}")
        legend_below(fig, ax, ncol=1)
        fig.subplots_adjust(bottom=0.1 + 0.04 * len(ax.get_legend_handles_labels()[0]))
        caption = (
            f"Spectral-norm error of the sphere linear equivalent K̃ = a0² 11ᵀ + a1² XᵀX + (a2²/p) 11ᵀ + (ν − a0² − a1²) I "
            f"(seed eq. 10; formula sheet sec. 3) against n on {dataset}, relative to the bulk ‖a1² XᵀX + (ν − a0² − a1²) I‖ "
            "(pitfall P19: relative to ‖K‖ the n·a0² spike hides the error). M = K, the expected kernel (closed form or quadrature), "
            "for d = ∞; M = ΦᵀΦ/d, the empirical Gram of d Gaussian random features, at finite d/n (points: mean over weight draws, "
            "bars: standard error; at fixed d/n its Monte-Carlo error does not vanish with n, and grows like n^(1/2) along the "
            "spike when a0 ≠ 0). Dashed: least-squares power laws with the fitted slopes; dotted: the n^(-1/2) rate the seed states."
        )
        paths.append(save_figure(fig, outdir, f"linearization_error-{dataset}", caption))
    return paths


def _width_figures(table: Any, outdir: Path) -> list[Path]:
    """Error and KS distances against d/n, with the kernel's values (d = ∞) as lines (one figure per data set)."""
    from rmtbench.plots import COLORS, pyplot, save_figure

    plt = pyplot()
    paths = []
    rows = table[table.quantity.isin(["linearization_error", "ks_mp_bulk", "ks_width_law"])]
    for dataset, sub in rows.groupby("dataset", sort=False):
        ratios = sub["d_over_n"].to_numpy(float)
        if not np.isfinite(ratios).any():
            continue
        from matplotlib.lines import Line2D

        fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.6))
        colors = []  # one colour per (activation, n); the quantity is told by the marker and line style
        for i, ((act, n), series) in enumerate(sub.groupby(["activation", "n"], sort=False)):
            color = COLORS[i % len(COLORS)]
            colors.append((f"{act}, n={int(n)}", color))
            for ax, quantity, style in ((axes[0], "linearization_error", "o-"), (axes[1], "ks_mp_bulk", "o-"),
                                        (axes[1], "ks_width_law", "s--")):
                rows_q = series[series.quantity == quantity]
                fin = rows_q[np.isfinite(rows_q["d_over_n"].to_numpy(float))].sort_values("d_over_n")
                if len(fin):
                    ax.errorbar(fin["d_over_n"], fin["measured"], yerr=np.nan_to_num(fin["sem"].to_numpy(float)), fmt=style, ms=3.5,
                                color=color, mfc=color if style.startswith("o") else "none")
                kernel = rows_q[np.isinf(rows_q["d_over_n"].to_numpy(float))]
                if len(kernel) and quantity != "ks_width_law":
                    ax.axhline(float(kernel["measured"].iloc[0]), color=color, ls=":")
        for ax, ylabel, title in zip(axes, ("‖M − K̃‖ / ‖bulk‖", "KS distance of the bulk"),
                                     ("error of the linear equivalent", "bulk spectrum")):
            _ticks_at(ax, ratios[np.isfinite(ratios)])
            ax.set_yscale("log")
            ax.set_xlabel("d / n")
            ax.set_ylabel(ylabel)
            ax.set_title(title, fontsize=9)
        fig.suptitle(f"finite width → kernel · {dataset}")
        grey = "0.35"
        handles = [Line2D([], [], color=c, lw=2, label=label) for label, c in colors] + [
            Line2D([], [], color=grey, marker="o", ls="-", ms=4, label="M = ΦᵀΦ/d (left); vs MP law of K̃ (right)"),
            Line2D([], [], color=grey, marker="s", mfc="none", ls="--", ms=4, label="ΦᵀΦ/d vs LLC18 law at d (right)"),
            Line2D([], [], color=grey, ls=":", label="expected kernel K (d = ∞)"),
        ]
        fig.legend(handles=handles, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0.0), fontsize=7.5, frameon=False)
        fig.subplots_adjust(top=0.86, bottom=0.2 + 0.045 * math.ceil(len(handles) / 3), wspace=0.32)
        caption = (
            f"Approach to the d → ∞ limit on {dataset}. Left: spectral-norm error of the sphere linear equivalent K̃ (seed eq. 10) "
            "relative to the bulk (P19) for the empirical Gram ΦᵀΦ/d of d Gaussian random features (mean over weight draws, "
            "standard-error bars) and, dotted, for the expected kernel K. Right: Kolmogorov-Smirnov distance of the bulk eigenvalues "
            "(the top min(n, p) after the outlier; the atom eigenvalues at ν − a0² − a1² left out, P21), pooled over draws, to the shifted and "
            "scaled Marchenko-Pastur law of K̃ (formula sheet sec. 3; dotted: the kernel K), and, squares, to the LLC18 limiting law "
            "of ΦᵀΦ/d at that width (deterministic equivalent of seed eq. 9 computed from the eigenvalues of K; atom at 0 and outliers "
            "left out); colours: activation and n. Read the squares against the circles to see whether the finite-width law describes "
            "the Gram better than the MP law at each width (the measured values are in the error table)."
        )
        paths.append(save_figure(fig, outdir, f"width_convergence-{dataset}", caption))
    return paths


def _spectrum_figures(stats: list[_CellStats], outdir: Path) -> list[Path]:
    """Eigenvalue histograms against the predicted densities, at the largest n of each (data set, activation)."""
    from rmtbench.plots import COLORS, pyplot, save_figure
    from rmtbench.spectra import spectral_histogram

    plt = pyplot()
    paths = []
    groups: dict[tuple[str, str], list[_CellStats]] = {}
    for s in stats:
        groups.setdefault((s.point["dataset"], s.point["activation"]), []).append(s)
    for (dataset, act), cells in groups.items():
        n = max(c.point["n"] for c in cells)
        cells = sorted((c for c in cells if c.point["n"] == n), key=lambda c: (math.isfinite(c.point["d_over_n"]), c.point["d_over_n"]))
        lin = cells[0].lin
        if not lin.has_bulk:
            continue
        fig, axes = plt.subplots(1, len(cells), figsize=(3.3 * len(cells), 3.2), squeeze=False)
        for ax, cell in zip(axes[0], cells):
            kept = np.concatenate([e[: e.size - lin.outlier_count] for e in cell.eigenvalues])
            low, top = min(0.0, float(kept.min())), 1.02 * max(lin.bulk_edges[1], float(kept.max()))
            bins = int(np.clip(2 * math.sqrt(kept.size), 20, 80))
            heights, edges = spectral_histogram(kept[None, :], bins=bins, range=(low, top))
            ax.stairs(heights, edges, fill=True, color="0.78", label="eigenvalues (pooled over draws)")
            ax.plot(cell.mp_x, cell.mp_density, color=COLORS[1], label="shifted/scaled MP law (d = ∞)")
            if cell.finite and cell.has_width_law:
                law = cell.width_law()
                ax.plot(law.x, law.density, "--", color=COLORS[0], label="LLC18 law at this width")
            if lin.atom_count:
                ax.axvline(lin.shift, color=COLORS[2], lw=0.9, ls=":", label=f"atom of mass {lin.atom_mass:.2f} at ν − a0² − a1²")
            # Atoms and hard edges make a few bins tall: scale the axis to the bulk (cut bars are intended).
            cap = max(float(np.nanmax(cell.mp_density)), float(np.sort(heights)[-3]) if heights.size > 3 else 0.0)
            ax.set_ylim(0, 1.35 * cap)
            ax.set_xlim(low, top)
            text = f"{len(cell.eigenvalues)} weight draw(s)" if cell.finite else "exact expected kernel"
            if lin.outlier_count:
                measured = np.mean([e[-1] for e in cell.eigenvalues])
                text += f"\noutlier {measured:.4g}\n(theory {cell.outlier_theory:.4g})"
            ax.text(0.97, 0.95, text, transform=ax.transAxes, ha="right", va="top", fontsize=7)
            ax.set_title(_width_label(cell.point["d_over_n"]))
            ax.set_xlabel("eigenvalue")
        axes[0][0].set_ylabel("density")
        handles = {}
        for ax in axes[0]:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=2, bbox_to_anchor=(0.5, -0.02), fontsize=7)
        fig.subplots_adjust(bottom=0.34, top=0.82, wspace=0.3)
        fig.suptitle(f"{act} on {dataset}, n = {n}, p = {lin.p}")
        caption = (
            f"Eigenvalues of the {act} random-features kernel on {dataset} (n = {n}, p = {lin.p}, radius {lin.tau:g}) against "
            "the shifted and scaled Marchenko-Pastur law ν − a0² − a1² + a1²·MP_(n/p) predicted by the sphere linear equivalent "
            "(seed eq. 10; formula sheet sec. 3). Panels: the expected kernel K (d = ∞) and the empirical Gram ΦᵀΦ/d at the finite "
            "widths; histograms pooled over the weight draws and normalised by the eigenvalue count, so the continuous part is on the "
            "scale of the density (the atom of mass 1 − p/n at ν − a0² − a1², P21, is the dotted line; its bar is cut off). The "
            "outlier, predicted at n(a0² + a2²/p) + ν − a0² + O(1/n), is left out of the histograms and reported in the panels. "
            "Dashed: the LLC18 deterministic-equivalent law of ΦᵀΦ/d at that width (formula sheet sec. 2), from the eigenvalues of K. "
            f"Largest n of the sweep only."
        )
        paths.append(save_figure(fig, outdir, f"spectrum-{dataset}-{act}-n{n}", caption))
    return paths
