"""A nonlinearity in the LLN and in the CLT scaling regime: two different quadratic linearisations.

Seed slides "Nonlinear objects in two scaling regimes" and "Linearization in the two scaling regimes:
an example". Let √n·x ∈ R^n be standard Gaussian and y ∈ R^n a fixed unit vector. Then

* LLN regime: f_LLN(x) = x^T y ~ N(0, 1/n) concentrates at 0, and φ(f_LLN) − ψ_LLN(f_LLN) → 0 for
  any ψ_LLN with ψ_LLN(0) = φ(0); the slides take ψ_LLN(t) = t²/4 for φ = tanh;
* CLT regime: f_CLT(x) = √n·x^T y ~ N(0, 1) for every n, and E φ(f_CLT) = E ψ_CLT(f_CLT) for any
  ψ_CLT with the same zeroth Hermite coefficient a_0 = E φ(ξ); the slides take ψ_CLT(t) = t² − 1
  (a_0 = 0 for tanh). The samples φ(f_CLT) and ψ_CLT(f_CLT) stay O(1) apart.

For any activation the kind uses ψ_LLN(t) = φ(0) + c_L t² and ψ_CLT(t) = a_0 + c_C (t² − 1)
(options ``lln_curvature`` c_L = 1/4 and ``clt_curvature`` c_C = 1 reproduce the slides for tanh).

Per cell (activation, n) the simulation draws ``draws`` independent x (in fixed chunks of
:data:`DRAW_CHUNK` rows, keyed by (n, chunk) so every activation sees the same draws), and records
mean and sup of |φ(f) − ψ(f)| in both regimes, E φ(f_CLT) and E ψ(f_CLT) with standard errors, and
the first ``sample_points`` samples for the figure. The theory is exact at every n (f is exactly
Gaussian): Gaussian expectations by quadrature split at the kinks of φ and at the sign changes of
φ − ψ (:mod:`rmtbench.quadrature`). ``compare`` adds a power-law rate in n of the LLN errors, whose
leading term |φ'(0)|·E|f_LLN| = |φ'(0)|·√(2/(πn)) predicts the exponent −1/2 when φ'(0) ≠ 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rmtbench.canonical import short_hash
from rmtbench.compare import MIN_Z_COUNT
from rmtbench.experiments.base import Cell, Experiment, RunContext
from rmtbench.experiments.common import ACTIVATION, list_of

DRAW_CHUNK = 256
"""Draws of x generated from one random stream (fixed: the numbers never depend on compute layout)."""

SLIDES_N = 500
"""The size of the slides' figure; the sample figure uses the grid value of n closest to it."""

#: (simulated variable, theory variable, description) pairs that ``compare`` tabulates.
PAIRS: tuple[tuple[str, str | None, str], ...] = (
    ("lln_abs_diff", "lln_abs_diff_theory", "LLN: mean over draws of |phi(f) - psi_LLN(f)|, f = x^T y"),
    ("lln_sup_diff", None, "LLN: max over draws of |phi(f) - psi_LLN(f)| (grows like sqrt(log draws))"),
    ("lln_phi_dev", "lln_phi_dev_theory", "LLN: mean |phi(f) - phi(0)| (phi(f) tends to the constant phi(0))"),
    ("clt_phi_mean", "clt_phi_mean_theory", "CLT: mean of phi(f), f = sqrt(n) x^T y; theory a0 = E phi(xi)"),
    ("clt_psi_mean", "clt_psi_mean_theory", "CLT: mean of psi_CLT(f); theory E psi_CLT(xi) = a0"),
    ("clt_gap", "clt_gap_theory", "CLT: mean of phi(f) - psi_CLT(f) (paired); theory 0"),
    ("clt_abs_diff", "clt_abs_diff_theory", "CLT: mean |phi(f) - psi_CLT(f)| (does not vanish: samples differ)"),
    ("clt_sup_diff", None, "CLT: max over draws of |phi(f) - psi_CLT(f)|"),
)


# -- the two linearisations and their Gaussian expectations ---------------------------------------------


