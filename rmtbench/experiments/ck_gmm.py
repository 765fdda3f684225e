"""Conjugate kernel of a random layer on Gaussian-mixture data: Monte Carlo, exact kernel, equivalents.

Seed slides "AZC22" (ternary random features) and "LC18"; formula sheet section 4, pitfalls P1, P8,
P11, P13, P19, P20. Per cell (activation, weight law, data set, n, d/n):

simulation
    ``K_MC = Φ^T Φ / m`` with ``Φ = φ(W X)``, ``m = seeds · d`` features drawn from the cell's weight
    law (Dask: :func:`rmtbench.empirical.gram_graph`, one weight draw per seed), the eigenvalues of
    ``P K_MC P`` and a Monte-Carlo floor from the two halves of the draws.
theory (shared by all weight laws and widths: it depends on data, n and activation only)
    the exact Gaussian-W kernel ``K`` (closed form or quadrature, :mod:`rmtbench.theory.kernels`), the
    GMM equivalents ``K̃`` (centred and full non-centred forms, with and without the norm-dependent
    slope) and the unit weight-kurtosis term (:mod:`rmtbench.theory.ck_gmm`), with the errors of the
    equivalents against ``K``.
combine
    reduces the matrices of each cell to relative spectral-norm errors: ``K_MC`` against ``K``
    (universality in the law of W, with and without the kurtosis term ``κ4 · K4``) and against the
    equivalents; then stacks the cells. The gathered dataset holds no n x n matrix.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from rmtbench.canonical import short_hash
from rmtbench.experiments.base import Cell, Experiment, RunContext
from rmtbench.experiments.common import ACTIVATION, DATASET, POSITIVE, SIZE, WEIGHTS, cell_data, data_key, list_of, width

#: Corrections of the theory-only comparison (equivalent against the exact Gaussian-W kernel).
THEORY_CORRECTIONS = ("none", "slope")
#: Corrections of the Monte-Carlo comparison (the kurtosis term depends on the cell's weight law).
MC_CORRECTIONS = ("none", "slope", "kurtosis", "slope+kurtosis")


def _centre(K: np.ndarray) -> np.ndarray:
    from rmtbench.theory.ck_gmm import double_centre

    return double_centre(K)


def _norm(A: np.ndarray) -> float:
    from rmtbench.theory.ck_gmm import spectral_norm

    return spectral_norm(A)


def _seed_gram(products: tuple[np.ndarray, Any], d: int) -> np.ndarray:
    """One draw's ``Φ^T Φ / d`` from the upper triangle (runs on a worker)."""
    from rmtbench.empirical import symmetric_from_upper

    return symmetric_from_upper(products[0]) / d


def _top_vector(A: np.ndarray) -> np.ndarray:
    """Unit eigenvector of the eigenvalue of largest magnitude of a symmetric matrix."""
    w, V = np.linalg.eigh(0.5 * (A + A.T))
    return V[:, int(np.argmax(np.abs(w)))]


