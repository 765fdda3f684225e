"""Theory of deep random networks (rmtbench.theory.deep): structure, independent twins, convergence.

Structural facts of the Gu+22 recursion (formula sheet section 5, pitfall P14), the exact kernel
recursion against an independent arc-cosine implementation, the linear equivalents against the exact
infinite-width kernels (errors that shrink with n), the finite-width switch (P12), and the DEQ
theory of formula sheet section 6.
"""
import math

import numpy as np
import pytest

from rmtbench.activations import gaussian_moments
from rmtbench.data import make_dataset
from rmtbench.theory import deep

GMM = {"kind": "gmm", "p_over_n": 0.5}


def _data(n, spec=GMM, seed=1):
    data = make_dataset(spec, n=n, n_test=0, seed=np.random.SeedSequence(seed))
    return data, deep.data_statistics(data)


# -- structure of the coefficient recursion -----------------------------------------------------------


@pytest.mark.parametrize("act", ["relu", "tanh", "abs", "softplus", "leaky_relu(a=1.0,b=0.2)", "sigmoid", "cos"])
@pytest.mark.parametrize("tau0", [0.7, 1.04])
def test_first_layer_alpha3_is_twice_alpha2(act, tau0):
    first = deep.layer_coefficients([act, "relu"], tau0=tau0)[0]
    assert first.alpha[2] == pytest.approx(2.0 * first.alpha[1], rel=1e-13, abs=1e-300)
    m = gaussian_moments(act, tau=tau0)
    assert first.alpha[0] == pytest.approx(m.d1**2, rel=1e-13, abs=1e-300)
    assert first.ck_identity == pytest.approx(m.var - tau0**2 * m.d1**2, rel=1e-12, abs=1e-15)


def test_relu_values_at_unit_scale():
    first, second = deep.layer_coefficients(["relu", "relu"], tau0=1.0)
    assert first.alpha[:3] == pytest.approx((0.25, 1 / (8 * math.pi), 1 / (4 * math.pi)), rel=1e-12)
    assert first.tau**2 == pytest.approx(0.5 - 1 / (2 * math.pi), rel=1e-12)
    assert first.shift == pytest.approx(1 / math.sqrt(2 * math.pi), rel=1e-12)
    assert first.kappa2 == pytest.approx(first.tau**2 + 0.5, rel=1e-12)  # κ_1² = τ_1² + E φ'² τ_0²
    assert second.alpha[0] == pytest.approx(1 / 16, rel=1e-12)
    # α_{2,2} = ȧ α_{1,2} + ¼ (E φ'')² α_{1,4}², E φ''(τ_1 ξ) = 1/(τ_1 sqrt(2π)), α_{1,4} = E[φ'² + φ̄φ''] = τ_1²
    expect = 0.25 * first.alpha[1] + 0.25 * (1 / (2 * math.pi * first.tau**2)) * first.tau**4
    assert second.alpha[1] == pytest.approx(expect, rel=1e-12)


@pytest.mark.parametrize("act", ["relu", "leaky_relu(a=1.0,b=0.2)", "softplus"])
def test_both_ratios_are_non_decreasing_in_depth(act):
    coefs = deep.layer_coefficients([act] * 8, tau0=1.04)
    r2 = np.array([c.alpha[1] / c.alpha[0] for c in coefs])
    r3 = np.array([c.alpha[2] / c.alpha[0] for c in coefs])
    assert np.all(np.diff(r2) >= -1e-15) and np.all(np.diff(r3) >= -1e-15)
    if act == "relu":  # strictly for ReLU: each layer adds ¼(Eφ'')² α_{ℓ−1,4}² > 0
        assert np.all(np.diff(r2) > 0) and np.all(np.diff(r3) > 0)


@pytest.mark.parametrize("acts", [["abs"], ["abs", "abs", "abs"], ["relu", "cos", "relu"], ["quadratic", "tanh"]])
def test_an_even_layer_kills_alpha1_from_there_on(acts):
    coefs = deep.layer_coefficients(acts, tau0=1.04)
    first_even = next(i for i, a in enumerate(acts) if a in ("abs", "cos", "quadratic"))
    for c in coefs[first_even:]:
        assert abs(c.alpha[0]) <= 1e-15 * max(c.alpha[1:3])  # α_{ℓ,1} = 0, not 1 as the slide says (P14)