@dataclass(frozen=True)
class Linearizations:
    """φ with its LLN quadratic ψ_LLN(t) = φ(0) + c_L t² and CLT quadratic ψ_CLT(t) = a_0 + c_C (t² − 1).

    Examples
    --------
    >>> lin = linearizations("tanh")
    >>> float(lin.psi_lln(np.array(2.0))), float(lin.psi_clt(np.array(2.0)))  # t²/4 and t² − 1
    (1.0, 3.0)
    """

    phi: Callable[[np.ndarray], np.ndarray]
    kinks: tuple[float, ...]
    phi0: float
    a0: float
    lln_curvature: float
    clt_curvature: float

    def psi_lln(self, t: np.ndarray) -> np.ndarray:
        """ψ_LLN(t) = φ(0) + c_L t²."""
        return self.phi0 + self.lln_curvature * np.square(t)

    def psi_clt(self, t: np.ndarray) -> np.ndarray:
        """ψ_CLT(t) = a_0 + c_C (t² − 1), i.e. a_0 + √2 c_C He_2(t) in normalised Hermite polynomials."""
        return self.a0 + self.clt_curvature * (np.square(t) - 1.0)


def linearizations(activation: Any, *, lln_curvature: float = 0.25, clt_curvature: float = 1.0) -> Linearizations:
    """The slides' two quadratic linearisations of ``activation`` (see :class:`Linearizations`)."""
    from rmtbench.activations import get_activation, hermite_coefficients

    act = get_activation(activation)
    return Linearizations(
        phi=act.phi, kinks=tuple(act.kinks), phi0=float(act.phi(np.zeros(1))[0]),
        a0=float(hermite_coefficients(act, order=0)[0]), lln_curvature=float(lln_curvature), clt_curvature=float(clt_curvature),
    )


def _sign_changes(g: Callable[[np.ndarray], np.ndarray], scale: float, kinks: Sequence[float], *, bound: float = 12.0) -> list[float]:
    """Zeros (in t units) of g on [−bound·scale, bound·scale] where it changes sign, refined by Brent."""
    import scipy.optimize

    t = np.unique(np.concatenate([np.linspace(-bound * scale, bound * scale, 8001), np.asarray(kinks, float)]))
    v = g(t)
    zeros = [float(x) for x, y in zip(t, v) if y == 0.0]
    for a, b, fa, fb in zip(t[:-1], t[1:], v[:-1], v[1:]):
        if fa * fb < 0:
            zeros.append(float(scipy.optimize.brentq(lambda s: float(g(np.array([s]))[0]), a, b, xtol=1e-15 * max(1.0, abs(a)))))
    return sorted(zeros)


def gaussian_abs_expectation(g: Callable[[np.ndarray], np.ndarray], *, scale: float, kinks: Sequence[float] = ()) -> float:
    """E|g(scale·ξ)| for ξ ~ N(0, 1), by quadrature split at the kinks of g and at its sign changes.

    Examples
    --------
    >>> round(gaussian_abs_expectation(lambda t: t, scale=2.0), 12) == round(2 * math.sqrt(2 / math.pi), 12)
    True
    """
    from rmtbench.quadrature import gaussian_expectation

    cuts = tuple(sorted(set(kinks) | set(_sign_changes(g, scale, kinks))))
    return gaussian_expectation(lambda t: np.abs(g(t)), scale=scale, kinks=cuts)


# -- the experiment kind --------------------------------------------------------------------------------


