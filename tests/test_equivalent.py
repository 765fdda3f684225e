"""LLC18 deterministic equivalents: algebraic identities, limits, and Monte Carlo agreement.

Monte Carlo setting (formula sheet §2, rows [b]): 2-class GMM √p x_i ~ N(2.5 e_a, (1 + 4a/√p) I),
a ∈ {0, 1}, y = ±1, p = n/2, n̂ = n, ReLU features with Gaussian W and the closed-form arc-cosine
kernel. The data are drawn once per test; the mean over independent draws of W is compared with
the deterministic equivalent on the same data.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize

from rmtbench.ridge import ridge_mse
from rmtbench.theory.equivalent import (
    KernelSpectrum,
    gram_atom_mass,
    gram_spectral_density,
    gram_stieltjes,
    kernel_rank,
    ridge_mse_from_spectrum,
    ridge_mse_over_widths,
    ridge_mse_theory,
    ridgeless_theta,
    ridgeless_train_mse,
    solve_delta,
    solve_delta_complex,
)
from rmtbench.theory.laws import cdf_from_density, ks_distance, marchenko_pastur_density


def relu_kernel(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """E_w[relu(A^Tw) relu(w^TB)] for w ~ N(0, I) (LLC18 Table 1, arc-cosine kernel of order 1)."""
    na, nb = np.linalg.norm(A, axis=0), np.linalg.norm(B, axis=0)
    cos = np.clip(A.T @ B / np.outer(na, nb), -1.0, 1.0)
    return np.outer(na, nb) / (2 * np.pi) * (cos * np.arccos(-cos) + np.sqrt(1 - cos**2))


def gmm(rng: np.random.Generator, n: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.repeat([0, 1], n // 2)
    mean = np.zeros((p, n))
    mean[a, np.arange(n)] = 2.5
    X = (mean + np.sqrt(1 + 4 * a / np.sqrt(p)) * rng.standard_normal((p, n))) / np.sqrt(p)
    return X, 2.0 * a - 1.0


def relu_problem(n: int, seed: int):
    rng = np.random.default_rng(seed)
    X, y = gmm(rng, n, n // 2)
    Xt, yt = gmm(rng, n, n // 2)
    spec = KernelSpectrum.from_kernel(
        relu_kernel(X, X), y, relu_kernel(X, Xt), np.sum(Xt**2, axis=0) / 2, yt
    )
    return X, y, Xt, yt, spec


@pytest.fixture(scope="module")
def relu256():
    return relu_problem(256, seed=20250422)


# ----------------------------------------------------------------------------- δ on the real axis


@pytest.mark.parametrize("ratio", [0.3, 1.0, 3.0])
@pytest.mark.parametrize("gamma", [1e-6, 0.1, 100.0])
def test_delta_identity_kernel_closed_form(ratio, gamma):
    # K = I_n: δ = 1/((d/n)/(1+δ) + γ)  <=>  γδ² + (γ + d/n − 1)δ − 1 = 0.
    n, d = 200, ratio * 200
    b = gamma + ratio - 1
    root = np.sqrt(b**2 + 4 * gamma)
    exact = 2 / (b + root) if b > 0 else (root - b) / (2 * gamma)  # positive root, no cancellation
    assert solve_delta(np.ones(n), d=d, n=n, gamma=gamma) == pytest.approx(exact, rel=1e-13)


def test_delta_solves_its_equation(relu256):
    lam, n = relu256[-1].eigvals, 256
    for d in (128, 512):
        for gamma in (1e-7, 1e-2, 10.0):
            delta = solve_delta(lam, d=d, n=n, gamma=gamma)
            rhs = np.sum(lam / ((d / n) * lam / (1 + delta) + gamma)) / n
            assert delta == pytest.approx(rhs, rel=1e-13)
    # γδ → θ (d < n) and δ → n/(d − n) (d > rank K) as γ → 0.
    theta = ridgeless_theta(lam, d=128, n=n)
    assert 1e-7 * solve_delta(lam, d=128, n=n, gamma=1e-7) == pytest.approx(theta, rel=1e-4)
    assert solve_delta(lam, d=512, n=n, gamma=1e-9) == pytest.approx(n / (512 - n), rel=1e-6)


def test_negative_eigenvalues_are_clipped():
    lam = np.array([2.0, 1.0, 0.5, -1e-15])
    assert solve_delta(lam, d=2, n=4, gamma=0.1) == solve_delta(
        np.array([2.0, 1.0, 0.5, 0.0]), d=2, n=4, gamma=0.1
    )
    assert kernel_rank(lam, n=4) == 3


# ----------------------------------------------------------------------------- complex plane


@pytest.mark.parametrize("ratio", [0.5, 2.0])
def test_complex_delta_meets_real_delta_on_negative_axis(relu256, ratio):
    lam, n = relu256[-1].eigvals, 256
    gammas = np.array([1e-3, 0.1, 10.0])
    d = ratio * n
    real = np.array([solve_delta(lam, d=d, n=n, gamma=g) for g in gammas])
    on_axis = solve_delta_complex(lam, d=d, n=n, z=-gammas + 0j)
    np.testing.assert_allclose(on_axis.real, real, rtol=1e-12)
    assert np.all(np.abs(on_axis.imag) <= 1e-14 * real)
    # Just above the axis: Im δ(−γ + iε) ≈ ε·δ'(−γ) = −ε·∂δ/∂γ > 0.
    eps = 1e-8 * gammas
    above = solve_delta_complex(lam, d=d, n=n, z=-gammas + 1j * eps)
    h = 1e-5 * gammas
    slope = np.array(
        [solve_delta(lam, d=d, n=n, gamma=g + dg) - solve_delta(lam, d=d, n=n, gamma=g - dg)
         for g, dg in zip(gammas, h)]
    ) / (2 * h)
    np.testing.assert_allclose(above.real, real, rtol=1e-12)
    np.testing.assert_allclose(above.imag, -eps * slope, rtol=1e-6)


def test_stieltjes_branch_and_symmetry():
    lam = np.linspace(0.2, 3.0, 40)
    z = np.array([0.5 + 1e-6j, 1.0 + 0.3j, -2.0 + 1e-3j, 50.0 + 1j, 1e-9 + 1e-9j])
    for d in (20, 80):
        delta = solve_delta_complex(lam, d=d, n=40, z=z)
        m = gram_stieltjes(lam, d=d, n=40, z=z)
        assert np.all(delta.imag > 0) and np.all(m.imag > 0)
        np.testing.assert_allclose(solve_delta_complex(lam, d=d, n=40, z=z.conj()), delta.conj())
        # The defining equation holds at the returned point.
        rhs = np.sum(lam[:, None] / ((d / 40) * lam[:, None] / (1 + delta) - z), axis=0) / 40
        np.testing.assert_allclose(delta, rhs, rtol=1e-10)
    with pytest.raises(ValueError):
        solve_delta_complex(lam, d=20, n=40, z=1.0)  # on the support


def test_stieltjes_matches_monte_carlo_resolvent(relu256):
    # (1/n) tr (G − zI)^{-1} concentrates around m(z) away from the real axis.
    X, lam, n = relu256[0], relu256[-1].eigvals, 256
    z = np.array([0.5 + 0.2j, 2.0 + 0.5j, -0.1 + 0.05j])
    for d in (128, 512):
        mc = []
        for s in range(4):
            W = np.random.default_rng([1, d, s]).standard_normal((d, X.shape[0]))
            ev = np.linalg.eigvalsh(np.maximum(W @ X, 0).T @ np.maximum(W @ X, 0) / n)
            mc.append(np.mean(1 / (ev[:, None] - z), axis=0))
        m = gram_stieltjes(lam, d=d, n=n, z=z)
        np.testing.assert_allclose(np.mean(mc, axis=0), m, rtol=0.02)


def test_density_integrates_to_one_minus_atom():
    lam = np.repeat([1.0, 4.0], 100)  # two bulks in K, n = 200
    n = lam.size
    for d, atom in ((100, 0.5), (400, 0.0)):
        assert gram_atom_mass(lam, d=d, n=n) == atom
        x = np.linspace(1e-4, 30, 6000)
        f = gram_spectral_density(lam, d=d, n=n, x=x)
        assert np.trapezoid(f, x) == pytest.approx(1 - atom, abs=3e-3)
        assert f[x > 29].max() < 1e-6
    # A singular K adds its null space to the atom: 1 − min(d, rank K)/n.
    assert gram_atom_mass(np.r_[np.ones(50), np.zeros(150)], d=100, n=200) == 0.75


@pytest.mark.parametrize("ratio", [0.5, 2.0])
def test_identity_kernel_gives_marchenko_pastur(ratio):
    # K = I: G = Z^TZ/n with Z (d×n) Gaussian equals (d/n)·(1/d)Z^TZ, and (1/d)Z^TZ ~ MP(c = n/d).
    # So f_G(x) = (n/d) f_MP((n/d)x; c = n/d), atom (1 − d/n)₊.
    n = 300
    d = ratio * n
    c = n / d
    x = np.linspace(1e-3, 6, 1500)
    f = gram_spectral_density(np.ones(n), d=d, n=n, x=x, eta=1e-8)
    mp = c * marchenko_pastur_density(c * x, ratio=c)
    lo, hi = (1 - np.sqrt(c)) ** 2 / c, (1 + np.sqrt(c)) ** 2 / c
    far = (np.abs(x - lo) > 1e-2) & (np.abs(x - hi) > 1e-2)  # η-smoothing sits at the edges
    np.testing.assert_allclose(f[far], mp[far], atol=1e-5)
    assert gram_atom_mass(np.ones(n), d=d, n=n) == pytest.approx(max(0.0, 1 - 1 / c))


@pytest.mark.parametrize("ratio", [0.5, 2.0])
def test_density_matches_monte_carlo_eigenvalues(relu256, ratio):
    X, lam, n = relu256[0], relu256[-1].eigvals, 256
    d = int(ratio * n)
    W = np.random.default_rng([2, d]).standard_normal((d, X.shape[0]))
    Phi = np.maximum(W @ X, 0)
    ev = np.linalg.eigvalsh(Phi.T @ Phi / n)
    nonzero = ev[ev > 1e-9 * ev.max()]
    assert nonzero.size == min(d, n)
    # Grid over the bulk plus the outlier carried by the n·(Eφ)² spike of K.
    x = np.unique(np.r_[np.linspace(1e-5, 12, 2500), np.linspace(12, 1.1 * ev.max(), 300)])
    cdf = cdf_from_density(x, gram_spectral_density(lam, d=d, n=n, x=x))
    assert ks_distance(nonzero, cdf) < 0.05  # measured 0.024 (d/n = 0.5), 0.014 (d/n = 2)


# ----------------------------------------------------------------------------- ridge MSE


def _monte_carlo(X, y, Xt, yt, d, gammas, seeds):
    n = X.shape[1]
    out = []
    for s in seeds:
        W = np.random.default_rng([3, d, s]).standard_normal((d, X.shape[0]))
        Phi, Phi_t = np.maximum(W @ X, 0), np.maximum(W @ Xt, 0)
        lam, U = np.linalg.eigh(Phi.T @ Phi / n)
        r = ridge_mse(lam, U, y, Phi.T @ Phi_t / n, yt, gammas)
        assert not r.ill_conditioned.any()
        out.append((r.train_mse, r.test_mse))
    return np.mean(out, axis=0)  # (2, g)


@pytest.mark.parametrize("ratio", [0.5, 2.0])
def test_ridge_mse_theory_vs_monte_carlo_n256(relu256, ratio):
    # Tolerances: over 30 data draws × 2 ratios (16 W each, γ = 0.1) the worst relative errors
    # of the means were 7.0 % (train; ReLU has a +2 % mean finite-n bias) and 4.1 % (test).
    X, y, Xt, yt, spec = relu256
    d = int(ratio * 256)
    train, test = _monte_carlo(X, y, Xt, yt, d, [0.1], range(16))
    th = ridge_mse_from_spectrum(spec, d=d, gammas=[0.1])
    assert train[0] == pytest.approx(th.train_mse[0], rel=0.08)
    assert test[0] == pytest.approx(th.test_mse[0], rel=0.05)


@pytest.mark.slow
def test_ridge_mse_theory_vs_monte_carlo_n1024():
    # n = 1024, 16 W draws, γ = 0.1; rows [b] of the sheet saw <= 2.2 % (train), <= 0.8 % (test).
    n, gamma = 1024, 0.1
    X, y, Xt, yt, spec = relu_problem(n, seed=11)
    for ratio in (0.5, 2.0):
        d = int(ratio * n)
        th = ridge_mse_from_spectrum(spec, d=d, gammas=[gamma])
        errs = []
        for s in range(16):
            W = np.random.default_rng([4, d, s]).standard_normal((d, X.shape[0]))
            Phi, Phi_t = np.maximum(W @ X, 0), np.maximum(W @ Xt, 0)
            # One Cholesky solve (cheaper than the eigenbasis path, which test_ridge.py checks).
            alpha = scipy.linalg.cho_solve(
                scipy.linalg.cho_factor(Phi.T @ Phi / n + gamma * np.eye(n)), y
            )
            pred = Phi_t.T @ (Phi @ alpha) / n
            errs.append((gamma**2 * np.mean(alpha**2), np.mean((yt - pred) ** 2)))
        train, test = np.mean(errs, axis=0)
        assert train == pytest.approx(th.train_mse[0], rel=0.05)
        assert test == pytest.approx(th.test_mse[0], rel=0.03)


def test_theory_wrappers_agree_and_limits(relu256):
    X, y, Xt, yt, spec = relu256
    K = relu_kernel(X, X)
    lam, U = np.linalg.eigh(K)
    gammas = np.array([1e-3, 0.1, 1.0])
    a = ridge_mse_theory(
        lam, U, y, relu_kernel(X, Xt), np.sum(Xt**2, 0) / 2, yt, d=300, gammas=gammas
    )
    b = ridge_mse_from_spectrum(spec, d=300, gammas=gammas)
    np.testing.assert_allclose(a.train_mse, b.train_mse, rtol=1e-12)
    np.testing.assert_allclose(a.test_mse, b.test_mse, rtol=1e-12)
    assert np.all(np.diff(a.train_mse) > 0) and np.all(a.test_mse > a.train_mse)
    # Over-parameterised ridgeless limit: Ē_train → 0.
    assert ridge_mse_from_spectrum(spec, d=1024, gammas=[1e-9]).train_mse[0] < 1e-12
    # Train-only spectra are allowed; the test MSE is then None.
    train_only = KernelSpectrum.from_kernel(K, y)
    r = ridge_mse_from_spectrum(train_only, d=300, gammas=gammas)
    assert r.test_mse is None and np.allclose(r.train_mse, b.train_mse, rtol=1e-12)
    with pytest.raises(ValueError):
        ridge_mse_from_spectrum(spec, d=300, gammas=[0.0])


def _notebook_llc18(lam, U, y, K_cross, K_test_diag, y_test, *, d, gamma):
    """The LLC18 MSEs written out as in the book's notebook (Couillet & Liao, section 5.1): an independent reference."""
    n, n_test = y.size, y_test.size
    c = d / n
    delta = scipy.optimize.brentq(lambda t: t - np.sum(lam / (c * lam / (1 + t) + gamma)) / n,
                                  0.0, np.sum(lam) / (n * gamma), xtol=1e-300, rtol=4 * np.finfo(float).eps)
    Uy, UKc = U.T @ y, U.T @ K_cross
    bar_k = lam * c / (1 + delta)
    bar_q = 1 / (bar_k + gamma)
    denom = 1 - np.sum(bar_k**2 * bar_q**2) / d
    train = gamma**2 * np.sum(Uy**2 * bar_q**2 * (np.sum(bar_k * bar_q**2) / d / denom * bar_k + 1)) / n
    d2 = np.sum(UKc**2, axis=1)
    r = c / (1 + delta)
    test = (np.sum((y_test - r * UKc.T @ (bar_q * Uy)) ** 2) / n_test
            + np.sum(Uy**2 * bar_q**2 * bar_k) / d / denom
            * (r * np.mean(K_test_diag) - gamma * np.sum(bar_q**2 * r**2 * d2) / n_test - np.sum(bar_q * r**2 * d2) / n_test))
    return delta, train, test


