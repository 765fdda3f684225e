"""Expected random-features kernels K = E_w[φ(A^T w) φ(w^T B)] for Gaussian w (LLC18's Φ).

For w ~ N(0, I_p), the pair (u, v) = (w^T a, w^T b) is centred Gaussian with variances ‖a‖², ‖b‖²
and covariance a^T b, so every kernel is a function of (var_a, var_b, cov). Evaluation paths
(``method``); ``"auto"`` takes the closed form when there is one and ``"mehler"`` otherwise:

``"closed"``
    The activation's closed form (formula sheet section 2, kernel table), fully vectorised.
``"mehler"``
    Pairs with |ρ| ≤ 0.7 use the generalised Mehler series Σ_k a_k(φ_{σ_a}) a_k(φ_{σ_b}) ρ^k, with
    per-sample Hermite coefficients (in closed form for piecewise-linear φ, else by 1-D quadrature
    split at the kinks), truncated where |ρ|^{K+1} < 1e-16 (Cauchy–Schwarz bounds the tail by
    |ρ|^{K+1} sqrt(ν_a ν_b), smooth φ or not).
    The remaining, strongly correlated pairs use ``"piecewise"`` for piecewise-linear φ and
    ``"hermite"`` otherwise. In high dimension almost all pairs are nearly orthogonal, so this is
    far cheaper than a 2-D rule on every pair.
``"piecewise"``
    For piecewise-linear φ (relu, binary, ternary, clip, ...): write v = σ_b(ρξ₁ + sqrt(1−ρ²)ξ₂);
    the inner expectation over ξ₂ is exact (Gaussian CDF and density) and the outer one over ξ₁ is
    a composite Gauss–Legendre rule split at the kinks of both factors and graded towards the kink
    of the inner factor, which sharpens as |ρ| → 1. About 1e-11 (jumps) to 1e-13 absolute.
``"hermite"``
    Tensor Gauss–Hermite rule with ``nodes²`` points in (ξ₁, ξ₂). For smooth φ and norms near 1,
    48² nodes reach about 5e-7 (pitfall P22; erf at unit variances: 1e-11). A fixed rule loses
    accuracy like σ² grows (erf, 48 nodes: 4e-7 at σ = 1.5, 4e-5 at σ = 2, 2e-3 at σ = 3), so a pair
    with larger variance σ² > 1 gets about ``nodes·σ²`` nodes per dimension (capped at 512).
    Kinked φ converge only like O(1/nodes) on this path (pitfall P10; ReLU: about 1e-2). For odd or
    even φ the integrand is invariant under (ξ₁, ξ₂) → (−ξ₁, −ξ₂), so only the positive ξ₁ nodes
    are evaluated.

:func:`mixed_moment` gives E[f(u)g(v)] for two different functions (the fourth moments of the
finite-width terms of deep kernels): the Mehler series for |ρ| ≤ 0.7; above it, for kinked f and g, a
composite Gauss–Legendre rule in (ξ₁, ξ₂) split at the kinks of f in ξ₁ and, for every ξ₁ node, at those
of g in ξ₂ (to 1e-14 of σ_aσ_b up to |ρ| = 0.9, 1e-12 at 0.95, 1e-9 at 0.98-0.99, where E[g | ξ₁] sharpens to
a width sqrt(1 − ρ²) at the kink), and for smooth ones a tensor Gauss–Hermite rule of fixed size (not scaled
with the variance). At the switch at 0.7 both paths are accurate to near round-off, so it leaves no step that a
finite difference across it would pick up.

On the quadrature paths a symmetric kernel is computed on its upper triangle only, and its diagonal
is the exact 1-D value E φ(‖a_i‖ξ)², identical to :func:`expected_kernel_diag`. Pairs are processed
in blocks whose temporaries stay near 32 MiB each.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from rmtbench.activations import Activation, Piece, get_activation, piecewise_function
from rmtbench.quadrature import DEFAULT_BOUND, gauss_hermite_normal, gaussian_expectations, gaussian_rule, hermite_table

__all__ = [
    "MEHLER_MAX_CORRELATION",
    "derivative_kernel_from_covariance",
    "expected_derivative_kernel",
    "expected_kernel",
    "expected_kernel_diag",
    "kernel_from_covariance",
    "mixed_moment",
]

Array = NDArray[np.float64]
Method = Literal["auto", "closed", "piecewise", "mehler", "hermite"]
ActivationSpec = str | Mapping[str, Any] | Activation
Pointwise = Callable[[Array], Array]

_METHODS = ("auto", "closed", "piecewise", "mehler", "hermite")
_BLOCK_BYTES = 32 * 2**20
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
#: Pairs with |corr| above this go from the Mehler series to the tensor Gauss–Hermite rule.
MEHLER_MAX_CORRELATION = 0.7
_MEHLER_TOL = 1e-16
_MAX_HERMITE_NODES = 512
_HERMITE_WEIGHT_FLOOR = 1e-22
# Outer rule of the piecewise path: fixed width-2 panels on [−L, L], the kinks of both factors, and
# points at ±{1, 4, 16} transition widths around each kink of the inner factor.
_PW_GRID = np.linspace(-DEFAULT_BOUND, DEFAULT_BOUND, 13)
_PW_GRADING = np.array([-16.0, -4.0, -1.0, 1.0, 4.0, 16.0])
_PW_NODES = 12


# ------------------------------------------------------------------------------------------------
# Input handling and the pair engine.


def _prepare(var_a: ArrayLike, var_b: ArrayLike, cov: ArrayLike) -> tuple[Array, Array, Array]:
    va = np.clip(np.atleast_1d(np.asarray(var_a, dtype=float)), 0.0, None)
    vb = np.clip(np.atleast_1d(np.asarray(var_b, dtype=float)), 0.0, None)
    c = np.asarray(cov, dtype=float)
    if va.ndim != 1 or vb.ndim != 1 or c.shape != (va.size, vb.size):
        raise ValueError(f"expected var_a (na,), var_b (nb,), cov (na, nb); got {va.shape}, {vb.shape}, {c.shape}")
    if not (np.all(np.isfinite(va)) and np.all(np.isfinite(vb)) and np.all(np.isfinite(c))):
        raise ValueError("variances and covariances must be finite")
    return va, vb, c


def _correlation(sa: Array, sb: Array, c: Array) -> Array:
    s = sa[:, None] * sb[None, :]
    rho = np.divide(c, s, out=np.zeros_like(c), where=s > 0)
    return np.clip(rho, -1.0, 1.0)


def _pairs(shape: tuple[int, int], symmetric: bool, mask: Array | None) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    if mask is None:
        if symmetric:
            return np.triu_indices(shape[0])
        ii, jj = np.indices(shape)
        return ii.ravel(), jj.ravel()
    return np.nonzero(np.triu(mask) if symmetric else mask)


def _over_pairs(evaluate: Callable[[Array, Array, Array], Array], bytes_per_pair: int, sa: Array, sb: Array,
                rho: Array, ii: NDArray[np.intp], jj: NDArray[np.intp]) -> Array:
    """Values of ``evaluate(σ_a, σ_b, ρ)`` on the listed pairs, in memory-bounded blocks."""
    out = np.empty(ii.size)
    block = max(1, _BLOCK_BYTES // max(1, bytes_per_pair))
    for k0 in range(0, ii.size, block):
        i, j = ii[k0 : k0 + block], jj[k0 : k0 + block]
        out[k0 : k0 + block] = evaluate(sa[i], sb[j], rho[i, j])
    return out


# ------------------------------------------------------------------------------------------------
# Tensor Gauss–Hermite.


def _hermite_evaluator(phi: Pointwise, symmetric_integrand: bool, nodes: int) -> tuple[Callable[..., Array], int]:
    x, w = gauss_hermite_normal(nodes)
    # Large rules reach |ξ| ≈ sqrt(4 nodes) where the weights are far below rounding: dropping
    # those nodes keeps about 6.5 sqrt(nodes) of them, so a rule scaled by σ² costs σ², not σ⁴.
    useful = w > _HERMITE_WEIGHT_FLOOR
    x, w = x[useful], w[useful]
    if symmetric_integrand and nodes % 2 == 0:
        keep = x > 0
        x1, w1 = x[keep], 2.0 * w[keep]
    else:
        x1, w1 = x, w

    def evaluate(sa: Array, sb: Array, rho: Array) -> Array:
        r = np.sqrt(np.clip((1.0 - rho) * (1.0 + rho), 0.0, None))
        outer = np.asarray(phi(np.multiply.outer(sa, x1)), dtype=float) * w1  # (P, m1)
        # v = σ_b ρ ξ₁ + σ_b sqrt(1 − ρ²) ξ₂ on the (P, m1, m) grid.
        t = np.multiply.outer(sb * rho, x1)[..., None] + np.multiply.outer(sb * r, x)[:, None, :]
        inner = np.asarray(phi(t), dtype=float) @ w  # (P, m1)
        return np.einsum("pk,pk->p", inner, outer)

    return evaluate, 2 * 8 * x1.size * x.size


# ------------------------------------------------------------------------------------------------
# Piecewise-linear φ.


def _gaussian_smoothed(pieces: tuple[Piece, ...], m: Array, s: Array) -> Array:
    """E g(m + sZ), Z ~ N(0,1), for piecewise-linear g, exactly (s may be 0)."""
    icpt = [p[2] for p in pieces]
    slope = [p[3] for p in pieces]
    s_safe = np.maximum(s, 1e-300)
    h = icpt[-1] + slope[-1] * m
    for j, piece in enumerate(pieces[:-1]):
        z = (piece[1] - m) / s_safe
        d_icpt, d_slope = icpt[j + 1] - icpt[j], slope[j + 1] - slope[j]
        # Summation by parts over the pieces: each boundary contributes its jumps in value and slope.
        h = h - (d_icpt + d_slope * m) * special.ndtr(z)
        if d_slope != 0.0:
            with np.errstate(over="ignore"):  # z = ±huge when s = 0: the density term is then 0
                h = h + d_slope * s * (_INV_SQRT_2PI * np.exp(-0.5 * z * z))
    return h


def _piecewise_evaluator(pieces: tuple[Piece, ...]) -> tuple[Callable[..., Array], int]:
    kinks = np.array([p[1] for p in pieces[:-1]])
    phi_outer = piecewise_function(pieces)
    xg, wg = np.polynomial.legendre.leggauss(_PW_NODES)
    n_nodes = (_PW_GRID.size + kinks.size * (2 + _PW_GRADING.size) - 1) * _PW_NODES
    bound = DEFAULT_BOUND

    def evaluate(sa: Array, sb: Array, rho: Array) -> Array:
        slope = sb * rho  # inner mean m = slope·ξ₁, inner spread s
        spread = sb * np.sqrt(np.clip((1.0 - rho) * (1.0 + rho), 0.0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            outer_kinks = np.where(sa[:, None] > 0, kinks / sa[:, None], bound)
            inner_kinks = np.where(slope[:, None] != 0, kinks / slope[:, None], bound)
            width = np.where(slope != 0, spread / np.abs(slope), 0.0)
        graded = (inner_kinks[:, :, None] + width[:, None, None] * _PW_GRADING).reshape(sa.size, -1)
        grid = np.broadcast_to(_PW_GRID, (sa.size, _PW_GRID.size))
        points = np.concatenate([grid, outer_kinks, inner_kinks, graded], axis=1)
        points = np.sort(np.clip(points, -bound, bound), axis=1)
        mid = 0.5 * (points[:, 1:] + points[:, :-1])
        half = 0.5 * (points[:, 1:] - points[:, :-1])
        xi = (mid[..., None] + half[..., None] * xg).reshape(sa.size, -1)
        wt = (half[..., None] * wg).reshape(sa.size, -1) * (_INV_SQRT_2PI * np.exp(-0.5 * xi * xi))
        f_outer = phi_outer(sa[:, None] * xi)
        h_inner = _gaussian_smoothed(pieces, slope[:, None] * xi, spread[:, None])
        return np.einsum("pn,pn,pn->p", wt, f_outer, h_inner)

    return evaluate, 6 * 8 * n_nodes


def _value_at_zero(phi: Pointwise) -> float:
    """φ(0): the value at a zero input (σ = 0), where a kink may sit."""
    return float(np.asarray(phi(np.zeros(1)), dtype=float)[0])


def _derivative_pieces(act: Activation) -> tuple[Piece, ...] | None:
    if act.piecewise is None or act.has_jumps:
        return None
    return tuple((lo, hi, slope, 0.0) for lo, hi, _, slope in act.piecewise)


# ------------------------------------------------------------------------------------------------
# Mehler series.


def _hermite_coefficient_rows(phi: Pointwise, kinks: tuple[float, ...], scales: Array, order: int) -> Array:
    """a_k(φ_σ), k = 0..order, for every σ in ``scales``: shape (len(scales), order + 1)."""
    bound = max(DEFAULT_BOUND, 2.0 * math.sqrt(order + 1) + 8.0)  # He_k lives up to |ξ| ≈ 2 sqrt(k)
    panel = min(1.0, 5.0 / math.sqrt(order + 1))
    uniq, inverse = np.unique(scales, return_inverse=True)
    rows = np.empty((uniq.size, order + 1))
    if all(k == 0.0 for k in kinks):
        xi, w = gaussian_rule(scale=float(np.max(uniq)) or 1.0, kinks=kinks, bound=bound, panel_width=panel)
        he = hermite_table(xi, order) * w  # (order + 1, N)
        chunk = max(1, _BLOCK_BYTES // (8 * xi.size))
        for i0 in range(0, uniq.size, chunk):
            rows[i0 : i0 + chunk] = np.asarray(phi(np.multiply.outer(uniq[i0 : i0 + chunk], xi)), dtype=float) @ he.T
    else:
        for i, s in enumerate(uniq):
            if s > 0:  # rows of σ = 0 are meaningless: the caller sets them
                xi, w = gaussian_rule(scale=float(s), kinks=kinks, bound=bound, panel_width=panel)
                rows[i] = hermite_table(xi, order) @ (w * np.asarray(phi(s * xi), dtype=float))
    return rows[inverse]


def _piecewise_hermite_rows(pieces: tuple[Piece, ...], scales: Array, order: int) -> Array:
    """a_k(φ_σ), k = 0..order, exactly for piecewise-linear φ: shape (len(scales), order + 1).

    With h_k the normalised Hermite polynomials and P_j = h_j·pdf, ∫_lo^hi h_k pdf equals
    (P_{k−1}(lo) − P_{k−1}(hi))/sqrt(k) for k ≥ 1 and Φ(hi) − Φ(lo) for k = 0, and
    ξ h_k = sqrt(k+1) h_{k+1} + sqrt(k) h_{k−1} handles the slopes. Summed by parts over the
    pieces, only the jumps of intercept and slope at each breakpoint kink/σ enter.
    """
    s = np.asarray(scales, dtype=float)
    icpt = np.array([p[2] for p in pieces])
    slope = np.array([p[3] for p in pieces])
    kinks = np.array([p[1] for p in pieces[:-1]])
    d_icpt, d_slope = np.diff(icpt), np.diff(slope)
    positive = s > 0
    z = np.divide(kinks, s[:, None], out=np.zeros((s.size, kinks.size)), where=positive[:, None])
    # P_j(z), j = 0..order + 1, by the stable normalised recurrence started at the density.
    P = np.empty((order + 2, s.size, kinks.size))
    P[0] = _INV_SQRT_2PI * np.exp(-0.5 * z * z)
    P[1] = z * P[0]
    for j in range(1, order + 1):
        P[j + 1] = (z * P[j] - math.sqrt(j) * P[j - 1]) / math.sqrt(j + 1)
    cdf = special.ndtr(z)
    # Σ_p c_p ∫_{piece p} h_k pdf for the intercepts (A) and the slopes (B), k = 0..order + 1.
    roots = np.sqrt(np.arange(1, order + 2))
    A = np.empty((s.size, order + 2))
    B = np.empty((s.size, order + 2))
    A[:, 0] = icpt[-1] - cdf @ d_icpt
    B[:, 0] = slope[-1] - cdf @ d_slope
    A[:, 1:] = np.einsum("jnk,k->nj", P[: order + 1], d_icpt) / roots
    B[:, 1:] = np.einsum("jnk,k->nj", P[: order + 1], d_slope) / roots
    k = np.arange(order + 1)
    rows = A[:, : order + 1] + s[:, None] * np.sqrt(k + 1) * B[:, 1 : order + 2]
    rows[:, 1:] += s[:, None] * np.sqrt(k[1:]) * B[:, :order]
    return rows  # rows of σ = 0 are meaningless: the caller sets them


def _mehler(phi: Pointwise, pieces: tuple[Piece, ...] | None, kinks: tuple[float, ...], sa: Array, sb: Array,
            rho: Array, use: Array) -> Array:
    """Σ_k a_k(φ_{σ_a}) a_k(φ_{σ_b}) ρ^k where ``use``; other entries are left as garbage."""
    order = _mehler_order(rho, use)

    def rows(scales: Array) -> Array:
        if pieces is None:
            return _hermite_rows(phi, kinks, scales, order)
        return _constant_at_zero(_piecewise_hermite_rows(pieces, scales, order), scales, phi)

    ca = rows(sa)
    cb = ca if sb is sa else rows(sb)
    return _mehler_sum(ca, cb, rho)


def _mehler_order(rho: Array, use: Array) -> int:
    """Terms of the Mehler series for the pairs ``use``: |ρ|^K < 1e-16 at their largest |ρ| (at most 200)."""
    top = float(np.max(np.abs(rho[use]), initial=0.0))
    return 0 if top == 0.0 else int(min(200, max(1, math.ceil(math.log(_MEHLER_TOL) / math.log(top)))))


def _mehler_sum(ca: Array, cb: Array, rho: Array) -> Array:
    """Σ_k ca[i, k] cb[j, k] ρ_ij^k by Horner's rule, in row blocks that keep the temporaries small."""
    order = ca.shape[1] - 1
    out = np.empty(rho.shape)
    rows_per_block = max(1, _BLOCK_BYTES // (8 * max(1, rho.shape[1])))
    for i0 in range(0, rho.shape[0], rows_per_block):
        blk = slice(i0, i0 + rows_per_block)
        acc = np.multiply.outer(ca[blk, order], cb[:, order])
        for k in range(order - 1, -1, -1):
            acc *= rho[blk]
            acc += np.multiply.outer(ca[blk, k], cb[:, k])
        out[blk] = acc
    return out


# ------------------------------------------------------------------------------------------------
# Dispatch.


def _evaluate(act: Activation, closed: Callable[..., Array] | None, pieces: tuple[Piece, ...] | None,
              pointwise: Pointwise | None, what: str, var_a: ArrayLike, var_b: ArrayLike, cov: ArrayLike,
              nodes: int, method: str, symmetric: bool | None) -> Array:
    va, vb, c = _prepare(var_a, var_b, cov)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, _METHODS))}, got {method!r}")
    if method == "auto":
        method = "closed" if closed is not None else "mehler"
    if method == "closed":
        if closed is None:
            raise ValueError(f"{act.name} has no closed-form {what}")
        return np.asarray(closed(va, vb, c), dtype=float)
    if int(nodes) != nodes or nodes < 2:
        raise ValueError(f"nodes must be an integer >= 2, got {nodes!r}")
    if method == "piecewise" and pieces is None:
        raise ValueError(f"{act.name} has no piecewise-linear description for its {what} (method='piecewise')")
    if method in ("mehler", "hermite") and pointwise is None:
        raise ValueError(f"{act.name} has no pointwise function for its {what} (method={method!r})")
    if symmetric is None:
        symmetric = va.size == vb.size and np.array_equal(va, vb) and np.array_equal(c, c.T)
    elif symmetric and c.shape[0] != c.shape[1]:
        raise ValueError("symmetric=True needs a square covariance")

    sa, sb = np.sqrt(va), np.sqrt(vb)
    if symmetric:
        sb = sa
    rho = _correlation(sa, sb, c)
    # With "mehler" the weakly correlated pairs take the series; the others (all pairs for the other
    # methods) take the exact-inner piecewise rule when φ is piecewise linear, else tensor
    # Gauss–Hermite.
    if method == "mehler":
        assert pointwise is not None
        small = np.abs(rho) <= MEHLER_MAX_CORRELATION
        out = _mehler(pointwise, pieces, act.kinks, sa, sb, rho, small)
        rest: Array | None = ~small
    else:
        out = np.empty(rho.shape)
        rest = None
    # Self-pairs (ρ = 1) get the exact 1-D value below: no 2-D rule for them.
    self_pairs = np.flatnonzero(np.diagonal(rho) >= 1.0 - 1e-12) if symmetric else np.empty(0, dtype=np.intp)
    if self_pairs.size:
        rest = np.ones(rho.shape, dtype=bool) if rest is None else rest
        rest[self_pairs, self_pairs] = False
    ii, jj = _pairs(rho.shape, symmetric, rest)
    if method == "piecewise" or (method == "mehler" and pieces is not None):
        assert pieces is not None
        values = _over_pairs(*_piecewise_evaluator(pieces), sa, sb, rho, ii, jj)
    else:
        assert pointwise is not None
        # Gauss–Hermite needs about nodes·σ² points for φ(σξ) (its error grows with σ²): scale the
        # rule by the larger variance of each pair, in steps of 8 nodes.
        scaled = nodes * np.maximum(1.0, np.maximum(va[ii], vb[jj]))
        counts = np.where(scaled > nodes, np.minimum(8 * np.ceil(scaled / 8), _MAX_HERMITE_NODES), nodes)
        counts = np.maximum(counts, nodes).astype(int)
        values = np.empty(ii.size)
        for m in np.unique(counts):
            sel = np.flatnonzero(counts == m)
            values[sel] = _over_pairs(*_hermite_evaluator(pointwise, act.parity != "none", int(m)),
                                      sa, sb, rho, ii[sel], jj[sel])
    out[ii, jj] = values
    if symmetric:
        out[jj, ii] = values
        if pointwise is None:
            assert pieces is not None
            pointwise = piecewise_function(pieces)
        f = pointwise
        # Self-pairs get the exact 1-D value, identical to expected_kernel_diag.
        if pieces is not None:
            out[self_pairs, self_pairs] = _piecewise_second_moment(
                pieces, sa[self_pairs], at_zero=_value_at_zero(f))
        else:
            out[self_pairs, self_pairs] = gaussian_expectations(
                lambda t: np.asarray(f(t), dtype=float) ** 2, sa[self_pairs], kinks=act.kinks)
    return out