class LinearizationRegimes(Experiment):
    """φ(f) against its LLN and CLT quadratic linearisations, over n (the slides' tanh example)."""

    kind = "regimes"
    description = ("LLN vs CLT regime of a nonlinearity (seed slides' tanh example): phi(x^T y) - psi_LLN -> 0, "
                   "E phi(sqrt(n) x^T y) = E psi_CLT while the samples differ; errors over n with fitted rates.")
    axes = ("activation", "n")
    dataset_axes = ()
    uses_dask = False
    grid_schema = {
        "activation": list_of(ACTIVATION, "Activations phi (the slides use tanh)."),
        "n": list_of({"type": "integer", "minimum": 1}, "Dimensions n of x (sqrt(n) x standard Gaussian)."),
    }
    options_schema = {
        "draws": {"type": "integer", "minimum": 2, "default": 4000,
                  "description": "Independent draws of x per n (the same draws for every activation)."},
        "sample_points": {"type": "integer", "minimum": 1, "default": 500,
                          "description": "Draws kept as samples for the scatter figure (the first ones)."},
        "lln_curvature": {"type": "number", "default": 0.25,
                          "description": "c_L in psi_LLN(t) = phi(0) + c_L t^2 (slides: t^2/4 for tanh)."},
        "clt_curvature": {"type": "number", "default": 1.0,
                          "description": "c_C in psi_CLT(t) = a0 + c_C (t^2 - 1), a0 = E phi(xi) (slides: t^2 - 1 for tanh)."},
    }

    def theory_key(self, cell: Cell) -> str:
        return short_hash({"activation": cell["activation"], "lln": cell["lln_curvature"], "clt": cell["clt_curvature"]})

    def resource_estimate(self, cells: list[Cell], *, step: str) -> dict[str, float]:
        """No n-by-n matrix: chunks of draws x n for the simulation, one-dimensional quadrature for the theory."""
        from rmtbench.resources import BYTES, FLOPS_PER_SECOND

        if step != "simulate":
            return {"threads": 1, "memory": 50e6, "seconds": 10.0}
        n, draws = int(cells[0]["n"]), int(cells[0]["draws"])
        memory = BYTES * (3 * DRAW_CHUNK * n + 4 * draws)  # a chunk of x, its products; per-draw results
        return {"threads": 1, "memory": float(memory), "seconds": 50.0 * draws * n / FLOPS_PER_SECOND}

    def _lin(self, cell: Cell) -> Linearizations:
        return linearizations(cell["activation"], lln_curvature=cell["lln_curvature"], clt_curvature=cell["clt_curvature"])

    # -- empirical ---------------------------------------------------------------------------------
    def simulate(self, cell: Cell, ctx: RunContext) -> Any:
        import xarray as xr

        from rmtbench.rng import generator
        from rmtbench.store import provenance

        n, draws, lin = int(cell["n"]), int(cell["draws"]), self._lin(cell)
        y = generator(cell.root_seed, "regimes", "y", n).standard_normal(n)
        y /= np.linalg.norm(y)
        f_lln = np.empty(draws)
        for chunk, start in enumerate(range(0, draws, DRAW_CHUNK)):
            rows = min(DRAW_CHUNK, draws - start)
            x = generator(cell.root_seed, "regimes", "x", n, chunk).standard_normal((rows, n)) / math.sqrt(n)
            f_lln[start:start + rows] = x @ y
        f_clt = math.sqrt(n) * f_lln
        phi_l, psi_l = lin.phi(f_lln), lin.psi_lln(f_lln)
        phi_c, psi_c = lin.phi(f_clt), lin.psi_clt(f_clt)

        def mean_sem(values: np.ndarray) -> tuple[float, float]:
            return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size))

        stats: dict[str, tuple[float, float]] = {
            "lln_abs_diff": mean_sem(np.abs(phi_l - psi_l)),
            "lln_sup_diff": (float(np.max(np.abs(phi_l - psi_l))), math.nan),
            "lln_phi_dev": mean_sem(np.abs(phi_l - lin.phi0)),
            "clt_phi_mean": mean_sem(phi_c),
            "clt_psi_mean": mean_sem(psi_c),
            "clt_gap": mean_sem(phi_c - psi_c),
            "clt_abs_diff": mean_sem(np.abs(phi_c - psi_c)),
            "clt_sup_diff": (float(np.max(np.abs(phi_c - psi_c))), math.nan),
        }
        describe = {name: text for name, _, text in PAIRS}
        variables: dict[str, Any] = {}
        for name, (value, sem) in stats.items():
            variables[name] = ((), value, {"description": describe[name] + f" ({draws} draws)"})
            variables[f"{name}_sem"] = ((), sem, {"description": f"standard error of {name} over draws (NaN for a maximum)"})
        keep = min(int(cell["sample_points"]), draws)
        samples = {"f_lln": f_lln, "phi_lln": phi_l, "psi_lln": psi_l, "f_clt": f_clt, "phi_clt": phi_c, "psi_clt": psi_c}
        for name, values in samples.items():
            variables[f"sample_{name}"] = (("sample",), values[:keep], {"description": f"{name} for the first {keep} draws"})
        variables["draws"] = ((), draws, {"long_name": "independent draws of x in this cell"})
        return xr.Dataset(
            variables, coords={"sample": np.arange(keep)},
            attrs=provenance(cell=cell.to_json(), draws=draws, phi0=lin.phi0, a0=lin.a0,
                             psi_lln=f"{lin.phi0:g} + {lin.lln_curvature:g} t^2", psi_clt=f"{lin.a0:.6g} + {lin.clt_curvature:g} (t^2 - 1)"),
        )

    # -- theory ------------------------------------------------------------------------------------
    def theory(self, cells: list[Cell], ctx: RunContext) -> Any:
        import xarray as xr

        from rmtbench.quadrature import gaussian_expectation
        from rmtbench.store import provenance

        lin = self._lin(cells[0])
        ns = sorted({int(c["n"]) for c in cells})
        scales = [1.0 / math.sqrt(n) for n in ns]
        lln_diff = [gaussian_abs_expectation(lambda t: lin.phi(t) - lin.psi_lln(t), scale=s, kinks=lin.kinks) for s in scales]
        lln_dev = [gaussian_abs_expectation(lambda t: lin.phi(t) - lin.phi0, scale=s, kinks=lin.kinks) for s in scales]
        phi_mean = gaussian_expectation(lin.phi, kinks=lin.kinks)
        psi_mean = gaussian_expectation(lin.psi_clt)
        gap = gaussian_expectation(lambda t: lin.phi(t) - lin.psi_clt(t), kinks=lin.kinks)
        clt_diff = gaussian_abs_expectation(lambda t: lin.phi(t) - lin.psi_clt(t), scale=1.0, kinks=lin.kinks)
        source = "exact Gaussian expectations (f_LLN ~ N(0, 1/n), f_CLT ~ N(0, 1)) by split Gauss-Legendre quadrature"
        return xr.Dataset(
            {
                "lln_abs_diff_theory": (("n",), np.array(lln_diff), {"long_name": "E|phi(f) - psi_LLN(f)|, f ~ N(0, 1/n)", "source": source}),
                "lln_phi_dev_theory": (("n",), np.array(lln_dev), {"long_name": "E|phi(f) - phi(0)|, f ~ N(0, 1/n)", "source": source}),
                "clt_phi_mean_theory": ((), phi_mean, {"long_name": "E phi(xi) = a0", "source": source}),
                "clt_psi_mean_theory": ((), psi_mean, {"long_name": "E psi_CLT(xi) (= a0 by construction)", "source": source}),
                "clt_gap_theory": ((), gap, {"long_name": "E[phi(xi) - psi_CLT(xi)] (= 0: equal zeroth Hermite coefficients)", "source": source}),
                "clt_abs_diff_theory": ((), clt_diff, {"long_name": "E|phi(xi) - psi_CLT(xi)| (independent of n)", "source": source}),
                "phi0": ((), lin.phi0, {"long_name": "phi(0)"}),
                "a0": ((), lin.a0, {"long_name": "zeroth Hermite coefficient a0 = E phi(xi)"}),
                "lln_curvature": ((), lin.lln_curvature, {"long_name": "c_L of psi_LLN(t) = phi(0) + c_L t^2"}),
                "clt_curvature": ((), lin.clt_curvature, {"long_name": "c_C of psi_CLT(t) = a0 + c_C (t^2 - 1)"}),
            },
            coords={"n": ns},
            attrs=provenance(cells=[c.id for c in cells], activation=cells[0]["activation"]),
        )

    # -- comparison and figures --------------------------------------------------------------------
    def compare(self, gathered: Any) -> Any:
        import pandas as pd

        return pd.DataFrame(comparison_rows(gathered))

    def plot(self, gathered: Any, outdir: Path) -> list[Path]:
        paths = []
        for act in gathered["activation"].values:
            sub = gathered.sel(activation=act)
            paths += [sample_figure(sub, outdir), error_figure(sub, outdir)]
        return [p for p in paths if p is not None]


