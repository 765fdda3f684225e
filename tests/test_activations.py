"""Activation registry, Hermite coefficients, Stein moments and alpha coefficients.

References are closed forms derived by hand (formula sheet sections 1, 4.2, 4.3, 4.5, 6) and an
independent adaptive quadrature (scipy.integrate.quad split at the kinks).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special

from rmtbench.activations import (
    ACTIVATIONS,
    Activation,
    activation_names,
    alpha_coefficients,
    family_names,
    gaussian_moments,
    get_activation,
    hermite_coefficients,
    hermite_nu,
    piecewise_function,
)

SQRT2PI = math.sqrt(2 * math.pi)
PDF0 = 1 / SQRT2PI


def _quad_expectation(g, tau: float, kinks: tuple[float, ...] = ()) -> float:
    """E g(ξ) for integrands already written in ξ, split at kink/τ, by scipy's adaptive quad."""
    cuts = sorted({k / tau for k in kinks})
    edges = [-np.inf, *cuts, np.inf]
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        val, _ = integrate.quad(lambda x: g(x) * math.exp(-0.5 * x * x) / SQRT2PI, a, b,
                                epsabs=1e-14, epsrel=1e-13, limit=200)
        total += val
    return total


def _he_normalised(k: int, x: float) -> float:
    return special.eval_hermitenorm(k, x) / math.sqrt(math.factorial(k))


# ------------------------------------------------------------------------------------------------
# Hermite coefficients.


def _closed_form_hermite(name: str, tau: float) -> tuple[list[float], float]:
    """(a_0..a_3, ν) of φ_τ(t) = φ(τt), from a_k = τ^k E φ^{(k)}(τξ)/sqrt(k!) by hand."""
    e = math.exp(-tau * tau / 2)
    s6, s2 = math.sqrt(6), math.sqrt(2)
    if name == "relu":
        return [tau / SQRT2PI, tau / 2, tau / math.sqrt(4 * math.pi), 0.0], tau * tau / 2
    if name == "abs":
        return [tau * math.sqrt(2 / math.pi), 0.0, tau / math.sqrt(math.pi), 0.0], tau * tau
    if name == "sign":  # φ' = 2δ, φ''' = 2δ'' and E δ''(τξ) = −pdf(0)/τ³
        return [0.0, math.sqrt(2 / math.pi), 0.0, -math.sqrt(2 / math.pi) / s6], 1.0
    if name == "erf":
        g = 1 + 2 * tau * tau
        a1 = tau * (2 / math.sqrt(math.pi)) / math.sqrt(g)
        a3 = tau**3 * (2 / math.sqrt(math.pi)) * (4 * tau * tau * g**-1.5 - 2 * g**-0.5) / s6
        return [0.0, a1, 0.0, a3], (2 / math.pi) * math.asin(2 * tau * tau / g)
    if name == "sin":
        return [0.0, tau * e, 0.0, -(tau**3) * e / s6], (1 - math.exp(-2 * tau * tau)) / 2
    if name == "cos":
        return [e, 0.0, -tau * tau * e / s2, 0.0], (1 + math.exp(-2 * tau * tau)) / 2
    if name == "quadratic":
        return [tau * tau, 0.0, s2 * tau * tau, 0.0], 3 * tau**4
    raise KeyError(name)


@pytest.mark.parametrize("tau", [1.0, 0.8, 1.7])
@pytest.mark.parametrize("name", ["relu", "abs", "sign", "erf", "sin", "cos", "quadratic"])
def test_hermite_coefficients_closed_forms(name: str, tau: float) -> None:
    coeffs, nu = _closed_form_hermite(name, tau)
    np.testing.assert_allclose(hermite_coefficients(name, tau=tau, order=3), coeffs, rtol=0, atol=1e-12)
    assert hermite_nu(name, tau=tau) == pytest.approx(nu, rel=1e-13)


def test_hermite_coefficients_match_formula_sheet_table() -> None:
    # The sheet's 6-digit table at τ = 1, including tanh and the logistic sigmoid.
    table = {
        "tanh": ([0, 0.605706, 0, -0.148437], 0.394294),
        "sigmoid": ([0.5, 0.206621, 0, -0.025473], 0.293379),
        "cos": ([0.606531, 0, -0.428882, 0], 0.567668),
        "sin": ([0, 0.606531, 0, -0.247615], 0.432332),
    }
    for name, (coeffs, nu) in table.items():
        np.testing.assert_allclose(hermite_coefficients(name), coeffs, atol=6e-7)
        assert hermite_nu(name) == pytest.approx(nu, abs=6e-7)


