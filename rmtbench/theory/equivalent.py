"""Deterministic equivalents for random-feature ridge regression (LLC18; formula sheet §2).

Notation: n samples, d random features, kernel K = E_w[φ(X^Tw)φ(w^TX)] (n×n) with eigenvalues λ_i,
Gram G = Φ^TΦ/n. The resolvent Q(z) = (G − zI_n)^{-1} has the deterministic equivalent

    Q̄(z) = ((d/n) K/(1 + δ(z)) − z I_n)^{-1},      δ(z) = (1/n) tr K Q̄(z),

so δ(z) = (1/n) Σ_i λ_i/((d/n)λ_i/(1+δ) − z) and m(z) = (1/n) tr Q̄(z) is the deterministic
equivalent of the Stieltjes transform (1/n) tr (G − zI)^{-1}. Ridge regression uses z = −γ.

Eigenvalue handling (everywhere in this module): negative round-off is clipped to 0, and
eigenvalues at or below ``n·eps·λ_max`` (the ``numpy.linalg.matrix_rank`` threshold) count as 0, so
that rank K, the atom of the Gram spectrum and the ridgeless limit agree with each other.
Spectral functions accept fewer than n eigenvalues: the missing ones are taken as 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.optimize
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "KernelSpectrum",
    "RidgeTheoryResult",
    "gram_atom_mass",
    "gram_spectral_density",
    "gram_stieltjes",
    "kernel_rank",
    "ridge_mse_from_spectrum",
    "ridge_mse_over_widths",
    "ridge_mse_theory",
    "ridgeless_theta",
    "ridgeless_train_mse",
    "solve_delta",
    "solve_delta_complex",
]

_EPS = float(np.finfo(np.float64).eps)
_BRENT_RTOL = 4 * _EPS  # the tightest relative tolerance brentq accepts


# --------------------------------------------------------------------------- eigenvalue hygiene


def _eigvals(kernel_eigvals: ArrayLike, n: int) -> NDArray[np.float64]:
    lam = np.asarray(kernel_eigvals, dtype=np.float64).ravel()
    if not np.all(np.isfinite(lam)):
        raise ValueError("kernel_eigvals contains non-finite values")
    if n < 1 or lam.size > n:
        raise ValueError(f"need 1 <= len(kernel_eigvals) = {lam.size} <= n = {n}")
    lam = np.clip(lam, 0.0, None)
    top = lam.max(initial=0.0)
    lam[lam <= n * _EPS * top] = 0.0
    return lam


def _check_d(d: float) -> float:
    d = float(d)
    if not (math.isfinite(d) and d > 0):
        raise ValueError(f"d must be a positive number of features, got {d}")
    return d


def kernel_rank(kernel_eigvals: ArrayLike, *, n: int) -> int:
    """Numerical rank of K: eigenvalues above ``n·eps·λ_max`` (the ``matrix_rank`` threshold).

    Examples
    --------
    >>> kernel_rank([2.0, 1.0, 1e-17, -1e-16], n=4)
    2
    """
    return int(np.count_nonzero(_eigvals(kernel_eigvals, n)))


# --------------------------------------------------------------------------- real axis: z = −γ


def solve_delta(kernel_eigvals: ArrayLike, *, d: float, n: int, gamma: float) -> float:
    """The unique non-negative root δ of δ = (1/n) Σ_i λ_i/((d/n)λ_i/(1+δ) + γ) (LLC18 Thm 1).

    Parameters
    ----------
    kernel_eigvals
        Eigenvalues of K (at most n; missing ones count as 0; negative round-off is clipped).
    d
        Number of random features.
    n
        Number of samples (the trace is normalised by n, pitfall P4).
    gamma
        Ridge γ > 0.

    Returns
    -------
    float
        δ, to rounding: Newton from the top of the bracket [(1/n)Σλ/((d/n)λ+γ), tr K/(nγ)], monotone
        because the equation's residual is convex in δ (the fixed-point iteration is slow for small γ,
        pitfall P18).

    Examples
    --------
    For K = I_n the equation is quadratic; with d = n and γ = 1, δ = (1 + δ)/(2 + δ):

    >>> round(solve_delta(np.ones(100), d=100, n=100, gamma=1.0), 12)  # (√5 − 1)/2
    0.61803398875
    """
    d = _check_d(d)
    gamma = float(gamma)
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be > 0, got {gamma}")
    return float(_solve_delta_many(_eigvals(kernel_eigvals, n), c=np.array([d / n]), gamma=np.array([gamma]), n=n)[0])


def _solve_delta_many(lam: NDArray[np.float64], *, c: NDArray[np.float64], gamma: NDArray[np.float64],
                      n: int) -> NDArray[np.float64]:
    """δ for every pair (c_k = d_k/n, γ_k) at once; ``lam`` already cleaned by :func:`_eigvals`.

    f(δ) = δ − h(δ) with h(δ) = (1/n) Σ λ w/(cλ + γw), w = 1 + δ, increasing and concave: f is
    convex with one root on [lo, hi] = [h(0), tr K/(nγ)] (f(lo) <= 0 <= f(hi)). Newton from hi
    descends monotonically onto the root in exact arithmetic. In floating point a long first step
    (hi can exceed the root by 1e18) may land below the root; each pair therefore keeps the bracket
    [a, b] with f(a) <= 0 <= f(b). From below the root Newton is used only where f is increasing
    (it then jumps back above the root), else the bracket is bisected (geometrically). A pair stops
    when a step moves it by at most 2 eps, or its bracket is that narrow. Pairs that do not settle
    in 200 steps fall back to Brent's method on their bracket.
    """
    lam = lam[lam > 0]
    if lam.size == 0:
        return np.zeros(c.shape)
    a = np.sum(lam[:, None] / (c[None, :] * lam[:, None] + gamma[None, :]), axis=0) / n
    b = np.sum(lam) / (n * gamma)
    x = b.copy()
    active = np.ones(c.shape, dtype=bool)
    for _ in range(200):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        ck, gk, xk = c[idx], gamma[idx], x[idx]
        w = 1.0 + xk
        denom = ck[None, :] * lam[:, None] + gk[None, :] * w[None, :]
        f = xk - np.sum(lam[:, None] * w[None, :] / denom, axis=0) / n
        df = 1.0 - np.sum(ck[None, :] * (lam * lam)[:, None] / (denom * denom), axis=0) / n
        above = f >= 0
        ak, bk = np.where(above, a[idx], np.maximum(a[idx], xk)), np.where(above, np.minimum(b[idx], xk), b[idx])
        a[idx], b[idx] = ak, bk
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = xk - f / df
        middle = np.sqrt(ak * bk)
        cand = np.where((above | (df > 0)) & (newton > ak) & (newton < bk), newton, middle)
        x[idx] = np.where(f == 0, xk, cand)
        active[idx] = (f != 0) & (np.abs(cand - xk) > 2 * _EPS * xk) & (bk - ak > 4 * _EPS * bk)
    for k in np.flatnonzero(active):  # not settled: Brent on the bracket
        ck, gk = float(c[k]), float(gamma[k])

        def residual(t: float) -> float:
            w = 1.0 + t
            return t - float(np.sum(lam * w / (ck * lam + gk * w))) / n

        lo, hi = float(a[k]), float(b[k])
        f_lo, f_hi = residual(lo), residual(hi)
        x[k] = lo if f_lo >= 0 else hi if f_hi <= 0 else scipy.optimize.brentq(
            residual, lo, hi, xtol=lo * _EPS, rtol=_BRENT_RTOL, maxiter=500)
    return x


# --------------------------------------------------------------------------- complex plane


@dataclass(frozen=True, eq=False)
class _Spec:
    """Distinct positive eigenvalues with multiplicities: K = I costs one term, not n."""

    values: NDArray[np.float64]
    weights: NDArray[np.float64]
    n: int
    d: float

    @classmethod
    def build(cls, kernel_eigvals: ArrayLike, d: float, n: int) -> _Spec:
        lam = _eigvals(kernel_eigvals, n)
        vals, counts = np.unique(lam[lam > 0], return_counts=True)
        return cls(values=vals, weights=counts.astype(np.float64), n=n, d=_check_d(d))

    @property
    def rank(self) -> int:
        return int(self.weights.sum())


def _residual(
    u: NDArray[np.complex128], z: NDArray[np.complex128], sp: _Spec
) -> tuple[NDArray[np.complex128], NDArray[np.complex128], NDArray[np.float64]]:
    """F(u) = 1 − u − u·(1/n)Σλ/t, t_i = (d/n)λ_i u − z, with u = 1/(1+δ); its derivative and scale.

    Working with u rather than δ keeps the unknown bounded near z = 0, where δ blows up when d < n.
    """
    inv = 1.0 / ((sp.d / sp.n) * sp.values[:, None] * u[None, :] - z[None, :])  # one complex division per entry
    wl = sp.weights * sp.values / sp.n
    s1 = wl @ inv
    s2 = wl @ (inv * inv)
    F = 1.0 - u - u * s1
    dF = -1.0 + z * s2
    scale = np.maximum(1.0, np.maximum(np.abs(u), np.abs(u * s1)))
    return F, dF, scale


def _newton(
    u0: NDArray[np.complex128], z: NDArray[np.complex128], sp: _Spec, *, maxiter: int = 60
) -> tuple[NDArray[np.complex128], NDArray[np.bool_]]:
    """Damped (backtracking) Newton on F(u) = 0; returns the iterate and a success mask."""
    u = u0.astype(np.complex128, copy=True)
    F, dF, scale = _residual(u, z, sp)
    done = np.abs(F) <= 8 * _EPS * scale
    for _ in range(maxiter):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        ua, za, Fa = u[act], z[act], F[act]
        step = Fa / dF[act]
        alpha = np.ones(act.size)
        pending = np.arange(act.size)
        Fn = np.empty_like(Fa)
        dFn = np.empty_like(Fa)
        sn = np.empty(act.size)
        # Halve the step where |F| does not decrease; the full Newton step is accepted near a root.
        for _ in range(40):
            cand = ua[pending] - alpha[pending] * step[pending]
            Fc, dFc, sc = _residual(cand, za[pending], sp)
            good = (np.abs(Fc) < np.abs(Fa[pending])) | (np.abs(Fc) <= 8 * _EPS * sc)
            Fn[pending[good]], dFn[pending[good]], sn[pending[good]] = Fc[good], dFc[good], sc[good]
            pending = pending[~good]
            if pending.size == 0:
                break
            alpha[pending] *= 0.5
        if pending.size:  # no decrease found: keep the last candidate, convergence test decides
            cand = ua[pending] - alpha[pending] * step[pending]
            Fn[pending], dFn[pending], sn[pending] = _residual(cand, za[pending], sp)
        unew = ua - alpha * step
        moved = np.abs(alpha * step)
        u[act], F[act], dF[act] = unew, Fn, dFn
        done[act] = (np.abs(Fn) <= 8 * _EPS * sn) | (
            (moved <= 1e-13 * np.abs(unew)) & (np.abs(Fn) <= 1e-10 * sn)
        )
    # The Stieltjes branch has Im δ >= 0, i.e. Im u <= 0 in the upper half plane.
    branch_ok = u.imag <= 1e-10 * np.abs(u)
    resid_ok = np.abs(F) <= 1e-9 * np.maximum(1.0, np.abs(u))
    return u, done & branch_ok & resid_ok & np.isfinite(u)


def _advance(
    u: NDArray[np.complex128],
    z_from: NDArray[np.complex128],
    z_to: NDArray[np.complex128],
    sp: _Spec,
    depth: int = 0,
) -> NDArray[np.complex128]:
    """Move the solution from z_from to z_to, bisecting the path where Newton fails."""
    unew, ok = _newton(u, z_to, sp)
    if ok.all():
        return unew
    if depth >= 40:
        bad = z_to[~ok]
        raise RuntimeError(f"deterministic-equivalent solver did not converge at z = {bad[:5]}")
    bad = np.flatnonzero(~ok)
    zf, zt = z_from[bad], z_to[bad]
    im_mid = np.where(
        (zf.imag > 0) & (zt.imag > 0), np.sqrt(np.abs(zf.imag * zt.imag)), 0.5 * (zf.imag + zt.imag)
    )
    z_mid = 0.5 * (zf.real + zt.real) + 1j * im_mid
    u_mid = _advance(u[bad], zf, z_mid, sp, depth + 1)
    unew[bad] = _advance(u_mid, z_mid, zt, sp, depth + 1)
    return unew


WARM_START_MIN = 48
"""Same-height batches of at least this many points are solved from anchors (see :func:`_solve_u_upper`)."""
WARM_ANCHORS = 12
"""Anchors of such a batch. Continuation costs per point, and Newton from the interpolated anchors
converges on the density grids of every kernel tried (the rare misses fall back to continuation), so
more anchors only cost time: with up to 48 the laptop sweep's rf_ridge theory took 15% more CPU, for the
same densities to 1e-10 of their maximum."""


def _solve_u_upper(z: NDArray[np.complex128], sp: _Spec) -> NDArray[np.complex128]:
    """u(z) for Im z >= 0 (Im z = 0 only with Re z < 0).

    A large batch at one height Im z > 0 (a density grid) is solved by continuation at
    :data:`WARM_ANCHORS` evenly spaced anchors only; every other point starts Newton from the anchors' u
    interpolated along Re z, and falls back to continuation where that start does not converge to
    the Stieltjes branch. The branch is unique, so both paths give the same root (to rounding).
    """
    if sp.values.size == 0:
        return np.ones_like(z)
    if z.size >= WARM_START_MIN and z.imag[0] > 0 and np.all(z.imag == z.imag[0]):
        order = np.argsort(z.real, kind="stable")
        anchors = np.unique(order[np.linspace(0, z.size - 1, WARM_ANCHORS).round().astype(int)])
        u_anchor = _solve_u_continued(z[anchors], sp)
        x_anchor = z.real[anchors]
        start = np.interp(z.real, x_anchor, u_anchor.real) + 1j * np.interp(z.real, x_anchor, u_anchor.imag)
        u, ok = _newton(start, z, sp)
        u[anchors], ok[anchors] = u_anchor, True
        if not ok.all():
            u[~ok] = _solve_u_continued(z[~ok], sp)
        return u
    return _solve_u_continued(z, sp)


def _solve_u_continued(z: NDArray[np.complex128], sp: _Spec) -> NDArray[np.complex128]:
    """u(z) for Im z >= 0 (Im z = 0 only with Re z < 0), by continuation from large Im z down."""
    if sp.values.size == 0:
        return np.ones_like(z)
    c = sp.d / sp.n
    edge = c * sp.values.max() * (1.0 + math.sqrt(sp.n / sp.d)) ** 2  # beyond the Gram spectrum
    top = 10.0 * (edge + np.abs(z.real).max() + np.abs(z.imag).max())
    # Real negative targets: descend to a small height first, then step onto the axis.
    floor = np.where(z.imag > 0, z.imag, 1e-3 * np.abs(z.real))
    z0 = z.real + 1j * top
    delta0 = -np.sum(sp.weights * sp.values) / sp.n / z0  # large-|z| expansion
    u, ok = _newton(1.0 / (1.0 + delta0), z0, sp)
    if not ok.all():
        raise RuntimeError("deterministic-equivalent solver failed far from the spectrum")
    levels = max(1, math.ceil(math.log(top / floor.min()) / math.log(16.0)))
    z_prev = z0
    for k in range(1, levels + 1):
        z_next = z.real + 1j * top * (floor / top) ** (k / levels)
        u = _advance(u, z_prev, z_next, sp)
        z_prev = z_next
    on_axis = z.imag == 0
    if on_axis.any():
        u[on_axis] = _advance(u[on_axis], z_prev[on_axis], z[on_axis], sp)
    return u


def _solve_u(z: ArrayLike, sp: _Spec) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
    """u = 1/(1+δ) on an array of z (any shape) off [0, ∞); returns (u, z) flattened."""
    zz = np.asarray(z, dtype=np.complex128).ravel()
    if not np.all(np.isfinite(zz)):
        raise ValueError("z must be finite")
    on_support = (zz.imag == 0) & (zz.real >= 0)
    if on_support.any():
        raise ValueError(
            f"z = {zz[on_support][:3]} lies on [0, inf) where the Stieltjes transform is not "
            "defined; add a positive imaginary part"
        )
    from rmtbench.parallel import single_blas_thread

    lower = zz.imag < 0
    zu = np.where(lower, zz.conj(), zz)  # δ(z̄) = conj δ(z)
    u = np.empty_like(zu)
    block = max(1, int(2_000_000 // max(1, sp.values.size)))  # bounds the (k, m) temporaries
    # One BLAS thread: a threaded matrix-vector product sums in another order, and Newton's last
    # iterate (hence the stored bits) would depend on the caller's thread count.
    with single_blas_thread():
        for s in range(0, zu.size, block):
            u[s : s + block] = _solve_u_upper(zu[s : s + block], sp)
    return np.where(lower, u.conj(), u), zz


def _reshape(values: NDArray, z: ArrayLike) -> complex | NDArray[np.complex128]:
    shape = np.shape(z)
    return complex(values[0]) if shape == () else values.reshape(shape)


def solve_delta_complex(
    kernel_eigvals: ArrayLike, *, d: float, n: int, z: complex | ArrayLike
) -> complex | NDArray[np.complex128]:
    """δ(z) = (1/n) Σ_i λ_i/((d/n)λ_i/(1+δ) − z) on the Stieltjes branch, for z off [0, ∞).

    Parameters
    ----------
    kernel_eigvals
        Eigenvalues of K (at most n; missing ones count as 0).
    d, n
        Number of features and of samples.
    z
        Scalar or array of complex points not on [0, ∞). Im z < 0 uses δ(z̄) = conj δ(z).

    Returns
    -------
    complex or ndarray
        δ(z), with Im δ > 0 for Im z > 0; same shape as ``z``. At z = −γ it equals
        :func:`solve_delta`.

    Notes
    -----
    Solved for u = 1/(1+δ) (bounded even where δ blows up near z = 0) by damped Newton, continued
    from Im z ≈ 10× the spectral edge down to the target in geometric steps; steps where Newton
    fails or lands on the wrong branch (Im δ < 0) are bisected. All points are solved at once.

    Examples
    --------
    >>> z = -0.5 + 1e-12j
    >>> dz = solve_delta_complex(np.linspace(0.5, 2, 50), d=100, n=50, z=z)
    >>> abs(dz - solve_delta(np.linspace(0.5, 2, 50), d=100, n=50, gamma=0.5)) < 1e-10
    True
    """
    sp = _Spec.build(kernel_eigvals, d, n)
    u, _ = _solve_u(z, sp)
    return _reshape(1.0 / u - 1.0, z)


def gram_stieltjes(
    kernel_eigvals: ArrayLike, *, d: float, n: int, z: complex | ArrayLike
) -> complex | NDArray[np.complex128]:
    """m(z) = (1/n) tr Q̄(z), the deterministic equivalent of (1/n) tr (Φ^TΦ/n − zI_n)^{-1}.

    m(z) = (1/n) Σ_i 1/((d/n)λ_i/(1+δ(z)) − z), the sum running over all n eigenvalues of K
    (zero ones contribute −1/z each).

    Examples
    --------
    Far from the spectrum m(z) ≈ −1/z:

    >>> m = gram_stieltjes(np.ones(10), d=20, n=10, z=1e6j)
    >>> abs(m * 1e6j + 1) < 1e-5
    True
    """
    sp = _Spec.build(kernel_eigvals, d, n)
    u, zz = _solve_u(z, sp)
    t = (sp.d / sp.n) * sp.values[:, None] * u[None, :] - zz[None, :]
    m = (np.sum(sp.weights[:, None] / t, axis=0) - (sp.n - sp.rank) / zz) / sp.n
    return _reshape(m, z)


def gram_atom_mass(kernel_eigvals: ArrayLike, *, d: float, n: int) -> float:
    """Mass of the atom at 0 of the limiting eigenvalue law of G = Φ^TΦ/n: 1 − min(d, rank K)/n.

    G has rank at most min(d, rank K); the deterministic equivalent gives −z m(z) → this mass as
    z → 0 (for d < rank K because δ → ∞, for d > rank K from the zero eigenvalues of K).

    Examples
    --------
    >>> gram_atom_mass(np.ones(100), d=30, n=100)
    0.7
    """
    d = _check_d(d)
    return max(0.0, 1.0 - min(d, kernel_rank(kernel_eigvals, n=n)) / n)


def gram_spectral_density(
    kernel_eigvals: ArrayLike,
    *,
    d: float,
    n: int,
    x: ArrayLike,
    eta: float | None = None,
) -> NDArray[np.float64]:
    """Continuous part of the limiting eigenvalue density of G = Φ^TΦ/n, by Stieltjes inversion.

    Parameters
    ----------
    kernel_eigvals
        Eigenvalues of K.
    d, n
        Number of features and of samples.
    x
        Points at which to evaluate the density (any shape).
    eta
        Imaginary part of z = x + iη. Default ``1e-5·max(1, d/n)·(tr K/n)``, i.e. 1e-5 of the bulk
        scale of G (the bulk of G sits near (d/n)λ(K)(1 ± √(n/d))²).

    Returns
    -------
    ndarray
        (1/π) Im[m(x + iη) + a/(x + iη)], where a = :func:`gram_atom_mass`: the atom at 0 (present
        when d < n or K is singular) is removed exactly, including its Lorentzian tail, so the
        result integrates to 1 − a. Tiny negative values from round-off are clipped to 0.

    Notes
    -----
    Each point is solved independently by continuation from large Im z (see
    :func:`solve_delta_complex`), so the grid may be in any order. An outlier of K (e.g. the
    n·(Eφ)² spike of a non-centred activation) carries mass ~1/n at its own location: a grid
    that misses it integrates to slightly less than 1 − a.

    Examples
    --------
    K = I_n and d = n give (d/n)× a Marchenko–Pastur law of ratio 1, supported on [0, 4]:

    >>> x = np.linspace(1e-3, 5, 2000)
    >>> f = gram_spectral_density(np.ones(50), d=50, n=50, x=x)
    >>> bool(abs(np.trapezoid(f, x) - 1) < 0.02) and float(f[x > 4.01].max()) < 1e-3
    True
    """
    sp = _Spec.build(kernel_eigvals, d, n)
    xx = np.asarray(x, dtype=np.float64)
    if eta is None:
        eta = 1e-5 * max(1.0, sp.d / sp.n) * float(np.sum(sp.weights * sp.values)) / sp.n
        if eta == 0.0:
            eta = 1e-5
    if not eta > 0:
        raise ValueError(f"eta must be > 0, got {eta}")
    z = xx.ravel() + 1j * eta
    m = np.atleast_1d(gram_stieltjes(kernel_eigvals, d=d, n=n, z=z))
    atom = gram_atom_mass(kernel_eigvals, d=d, n=n)
    dens = (m.imag + atom * (1.0 / z).imag) / np.pi
    return np.maximum(dens, 0.0).reshape(xx.shape)


# --------------------------------------------------------------------------- ridge MSE


@dataclass(frozen=True, eq=False)  # arrays: no elementwise ==
class KernelSpectrum:
    """One eigendecomposition K = U diag(λ) U^T with the projections every (d, γ) needs.

    Build it once with :meth:`from_kernel` (or :meth:`from_eigh`) and pass it to
    :func:`ridge_mse_from_spectrum` for any number of widths d and ridges γ: each call then costs
    O(n·n̂) per ridge instead of the O(n²n̂) projection.

    Attributes
    ----------
    eigvals
        λ, shape (n,), clipped (see the module notes).
    y_proj
        U^T y, shape (n,).
    cross_proj
        U^T K_{XX̂}, shape (n, n̂), or None when no test set is given.
    test_diag_mean
        (1/n̂) tr K_{X̂X̂}, or None.
    y_test
        ŷ, shape (n̂,), or None.
    """

    eigvals: NDArray[np.float64]
    y_proj: NDArray[np.float64]
    cross_proj: NDArray[np.float64] | None = None
    test_diag_mean: float | None = None
    y_test: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        n = self.eigvals.shape[0]
        if self.y_proj.shape != (n,):
            raise ValueError(f"y_proj has shape {self.y_proj.shape}, expected ({n},)")
        parts = (self.cross_proj, self.test_diag_mean, self.y_test)
        if any(p is None for p in parts) and not all(p is None for p in parts):
            raise ValueError("give all of cross_proj, test_diag_mean and y_test, or none of them")
        if self.cross_proj is not None and (
            self.cross_proj.ndim != 2
            or self.cross_proj.shape[0] != n
            or self.y_test is None
            or self.y_test.shape != (self.cross_proj.shape[1],)
        ):
            raise ValueError("cross_proj must be (n, n_test) and y_test (n_test,)")

    @property
    def n(self) -> int:
        """Number of training samples."""
        return int(self.eigvals.shape[0])

    @property
    def n_test(self) -> int | None:
        """Number of test samples, or None."""
        return None if self.y_test is None else int(self.y_test.shape[0])

    @cached_property
    def cross_rownorm2(self) -> NDArray[np.float64] | None:
        """[U^T K_{XX̂} K_{X̂X} U]_ii, the diagonal that the variance term of Ē_test needs."""
        return None if self.cross_proj is None else np.sum(self.cross_proj**2, axis=1)

    @classmethod
    def from_eigh(
        cls,
        eigvals: ArrayLike,
        eigvecs: ArrayLike,
        y: ArrayLike,
        kernel_cross: ArrayLike | None = None,
        kernel_test_diag: ArrayLike | None = None,
        y_test: ArrayLike | None = None,
    ) -> KernelSpectrum:
        """From ``numpy.linalg.eigh(K)`` output, the targets and (optionally) the test kernels."""
        U = np.asarray(eigvecs, dtype=np.float64)
        yv = np.asarray(y, dtype=np.float64)
        n = yv.shape[0]
        lam = _eigvals(eigvals, n)
        if U.shape != (n, n) or lam.shape != (n,):
            raise ValueError(f"eigvecs {U.shape} / eigvals {lam.shape} do not match n = {n}")
        for name, a in (("eigvecs", U), ("y", yv)):
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name} contains non-finite values")
        if kernel_cross is None:
            if kernel_test_diag is not None or y_test is not None:
                raise ValueError("kernel_test_diag / y_test given without kernel_cross")
            return cls(eigvals=lam, y_proj=U.T @ yv)
        Kc = np.asarray(kernel_cross, dtype=np.float64)
        kt = np.asarray(kernel_test_diag, dtype=np.float64)
        yt = np.asarray(y_test, dtype=np.float64)
        if Kc.ndim != 2 or Kc.shape[0] != n or kt.shape != (Kc.shape[1],):
            raise ValueError(
                f"kernel_cross {Kc.shape} must be (n, n_test) and kernel_test_diag (n_test,)"
            )
        for name, a in (("kernel_cross", Kc), ("kernel_test_diag", kt), ("y_test", yt)):
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name} contains non-finite values")
        return cls(
            eigvals=lam,
            y_proj=U.T @ yv,
            cross_proj=U.T @ Kc,
            test_diag_mean=float(np.mean(kt)),
            y_test=yt,
        )

    @classmethod
    def from_kernel(
        cls,
        K: ArrayLike,
        y: ArrayLike,
        kernel_cross: ArrayLike | None = None,
        kernel_test_diag: ArrayLike | None = None,
        y_test: ArrayLike | None = None,
    ) -> KernelSpectrum:
        """Diagonalise K (n×n, symmetric) once and project y and K_{XX̂} on its eigenvectors.

        Examples
        --------
        >>> spec = KernelSpectrum.from_kernel(np.eye(3), np.ones(3))
        >>> spec.n, spec.n_test
        (3, None)
        """
        lam, U = np.linalg.eigh(np.asarray(K, dtype=np.float64))
        return cls.from_eigh(lam, U, y, kernel_cross, kernel_test_diag, y_test)


@dataclass(frozen=True, eq=False)  # arrays: no elementwise ==
class RidgeTheoryResult:
    """LLC18 deterministic-equivalent MSEs, one entry per ridge.

    Attributes
    ----------
    gammas
        Ridges γ, shape (g,).
    d
        Number of random features.
    delta
        δ(−γ), shape (g,).
    train_mse
        Ē_train, shape (g,).
    test_mse
        Ē_test, shape (g,), or None when the spectrum carries no test set.
    """

    gammas: NDArray[np.float64]
    d: float
    delta: NDArray[np.float64]
    train_mse: NDArray[np.float64]
    test_mse: NDArray[np.float64] | None


def ridge_mse_from_spectrum(
    spectrum: KernelSpectrum, *, d: float, gammas: ArrayLike
) -> RidgeTheoryResult:
    """Ē_train and Ē_test of LLC18 (formula sheet §2) for one width d and many ridges.

    In K's eigenbasis, with ψ_i = (d/n)λ_i/(1+δ), q_i = 1/(ψ_i + γ), a = U^Ty, B = U^T K_{XX̂},
    D = 1 − (1/d)Σψ_i²q_i²:

    * Ē_train = (γ²/n) Σ_i a_i² q_i² (R ψ_i + 1),  R = ((1/d)Σ_j ψ_j q_j²)/D;
    * Ē_test = (1/n̂)‖ŷ − (d/n)/(1+δ)·B^T(q∘a)‖² + ((1/d)Σ_i a_i²q_i²ψ_i)/D ·
      [ (d/n)/(1+δ)·(1/n̂) tr K_{X̂X̂} − ((d/n)/(1+δ))² (1/n̂) Σ_i [BB^T]_ii (q_i + γq_i²) ].

    Parameters
    ----------
    spectrum
        Output of :meth:`KernelSpectrum.from_kernel`.
    d
        Number of random features.
    gammas
        Ridges γ > 0.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((20, 40)) / np.sqrt(20)
    >>> spec = KernelSpectrum.from_kernel(X.T @ X, np.sign(X[0]), X.T @ X, np.sum(X**2, 0),
    ...                                   np.sign(X[0]))
    >>> res = ridge_mse_from_spectrum(spec, d=80, gammas=[0.1, 1.0])
    >>> bool(np.all(res.train_mse < res.test_mse + 1e-12))
    True
    """
    d = _check_d(d)
    g = np.atleast_1d(np.asarray(gammas, dtype=np.float64))
    if g.ndim != 1 or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError(f"gammas must be a 1-D array of finite values > 0, got {g}")
    delta, train, test = _ridge_mse_pairs(spectrum, np.full(g.shape, d), g)
    return RidgeTheoryResult(gammas=g, d=d, delta=delta, train_mse=train, test_mse=test)


def ridge_mse_over_widths(
    spectrum: KernelSpectrum, *, widths: ArrayLike, gammas: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64] | None]:
    """:func:`ridge_mse_from_spectrum` for many widths at once: (δ, Ē_train, Ē_test), each (widths, gammas).

    Parameters
    ----------
    spectrum
        Output of :meth:`KernelSpectrum.from_kernel`.
    widths
        Numbers of random features d, shape (k,).
    gammas
        Ridges γ > 0: a scalar or shape (g,) for the same ridges at every width, or (k, g) for
        ridges that depend on the width.

    Returns
    -------
    tuple
        δ(−γ), Ē_train and Ē_test (None without a test set), each of shape (k, g); row i equals
        ``ridge_mse_from_spectrum(spectrum, d=widths[i], gammas=...)``, all δ solved together.

    Examples
    --------
    >>> spec = KernelSpectrum.from_kernel(np.eye(4), np.ones(4))
    >>> delta, train, _ = ridge_mse_over_widths(spec, widths=[2, 8], gammas=[0.1, 1.0])
    >>> bool(np.allclose(train[1], ridge_mse_from_spectrum(spec, d=8, gammas=[0.1, 1.0]).train_mse))
    True
    """
    d = np.array([_check_d(w) for w in np.atleast_1d(np.asarray(widths, dtype=np.float64))])
    g = np.asarray(gammas, dtype=np.float64)
    g = np.broadcast_to(g, (d.size, g.size)) if g.ndim <= 1 else g
    if g.ndim != 2 or g.shape[0] != d.size or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError(f"gammas must be (g,) or ({d.size}, g) finite values > 0, got shape {np.shape(gammas)}")
    out = _ridge_mse_pairs(spectrum, np.repeat(d, g.shape[1]), g.ravel())
    return tuple(None if a is None else a.reshape(g.shape) for a in out)  # type: ignore[return-value]


_PAIRS_PER_BLOCK = 256
"""(d, γ) pairs evaluated together by :func:`_ridge_mse_pairs`: bounds its (n, pairs) temporaries."""


def _ridge_mse_pairs(
    spectrum: KernelSpectrum, d: NDArray[np.float64], g: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64] | None]:
    """δ, Ē_train, Ē_test for each pair (d_k, γ_k) (formulas of :func:`ridge_mse_from_spectrum`)."""
    n = spectrum.n
    lam, a = spectrum.eigvals, spectrum.y_proj
    delta = _solve_delta_many(lam, c=d / n, gamma=g, n=n)
    train = np.empty(d.shape)
    test = None if spectrum.cross_proj is None else np.empty(d.shape)
    if test is not None:
        B, yt, b2 = spectrum.cross_proj, spectrum.y_test, spectrum.cross_rownorm2
        n_test = yt.shape[0]
    # Overflow (e.g. a ridge of 1e-300) is not warned about here: the results are checked below and raise.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for s in range(0, d.size, _PAIRS_PER_BLOCK):
            blk = slice(s, s + _PAIRS_PER_BLOCK)
            dk, gk = d[blk], g[blk]
            c = (dk / n) / (1.0 + delta[blk])  # (m,)
            psi = lam[:, None] * c[None, :]  # (n, m)
            q = 1.0 / (psi + gk[None, :])
            D = 1.0 - np.sum((psi * q) ** 2, axis=0) / dk
            if np.any(D <= 0):
                raise FloatingPointError(f"1 - (1/d) tr (ΨQ̄)² <= 0 at gamma = {gk[D <= 0]}")
            R = np.sum(psi * q**2, axis=0) / dk / D
            aq2 = a[:, None] ** 2 * q**2
            train[blk] = gk**2 / n * np.sum(aq2 * (R[None, :] * psi + 1.0), axis=0)
            if test is not None:
                yhat = c[None, :] * (B.T @ (q * a[:, None]))  # (n̂, m)
                bias = np.sum((yt[:, None] - yhat) ** 2, axis=0) / n_test
                quad = np.sum(aq2 * psi, axis=0) / dk
                bracket = c * spectrum.test_diag_mean - c**2 * np.sum(b2[:, None] * (q + gk[None, :] * q**2), axis=0) / n_test
                test[blk] = bias + quad / D * bracket
    for name, arr in (("train", train), ("test", test)):
        if arr is not None and not np.all(np.isfinite(arr)):
            raise FloatingPointError(f"non-finite theoretical {name} MSE at gamma = {g[~np.isfinite(arr)]}")
    return delta, train, test


def ridge_mse_theory(
    kernel_eigvals: ArrayLike,
    kernel_eigvecs: ArrayLike,
    y: ArrayLike,
    kernel_cross: ArrayLike,
    kernel_test_diag: ArrayLike,
    y_test: ArrayLike,
    *,
    d: float,
    gammas: ArrayLike,
) -> RidgeTheoryResult:
    """LLC18 Ē_train and Ē_test from an eigendecomposition of K.

    See :func:`ridge_mse_from_spectrum` for the formulas.

    Parameters
    ----------
    kernel_eigvals, kernel_eigvecs
        K = U diag(λ) U^T from ``numpy.linalg.eigh``; n = len(y).
    y
        Training targets (n,).
    kernel_cross
        K_{XX̂}, shape (n, n̂).
    kernel_test_diag
        diag K_{X̂X̂}, shape (n̂,).
    y_test
        Test targets (n̂,).
    d
        Number of random features.
    gammas
        Ridges γ > 0.

    Notes
    -----
    For many widths, build a :class:`KernelSpectrum` once and call
    :func:`ridge_mse_from_spectrum` per d: this function redoes the O(n²n̂) projection each call.
    """
    spec = KernelSpectrum.from_eigh(
        kernel_eigvals, kernel_eigvecs, y, kernel_cross, kernel_test_diag, y_test
    )
    return ridge_mse_from_spectrum(spec, d=d, gammas=gammas)


# --------------------------------------------------------------------------- ridgeless limit


def ridgeless_theta(kernel_eigvals: ArrayLike, *, d: float, n: int) -> float:
    """θ = lim_{γ→0} γδ(−γ) for d < rank K: the root of Σ_i λ_i/(λ_i + nθ/d) = d.

    κ = nθ/d is the effective ridge at which K's degrees of freedom tr K(K+κI)^{-1} equal d.
    θ → 0⁺ as d ↑ rank K (δ diverges there, θ does not; pitfall P7).

    Raises
    ------
    ValueError
        If d >= rank K: then δ stays bounded, γδ → 0 and the training error vanishes.

    Examples
    --------
    For K = I_n, n/(1 + nθ/d) = d gives θ = 1 − d/n:

    >>> round(ridgeless_theta(np.ones(100), d=25, n=100), 12)
    0.75
    """
    d = _check_d(d)
    lam = _eigvals(kernel_eigvals, n)
    pos = lam[lam > 0]
    if not d < pos.size:
        raise ValueError(
            f"the ridgeless limit theta needs d < rank K; got d = {d:g}, rank K = {pos.size}. "
            "For d >= rank K the training error tends to 0 as gamma -> 0."
        )

    def h(kappa: float) -> float:
        return float(np.sum(pos / (pos + kappa))) - d

    hi = float(np.sum(pos)) / d  # h(hi) <= 0 since Σλ/(λ+κ) <= tr K/κ (up to round-off)
    while h(hi) > 0:
        hi *= 2.0
    lo = hi
    while h(lo) <= 0:  # h(0+) = rank K − d > 0: walk down geometrically to bracket the root
        lo *= 1e-2
        if lo < 1e-300:
            raise RuntimeError("could not bracket the ridgeless effective ridge")
    kappa = scipy.optimize.brentq(h, lo, hi, xtol=lo * _EPS, rtol=_BRENT_RTOL, maxiter=500)
    return d * float(kappa) / n


def ridgeless_train_mse(kernel_eigvals: ArrayLike, y_proj: ArrayLike, *, d: float) -> float:
    """lim_{γ→0} Ē_train = (κ/n) y^T (K + κI)^{-1} y for d < rank K, with κ = nθ/d.

    Parameters
    ----------
    kernel_eigvals
        Eigenvalues of K, shape (n,).
    y_proj
        U^T y in the same eigenbasis (e.g. ``KernelSpectrum.y_proj``), shape (n,).
    d
        Number of random features, d < rank K.

    Examples
    --------
    With y ~ N(0, K) its expectation is θ; for K = I_n and y_proj = 1: (κ/n)·n/(1+κ) = θ.

    >>> abs(ridgeless_train_mse(np.ones(100), np.ones(100), d=25) - 0.75) < 1e-12
    True
    """
    a = np.asarray(y_proj, dtype=np.float64)
    n = a.shape[0]
    lam = _eigvals(kernel_eigvals, n)
    if lam.shape != (n,):
        raise ValueError(f"kernel_eigvals has {lam.size} entries, y_proj has {n}")
    kappa = n * ridgeless_theta(lam, d=d, n=n) / _check_d(d)
    return float(np.sum(a**2 * kappa / (lam + kappa))) / n