# -- comparison -----------------------------------------------------------------------------------------


def _finite_n(sub: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(sub[name].values, dtype=float)
    ns = np.asarray(sub["n"].values, dtype=float)
    keep = np.isfinite(values) & (values > 0)
    return ns[keep], values[keep]


def _rate(sub: Any, name: str) -> tuple[float, float]:
    from rmtbench.compare import convergence_rate

    ns, values = _finite_n(sub, name)
    if ns.size < 2:
        return math.nan, math.nan
    return convergence_rate(ns, values)


def comparison_rows(gathered: Any) -> list[dict[str, Any]]:
    """Per (activation, n, quantity): simulation, its standard error, theory, errors; plus rates in n."""
    rows: list[dict[str, Any]] = []
    for act in gathered["activation"].values:
        sub = gathered.sel(activation=act)
        for n in sub["n"].values:
            cell = sub.sel(n=n)
            for name, theory_name, text in PAIRS:
                if name not in cell or not np.isfinite(float(cell[name])):
                    continue
                mean, sem = float(cell[name]), float(cell[f"{name}_sem"])
                count = int(cell["draws"]) if "draws" in cell and np.isfinite(float(cell["draws"])) else 0
                theory = float(cell[theory_name]) if theory_name and theory_name in cell else math.nan
                error = mean - theory
                rows.append({
                    "activation": str(act), "n": int(n), "quantity": name, "mean": mean, "count": count, "sem": sem,
                    "theory": theory, "abs_error": error,
                    "rel_error": error / theory if theory not in (0.0,) and math.isfinite(theory) and abs(theory) > 1e-12 else math.nan,
                    "z_score": error / sem if sem > 0 and count >= MIN_Z_COUNT else math.nan, "note": text,
                })
        for name, theory_name, text in (
            ("lln_abs_diff", "lln_abs_diff_theory", "exponent of n in mean |phi - psi_LLN| (leading order -1/2 when phi'(0) != 0)"),
            ("lln_sup_diff", None, "exponent of n in max |phi - psi_LLN| over draws"),
            ("lln_phi_dev", "lln_phi_dev_theory", "exponent of n in mean |phi(f_LLN) - phi(0)|"),
            ("clt_abs_diff", "clt_abs_diff_theory", "exponent of n in mean |phi - psi_CLT| (0: the CLT samples do not approach each other)"),
        ):
            if name not in sub:
                continue
            slope, stderr = _rate(sub, name)
            theory_slope = math.nan
            if theory_name and theory_name in sub:
                theory = sub[theory_name]
                if "n" in theory.dims:
                    theory_slope, _ = _rate(sub, theory_name)
                else:
                    theory_slope = 0.0
            rows.append({"activation": str(act), "quantity": f"{name}_rate", "exponent": slope, "exponent_stderr": stderr,
                         "theory_exponent": theory_slope, "n_min": int(sub["n"].min()), "n_max": int(sub["n"].max()), "note": text})
    return rows


# -- figures --------------------------------------------------------------------------------------------


def _scalar(sub: Any, name: str, default: float = math.nan) -> float:
    if name not in sub:
        return default
    values = np.asarray(sub[name].values, dtype=float).ravel()
    values = values[np.isfinite(values)]
    return float(values[0]) if values.size else default


def _num(value: float) -> str:
    """Short number for titles: round-off (|v| < 1e-12) prints as 0."""
    return "0" if abs(value) < 1e-12 else f"{value:.3g}"


def _quadratic_text(constant: float, curvature: float, centred: bool) -> str:
    square = "(t² − 1)" if centred else "t²"
    head = "" if abs(constant) < 1e-12 else f"{_num(constant)} + "
    return f"{head}{_num(curvature) + ' ' if curvature != 1 else ''}{square}"


def sample_figure(sub: Any, outdir: Path) -> Path | None:
    """The slides' figure: samples of φ(f) and ψ(f) against f in the LLN and CLT regimes, at n ≈ 500.

    Both panels share the axes (so the LLN samples sit in a dot at the origin, where φ and ψ_LLN meet,
    while the CLT samples spread along both curves); an inset zooms on the LLN samples.
    """
    from rmtbench.plots import COLORS, pyplot, save_figure

    if "sample_f_lln" not in sub:
        return None
    ns = [int(n) for n in sub["n"].values if np.isfinite(sub["sample_f_lln"].sel(n=n).values).any()]
    if not ns:
        return None
    n = min(ns, key=lambda m: (abs(m - SLIDES_N), m))
    cell = sub.sel(n=n)
    act = str(sub["activation"].item())
    lin = linearizations(act, lln_curvature=_scalar(sub, "lln_curvature", 0.25), clt_curvature=_scalar(sub, "clt_curvature", 1.0))
    samples = {key: cell[f"sample_{key}"].values for key in ("f_lln", "phi_lln", "psi_lln", "f_clt", "phi_clt", "psi_clt")}
    shown = int(np.count_nonzero(np.isfinite(samples["f_lln"])))
    samples = {key: values[:shown] for key, values in samples.items()}
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6), sharex=True, sharey=True)
    green = COLORS[2]
    span = max(3.0, float(np.max(np.abs(samples["f_clt"]))))
    t = np.linspace(-span, span, 600)
    for ax, regime in zip(axes, ("lln", "clt")):
        psi = lin.psi_lln if regime == "lln" else lin.psi_clt
        ax.plot(t, lin.phi(t), color=COLORS[0], lw=1.0, alpha=0.5)
        ax.plot(t, psi(t), color=COLORS[1], lw=1.0, alpha=0.5)
        for k, c in enumerate((-0.5, 1.0) if regime == "lln" else (0.5, 2.0)):
            other = (lin.phi0 + c * t**2) if regime == "lln" else (lin.a0 + c * (t**2 - 1.0))
            ax.plot(t, other, ls="--", color=green, lw=0.9, label="other valid quadratics" if k == 0 else None)
        f, phi_s, psi_s = samples[f"f_{regime}"], samples[f"phi_{regime}"], samples[f"psi_{regime}"]
        ax.scatter(f, phi_s, s=5, color=COLORS[0], zorder=3, label=f"samples of φ(f) = {act}(f)")
        ax.scatter(f, psi_s, s=5, color=COLORS[1], zorder=3, label="samples of ψ(f)")
    lo = min(float(np.min(lin.phi(t))), float(np.min(samples["psi_clt"]))) - 0.3
    hi = max(float(np.quantile(samples["psi_clt"], 0.99)), float(np.max(lin.phi(t)))) + 0.5
    axes[0].set_ylim(lo, hi)
    ax_l, ax_c = axes
    ax_l.set_title(f"LLN: f = xᵀy ~ N(0, 1/n), ψ_LLN(t) = {_quadratic_text(lin.phi0, lin.lln_curvature, False)}")
    ax_l.set_xlabel("f_LLN(x)")
    ax_c.set_title(f"CLT: f = √n xᵀy ~ N(0, 1), ψ_CLT(t) = {_quadratic_text(lin.a0, lin.clt_curvature, True)}")
    ax_c.set_xlabel("f_CLT(x)")
    ax_l.set_ylabel("value")
    ax_c.axhline(float(np.mean(samples["phi_clt"])), color=COLORS[0], ls=":", lw=1.4, label="sample means of φ(f) and ψ(f)")
    ax_c.axhline(float(np.mean(samples["psi_clt"])), color=COLORS[1], ls=":", lw=1.4)
    ax_c.axhline(lin.a0, color="k", lw=0.7, label=f"a₀ = E φ(ξ) = {_num(lin.a0)}")
    # zoom on the LLN samples: they sit within a few 1/sqrt(n) of the origin
    inset = ax_l.inset_axes([0.5, 0.45, 0.47, 0.45])
    f = samples["f_lln"]
    inset.scatter(f, samples["phi_lln"], s=2, color=COLORS[0])
    inset.scatter(f, samples["psi_lln"], s=2, color=COLORS[1])
    inset.text(0.03, 0.95, "zoom on the samples", transform=inset.transAxes, ha="left", va="top", fontsize=6)
    inset.tick_params(labelsize=5)
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.02), fontsize=7)
    fig.suptitle(f"{act} in the two scaling regimes, n = {n}")
    fig.tight_layout(rect=(0, 0.1, 1, 0.96))
    draws = int(_scalar(cell, "draws", shown))
    lln_gap = float(np.mean(np.abs(samples["phi_lln"] - samples["psi_lln"])))
    clt_gap, clt_gap_sem = _scalar(cell, "clt_gap"), _scalar(cell, "clt_gap_sem")
    clt_abs = float(np.mean(np.abs(samples["phi_clt"] - samples["psi_clt"])))
    rate, _ = _rate(sub, "lln_abs_diff_theory") if "lln_abs_diff_theory" in sub and sub["n"].size > 1 else (math.nan, math.nan)
    shrink = f"shrinking like n^{rate:.2f} (exact expectations over the grid of n)" if math.isfinite(rate) else "shrinking with n"
    caption = (
        f"The seed slides' figure for the example 'Linearization in the two scaling regimes', with phi = {act} and n = {n} "
        f"(slides: tanh, n = 500): {shown} of {draws} draws of x (sqrt(n) x standard Gaussian) for one fixed unit vector y. "
        f"Blue: phi(f); red: the quadratic psi(f); lines: the functions themselves; both panels share their axes. "
        f"Left, LLN regime, f_LLN = x^T y ~ N(0, 1/n): the samples sit at the origin, where psi_LLN(t) = "
        f"{_quadratic_text(lin.phi0, lin.lln_curvature, False)} meets phi (psi_LLN(0) = phi(0) = {_num(lin.phi0)}); the inset zooms in: "
        f"mean |phi - psi_LLN| = {lln_gap:.2g} here, {shrink}. Right, CLT regime, f_CLT = sqrt(n) x^T y ~ N(0, 1) "
        f"for every n: phi and psi_CLT(t) = {_quadratic_text(lin.a0, lin.clt_curvature, True)} differ sample by sample (mean "
        f"|phi - psi_CLT| = {clt_abs:.2g}) but agree in expectation, both equal to the shared zeroth Hermite coefficient "
        f"a0 = E phi(xi) = {_num(lin.a0)} (black line; dotted: the sample means). Over all {draws} draws E phi - E psi_CLT = "
        f"{clt_gap:.3g} +- {clt_gap_sem:.2g} (standard error). Dashed green: other quadratics that are equally valid "
        "linearisations (same value at 0, resp. same a0); the linearisation is not unique, as the slides note."
    )
    return save_figure(fig, outdir, f"regimes-samples-{act}-n{n}", caption)