def kernel_from_covariance(act: ActivationSpec, var_a: ArrayLike, var_b: ArrayLike, cov: ArrayLike, *,
                           nodes: int = 48, method: Method = "auto", symmetric: bool | None = None) -> Array:
    """E[φ(u)φ(v)] for every pair of centred Gaussians with the given (co)variances.

    Parameters
    ----------
    act
        Activation or spec accepted by :func:`rmtbench.activations.get_activation`.
    var_a, var_b
        Variances, shapes ``(na,)`` and ``(nb,)`` (squared norms ‖a_i‖², ‖b_j‖²).
    cov
        Covariances, shape ``(na, nb)`` (inner products a_i^T b_j). Correlations are clipped to
        [−1, 1].
    nodes
        Gauss–Hermite nodes per dimension of the tensor rule (``"hermite"``, and the strongly
        correlated pairs of ``"mehler"`` when φ is not piecewise linear) for variances up to 1;
        a pair whose larger variance σ² exceeds 1 gets about ``nodes·σ²`` (at most 512).
    method
        ``"auto"`` (closed form, else ``"mehler"``), or force one path; see the module docstring.
    symmetric
        Whether var_a == var_b and cov is symmetric: the quadrature paths then compute the upper
        triangle only and use exact 1-D values on the diagonal. ``None`` checks exactly.

    Returns
    -------
    ndarray
        Shape ``(na, nb)``.

    Examples
    --------
    >>> v = np.array([1.0, 2.0]); c = np.array([[1.0, 0.5], [0.5, 2.0]])
    >>> closed = kernel_from_covariance("relu", v, v, c)
    >>> np.allclose(closed, kernel_from_covariance("relu", v, v, c, method="piecewise"))
    True
    >>> print(f"{kernel_from_covariance('tanh', [1.0], [1.0], [[0.5]])[0, 0]:.10f}")
    0.1863244132
    """
    act = get_activation(act)
    return _evaluate(act, act.kernel, act.piecewise, act.phi, "kernel", var_a, var_b, cov, nodes, method, symmetric)