@pytest.mark.parametrize("tau", [1.0, 0.6])
def test_sigmoid_is_a_rescaled_tanh(tau: float) -> None:
    # σ(t) = (1 + tanh(t/2))/2, so a_k(σ_τ) = a_k(tanh_{τ/2})/2 for k ≥ 1 and a_0 = 1/2.
    sig = hermite_coefficients("sigmoid", tau=tau, order=7)
    th = hermite_coefficients("tanh", tau=tau / 2, order=7)
    assert sig[0] == pytest.approx(0.5, abs=1e-15)
    np.testing.assert_allclose(sig[1:], th[1:] / 2, atol=1e-15)
    np.testing.assert_allclose(th[::2], 0.0, atol=1e-15)  # odd: even coefficients vanish


@pytest.mark.parametrize("spec", ["relu", "abs", "sign", "erf", "tanh", "sigmoid", "sin", "cos", "softplus",
                                  "ternary(s_minus=-0.5,s_plus=0.81,scale=1.75)", "clip(c=0.7,scale=1.0)"])
def test_hermite_coefficients_against_scipy_quad(spec: str) -> None:
    act = get_activation(spec)
    tau = 1.3
    ours = hermite_coefficients(act, tau=tau, order=5)
    for k in range(6):
        ref = _quad_expectation(lambda x: float(act.phi(np.array(tau * x))) * _he_normalised(k, x), tau, act.kinks)
        assert ours[k] == pytest.approx(ref, abs=1e-10), k


def test_parseval_for_a_smooth_activation() -> None:
    coeffs = hermite_coefficients("erf", tau=0.9, order=80)  # high orders: tests the wider rule
    assert np.sum(coeffs**2) == pytest.approx(hermite_nu("erf", tau=0.9), abs=1e-13)


# ------------------------------------------------------------------------------------------------
# Stein moments.


def test_relu_moments() -> None:
    tau = 1.3
    m = gaussian_moments("relu", tau=tau)
    assert m.mean == pytest.approx(tau * PDF0, rel=1e-14)
    assert m.d1 == pytest.approx(0.5, rel=1e-14)
    assert m.d2 == pytest.approx(PDF0 / tau, rel=1e-13)  # E δ(τξ) = density of τξ at 0
    assert abs(m.d3) < 1e-13  # E δ'(τξ) = −p'(0) = 0
    assert m.d4 == pytest.approx(-PDF0 / tau**3, rel=1e-12)  # E δ''(τξ) = p''(0)
    assert m.second == pytest.approx(tau * tau / 2, rel=1e-14)
    assert m.var == pytest.approx(tau * tau * (0.5 - 1 / (2 * math.pi)), rel=1e-13)
    assert m.d1_sq == pytest.approx(0.5, rel=1e-14)
    # E[φ'² + φ̄ φ''] = 1/2 + (0 − mean)·pdf(0)/τ = 1/2 − 1/(2π), whatever τ
    assert m.q == pytest.approx(0.5 - 1 / (2 * math.pi), rel=1e-13)


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_trigonometric_and_erf_moments(tau: float) -> None:
    e = math.exp(-tau * tau / 2)
    s = gaussian_moments("sin", tau=tau)
    np.testing.assert_allclose([s.mean, s.d1, s.d2, s.d3, s.d4], [0, e, 0, -e, 0], atol=1e-13)
    c = gaussian_moments("cos", tau=tau)
    np.testing.assert_allclose([c.mean, c.d1, c.d2, c.d3, c.d4], [e, 0, -e, 0, e], atol=1e-12)
    g = 1 + 2 * tau * tau
    r = gaussian_moments("erf", tau=tau)
    d3 = (2 / math.sqrt(math.pi)) * (4 * tau * tau * g**-1.5 - 2 * g**-0.5)
    np.testing.assert_allclose([r.mean, r.d1, r.d2, r.d3], [0, (2 / math.sqrt(math.pi)) / math.sqrt(g), 0, d3],
                               atol=1e-12)
    assert r.d1_sq == pytest.approx((4 / math.pi) / math.sqrt(1 + 4 * tau * tau), rel=1e-13)


def _sech2(t):
    return 1 / np.cosh(np.clip(t, -300, 300)) ** 2


