"""Deep equilibrium models against their linear equivalent and the shallow explicit nets matched to them.

Ling+24 (cited by the seed slides); formula sheet section 6. The implicit layer
z = (φ(σ_a A z + σ_b B x) − E φ(τ*ξ))/√m has, at infinite width, the conjugate kernel G = E[Z*ᵀZ*]
solving G = F(σ_a² G + σ_b² XᵀX). The theory step computes G by that fixed point, its linear
equivalent G̃ = ((α1 − σ_b²)/σ_a²) XᵀX + V (A/σ_a²) Vᵀ + ((τ*² − τ_0²α1)/σ_a²) I_n, and an explicit
network whose Gu+22 coefficients equal G̃'s: two centred leaky-ReLU layers for a non-odd φ (four
unknowns, three of them free: leaky ReLUs are positively homogeneous), one centred clipped-linear
layer for an odd φ such as tanh (α2 = α3 = 0). The exact CK of that explicit network is then compared
with G. The simulation solves the DEQ at finite width m = d_over_n·n for every sample and seed on
Dask, and its seed-mean Gram is compared with G next to the Monte-Carlo floor.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from rmtbench.canonical import short_hash
from rmtbench.experiments.deep_ck import KERNEL_NODES, SAMPLE_BLOCK, STATISTICS, kernel_eigenvalues, error_table
from rmtbench.experiments.base import Cell, Experiment, RunContext
from rmtbench.experiments.common import ACTIVATION, DATASET, POSITIVE, SEEDS, SIZE, WEIGHTS, cell_data, data_key, list_of, width

SIGMA_A2 = {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}
EXPLICIT_PARAMETERS = ["a1", "b1", "a2", "b2", "scale", "c"]

#: (quantity, error variable, Monte-Carlo floor variable or None) of the error table.
QUANTITIES = [
    ("deq_equivalent", "equivalent_error", None),
    ("deq_equivalent_model", "equivalent_error_model", None),
    ("explicit_vs_deq", "explicit_error", None),
    ("deq_empirical", "empirical_error", "mc_floor"),
    ("deq_empirical_centred", "empirical_error_centred", "mc_floor_centred"),
]


class DeepEquilibrium(Experiment):
    """Implicit CK of a deep equilibrium model, its linear equivalent and matched shallow explicit nets."""

    kind = "deq"
    description = ("Deep equilibrium models (Ling+24): implicit CK at the fixed point vs its linear equivalent and "
                   "vs matched shallow explicit nets; finite-width simulation.")
    axes = ("activation", "dataset", "n", "sigma_a2", "d_over_n")
    uses_dask = True
    grid_schema = {
        "activation": list_of(ACTIVATION, "Activation phi of the implicit layer."),
        "dataset": list_of(DATASET, "Data sets."),
        "n": list_of(SIZE, "Samples n."),
        "sigma_a2": list_of(SIGMA_A2, "Feedback variance sigma_a^2 in (0, 1); sigma_b^2 = 1 - sigma_a^2."),
        "d_over_n": list_of(POSITIVE, "Width of the simulated DEQ, m = round(d_over_n * n) (the feedback matrix is m x m)."),
    }
    options_schema = {
        "seeds": SEEDS,
        "weights": {**WEIGHTS, "default": "gaussian", "description": "Law of the entries of A and B (zero mean, unit variance)."},
        "kernel_nodes": KERNEL_NODES,
        "sample_block": SAMPLE_BLOCK,
        "statistics": STATISTICS,
        "tol": {"type": "number", "exclusiveMinimum": 0, "default": 1e-10,
                "description": "Relative tolerance of the fixed-point iterations (finite-width DEQ and infinite-width kernel)."},
    }

    def check(self, point: Mapping[str, Any], options: Mapping[str, Any], where: str) -> None:
        from rmtbench.config import ConfigError

        if int(options.get("seeds", 3)) < 2:
            raise ConfigError(f"config key '{where}.seeds': deq needs >= 2 seeds (the Monte-Carlo floor uses two halves)")

    def theory_key(self, cell: Cell) -> str:
        return short_hash({"data": data_key(cell), "activation": cell["activation"], "sigma_a2": cell["sigma_a2"],
                           "nodes": cell["kernel_nodes"], "statistics": cell["statistics"], "tol": cell["tol"],
                           "seed": cell.root_seed})

    # -- empirical ---------------------------------------------------------------------------------
    def simulate(self, cell: Cell, ctx: RunContext) -> Any:
        import dask
        import xarray as xr

        from rmtbench.deepnet import EquilibriumNet, equilibrium_kernel_graphs
        from rmtbench.parallel import compute
        from rmtbench.store import provenance
        from rmtbench.theory.deep import data_statistics, deq_coefficients, spectral_norm
        from rmtbench.weights import weight_law

        data = cell_data(cell, ctx)
        stats = data_statistics(data, source=cell["statistics"])
        sigma_a2, seeds, n = float(cell["sigma_a2"]), int(cell["seeds"]), data.X.shape[1]
        # The centring constant E φ(τ*ξ) is part of the model (Ling+24 centre the activation with it).
        shift = deq_coefficients(cell["activation"], tau0=stats.tau, sigma_a2=sigma_a2).shift
        law = weight_law(cell["weights"])
        nets = [EquilibriumNet(cell["activation"], width(cell), sigma_a2, shift, law, cell.root_seed,
                               ("deq", data_key(cell), law.label, seed)) for seed in range(seeds)]
        even, odd, ones, steps = equilibrium_kernel_graphs(nets, dask.delayed(data.X), n, sample_block=int(cell["sample_block"]),
                                                           tol=float(cell["tol"]))
        even, odd, *rest = compute(ctx.client, even, odd, *ones, *steps)
        n_even, n_odd = len(range(0, seeds, 2)), len(range(1, seeds, 2))
        mean = ((even + odd) / seeds)[0]
        half = ((even / n_even - odd / n_odd) / 2.0)[0]
        centre = np.eye(n) - 1.0 / n
        return xr.Dataset(
            {
                "gram": (("row", "col"), mean.astype(np.float32), {"long_name": "seed mean of Z*^T Z* (float32)"}),
                "floor_norm": ((), spectral_norm(half), {"description": "||mean(even seeds) - mean(odd seeds)||/2"}),
                "floor_norm_centred": ((), spectral_norm(centre @ half @ centre)),
                "gram_eigenvalues": (("eig",), kernel_eigenvalues(mean[None])[0], {"long_name": "eigenvalues of the seed-mean DEQ Gram"}),
                "ones": (("seed",), np.array([o[0] for o in rest[:seeds]]), {"description": "1^T Z*^T Z* 1 / n per draw"}),
                "iterations": (("seed",), np.array(rest[seeds:], dtype=int), {"long_name": "fixed-point iterations (largest over blocks)"}),
                "width": ((), width(cell), {"long_name": "DEQ width m"}),
            },
            coords={"seed": np.arange(seeds), "eig": np.arange(n)},
            attrs=provenance(cell=cell.to_json(), data=data.meta, tau0=stats.tau, shift=shift),
        )

    # -- theory ------------------------------------------------------------------------------------
    def theory(self, cells: list[Cell], ctx: RunContext) -> Any:
        import xarray as xr

        from rmtbench.activations import get_activation
        from rmtbench.store import provenance
        from rmtbench.theory.deep import (
            data_statistics, deq_coefficients, deq_equivalent, deq_exact_ck, exact_ck, match_one_layer_clip,
            match_two_layer_leaky_relu, relative_error,
        )

        first = cells[0]
        data = cell_data(first, ctx)
        stats = data_statistics(data, source=first["statistics"])
        nodes, tol = int(first["kernel_nodes"]), float(first["tol"])
        coefs = deq_coefficients(first["activation"], tau0=stats.tau, sigma_a2=float(first["sigma_a2"]))
        G = deq_exact_ck(data.X, coefs, nodes=nodes, tol=tol)
        equivalent = {e: deq_equivalent(data.X, stats, coefs, epsilon=e) for e in ("data", "model")}
        odd = get_activation(first["activation"]).parity == "odd"
        match = (match_one_layer_clip if odd else match_two_layer_leaky_relu)(coefs.targets, tau0=stats.tau)
        explicit = exact_ck(data.X, match.activations, tau0=stats.tau, nodes=nodes)[-1]
        params = [match.parameters.get(k, np.nan) for k in EXPLICIT_PARAMETERS]
        return xr.Dataset(
            {
                "gram_exact": (("row", "col"), G.astype(np.float32), {"long_name": "implicit CK G at infinite width",
                                                                       "source": "fixed point G = F(sigma_a^2 G + sigma_b^2 X^TX)"}),
                "exact_eigenvalues": (("eig",), kernel_eigenvalues(G[None])[0]),
                "equivalent_eigenvalues": (("eig",), kernel_eigenvalues(equivalent["data"][None])[0]),
                "explicit_eigenvalues": (("eig",), kernel_eigenvalues(explicit[None])[0]),
                "equivalent_error": ((), relative_error(equivalent["data"], G), {"long_name": "||G~ - G|| / ||G|| (data epsilon)"}),
                "equivalent_error_model": ((), relative_error(equivalent["model"], G), {"long_name": "||G~ - G|| / ||G|| (V = [J/sqrt p, psi])"}),
                "explicit_error": ((), relative_error(explicit, G), {"long_name": "||K_explicit - G|| / ||G||"}),
                "explicit_equivalent_error": ((), relative_error(equivalent["data"], explicit),
                                              {"long_name": "||G~ - K_explicit|| / ||K_explicit||"}),
                "match_residual": ((), match.residual, {"long_name": "max relative mismatch of the four coefficients"}),
                "targets": (("coefficient",), np.array(coefs.targets), {"long_name": "(alpha_1, alpha_2, alpha_3, identity) of G~"}),
                "achieved": (("coefficient",), np.array(match.achieved), {"long_name": "the same for the explicit network"}),
                "explicit_parameters": (("explicit_param",), np.array(params, dtype=float),
                                        {"long_name": "leaky ReLU max(a_l t, b_l t) (a1, b1, a2, b2) or scale*clip(t, -c, c)"}),
                "explicit_depth": ((), len(match.activations)),
                "tau_star": ((), coefs.tau_star, {"long_name": "equilibrium scale tau*"}),
                "tau0": ((), stats.tau),
            },
            coords={"eig": np.arange(data.X.shape[1]), "coefficient": ["alpha1", "alpha2", "alpha3", "identity"],
                    "explicit_param": EXPLICIT_PARAMETERS},
            attrs=provenance(cells=[c.id for c in cells], data=data.meta, explicit=list(match.activations)),
        )

    # -- combination, comparison, figures ----------------------------------------------------------
    def combine(self, cells: list[Cell], simulated: list[Any], theories: Mapping[str, Any]) -> Any:
        from rmtbench.gather import stack_cells

        summaries = [deq_summary(sim, theories.get(self.theory_key(cell))) for cell, sim in zip(cells, simulated)]
        return stack_cells(self, cells, summaries, {})

    def compare(self, gathered: Any) -> Any:
        return error_table(gathered, list(self.axes), QUANTITIES)

    def plot(self, gathered: Any, outdir: Path) -> list[Path]:
        return deq_spectra_figures(gathered, outdir) + deq_error_figures(gathered, outdir)


_KEEP_THEORY = ("exact_eigenvalues", "equivalent_eigenvalues", "explicit_eigenvalues", "equivalent_error",
                "equivalent_error_model", "explicit_error", "explicit_equivalent_error", "match_residual", "targets",
                "achieved", "explicit_parameters", "explicit_depth", "tau_star", "tau0")
_KEEP_SIM = ("gram_eigenvalues", "iterations", "width", "ones")


def deq_summary(sim: Any, theory: Any) -> Any:
    """Small arrays of one cell plus ‖G_emp − G‖/‖G‖ (raw and double-centred) and the Monte-Carlo floors."""
    import xarray as xr

    from rmtbench.theory.deep import relative_error, spectral_norm

    if sim is None and theory is None:
        return None
    parts = []
    if theory is not None:
        parts.append(theory[list(_KEEP_THEORY)])
    if sim is not None:
        parts.append(sim[list(_KEEP_SIM)])
    summary = xr.merge(parts, join="outer", compat="no_conflicts")
    if sim is None or theory is None:
        return summary
    exact = np.asarray(theory["gram_exact"].values, dtype=float)
    emp = np.asarray(sim["gram"].values, dtype=float)
    n = exact.shape[0]
    centre = np.eye(n) - 1.0 / n
    exact_c = centre @ exact @ centre
    return summary.assign(
        empirical_error=((), relative_error(emp, exact)),
        empirical_error_centred=((), relative_error(centre @ emp @ centre, exact_c)),
        mc_floor=((), float(sim["floor_norm"]) / spectral_norm(exact)),
        mc_floor_centred=((), float(sim["floor_norm_centred"]) / spectral_norm(exact_c)),
    )


def deq_spectra_figures(ds: Any, outdir: Path) -> list[Path]:
    """Eigenvalue histogram of the implicit CK G against G̃, the explicit net's CK and the simulation."""
    from rmtbench.plots import COLORS, iterate_panels, legend_below, pyplot, save_figure

    plt = pyplot()
    paths = []
    for key, sub in iterate_panels(ds, ["activation", "dataset"]):
        sub = sub.sel(n=sub["n"].values.max(), d_over_n=sub["d_over_n"].values.max())
        sigmas = sub["sigma_a2"].values
        fig, axes = plt.subplots(1, len(sigmas), figsize=(3.4 * len(sigmas), 2.9), squeeze=False)
        drawn = False
        for ax, sigma in zip(axes[0], sigmas):
            cell = sub.sel(sigma_a2=sigma)
            exact = cell["exact_eigenvalues"].values
            exact = exact[np.isfinite(exact)]
            if exact.size == 0:
                continue
            drawn = True
            top = np.quantile(exact, 0.99) * 1.15
            bins = np.linspace(min(0.0, float(exact.min())), top, 40)
            clip = lambda v: np.clip(v[np.isfinite(v)], bins[0], bins[-1])  # noqa: E731
            if np.isfinite(cell["gram_eigenvalues"].values).any():
                ax.hist(clip(cell["gram_eigenvalues"].values), bins=bins, density=True, color=COLORS[0], alpha=0.4,
                        label=f"finite-width DEQ (m = {float(cell['d_over_n']):g}n, seed mean)")
            ax.hist(clip(exact), bins=bins, density=True, histtype="step", color=COLORS[1], lw=1.2, ls="--",
                    label="implicit CK G (infinite width)")
            ax.hist(clip(cell["equivalent_eigenvalues"].values), bins=bins, density=True, histtype="step", color="k",
                    lw=1.2, label="linear equivalent G~")
            ax.hist(clip(cell["explicit_eigenvalues"].values), bins=bins, density=True, histtype="step", color=COLORS[2],
                    lw=1.0, label=f"matched explicit net ({int(cell['explicit_depth'])} layer(s))")
            ax.set_title(rf"$\sigma_a^2$ = {sigma:g}")
            ax.set_xlabel("eigenvalue")
        if not drawn:
            plt.close(fig)
            continue
        axes[0][0].set_ylabel("density")
        legend_below(fig, axes[0][-1], ncol=2)
        n = int(sub["n"])
        fig.suptitle(f"DEQ {key['activation']} · {key['dataset']} · n={n}", y=1.02)
        name = f"deq_spectra-{key['activation']}-{key['dataset']}-n{n}"
        caption = (
            f"Eigenvalues of the conjugate kernel of a deep equilibrium model z = phi_c(sigma_a A z + sigma_b B x)/sqrt(m) "
            f"with phi = {key['activation']} on {key['dataset']} (n={n}), one panel per sigma_a^2. Red dashed: implicit CK G "
            "at infinite width (fixed point of G = F(sigma_a^2 G + sigma_b^2 X^TX)); black: its linear equivalent G~ "
            "(Ling+24; formula sheet sec. 6, data epsilon); green: exact CK of the matched explicit network (two centred "
            "leaky-ReLU layers, or one clipped-linear layer for odd phi); filled: seed mean of Z*^T Z* of the DEQ solved at "
            "finite width. Eigenvalues beyond 1.15 x the 99th percentile of G's are clipped into the last bin."
        )
        paths.append(save_figure(fig, outdir, name, caption))
    return paths


