"""Quadrature rules for expectations over a standard Gaussian ξ ~ N(0, 1).

Plain Gauss–Hermite converges only like O(1/degree) for kinked integrands (ReLU, |t|, steps;
formula sheet pitfall P10). :func:`gaussian_rule` therefore builds a composite Gauss–Legendre rule
on ξ ∈ [−bound, bound] whose panels break exactly at the kinks, which is exact to about 1e-15 for
piecewise-smooth integrands. :func:`gauss_hermite_normal` is kept for smooth integrands in two
dimensions, where a tensor Gauss–Hermite rule is the cheapest accurate choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DEFAULT_BOUND",
    "gauss_hermite_normal",
    "gaussian_expectation",
    "gaussian_expectations",
    "gaussian_rule",
    "hermite_table",
]

#: Truncation of the ξ axis: P(|ξ| > 12) ≈ 3.6e-33, far below double precision.
DEFAULT_BOUND = 12.0
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Panels are at most 1 wide in units of ξ/max(1, |scale|): a function of scale·ξ then varies on a
# fixed number of panels whatever the scale (capped so that huge scales stay cheap).
_MAX_SCALE_REFINEMENT = 64.0


@lru_cache(maxsize=64)
def _legendre(n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x, w = np.polynomial.legendre.leggauss(n)
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


@lru_cache(maxsize=64)
def _hermite_normal(n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    # scipy's rule equals numpy's hermegauss to 1e-14 but, unlike it, does not overflow for n > 300.
    # Imported here: importing scipy takes most of a second, and loading a config (every job does) needs none.
    from scipy import special

    x, w = special.roots_hermitenorm(n)
    w = w / math.sqrt(2.0 * math.pi)
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


def gauss_hermite_normal(n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Probabilists' Gauss–Hermite rule normalised to the standard Gaussian.

    The rule of ``numpy.polynomial.hermite_e.hermegauss`` divided by sqrt(2π), computed by
    ``scipy.special.roots_hermitenorm`` (which stays finite for large n).

    Parameters
    ----------
    n
        Number of nodes (exact for polynomials of degree ``2n − 1``).

    Returns
    -------
    nodes, weights
        Arrays of shape ``(n,)`` with ``sum(weights) == 1`` and
        ``weights @ f(nodes) ≈ E f(ξ)`` for ξ ~ N(0, 1).

    Examples
    --------
    >>> x, w = gauss_hermite_normal(8)
    >>> print(f"{w.sum():.12f} {w @ x**2:.12f} {w @ x**4:.12f}")
    1.000000000000 1.000000000000 3.000000000000
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    x, w = _hermite_normal(int(n))
    return x.copy(), w.copy()


def _breakpoints(scale: float, kinks: Sequence[float], bound: float) -> NDArray[np.float64]:
    inner = [k / scale for k in kinks if math.isfinite(k) and -bound < k / scale < bound]
    return np.unique(np.array([-bound, bound, *inner], dtype=float))


def _panels(cuts: NDArray[np.float64], h: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Lower and upper ends of the panels: each ``[cuts[i], cuts[i+1]]`` split evenly into panels of width <= h.

    The ends are those of ``np.linspace(a, b, m + 1)`` (``a + k (b - a)/m``, the last one exactly ``b``),
    computed for all intervals at once: rules with many kinks have hundreds of intervals.
    """
    a, b = cuts[:-1], cuts[1:]
    counts = np.maximum(1, np.ceil((b - a) / h - 1e-9)).astype(np.intp)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    k = (np.arange(first.size) - first).astype(float)
    a_rep, b_rep, m_rep = np.repeat(a, counts), np.repeat(b, counts), np.repeat(counts, counts)
    step = (b_rep - a_rep) / m_rep
    lo = k * step + a_rep
    hi = (k + 1.0) * step + a_rep
    last = k + 1 == m_rep
    hi[last] = b_rep[last]
    return lo, hi