def derivative_kernel_from_covariance(act: ActivationSpec, var_a: ArrayLike, var_b: ArrayLike, cov: ArrayLike, *,
                                      nodes: int = 48, method: Method = "auto",
                                      symmetric: bool | None = None) -> Array:
    """E[φ'(u)φ'(v)] for every pair (the derivative kernel K' of the NTK recursion).

    Closed form when the activation has one (for activations with jumps, φ' has Dirac masses and
    the kernel is infinite where |corr| = 1); else the Mehler series on ``act.derivative``, with
    the piecewise rule (φ' piecewise constant, for continuous piecewise-linear φ) or tensor
    Gauss–Hermite for strongly correlated pairs. Parameters as in :func:`kernel_from_covariance`.

    Examples
    --------
    >>> v = np.array([1.0]); c = np.array([[0.0]])
    >>> float(derivative_kernel_from_covariance("relu", v, v, c)[0, 0])  # P(u > 0) P(v > 0)
    0.25
    """
    act = get_activation(act)
    pieces = _derivative_pieces(act)
    pointwise = act.derivative
    if pointwise is None and pieces is not None:
        pointwise = piecewise_function(pieces)
    return _evaluate(act, act.derivative_kernel, pieces, pointwise, "derivative kernel", var_a, var_b, cov, nodes,
                     method, symmetric)