def error_figure(sub: Any, outdir: Path) -> Path | None:
    """Errors against n: mean and sup |φ − ψ| in both regimes (log–log) and E φ vs E ψ in the CLT regime."""
    from rmtbench.plots import COLORS, log_axis, pyplot, save_figure

    if "lln_abs_diff" not in sub or not np.isfinite(sub["lln_abs_diff"].values).any():
        return None
    act = str(sub["activation"].item())
    ns = sub["n"].values.astype(float)
    plt = pyplot()
    fig, (ax, ax_mean) = plt.subplots(1, 2, figsize=(8.4, 3.4))
    series = (
        ("lln_abs_diff", "lln_abs_diff_theory", "LLN mean |φ − ψ_LLN|", COLORS[0], "o"),
        ("lln_sup_diff", None, "LLN max |φ − ψ_LLN| over draws", COLORS[0], "^"),
        ("lln_phi_dev", "lln_phi_dev_theory", "LLN mean |φ(f) − φ(0)|", COLORS[2], "D"),
        ("clt_abs_diff", "clt_abs_diff_theory", "CLT mean |φ − ψ_CLT|", COLORS[1], "o"),
        ("clt_sup_diff", None, "CLT max |φ − ψ_CLT| over draws", COLORS[1], "^"),
    )
    rates = {}
    for name, theory_name, label, color, marker in series:
        values = sub[name].values.astype(float)
        sem = sub[f"{name}_sem"].values.astype(float)
        slope, stderr = _rate(sub, name)
        rates[name] = (slope, stderr)
        ax.errorbar(ns, values, yerr=np.where(np.isfinite(sem), sem, 0.0), fmt=marker, ms=6 if marker == "D" else 3.5, color=color,
                    mfc="none" if marker in "^D" else color, label=f"{label} (slope {slope:.2f})")
        if theory_name and theory_name in sub:
            theory = np.broadcast_to(sub[theory_name].values.astype(float), ns.shape)
            ax.plot(ns, theory, "-", color=color, alpha=0.7, lw=1.0)
    log_axis(ax, "x")
    ax.set_yscale("log")
    ax.set_xlabel("n")
    ax.set_ylabel("|φ(f) − ψ(f)|")
    ax.set_title("sample-wise differences (lines: exact expectations)")
    for name, color, label in (("clt_phi_mean", COLORS[0], "E φ(f_CLT)"), ("clt_psi_mean", COLORS[1], "E ψ_CLT(f_CLT)")):
        shift = 1.03 if name == "clt_psi_mean" else 1.0
        ax_mean.errorbar(ns * shift, sub[name].values, yerr=sub[f"{name}_sem"].values, fmt="o", ms=3.5, color=color, label=label)
    a0 = _scalar(sub, "clt_phi_mean_theory")
    ax_mean.axhline(a0, color="k", lw=0.8, label=f"a₀ = E φ(ξ) = {_num(a0)}")
    log_axis(ax_mean, "x")
    ax_mean.set_xlabel("n")
    ax_mean.set_ylabel("mean over draws")
    ax_mean.set_title("CLT regime: equal in expectation")
    handles, labels = ax.get_legend_handles_labels()
    h2, l2 = ax_mean.get_legend_handles_labels()
    fig.legend(handles + h2, labels + l2, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.1), fontsize=7)
    fig.suptitle(f"{act}: LLN vs CLT linearisation errors over n")
    fig.tight_layout(rect=(0, 0.16, 1, 0.96))
    z = (sub["clt_gap"] / sub["clt_gap_sem"]).values.astype(float)
    theory_slope, _ = _rate(sub, "lln_abs_diff_theory") if "lln_abs_diff_theory" in sub else (math.nan, math.nan)
    draws = int(_scalar(sub, "draws", 0))
    slope, stderr = rates["lln_abs_diff"]
    caption = (
        f"LLN versus CLT linearisation of phi = {act} (seed slides, 'Linearization in the two scaling regimes'), n = "
        f"{int(ns.min())}..{int(ns.max())}, {draws} draws of x per n (sqrt(n) x standard Gaussian, y a fixed unit vector). "
        f"Left: sample-wise differences, points = mean over draws (error bars: standard errors) or maximum over draws (open "
        f"triangles), lines = exact Gaussian expectations by quadrature. What holds: in the LLN regime phi(f) - psi_LLN(f) -> 0, "
        f"with mean |phi - psi_LLN| ~ n^{slope:.3f} (+- {stderr:.2g}; exact expectations: n^{theory_slope:.3f}), and phi(f_LLN) "
        f"itself tends to phi(0); in the CLT regime mean |phi - psi_CLT| stays at {_scalar(sub, 'clt_abs_diff_theory'):.3g} for every n "
        f"(f_CLT ~ N(0, 1) exactly), so the samples never approach each other. Right: E phi(f_CLT) and E psi_CLT(f_CLT) agree "
        f"with a0 = E phi(xi) = {a0:.4g} at every n (largest |paired difference| / standard error = {np.nanmax(np.abs(z)):.2f}); "
        "the slides' claim (6) holds in expectation only."
    )
    return save_figure(fig, outdir, f"regimes-errors-{act}", caption)