SMOOTH_DERIVATIVES = {
    # name: (φ', φ'') written out by hand, used only by the test's direct integration
    "tanh": (_sech2, lambda t: -2 * np.tanh(t) * _sech2(t)),
    "erf": (lambda t: 2 / math.sqrt(math.pi) * np.exp(-t * t), lambda t: -4 * t / math.sqrt(math.pi) * np.exp(-t * t)),
    "sin": (np.cos, lambda t: -np.sin(t)),
    "sigmoid": (lambda t: special.expit(t) * (1 - special.expit(t)),
                lambda t: special.expit(t) * (1 - special.expit(t)) * (1 - 2 * special.expit(t))),
    "softplus": (special.expit, lambda t: special.expit(t) * (1 - special.expit(t))),
    "gauss": (lambda t: -t * np.exp(-t * t / 2), lambda t: (t * t - 1) * np.exp(-t * t / 2)),
}


@pytest.mark.parametrize("name", sorted(SMOOTH_DERIVATIVES))
def test_stein_moments_against_direct_integration(name: str) -> None:
    tau = 1.15
    act = ACTIVATIONS[name]
    d1f, d2f = SMOOTH_DERIVATIVES[name]
    m = gaussian_moments(act, tau=tau)
    phi = lambda x: float(act.phi(np.array(tau * x)))  # noqa: E731
    mean = _quad_expectation(phi, tau)
    assert m.mean == pytest.approx(mean, abs=1e-12)
    assert m.d1 == pytest.approx(_quad_expectation(lambda x: d1f(tau * x), tau), abs=1e-12)
    assert m.d2 == pytest.approx(_quad_expectation(lambda x: d2f(tau * x), tau), abs=1e-12)
    assert m.d1_sq == pytest.approx(_quad_expectation(lambda x: d1f(tau * x) ** 2, tau), abs=1e-12)
    q = _quad_expectation(lambda x: d1f(tau * x) ** 2 + (phi(x) - mean) * d2f(tau * x), tau)
    assert m.q == pytest.approx(q, abs=1e-12)
    # the registered a.e. derivative agrees with Stein's E φ' (no finite differences anywhere)
    assert _quad_expectation(lambda x: float(act.derivative(np.array(tau * x))), tau) == pytest.approx(m.d1, abs=1e-12)


def test_step_like_moments() -> None:
    tau = 0.9
    sign = gaussian_moments("sign", tau=tau)
    assert sign.d1 == pytest.approx(2 * PDF0 / tau, rel=1e-13)
    assert sign.d1_sq == math.inf  # φ' = 2δ is not square integrable
    assert abs(sign.q) < 1e-13  # φ̄² = 1 a.e.: E[(ξ²−1)]/(2τ²) = 0
    assert gaussian_moments("step", tau=tau).d1_sq == math.inf
    assert gaussian_moments("relu", tau=tau).d1_sq == pytest.approx(0.5)


@pytest.mark.parametrize("s_minus,s_plus,c", [(-0.5, 0.81, 1.75), (-40.0, 0.809, 1.747), (-1.2, 0.3, -2.0)])
def test_ternary_moments_formula_sheet_4_5(s_minus: float, s_plus: float, c: float) -> None:
    tau = 1.01
    act = get_activation({"family": "ternary", "s_minus": s_minus, "s_plus": s_plus, "scale": c})
    m = gaussian_moments(act, tau=tau)
    f = lambda s: math.exp(-s * s / (2 * tau * tau)) / (tau * SQRT2PI)  # noqa: E731  N(0, τ²) density
    p_plus, p_minus = special.ndtr(-s_plus / tau), special.ndtr(s_minus / tau)
    assert m.d1 == pytest.approx(c * (f(s_plus) + f(s_minus)), abs=1e-13)
    assert m.d2 == pytest.approx(c * (s_plus * f(s_plus) + s_minus * f(s_minus)) / tau**2, abs=1e-13)
    assert m.var == pytest.approx(c * c * (p_plus + p_minus - (p_plus - p_minus) ** 2), abs=1e-13)
    assert m.d1_sq == math.inf


@pytest.mark.parametrize("a,b", [(1.0, 0.1), (0.2, -0.7), (-1.0, 1.0)])
def test_leaky_relu_moments_formula_sheet_6(a: float, b: float) -> None:
    tau = 0.8
    m = gaussian_moments({"family": "leaky_relu", "a": a, "b": b}, tau=tau)
    # The sheet writes these for max(a t, b t) with a ≥ b conventions symmetric in (a, b).
    assert m.d1**2 == pytest.approx((a + b) ** 2 / 4, abs=1e-13)
    assert m.d2**2 == pytest.approx((a - b) ** 2 / (2 * math.pi * tau * tau), abs=1e-13)
    assert m.var == pytest.approx(tau * tau * ((a * a + b * b) * (math.pi - 1) + 2 * a * b) / (2 * math.pi), abs=1e-13)