def test_many_widths_at_once_against_the_notebook_formulas(relu256):
    X, y, Xt, yt, spec = relu256
    K = relu_kernel(X, X)
    lam, U = np.linalg.eigh(K)
    K_cross, K_diag = relu_kernel(X, Xt), np.sum(Xt**2, 0) / 2
    widths = np.geomspace(8, 8192, 150)  # 300 (width, ridge) pairs: past one block of 256
    gammas = np.array([1e-3, 0.5])
    delta, train, test = ridge_mse_over_widths(spec, widths=widths, gammas=gammas)
    assert delta.shape == train.shape == test.shape == (150, 2)
    for i in (0, 1, 74, 127, 128, 129, 149):
        for j, gamma in enumerate(gammas):
            ref = _notebook_llc18(lam, U, y, K_cross, K_diag, yt, d=widths[i], gamma=gamma)
            np.testing.assert_allclose([delta[i, j], train[i, j], test[i, j]], ref, rtol=1e-9)
    # ridges that depend on the width (footprint's N gamma/n), and a scalar ridge
    per_width = widths[:, None] * gammas[None, :] / 256
    _, train_w, _ = ridge_mse_over_widths(spec, widths=widths, gammas=per_width)
    ref = _notebook_llc18(lam, U, y, K_cross, K_diag, yt, d=widths[140], gamma=per_width[140, 1])
    assert train_w[140, 1] == pytest.approx(ref[1], rel=1e-9)
    _, train_s, _ = ridge_mse_over_widths(spec, widths=widths[:3], gammas=0.5)
    np.testing.assert_allclose(train_s[:, 0], train[:3, 1], rtol=1e-14)
    np.testing.assert_allclose(ridge_mse_from_spectrum(spec, d=widths[7], gammas=gammas).train_mse, train[7], rtol=1e-14)
    with pytest.raises(ValueError, match="gammas"):
        ridge_mse_over_widths(spec, widths=widths, gammas=per_width[:2])


