"""Figures in one visual style: theory as lines, simulation as points with error bars over seeds.

Every figure is saved as PNG (and PDF when ``RMTBENCH_PDF=1``) together with a caption in
``captions.json`` beside it, which the report shows under the figure.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]


def pyplot() -> Any:
    """matplotlib.pyplot with the Agg backend and rmtbench's style applied."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 9, "axes.grid": True,
        "grid.alpha": 0.3, "legend.fontsize": 7, "legend.frameon": False, "lines.linewidth": 1.4,
        "errorbar.capsize": 2,
    })
    return plt


def save_figure(fig: Any, outdir: Path, name: str, caption: str) -> Path:
    """Save ``fig`` as ``outdir/name.png`` and record its caption; return the PNG path."""
    plt = pyplot()
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / f"{name}.png"
    fig.savefig(path, bbox_inches="tight")
    if os.environ.get("RMTBENCH_PDF") == "1":
        fig.savefig(outdir / f"{name}.pdf", bbox_inches="tight")
    plt.close(fig)
    captions_path = outdir / "captions.json"
    captions = json.loads(captions_path.read_text()) if captions_path.exists() else {}
    captions[path.name] = caption
    captions_path.write_text(json.dumps(captions, indent=1, sort_keys=True))
    return path


def errorbar_with_theory(ax: Any, x: np.ndarray, samples: np.ndarray, theory: np.ndarray | None, *, color: str, label: str, theory_x: np.ndarray | None = None) -> None:
    """Seed mean with standard-error bars (points) and the theory (line) on ``ax``; samples is (seed, x)."""
    samples = np.asarray(samples, float)
    mean = np.nanmean(samples, axis=0)
    count = np.sum(np.isfinite(samples), axis=0)
    sem = np.where(count > 1, np.nanstd(samples, axis=0, ddof=1) / np.sqrt(np.maximum(count, 1)), 0.0) if samples.shape[0] > 1 else np.zeros_like(mean)
    ax.errorbar(x, mean, yerr=sem, fmt="o", ms=3.5, color=color, label=f"{label} (simulation)")
    if theory is not None:
        ax.plot(x if theory_x is None else theory_x, theory, "-", color=color, alpha=0.85, label=f"{label} (theory)")


def _sizes_text(ds: Any) -> str:
    parts = []
    for key in ("n", "n_test"):
        if key in ds.coords and ds[key].size == 1:
            parts.append(f"{key}={int(ds[key])}")
    return ", ".join(parts)


def log_axis(ax: Any, axis: str = "x") -> None:
    """Log scale with plain-number tick labels (no overlapping 3x10^-1 style labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    getattr(ax, f"set_{axis}scale")("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def legend_below(fig: Any, ax: Any, *, ncol: int = 4) -> None:
    """One legend for the figure, below the axes, so it never hides data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=ncol, bbox_to_anchor=(0.5, -0.02), fontsize=7)
        fig.subplots_adjust(bottom=0.28)


def iterate_panels(ds: Any, dims: Iterable[str]) -> Iterable[tuple[dict[str, Any], Any]]:
    dims = [d for d in dims if d in ds.dims]
    if not dims:
        yield {}, ds
        return
    stacked = ds.stack(_panel=dims)
    for i in range(stacked.sizes["_panel"]):
        sub = stacked.isel(_panel=i)
        key = {d: sub[d].item() for d in dims}
        yield key, ds.sel(key)


def double_descent_figures(ds: Any, outdir: Path) -> list[Path]:
    """Train and test MSE against d/n (one figure per data set, weight law and n)."""
    plt = pyplot()
    paths = []
    for key, sub in iterate_panels(ds, ["dataset", "weights", "n"]):
        if not np.isfinite(sub["train_mse"].values).any():
            continue
        fig, (ax_train, ax_test) = plt.subplots(1, 2, figsize=(8.2, 3.2))
        x = sub["d_over_n"].values
        for i, (act, gamma) in enumerate((a, g) for a in sub["activation"].values for g in sub["gamma"].values):
            color = COLORS[i % len(COLORS)]
            cell = sub.sel(activation=act, gamma=gamma)
            label = f"{act}, γ={gamma:g}"
            for ax, name in ((ax_train, "train_mse"), (ax_test, "test_mse")):
                theory, theory_x = None, None
                if f"{name}_theory_curve" in cell:
                    curve = cell[f"{name}_theory_curve"]
                    curve = curve.isel({d: 0 for d in curve.dims if d not in ("d_over_n_curve",)})
                    theory, theory_x = curve.values, cell["d_over_n_curve"].values
                elif f"{name}_theory" in cell:
                    theory = cell[f"{name}_theory"].values
                errorbar_with_theory(ax, x, cell[name].transpose("seed", "d_over_n").values, theory, theory_x=theory_x, color=color, label=label)
        for ax, name in ((ax_train, "training MSE"), (ax_test, "test MSE")):
            log_axis(ax, "x")
            ax.axvline(1.0, color="k", lw=0.6, ls=":")
            ax.set_xlabel("d / n")
            ax.set_ylabel(name)
        ax_train.set_yscale("log")
        log_axis(ax_test, "y")
        legend_below(fig, ax_test, ncol=4)
        title = f"{key.get('dataset')} · W {key.get('weights')} · n={key.get('n')}"
        fig.suptitle(title)
        name = f"double_descent-{key.get('dataset')}-{key.get('weights')}-n{key.get('n')}"
        seeds = sub.sizes.get("seed", 1)
        caption = (
            f"Random-features ridge regression on {key.get('dataset')} (n={key.get('n')}), weights {key.get('weights')}: "
            f"training (left) and test (right) MSE against d/n. Points: mean over {seeds} draws of W with standard-error bars; "
            "lines: deterministic equivalents of LLC18 (seed eq. 9; formula sheet sec. 2) computed from the expected kernel of the same data. "
            "The dotted line marks d = n, where the test error peaks (double descent)."
        )
        paths.append(save_figure(fig, outdir, name, caption))
    return paths


def mse_vs_gamma_figures(ds: Any, outdir: Path) -> list[Path]:
    """Training MSE against gamma, one line per d/n (one figure per data set, activation, weights, n)."""
    plt = pyplot()
    paths = []
    if ds.sizes.get("gamma", 1) < 2:
        return paths
    for key, sub in iterate_panels(ds, ["dataset", "activation", "weights", "n"]):
        if not np.isfinite(sub["train_mse"].values).any():
            continue
        fig, ax = plt.subplots(figsize=(4.2, 3.2))
        gammas = sub["gamma"].values
        for i, ratio in enumerate(sub["d_over_n"].values):
            cell = sub.sel(d_over_n=ratio)
            errorbar_with_theory(ax, gammas, cell["train_mse"].transpose("seed", "gamma").values, cell["train_mse_theory"].values if "train_mse_theory" in cell else None, color=COLORS[i % len(COLORS)], label=f"d/n={ratio:g}")
        log_axis(ax, "x")
        ax.set_yscale("log")
        ax.set_xlabel("γ")
        ax.set_ylabel("training MSE")
        legend_below(fig, ax, ncol=3)
        ax.set_title(f"{key['dataset']} · {key['activation']} · W {key['weights']} · n={key['n']}")
        name = f"train_vs_gamma-{key['dataset']}-{key['activation']}-{key['weights']}-n{key['n']}"
        caption = (
            f"Training MSE of random-features ridge regression against the ridge γ on {key['dataset']} with {key['activation']} features: "
            "points are seed means with standard errors, lines the LLC18 deterministic equivalent (formula sheet sec. 2)."
        )
        paths.append(save_figure(fig, outdir, name, caption))
    return paths
