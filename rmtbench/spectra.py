"""Empirical spectra: densities, Stieltjes transforms and distances of eigenvalue samples to a law.

Eigenvalues come as arrays whose last axis runs over the eigenvalues of one matrix and whose
leading axes (if any) index independent draws (seeds); NaN entries are padding (gathered stores
pad cells of different n) and are dropped. Pooled statistics treat all draws as one sample.

A limiting law often has three parts that a Kolmogorov–Smirnov test must keep apart (formula sheet
pitfall P21): an *atom* (the n − p eigenvalues of an n×n kernel with p < n, or the zero eigenvalues
of a rank-deficient Gram), the continuous *bulk*, and a few *outliers* of mass O(1/n) each (the
n·(E φ)² spike of a non-centred activation, pitfall P19). :func:`split_spectrum` separates them by
counts that the theory predicts, and :func:`bulk_ks` compares the bulk alone with a CDF of the
continuous part renormalised to mass 1.

Examples
--------
>>> eigs = np.array([0.0, 0.0, 1.0, 2.0, 3.0, 40.0])
>>> parts = split_spectrum(eigs, atom_count=2, outlier_count=1)
>>> parts.bulk.tolist(), parts.atom.tolist(), parts.outliers.tolist()
([1.0, 2.0, 3.0], [0.0, 0.0], [40.0])
>>> round(bulk_ks(eigs, lambda x: np.clip((x - 0.5) / 3, 0, 1), atom_count=2, outlier_count=1), 12)
0.166666666667
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rmtbench.theory.laws import ks_distance

__all__ = [
    "GramDensity",
    "SpectrumParts",
    "atom_count",
    "bulk_ks",
    "draws",
    "empirical_cdf",
    "empirical_stieltjes",
    "gram_density_window",
    "spectral_histogram",
    "split_spectrum",
    "stieltjes_distance",
]

Array = NDArray[np.float64]


def draws(eigenvalues: ArrayLike) -> list[Array]:
    """The eigenvalue sample of each draw, sorted, NaN padding removed; empty draws are skipped.

    Examples
    --------
    >>> [d.tolist() for d in draws([[2.0, 1.0, np.nan], [np.nan, np.nan, np.nan], [3.0, 0.0, 1.0]])]
    [[1.0, 2.0], [0.0, 1.0, 3.0]]
    """
    values = np.asarray(eigenvalues, dtype=np.float64)
    if values.ndim == 0:
        raise ValueError("eigenvalues must have at least one axis")
    rows = values.reshape(-1, values.shape[-1])
    out = []
    for row in rows:
        row = np.sort(row[np.isfinite(row)])
        if row.size:
            out.append(row)
    return out


def atom_count(n: int, mass: float) -> int:
    """Number of eigenvalues an atom of ``mass`` holds among ``n``: ``round(mass * n)``.

    Examples
    --------
    >>> atom_count(1024, 0.5), atom_count(10, 0.0)
    (512, 0)
    """
    if not 0.0 <= mass <= 1.0:
        raise ValueError(f"atom mass must lie in [0, 1], got {mass}")
    return int(round(float(mass) * int(n)))


@dataclass(frozen=True, eq=False)
class SpectrumParts:
    """One sorted eigenvalue sample split into atom (lowest), bulk and outliers (highest)."""

    atom: Array
    bulk: Array
    outliers: Array


def split_spectrum(eigenvalues: ArrayLike, *, atom_count: int = 0, outlier_count: int = 0) -> SpectrumParts:
    """Split one draw: the ``atom_count`` smallest, the ``outlier_count`` largest, the rest (bulk).

    The atom is taken at the bottom because every atom met here (K's n − p eigenvalues at
    ν − a0² − a1², a Gram's zero eigenvalues) lies at or below the bulk.

    Parameters
    ----------
    eigenvalues
        One draw (1-D; NaN padding is dropped).
    atom_count, outlier_count
        Counts predicted by the theory (see :func:`atom_count`).
    """
    values = np.asarray(eigenvalues, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"split_spectrum takes one draw (1-D), got shape {values.shape}")
    values = np.sort(values[np.isfinite(values)])
    if atom_count < 0 or outlier_count < 0 or atom_count + outlier_count > values.size:
        raise ValueError(f"cannot take {atom_count} atom and {outlier_count} outlier eigenvalues from {values.size}")
    top = values.size - outlier_count
    return SpectrumParts(atom=values[:atom_count], bulk=values[atom_count:top], outliers=values[top:])


def bulk_ks(
    eigenvalues: ArrayLike,
    cdf: Callable[[Array], ArrayLike],
    *,
    atom_count: int = 0,
    outlier_count: int = 0,
    window: tuple[float, float] | None = None,
) -> float:
    """Kolmogorov–Smirnov distance of the pooled bulk eigenvalues to ``cdf``.

    From each draw the atom (lowest ``atom_count``) and the outliers (highest ``outlier_count``)
    are removed; the remaining bulks of all draws are pooled. With a ``window`` (lo, hi), only bulk
    eigenvalues inside it are kept, and ``cdf`` must then be the law conditioned on the window (as
    :func:`rmtbench.theory.laws.cdf_from_density` on a grid spanning it is).

    Parameters
    ----------
    eigenvalues
        Shape ``(..., n)``: one row per draw (NaN padding allowed).
    cdf
        CDF of the continuous part of the law, renormalised to mass 1.
    atom_count, outlier_count
        Per-draw counts removed before pooling.
    window
        Optional closed interval the comparison is restricted to.

    Returns
    -------
    float
        sup_x |F_bulk(x) − cdf(x)|, or NaN when no eigenvalue is left.
    """
    pooled = [split_spectrum(d, atom_count=atom_count, outlier_count=outlier_count).bulk for d in draws(eigenvalues)]
    sample = np.concatenate(pooled) if pooled else np.empty(0)
    if window is not None:
        lo, hi = window
        sample = sample[(sample >= lo) & (sample <= hi)]
    if sample.size == 0:
        return float("nan")
    return ks_distance(sample, cdf)


def empirical_cdf(eigenvalues: ArrayLike) -> Callable[[ArrayLike], Array]:
    """The empirical CDF x -> #{λ_i <= x}/N of the pooled sample (right-continuous).

    Examples
    --------
    >>> F = empirical_cdf([[1.0, 2.0], [3.0, 4.0]])
    >>> F([0.0, 2.0, 2.5, 4.0]).tolist()
    [0.0, 0.5, 0.5, 1.0]
    """
    pooled = draws(eigenvalues)
    sample = np.sort(np.concatenate(pooled)) if pooled else np.empty(0)
    if sample.size == 0:
        raise ValueError("no finite eigenvalues")

    def cdf(x: ArrayLike) -> Array:
        return np.searchsorted(sample, np.asarray(x, dtype=np.float64), side="right") / sample.size

    return cdf


def empirical_stieltjes(eigenvalues: ArrayLike, z: complex | ArrayLike) -> complex | NDArray[np.complex128]:
    """m_n(z) = (1/n) Σ_i 1/(λ_i − z) = (1/n) tr (M − zI)^{-1} of each draw, from its eigenvalues.

    Parameters
    ----------
    eigenvalues
        Shape ``(..., n)`` (NaN padding is dropped per draw, so n may differ between draws).
    z
        Complex points (any shape) off the spectrum.

    Returns
    -------
    complex or ndarray
        Shape ``eigenvalues.shape[:-1] + z.shape`` (a scalar for one draw and scalar z). Draws that
        are all NaN give NaN.

    Examples
    --------
    >>> complex(empirical_stieltjes([1.0, 3.0], 2j))  # (1/(1-2j) + 1/(3-2j)) / 2
    (0.2153846153846154+0.27692307692307694j)
    """
    values = np.asarray(eigenvalues, dtype=np.float64)
    if values.ndim == 0:
        raise ValueError("eigenvalues must have at least one axis")
    zz = np.asarray(z, dtype=np.complex128)
    rows = values.reshape(-1, values.shape[-1])
    out = np.full((rows.shape[0], zz.size), np.nan + 0j, dtype=np.complex128)
    flat = zz.ravel()
    for i, row in enumerate(rows):
        row = row[np.isfinite(row)]
        if row.size:
            out[i] = np.mean(1.0 / (row[:, None] - flat[None, :]), axis=0)
    out = out.reshape(values.shape[:-1] + zz.shape)
    return complex(out) if out.ndim == 0 else out


def stieltjes_distance(eigenvalues: ArrayLike, z: ArrayLike, theory: ArrayLike) -> Array:
    """max_z |m_n(z) − m(z)| / |m(z)| per draw: relative sup-distance of Stieltjes transforms.

    Examples
    --------
    >>> float(stieltjes_distance([[1.0, 3.0]], [2j], [empirical_stieltjes([1.0, 3.0], 2j)])[0])
    0.0
    """
    zz = np.asarray(z, dtype=np.complex128).ravel()
    m = np.asarray(theory, dtype=np.complex128).ravel()
    if m.shape != zz.shape:
        raise ValueError(f"theory has {m.size} values for {zz.size} points z")
    values = np.asarray(eigenvalues, dtype=np.float64)
    emp = np.asarray(empirical_stieltjes(values.reshape(-1, values.shape[-1]), zz))
    return np.max(np.abs(emp - m[None, :]) / np.abs(m[None, :]), axis=1).reshape(values.shape[:-1])


def spectral_histogram(
    eigenvalues: ArrayLike,
    *,
    bins: int | ArrayLike = 60,
    range: tuple[float, float] | None = None,
    normalise_by: int | None = None,
) -> tuple[Array, Array]:
    """Histogram of the pooled eigenvalues as a density: (heights, edges).

    Parameters
    ----------
    eigenvalues
        Shape ``(..., n)`` (NaN padding dropped).
    bins, range
        As in :func:`numpy.histogram`.
    normalise_by
        Total count the heights are normalised by; default the number of pooled eigenvalues. Pass
        the full count to draw a histogram of the bulk alone at the scale of a density whose atom
        is left out (its area is then the bulk's mass, not 1).

    Examples
    --------
    >>> h, e = spectral_histogram([0.5, 1.5, 1.5, 1.7], bins=2, range=(0, 2))
    >>> h.tolist(), e.tolist()
    ([0.25, 0.75], [0.0, 1.0, 2.0])
    """
    pooled = draws(eigenvalues)
    sample = np.concatenate(pooled) if pooled else np.empty(0)
    counts, edges = np.histogram(sample, bins=bins, range=range)
    total = sample.size if normalise_by is None else int(normalise_by)
    if total == 0:
        return np.zeros(counts.shape), edges
    return counts / (total * np.diff(edges)), edges


@dataclass(frozen=True, eq=False)
class GramDensity:
    """The limiting density of a random-features Gram on a grid covering its bulk.

    Attributes
    ----------
    x, density
        Grid and the continuous part of the density (atom at 0 left out; it integrates to about
        1 − ``atom_mass`` on the grid, less the O(1/n) mass of outliers beyond the window).
    atom_mass
        Mass of the atom at 0 (1 − min(d, rank K)/n).
    window
        (0, hi): the grid's span. Outliers of the Gram (images of K's isolated eigenvalues) lie
        beyond ``hi`` and are left out of comparisons on both sides.
    """

    x: Array
    density: Array
    atom_mass: float
    window: tuple[float, float]

    def cdf(self) -> Callable[[ArrayLike], Array]:
        """CDF of the continuous part on the window, renormalised to mass 1 (for :func:`bulk_ks`)."""
        from rmtbench.theory.laws import cdf_from_density

        return cdf_from_density(self.x, self.density)


def gram_density_window(kernel_eigvals: ArrayLike, *, d: int, n: int, points: int = 256,
                        divide_by: float | None = None, outlier_factor: float = 10.0) -> GramDensity:
    """Limiting eigenvalue density of G = Φ^TΦ/``divide_by`` (LLC18 deterministic equivalent) on a window.

    The window is chosen from the theory alone: eigenvalues of K above ``outlier_factor`` times
    its mean eigenvalue (e.g. the n·(Eφ)² spike of a non-centred φ) are outliers; the bulk of
    Φ^TΦ/n then lies below (d/n)·λ_b·(1 + √(n/d))² with λ_b the largest remaining eigenvalue. A
    coarse scan (64 points) finds where the density vanishes; the fine grid on (0, that edge] has
    ``points`` points, half uniform and half at quantiles of the coarse law (so the bulk is resolved
    even when the window also holds a small isolated bump), plus ``points/4`` geometric ones near 0
    where a hard edge may sit.

    Parameters
    ----------
    kernel_eigvals
        Eigenvalues of the expected kernel K (n of them, or fewer: the rest count as 0).
    d, n
        Number of features and of samples.
    points
        Uniform grid points of the fine pass.
    divide_by
        Normalisation of Φ^TΦ: n (default; rf_ridge's G) or d (the kernel estimate Φ^TΦ/d).
    outlier_factor
        Eigenvalues of K above this multiple of tr K / n do not set the window.

    Examples
    --------
    >>> dens = gram_density_window(np.ones(50), d=100, n=50, points=200)
    >>> bool(abs(np.trapezoid(dens.density, dens.x) - 1) < 0.01), dens.atom_mass
    (True, 0.0)
    """
    from rmtbench.theory.equivalent import gram_atom_mass, gram_spectral_density

    lam = np.clip(np.asarray(kernel_eigvals, dtype=np.float64).ravel(), 0.0, None)
    if points < 8:
        raise ValueError(f"points must be >= 8, got {points}")
    mean = float(lam.sum()) / n
    if mean <= 0:
        raise ValueError("the kernel has no positive eigenvalue")
    factor = n / (n if divide_by is None else float(divide_by))  # G = factor · Φ^TΦ/n
    bulk_top = float(lam[lam <= outlier_factor * mean].max(initial=mean))
    r = d / n
    hi = r * bulk_top * (1.0 + math.sqrt(1.0 / r)) ** 2
    coarse = np.linspace(0.0, hi, 65)
    f = np.concatenate([[0.0], gram_spectral_density(lam, d=d, n=n, x=coarse[1:])])
    support = np.flatnonzero(f > 1e-8 * f.max())
    if support.size:
        last = min(support[-1] + 1, coarse.size - 1)
        hi = float(coarse[last])
        coarse, f = coarse[: last + 1], f[: last + 1]
    # Half the points uniform on the window, half at quantiles of the coarse law (where the mass is), and a
    # geometric run near 0 where a hard edge may sit.
    mass = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(coarse))])
    half = max(4, int(points) // 2)
    quantiles = np.interp(np.linspace(0.0, mass[-1], half + 2)[1:-1], mass, coarse) if mass[-1] > 0 else np.empty(0)
    x = np.unique(np.concatenate([np.linspace(0.0, hi, half + 1)[1:], quantiles,
                                  np.geomspace(hi * 1e-6, hi * 0.05, max(2, int(points) // 4))]))
    x = x[x > 0]
    dens = gram_spectral_density(lam, d=d, n=n, x=x)
    return GramDensity(x=x * factor, density=dens / factor, atom_mass=gram_atom_mass(lam, d=d, n=n),
                       window=(0.0, hi * factor))
