"""Scaling laws of the ridgeless training MSE: random features against LLC18 and against the slides' rates.

Seed slide "Scaling law of training MSE" (LM25); formula sheet §2 (ridgeless limit, θ) and §7; pitfall
P7. At fixed d/n < 1 and γ → 0 the LLC18 training MSE becomes (κ/n) y^T(K + κI)^{-1} y with
Σ_i λ_i/(λ_i + κ) = d (θ = dκ/n), so its decay in n is set by the eigenvalues of K. The slides claim
n^{-(1+β)} for polynomial eigendecay λ_i ∝ i^{-(1+β)} and log(n)/n for exponential decay.

Cells (activation, data set, d/n, n), each with ``seeds`` Gaussian weight draws:

simulation
    the Gram G = Φ^TΦ/n of d = round(d/n·n) random features on Dask (:func:`rmtbench.empirical.gram_graph`),
    diagonalised once per draw; the training MSE (γ²/n)‖(G + γI)^{-1}y‖² on the small ridges ``gamma``
    and its γ → 0 limit, the least-squares residual (1/n)‖(I − P)y‖² with P the projection on the
    row space of Φ (the span of the top d eigenvectors of G).
theory (per activation, data set and n; never sees the simulation)
    the expected kernel K of the same data, the LLC18 training MSE at each γ (full formula) and its
    closed ridgeless form, θ, and fits of the eigendecay of K (power and exponential) on the indices
    that set κ; in addition the *model spectra* of ``spectra`` (exact algebra at sizes
    ``spectra_n``, :mod:`rmtbench.theory.scaling`), identical in every theory group and stored once.
compare
    seed mean against theory per cell; exponents fitted over n (empirical, theory) beside the claimed
    ones (−(1+β̂) with β̂ from K's eigenvalues, and the slope of log(n)/n); for the model spectra,
    exact exponents beside the predicted and the claimed ones.

Data of low intrinsic dimension make the eigendecay visible: e.g. the ``sphere`` data set with small
fixed p and ``noise: 0``. (Label noise of variance σ² adds a floor σ²(1 − d/n) that never decays.)
The kernel of an even activation such as cos is even in x, so cos features cannot fit the odd linear
teacher of ``sphere``; use sin (odd, the same analytic kind of kernel) there, or give an even target.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from rmtbench.canonical import short_hash
from rmtbench.experiments.base import Cell, Experiment, RunContext
from rmtbench.experiments.common import ACTIVATION, DATASET, SIZE, cell_data, data_key, list_of, width

MODEL_PREFIX = "model_"
"""Theory variables of the model spectra (identical in every theory group; ``combine`` keeps one copy)."""

DEFAULT_SPECTRA = [
    {"decay": "polynomial", "beta": 0.5, "normalisation": "matrix"},
    {"decay": "polynomial", "beta": 1.0, "normalisation": "matrix"},
    {"decay": "polynomial", "beta": 0.5, "normalisation": "operator"},
    {"decay": "polynomial", "beta": 1.0, "normalisation": "operator"},
    {"decay": "exponential", "c": 0.05, "normalisation": "matrix"},
    {"decay": "exponential", "c": 0.05, "normalisation": "operator"},
]

SPECTRUM_SCHEMA = {
    "type": "object",
    "properties": {
        "decay": {"enum": ["polynomial", "exponential"], "description": "lambda_i = A i^-(1+beta) or A exp(-c i)."},
        "beta": {"type": "number", "exclusiveMinimum": 0, "description": "beta of a polynomial spectrum."},
        "c": {"type": "number", "exclusiveMinimum": 0, "description": "c of an exponential spectrum."},
        "normalisation": {"enum": ["matrix", "operator"], "default": "matrix",
                          "description": "A = 1 (matrix) or A = n (operator: n times the eigenvalues of the integral operator)."},
    },
    "required": ["decay"],
    "additionalProperties": False,
}


def _solve_seed(products: tuple[np.ndarray, Any], y: np.ndarray, gammas: np.ndarray, n: int, d: int) -> dict[str, Any]:
    """Eigendecompose one draw's Gram and evaluate the training MSE on the ridges and at γ → 0 (on a worker)."""
    from rmtbench.empirical import symmetric_from_upper
    from rmtbench.parallel import single_blas_thread

    with single_blas_thread():
        gram = symmetric_from_upper(products[0]) / n
        eigvals, eigvecs = np.linalg.eigh(gram)
        a = eigvecs.T @ y
    eigvals = np.clip(eigvals, 0.0, None)
    # E_train(γ) = (γ²/n)‖(G + γI)^{-1} y‖² (formula sheet §2), in the eigenbasis of G
    train = gammas**2 * np.sum((a[:, None] / (eigvals[:, None] + gammas[None, :])) ** 2, axis=0) / n
    # γ → 0 with d < n: G has rank d, its n − d smallest eigenvalues are 0 and y's energy there is the
    # least-squares residual (ascending order from eigh)
    ridgeless = float(np.sum(a[: n - d] ** 2)) / n
    smallest = float(eigvals[n - d])  # the smallest of the d nonzero eigenvalues
    full_rank = bool(smallest > n * np.finfo(np.float64).eps * float(eigvals[-1]))
    return {"train_mse": train, "train_mse_ridgeless": ridgeless, "smallest_eigenvalue": smallest, "full_rank": full_rank}


def _gaussian_products(root: Any, d: int, root_seed: int, key: tuple[Any, ...]) -> tuple[np.ndarray, None]:
    """Φ^TΦ for the Gaussian-equivalent control: d i.i.d. feature rows N(0, K) = Z·root^T (on a worker)."""
    from rmtbench.parallel import single_blas_thread
    from rmtbench.rng import generator

    n = root.shape[0]
    with single_blas_thread():
        features = generator(root_seed, *key).standard_normal((d, n)) @ root.T
        return features.T @ features, None