def test_moments_reject_bad_tau() -> None:
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="tau"):
            gaussian_moments("relu", tau=bad)


# ------------------------------------------------------------------------------------------------
# alpha coefficients against LC18 Table 2 (τ_v = 0.7 is a variance there: tau = sqrt(0.7)).

TV = 0.7


def _lc18_table2() -> dict[str, tuple[float, float, float]]:
    t = TV
    sp, sm = 1.0, -0.1  # ς₊ max(t,0) + ς₋ max(−t,0) = max(t, 0.1 t)
    return {
        "linear": (0.0, 1.0, 0.0),
        "relu": ((0.25 - 1 / (2 * math.pi)) * t, 0.25, 1 / (8 * math.pi * t)),
        "abs": ((1 - 2 / math.pi) * t, 0.0, 1 / (2 * math.pi * t)),
        "leaky_relu(a=1.0,b=0.1)": ((math.pi - 2) / (4 * math.pi) * t * (sp + sm) ** 2, (sp - sm) ** 2 / 4,
                                    (sp + sm) ** 2 / (8 * math.pi * t)),
        "step": (0.25 - 1 / (2 * math.pi), 1 / (2 * math.pi * t), 0.0),
        "sign": (1 - 2 / math.pi, 2 / (math.pi * t), 0.0),
        "quadratic": (2 * t * t, 0.0, 1.0),  # ς = (1, 0, 0); d2 = ς₂² (the code's ς₀² is a bug)
        "cos": (0.5 + math.exp(-2 * t) / 2 - math.exp(-t), 0.0, math.exp(-t) / 4),
        "sin": (0.5 - math.exp(-2 * t) / 2 - t * math.exp(-t), math.exp(-t), 0.0),
        # arcsin, not the code's arccos
        "erf": ((2 / math.pi) * (math.asin(2 * t / (2 * t + 1)) - 2 * t / (2 * t + 1)),
                4 / (math.pi * (2 * t + 1)), 0.0),
        "gauss": (1 / math.sqrt(2 * t + 1) - 1 / (t + 1), 0.0, 1 / (4 * (t + 1) ** 3)),
    }


@pytest.mark.parametrize("name", sorted(_lc18_table2()))
def test_alpha_coefficients_lc18_table2(name: str) -> None:
    d0, d1, d2 = _lc18_table2()[name]
    a0, a1, a2, a3 = alpha_coefficients(name, tau=math.sqrt(TV))
    assert (a0, a1, a2) == pytest.approx((d0, d1, d2), abs=1e-9)
    assert a3 == 2 * a2


def test_alpha0_uses_tau_squared() -> None:
    # α0 = Var φ − τ²(E φ')², not the slide's τ(E φ')²: at τ = 2 the two differ by 2(E φ')².
    tau = 2.0
    m = gaussian_moments("erf", tau=tau)
    assert alpha_coefficients("erf", tau=tau)[0] == pytest.approx(m.var - 4 * m.d1**2, abs=1e-14)


# ------------------------------------------------------------------------------------------------
# Registry and parametrised families.


def test_registry_contents_and_fields() -> None:
    expected = {"linear", "relu", "abs", "erf", "tanh", "sigmoid", "sign", "step", "sin", "cos", "quadratic",
                "gauss", "softplus"}
    assert set(activation_names()) == expected
    for name, act in ACTIVATIONS.items():
        assert isinstance(act, Activation) and act.name == name and get_activation(name) is act
        assert act.parity in ("odd", "even", "none")
        t = np.linspace(-2.3, 2.1, 7)
        assert act(t).shape == t.shape
        if act.parity == "odd":
            np.testing.assert_allclose(act(-t), -act(t), atol=1e-15)
        elif act.parity == "even":
            np.testing.assert_allclose(act(-t), act(t), atol=1e-15)
    closed = {n for n, a in ACTIVATIONS.items() if a.kernel is not None}
    assert closed == expected - {"tanh", "sigmoid", "softplus"}


def test_unknown_name_lists_allowed_names() -> None:
    with pytest.raises(ValueError) as info:
        get_activation("swish")
    message = str(info.value)
    assert "'swish'" in message
    for name in activation_names() + family_names():
        assert name in message
    with pytest.raises(ValueError, match="ternary"):
        get_activation({"family": "quaternary"})