class ConjugateKernelGMM(Experiment):
    """Empirical conjugate kernel for GMM data against the exact kernel and the AZC22/LC18 equivalents."""

    kind = "ck_gmm"
    description = ("Conjugate kernel of a random layer on Gaussian mixtures: Monte Carlo over weight laws "
                   "(Gaussian, Rademacher, sparse ternary) vs the exact kernel and the AZC22/LC18 equivalent.")
    axes = ("activation", "weights", "dataset", "n", "d_over_n")
    uses_dask = True
    grid_schema = {
        "activation": list_of(ACTIVATION, "Activations phi."),
        "weights": list_of(WEIGHTS, "Laws of the weight entries (zero mean, unit variance); the kernel is "
                                    "compared with the Gaussian-W kernel, with and without the kurtosis term."),
        "dataset": list_of(DATASET, "Data sets (kind gmm: the equivalent uses its exact class statistics)."),
        "n": list_of(SIZE, "Samples n."),
        "d_over_n": list_of(POSITIVE, "Features per weight draw over n (d = round(d_over_n * n)); the Monte-Carlo "
                                      "kernel averages 'seeds' draws, m = seeds * d features in all (floor ~ 2 sqrt(n/m))."),
    }
    options_schema = {
        "seeds": {"type": "integer", "minimum": 1, "default": 2,
                  "description": "Independent weight draws averaged into the Monte-Carlo kernel (>= 2 for the "
                                 "split-half Monte-Carlo floor)."},
        "statistics": {"enum": ["spec", "estimated"], "default": "spec",
                       "description": "Class statistics (tau, t, T) of the equivalent: exact from the gmm spec, or "
                                      "estimated from the data (any labelled data set)."},
        "eps_source": {"enum": ["data", "model"], "default": "data",
                       "description": "epsilon of the equivalent: ||x_i||^2 - tau^2 from the data, or the model's "
                                      "J t/sqrt(p) + psi (centred form only; the full form always uses the data)."},
        "kernel_nodes": {"type": "integer", "minimum": 8, "default": 48,
                         "description": "Gauss-Hermite nodes per dimension for kernels without closed form."},
    }

    def check(self, point: Mapping[str, Any], options: Mapping[str, Any], where: str) -> None:
        from rmtbench.config import ConfigError

        spec = options.get("dataset_spec", {})
        if options.get("statistics", "spec") == "spec" and spec.get("kind") != "gmm":
            raise ConfigError(f"config key '{where}.statistics': 'spec' needs a gmm data set, but "
                              f"{point.get('dataset')!r} is of kind {spec.get('kind')!r}; use statistics: estimated")

    def theory_key(self, cell: Cell) -> str:
        return short_hash({"data": data_key(cell), "activation": cell["activation"], "nodes": cell["kernel_nodes"],
                           "statistics": cell["statistics"], "eps": cell["eps_source"], "seed": cell.root_seed})

    # -- empirical ---------------------------------------------------------------------------------
    def simulate(self, cell: Cell, ctx: RunContext) -> Any:
        import dask
        import xarray as xr

        from rmtbench.empirical import RandomFeatureMap, gram_graph
        from rmtbench.parallel import compute
        from rmtbench.store import provenance
        from rmtbench.weights import weight_law

        data = cell_data(cell, ctx)
        law, d, seeds = weight_law(cell["weights"]), width(cell), int(cell["seeds"])
        X = dask.delayed(data.X)
        gram = dask.delayed(_seed_gram, pure=True)
        graphs = [gram(gram_graph(RandomFeatureMap(cell["activation"], law, d, cell.root_seed,
                                                   ("ck_gmm", data_key(cell), law.label, seed)),
                                  X, in_flight=ctx.in_flight, block_rows=ctx.block_rows), d)
                  for seed in range(seeds)]
        grams = compute(ctx.client, *graphs)
        kernel = np.mean(grams, axis=0)
        centred = _centre(kernel)
        scale = _norm(centred)
        floor = math.nan
        if seeds >= 2:
            # K_MC - K has the spectral size of (K_even - K_odd) * sqrt(1/m) / sqrt(1/m_even + 1/m_odd).
            even, odd = np.mean(grams[0::2], axis=0), np.mean(grams[1::2], axis=0)
            ne, no = len(grams[0::2]), len(grams[1::2])
            floor = _norm(_centre(even - odd)) / math.sqrt(seeds * (1.0 / ne + 1.0 / no)) / scale
        n = kernel.shape[0]
        return xr.Dataset(
            {
                "kernel_mc": (("i", "j"), kernel, {"long_name": "Monte-Carlo conjugate kernel Phi^T Phi / m",
                                                   "description": f"mean over {seeds} weight draws of d={d} features"}),
                "eigenvalues_mc": (("eig",), np.linalg.eigvalsh(centred)[::-1],
                                   {"long_name": "eigenvalues of P K_MC P, decreasing"}),
                "mc_floor": ((), floor, {"long_name": "Monte-Carlo floor ||P(K_MC - E K_MC)P|| / ||P K_MC P||",
                                         "description": "split-half estimate from even and odd draws (NaN for one draw)"}),
                "d": ((), d, {"long_name": "features per weight draw"}),
                "features": ((), d * seeds, {"long_name": "features m in the Monte-Carlo kernel"}),
                "kappa4": ((), law.fourth_moment - 3.0, {"long_name": "excess kurtosis E w^4 - 3 of the weights"}),
            },
            coords={"i": np.arange(n), "j": np.arange(n), "eig": np.arange(n)},
            attrs=provenance(cell=cell.to_json(), data=data.meta),
        )

    # -- theory ------------------------------------------------------------------------------------
    def theory(self, cells: list[Cell], ctx: RunContext) -> Any:
        import xarray as xr

        from rmtbench.activations import get_activation
        from rmtbench.data import gmm_statistics
        from rmtbench.store import provenance
        from rmtbench.theory.ck_gmm import (
            centred_relative_error, ck_coefficients, ck_equivalent, full_relative_error, kurtosis_term,
        )
        from rmtbench.theory.kernels import expected_kernel

        first = cells[0]
        data = cell_data(first, ctx)
        act = get_activation(first["activation"])
        spec = data.meta["spec"] if first["statistics"] == "spec" else None
        stats = gmm_statistics(data.X, data.labels, spec=spec)
        coef = ck_coefficients(act, tau=stats.tau)
        kernel = expected_kernel(act, data.X, nodes=int(first["kernel_nodes"]))
        options = {"spec": spec, "tau": stats.tau}
        centred = np.stack([ck_equivalent(act, data.X, data.labels, form="centred", eps=first["eps_source"],
                                          slope=c == "slope", **options) for c in THEORY_CORRECTIONS])
        full = np.stack([ck_equivalent(act, data.X, data.labels, form="full", eps="data", slope=c == "slope", **options)
                         for c in THEORY_CORRECTIONS])
        unit_kurtosis = kurtosis_term(act, data.X, tau=stats.tau, kappa4=1.0)
        n = kernel.shape[0]
        corr = list(THEORY_CORRECTIONS)
        return xr.Dataset(
            {
                "kernel": (("i", "j"), kernel, {"long_name": "expected kernel K for Gaussian W",
                                               "source": "formula sheet sec. 2 closed forms / quadrature"}),
                "equivalent_centred": (("correction", "i", "j"), centred,
                                       {"long_name": "centred equivalent alpha1 X^TX + alpha2 eps eps^T + alpha3 JTJ^T/p + alpha0 I",
                                        "source": "AZC22 / LC18; formula sheet sec. 4.3"}),
                "equivalent_full": (("correction", "i", "j"), full,
                                    {"long_name": "full non-centred equivalent", "source": "formula sheet sec. 4.3"}),
                "kurtosis_unit": (("i", "j"), unit_kurtosis,
                                  {"long_name": "weight-kurtosis term per unit excess kurtosis",
                                   "source": "formula sheet sec. 4.4, pitfall P8"}),
                "error_centred": (("correction",), [centred_relative_error(kernel, k) for k in centred],
                                  {"long_name": "||P(K - K~)P|| / ||PKP||", "description": "centred equivalent vs exact Gaussian-W kernel"}),
                "error_full": (("correction",), [full_relative_error(kernel, k, m0=coef.m0) for k in full],
                               {"long_name": "||K - K~_full|| / ||K - m0^2 11^T||", "description": "full equivalent vs exact Gaussian-W kernel"}),
                "eigenvalues_kernel": (("eig",), np.linalg.eigvalsh(_centre(kernel))[::-1],
                                       {"long_name": "eigenvalues of P K P (Gaussian W), decreasing"}),
                "eigenvalues_equivalent": (("correction", "eig"), np.stack([np.linalg.eigvalsh(_centre(k))[::-1] for k in centred]),
                                           {"long_name": "eigenvalues of P K~ P, decreasing"}),
                "tau": ((), stats.tau, {"long_name": "tau = sqrt(tr C°/p)" if spec else "tau = sqrt(mean ||x_i||^2)"}),
                **{name: ((), getattr(coef, name), {"long_name": text}) for name, text in (
                    ("alpha0", "Var phi(tau xi) - tau^2 (E phi')^2"), ("alpha1", "(E phi'(tau xi))^2"),
                    ("alpha2", "(E phi''(tau xi))^2 / 4"), ("alpha3", "(E phi''(tau xi))^2 / 2"), ("m0", "E phi(tau xi)"))},
            },
            coords={"i": np.arange(n), "j": np.arange(n), "eig": np.arange(n), "correction": corr},
            attrs=provenance(cells=[c.id for c in cells], data=data.meta, activation=act.name),
        )

    # -- combine -----------------------------------------------------------------------------------
    def combine(self, cells: list[Cell], simulated: list[Any], theories: Mapping[str, Any]) -> Any:
        """Reduce each cell's n x n matrices to errors against its theory, then stack the cells."""
        from rmtbench.gather import stack_cells

        matrices = ("kernel", "equivalent_centred", "equivalent_full", "kurtosis_unit")
        cache: dict[str, dict[str, Any]] = {}
        reduced = []
        for cell, sim in zip(cells, simulated):
            key = self.theory_key(cell)
            if sim is None or key not in theories:
                reduced.append(None if sim is None else sim.drop_vars("kernel_mc"))
                continue
            if key not in cache:
                th = theories[key]
                K = np.asarray(th["kernel"].values)
                K4 = _centre(np.asarray(th["kurtosis_unit"].values))
                cache[key] = {"PKP": _centre(K), "norm": _norm(_centre(K)), "PK4P": K4, "u": _top_vector(K4),
                              "equiv": {c: _centre(np.asarray(th["equivalent_centred"].sel(correction=c).values))
                                        for c in THEORY_CORRECTIONS}}
            t = cache[key]
            kappa4 = float(sim["kappa4"])
            P_mc = _centre(np.asarray(sim["kernel_mc"].values))
            mc_norm = _norm(P_mc)
            diff = P_mc - t["PKP"]
            kurt = kappa4 * t["PK4P"] if math.isfinite(kappa4) else None
            u = t["u"]
            errors_equiv = []
            for c in MC_CORRECTIONS:
                base = t["equiv"]["slope" if c.startswith("slope") else "none"]
                if "kurtosis" in c:
                    errors_equiv.append(math.nan if kurt is None else _norm(P_mc - base - kurt) / mc_norm)
                else:
                    errors_equiv.append(_norm(P_mc - base) / mc_norm)
            out = sim.drop_vars(["kernel_mc", "i", "j"], errors="ignore").assign(
                error_mc_exact=((), _norm(diff) / t["norm"], {
                    "long_name": "||P(K_MC - K)P|| / ||PKP||", "description": "Monte Carlo vs exact Gaussian-W kernel"}),
                error_mc_exact_kurtosis=((), math.nan if kurt is None else _norm(diff - kurt) / t["norm"], {
                    "long_name": "||P(K_MC - K - kappa4 K4)P|| / ||PKP||", "description": "with the weight-kurtosis term"}),
                kurtosis_projection_mc=((), float(u @ diff @ u), {
                    "long_name": "u^T P(K_MC - K)P u", "description": "u: top eigenvector of the kurtosis term"}),
                kurtosis_projection_theory=((), math.nan if kurt is None else float(u @ kurt @ u), {
                    "long_name": "kappa4 u^T P K4 P u"}),
                error_mc_equivalent=(("mc_correction",), errors_equiv, {
                    "long_name": "||P(K_MC - K~)P|| / ||P K_MC P||", "description": "Monte Carlo vs centred equivalent"}),
                eigenvalues_kernel_kurtosis=(("eig",), np.full(u.size, math.nan) if kurt is None
                                             else np.linalg.eigvalsh(t["PKP"] + kurt)[::-1], {
                    "long_name": "eigenvalues of P(K + kappa4 K4)P, decreasing",
                    "description": "Gaussian-W kernel plus the kurtosis term of this cell's weight law"}),
            ).assign_coords(mc_correction=list(MC_CORRECTIONS))
            reduced.append(out)
        slim = {k: th.drop_vars([m for m in matrices if m in th] + ["i", "j"], errors="ignore") for k, th in theories.items()}
        return stack_cells(self, cells, reduced, slim)

    # -- comparison and figures --------------------------------------------------------------------
    def compare(self, gathered: Any) -> Any:
        """Tidy table of every error with its convergence rate over n (log-log least squares)."""
        import pandas as pd

        from rmtbench.compare import convergence_rate

        quantities = {
            "error_centred": "correction", "error_full": "correction", "error_mc_exact": None,
            "error_mc_exact_kurtosis": None, "error_mc_equivalent": "mc_correction", "mc_floor": None,
        }
        frames = []
        for name, extra in quantities.items():
            if name not in gathered:
                continue
            frame = gathered[name].drop_attrs().to_dataframe(name="value").reset_index()
            frame = frame[[c for c in frame.columns if c in (*self.axes, "value", extra)]]
            frame["correction"] = frame.pop(extra) if extra else "none"
            frame.insert(0, "quantity", name)
            if name in ("error_centred", "error_full"):  # theory only: the same for every weight law and width
                frame = frame.assign(weights="(any)", d_over_n=math.nan).drop_duplicates()
            frames.append(frame)
        table = pd.concat(frames, ignore_index=True).dropna(subset=["value"])
        group = ["quantity", "correction", "activation", "weights", "dataset", "d_over_n"]
        rates = []
        for keys, sub in table.groupby(group, sort=False, dropna=False):
            sub = sub[sub["value"] > 0]
            rate, stderr = convergence_rate(sub["n"], sub["value"]) if sub["n"].nunique() >= 2 else (math.nan, math.nan)
            rates.append({**dict(zip(group, keys)), "rate": rate, "rate_stderr": stderr})
        return table.merge(pd.DataFrame(rates), on=group, how="left").reset_index(drop=True)

    def plot(self, gathered: Any, outdir: Path) -> list[Path]:
        return _error_figures(gathered, outdir) + _spectrum_figures(gathered, outdir)


