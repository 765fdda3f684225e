"""Ridge regression on random features: training and test MSE against their deterministic equivalents.

Seed slides "Single-hidden-layer NN model ..." (LLC18 Theorem 1); formula sheet section 2. For each
cell (data set, n, d/n, activation, weight law) and each seed, the Gram G = Phi^T Phi / n and the
train/test cross-Gram are accumulated on Dask, G is diagonalised once, and the MSE follows for the
whole gamma grid. The theory needs the expected kernel K of the same data, computed once per
(data, activation) and reused for every d.
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
    }

    def theory_key(self, cell: Cell) -> str:
        return short_hash({"data": data_key(cell), "activation": cell["activation"], "gamma": cell["gamma"],
                           "nodes": cell["kernel_nodes"], "seed": cell.root_seed})

    # -- empirical ---------------------------------------------------------------------------------
    def simulate(self, cell: Cell, ctx: RunContext) -> Any:
        import dask
        import xarray as xr

        from rmtbench.empirical import RandomFeatureMap, gram_graph
        from rmtbench.parallel import compute
        from rmtbench.store import provenance
        from rmtbench.weights import weight_law

        data = cell_data(cell, ctx)
        n, gammas, law = data.X.shape[1], np.asarray(cell["gamma"], dtype=float), weight_law(cell["weights"])
        X, X_test = dask.delayed(data.X), dask.delayed(data.X_test)
        solve = dask.delayed(_solve_seed, pure=True)
        graphs = []
        for seed in range(int(cell["seeds"])):
            fmap = RandomFeatureMap(cell["activation"], law, width(cell), cell.root_seed, ("rf", data_key(cell), law.label, seed))
            graphs.append(solve(gram_graph(fmap, X, X_test, block_rows=ctx.block_rows), data.y, data.y_test, gammas, n))
        results = compute(ctx.client, *graphs)
        stacked = {key: np.stack([r[key] for r in results]) for key in results[0]}
        return xr.Dataset(
            {
                "train_mse": (("seed", "gamma"), stacked["train_mse"], {"long_name": "training MSE", "description": "(gamma^2/n)||Q y||^2 per weight draw"}),
                "test_mse": (("seed", "gamma"), stacked["test_mse"], {"long_name": "test MSE", "description": "(1/n_test)||y_test - yhat_test||^2 per weight draw"}),
                "ill_conditioned": (("seed", "gamma"), stacked["ill_conditioned"], {"description": "True where G + gamma I is numerically singular"}),
                "eigenvalues": (("seed", "eig"), stacked["eigenvalues"], {"long_name": "eigenvalues of G = Phi^T Phi / n"}),
                "d": ((), width(cell), {"long_name": "number of random features"}),
            },
            coords={"seed": np.arange(int(cell["seeds"])), "gamma": gammas},
            attrs=provenance(cell=cell.to_json(), data=data.meta),
        )

    # -- theory ------------------------------------------------------------------------------------
    def theory(self, cells: list[Cell], ctx: RunContext) -> Any:
        import xarray as xr

        from rmtbench.activations import get_activation
        from rmtbench.store import provenance
        from rmtbench.theory.equivalent import KernelSpectrum, ridge_mse_from_spectrum
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
            results = [ridge_mse_from_spectrum(spectrum, d=max(1, int(round(r * n))), gammas=gammas) for r in values]
            return tuple(np.array([getattr(r, k) for r in results]) for k in ("train_mse", "test_mse", "delta"))

        train, test, delta = evaluate(ratios)
        # a dense curve of widths for the figures: one eigendecomposition makes it almost free
        curve = np.unique(np.concatenate([np.geomspace(min(ratios), max(ratios), 80), [r for r in (1.0,) if min(ratios) <= r <= max(ratios)]]))
        curve_train, curve_test, _ = evaluate(list(curve))
        return xr.Dataset(
            {
                "train_mse_theory": (("d_over_n", "gamma"), np.array(train), {"long_name": "deterministic-equivalent training MSE", "source": "LLC18 sec. 3.1; formula sheet sec. 2"}),
                "test_mse_theory": (("d_over_n", "gamma"), np.array(test), {"long_name": "deterministic-equivalent test MSE", "source": "LLC18 sec. 3.2; formula sheet sec. 2"}),
                "delta": (("d_over_n", "gamma"), np.array(delta), {"long_name": "delta(-gamma), fixed point of seed eq. 9"}),
                "kernel_eigenvalues": (("eig",), spectrum.eigvals, {"long_name": "eigenvalues of the expected kernel K"}),
                "train_mse_theory_curve": (("d_over_n_curve", "gamma"), curve_train, {"long_name": "training MSE theory on a dense grid of d/n"}),
                "test_mse_theory_curve": (("d_over_n_curve", "gamma"), curve_test, {"long_name": "test MSE theory on a dense grid of d/n"}),
            },
            coords={"d_over_n": ratios, "gamma": gammas, "d_over_n_curve": curve},
            attrs=provenance(cells=[c.id for c in cells], data=data.meta, activation=act.name),
        )

    # -- comparison and figures --------------------------------------------------------------------
    def compare(self, gathered: Any) -> Any:
        from rmtbench.compare import seed_mean_table

        return seed_mean_table(gathered, [("train_mse", "train_mse_theory"), ("test_mse", "test_mse_theory")])

    def plot(self, gathered: Any, outdir: Path) -> list[Path]:
        from rmtbench.plots import double_descent_figures, mse_vs_gamma_figures

        return double_descent_figures(gathered, outdir) + mse_vs_gamma_figures(gathered, outdir)