CANONICAL = [
    ({"family": "ternary", "s_minus": -0.5, "s_plus": 0.81, "scale": 1.75},
     "ternary(s_minus=-0.5,s_plus=0.81,scale=1.75)"),
    ({"family": "leaky_relu", "a": 0.01, "b": 1}, "leaky_relu(a=0.01,b=1.0)"),
    ({"family": "binary", "threshold": 0.81}, "binary(threshold=0.81,scale=1.0)"),
    ({"family": "clip", "c": 2, "scale": 0.5}, "clip(c=2.0,scale=0.5)"),
    ({"family": "centered", "base": "relu", "shift": 0.25}, "centered(base=relu,shift=0.25)"),
    ({"family": "centered", "base": {"family": "binary", "threshold": -0.0, "scale": 2.0}, "shift": 1.0},
     "centered(base=binary(threshold=0.0,scale=2.0),shift=1.0)"),
]


@pytest.mark.parametrize("spec,name", CANONICAL)
def test_parametrised_specs_round_trip(spec: dict, name: str) -> None:
    act = get_activation(spec)
    assert act.name == name
    again = get_activation(name)
    assert again.name == name
    t = np.linspace(-3, 3, 61)
    np.testing.assert_array_equal(again(t), act(t))
    assert get_activation(act) is act
    assert again is act  # one object per canonical name


def test_family_values_and_metadata() -> None:
    t = np.array([-2.0, -0.5, -0.2, 0.0, 0.3, 0.81, 0.9, 3.0])
    ter = get_activation("ternary(s_minus=-0.5,s_plus=0.81,scale=1.75)")
    np.testing.assert_array_equal(ter(t), 1.75 * np.array([-1, 0, 0, 0, 0, 0, 1, 1]))
    assert ter.kinks == (-0.5, 0.81) and ter.parity == "none" and ter.has_jumps and ter.derivative is None
    assert get_activation({"family": "ternary", "s_minus": -1, "s_plus": 1}).parity == "odd"
    leaky = get_activation({"family": "leaky_relu", "a": 0.1, "b": 1.0})
    np.testing.assert_allclose(leaky(t), np.maximum(0.1 * t, t))
    clip = get_activation({"family": "clip", "c": 0.5, "scale": 2.0})
    np.testing.assert_allclose(clip(t), 2 * np.clip(t, -0.5, 0.5))
    assert clip.parity == "odd" and not clip.has_jumps
    binary = get_activation({"family": "binary", "threshold": 0.3, "scale": 2.0})
    np.testing.assert_array_equal(binary(t), 2.0 * (t > 0.3))
    centred = get_activation({"family": "centered", "base": "relu", "tau": 1.0})
    assert centred.name.startswith("centered(base=relu,shift=")
    assert float(centred.name.split("shift=")[1][:-1]) == pytest.approx(PDF0, rel=1e-14)
    assert gaussian_moments(centred, tau=1.0).mean == pytest.approx(0.0, abs=1e-15)
    assert get_activation({"family": "centered", "base": "abs", "shift": 1.0}).parity == "even"
    assert get_activation({"family": "centered", "base": "erf", "shift": 1.0}).parity == "none"
    # piecewise descriptions agree with φ away from the breakpoints
    grid = np.linspace(-3.01, 3.03, 97)
    for act in (ter, leaky, clip, binary, centred, ACTIVATIONS["relu"], ACTIVATIONS["sign"], ACTIVATIONS["abs"]):
        np.testing.assert_allclose(piecewise_function(act.piecewise)(grid), act(grid), atol=1e-15, err_msg=act.name)


@pytest.mark.parametrize("spec,param", [
    ({"family": "ternary", "s_minus": 0.2, "s_plus": 0.8}, "s_minus"),
    ({"family": "ternary", "s_minus": -0.2, "s_plus": -0.1}, "s_plus"),
    ({"family": "ternary", "s_minus": -0.2, "s_plus": 0.1, "scale": 0}, "scale"),
    ({"family": "clip", "c": -1}, "'c'"),
    ({"family": "binary"}, "threshold"),
    ({"family": "binary", "threshold": "abc"}, "threshold"),
    ({"family": "binary", "threshold": float("inf")}, "threshold"),
    ({"family": "leaky_relu", "a": 1.0, "b": True}, "'b'"),
    ({"family": "leaky_relu", "a": 1.0, "b": 0.1, "c": 3}, "'c'"),
    ({"family": "centered", "base": "relu"}, "shift"),
    ({"family": "centered", "base": "relu", "shift": 1.0, "tau": 1.0}, "tau"),
    ({"family": "centered", "base": "nope", "shift": 1.0}, "nope"),
    ("ternary(s_minus=-0.5,s_plus=0.8", "parenthes"),
])
def test_invalid_parameters_are_named(spec, param: str) -> None:
    with pytest.raises(ValueError, match=param):
        get_activation(spec)