def test_delta_survives_a_first_newton_step_that_overshoots_below_the_root():
    # hi = tr K/(n gamma) exceeds these roots by 1e12 to 1e36: the first step loses the root's digits
    # (found in review). K = 3 (one eigenvalue), exact root of gamma d^2 + (c lam + gamma - lam/n) d - lam/n = 0:
    lam, n, d, gamma = 3.0, 200, 1e6, 1e-14
    bq = d / n * lam + gamma - lam / n
    exact = 2 * (lam / n) / (bq + np.sqrt(bq * bq + 4 * gamma * lam / n))
    assert solve_delta([lam], d=d, n=n, gamma=gamma) == pytest.approx(exact, rel=1e-14)
    # rank 50 of n = 200 at d = 100: as gamma -> 0, delta -> rank/(d - rank) = 1 (not the bracket's lower end 1/2)
    assert solve_delta(np.r_[np.zeros(150), np.ones(50)], d=100, n=200, gamma=1e-36) == pytest.approx(1.0, rel=1e-14)


def test_delta_newton_agrees_with_brent_on_its_bracket(relu256):
    # the vectorised Newton solver against an independent bracketing root-finder
    lam, n = relu256[-1].eigvals, 256
    lam = lam[lam > n * np.finfo(float).eps * lam.max()]
    for d in (16, 255, 256, 1024):
        for gamma in (1e-6, 1e-2, 1.0, 1e3):
            c = d / n

            def f(x):
                return x - np.sum(lam * (1 + x) / (c * lam + gamma * (1 + x))) / n

            ref = scipy.optimize.brentq(f, np.sum(lam / (c * lam + gamma)) / n, np.sum(lam) / (n * gamma), xtol=1e-300,
                                        rtol=4 * np.finfo(float).eps)
            assert solve_delta(lam, d=d, n=n, gamma=gamma) == pytest.approx(ref, rel=1e-12)


