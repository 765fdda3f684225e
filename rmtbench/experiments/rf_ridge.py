"""Ridge regression on random features: training and test MSE against their deterministic equivalents.

Seed slides "Single-hidden-layer NN model ..." (LLC18 Theorem 1); formula sheet section 2. For each
cell (data set, n, d/n, activation, weight law) and each seed, the Gram G = Phi^T Phi / n and the
train/test cross-Gram are accumulated on Dask, G is diagonalised once, and the MSE follows for the
whole gamma grid. The theory needs the expected kernel K of the same data, computed once per
(data, activation) and reused for every d.

Spectral side (issue 3): the eigenvalues of G are stored per seed; the theory adds, per width, the
limiting density of G by Stieltjes inversion of the deterministic equivalent m(z) = (1/n) tr Q̄(z)
(its continuous part on a window covering the bulk, and the atom at 0 of mass 1 − min(d, rank K)/n)
and m(z) itself on a grid of complex z (plus z = −γ). ``compare`` adds the Kolmogorov–Smirnov
distance of the pooled bulk eigenvalues to that law and the relative distance of the empirical
Stieltjes transform (1/n) tr (G − zI)^{-1} to m(z); ``plot`` adds histogram-versus-density figures.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rmtbench.canonical import short_hash
from rmtbench.experiments.base import Cell, Experiment, RunContext
from rmtbench.experiments.common import (
    ACTIVATION, DATASET, GAMMA, N_TEST, POSITIVE, SEEDS, SIZE, WEIGHTS, cell_data, data_key, list_of, width,
)


def _solve_seed(products: tuple[np.ndarray, np.ndarray], y: np.ndarray, y_test: np.ndarray, gammas: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Eigendecompose one seed's Gram and evaluate train/test MSE on the gamma grid (runs on a worker)."""
    from rmtbench.empirical import symmetric_from_upper
    from rmtbench.parallel import single_blas_thread
    from rmtbench.ridge import ridge_mse

    upper, cross = products
    with single_blas_thread():
        gram = symmetric_from_upper(upper) / n
        eigvals, eigvecs = np.linalg.eigh(gram)
        result = ridge_mse(eigvals, eigvecs, y, cross / n, y_test, gammas)
    return {
        "eigenvalues": eigvals, "train_mse": np.asarray(result.train_mse), "test_mse": np.asarray(result.test_mse),
        "ill_conditioned": np.asarray(result.ill_conditioned, dtype=bool),
    }


