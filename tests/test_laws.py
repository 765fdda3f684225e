"""Marchenko–Pastur law, Kolmogorov–Smirnov distance, grid CDFs and power-law fits."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from rmtbench.theory.laws import (
    cdf_from_density,
    fit_power_law,
    ks_distance,
    marchenko_pastur_atom,
    marchenko_pastur_cdf,
    marchenko_pastur_density,
    marchenko_pastur_edges,
)


def _density_integral(c: float, lo: float, hi: float) -> float:
    # Integrable singularities (1/√x at 0 when c = 1, square roots at the edges): quad copes.
    def f(x: float) -> float:
        return float(marchenko_pastur_density(x, ratio=c))

    return integrate.quad(f, lo, hi, limit=200)[0]


@pytest.mark.parametrize("c", [0.25, 1.0, 2.0, 5.0])
def test_mp_density_integrates_to_one_minus_atom(c):
    a, b = marchenko_pastur_edges(c)
    assert _density_integral(c, a, b) == pytest.approx(1 - marchenko_pastur_atom(c), abs=1e-9)
    assert marchenko_pastur_density([a - 1e-3, b + 1e-3, -1.0], ratio=c).tolist() == [0, 0, 0]


@pytest.mark.parametrize("c", [0.25, 1.0, 2.0])
def test_mp_cdf_closed_form_matches_quadrature(c):
    a, b = marchenko_pastur_edges(c)
    xs = np.linspace(a, b, 9)[1:-1]
    mass = 1 - marchenko_pastur_atom(c)
    quad = np.array([_density_integral(c, a, x) for x in xs]) / mass
    np.testing.assert_allclose(marchenko_pastur_cdf(xs, ratio=c), quad, atol=1e-8)
    assert marchenko_pastur_cdf([a, b], ratio=c).tolist() == [0.0, 1.0]
    full = marchenko_pastur_cdf(xs, ratio=c, include_atom=True)
    np.testing.assert_allclose(full, marchenko_pastur_atom(c) + mass * quad, atol=1e-8)
    assert float(marchenko_pastur_cdf(-1e-300, ratio=c, include_atom=True)) == 0.0


@pytest.mark.parametrize(("n", "p"), [(400, 800), (800, 400)])
def test_gaussian_sample_covariance_follows_mp(n, p):
    c = n / p
    Z = np.random.default_rng(n + p).standard_normal((p, n))
    ev = np.linalg.eigvalsh(Z.T @ Z / p)
    ev[np.abs(ev) < 1e-10 * ev.max()] = 0.0  # the n − p round-off zeros when n > p
    nonzero = ev[ev > 0]
    assert nonzero.size == min(n, p)
    # Eigenvalues are rigid, so KS is far below the i.i.d. 1/√N scale: measured ~0.007.
    assert ks_distance(nonzero, lambda x: marchenko_pastur_cdf(x, ratio=c)) < 0.02
    full = ks_distance(ev, lambda x: marchenko_pastur_cdf(x, ratio=c, include_atom=True))
    assert full < 0.02
    # Either CDF with the wrong ratio is rejected.
    assert ks_distance(nonzero, lambda x: marchenko_pastur_cdf(x, ratio=1.3 * c)) > 0.05


def test_ks_distance_matches_scipy_and_handles_atoms():
    x = np.random.default_rng(0).standard_normal(300)
    assert ks_distance(x, stats.norm.cdf) == pytest.approx(stats.kstest(x, "norm").statistic)
    # Half the sample on an atom of mass 1/2 at 0, the rest uniform on (0, 1): distance ~1/N.
    sample = np.r_[np.zeros(500), (np.arange(500) + 0.5) / 500]

    def cdf(t):
        return np.where(t >= 0, 0.5, 0.0) + 0.5 * np.clip(t, 0, 1)

    assert ks_distance(sample, cdf) <= 1e-3
    assert ks_distance(np.r_[np.full(500, 1e-3), sample[500:]], cdf) >= 0.49


def test_cdf_from_density_reproduces_mp_cdf():
    c = 0.5
    a, b = marchenko_pastur_edges(c)
    x = np.linspace(a, b, 20001)
    F = cdf_from_density(x, marchenko_pastur_density(x, ratio=c))
    t = np.linspace(a - 0.1, b + 0.1, 50)
    np.testing.assert_allclose(F(t), marchenko_pastur_cdf(t, ratio=c), atol=2e-5)
    with pytest.raises(ValueError):
        cdf_from_density(x[::-1], marchenko_pastur_density(x, ratio=c))


def test_power_law_fit_recovers_exponent():
    x = np.geomspace(256, 4096, 9)
    exact = fit_power_law(x, 3.0 * x**-1.5)
    assert exact.exponent == pytest.approx(-1.5, abs=1e-12)
    assert exact.prefactor == pytest.approx(3.0, rel=1e-10)
    assert exact.exponent_stderr < 1e-12
    noise = np.exp(0.05 * np.random.default_rng(1).standard_normal(x.size))
    noisy = fit_power_law(x, 3.0 * x**-1.5 * noise)
    assert 0 < noisy.exponent_stderr < 0.05
    assert abs(noisy.exponent + 1.5) < 4 * noisy.exponent_stderr
    np.testing.assert_allclose(noisy(x), noisy.prefactor * x**noisy.exponent)
    assert np.isnan(fit_power_law([1, 2], [1, 4]).exponent_stderr)
    with pytest.raises(ValueError):
        fit_power_law([1, 2, 3], [1, -1, 2])