@pytest.mark.parametrize("acts", [["tanh", "erf"], ["erf", "sin", "tanh"], ["sign", "erf"]])
def test_all_odd_network_has_only_linear_and_identity_terms(acts):
    coefs = deep.layer_coefficients(acts, tau0=1.04)
    for c in coefs:
        assert abs(c.alpha[1]) < 1e-25 and abs(c.alpha[2]) < 1e-25
        assert c.alpha[0] > 0.05


def test_all_odd_network_kernel_is_linear_plus_identity_and_converges():
    """With equal class covariances (no O(p^-1/2) slope term, pitfall P13) the error falls steadily."""
    spec = {**GMM, "cov_shift": [0.0, 0.0]}
    errors = []
    for n in (128, 256, 512):
        data, stats = _data(n, spec)
        coefs = deep.layer_coefficients(["erf", "tanh"], tau0=stats.tau)
        exact = deep.exact_ck(data.X, ["erf", "tanh"], tau0=stats.tau)[-1]
        last = coefs[-1]
        linear = last.alpha[0] * data.X.T @ data.X + last.ck_identity * np.eye(n)
        np.testing.assert_allclose(deep.ck_equivalent(data.X, stats, coefs), linear, atol=1e-12)
        errors.append(deep.relative_error(linear, exact))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.08  # measured 0.150, 0.091, 0.061


# -- exact kernels against an independent implementation -------------------------------------------


def _arc_cosine(norm_a, norm_b, cov):
    """E relu(u) relu(v) and E 1{u>0}1{v>0} from the arc-cosine formulas (Cho & Saul), written out here."""
    s = np.outer(norm_a, norm_b)
    rho = np.clip(cov / s, -1, 1)
    np.fill_diagonal(rho, 1.0)  # exact self-correlation: arccos is not smooth at 1
    theta = np.arccos(rho)
    k1 = s * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi)
    k0 = (np.pi - theta) / (2 * np.pi)
    return k1, k0