# -- figures ----------------------------------------------------------------------------------------
def _seeds_text(ds: Any) -> str:
    from rmtbench.store import decode_attr

    try:
        config = decode_attr(ds, "config")
        kind = decode_attr(ds, "kind")
        blocks = [b for b in config.get("experiments", []) if b.get("kind") == kind]
        return f"{blocks[0].get('seeds', 2)} weight draws per cell" if blocks else ""
    except (KeyError, ValueError, TypeError):
        return ""


def _error_figures(ds: Any, outdir: Path) -> list[Path]:
    from rmtbench.compare import convergence_rate
    from rmtbench.plots import COLORS, iterate_panels, legend_below, log_axis, pyplot, save_figure

    plt = pyplot()
    paths = []
    ns = ds["n"].values
    for key, sub in iterate_panels(ds, ["dataset", "activation", "d_over_n"]):
        fig, (ax_th, ax_mc) = plt.subplots(1, 2, figsize=(8.4, 3.4))
        first_w = sub["weights"].values[0]
        for i, (name, label) in enumerate((("error_centred", "centred K̃ vs PKP"), ("error_full", "full K̃ vs K − m0²11ᵀ"))):
            for j, corr in enumerate(THEORY_CORRECTIONS):
                values = sub[name].sel(correction=corr, weights=first_w).values
                ok = np.isfinite(values) & (values > 0)
                if not ok.any():
                    continue
                rate, _ = convergence_rate(ns[ok], values[ok]) if ok.sum() >= 2 else (math.nan, math.nan)
                ax_th.plot(ns[ok], values[ok], "o-" if corr == "none" else "s--", color=COLORS[2 * i + j],
                           label=f"{label}{' + slope' if corr == 'slope' else ''} (rate {rate:.2f})")
        ax_th.set_title("equivalent vs exact kernel (Gaussian W)")
        for k, w in enumerate(sub["weights"].values):
            color = COLORS[k % len(COLORS)]
            cell = sub.sel(weights=w)
            ax_mc.plot(ns, cell["error_mc_exact"].values, "o-", color=color, label=f"W {w}")
            if np.isfinite(cell["error_mc_exact_kurtosis"].values).any() and float(np.nanmax(np.abs(cell["kappa4"].values))) > 1e-3:
                ax_mc.plot(ns, cell["error_mc_exact_kurtosis"].values, "x:", color=color, label=f"W {w} + kurtosis term")
            ax_mc.plot(ns, cell["mc_floor"].values, "_", ms=12, color=color)
        ax_mc.set_title("Monte Carlo vs exact Gaussian-W kernel (–: MC floor)")
        for ax in (ax_th, ax_mc):
            log_axis(ax, "x")
            log_axis(ax, "y")
            ax.set_xlabel("n")
            ax.set_ylabel("relative spectral-norm error")
        ax_th.legend(loc="best", fontsize=6)
        legend_below(fig, ax_mc, ncol=3)
        fig.subplots_adjust(bottom=0.36)
        fig.suptitle(f"{key['dataset']} · {key['activation']} · d/n={key['d_over_n']:g}")
        name = f"ck_errors-{key['dataset']}-{key['activation']}-d_over_n{key['d_over_n']:g}"
        caption = (
            f"Conjugate kernel of one random layer on {key['dataset']} with {key['activation']}. Left: relative error of the "
            "GMM equivalent K̃ (AZC22/LC18, formula sheet sec. 4.3) against the exact Gaussian-W kernel K (closed form or "
            "quadrature, same data): ||P(K−K̃)P||/||PKP|| for the centred form and ||K−K̃_full||/||K−m0²11ᵀ|| for the full "
            "non-centred form, each with and without the norm-dependent slope D_g XᵀX D_g (pitfall P13); rates are "
            "least-squares slopes in log-log. Right: Monte-Carlo kernel Φᵀ Φ/m (m = seeds·d features, d = "
            f"{key['d_over_n']:g}·n; {_seeds_text(ds)}) for each weight law against the Gaussian-W kernel, ||P(K_MC−K)P||/||PKP||, "
            "and (crosses) after adding the weight-kurtosis term κ4/4 (Eφ'')² Σ_k x_ik² x_jk² (formula sheet sec. 4.4, P8); "
            "bars: split-half Monte-Carlo floor (P20). Sizes: n on the x axis, p from the data spec."
        )
        paths.append(save_figure(fig, outdir, name, caption))
    return paths


