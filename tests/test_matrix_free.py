"""Matrix-free spectra: the chunked Gram operator, Lanczos, SLQ densities and Hutchinson traces.

Each estimate is checked against the dense computation with a tolerance from the method's error budget
(module docstring of :mod:`rmtbench.matrix_free`): a probe term ~ sqrt(1/(2 n k)) and a quadrature term
~ 1/m for the CDF; the standard error over probes plus the m/2-versus-m change for traces.
"""
from __future__ import annotations

import numpy as np
import pytest

from rmtbench.empirical import RandomFeatureMap
from rmtbench.matrix_free import GramProducts, clip_zero, gram_slq, lanczos, slq
from rmtbench.theory.laws import ks_distance
from rmtbench.weights import WeightLaw


def _features(n: int, d: int, *, p: int = 64, activation: str = "relu", seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((p, n)) / np.sqrt(p)
    fmap = RandomFeatureMap(activation, WeightLaw("gaussian"), d, 5, ("matrix-free", n, d))
    return fmap, X


def test_gram_products_match_the_dense_gram_in_every_layout(local_client):
    fmap, X = _features(96, 1300)  # three reduction units, the last one partial
    Phi = fmap.features(X)
    G = Phi.T @ Phi / 96
    V = np.random.default_rng(1).standard_normal((96, 3))
    reference = GramProducts(fmap, X, cache=True)(V)
    np.testing.assert_allclose(reference, G @ V, rtol=1e-12, atol=1e-12)
    assert GramProducts(fmap, X, cache=True)(V[:, 0]).shape == (96,)
    for cache, block_rows, client in ((False, 512, None), (True, 1536, local_client), (False, 1024, local_client)):
        op = GramProducts(fmap, X, cache=cache, block_rows=block_rows, client=client)
        assert np.array_equal(op(V), reference), (cache, block_rows, client)  # same tree: same bits
        assert op.trace() == pytest.approx(np.trace(G) / 96, rel=1e-12)
        op.release()
    with pytest.raises(ValueError, match="multiple of 512"):
        GramProducts(fmap, X, block_rows=700)


def test_lanczos_with_n_steps_recovers_the_spectrum_exactly():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((40, 30))
    M = A.T @ A
    alpha, beta = lanczos(lambda V: M @ V, rng.standard_normal((30, 2)), 30)
    exact = np.linalg.eigvalsh(M)
    from scipy.linalg import eigh_tridiagonal

    for a, b in zip(alpha, beta):
        np.testing.assert_allclose(eigh_tridiagonal(a, b, eigvals_only=True), exact, rtol=1e-9, atol=1e-9 * exact.max())


def test_lanczos_stops_a_probe_whose_krylov_space_is_exhausted():
    M = np.diag([1.0, 2.0, 3.0, 0.0, 0.0, 0.0])
    alpha, beta = lanczos(lambda V: M @ V, np.ones((6, 1)), 6)  # Krylov space of dimension 4 (3 values and 0)
    assert np.isfinite(alpha[0, :4]).all() and np.isnan(alpha[0, 4:]).all()
    quad = slq(lambda V: M @ V, 6, probes=4, steps=6, root_seed=3)
    assert quad.trace(lambda t: t).mean == pytest.approx(1.0, rel=1e-12)  # tr M / n exactly, any probe


def test_hutchinson_traces_agree_with_the_exact_trace_within_their_stated_error():
    n = 256
    fmap, X = _features(n, 2 * n)
    Phi = fmap.features(X)
    eigs = np.linalg.eigvalsh(Phi.T @ Phi / n)
    quad = gram_slq(fmap, X, probes=24, steps=40, root_seed=4)
    scale = eigs[-2]  # top of the bulk (the largest eigenvalue is the (E phi)^2 spike)
    for z in (-0.1, 0.5 * scale + 0.05j * scale, -1e-3):
        est = quad.stieltjes(z)
        exact = np.mean(1.0 / (eigs - z))
        assert abs(est.mean - exact) <= est.error, (z, est, exact)
        assert est.error < 0.25 * abs(exact)  # the stated error is informative, so the check can fail
    # (1/n) tr G: the quadrature is exact for polynomials of degree < 2m; only the probes err
    est = quad.trace(lambda t: t)
    assert est.quadrature < 1e-12 * abs(est.mean)
    assert abs(est.mean - eigs.mean()) <= 4 * est.stderr


def test_slq_distribution_has_the_atom_of_a_rank_deficient_gram():
    n, d = 256, 128
    fmap, X = _features(n, d)
    quad = gram_slq(fmap, X, probes=16, steps=60, root_seed=5)
    cdf = quad.cdf()
    atom = float(cdf(0.0))
    # mass of the null space of G is 1 - d/n; per probe its estimate has standard deviation <= sqrt(1/(2n))
    assert atom == pytest.approx(1 - d / n, abs=4 * np.sqrt(1 / (2 * n * 16)))
    assert float(cdf(-1e-9)) == 0.0 and float(cdf(1e9)) == pytest.approx(1.0)


@pytest.mark.slow
def test_slq_cdf_is_close_to_the_dense_spectrum_at_n_1024():
    n, d, probes, steps = 1024, 2048, 32, 150
    fmap, X = _features(n, d, p=256)
    Phi = fmap.features(X)
    eigs = clip_zero(np.linalg.eigvalsh(Phi.T @ Phi / n))
    quad = gram_slq(fmap, X, probes=probes, steps=steps, root_seed=6, block_rows=2048)
    ks = ks_distance(eigs, quad.cdf())
    # probe term: 3 standard deviations of the CDF at its worst point; quadrature term ~ 2/m
    tolerance = 3 * np.sqrt(1 / (2 * n * probes)) + 2 / steps
    assert ks <= tolerance, (ks, tolerance)
    # the check can fail: with too few Lanczos steps the Gauss rule cannot resolve the CDF
    coarse = slq(GramProducts(fmap, X, cache=True, block_rows=2048), n, probes=probes, steps=8, root_seed=6)
    assert ks_distance(eigs, coarse.cdf()) > tolerance