class RandomFeaturesRidge(Experiment):
    """Training/test MSE of random-features ridge regression, and their deterministic equivalents."""

    kind = "rf_ridge"
    description = "Ridge regression on random features phi(WX): train/test MSE vs LLC18 deterministic equivalents (double descent)."
    axes = ("activation", "weights", "dataset", "n", "d_over_n")
    uses_dask = True
    grid_schema = {
        "activation": list_of(ACTIVATION, "Activations phi."),
        "weights": list_of(WEIGHTS, "Laws of the weight entries (zero mean, unit variance)."),
        "dataset": list_of(DATASET, "Data sets."),
        "n": list_of(SIZE, "Training samples n."),
        "d_over_n": list_of(POSITIVE, "Width ratios d/n (d = round(d_over_n * n))."),
    }
    options_schema = {
        "seeds": SEEDS,
        "gamma": GAMMA,
        "n_test": N_TEST,
        "kernel_nodes": {"type": "integer", "minimum": 8, "default": 48, "description": "Gauss-Hermite nodes per dimension for kernels without closed form."},
        "density_points": {"type": "integer", "minimum": 0, "default": 128,
                           "description": "Grid points of the limiting eigenvalue density of G = Phi^T Phi / n per width (0 skips the spectral theory)."},
    }

    def theory_key(self, cell: Cell) -> str:
        return short_hash({"data": data_key(cell), "activation": cell["activation"], "gamma": cell["gamma"],
                           "nodes": cell["kernel_nodes"], "points": cell["density_points"], "seed": cell.root_seed})

    # -- empirical ---------------------------------------------------------------------------------
    def simulate(self, cell: Cell, ctx: RunContext) -> Any:
        import dask
        import xarray as xr

        from rmtbench.empirical import RandomFeatureMap, gram_graph
        from rmtbench.progress import compute
        from rmtbench.store import provenance
        from rmtbench.weights import weight_law

        data = cell_data(cell, ctx)
        n, gammas, law = data.X.shape[1], np.asarray(cell["gamma"], dtype=float), weight_law(cell["weights"])
        X, X_test = dask.delayed(data.X), dask.delayed(data.X_test)
        solve = dask.delayed(_solve_seed, pure=True)
        graphs = []
        for seed in range(int(cell["seeds"])):
            fmap = RandomFeatureMap(cell["activation"], law, width(cell), cell.root_seed, ("rf", data_key(cell), law.label, seed))
            graphs.append(solve(gram_graph(fmap, X, X_test, in_flight=ctx.in_flight, block_rows=ctx.block_rows), data.y, data.y_test, gammas, n))
        results = compute(ctx.client, *graphs, label=f"{cell.experiment}/{cell.label}")
        stacked = {key: np.stack([r[key] for r in results]) for key in results[0]}
        return xr.Dataset(
            {
                "train_mse": (("seed", "gamma"), stacked["train_mse"], {"long_name": "training MSE", "description": "(gamma^2/n)||Q y||^2 per weight draw"}),
                "test_mse": (("seed", "gamma"), stacked["test_mse"], {"long_name": "test MSE", "description": "(1/n_test)||y_test - yhat_test||^2 per weight draw"}),
                "ill_conditioned": (("seed", "gamma"), stacked["ill_conditioned"], {"description": "True where G + gamma I is numerically singular"}),
                "eigenvalues": (("seed", "eig"), stacked["eigenvalues"], {"long_name": "eigenvalues of G = Phi^T Phi / n"}),
                "d": ((), width(cell), {"long_name": "number of random features"}),
            },
            coords={"seed": np.arange(int(cell["seeds"])), "gamma": gammas, "eig": np.arange(n)},
            attrs=provenance(cell=cell.to_json(), data=data.meta),
        )

    # -- theory ------------------------------------------------------------------------------------
    def theory(self, cells: list[Cell], ctx: RunContext) -> Any:
        import xarray as xr

        from rmtbench.activations import get_activation
        from rmtbench.store import provenance
        from rmtbench.theory.equivalent import KernelSpectrum, ridge_mse_over_widths
        from rmtbench.theory.kernels import expected_kernel, expected_kernel_diag

        first = cells[0]
        data = cell_data(first, ctx)
        act = get_activation(first["activation"])
        nodes = int(first["kernel_nodes"])
        kernel = expected_kernel(act, data.X, nodes=nodes)
        spectrum = KernelSpectrum.from_kernel(
            kernel, data.y, expected_kernel(act, data.X, data.X_test, nodes=nodes), expected_kernel_diag(act, data.X_test), data.y_test
        )
        gammas = np.asarray(first["gamma"], dtype=float)
        ratios = sorted({float(c["d_over_n"]) for c in cells})
        n = data.X.shape[1]

        def evaluate(values: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            delta, train, test = ridge_mse_over_widths(spectrum, widths=[max(1, int(round(r * n))) for r in values], gammas=gammas)
            return train, test, delta

        train, test, delta = evaluate(ratios)
        # a dense curve of widths for the figures: one eigendecomposition makes it almost free
        curve = np.unique(np.concatenate([np.geomspace(min(ratios), max(ratios), 80), [r for r in (1.0,) if min(ratios) <= r <= max(ratios)]]))
        curve_train, curve_test, _ = evaluate(list(curve))
        spectral, spectral_coords = _spectral_theory(spectrum.eigvals, ratios, n, gammas, points=int(first["density_points"]))
        return xr.Dataset(
            {
                **spectral,
                "train_mse_theory": (("d_over_n", "gamma"), np.array(train), {"long_name": "deterministic-equivalent training MSE", "source": "LLC18 sec. 3.1; formula sheet sec. 2"}),
                "test_mse_theory": (("d_over_n", "gamma"), np.array(test), {"long_name": "deterministic-equivalent test MSE", "source": "LLC18 sec. 3.2; formula sheet sec. 2"}),
                "delta": (("d_over_n", "gamma"), np.array(delta), {"long_name": "delta(-gamma), fixed point of seed eq. 9"}),
                "kernel_eigenvalues": (("eig",), spectrum.eigvals, {"long_name": "eigenvalues of the expected kernel K"}),
                "train_mse_theory_curve": (("d_over_n_curve", "gamma"), curve_train, {"long_name": "training MSE theory on a dense grid of d/n"}),
                "test_mse_theory_curve": (("d_over_n_curve", "gamma"), curve_test, {"long_name": "test MSE theory on a dense grid of d/n"}),
            },
            coords={"d_over_n": ratios, "gamma": gammas, "d_over_n_curve": curve, "eig": np.arange(n), **spectral_coords},
            attrs=provenance(cells=[c.id for c in cells], data=data.meta, activation=act.name),
        )

    # -- comparison and figures --------------------------------------------------------------------
    def compare(self, gathered: Any) -> Any:
        from rmtbench.compare import seed_mean_table

        import pandas as pd

        table = seed_mean_table(gathered, [("train_mse", "train_mse_theory"), ("test_mse", "test_mse_theory")])
        spectral = spectral_table(gathered)
        return table if spectral.empty else pd.concat([table, spectral], ignore_index=True)

    def plot(self, gathered: Any, outdir: Path) -> list[Path]:
        from rmtbench.plots import double_descent_figures, mse_vs_gamma_figures

        return double_descent_figures(gathered, outdir) + mse_vs_gamma_figures(gathered, outdir) + spectrum_figures(gathered, outdir)


# -- spectral side -------------------------------------------------------------------------------------
STIELTJES_POINTS = 24
"""Complex points z = x + iη per width (x across the bulk window, η = 2% of it), besides z = −γ."""


def _spectral_theory(kernel_eigvals: np.ndarray, ratios: list[float], n: int, gammas: np.ndarray, *,
                     points: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Limiting density of G = Φ^TΦ/n and its Stieltjes transform m(z), per width (theory variables, coords)."""
    from rmtbench.spectra import gram_density_window
    from rmtbench.theory.equivalent import gram_stieltjes

    if points <= 0:
        return {}, {}
    laws = [gram_density_window(kernel_eigvals, d=max(1, int(round(r * n))), n=n, points=points) for r in ratios]
    size = max(law.x.size for law in laws)
    grid_x, grid_f = np.full((len(ratios), size), np.nan), np.full((len(ratios), size), np.nan)
    zs, ms = [], []
    for i, (r, law) in enumerate(zip(ratios, laws)):
        grid_x[i, : law.x.size], grid_f[i, : law.x.size] = law.x, law.density
        hi = law.window[1]
        z = np.concatenate([np.linspace(0.0, hi, STIELTJES_POINTS + 2)[1:-1] + 0.02j * hi, -gammas + 0j])
        zs.append(z)
        ms.append(np.asarray(gram_stieltjes(kernel_eigvals, d=max(1, int(round(r * n))), n=n, z=z)))
    z, m = np.array(zs), np.array(ms)
    source = "Stieltjes inversion of m(z) = (1/n) tr Qbar(z), Qbar of seed eq. 9 (LLC18 Thm 1); formula sheet sec. 2"
    variables = {
        "gram_density_x": (("d_over_n", "density_grid"), grid_x, {"long_name": "grid of the limiting density of G"}),
        "gram_density": (("d_over_n", "density_grid"), grid_f, {"long_name": "limiting eigenvalue density of G = Phi^T Phi / n (continuous part)", "source": source}),
        "gram_atom_mass": (("d_over_n",), np.array([law.atom_mass for law in laws]), {"long_name": "atom at 0 of the law of G: 1 - min(d, rank K)/n"}),
        "gram_window": (("d_over_n",), np.array([law.window[1] for law in laws]), {"long_name": "upper end of the bulk window; outliers of G lie beyond"}),
        "stieltjes_z_real": (("d_over_n", "zpoint"), z.real, {"long_name": "Re z"}),
        "stieltjes_z_imag": (("d_over_n", "zpoint"), z.imag, {"long_name": "Im z (0 at z = -gamma)"}),
        "stieltjes_theory_real": (("d_over_n", "zpoint"), m.real, {"long_name": "Re m(z), deterministic equivalent of (1/n) tr (G - zI)^-1", "source": source}),
        "stieltjes_theory_imag": (("d_over_n", "zpoint"), m.imag, {"long_name": "Im m(z)", "source": source}),
    }
    return variables, {"density_grid": np.arange(size), "zpoint": np.arange(z.shape[1])}


def _spectral_cells(gathered: Any) -> Any:
    """(point, eigenvalue draws, GramDensity, z, m) for every computed cell with spectral theory."""
    from rmtbench.spectra import GramDensity, draws

    if "gram_density" not in gathered or "eigenvalues" not in gathered:
        return
    axes = ("activation", "weights", "dataset", "n", "d_over_n")
    stacked = gathered[["eigenvalues", "gram_density_x", "gram_density", "gram_atom_mass", "gram_window", "stieltjes_z_real",
                        "stieltjes_z_imag", "stieltjes_theory_real", "stieltjes_theory_imag"]].stack(_cell=axes)
    for i in range(stacked.sizes["_cell"]):
        sub = stacked.isel(_cell=i)
        eigs = draws(sub["eigenvalues"].transpose("seed", "eig").values)
        x = sub["gram_density_x"].values
        if not eigs or not np.isfinite(x).any():
            continue
        keep = np.isfinite(x)
        law = GramDensity(x=x[keep], density=sub["gram_density"].values[keep], atom_mass=float(sub["gram_atom_mass"]),
                          window=(0.0, float(sub["gram_window"])))
        z = sub["stieltjes_z_real"].values + 1j * sub["stieltjes_z_imag"].values
        m = sub["stieltjes_theory_real"].values + 1j * sub["stieltjes_theory_imag"].values
        point = {axis: sub[axis].item() for axis in axes}
        yield point, eigs, law, z[np.isfinite(z)], m[np.isfinite(m)]


def spectral_table(gathered: Any) -> Any:
    """KS distance of the bulk eigenvalues of G to their limiting law, and the Stieltjes-transform distance.

    Rows ``spectrum_ks``: the atom at 0 (its predicted count round(mass·n) of smallest eigenvalues per
    draw) and eigenvalues beyond the bulk window (outliers) are left out, the rest pooled over seeds
    and compared with the continuous part renormalised on the window. Rows ``stieltjes``: per seed
    max_z |(1/n) tr (G − zI)^{-1} − m(z)| / |m(z)|, mean and standard error over seeds.
    """
    import pandas as pd

    from rmtbench.spectra import atom_count, bulk_ks, stieltjes_distance

    rows = []
    for point, eigs, law, z, m in _spectral_cells(gathered):
        n = max(e.size for e in eigs)
        atoms = atom_count(n, law.atom_mass)
        ks = bulk_ks(np.array(eigs), law.cdf(), atom_count=atoms, window=(-np.inf, law.window[1]))
        beyond = sum(int(np.count_nonzero(e > law.window[1])) for e in eigs)
        rows.append({**point, "quantity": "spectrum_ks", "distance": ks, "note": (
            f"KS of the bulk of G (pooled over {len(eigs)} seeds) to its limiting law; {atoms} atom eigenvalue(s) per seed "
            f"and {beyond} beyond the window {law.window[1]:.4g} left out")})
        dist = stieltjes_distance(np.array(eigs), z, m)
        rows.append({**point, "quantity": "stieltjes", "distance": float(dist.mean()),
                     "sem": float(dist.std(ddof=1) / np.sqrt(dist.size)) if dist.size > 1 else np.nan,
                     "note": f"max over {z.size} points z of |(1/n) tr (G - zI)^-1 - m(z)| / |m(z)|, mean over seeds"})
    return pd.DataFrame(rows)


def spectrum_figures(gathered: Any, outdir: Path) -> list[Path]:
    """Histogram of the eigenvalues of G (pooled over seeds) against the limiting density, one panel per d/n."""
    from rmtbench.plots import COLORS, pyplot, save_figure
    from rmtbench.spectra import spectral_histogram

    plt = pyplot()
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for point, eigs, law, _, _ in _spectral_cells(gathered):
        groups.setdefault((point["dataset"], point["activation"], point["weights"], point["n"]), []).append((point, eigs, law))
    paths = []
    for (dataset, act, weights, n), cells in groups.items():
        cells.sort(key=lambda c: c[0]["d_over_n"])
        cols = min(4, len(cells))
        rows = -(-len(cells) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 2.6 * rows + 0.6), squeeze=False)
        for ax in axes.ravel()[len(cells):]:
            ax.set_visible(False)
        for ax, (point, eigs, law) in zip(axes.ravel(), cells):
            pooled = np.concatenate(eigs)
            hi = law.window[1]
            # Spectra of G spread over decades: plot the density of log(lambda), lambda f(lambda), on a log axis,
            # from the theoretical 0.1% quantile of the continuous part to the end of the bulk window.
            cdf = law.cdf()
            lo = max(float(law.x[np.searchsorted(cdf.values, 1e-3)]), 1e-6 * hi)
            edges = np.geomspace(lo, hi, int(np.clip(2 * np.sqrt(pooled.size / len(eigs)), 20, 70)) + 1)
            counts, _ = np.histogram(pooled, bins=edges)
            heights = counts / (pooled.size * np.diff(np.log(edges)))  # by all eigenvalues: the atom stays out of view
            ax.stairs(heights, edges, fill=True, color="0.78", label=f"eigenvalues of G ({len(eigs)} seeds pooled)")
            keep = law.x >= lo
            ax.plot(law.x[keep], law.x[keep] * law.density[keep], color=COLORS[1], label="limiting law (deterministic equivalent)")
            ax.set_xscale("log")
            ax.set_xlim(lo, hi)
            ax.set_ylim(0, 1.25 * max(float(heights.max()), float(np.max(law.x[keep] * law.density[keep]))))
            notes = [f"atom {law.atom_mass:.2f} at 0"] if law.atom_mass > 0 else []
            outside = int(np.count_nonzero(pooled > hi))
            if outside:
                notes.append(f"{outside / len(eigs):g} outlier(s)/seed beyond")
            ax.text(0.03, 0.95, "\n".join(notes), transform=ax.transAxes, ha="left", va="top", fontsize=7)
            ax.set_title(f"d/n = {point['d_over_n']:g}")
            ax.set_xlabel("eigenvalue λ of ΦᵀΦ/n")
        for ax in axes[:, 0]:
            ax.set_ylabel("density of log λ")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=2, bbox_to_anchor=(0.5, -0.01), fontsize=7)
        fig.suptitle(f"spectrum of G · {act} · W {weights} · {dataset} · n={n}")
        fig.tight_layout(rect=(0, 0.08, 1, 0.97))
        seeds = max(len(c[1]) for c in cells)
        caption = (
            f"Eigenvalues of the random-features Gram G = ΦᵀΦ/n ({act} features, weights {weights}, {dataset}, n = {n}), "
            f"histograms pooled over {seeds} weight draws, against the limiting density from the deterministic equivalent "
            "Q̄(z) = ((d/n) K/(1+δ(z)) − z I)^-1 of LLC18 (seed eq. 9; formula sheet sec. 2) by Stieltjes inversion, computed "
            "from the expected kernel K of the same data. Log axis: histogram heights are counts/(all n eigenvalues × bin width "
            "in log λ) and the line is λ·f(λ), the density of log λ, so areas are masses; the atom at 0 of mass 1 − d/n when d < n "
            "and the outliers of G (images of K's isolated eigenvalues, e.g. the n(Eφ)² spike) lie outside the range shown."
        )
        paths.append(save_figure(fig, outdir, f"spectrum-{dataset}-{act}-{weights}-n{n}", caption))
    return paths