def _gram_inputs(A: ArrayLike, B: ArrayLike | None) -> tuple[Array, Array, Array, bool]:
    A = np.asarray(A, dtype=float)
    if A.ndim != 2:
        raise ValueError(f"A must be p x n (columns are samples), got shape {A.shape}")
    var_a = np.einsum("ij,ij->j", A, A)
    if B is None:
        cov = A.T @ A
        cov = 0.5 * (cov + cov.T)
        # Self-pairs get correlation exactly 1: kernels of φ with jumps move by about 1e-8 when ρ
        # is off by one rounding (K(ρ) ≈ K(1) − O(sqrt(1 − ρ))).
        np.fill_diagonal(cov, var_a)
        return var_a, var_a, cov, True
    B = np.asarray(B, dtype=float)
    if B.ndim != 2 or B.shape[0] != A.shape[0]:
        raise ValueError(f"B must be p x m with the same p as A {A.shape}, got {B.shape}")
    return var_a, np.einsum("ij,ij->j", B, B), A.T @ B, False


def expected_kernel(act: ActivationSpec, A: ArrayLike, B: ArrayLike | None = None, *, nodes: int = 48,
                    method: Method = "auto") -> Array:
    """K = E_w[φ(A^T w) φ(w^T B)] for w ~ N(0, I_p) (unit-variance entries, no 1/sqrt(p)).

    Parameters
    ----------
    act
        Activation or spec.
    A
        Data, ``p × na`` (columns are samples).
    B
        Second data set, ``p × nb``; ``A`` when omitted (K is then exactly symmetric).
    nodes, method
        As in :func:`kernel_from_covariance`.

    Returns
    -------
    ndarray
        Shape ``(na, nb)``.

    Examples
    --------
    >>> print(np.round(expected_kernel("sign", np.eye(3)), 12) + 0.0)  # orthogonal inputs: independent signs
    [[1. 0. 0.]
     [0. 1. 0.]
     [0. 0. 1.]]
    """
    var_a, var_b, cov, symmetric = _gram_inputs(A, B)
    return kernel_from_covariance(act, var_a, var_b, cov, nodes=nodes, method=method, symmetric=symmetric)