class ScalingLaws(Experiment):
    """Ridgeless training MSE against n at fixed d/n: random features, LLC18 theory, model spectra, claimed rates."""

    kind = "scaling"
    description = ("Scaling law of the ridgeless training MSE at fixed d/n < 1: random features vs LLC18 (theta, closed form) "
                   "and model spectra (polynomial / exponential decay) vs the slides' n^-(1+beta) and log(n)/n.")
    axes = ("activation", "dataset", "d_over_n", "n")
    uses_dask = True
    grid_schema = {
        "activation": list_of(ACTIVATION, "Activations phi (e.g. relu: polynomial eigendecay; sin/cos: analytic kernels)."),
        "dataset": list_of(DATASET, "Data sets; low intrinsic dimension shows the eigendecay (e.g. sphere with small p, noise 0)."),
        "d_over_n": list_of({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                            "Width ratios d/n < 1 (under-parameterised: the ridgeless limit has a nonzero training error)."),
        "n": list_of(SIZE, "Training samples n (the scaling axis)."),
    }
    options_schema = {
        "seeds": {"type": "integer", "minimum": 1, "default": 4, "description": "Independent draws of the weights per cell (data stay fixed)."},
        "gamma": list_of({"type": "number", "exclusiveMinimum": 0}, "Small ridges gamma > 0 evaluated besides the ridgeless limit.",
                         default=[1e-6, 1e-8]),
        "kernel_nodes": {"type": "integer", "minimum": 8, "default": 48, "description": "Gauss-Hermite nodes per dimension for kernels without closed form."},
        "gaussian_control": {"type": "boolean", "default": True,
                             "description": "Also simulate Gaussian-equivalent features (i.i.d. rows N(0, K), K the expected kernel): "
                                            "the model in which the deterministic equivalent is exact up to finite size, to tell a failure "
                                            "of the theory from the non-Gaussianity of phi(Wx) on low-dimensional data."},
        "decay_fit_start": {"type": "integer", "minimum": 1, "default": 10,
                            "description": "First eigenvalue index (1-based) of the eigendecay fits of K; the fits end at index d."},
        "spectra": {"type": "array", "items": SPECTRUM_SCHEMA, "default": DEFAULT_SPECTRA,
                    "description": "Model spectra evaluated by exact algebra (theory only): polynomial and exponential decay, "
                                   "in the two normalisations of formula sheet sec. 7."},
        "spectra_n": list_of({"type": "integer", "minimum": 4}, "Sizes n at which the model spectra are evaluated.",
                             default=[256, 512, 1024, 2048, 4096]),
    }

    def check(self, point: Mapping[str, Any], options: Mapping[str, Any], where: str) -> None:
        from rmtbench.config import ConfigError

        d = int(round(float(point["d_over_n"]) * int(point["n"])))
        if not 1 <= d < int(point["n"]):
            raise ConfigError(f"config key '{where}.grid': d = round(d_over_n * n) = {d} must satisfy 1 <= d < n = {point['n']} "
                              f"(d_over_n = {point['d_over_n']}): the ridgeless limit is under-parameterised")
        for i, spec in enumerate(options.get("spectra", [])):
            key = "beta" if spec.get("decay") == "polynomial" else "c"
            if key not in spec:
                raise ConfigError(f"config key '{where}.spectra[{i}]': a {spec.get('decay')} spectrum needs '{key}'")

    def theory_key(self, cell: Cell) -> str:
        return short_hash({"data": data_key(cell), "activation": cell["activation"], "gamma": cell["gamma"],
                           "nodes": cell["kernel_nodes"], "start": cell["decay_fit_start"], "spectra": cell["spectra"],
                           "spectra_n": cell["spectra_n"], "seed": cell.root_seed})

    # -- empirical ---------------------------------------------------------------------------------
    def simulate(self, cell: Cell, ctx: RunContext) -> Any:
        import dask
        import xarray as xr

        from rmtbench.empirical import RandomFeatureMap, gram_graph
        from rmtbench.parallel import compute
        from rmtbench.store import provenance
        from rmtbench.weights import weight_law

        data = cell_data(cell, ctx)
        n, d, seeds = data.X.shape[1], width(cell), int(cell["seeds"])
        gammas = np.asarray(cell["gamma"], dtype=float)
        law = weight_law("gaussian")
        X = dask.delayed(data.X)
        solve = dask.delayed(_solve_seed, pure=True)
        graphs = [solve(gram_graph(RandomFeatureMap(cell["activation"], law, d, cell.root_seed, ("scaling", data_key(cell), seed)),
                                   X, in_flight=ctx.in_flight, block_rows=ctx.block_rows), data.y, gammas, n, d)
                  for seed in range(seeds)]
        control = bool(cell["gaussian_control"])
        if control:
            from rmtbench.activations import get_activation
            from rmtbench.theory.kernels import expected_kernel

            lam, vecs = np.linalg.eigh(expected_kernel(get_activation(cell["activation"]), data.X, nodes=int(cell["kernel_nodes"])))
            root = dask.delayed(vecs * np.sqrt(np.clip(lam, 0.0, None)))
            products = dask.delayed(_gaussian_products, pure=True)
            graphs += [solve(products(root, d, cell.root_seed, ("scaling", "gaussian-control", data_key(cell), seed)), data.y, gammas, n, d)
                       for seed in range(seeds)]
        results = compute(ctx.client, *graphs)
        extra = {}
        if control:
            results, gaussian = results[:seeds], results[seeds:]
            extra["train_mse_ridgeless_gaussian"] = (
                ("seed",), np.array([r["train_mse_ridgeless"] for r in gaussian]),
                {"long_name": "ridgeless training MSE, Gaussian-equivalent features",
                 "description": "least-squares residual with d i.i.d. feature rows N(0, K), K the expected kernel (control)"})
            extra["train_mse_gaussian"] = (("seed", "gamma"), np.stack([r["train_mse"] for r in gaussian]),
                                           {"long_name": "training MSE at gamma, Gaussian-equivalent features"})
            extra["full_rank_gaussian"] = (("seed",), np.array([r["full_rank"] for r in gaussian]),
                                           {"description": "False where the Gaussian-equivalent Gram has numerically fewer than d nonzero eigenvalues"})
        return xr.Dataset(
            {
                **extra,
                "train_mse": (("seed", "gamma"), np.stack([r["train_mse"] for r in results]),
                              {"long_name": "training MSE at ridge gamma", "description": "(gamma^2/n)||(G + gamma I)^-1 y||^2 per weight draw"}),
                "train_mse_ridgeless": (("seed",), np.array([r["train_mse_ridgeless"] for r in results]),
                                        {"long_name": "ridgeless training MSE", "description": "least-squares residual (1/n)||(I - P_rowspace(Phi)) y||^2"}),
                "smallest_eigenvalue": (("seed",), np.array([r["smallest_eigenvalue"] for r in results]),
                                        {"long_name": "smallest nonzero eigenvalue of G (the d-th largest)"}),
                "full_rank": (("seed",), np.array([r["full_rank"] for r in results]),
                              {"description": "False where G has numerically fewer than d nonzero eigenvalues (ridgeless value unreliable)"}),
                "d": ((), d, {"long_name": "number of random features"}),
            },
            coords={"seed": np.arange(seeds), "gamma": gammas},
            attrs=provenance(cell=cell.to_json(), data=data.meta, weights="gaussian"),
        )

    # -- theory ------------------------------------------------------------------------------------
    def theory(self, cells: list[Cell], ctx: RunContext) -> Any:
        import xarray as xr

        from rmtbench.activations import get_activation
        from rmtbench.store import provenance
        from rmtbench.theory.equivalent import KernelSpectrum, kernel_rank, ridge_mse_from_spectrum, ridgeless_theta, ridgeless_train_mse
        from rmtbench.theory.kernels import expected_kernel
        from rmtbench.theory.scaling import eigen_decay_fit

        first = cells[0]
        data = cell_data(first, ctx)
        act = get_activation(first["activation"])
        spectrum = KernelSpectrum.from_kernel(expected_kernel(act, data.X, nodes=int(first["kernel_nodes"])), data.y)
        n = spectrum.n
        gammas = np.asarray(first["gamma"], dtype=float)
        ratios = sorted({float(c["d_over_n"]) for c in cells})
        rank = kernel_rank(spectrum.eigvals, n=n)
        columns: dict[str, list[Any]] = {k: [] for k in ("full", "ridgeless", "theta", "interpolating", "alpha", "c", "power_rms", "exp_rms")}
        for ratio in ratios:
            d = max(1, int(round(ratio * n)))
            columns["full"].append(ridge_mse_from_spectrum(spectrum, d=d, gammas=gammas).train_mse)
            interpolating = d >= rank  # then γδ → 0: the training error vanishes as γ → 0
            columns["interpolating"].append(interpolating)
            columns["theta"].append(0.0 if interpolating else ridgeless_theta(spectrum.eigvals, d=d, n=n))
            columns["ridgeless"].append(0.0 if interpolating else ridgeless_train_mse(spectrum.eigvals, spectrum.y_proj, d=d))
            try:
                fit = eigen_decay_fit(spectrum.eigvals, lo=int(first["decay_fit_start"]), hi=d)
                values = (fit.alpha, fit.c, fit.power_rms, fit.exponential_rms)
            except ValueError:
                values = (math.nan,) * 4
            for key, value in zip(("alpha", "c", "power_rms", "exp_rms"), values):
                columns[key].append(value)
        source = "LLC18 (seed eq. 9) in the ridgeless limit; formula sheet sec. 2"
        fit_note = f"least squares on log lambda_i(K), i = {first['decay_fit_start']}..d"
        dataset = xr.Dataset(
            {
                "train_mse_theory": (("d_over_n", "gamma"), np.array(columns["full"]), {"long_name": "LLC18 training MSE at gamma (full formula)", "source": source}),
                "train_mse_ridgeless_theory": (("d_over_n",), np.array(columns["ridgeless"]),
                                               {"long_name": "closed-form ridgeless training MSE (kappa/n) y^T (K + kappa I)^-1 y", "source": source}),
                "theta": (("d_over_n",), np.array(columns["theta"]), {"long_name": "theta = lim gamma delta(-gamma) = d kappa / n", "source": source}),
                "interpolating": (("d_over_n",), np.array(columns["interpolating"]), {"description": "d >= rank K: the ridgeless training MSE is 0"}),
                "kernel_rank": ((), rank, {"long_name": "numerical rank of K"}),
                "kernel_eigenvalues": (("eig",), spectrum.eigvals[::-1].copy(), {"long_name": "eigenvalues of the expected kernel K, decreasing"}),
                "target_energy": (("eig",), (spectrum.y_proj[::-1] ** 2) / n, {"long_name": "(u_i^T y)^2 / n in the same order"}),
                "decay_alpha": (("d_over_n",), np.array(columns["alpha"]), {"long_name": "alpha = 1 + beta of lambda_i ~ i^-alpha", "method": fit_note}),
                "decay_c": (("d_over_n",), np.array(columns["c"]), {"long_name": "c of lambda_i ~ exp(-c i)", "method": fit_note}),
                "decay_power_rms": (("d_over_n",), np.array(columns["power_rms"]), {"long_name": "rms residual of log lambda, power fit"}),
                "decay_exponential_rms": (("d_over_n",), np.array(columns["exp_rms"]), {"long_name": "rms residual of log lambda, exponential fit"}),
            },
            coords={"d_over_n": ratios, "gamma": gammas, "eig": np.arange(n)},
        )
        dataset = xr.merge([dataset, model_spectra_theory(first["spectra"], first["spectra_n"], ratios)])
        dataset.attrs = provenance(cells=[c.id for c in cells], data=data.meta, activation=act.name)
        return dataset

    def combine(self, cells: list[Cell], simulated: list[Any], theories: Mapping[str, Any]) -> Any:
        """Stack the cells; the model-spectrum variables (the same in every theory group) are kept once."""
        import xarray as xr

        from rmtbench.gather import stack_cells

        model = None
        stripped = {}
        for key, theory in theories.items():
            names = [v for v in theory.data_vars if v.startswith(MODEL_PREFIX)]
            if model is None and names:
                model = theory[names].drop_attrs()
            stripped[key] = theory.drop_vars(names + [c for c in theory.coords if c.startswith(MODEL_PREFIX)])
        gathered = stack_cells(self, cells, simulated, stripped)
        return gathered if model is None else xr.merge([gathered, model])

    # -- comparison and figures --------------------------------------------------------------------
    def compare(self, gathered: Any) -> Any:
        import pandas as pd

        from rmtbench.compare import seed_mean_table

        frames = []
        if "train_mse" in gathered and "train_mse_theory" in gathered:
            pairs = [("train_mse", "train_mse_theory"), ("train_mse_ridgeless", "train_mse_ridgeless_theory")]
            if "train_mse_ridgeless_gaussian" in gathered:
                pairs += [("train_mse_gaussian", "train_mse_theory"), ("train_mse_ridgeless_gaussian", "train_mse_ridgeless_theory")]
            masked = gathered.assign({name: _reliable(gathered, name).where(gathered[flag].all("seed"))
                                      for name, flag in RANK_FLAGS.items() if name in gathered and flag in gathered})
            frames.append(seed_mean_table(masked, pairs))
            frames.append(pd.DataFrame(rank_rows(gathered)))
        frames.append(pd.DataFrame(rate_rows(gathered)))
        frames.append(pd.DataFrame(model_rows(gathered)))
        return pd.concat([f for f in frames if not f.empty], ignore_index=True)

    def plot(self, gathered: Any, outdir: Path) -> list[Path]:
        paths = rf_figures(gathered, outdir) + kernel_spectrum_figures(gathered, outdir) + model_figures(gathered, outdir)
        return [p for p in paths if p is not None]


def rank_rows(gathered: Any) -> list[dict[str, Any]]:
    """Cells whose Gram was numerically rank-deficient in some draw: their ridgeless residual is round-off, left out."""
    rows = []
    for name, flag in RANK_FLAGS.items():
        if flag not in gathered:
            continue
        bad = (~gathered[flag].astype(bool)).sum("seed")
        stacked = bad.stack(_cell=[a for a in ("activation", "dataset", "d_over_n", "n") if a in bad.dims])
        for i in range(stacked.sizes["_cell"]):
            count = int(stacked.isel(_cell=i))
            if count:
                point = {k: stacked["_cell"].values[i][j] for j, k in enumerate(stacked.indexes["_cell"].names)}
                rows.append({**{k: (v.item() if hasattr(v, "item") else v) for k, v in point.items()}, "quantity": f"{name}_rank_deficient",
                             "mean": count, "note": f"{count} draw(s) with fewer than d Gram eigenvalues above n eps lambda_max: "
                                                    "the features interpolate y up to round-off; ridgeless value left out"})
    return rows


# -- model spectra (theory only) ------------------------------------------------------------------------


def model_spectra_theory(spectra: list[Mapping[str, Any]], sizes: list[int], ratios: list[float]) -> Any:
    """Exact and asymptotic θ and top-target training MSE of the model spectra (dims model, model_n, model_d_over_n)."""
    import xarray as xr

    from rmtbench.theory.scaling import asymptotic_train_mse, model_train_mse, parse_model_spectrum, predicted_exponent

    models = [parse_model_spectrum(s) for s in spectra]
    ns = sorted({int(m) for m in sizes})
    shape = (len(models), len(ns), len(ratios))
    exact = {t: np.full(shape, np.nan) for t in ("kernel", "top")}
    asym = {t: np.full(shape, np.nan) for t in ("kernel", "top")}
    for i, model in enumerate(models):
        for k, rho in enumerate(ratios):
            for t in ("kernel", "top"):
                asym[t][i, :, k] = asymptotic_train_mse(model, ns, d_over_n=rho, target=t)  # type: ignore[arg-type]
                for j, m in enumerate(ns):
                    if 1 <= round(rho * m) < m:
                        exact[t][i, j, k] = model_train_mse(model, m, d_over_n=rho, target=t)  # type: ignore[arg-type]
    dims = ("model", "model_n", "model_d_over_n")
    source = "exact algebra of the ridgeless LLC18 limit on the model spectrum; formula sheet sec. 7; rmtbench.theory.scaling"
    return xr.Dataset(
        {
            "model_theta": (dims, exact["kernel"], {"long_name": "theta = E_y E_train for y ~ N(0, K)", "source": source}),
            "model_train_top": (dims, exact["top"], {"long_name": "E_train for y = sqrt(n) u_1 (a smooth teacher): kappa/(lambda_1 + kappa)", "source": source}),
            "model_theta_asymptotic": (dims, asym["kernel"], {"long_name": "leading-order theta(n)", "source": source}),
            "model_train_top_asymptotic": (dims, asym["top"], {"long_name": "leading-order kappa(n)/(lambda_1 + kappa(n))", "source": source}),
            "model_decay": (("model",), [m.decay for m in models]),
            "model_rate": (("model",), [m.rate for m in models], {"long_name": "beta (polynomial) or c (exponential)"}),
            "model_normalisation": (("model",), [m.normalisation for m in models]),
            "model_exponent_kernel": (("model",), [predicted_exponent(m, "kernel") for m in models], {"long_name": "predicted exponent of theta (NaN: faster than any power)"}),
            "model_exponent_top": (("model",), [predicted_exponent(m, "top") for m in models], {"long_name": "predicted exponent of the top-target MSE"}),
        },
        coords={"model": [m.label for m in models], "model_n": ns, "model_d_over_n": list(ratios)},
    )


def model_rows(gathered: Any) -> list[dict[str, Any]]:
    """Per model spectrum, d/n and target: exact exponent over n beside the predicted and the slides' one."""
    from rmtbench.theory.laws import fit_power_law
    from rmtbench.theory.scaling import claimed_exponent

    if "model_theta" not in gathered:
        return []
    rows = []
    ns = gathered["model_n"].values.astype(float)
    for model in gathered["model"].values:
        sub = gathered.sel(model=model)
        decay, rate = str(sub["model_decay"].item()), float(sub["model_rate"])
        claim = claimed_exponent(decay, beta=rate, n=ns)  # type: ignore[arg-type]
        for rho in gathered["model_d_over_n"].values:
            for target, name in (("kernel", "model_theta"), ("top", "model_train_top")):
                exact = sub[name].sel(model_d_over_n=rho).values.astype(float)
                asym = sub[f"{name}_asymptotic"].sel(model_d_over_n=rho).values.astype(float)
                keep = np.isfinite(exact) & (exact > 0)
                if keep.sum() < 2:
                    continue
                fit = fit_power_law(ns[keep], exact[keep])
                predicted = float(sub[f"model_exponent_{target}"])
                row = {
                    "model": str(model), "d_over_n": float(rho), "quantity": f"model_exponent_{'theta' if target == 'kernel' else 'top'}",
                    "exponent": fit.exponent, "exponent_stderr": fit.exponent_stderr, "predicted_exponent": predicted,
                    "claim": "n^-(1+beta)" if decay == "polynomial" else "log(n)/n", "claim_exponent": claim,
                    "asymptotic_rel_error": float(exact[keep][-1] / asym[keep][-1] - 1.0), "n_min": int(ns[keep][0]), "n_max": int(ns[keep][-1]),
                }
                if decay == "exponential":
                    # log MSE is linear in n: slope -c rho for theta (the asymptotic law)
                    # log E is linear in n (slope -c d/n; the operator normalisation's theta adds log n): fit both the
                    # exact values and the leading-order law the same way
                    slope = float(np.polyfit(ns[keep], np.log(exact[keep]), 1)[0])
                    predicted_slope = float(np.polyfit(ns[keep], np.log(asym[keep]), 1)[0])
                    row.update(local_exponent=float(np.log(exact[keep][-1] / exact[keep][-2]) / np.log(ns[keep][-1] / ns[keep][-2])),
                               log_slope_in_n=slope, predicted_log_slope_in_n=predicted_slope)
                    row["note"] = ("faster than any power: the log-log slope steepens with n (local_exponent at the largest sizes); "
                                   "log E is linear in n with slope -c d/n, not log(n)/n")
                else:
                    row["note"] = ("theta ~ A t n^-(1+beta), A = 1 (matrix) or n (operator)" if target == "kernel"
                                   else "kappa/lambda_1 ~ t n^-(1+beta) in both normalisations")
                rows.append(row)
    return rows


# -- random features: rates over n ----------------------------------------------------------------------


SERIES = (
    ("train_mse_ridgeless", "empirical", "random features, gamma -> 0 (least squares), seed mean"),
    ("train_mse_ridgeless_gaussian", "empirical", "Gaussian-equivalent features (rows N(0, K)), gamma -> 0, seed mean (control)"),
    ("train_mse_ridgeless_theory", "theory", "LLC18 closed ridgeless form"),
    ("theta", "theory", "theta = E_y E_train for y ~ N(0, K)"),
)


RANK_FLAGS = {"train_mse_ridgeless": "full_rank", "train_mse_ridgeless_gaussian": "full_rank_gaussian"}
"""Ridgeless empirical variables and the flag saying that G had d numerically nonzero eigenvalues."""


def _reliable(sub: Any, name: str) -> Any:
    """A ridgeless empirical variable with NaN where a draw's Gram was numerically rank-deficient (residual = round-off)."""
    values = sub[name]
    flag = RANK_FLAGS.get(name)
    if flag and flag in sub:
        values = values.where(sub[flag].astype(bool))
    return values


def _series(sub: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(n, values) of a variable over n: the seed mean for simulated variables (NaN if a draw is rank-deficient);
    positive finite values only."""
    values = _reliable(sub, name)
    if "seed" in values.dims:
        values = values.mean("seed", skipna=False)
    ns = sub["n"].values.astype(float)
    v = np.asarray(values.values, dtype=float)
    keep = np.isfinite(v) & (v > 0)
    return ns[keep], v[keep]


def _decay_at_largest_n(sub: Any) -> tuple[float, str]:
    """β̂ = α̂ − 1 from K's eigenvalues at the largest n with a fit, and the better-fitting decay there."""
    if "decay_alpha" not in sub:
        return math.nan, "unknown"
    for n in sub["n"].values[::-1]:
        cell = sub.sel(n=n)
        alpha = float(cell["decay_alpha"])
        if math.isfinite(alpha):
            power, exponential = float(cell["decay_power_rms"]), float(cell["decay_exponential_rms"])
            return alpha - 1.0, "polynomial" if power <= exponential else "exponential"
    return math.nan, "unknown"


def rate_rows(gathered: Any) -> list[dict[str, Any]]:
    """Per (activation, data set, d/n): exponents over n of the empirical and theoretical training MSE beside the claims."""
    from rmtbench.theory.laws import fit_power_law
    from rmtbench.theory.scaling import claimed_exponent

    rows = []
    if "n" not in gathered.dims:
        return rows
    gamma_min = float(gathered["gamma"].min()) if "gamma" in gathered.dims else math.nan
    for act in gathered["activation"].values:
        for dataset in gathered["dataset"].values:
            for rho in gathered["d_over_n"].values:
                sub = gathered.sel(activation=act, dataset=dataset, d_over_n=rho)
                beta, decay = _decay_at_largest_n(sub)
                series = list(SERIES)
                if math.isfinite(gamma_min):
                    sub = sub.assign(train_mse_gamma=sub["train_mse"].sel(gamma=gamma_min), train_mse_theory_gamma=sub["train_mse_theory"].sel(gamma=gamma_min))
                    series += [("train_mse_gamma", "empirical", f"random features at gamma = {gamma_min:g}, seed mean"),
                               ("train_mse_theory_gamma", "theory", f"LLC18 full formula at gamma = {gamma_min:g}")]
                for name, side, text in series:
                    if name not in sub:
                        continue
                    ns, values = _series(sub, name)
                    if ns.size < 2:
                        continue
                    fit = fit_power_law(ns, values)
                    claim_poly = claimed_exponent("polynomial", beta=beta)
                    claim_exp = claimed_exponent("exponential", n=ns)
                    rows.append({
                        "activation": str(act), "dataset": str(dataset), "d_over_n": float(rho), "quantity": f"exponent_{name}",
                        "side": side, "exponent": fit.exponent, "exponent_stderr": fit.exponent_stderr, "n_min": int(ns[0]), "n_max": int(ns[-1]),
                        "kernel_decay": decay, "beta_hat": beta,
                        "claim": "n^-(1+beta)" if decay == "polynomial" else "log(n)/n",
                        "claim_exponent": claim_poly if decay == "polynomial" else claim_exp,
                        "claim_polynomial_exponent": claim_poly, "claim_log_n_over_n_exponent": claim_exp,
                        "note": text + ("; points with a zero value (d >= rank K) left out" if ns.size < sub.sizes["n"] else ""),
                    })
    return rows


# -- figures --------------------------------------------------------------------------------------------


def _ticks_at(ax: Any, values: Any) -> None:
    """Major ticks of a log x axis exactly at the grid values, labelled as plain numbers."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sorted(float(v) for v in values)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _seed_mean_sem(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds and its standard error; NaN where any draw is NaN (e.g. a rank-deficient Gram)."""
    data = values.transpose("seed", ...).values.astype(float)
    mean = data.mean(axis=0)
    sem = data.std(axis=0, ddof=1) / np.sqrt(data.shape[0]) if data.shape[0] > 1 else np.zeros_like(mean)
    return mean, sem


def rf_figures(gathered: Any, outdir: Path) -> list[Path]:
    """Training MSE against n (log–log), one panel per activation, per data set and d/n: simulation, LLC18, claims."""
    from rmtbench.plots import COLORS, pyplot, save_figure

    if "train_mse_ridgeless" not in gathered or "n" not in gathered.dims:
        return []
    plt = pyplot()
    table = rate_rows(gathered)
    paths = []
    gamma_min = float(gathered["gamma"].min())
    for dataset in gathered["dataset"].values:
        for rho in gathered["d_over_n"].values:
            sub_all = gathered.sel(dataset=dataset, d_over_n=rho)
            acts = [a for a in sub_all["activation"].values if np.isfinite(sub_all["train_mse_ridgeless"].sel(activation=a).values).any()]
            if not acts:
                continue
            fig, axes = plt.subplots(1, len(acts), figsize=(4.3 * len(acts), 3.6), squeeze=False)
            notes = []
            for ax, act in zip(axes[0], acts):
                sub = sub_all.sel(activation=act)
                ns = sub["n"].values.astype(float)
                rows = {r["quantity"]: r for r in table if r["activation"] == str(act) and r["dataset"] == str(dataset) and r["d_over_n"] == float(rho)}

                def slope(key: str) -> str:
                    return f" ({rows[key]['exponent']:.2f})" if key in rows else ""

                mean, sem = _seed_mean_sem(_reliable(sub, "train_mse_ridgeless"))
                ok = np.isfinite(mean) & (mean > 0)
                deficient = int(np.sum(~np.isfinite(mean) & np.isfinite(sub["train_mse_ridgeless"].mean("seed").values)))
                ax.errorbar(ns[ok], mean[ok], yerr=sem[ok], fmt="o", ms=4, color=COLORS[0],
                            label="random features, γ → 0" + slope("exponent_train_mse_ridgeless"))
                gam, _ = _seed_mean_sem(sub["train_mse"].sel(gamma=gamma_min))
                ok_g = np.isfinite(gam) & (gam > 0)
                ax.plot(ns[ok_g], gam[ok_g], "o", ms=6, mfc="none", color=COLORS[0], label=f"random features, γ = {gamma_min:g}")
                if "train_mse_ridgeless_gaussian" in sub:
                    gmean, gsem = _seed_mean_sem(_reliable(sub, "train_mse_ridgeless_gaussian"))
                    ok_c = np.isfinite(gmean) & (gmean > 0)
                    ax.errorbar(ns[ok_c] * 1.04, gmean[ok_c], yerr=gsem[ok_c], fmt="^", ms=4, color=COLORS[2],
                                label="Gaussian-equivalent features, γ → 0" + slope("exponent_train_mse_ridgeless_gaussian"))
                theory = sub["train_mse_ridgeless_theory"].values.astype(float)
                ok_t = np.isfinite(theory) & (theory > 0)
                ax.plot(ns[ok_t], theory[ok_t], "-", color=COLORS[1], label="LLC18 ridgeless (closed form)" + slope("exponent_train_mse_ridgeless_theory"))
                ax.plot(ns, sub["train_mse_theory"].sel(gamma=gamma_min).values, ":", color=COLORS[1], label=f"LLC18 at γ = {gamma_min:g}")
                beta, decay = _decay_at_largest_n(sub)
                if ok_t.any():
                    anchor_n, anchor = ns[ok_t][0], theory[ok_t][0]
                    grid = np.geomspace(ns.min(), ns.max(), 50)
                    if decay == "polynomial" and math.isfinite(beta):
                        ax.plot(grid, anchor * (grid / anchor_n) ** (-(1 + beta)), "--", color="0.3", lw=0.9,
                                label=f"claim n^-(1+β̂), β̂ = {beta:.2f} ({-(1 + beta):.2f})")
                    else:
                        claim = rows.get("exponent_train_mse_ridgeless_theory", {}).get("claim_log_n_over_n_exponent", math.nan)
                        ax.plot(grid, anchor * (np.log(grid) / grid) / (np.log(anchor_n) / anchor_n), "-.", color="0.3", lw=0.9,
                                label=f"claim log(n)/n ({claim:.2f})")
                _ticks_at(ax, ns)
                ax.set_yscale("log")
                ax.set_xlabel("n")
                ax.set_title(f"{act}: K's eigenvalues decay {'like a power' if decay == 'polynomial' else 'exponentially or faster'}")
                ax.legend(loc="lower left", fontsize=6.5, frameon=True, framealpha=0.85)
                parts = [f"{text} {rows[key]['exponent']:.2f} +- {rows[key]['exponent_stderr']:.2f}"
                         for key, text in (("exponent_train_mse_ridgeless", "random features"),
                                           ("exponent_train_mse_ridgeless_gaussian", "Gaussian-equivalent features"),
                                           ("exponent_train_mse_ridgeless_theory", "LLC18 theory")) if key in rows]
                ratio = mean / np.where(ok_t, theory, np.nan)
                interp = int(np.sum(sub["interpolating"].values.astype(bool))) if "interpolating" in sub else 0
                notes.append(f"{act}: K's eigenvalues fit best as {decay} decay (power-law beta-hat = {beta:.2f}); fitted exponents "
                             + ", ".join(parts) + f"; claimed {rows.get('exponent_train_mse_ridgeless_theory', {}).get('claim', '?')} = "
                             f"{rows.get('exponent_train_mse_ridgeless_theory', {}).get('claim_exponent', math.nan):.2f}; simulation/theory = "
                             + ", ".join(f"{r:.2f}" for r in ratio[np.isfinite(ratio)])
                             + (f"; d >= rank K at {interp} size(s): theory 0, not drawn" if interp else "")
                             + (f"; at {deficient} size(s) the random features were numerically rank-deficient (Gram eigenvalues below "
                                "n eps lambda_max: the features interpolate y up to round-off), not drawn and not fitted" if deficient else ""))
            axes[0][0].set_ylabel("training MSE")
            fig.suptitle(f"ridgeless training MSE against n · {dataset} · d/n = {rho:g}")
            fig.tight_layout(rect=(0, 0, 1, 0.95))
            seeds = gathered.sizes.get("seed", 1)
            caption = (
                f"Scaling law of the training MSE (seed slide 'Scaling law of training MSE'; formula sheet secs. 2 and 7) on {dataset} at "
                f"d/n = {rho:g}, n = {int(sub_all['n'].min())}..{int(sub_all['n'].max())}, exponents fitted over n in brackets. Blue: "
                f"random-features regression with d = round(d/n n) Gaussian-weight features, mean over {seeds} weight draws (error bars: "
                f"standard errors), filled at gamma -> 0 (least-squares residual), open at gamma = {gamma_min:g}. Green triangles: the "
                "control with Gaussian-equivalent features (i.i.d. rows N(0, K)). Red: LLC18 deterministic equivalent from the expected "
                "kernel K of the same data, solid = closed ridgeless form (kappa/n) y^T (K + kappa I)^-1 y with tr K(K + kappa I)^-1 = d, "
                f"dotted = full formula at gamma = {gamma_min:g}. Grey: the slides' claimed rate for the decay K shows (n^-(1+beta) with "
                "beta from a power-law fit of K's eigenvalues on indices decay_fit_start..d at the largest n, or log(n)/n for exponential "
                "decay), anchored at the theory's first point. Measured: " + " | ".join(notes) + "."
            )
            paths.append(save_figure(fig, outdir, f"scaling-rf-{dataset}-d_over_n{rho:g}", caption))
    return paths


def kernel_spectrum_figures(gathered: Any, outdir: Path) -> list[Path]:
    """Eigenvalues of K/n against their index at the largest n (log–log and semi-log), per data set."""
    from rmtbench.plots import COLORS, pyplot, save_figure

    if "kernel_eigenvalues" not in gathered:
        return []
    plt = pyplot()
    paths = []
    for dataset in gathered["dataset"].values:
        sub_all = gathered.sel(dataset=dataset).isel(d_over_n=0)
        fig, (ax_log, ax_semi) = plt.subplots(1, 2, figsize=(8.4, 3.4))
        texts = []
        for i, act in enumerate(sub_all["activation"].values):
            sub = sub_all.sel(activation=act)
            ns = [n for n in sub["n"].values if np.isfinite(sub["kernel_eigenvalues"].sel(n=n).values).any()]
            if not ns:
                continue
            n = int(ns[-1])
            lam = sub["kernel_eigenvalues"].sel(n=n).values.astype(float)
            lam = lam[np.isfinite(lam)]
            idx = np.arange(1, lam.size + 1)
            pos = lam > lam[0] * lam.size * np.finfo(float).eps
            color = COLORS[i % len(COLORS)]
            for ax in (ax_log, ax_semi):
                ax.plot(idx[pos], lam[pos] / n, ".", ms=2.5, color=color, label=f"{act} (n = {n})")
            alpha = float(sub["decay_alpha"].sel(n=n))
            rank = int(sub["kernel_rank"].sel(n=n))
            texts.append(f"{act}: alpha-hat = {alpha:.2f} (beta-hat = {alpha - 1:.2f}), c-hat = {float(sub['decay_c'].sel(n=n)):.3g}, "
                         f"rms of log-fits power {float(sub['decay_power_rms'].sel(n=n)):.2f} / exponential "
                         f"{float(sub['decay_exponential_rms'].sel(n=n)):.2f}, numerical rank {rank} of {n}")
        for ax in (ax_log, ax_semi):
            ax.set_yscale("log")
            ax.set_xlabel("index i")
        ax_log.set_xscale("log")
        ax_log.set_ylabel("λ_i(K) / n")
        ax_log.set_title("log–log: a power law is a line")
        ax_semi.set_title("semi-log: an exponential is a line")
        handles, labels = ax_log.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.02), fontsize=7)
        fig.suptitle(f"eigenvalues of the expected kernel K · {dataset}")
        fig.tight_layout(rect=(0, 0.08, 1, 0.95))
        caption = (
            f"Eigenvalues of the expected kernel K = E_w[phi(X^T w) phi(w^T X)] (Gaussian w) on {dataset} at the largest n, divided by n "
            "(estimates of the integral operator's eigenvalues), against their index; eigenvalues below n eps lambda_max (round-off) "
            "left out. The decay type decides the claimed scaling law. Fits on indices decay_fit_start..d: " + "; ".join(texts) + "."
        )
        paths.append(save_figure(fig, outdir, f"scaling-kernel-spectrum-{dataset}", caption))
    return paths