def gaussian_rule(
    *,
    scale: float = 1.0,
    kinks: Sequence[float] = (),
    nodes: int = 20,
    bound: float = DEFAULT_BOUND,
    panel_width: float = 1.0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Composite Gauss–Legendre rule for E f(scale·ξ), split where f is not smooth.

    Parameters
    ----------
    scale
        Standard deviation of the argument ``t = scale·ξ``.
    kinks
        Points in ``t`` units where f or its derivatives jump; the ξ axis is split at
        ``kink/scale``.
    nodes
        Gauss–Legendre nodes per panel.
    bound
        The rule covers ξ ∈ [−bound, bound].
    panel_width
        Largest panel width in units of ``ξ/max(1, |scale|)``.

    Returns
    -------
    xi, weights
        Nodes in ξ units and weights (Gaussian density included) such that
        ``weights @ f(scale * xi) ≈ E f(scale·ξ)``. For ``scale == 0`` the rule is the single
        node 0 with weight 1.

    Examples
    --------
    >>> xi, w = gaussian_rule(scale=2.0, kinks=(0.0,))
    >>> print(f"{w @ np.maximum(2.0 * xi, 0.0):.13f}")  # E relu(2ξ) = 2/sqrt(2π)
    0.7978845608029
    """
    scale = float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale!r}")
    if int(nodes) != nodes or nodes < 1:
        raise ValueError(f"nodes must be a positive integer, got {nodes!r}")
    if not (bound > 0 and panel_width > 0):
        raise ValueError("bound and panel_width must be positive")
    if scale == 0.0:
        return np.zeros(1), np.ones(1)
    refine = min(max(1.0, abs(scale)), _MAX_SCALE_REFINEMENT)
    cuts = _breakpoints(scale, kinks, bound)
    xi, weights = _composite_rule(tuple(cuts.tolist()), panel_width / refine, int(nodes))
    return xi.copy(), weights.copy()


@lru_cache(maxsize=256)
def _composite_rule(cuts: tuple[float, ...], h: float, nodes: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    # Cached: a kernel's per-sample expectations ask for many scales, and every scale <= 1 with the
    # same kinks in xi units (e.g. relu's kink at 0) has the same rule.
    x, w = _legendre(nodes)
    lo, hi = _panels(np.asarray(cuts), h)
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    xi = (mid[:, None] + half[:, None] * x).ravel()
    weights = (half[:, None] * w).ravel() * _INV_SQRT_2PI * np.exp(-0.5 * xi * xi)
    return xi, weights


def gaussian_expectation(
    f: Callable[[NDArray[np.float64]], ArrayLike],
    *,
    scale: float = 1.0,
    kinks: Sequence[float] = (),
    nodes: int = 20,
) -> float:
    """E f(scale·ξ) for ξ ~ N(0, 1), accurate to about 1e-14 for piecewise-smooth f.

    Parameters
    ----------
    f
        Vectorised function: maps a 1-D array of arguments ``t`` to values of the same shape.
    scale
        Standard deviation of the argument.
    kinks
        Points (in ``t`` units) where f is not smooth; each is a panel boundary of the rule.
    nodes
        Gauss–Legendre nodes per panel (see :func:`gaussian_rule`).

    Returns
    -------
    float

    Examples
    --------
    >>> print(f"{gaussian_expectation(np.abs, scale=1.0, kinks=(0.0,)):.13f}")  # sqrt(2/π)
    0.7978845608029
    >>> print(f"{gaussian_expectation(lambda t: (t > 0.5) * 1.0, kinks=(0.5,)):.13f}")
    0.3085375387260
    """
    xi, w = gaussian_rule(scale=scale, kinks=kinks, nodes=nodes)
    t = scale * xi
    values = np.broadcast_to(np.asarray(f(t), dtype=float), t.shape)
    return float(w @ values)


def gaussian_expectations(
    f: Callable[[NDArray[np.float64]], ArrayLike],
    scales: ArrayLike,
    *,
    kinks: Sequence[float] = (),
    nodes: int = 20,
    chunk_bytes: int = 32 * 2**20,
) -> NDArray[np.float64]:
    """E f(s·ξ) for every scale s in ``scales`` (vectorised :func:`gaussian_expectation`).

    When every kink is at 0 (or there is none) one rule serves all scales and f is evaluated on
    blocks of a (scales × nodes) grid; otherwise each distinct scale gets its own split rule.

    Parameters
    ----------
    f
        Vectorised function of ``t``; must accept arrays of any shape.
    scales
        Standard deviations, any shape.
    kinks
        Points in ``t`` units where f is not smooth.
    nodes
        Gauss–Legendre nodes per panel.
    chunk_bytes
        Memory bound of one evaluation block.

    Returns
    -------
    ndarray
        Same shape as ``scales``.

    Examples
    --------
    >>> print(np.round(gaussian_expectations(lambda t: t**2, [0.5, 1.0, 3.0]), 12))
    [0.25 1.   9.  ]
    """
    s = np.asarray(scales, dtype=float)
    flat = s.ravel()
    out = np.empty(flat.shape)
    if flat.size == 0:
        return out.reshape(s.shape)
    if not np.all(np.isfinite(flat)):
        raise ValueError("scales must be finite")
    if all(k == 0.0 for k in kinks):
        # Kinks at 0 stay at 0 for every scale: one rule, refined for the largest scale.
        xi, w = gaussian_rule(scale=float(np.max(np.abs(flat))) or 1.0, kinks=tuple(kinks), nodes=nodes)
        rows = max(1, chunk_bytes // (8 * xi.size))
        for i0 in range(0, flat.size, rows):
            t = flat[i0 : i0 + rows, None] * xi
            out[i0 : i0 + rows] = np.broadcast_to(np.asarray(f(t), dtype=float), t.shape) @ w
        return out.reshape(s.shape)
    uniq, inverse = np.unique(flat, return_inverse=True)
    vals = np.array([gaussian_expectation(f, scale=u, kinks=kinks, nodes=nodes) for u in uniq])
    return vals[inverse].reshape(s.shape)


def hermite_table(x: ArrayLike, order: int, *, normalized: bool = True) -> NDArray[np.float64]:
    """Probabilists' Hermite polynomials He_0..He_order evaluated at ``x``.

    Parameters
    ----------
    x
        Points, any shape.
    order
        Highest degree.
    normalized
        If true, divide He_k by sqrt(k!) so the family is orthonormal under N(0, 1) (the formula
        sheet's convention, section 1); the stable three-term recurrence
        ``h_{k+1} = (x h_k − sqrt(k) h_{k−1}) / sqrt(k+1)`` is used.

    Returns
    -------
    ndarray
        Shape ``(order + 1, *x.shape)``.

    Examples
    --------
    >>> hermite_table(2.0, 3, normalized=False)
    array([1., 2., 3., 2.])
    """
    if int(order) != order or order < 0:
        raise ValueError(f"order must be a non-negative integer, got {order!r}")
    x = np.asarray(x, dtype=float)
    out = np.empty((int(order) + 1, *x.shape))
    out[0] = 1.0
    if order >= 1:
        out[1] = x
    for k in range(1, int(order)):
        if normalized:
            out[k + 1] = (x * out[k] - math.sqrt(k) * out[k - 1]) / math.sqrt(k + 1)
        else:
            out[k + 1] = x * out[k] - k * out[k - 1]
    return out