def expected_derivative_kernel(act: ActivationSpec, A: ArrayLike, B: ArrayLike | None = None, *, nodes: int = 48,
                               method: Method = "auto") -> Array:
    """K' = E_w[φ'(A^T w) φ'(w^T B)] for w ~ N(0, I_p); see :func:`derivative_kernel_from_covariance`.

    Examples
    --------
    >>> print(f"{expected_derivative_kernel('erf', np.zeros((2, 1)))[0, 0]:.12f}")  # (2/sqrt(π))²
    1.273239544735
    """
    var_a, var_b, cov, symmetric = _gram_inputs(A, B)
    return derivative_kernel_from_covariance(act, var_a, var_b, cov, nodes=nodes, method=method, symmetric=symmetric)


def expected_kernel_diag(act: ActivationSpec, A: ArrayLike) -> Array:
    """diag K = E φ(‖a_i‖ξ)² per column of A: in closed form for piecewise-linear φ, else by 1-D
    quadrature split at the kinks (about 1e-14).

    Examples
    --------
    >>> print(expected_kernel_diag("relu", np.array([[1.0, 2.0], [0.0, 0.0]])))  # ‖a‖²/2
    [0.5 2. ]
    """
    act = get_activation(act)
    A = np.asarray(A, dtype=float)
    if A.ndim != 2:
        raise ValueError(f"A must be p x n (columns are samples), got shape {A.shape}")
    scales = np.sqrt(np.einsum("ij,ij->j", A, A))
    if act.piecewise is not None:
        return _piecewise_second_moment(act.piecewise, scales, at_zero=_value_at_zero(act.phi))
    phi = act.phi
    return gaussian_expectations(lambda t: np.asarray(phi(t), dtype=float) ** 2, scales, kinks=act.kinks)


