"""Gaussian quadrature rules against exact moments and against scipy's adaptive quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special

from rmtbench.quadrature import (
    gauss_hermite_normal,
    gaussian_expectation,
    gaussian_expectations,
    gaussian_rule,
    hermite_table,
)


def _double_factorial(k: int) -> int:
    return math.prod(range(k, 0, -2)) if k > 0 else 1


@pytest.mark.parametrize("scale", [0.3, 1.0, 2.7])
@pytest.mark.parametrize("power", [0, 2, 4, 6, 8])
def test_even_moments_exact(scale: float, power: int) -> None:
    expected = _double_factorial(power - 1) * scale**power
    got = gaussian_expectation(lambda t: t**power, scale=scale)
    assert got == pytest.approx(expected, rel=1e-13, abs=1e-15)


@pytest.mark.parametrize("scale", [0.05, 0.7, 1.0, 3.0, 40.0])
def test_kinked_integrands_split_at_kinks(scale: float) -> None:
    # relu, |t| and a shifted step: exact values in closed form.
    relu = gaussian_expectation(lambda t: np.maximum(t, 0.0), scale=scale, kinks=(0.0,))
    assert relu == pytest.approx(scale / math.sqrt(2 * math.pi), rel=1e-13)
    absolute = gaussian_expectation(lambda t: np.abs(t) ** 3, scale=scale, kinks=(0.0,))
    assert absolute == pytest.approx(2 * math.sqrt(2 / math.pi) * scale**3, rel=1e-13)
    step = gaussian_expectation(lambda t: (t > 0.7) * 1.0, scale=scale, kinks=(0.7,))
    assert step == pytest.approx(special.ndtr(-0.7 / scale), rel=1e-12, abs=1e-15)


def test_split_matters_for_a_step() -> None:
    # Without the breakpoint a step off the panel grid is integrated with an O(h) error.
    f = lambda t: (t > 0.37) * 1.0  # noqa: E731
    exact = special.ndtr(-0.37)
    assert abs(gaussian_expectation(f, kinks=(0.37,)) - exact) < 1e-14
    assert abs(gaussian_expectation(f) - exact) > 1e-6


def test_smooth_function_at_large_scale_against_scipy() -> None:
    scale = 25.0
    f = lambda t: np.tanh(t) ** 2  # noqa: E731
    ref, _ = integrate.quad(lambda x: f(scale * x) * math.exp(-x * x / 2) / math.sqrt(2 * math.pi), -12, 12,
                            points=[-0.2, 0.0, 0.2], limit=400, epsabs=1e-14, epsrel=1e-13)
    assert gaussian_expectation(f, scale=scale) == pytest.approx(ref, abs=1e-13)


def test_zero_scale_is_the_point_mass() -> None:
    assert gaussian_expectation(np.cos, scale=0.0) == 1.0
    xi, w = gaussian_rule(scale=0.0)
    assert xi.tolist() == [0.0] and w.tolist() == [1.0]


def test_rule_weights_sum_to_one_and_nodes_straddle_kinks() -> None:
    xi, w = gaussian_rule(scale=2.0, kinks=(1.0, -3.0))
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    # breakpoints at kink/scale: no panel contains 0.5 or -1.5 in its interior with nodes on both sides
    for b in (0.5, -1.5):
        assert np.min(np.abs(xi - b)) > 0
        left, right = xi[xi < b].max(), xi[xi > b].min()
        assert right - left < 0.2


def test_gauss_hermite_normal() -> None:
    x, w = gauss_hermite_normal(10)
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    for k in range(0, 20, 2):  # exact up to degree 2n − 1 = 19
        assert w @ x**k == pytest.approx(_double_factorial(k - 1), rel=1e-12)
    assert abs(w @ x**7) < 1e-12
    with pytest.raises(ValueError):
        gauss_hermite_normal(0)


def test_vectorised_expectations_match_scalar_calls() -> None:
    scales = np.array([[0.2, 1.0], [1.7, 0.0]])
    f = lambda t: np.maximum(t - 0.3, 0.0) ** 2  # noqa: E731
    got = gaussian_expectations(f, scales, kinks=(0.3,))
    want = np.array([[gaussian_expectation(f, scale=s, kinks=(0.3,)) for s in row] for row in scales])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    g = lambda t: np.abs(t) * np.cos(t)  # noqa: E731  (kink at 0: one shared rule)
    got0 = gaussian_expectations(g, scales, kinks=(0.0,))
    want0 = np.array([[gaussian_expectation(g, scale=s, kinks=(0.0,)) for s in row] for row in scales])
    np.testing.assert_allclose(got0, want0, rtol=0, atol=1e-14)


def test_hermite_table_is_orthonormal() -> None:
    xi, w = gaussian_rule(bound=20.0, panel_width=0.5)
    h = hermite_table(xi, 30)
    gram = (h * w) @ h.T
    np.testing.assert_allclose(gram, np.eye(31), atol=1e-12)
    raw = hermite_table(np.array([1.5]), 4, normalized=False)[:, 0]
    np.testing.assert_allclose(raw, [1, 1.5, 1.25, 1.5**3 - 4.5, 1.5**4 - 6 * 1.5**2 + 3])


def test_panels_are_bitwise_those_of_linspace_per_interval() -> None:
    from rmtbench.quadrature import _panels

    rng = np.random.default_rng(11)
    for _ in range(300):
        cuts = np.unique(np.concatenate([[-12.0, 12.0], rng.uniform(-12, 12, int(rng.integers(0, 40)))]))
        h = float(rng.choice([1.0, 0.1, 1 / 3, 0.0123, 5.0]))
        edges = [np.linspace(a, b, max(1, math.ceil((b - a) / h - 1e-9)) + 1) for a, b in zip(cuts[:-1], cuts[1:])]
        lo, hi = _panels(cuts, h)
        assert np.array_equal(lo, np.concatenate([e[:-1] for e in edges]))
        assert np.array_equal(hi, np.concatenate([e[1:] for e in edges]))


def test_cached_rules_are_handed_out_as_copies() -> None:
    xi, w = gaussian_rule(scale=0.5, kinks=(0.0,))
    xi[:] = 0.0
    w[:] = 0.0
    again_xi, again_w = gaussian_rule(scale=0.5, kinks=(0.0,))
    assert again_w.sum() == pytest.approx(1.0, abs=1e-12) and np.any(again_xi != 0.0)