def deq_error_figures(ds: Any, outdir: Path) -> list[Path]:
    """Errors against n: G̃ vs G, explicit net vs G, and the finite-width simulation vs G with its floor."""
    from rmtbench.experiments.deep_ck import rate_label
    from rmtbench.plots import COLORS, iterate_panels, log_axis, pyplot, save_figure

    plt = pyplot()
    paths = []
    for key, sub in iterate_panels(ds, ["dataset"]):
        fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.3))
        ns = sub["n"].values.astype(float)
        k = 0
        for act in sub["activation"].values:
            for sigma in sub["sigma_a2"].values:
                color = COLORS[k % len(COLORS)]
                k += 1
                cell = sub.sel(activation=act, sigma_a2=sigma).isel(d_over_n=-1)
                label = rf"{act}, $\sigma_a^2$={sigma:g}"
                for suffix, style in (("", "o-"), ("_model", "s--")):
                    y = cell["equivalent_error" + suffix].values.astype(float)
                    if np.isfinite(y).any():
                        axes[0].plot(ns, y, style, color=color, ms=3.5, alpha=0.6 if suffix else 1.0,
                                     label=label + (" (V = [J/sqrt p, psi])" if suffix else "") + rate_label(ns, y))
                y = cell["explicit_error"].values.astype(float)
                if np.isfinite(y).any() and (y > 0).any():
                    axes[1].plot(ns, np.maximum(y, 1e-16), "o-", color=color, ms=3.5, label=label + rate_label(ns, y))
                for j, ratio in enumerate(sub["d_over_n"].values):
                    c2 = sub.sel(activation=act, sigma_a2=sigma, d_over_n=ratio)
                    y = c2["empirical_error"].values.astype(float)
                    if np.isfinite(y).any():
                        axes[2].plot(ns, y, "o-", color=color, ms=3.5, alpha=1.0 - 0.4 * j / max(1, sub.sizes["d_over_n"]),
                                     label=f"{label}, m/n={ratio:g}{rate_label(ns, y)}")
                        axes[2].plot(ns, c2["mc_floor"].values.astype(float), ":", color=color, alpha=0.8)
        titles = ("linear equivalent G~ vs implicit CK G", "matched explicit net vs G", "finite-width DEQ vs G (dotted: MC floor)")
        for ax, title in zip(axes, titles):
            log_axis(ax, "x")
            ax.set_yscale("log")
            ax.set_xlabel("n")
            ax.set_title(title)
            ax.legend(fontsize=6)
        axes[0].set_ylabel("relative spectral-norm error")
        fig.suptitle(f"Deep equilibrium models · {key['dataset']}")
        fig.tight_layout()
        name = f"deq_errors-{key['dataset']}"
        caption = (
            f"Relative spectral-norm errors against n for deep equilibrium models on {key['dataset']}. Left: linear "
            "equivalent G~ (Ling+24; formula sheet sec. 6) against the implicit CK G at infinite width; solid with the "
            "data epsilon_i = ||x_i||^2 - tau^2, dashed with V = [J/sqrt(p), psi]. Middle: exact CK of the explicit "
            "shallow network matched to G~ (two centred leaky-ReLU layers; one clipped-linear layer for odd phi) against "
            "G. Right: seed mean of the finite-width DEQ Gram against G, with the Monte-Carlo floor (two halves of the "
            "seeds) dotted. Legends give fitted rates n^slope."
        )
        paths.append(save_figure(fig, outdir, name, caption))
    return paths
