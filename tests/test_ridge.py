"""Empirical ridge MSE: the eigenbasis implementation against the naive per-ridge solve."""
from __future__ import annotations

import numpy as np
import pytest

from rmtbench.ridge import (
    ILL_CONDITIONED_RATIO,
    ridge_mse,
    ridge_mse_direct,
    ridge_mse_from_features,
)

GAMMAS = [1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0]


def _problem(d: int, *, n: int = 60, n_test: int = 40, p: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((p, n)) / np.sqrt(p)
    Xt = rng.standard_normal((p, n_test)) / np.sqrt(p)
    W = rng.standard_normal((d, p))
    return np.tanh(W @ X), np.sign(X[0]), np.tanh(W @ Xt), np.sign(Xt[0])


@pytest.mark.parametrize("d", [25, 60, 150])  # d < n, d = n, d > n
def test_eigenbasis_matches_direct_solve(d):
    Phi, y, Phi_t, y_t = _problem(d)
    n = Phi.shape[1]
    lam, U = np.linalg.eigh(Phi.T @ Phi / n)
    fast = ridge_mse(lam, U, y, Phi.T @ Phi_t / n, y_t, GAMMAS)
    ref = ridge_mse_direct(Phi, y, Phi_t, y_t, GAMMAS)
    np.testing.assert_allclose(fast.train_mse, ref.train_mse, rtol=1e-10)
    np.testing.assert_allclose(fast.test_mse, ref.test_mse, rtol=1e-10)
    assert not fast.ill_conditioned.any() and not ref.ill_conditioned.any()
    # The training error grows with the ridge; at γ → ∞ both errors tend to mean(y²) = 1.
    assert np.all(np.diff(fast.train_mse) > 0)
    assert fast.train_mse[-1] < 1.0


def test_from_features_wrapper_and_definition():
    Phi, y, Phi_t, y_t = _problem(40)
    n, gamma = Phi.shape[1], 0.3
    res = ridge_mse_from_features(Phi, y, Phi_t, y_t, gamma)
    beta = Phi @ np.linalg.solve(Phi.T @ Phi / n + gamma * np.eye(n), y) / n
    assert res.train_mse[0] == pytest.approx(np.mean((y - Phi.T @ beta) ** 2), rel=1e-12)
    assert res.test_mse[0] == pytest.approx(np.mean((y_t - Phi_t.T @ beta) ** 2), rel=1e-12)


def test_ill_conditioning_is_flagged_not_hidden():
    Phi, y, Phi_t, y_t = _problem(20)  # rank G = 20 < n = 60
    n = Phi.shape[1]
    lam, U = np.linalg.eigh(Phi.T @ Phi / n)
    res = ridge_mse(lam, U, y, Phi.T @ Phi_t / n, y_t, [1e-18, 1e-3, 1.0])
    assert res.ill_conditioned.tolist() == [True, False, False]
    assert np.all(np.isfinite(res.train_mse)) and ILL_CONDITIONED_RATIO < 1e-12
    # γ = 0 on a singular Gram (its round-off eigenvalues clip to exact zeros) raises, never NaN.
    lam_exact = lam.copy()
    lam_exact[: n - 20] = 0.0
    for eigvals in (lam, lam_exact):
        with pytest.raises(FloatingPointError):
            ridge_mse(eigvals, U, y, Phi.T @ Phi_t / n, y_t, [0.0, 1.0])


def test_interpolation_when_overparameterised():
    Phi, y, Phi_t, y_t = _problem(150)
    res = ridge_mse_direct(Phi, y, Phi_t, y_t, [0.0])
    assert res.train_mse[0] < 1e-20 and not res.ill_conditioned[0]


def test_input_validation():
    Phi, y, Phi_t, y_t = _problem(30)
    n = Phi.shape[1]
    lam, U = np.linalg.eigh(Phi.T @ Phi / n)
    C = Phi.T @ Phi_t / n
    with pytest.raises(ValueError):
        ridge_mse(lam, U, y, C, y_t, [-1.0])
    with pytest.raises(ValueError):
        ridge_mse(lam, U, y, C, y_t[:-1], [1.0])
    bad = y.copy()
    bad[0] = np.nan
    with pytest.raises(ValueError):
        ridge_mse(lam, U, bad, C, y_t, [1.0])
    with pytest.raises(ValueError):
        ridge_mse_direct(Phi, y[:-1], Phi_t, y_t, [1.0])