def model_figures(gathered: Any, outdir: Path) -> list[Path]:
    """Model spectra: exact θ and top-target MSE against n beside the asymptotic laws and the claimed rates."""
    from rmtbench.plots import COLORS, pyplot, save_figure

    if "model_theta" not in gathered:
        return []
    plt = pyplot()
    rows = model_rows(gathered)
    paths = []
    ns = gathered["model_n"].values.astype(float)
    for rho in gathered["model_d_over_n"].values:
        fig, (ax_poly, ax_exp) = plt.subplots(1, 2, figsize=(9.0, 3.8))
        notes = []
        for i, model in enumerate(gathered["model"].values):
            sub = gathered.sel(model=model, model_d_over_n=rho)
            decay = str(sub["model_decay"].item())
            ax = ax_poly if decay == "polynomial" else ax_exp
            color = COLORS[i % len(COLORS)]
            for name, marker, text in (("model_theta", "o", "θ"), ("model_train_top", "s", "top target")):
                exact = sub[name].values.astype(float)
                ok = np.isfinite(exact) & (exact > 0)
                ax.plot(ns[ok], exact[ok], marker, ms=4, color=color, mfc=color if marker == "o" else "none", label=f"{model}: {text}")
                asym = sub[f"{name}_asymptotic"].values.astype(float)
                ax.plot(ns, asym, "-", color=color, lw=0.9, alpha=0.7)
            theta = sub["model_theta"].values.astype(float)
            ok = np.isfinite(theta) & (theta > 0)
            if decay == "polynomial" and ok.any():
                beta = float(sub["model_rate"])
                ax.plot(ns, theta[ok][0] * (ns / ns[ok][0]) ** (-(1 + beta)), "--", color=color, lw=0.8, alpha=0.6)
            elif ok.any():
                ax.plot(ns, theta[ok][0] * (np.log(ns) / ns) / (np.log(ns[ok][0]) / ns[ok][0]), "-.", color=color, lw=0.9,
                        label=f"{model}: claim log(n)/n")
            for r in rows:
                if r["model"] == str(model) and r["d_over_n"] == float(rho):
                    extra = (f", log-slope in n {r['log_slope_in_n']:.4f} (predicted {r['predicted_log_slope_in_n']:.4f})"
                             if decay == "exponential" else f" (predicted {r['predicted_exponent']:.2f})")
                    notes.append(f"{model} {r['quantity'].replace('model_exponent_', '')}: exponent {r['exponent']:.3f}{extra}, "
                                 f"claim {r['claim_exponent']:.2f}")
        _ticks_at(ax_poly, ns)
        ax_poly.set_yscale("log")
        ax_poly.set_title("polynomial λ_i = A i^-(1+β)")
        ax_exp.set_yscale("log")
        ax_exp.set_title("exponential λ_i = A e^(-c i)  (linear n axis)")
        for ax in (ax_poly, ax_exp):
            ax.set_xlabel("n")
        ax_poly.set_ylabel("ridgeless training MSE")
        handles, labels = [], []
        for ax in (ax_poly, ax_exp):
            h, lab = ax.get_legend_handles_labels()
            handles += h
            labels += lab
        fig.legend(handles, labels, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.02), fontsize=6.5)
        fig.suptitle(f"model spectra at d/n = {rho:g}")
        fig.tight_layout(rect=(0, 0.08 + 0.03 * len(labels) / 3, 1, 0.95))
        caption = (
            f"Model kernel spectra at d/n = {rho:g} (formula sheet sec. 7), exact algebra (no simulation): the ridgeless LLC18 training "
            "MSE E = (kappa/n) sum_i a_i^2/(lambda_i + kappa) with sum_i lambda_i/(lambda_i + kappa) = d, for targets y ~ N(0, K) "
            "(E_y E = theta, filled circles) and y on the top eigenvector (open squares), normalisation A = 1 (matrix) or A = n "
            "(operator). Thin lines: the leading-order laws kappa = A t n^-(1+beta) (t from int_0^1 dx/(1 + t x^(1+beta)) = d/n) and "
            "kappa = A e^(-c(d/n n + 1/2)); dashed: the slides' n^-(1+beta); dash-dotted: the slides' log(n)/n, anchored at the first "
            "point. What holds: " + "; ".join(notes) + ". The polynomial rate n^-(1+beta) is reproduced by theta (matrix) and by a smooth "
            "target (both normalisations); theta in the operator normalisation decays like n^-beta; exponential decay gives a training "
            "MSE that falls faster than any power of n (log E linear in n), not log(n)/n."
        )
        paths.append(save_figure(fig, outdir, f"scaling-model-spectra-d_over_n{rho:g}", caption))
    return paths