# ----------------------------------------------------------------------------- ridgeless limit


@pytest.mark.parametrize("ratio", [0.5, 0.9])
def test_ridgeless_train_mse_is_the_small_gamma_limit(relu256, ratio):
    spec = relu256[-1]
    d = ratio * spec.n
    full = ridge_mse_from_spectrum(spec, d=d, gammas=[1e-7]).train_mse[0]
    # The O(γ) terms cancel, so the gap is O(γ²): measured 2e-12 (0.5) and 3e-9 (0.9).
    assert ridgeless_train_mse(spec.eigvals, spec.y_proj, d=d) == pytest.approx(full, rel=1e-8)


def test_theta_vanishes_at_interpolation_threshold(relu256):
    lam, n = relu256[-1].eigvals, 256
    ratios = [0.5, 0.9, 0.99, 0.999]
    thetas = [ridgeless_theta(lam, d=r * n, n=n) for r in ratios]
    assert np.all(np.diff(thetas) < 0)
    assert thetas[-1] < 2e-3 * thetas[0]  # θ → 0⁺ as d ↑ n, it does not diverge (pitfall P7)
    kappa = n * thetas[1] / (0.9 * n)
    assert np.sum(lam / (lam + kappa)) == pytest.approx(0.9 * n, rel=1e-12)  # df(κ) = d
    # E_y Ē_train = θ for y ~ N(0, K): (1/n) Σ λ_i κ/(λ_i + κ) = κ d/n = θ.
    assert np.sum(lam * kappa / (lam + kappa)) / n == pytest.approx(thetas[1], rel=1e-12)
    for d in (n, 2 * n):
        with pytest.raises(ValueError, match="rank"):
            ridgeless_theta(lam, d=d, n=n)


