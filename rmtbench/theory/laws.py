"""Limiting spectral laws and the statistics used to compare them with samples.

* Marchenko–Pastur law of (1/p) Z^TZ (n×n, Z ∈ R^{p×n} with i.i.d. unit-variance entries), ratio
  c = n/p (formula sheet §3): density √((b−x)(x−a))/(2πcx) on [a, b] = [(1−√c)², (1+√c)²], plus an
  atom of mass (1 − 1/c)₊ at 0 (only when n > p, pitfall P21).
* Kolmogorov–Smirnov distance of a sample to a CDF, CDFs of densities known on a grid.
* Power-law fits in log–log coordinates (scaling laws, §7).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "GridCDF",
    "PowerLawFit",
    "cdf_from_density",
    "fit_power_law",
    "ks_distance",
    "marchenko_pastur_atom",
    "marchenko_pastur_cdf",
    "marchenko_pastur_density",
    "marchenko_pastur_edges",
]


def _ratio(ratio: float) -> float:
    c = float(ratio)
    if not (math.isfinite(c) and c > 0):
        raise ValueError(f"ratio must be > 0, got {ratio}")
    return c


def marchenko_pastur_edges(ratio: float) -> tuple[float, float]:
    """Edges (a, b) = ((1 − √c)², (1 + √c)²) of the continuous part.

    Examples
    --------
    >>> marchenko_pastur_edges(0.25)
    (0.25, 2.25)
    """
    c = _ratio(ratio)
    return (1.0 - math.sqrt(c)) ** 2, (1.0 + math.sqrt(c)) ** 2


def marchenko_pastur_atom(ratio: float) -> float:
    """Mass (1 − 1/c)₊ of the atom at 0 of the MP law of ratio c = n/p.

    Examples
    --------
    >>> marchenko_pastur_atom(0.5), marchenko_pastur_atom(4.0)
    (0.0, 0.75)
    """
    c = _ratio(ratio)
    return max(0.0, 1.0 - 1.0 / c)


def marchenko_pastur_density(x: ArrayLike, *, ratio: float) -> NDArray[np.float64]:
    """Density of the continuous part of the MP law: √((b−x)(x−a))/(2πcx) on [a, b], else 0.

    It integrates to min(1, 1/c) = 1 − :func:`marchenko_pastur_atom`.

    Examples
    --------
    >>> float(marchenko_pastur_density(1.0, ratio=1.0)) == math.sqrt(3) / (2 * math.pi)
    True
    """
    c = _ratio(ratio)
    a, b = marchenko_pastur_edges(c)
    xx = np.asarray(x, dtype=np.float64)
    inside = (xx > a) & (xx < b) & (xx > 0)
    out = np.zeros_like(xx)
    xi = xx[inside]
    out[inside] = np.sqrt((b - xi) * (xi - a)) / (2.0 * np.pi * c * xi)
    return out


def _mp_primitive(x: NDArray[np.float64], a: float, b: float) -> NDArray[np.float64]:
    """A primitive of √((b−x)(x−a))/x on [a, b] (checked by differentiation):

    R + ((a+b)/2)·arcsin((2x−a−b)/(b−a)) − √(ab)·arcsin(((a+b)x − 2ab)/((b−a)x)).
    """
    r = np.sqrt(np.clip((b - x) * (x - a), 0.0, None))
    s1 = np.arcsin(np.clip((2.0 * x - a - b) / (b - a), -1.0, 1.0))
    out = r + 0.5 * (a + b) * s1
    if a > 0:  # at c = 1 (a = 0) the last term vanishes
        s2 = np.arcsin(np.clip(((a + b) * x - 2.0 * a * b) / ((b - a) * x), -1.0, 1.0))
        out = out - math.sqrt(a * b) * s2
    return out


def marchenko_pastur_cdf(
    x: ArrayLike, *, ratio: float, include_atom: bool = False
) -> NDArray[np.float64]:
    """CDF of the MP law of ratio c = n/p, in closed form.

    Parameters
    ----------
    x
        Points (any shape).
    ratio
        c = n/p.
    include_atom
        False (default): CDF of the continuous part renormalised to mass 1 (compare it with the
        non-zero eigenvalues). True: CDF of the full law, atom (1 − 1/c)₊ at 0 included (compare
        it with all n eigenvalues, clipped at 0).

    Examples
    --------
    >>> float(marchenko_pastur_cdf(4.0, ratio=1.0)), float(marchenko_pastur_cdf(0.0, ratio=2.0))
    (1.0, 0.0)
    >>> float(marchenko_pastur_cdf(0.0, ratio=2.0, include_atom=True))
    0.5
    """
    c = _ratio(ratio)
    a, b = marchenko_pastur_edges(c)
    xx = np.asarray(x, dtype=np.float64)
    xc = np.clip(xx, a, b)
    # ∫_a^b of the density is min(1, c)/c; renormalise the continuous part to 1.
    cont = np.zeros_like(xx)
    pos = xc > 0
    cont[pos] = (_mp_primitive(xc[pos], a, b) - _mp_primitive(np.array([a]), a, b)[0]) / (
        np.pi * 2.0 * min(1.0, c)
    )
    cont = np.clip(np.where(xx >= b, 1.0, np.where(xx <= a, 0.0, cont)), 0.0, 1.0)
    if not include_atom:
        return cont
    atom = marchenko_pastur_atom(c)
    return np.where(xx >= 0, atom, 0.0) + (1.0 - atom) * cont


def ks_distance(samples: ArrayLike, cdf: Callable[[NDArray[np.float64]], ArrayLike]) -> float:
    """Kolmogorov–Smirnov distance sup_x |F_N(x) − F(x)| of a sample to a CDF.

    Exact for any non-decreasing ``cdf``, including ones with atoms: F_N and F are compared at each
    distinct sample value and just below it (F(x⁻) is evaluated at the next float down), so tied
    samples on an atom are handled correctly.

    Parameters
    ----------
    samples
        The sample (flattened).
    cdf
        Vectorised callable returning F at an array of points.

    Examples
    --------
    >>> ks_distance([0.5], lambda x: np.clip(x, 0, 1))
    0.5
    """
    s = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    if s.size == 0 or not np.all(np.isfinite(s)):
        raise ValueError("samples must be a non-empty finite array")
    u, counts = np.unique(s, return_counts=True)
    upper = np.cumsum(counts) / s.size  # F_N(u_k)
    lower = upper - counts / s.size  # F_N(u_k⁻)
    F = np.asarray(cdf(u), dtype=np.float64)
    F_left = np.asarray(cdf(np.nextafter(u, -np.inf)), dtype=np.float64)
    return float(max(np.max(np.abs(upper - F)), np.max(np.abs(lower - F_left))))


@dataclass(frozen=True, eq=False)  # arrays: no elementwise ==
class GridCDF:
    """A CDF known on a grid, linearly interpolated; 0 left of the grid, 1 right of it."""

    x: NDArray[np.float64]
    values: NDArray[np.float64]

    def __call__(self, t: ArrayLike) -> NDArray[np.float64]:
        return np.interp(np.asarray(t, dtype=np.float64), self.x, self.values, left=0.0, right=1.0)


def cdf_from_density(x_grid: ArrayLike, density: ArrayLike) -> GridCDF:
    """Cumulative trapezoid integral of a density on an increasing grid, normalised to end at 1.

    Use it for densities without a closed-form CDF (e.g.
    :func:`rmtbench.theory.equivalent.gram_spectral_density`) together with :func:`ks_distance`.

    Examples
    --------
    >>> F = cdf_from_density([0.0, 1.0, 2.0], [1.0, 1.0, 1.0])
    >>> F([-1.0, 0.5, 1.0, 3.0]).tolist()
    [0.0, 0.25, 0.5, 1.0]
    """
    x = np.asarray(x_grid, dtype=np.float64).ravel()
    f = np.asarray(density, dtype=np.float64).ravel()
    if x.shape != f.shape or x.size < 2:
        raise ValueError("x_grid and density must be 1-D of the same length >= 2")
    if not np.all(np.diff(x) > 0):
        raise ValueError("x_grid must be strictly increasing")
    if not np.all(np.isfinite(f)) or np.any(f < 0):
        raise ValueError("density must be finite and >= 0")
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(x))])
    if cum[-1] <= 0:
        raise ValueError("density integrates to 0 on the grid")
    return GridCDF(x=x, values=cum / cum[-1])


@dataclass(frozen=True)
class PowerLawFit:
    """y ≈ prefactor · x^exponent, fitted by least squares on (log x, log y).

    ``exponent_stderr`` is the OLS standard error of the slope (NaN with only two points).
    """

    exponent: float
    prefactor: float
    exponent_stderr: float

    def __call__(self, x: ArrayLike) -> NDArray[np.float64]:
        return self.prefactor * np.asarray(x, dtype=np.float64) ** self.exponent


def fit_power_law(x: ArrayLike, y: ArrayLike) -> PowerLawFit:
    """Fit y = C·x^α by ordinary least squares in log–log coordinates.

    Parameters
    ----------
    x, y
        Positive finite arrays of the same length (at least 2).

    Examples
    --------
    >>> fit = fit_power_law([1, 2, 4, 8], [3.0, 1.5, 0.75, 0.375])
    >>> round(fit.exponent, 12), round(fit.prefactor, 12)
    (-1.0, 3.0)
    """
    lx = np.asarray(x, dtype=np.float64).ravel()
    ly = np.asarray(y, dtype=np.float64).ravel()
    if lx.shape != ly.shape or lx.size < 2:
        raise ValueError("x and y must have the same length >= 2")
    valid = np.isfinite(lx) & np.isfinite(ly) & (lx > 0) & (ly > 0)
    if not np.all(valid):
        raise ValueError("x and y must be finite and > 0 for a log-log fit")
    lx, ly = np.log(lx), np.log(ly)
    xm, ym = lx.mean(), ly.mean()
    sxx = float(np.sum((lx - xm) ** 2))
    if sxx == 0:
        raise ValueError("x must take at least two distinct values")
    slope = float(np.sum((lx - xm) * (ly - ym))) / sxx
    intercept = ym - slope * xm
    if lx.size > 2:
        resid = ly - (intercept + slope * lx)
        stderr = math.sqrt(float(np.sum(resid**2)) / (lx.size - 2) / sxx)
    else:
        stderr = math.nan
    return PowerLawFit(exponent=slope, prefactor=math.exp(intercept), exponent_stderr=stderr)