_NARROW_PIECE = 2.0
"""Pieces at most this wide in ξ units get their truncated moments by Gauss–Legendre (see below)."""
_NARROW_RULE = np.polynomial.legendre.leggauss(16)


def _piecewise_second_moment(pieces: tuple[Piece, ...], s: Array, *, at_zero: float) -> Array:
    """E φ(sξ)² for piecewise-linear φ, exactly: Σ over pieces of E[(c + m s ξ)² 1{lo < sξ < hi}].

    With α = lo/s, β = hi/s and f the standard normal density, a piece gives c² J0 + 2cms J1 + m²s² J2,
    J_k = ∫_α^β ξ^k f(ξ) dξ: J0 = Φ(β) − Φ(α), J1 = f(α) − f(β), J2 = J0 + αf(α) − βf(β). On a narrow
    piece these differences cancel (J2 is O(w³) from O(w) terms, w = β − α, and m²s² is large exactly
    when w is small), so pieces at most :data:`_NARROW_PIECE` wide take a 16-node Gauss–Legendre
    rule instead (exact to rounding for these smooth integrands). Where s = 0 the value is
    ``at_zero``², φ(0) given by the caller (a kink may sit at 0).
    """
    s = np.asarray(s, dtype=float)
    s_safe = np.maximum(s, 1e-300)
    total = np.zeros(s.shape)

    def xf(x: Array) -> Array:
        with np.errstate(invalid="ignore", over="ignore"):
            return np.where(np.isfinite(x), x * _INV_SQRT_2PI * np.exp(-0.5 * x * x), 0.0)

    nodes, weights = _NARROW_RULE
    for lo, hi, c, m in pieces:
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            a, b = lo / s_safe, hi / s_safe
            # the tail on the side of the interval, so that J0 keeps its digits far from 0
            J0 = np.where(a > 0, special.ndtr(-a) - special.ndtr(-b), special.ndtr(b) - special.ndtr(a))
            fa, fb = _INV_SQRT_2PI * np.exp(-0.5 * a * a), _INV_SQRT_2PI * np.exp(-0.5 * b * b)
            J1 = fa - fb
            J2 = J0 + xf(a) - xf(b)
            narrow = np.isfinite(a) & np.isfinite(b) & (b - a <= _NARROW_PIECE)
        if np.any(narrow):
            mid, half = 0.5 * (a[narrow] + b[narrow]), 0.5 * (b[narrow] - a[narrow])
            xi = mid[:, None] + half[:, None] * nodes
            fw = half[:, None] * weights * _INV_SQRT_2PI * np.exp(-0.5 * xi * xi)
            J0[narrow], J1[narrow], J2[narrow] = fw.sum(axis=1), (fw * xi).sum(axis=1), (fw * xi * xi).sum(axis=1)
        ms = m * s
        total += c * c * J0 + 2.0 * c * ms * J1 + ms * ms * J2
    total[s == 0] = at_zero * at_zero
    return total