def _spectrum_figures(ds: Any, outdir: Path) -> list[Path]:
    from rmtbench.plots import COLORS, iterate_panels, legend_below, pyplot, save_figure

    plt = pyplot()
    paths = []
    n_max = int(np.max(ds["n"].values))
    weights = list(ds["weights"].values)
    for key, sub in iterate_panels(ds.sel(n=n_max), ["dataset", "activation", "d_over_n"]):
        fig, (ax_bulk, ax_top) = plt.subplots(1, 2, figsize=(8.4, 3.4))
        theory = sub["eigenvalues_equivalent"].sel(correction="none", weights=weights[0]).values
        theory = theory[np.isfinite(theory)]
        exact = sub["eigenvalues_kernel"].sel(weights=weights[0]).values
        exact = exact[np.isfinite(exact)]
        top = max(float(exact[min(8, exact.size - 1)]), 1e-12)
        bins = np.linspace(min(exact.min(), theory.min()), top * 1.05, 40)
        ax_bulk.hist(theory[theory <= bins[-1]], bins=bins, density=True, histtype="stepfilled", color="0.85",
                     label="P K̃ P (equivalent)")
        ax_bulk.hist(exact[exact <= bins[-1]], bins=bins, density=True, histtype="step", color="k", lw=1.2,
                     label="P K P (exact, Gaussian W)")
        ax_top.plot(np.arange(1, 11), exact[:10], "k_", ms=14, label="P K P (exact, Gaussian W)")
        ax_top.plot(np.arange(1, 11), theory[:10], "_", color="0.5", ms=10, label="P K̃ P")
        for k, w in enumerate(weights):
            eig = sub["eigenvalues_mc"].sel(weights=w).values
            eig = eig[np.isfinite(eig)]
            color = COLORS[k % len(COLORS)]
            ax_bulk.hist(eig[eig <= bins[-1]], bins=bins, density=True, histtype="step", color=color, label=f"P K_MC P, W {w}")
            ax_top.plot(np.arange(1, 11) + 0.08 * (k + 1), eig[:10], "o", ms=3, color=color, label=f"P K_MC P, W {w}")
            kappa4 = float(sub["kappa4"].sel(weights=w))
            corrected = sub["eigenvalues_kernel_kurtosis"].sel(weights=w).values
            if math.isfinite(kappa4) and abs(kappa4) > 1e-3 and np.isfinite(corrected[:10]).all():
                ax_top.plot(np.arange(1, 11) + 0.08 * (k + 1), corrected[:10], "x", ms=5, color=color,
                            label=f"P(K + κ4 K4)P, W {w}")
        ax_bulk.set_xlabel("eigenvalue (bulk)")
        ax_bulk.set_ylabel("density")
        ax_top.set_xlabel("rank")
        ax_top.set_ylabel("eigenvalue (top 10)")
        legend_below(fig, ax_top, ncol=3)
        fig.subplots_adjust(bottom=0.38)  # three legend rows under the axis labels
        fig.suptitle(f"{key['dataset']} · {key['activation']} · n={n_max} · d/n={key['d_over_n']:g}")
        name = f"ck_spectra-{key['dataset']}-{key['activation']}-n{n_max}-d_over_n{key['d_over_n']:g}"
        caption = (
            f"Spectrum of the double-centred conjugate kernel on {key['dataset']} with {key['activation']}, n={n_max}. "
            "Left: histogram of the bulk eigenvalues (up to the 9th largest eigenvalue of P K P); right: the 10 largest "
            "eigenvalues (crosses: the exact Gaussian-W kernel plus the weight-kurtosis term κ4 K4 of that law). Lines/dots: Monte-Carlo kernels Φᵀ Φ/m for each weight law (Gaussian vs Rademacher/sparse ternary, "
            f"m = seeds·d, d = {key['d_over_n']:g}·n; {_seeds_text(ds)}); black: exact Gaussian-W kernel; grey: the AZC22/LC18 "
            "equivalent K̃ (formula sheet sec. 4.3). Non-Gaussian weights with excess kurtosis κ4 shift the spikes by the "
            "kurtosis term of formula sheet sec. 4.4 when the class covariance diagonals differ."
        )
        paths.append(save_figure(fig, outdir, name, caption))
    return paths
