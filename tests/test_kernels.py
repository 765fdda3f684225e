"""Expected kernels: every closed form against Monte Carlo, every quadrature path against closed forms
or independent references, and the Mehler expansion against the kernels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from rmtbench.activations import ACTIVATIONS, get_activation, hermite_coefficients
from rmtbench.theory.kernels import (
    derivative_kernel_from_covariance,
    expected_derivative_kernel,
    expected_kernel,
    expected_kernel_diag,
    kernel_from_covariance,
)

MC_DRAWS = 200_000
Z_MAX = 5.0


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    """Three inputs in R^3 with norms 0.6, 1.0, 1.45 and correlations 0.35, −0.4, 0.5."""
    corr = np.array([[1.0, 0.35, -0.4], [0.35, 1.0, 0.5], [-0.4, 0.5, 1.0]])
    norms = np.array([0.6, 1.0, 1.45])
    return np.linalg.cholesky(corr).T * norms  # columns are samples


@pytest.fixture(scope="module")
def projections(points: np.ndarray) -> np.ndarray:
    """u = w^T x for MC_DRAWS Gaussian w: shape (MC_DRAWS, 3)."""
    rng = np.random.default_rng(20250422)
    return rng.standard_normal((MC_DRAWS, points.shape[0])) @ points


def _assert_matches_monte_carlo(theory: np.ndarray, f_u: np.ndarray, label: str) -> None:
    n = f_u.shape[1]
    for i in range(n):
        for j in range(i, n):
            prod = f_u[:, i] * f_u[:, j]
            mean, se = prod.mean(), prod.std() / math.sqrt(prod.size)
            if se == 0.0:
                assert theory[i, j] == pytest.approx(mean, abs=1e-12), (label, i, j)
                continue
            z = (theory[i, j] - mean) / se
            assert abs(z) < Z_MAX, f"{label} pair ({i},{j}): theory {theory[i, j]:.6g} MC {mean:.6g} z={z:.2f}"


CLOSED = sorted(n for n, a in ACTIVATIONS.items() if a.kernel is not None) + [
    "leaky_relu(a=-0.3,b=1.2)",
    "binary(threshold=0.0,scale=1.5)",
    "centered(base=relu,shift=0.3)",
    "centered(base=sin,shift=-0.2)",
]


@pytest.mark.parametrize("spec", CLOSED)
def test_closed_form_kernels_against_monte_carlo(spec: str, points: np.ndarray, projections: np.ndarray) -> None:
    act = get_activation(spec)
    assert act.kernel is not None
    theory = expected_kernel(act, points, method="closed")
    _assert_matches_monte_carlo(theory, act(projections), spec)


NO_CLOSED = ["tanh", "sigmoid", "softplus", "ternary(s_minus=-0.5,s_plus=0.81,scale=1.75)",
             "binary(threshold=0.4,scale=1.0)", "clip(c=0.6,scale=1.0)", "centered(base=tanh,shift=0.1)"]


@pytest.mark.parametrize("spec", NO_CLOSED)
def test_quadrature_kernels_against_monte_carlo(spec: str, points: np.ndarray, projections: np.ndarray) -> None:
    act = get_activation(spec)
    assert act.kernel is None
    _assert_matches_monte_carlo(expected_kernel(act, points), act(projections), spec)


DERIVATIVE_CLOSED = ["linear", "relu", "abs", "erf", "sin", "cos", "quadratic", "gauss",
                     "leaky_relu(a=-0.3,b=1.2)", "centered(base=relu,shift=0.3)"]


@pytest.mark.parametrize("spec", DERIVATIVE_CLOSED)
def test_closed_form_derivative_kernels_against_monte_carlo(spec: str, points: np.ndarray,
                                                            projections: np.ndarray) -> None:
    act = get_activation(spec)
    assert act.derivative_kernel is not None and act.derivative is not None
    theory = expected_derivative_kernel(act, points, method="closed")
    _assert_matches_monte_carlo(theory, act.derivative(projections), spec)


@pytest.mark.parametrize("spec", ["tanh", "softplus", "clip(c=0.6,scale=2.0)"])
def test_quadrature_derivative_kernels_against_monte_carlo(spec: str, points: np.ndarray,
                                                           projections: np.ndarray) -> None:
    act = get_activation(spec)
    assert act.derivative_kernel is None
    _assert_matches_monte_carlo(expected_derivative_kernel(act, points), act.derivative(projections), spec)


def test_jump_derivative_kernels_are_limits_of_smoothed_activations() -> None:
    # sign = lim erf(t/ε) and erf(·/ε) has the closed derivative kernel ε^{-2} K'_erf(va/ε², vb/ε², c/ε²).
    va, vb = np.array([0.5, 2.0]), np.array([1.0, 0.3])
    cov = np.array([[0.2, -0.1], [0.9, 0.4]])
    eps = 1e-5
    limit = derivative_kernel_from_covariance("erf", va / eps**2, vb / eps**2, cov / eps**2) / eps**2
    sign = derivative_kernel_from_covariance("sign", va, vb, cov)
    np.testing.assert_allclose(sign, limit, rtol=1e-8)
    np.testing.assert_allclose(derivative_kernel_from_covariance("step", va, vb, cov), limit / 4, rtol=1e-8)
    assert np.isinf(derivative_kernel_from_covariance("sign", [1.0], [1.0], [[1.0]])).all()


def test_ternary_derivative_kernel_is_a_sum_of_densities() -> None:
    s_minus, s_plus, c = -0.5, 0.81, 1.75
    act = get_activation({"family": "ternary", "s_minus": s_minus, "s_plus": s_plus, "scale": c})
    va, vb, cv = 0.8, 1.3, 0.4
    density = stats.multivariate_normal(mean=[0, 0], cov=[[va, cv], [cv, vb]]).pdf
    want = c * c * sum(density([a, b]) for a in (s_minus, s_plus) for b in (s_minus, s_plus))
    got = derivative_kernel_from_covariance(act, [va], [vb], [[cv]])[0, 0]
    assert got == pytest.approx(want, rel=1e-12)


# ------------------------------------------------------------------------------------------------
# Quadrature paths against closed forms and independent references.


def _random_inputs(p: int, n: int, low: float, high: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((p, n))
    return X / np.linalg.norm(X, axis=0) * rng.uniform(low, high, n)


def test_erf_tensor_hermite_against_closed_form() -> None:
    # Formula sheet P22: 48² nodes give about 5e-7 against erf's closed form (norms near 1).
    X = _random_inputs(4, 30, 0.8, 1.2, seed=1)
    closed = expected_kernel("erf", X)
    assert np.abs(expected_kernel("erf", X, method="hermite", nodes=48) - closed).max() < 1e-6
    # larger norms get proportionally more nodes and stay accurate
    Y = _random_inputs(4, 12, 1.0, 2.0, seed=2)
    assert np.abs(expected_kernel("erf", Y, method="hermite") - expected_kernel("erf", Y)).max() < 1e-8
    assert np.abs(expected_kernel("erf", X, Y, method="mehler") - expected_kernel("erf", X, Y)).max() < 1e-8


def test_relu_through_the_quadrature_paths() -> None:
    X = _random_inputs(5, 25, 0.8, 1.2, seed=3)
    closed = expected_kernel("relu", X)
    # Tensor Gauss–Hermite across a kink converges only like O(1/nodes) (pitfall P10): loose.
    err_gh = np.abs(expected_kernel("relu", X, method="hermite", nodes=48) - closed).max()
    assert 1e-6 < err_gh < 2e-2
    # The exact-inner piecewise rule splits at the kinks: tight.
    assert np.abs(expected_kernel("relu", X, method="piecewise") - closed).max() < 1e-12
    assert np.abs(expected_kernel("relu", X, method="mehler") - closed).max() < 1e-12


@pytest.mark.parametrize("spec", ["ternary(s_minus=-0.5,s_plus=0.81,scale=1.75)", "clip(c=0.6,scale=2.0)",
                                  "centered(base=binary(threshold=0.3,scale=2.0),shift=0.7)"])
def test_mehler_and_piecewise_paths_agree(spec: str) -> None:
    # Exact Hermite coefficients of piecewise-linear φ in the series; the exact-inner rule on all pairs.
    X = _random_inputs(12, 40, 0.3, 2.0, seed=7)
    X[:, 0] = 0.0  # a zero input
    np.testing.assert_allclose(expected_kernel(spec, X, method="mehler"), expected_kernel(spec, X, method="piecewise"),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("spec", ["sign", "step", "abs", "binary(threshold=0.0,scale=1.5)", "leaky_relu(a=-0.3,b=1.2)"])
@pytest.mark.parametrize("rho", [0.0, 0.45, -0.8, 0.99, 0.99999, 1.0])
def test_piecewise_path_near_degenerate_correlations(spec: str, rho: float) -> None:
    va, vb = np.array([0.3, 1.0, 2.5]), np.array([0.5, 1.0, 4.0])
    cov = rho * np.sqrt(np.outer(va, vb))
    closed = kernel_from_covariance(spec, va, vb, cov, method="closed")
    piecewise = kernel_from_covariance(spec, va, vb, cov, method="piecewise")
    np.testing.assert_allclose(piecewise, closed, rtol=0, atol=1e-10)


def test_binary_threshold_kernel_against_bivariate_normal_cdf() -> None:
    theta, scale = 0.4, 2.0
    act = get_activation({"family": "binary", "threshold": theta, "scale": scale})
    for va, vb, c in [(1.0, 1.0, 0.3), (0.5, 2.0, -0.7), (1.2, 0.9, 1.02)]:
        # P(u > θ, v > θ) = P(−u < −θ, −v < −θ)
        want = scale**2 * stats.multivariate_normal(mean=[0, 0], cov=[[va, c], [c, vb]]).cdf([-theta, -theta])
        got = kernel_from_covariance(act, [va], [vb], [[c]], method="piecewise")[0, 0]
        assert got == pytest.approx(want, abs=1e-7)  # scipy's Genz CDF is the looser of the two


def test_tanh_against_two_dimensional_scipy_quadrature() -> None:
    from scipy import integrate

    va, vb, c = 0.7, 1.6, 0.5
    sa, sb = math.sqrt(va), math.sqrt(vb)
    rho = c / (sa * sb)
    r = math.sqrt(1 - rho * rho)
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    def integrand(x2: float, x1: float) -> float:
        return math.tanh(sa * x1) * math.tanh(sb * (rho * x1 + r * x2)) * pdf(x1) * pdf(x2)

    ref, _ = integrate.dblquad(integrand, -9, 9, -9, 9, epsabs=1e-12, epsrel=1e-11)
    for method in ("mehler", "hermite"):
        got = kernel_from_covariance("tanh", [va], [vb], [[c]], method=method)[0, 0]
        assert got == pytest.approx(ref, abs=1e-9), method


# ------------------------------------------------------------------------------------------------
# Mehler.


@pytest.mark.parametrize("spec", ["erf", "tanh", "sigmoid", "sin", "cos", "gauss", "softplus"])
def test_mehler_expansion_matches_kernel(spec: str) -> None:
    # Unit-norm inputs with correlation ρ: E[φ(u)φ(v)] = Σ_k a_k² ρ^k. Kernels through the
    # closed form or the tensor Gauss–Hermite rule, independent of the series code. The 1e-8
    # tolerance is tanh's: its poles at ±iπ/2 hold 48² Gauss–Hermite nodes to about 4e-9.
    order = 40
    k = np.arange(order + 1)
    coeffs = hermite_coefficients(spec, tau=1.0, order=order)
    method = "closed" if get_activation(spec).kernel is not None else "hermite"
    rhos = np.array([-0.6, -0.2, 0.3, 0.6])
    series = np.array([np.sum(coeffs**2 * r**k) for r in rhos])
    kernel = kernel_from_covariance(spec, np.ones(4), np.ones(1), rhos[:, None], method=method)[:, 0]
    np.testing.assert_allclose(kernel, series, rtol=0, atol=1e-8)
    # Different norms: Σ_k a_k(φ_{σa}) a_k(φ_{σb}) ρ^k.
    ca = hermite_coefficients(spec, tau=0.7, order=order)
    cb = hermite_coefficients(spec, tau=1.3, order=order)
    cross = kernel_from_covariance(spec, [0.49], [1.69], [[0.5 * 0.7 * 1.3]], method=method)[0, 0]
    assert cross == pytest.approx(np.sum(ca * cb * 0.5**k), abs=1e-8)


# ------------------------------------------------------------------------------------------------
# Consistency, symmetry and edge cases.


@pytest.mark.parametrize("spec,atol", [
    ("relu", 1e-14),
    # tensor Gauss–Hermite on strongly correlated pairs: the roles of u and v swap between paths
    ("tanh", 1e-7),
    # a jump makes K(ρ) ≈ K(1) − O(sqrt(1 − ρ)): a self-pair given as two copies has ρ off by one
    # rounding (1e-16), which moves K by about 1e-8; the symmetric path knows ρ = 1 exactly
    ("ternary(s_minus=-0.5,s_plus=0.81,scale=1.75)", 1e-7),
])
def test_symmetric_and_general_paths_agree(spec: str, atol: float) -> None:
    X = _random_inputs(3, 20, 0.5, 1.5, seed=4)
    sym = expected_kernel(spec, X)
    assert np.array_equal(sym, sym.T)
    general = expected_kernel(spec, X, X.copy())
    np.testing.assert_allclose(sym, general, rtol=0, atol=atol)
    off = ~np.eye(20, dtype=bool)
    np.testing.assert_allclose(sym[off], general[off], rtol=0, atol=min(atol, 1e-10) if "ternary" in spec else atol)
    diag = expected_kernel_diag(spec, X)
    np.testing.assert_allclose(np.diagonal(sym), diag, rtol=1e-14)  # quadrature paths: the exact 1-D values


def test_expected_kernel_diag_closed_values() -> None:
    X = _random_inputs(3, 5, 0.3, 2.0, seed=5)
    v = np.sum(X * X, axis=0)
    np.testing.assert_allclose(expected_kernel_diag("relu", X), v / 2, rtol=1e-14)
    np.testing.assert_allclose(expected_kernel_diag("erf", X), (2 / np.pi) * np.arcsin(2 * v / (1 + 2 * v)), rtol=1e-13)
    np.testing.assert_allclose(expected_kernel_diag("sign", X), 1.0, rtol=1e-14)


def test_edge_cases() -> None:
    # A covariance a rounding above sqrt(va vb) is clipped, not turned into NaN.
    va = np.array([1.0, 2.0])
    cov = np.sqrt(np.outer(va, va)) * (1 + 1e-15)
    for spec in ("relu", "sign", "tanh", "ternary(s_minus=-0.5,s_plus=0.81,scale=1.75)"):
        assert np.isfinite(kernel_from_covariance(spec, va, va, cov)).all(), spec
    # A zero input: u ≡ 0.
    X = np.array([[0.0, 1.0], [0.0, 0.5]])
    K = expected_kernel("cos", X)
    assert K[0, 0] == pytest.approx(1.0) and K[0, 1] == pytest.approx(math.exp(-1.25 / 2))
    np.testing.assert_allclose(expected_kernel("relu", X)[0], [0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(expected_kernel("tanh", X)[0], [0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(expected_kernel("step", X)[0], [0.0, 0.0], atol=1e-15)


def test_errors() -> None:
    with pytest.raises(ValueError, match="closed-form"):
        kernel_from_covariance("tanh", [1.0], [1.0], [[0.5]], method="closed")
    with pytest.raises(ValueError, match="piecewise"):
        kernel_from_covariance("tanh", [1.0], [1.0], [[0.5]], method="piecewise")
    with pytest.raises(ValueError, match="method"):
        kernel_from_covariance("tanh", [1.0], [1.0], [[0.5]], method="simpson")
    with pytest.raises(ValueError, match="cov"):
        kernel_from_covariance("relu", [1.0, 2.0], [1.0], [[0.5]])
    with pytest.raises(ValueError, match="pointwise"):
        derivative_kernel_from_covariance("ternary(s_minus=-0.5,s_plus=0.81,scale=1.0)", [1.0], [1.0], [[0.5]],
                                          method="hermite")
    with pytest.raises(ValueError, match="p x"):
        expected_kernel("relu", np.ones(3))


def test_quadrature_kernel_is_positive_semidefinite() -> None:
    X = _random_inputs(40, 120, 0.9, 1.1, seed=6)
    for spec in ("tanh", "clip(c=0.6,scale=1.0)"):
        K = expected_kernel(spec, X)
        assert np.linalg.eigvalsh(K).min() > -1e-10, spec


@pytest.mark.parametrize("act", ["relu", "abs", "sign", "leaky_relu(a=1.0,b=0.1)", "binary(threshold=0.8,scale=1.7)",
                                 "ternary(s_minus=-0.4,s_plus=1.1,scale=2.0)", "clip(c=0.7,scale=1.5)",
                                 "centered(base=relu,shift=0.4)"])
def test_piecewise_diagonal_closed_form_against_split_quadrature(act):
    # the closed form for piecewise-linear φ against the kink-split Gauss rule it replaced (~1e-14 each)
    from rmtbench.activations import get_activation
    from rmtbench.quadrature import gaussian_expectations
    from rmtbench.theory.kernels import expected_kernel_diag

    a = get_activation(act)
    assert a.piecewise is not None
    rng = np.random.default_rng(3)
    A = rng.standard_normal((4, 30)) * rng.exponential(2.0, size=30)
    A[:, 0] = 0.0  # a zero input: φ(0)²
    ref = gaussian_expectations(lambda t: np.asarray(a.phi(t), dtype=float) ** 2, np.linalg.norm(A, axis=0), kinks=a.kinks)
    np.testing.assert_allclose(expected_kernel_diag(a, A), ref, rtol=1e-12, atol=1e-300)


def test_piecewise_diagonal_keeps_its_digits_on_narrow_sloped_pieces():
    # clip's middle piece is 2c/s wide in xi units: at large input norms s its truncated moments cancel
    # catastrophically in closed form (found in review: 1e-4 relative error at s = 1e6)
    import math

    from scipy import stats

    from rmtbench.theory.kernels import expected_kernel_diag

    c, scale = 0.7, 1.5
    for s in (0.3, 1e3, 1e5, 1e6):
        alpha = c / s
        # ∫_{-α}^{α} x² f(x) dx by its alternating Taylor series (exact for any α, no cancellation for small α)
        inner = 2 / math.sqrt(2 * math.pi) * sum((-0.5) ** k * alpha ** (2 * k + 3) / (math.factorial(k) * (2 * k + 3))
                                                 for k in range(60))
        exact = scale**2 * (c * c * 2 * stats.norm.sf(alpha) + s * s * inner)
        got = expected_kernel_diag(f"clip(c={c},scale={scale})", np.array([[s]]))[0]
        assert got == pytest.approx(exact, rel=1e-12), s