# ------------------------------------------------------------------------------------------------
# Mixed moments E f(u) g(v) (two different functions; the finite-width terms of deep kernels).


def _hermite_rows(f: Pointwise, kinks: tuple[float, ...], scales: Array, order: int) -> Array:
    """a_k(f_σ), k = 0..order, with the rows of σ = 0 set to the constant f(0)."""
    return _constant_at_zero(_hermite_coefficient_rows(f, kinks, scales, order), scales, f)


def _constant_at_zero(rows: Array, scales: Array, f: Pointwise) -> Array:
    """Hermite rows with those of σ = 0 (a zero input) set to the constant f(0), in place."""
    zero = scales == 0
    rows[zero] = 0.0
    rows[zero, 0] = _value_at_zero(f)
    return rows


_SPLIT_BOUND = 9.0
"""The split rule of :func:`mixed_moment` covers ξ ∈ [−9, 9] (the Gaussian tail beyond is 2e-19)."""
_SPLIT_PANELS, _SPLIT_PANEL_NODES = 3, 16
"""Each piece between kinks has this many equal panels of Gauss–Legendre nodes."""


def _split_normal_rule(cuts: Array) -> tuple[Array, Array]:
    """Composite Gauss–Legendre rule for E h(ξ), ξ ~ N(0, 1), on [−9, 9] split at ``cuts`` (..., K), sorted along
    the last axis (clipped to the interval; a piece may be empty): nodes and weights, density included,
    shape (..., (K + 1)·48)."""
    x, w = np.polynomial.legendre.leggauss(_SPLIT_PANEL_NODES)
    cuts = np.clip(cuts, -_SPLIT_BOUND, _SPLIT_BOUND)
    ends = np.full(cuts.shape[:-1] + (1,), _SPLIT_BOUND)
    edges = np.concatenate([-ends, cuts, ends], axis=-1)
    lo, width = edges[..., :-1, None, None], np.diff(edges, axis=-1)[..., None, None]
    fraction = (np.arange(_SPLIT_PANELS)[:, None] + (x[None, :] + 1.0) / 2.0) / _SPLIT_PANELS  # (panels, nodes)
    nodes = (lo + width * fraction).reshape(cuts.shape[:-1] + (-1,))
    weights = (width * np.broadcast_to(w / (2.0 * _SPLIT_PANELS), fraction.shape)).reshape(nodes.shape)
    return nodes, weights * np.exp(-0.5 * nodes * nodes) * _INV_SQRT_2PI