def test_exact_relu_kernels_match_arc_cosine_recursion():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 7)) / np.sqrt(20)
    tau0 = 1.1
    cks, ntks = deep.exact_kernels(X, ["relu", "relu"], tau0=tau0).ck, deep.exact_kernels(X, ["relu", "relu"], tau0=tau0).ntk
    prev, prev_ntk, tau = X.T @ X, X.T @ X, tau0
    for layer in range(2):
        c = tau / math.sqrt(2 * math.pi)  # E relu(τξ)
        norms = np.sqrt(np.diag(prev))
        k1, k0 = _arc_cosine(norms, norms, prev)
        mean = norms / math.sqrt(2 * math.pi)
        K = k1 - c * (mean[:, None] + mean[None, :]) + c * c
        prev_ntk = K + prev_ntk * k0
        np.testing.assert_allclose(cks[layer], K, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(ntks[layer], prev_ntk, rtol=1e-11, atol=1e-13)
        prev, tau = K, tau * math.sqrt(0.5 - 1 / (2 * math.pi))


def test_exact_tanh_kernel_matches_tensor_gauss_hermite():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((16, 5)) / 4.0
    K = deep.exact_ck(X, ["tanh", "tanh"], tau0=1.0)
    x, w = np.polynomial.hermite_e.hermegauss(120)
    w = w / math.sqrt(2 * math.pi)
    prev = X.T @ X
    for layer in range(2):
        L = np.zeros_like(prev)
        for i in range(5):
            for j in range(5):
                a, c, b = prev[i, i], prev[i, j], prev[j, j]
                u = math.sqrt(a) * x[:, None]
                v = (c / math.sqrt(a)) * x[:, None] + math.sqrt(max(b - c * c / a, 0.0)) * x[None, :]
                L[i, j] = float(w @ (np.tanh(u) * np.tanh(v)) @ w)  # tanh is odd: its centring constant is 0
        np.testing.assert_allclose(K[layer], L, atol=2e-8)
        prev = L


# -- linear equivalents against the exact kernels ----------------------------------------------------


def test_equivalents_converge_with_n():
    """‖K̃ − K‖/‖K‖ falls with n for the CK and the NTK (theory against exact theory, no simulation)."""
    acts = ["relu", "relu"]
    errors = {k: [] for k in ("ck", "ck_model", "ntk")}
    for n in (128, 512):
        data, stats = _data(n)
        coefs = deep.layer_coefficients(acts, tau0=stats.tau)
        exact = deep.exact_kernels(data.X, acts, tau0=stats.tau)
        errors["ck"].append(deep.relative_error(deep.ck_equivalent(data.X, stats, coefs, epsilon="data"), exact.ck[-1]))
        errors["ck_model"].append(deep.relative_error(deep.ck_equivalent(data.X, stats, coefs, epsilon="model"), exact.ck[-1]))
        errors["ntk"].append(deep.relative_error(deep.ntk_equivalent(data.X, stats, coefs), exact.ntk[-1]))
    for key, (small, large) in errors.items():
        assert large < 0.8 * small, (key, errors)
    assert errors["ck"][1] < 0.05 and errors["ntk"][1] < 0.1


def test_gu22_code_identity_term_is_worse():
    """Pitfall P15: the extra −α_{ℓ,3} τ_0⁴ I of Gu+22's code increases the error."""
    data, stats = _data(512)
    coefs = deep.layer_coefficients(["relu", "relu"], tau0=stats.tau)
    exact = deep.exact_ck(data.X, ["relu", "relu"], tau0=stats.tau)[-1]
    ours = deep.ck_equivalent(data.X, stats, coefs)
    theirs = ours - coefs[-1].alpha[2] * stats.tau**4 * np.eye(512)
    assert deep.relative_error(ours, exact) < 0.7 * deep.relative_error(theirs, exact)


# -- finite width (P12) ------------------------------------------------------------------------------


def test_finite_width_switch_adds_the_rank_one_term():
    data, stats = _data(64)
    acts = ["relu", "erf", "abs"]
    widths = [64, 128, 256]
    coefs = deep.layer_coefficients(acts, tau0=stats.tau)
    r = deep.finite_width_correction(coefs, widths)
    assert r[0] == 0.0
    assert r[1] == pytest.approx(0.5 * coefs[1].d2**2 * coefs[0].tau**4 / 64, abs=1e-18)  # erf: E φ'' = 0
    # the third layer carries the first layer's fluctuation through erf: v_2 = τ_2⁴/d_2 + ȧ_2² τ_1⁴/d_1
    v2 = coefs[1].tau**4 / 128 + coefs[1].d1**4 * coefs[0].tau**4 / 64
    assert r[2] == pytest.approx(coefs[2].d1**2 * r[1] + 0.5 * coefs[2].d2**2 * v2, rel=1e-12)
    plain = deep.exact_ck(data.X, acts, tau0=stats.tau)
    finite = deep.exact_ck(data.X, acts, tau0=stats.tau, widths=widths)
    for layer in range(3):
        np.testing.assert_allclose(finite[layer] - plain[layer], deep.rank_one_term(r[layer], 64), atol=1e-14)
    assert np.all(deep.finite_width_correction(coefs, [np.inf] * 3) == 0)


# -- deep equilibrium models ---------------------------------------------------------------------------


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_deq_scale_and_kernel_are_fixed_points(act):
    data, stats = _data(48)
    c = deep.deq_coefficients(act, tau0=stats.tau, sigma_a2=0.3)
    m = gaussian_moments(act, tau=c.tau_star)
    assert c.tau_star**2 == pytest.approx(0.3 * m.var + 0.7 * stats.tau**2, rel=1e-12)
    G = deep.deq_exact_ck(data.X, c)
    S = 0.3 * G + 0.7 * data.X.T @ data.X
    F = deep.exact_ck(np.linalg.cholesky(S).T, [act], tau0=c.tau_star)[0]  # F(S) through a factor of S
    np.testing.assert_allclose(F, G, atol=1e-10)


def test_deq_relu_targets_and_equivalent():
    c = deep.deq_coefficients("relu", tau0=1.0, sigma_a2=0.2)
    assert c.targets[0] == pytest.approx(0.8 / 3.8, rel=1e-12)  # (1 − s)/(4 − s) for ReLU
    assert c.alpha[3] == pytest.approx(c.tau_star**2, rel=1e-10)  # homogeneous φ: α4 = τ*²/τ_0²
    errors = {"model": [], "data": []}
    for n in (128, 512):
        data, stats = _data(n)
        c = deep.deq_coefficients("relu", tau0=stats.tau, sigma_a2=0.2)
        G = deep.deq_exact_ck(data.X, c)
        for eps in errors:
            errors[eps].append(deep.relative_error(deep.deq_equivalent(data.X, stats, c, epsilon=eps), G))
    for eps, (small, large) in errors.items():
        assert large < 0.8 * small, errors
    assert errors["model"][1] < 0.05 and errors["data"][1] < 0.03  # measured 0.074 -> 0.040, 0.042 -> 0.021


@pytest.mark.parametrize("a,b,tau", [(1.0, 0.0, 1.0), (1.3, -0.4, 0.8), (-0.2, 0.9, 1.5)])
def test_leaky_relu_closed_moments_match_quadrature(a, b, tau):
    g1, g2, var, q = deep.leaky_relu_moments(a, b, tau)
    m = gaussian_moments({"family": "leaky_relu", "a": a, "b": b}, tau=tau)
    assert (g1, g2, var, q) == pytest.approx((m.d1**2, m.d2**2, m.var, m.q), rel=1e-10, abs=1e-13)


@pytest.mark.parametrize("scale,c,tau", [(1.0, 1.0, 1.0), (0.75, 1.2, 1.05), (2.0, 0.3, 0.7)])
def test_clip_closed_moments_match_quadrature(scale, c, tau):
    g1, g2, var, q = deep.clip_moments(scale, c, tau)
    m = gaussian_moments({"family": "clip", "c": c, "scale": scale}, tau=tau)
    assert (g1, var, q) == pytest.approx((m.d1**2, m.var, m.q), rel=1e-10)
    assert g2 == 0.0 and abs(m.d2) < 1e-12


def test_matched_explicit_nets_reproduce_the_targets():
    data, stats = _data(256)
    relu = deep.deq_coefficients("relu", tau0=stats.tau, sigma_a2=0.2)
    two = deep.match_two_layer_leaky_relu(relu.targets, tau0=stats.tau)
    assert two.residual < 1e-9
    a1, b1, a2, b2 = (two.parameters[k] for k in ("a1", "b1", "a2", "b2"))
    # positive homogeneity: (s a1, s b1, a2/s, b2/s) has the same coefficients (only three unknowns are free)
    first = deep.leaky_relu_moments(2 * a1, 2 * b1, stats.tau)
    second = deep.leaky_relu_moments(a2 / 2, b2 / 2, math.sqrt(first[2]))
    assert deep.explicit_net_coefficients([first, second], tau0=stats.tau) == pytest.approx(two.achieved, rel=1e-12)
    tanh = deep.deq_coefficients("tanh", tau0=stats.tau, sigma_a2=0.2)
    one = deep.match_one_layer_clip(tanh.targets, tau0=stats.tau)
    assert one.residual < 1e-9 and abs(tanh.targets[1]) < 1e-30 and abs(tanh.targets[2]) < 1e-30
    # the explicit nets' exact CKs are close to the implicit ones (equivalent to leading order)
    for coefs, match, tol in ((relu, two, 1e-3), (tanh, one, 0.02)):
        G = deep.deq_exact_ck(data.X, coefs)
        explicit = deep.exact_ck(data.X, match.activations, tau0=stats.tau)[-1]
        assert deep.relative_error(explicit, G) < tol
