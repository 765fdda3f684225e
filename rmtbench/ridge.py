"""Empirical ridge regression on random features: training and test MSE over many ridges.

Conventions (formula sheet §2): features Φ = φ(WX) ∈ R^{d×n}, Gram G = Φ^TΦ/n (n×n), loss
(1/2n)‖y − Φ^Tβ‖² + (γ/2)‖β‖², so β = (1/n)ΦQy with Q = (G + γI_n)^{-1}, and

* E_train = (1/n)‖y − Φ^Tβ‖² = (γ²/n)‖Qy‖²,
* E_test = (1/n̂)‖ŷ − Φ̂^Tβ‖² with Φ̂^Tβ = (Φ̂^TΦ/n)Qy, normalised by n̂ (pitfall P6).

:func:`ridge_mse` works in the eigenbasis of G: after one projection it costs O(n·n̂) per ridge.
:func:`ridge_mse_direct` is the naive reference that solves one linear system per ridge.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ILL_CONDITIONED_RATIO",
    "RidgeResult",
    "ridge_mse",
    "ridge_mse_direct",
    "ridge_mse_from_features",
]

#: Below this ratio (λ_min + γ)/(λ_max + γ) the round-off of the eigenvalues (about eps·λ_max) is a
#: relative error above ~1e-3 on λ_min + γ, so the MSE is flagged as untrustworthy.
ILL_CONDITIONED_RATIO: float = 1e3 * np.finfo(np.float64).eps


@dataclass(frozen=True, eq=False)  # arrays: no elementwise ==
class RidgeResult:
    """Training and test MSE of ridge regression, one entry per ridge.

    Attributes
    ----------
    gammas
        The ridges γ, shape (g,).
    train_mse
        (1/n)‖y − Φ^Tβ‖², shape (g,).
    test_mse
        (1/n̂)‖ŷ − Φ̂^Tβ‖², shape (g,).
    ill_conditioned
        True where (λ_min + γ)/(λ_max + γ) < :data:`ILL_CONDITIONED_RATIO`: the values are finite
        but their leading digits cannot be trusted.
    """

    gammas: NDArray[np.float64]
    train_mse: NDArray[np.float64]
    test_mse: NDArray[np.float64]
    ill_conditioned: NDArray[np.bool_]


def _as_gammas(gammas: ArrayLike) -> NDArray[np.float64]:
    g = np.atleast_1d(np.asarray(gammas, dtype=np.float64))
    if g.ndim != 1:
        raise ValueError(f"gammas must be a scalar or a 1-D array, got shape {g.shape}")
    if not np.all(np.isfinite(g)) or np.any(g < 0):
        raise ValueError(f"gammas must be finite and >= 0, got {g}")
    return g


def _finite(name: str, a: NDArray) -> NDArray:
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values")
    return a


def _check_outputs(gammas: NDArray, train: NDArray, test: NDArray) -> None:
    bad = ~(np.isfinite(train) & np.isfinite(test))
    if bad.any():
        raise FloatingPointError(
            f"non-finite ridge MSE at gamma = {gammas[bad]}; a zero ridge needs a non-singular Gram"
        )


def ridge_mse(
    gram_eigvals: ArrayLike,
    gram_eigvecs: ArrayLike,
    y: ArrayLike,
    cross_gram: ArrayLike,
    y_test: ArrayLike,
    gammas: ArrayLike,
) -> RidgeResult:
    """Training and test MSE of random-feature ridge regression for many ridges at once.

    Parameters
    ----------
    gram_eigvals, gram_eigvecs
        G = Φ^TΦ/n = U diag(λ) U^T as returned by ``numpy.linalg.eigh(G)``: shapes (n,) and (n, n).
        Tiny negative eigenvalues (round-off) are clipped to 0.
    y
        Training targets, shape (n,).
    cross_gram
        Φ^TΦ̂/n, shape (n, n̂).
    y_test
        Test targets, shape (n̂,).
    gammas
        Ridges γ ≥ 0, scalar or shape (g,).

    Returns
    -------
    RidgeResult
        ``train_mse`` = (γ²/n) Σ_i (U^Ty)_i²/(λ_i + γ)²,
        ``test_mse`` = (1/n̂)‖ŷ − C^T U diag(1/(λ+γ)) U^T y‖² with C = cross_gram,
        and the ``ill_conditioned`` flags.

    Raises
    ------
    FloatingPointError
        If an MSE is not finite (e.g. γ = 0 with a singular G).

    Notes
    -----
    The projections U^Ty and U^T C cost O(n²n̂) once; each ridge then costs O(n·n̂).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> Phi, Phi_test = rng.standard_normal((30, 20)), rng.standard_normal((30, 10))
    >>> y, y_test = np.sign(rng.standard_normal(20)), np.sign(rng.standard_normal(10))
    >>> lam, U = np.linalg.eigh(Phi.T @ Phi / 20)
    >>> res = ridge_mse(lam, U, y, Phi.T @ Phi_test / 20, y_test, [0.1, 1.0])
    >>> ref = ridge_mse_direct(Phi, y, Phi_test, y_test, [0.1, 1.0])
    >>> bool(np.allclose(res.test_mse, ref.test_mse, rtol=1e-10))
    True
    """
    g = _as_gammas(gammas)
    lam = np.clip(_finite("gram_eigvals", np.asarray(gram_eigvals, dtype=np.float64)), 0.0, None)
    U = _finite("gram_eigvecs", np.asarray(gram_eigvecs, dtype=np.float64))
    yv = _finite("y", np.asarray(y, dtype=np.float64))
    C = _finite("cross_gram", np.asarray(cross_gram, dtype=np.float64))
    yt = _finite("y_test", np.asarray(y_test, dtype=np.float64))
    n = lam.shape[0]
    if U.shape != (n, n) or yv.shape != (n,) or C.ndim != 2 or C.shape[0] != n:
        raise ValueError(
            f"inconsistent shapes: eigvals {lam.shape}, eigvecs {U.shape}, y {yv.shape}, "
            f"cross_gram {C.shape}"
        )
    if yt.shape != (C.shape[1],):
        raise ValueError(f"y_test has shape {yt.shape}, expected ({C.shape[1]},)")

    a = U.T @ yv  # (n,)
    B = U.T @ C  # (n, n̂): the one O(n² n̂) step
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / (lam[:, None] + g[None, :])  # (n, g)
        train = g**2 * np.sum((a[:, None] * inv) ** 2, axis=0) / n
        resid = yt[:, None] - B.T @ (a[:, None] * inv)  # (n̂, g)
        test = np.sum(resid**2, axis=0) / yt.shape[0]
        ratio = (lam.min() + g) / (lam.max() + g)
    _check_outputs(g, train, test)
    ill = ~(ratio >= ILL_CONDITIONED_RATIO)  # also True for 0/0
    return RidgeResult(gammas=g, train_mse=train, test_mse=test, ill_conditioned=ill)


def ridge_mse_direct(
    Phi: ArrayLike,
    y: ArrayLike,
    Phi_test: ArrayLike,
    y_test: ArrayLike,
    gammas: ArrayLike,
) -> RidgeResult:
    """Reference ridge MSE by one Cholesky solve per ridge (for tests and benchmarks).

    Solves the d×d system (ΦΦ^T/n + γI)β = Φy/n when d ≤ n, and the n×n system (G + γI)α = y,
    β = Φα/n otherwise; then evaluates both errors from their definitions.

    Parameters
    ----------
    Phi, Phi_test
        Features φ(WX) of shape (d, n) and φ(WX̂) of shape (d, n̂).
    y, y_test
        Targets of shapes (n,) and (n̂,).
    gammas
        Ridges γ ≥ 0.

    Returns
    -------
    RidgeResult
        ``ill_conditioned`` refers to the system actually solved (its extreme eigenvalues).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> Phi = rng.standard_normal((5, 8))
    >>> res = ridge_mse_direct(Phi, np.ones(8), Phi, np.ones(8), [1e-3])
    >>> bool(np.isclose(res.train_mse[0], res.test_mse[0]))
    True
    """
    g = _as_gammas(gammas)
    F = _finite("Phi", np.asarray(Phi, dtype=np.float64))
    Ft = _finite("Phi_test", np.asarray(Phi_test, dtype=np.float64))
    yv = _finite("y", np.asarray(y, dtype=np.float64))
    yt = _finite("y_test", np.asarray(y_test, dtype=np.float64))
    d, n = F.shape
    if yv.shape != (n,) or Ft.shape[0] != d or yt.shape != (Ft.shape[1],):
        raise ValueError(f"inconsistent shapes: Phi {F.shape}, y {yv.shape}, Phi_test {Ft.shape}")
    primal = d <= n
    A = F @ F.T / n if primal else F.T @ F / n
    spec = np.clip(np.linalg.eigvalsh(A), 0.0, None)
    train = np.empty_like(g)
    test = np.empty_like(g)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k, gamma in enumerate(g):
            try:
                if primal:
                    beta = scipy.linalg.solve(A + gamma * np.eye(d), F @ yv / n, assume_a="pos")
                else:
                    beta = F @ scipy.linalg.solve(A + gamma * np.eye(n), yv, assume_a="pos") / n
            except np.linalg.LinAlgError:
                beta = np.full(d, np.nan)
            train[k] = np.sum((yv - F.T @ beta) ** 2) / n
            test[k] = np.sum((yt - Ft.T @ beta) ** 2) / yt.shape[0]
        ratio = (spec.min() + g) / (spec.max() + g)
    _check_outputs(g, train, test)
    return RidgeResult(
        gammas=g, train_mse=train, test_mse=test, ill_conditioned=~(ratio >= ILL_CONDITIONED_RATIO)
    )


def ridge_mse_from_features(
    Phi: ArrayLike,
    y: ArrayLike,
    Phi_test: ArrayLike,
    y_test: ArrayLike,
    gammas: ArrayLike,
) -> RidgeResult:
    """Convenience wrapper: build G = Φ^TΦ/n and Φ^TΦ̂/n, diagonalise G, call :func:`ridge_mse`.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> Phi = rng.standard_normal((40, 20))
    >>> res = ridge_mse_from_features(Phi, np.ones(20), Phi, np.ones(20), [0.5])
    >>> bool(np.isclose(res.train_mse[0], res.test_mse[0]))
    True
    """
    F = np.asarray(Phi, dtype=np.float64)
    n = F.shape[1]
    lam, U = np.linalg.eigh(F.T @ F / n)
    return ridge_mse(lam, U, y, F.T @ np.asarray(Phi_test, dtype=np.float64) / n, y_test, gammas)