@pytest.mark.parametrize("d", [128, 512, 4096])
def test_density_grid_from_anchors_equals_continuation_at_every_point(d, monkeypatch):
    """Large same-height batches start Newton from interpolated anchors; the roots are those of the
    point-by-point continuation (the Stieltjes branch is unique)."""
    import rmtbench.theory.equivalent as eq

    rng = np.random.default_rng(3)
    A = rng.standard_normal((256, 512)) / 16
    lam = np.concatenate([[40.0], np.linalg.eigvalsh(A.T @ A)[1:]])  # a bulk and an outlier
    x = np.linspace(1e-4, 4 * max(1, d / 512) * 3.0, 300)
    warm = eq.gram_spectral_density(lam, d=d, n=512, x=x)
    monkeypatch.setattr(eq, "WARM_START_MIN", 10**9)
    cold = eq.gram_spectral_density(lam, d=d, n=512, x=x)
    assert warm.max() > 0
    np.testing.assert_allclose(warm, cold, rtol=0, atol=1e-10 * cold.max())


def test_theory_bits_do_not_depend_on_the_callers_blas_threads(tmp_path):
    """The theory job runs with one BLAS thread, a notebook or the test's reference with two: same bits.

    Failed before the solver ran its matrix-vector products on one thread (gram_density differed in
    the last bits, and the kill-and-resume test's bitwise comparison with it).
    """
    from threadpoolctl import threadpool_limits

    from rmtbench.config import load_sweep
    from rmtbench.experiments.base import RunContext
    from test_resume import CONFIG  # the sweep whose bitwise comparison this broke

    plan = load_sweep(CONFIG).experiments["rf"]
    cells = next(iter(plan.theory_groups().values()))
    with threadpool_limits(limits=1):
        one = plan.kind.theory(cells, RunContext(data_dir=tmp_path))
    with threadpool_limits(limits=2):
        two = plan.kind.theory(cells, RunContext(data_dir=tmp_path))
    for name in one.data_vars:
        assert np.array_equal(one[name].values, two[name].values, equal_nan=True), name