def _split_mixed_moment(f: Pointwise, g: Pointwise, kinks: tuple[float, ...], sa: Array, sb: Array, rho: Array) -> Array:
    """E f(σ_a ξ₁) g(σ_b(ρξ₁ + sqrt(1 − ρ²)ξ₂)) per entry (1-D arrays, σ > 0), by :func:`_split_normal_rule`: ξ₁ split
    at the kinks of f, ξ₂ at those of g for each ξ₁ node (where they sit depends on ξ₁)."""
    k = np.sort(np.asarray(kinks, dtype=float))
    x, wx = _split_normal_rule(k[None, :] / sa[:, None])  # (P, Nx)
    r = np.sqrt(np.clip(1.0 - rho * rho, 1e-24, None))[:, None, None]  # |ρ| = 1 would put the kinks at ±inf: clipped
    cuts = (k[None, None, :] / sb[:, None, None] - rho[:, None, None] * x[:, :, None]) / r
    y, wy = _split_normal_rule(cuts)  # (P, Nx, Ny); r > 0, so the cuts keep the order of the kinks
    v = sb[:, None, None] * (rho[:, None, None] * x[:, :, None] + r * y)
    inner = np.einsum("pxy,pxy->px", np.asarray(g(v), dtype=float), wy)
    return np.einsum("px,px->p", np.asarray(f(sa[:, None] * x), dtype=float) * wx, inner)


def mixed_moment(f: Pointwise, g: Pointwise, variances: Array, cov: Array, *, kinks: tuple[float, ...] = (),
                 nodes: int = 96, off_diagonal: bool = False, variances_b: Array | None = None) -> Array:
    """E[f(u_i) g(u_j)] for (u_i, u_j) centred Gaussian with variances ``variances`` and covariances ``cov``.

    Mehler series Σ_k a_k(f_{σ_i}) a_k(g_{σ_j}) ρ^k where |ρ| ≤ 0.7 (truncated where |ρ|^k < 1e-16),
    a tensor Gauss–Hermite rule of ``nodes²`` points elsewhere. Shape of ``cov``. Pass the same
    object as ``f`` and ``g`` to compute its Hermite coefficients once; ``off_diagonal=True`` leaves
    the pairs (i, i) as NaN instead of integrating them. ``variances_b``: other variances for u_j (the
    columns), as the stencils of a derivative in one sample's variance need; default ``variances``.
    With ``kinks`` (the points where f or g is not smooth), the pairs above 0.7 use a rule split at them
    instead of the Gauss–Hermite one (module docstring); ``nodes`` then does not matter.

    Examples
    --------
    >>> v = np.array([1.0, 1.0]); c = np.array([[1.0, 0.5], [0.5, 1.0]])
    >>> m = mixed_moment(lambda t: t**3, lambda t: t, v, c)  # E u³v = 3 ρ
    >>> bool(np.isclose(m[0, 1], 1.5))
    True
    """
    same = variances_b is None
    va, vb, cov = _prepare(variances, variances if same else variances_b, cov)
    s, sb = np.sqrt(va), np.sqrt(vb)
    rho = _correlation(s, sb, cov)
    small = np.abs(rho) <= MEHLER_MAX_CORRELATION
    order = _mehler_order(rho, small)
    ca = _hermite_rows(f, kinks, s, order)
    out = _mehler_sum(ca, ca if g is f and same else _hermite_rows(g, kinks, sb, order), rho)
    strong = ~small
    if off_diagonal:
        np.fill_diagonal(strong, False)
        np.fill_diagonal(out, np.nan)
    ii, jj = np.nonzero(strong)
    if ii.size and kinks:
        for k0 in range(0, ii.size, 64):  # (64, 96, 96) temporaries for one kink: about 5 MB each
            i, j = ii[k0 : k0 + 64], jj[k0 : k0 + 64]
            out[i, j] = _split_mixed_moment(f, g, kinks, s[i], sb[j], rho[i, j])
    elif ii.size:
        x, w = gauss_hermite_normal(nodes)
        for k0 in range(0, ii.size, 256):
            i, j = ii[k0 : k0 + 256], jj[k0 : k0 + 256]
            r = rho[i, j]
            u = np.multiply.outer(s[i], x)  # (P, m)
            v = (np.multiply.outer(sb[j] * r, x)[:, :, None]
                 + np.multiply.outer(sb[j] * np.sqrt(np.clip(1.0 - r * r, 0.0, None)), x)[:, None, :])  # (P, m, m)
            inner = np.asarray(g(v), dtype=float) @ w
            out[i, j] = np.einsum("pk,pk->p", np.asarray(f(u), dtype=float) * w, inner)
    return out
