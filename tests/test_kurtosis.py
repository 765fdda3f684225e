"""The first-order weight-kurtosis term of the expected kernel (pitfall P8), against Monte Carlo.

The kernel of a random layer with sparse ternary weights is estimated from a million drawn rows and
compared with the Gaussian-W closed form, with and without the term, in units of the Monte-Carlo
standard error of each entry.
"""
import numpy as np
import pytest

from rmtbench.activations import get_activation
from rmtbench.theory.kernels import expected_kernel
from rmtbench.theory.kurtosis import localisation, weight_kurtosis_kernel
from rmtbench.weights import weight_law


def _data(p: int = 32, n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(1)
    means = np.zeros((p, 2))
    means[0, 0] = means[1, 1] = 2.5  # class means on a few coordinates, as in the gmm data sets
    return (means[:, [0, 0, 0, 1, 1, 1]] + rng.standard_normal((p, n))) / np.sqrt(p)


def _rms_z(K_mc: np.ndarray, K: np.ndarray, se: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sqrt(np.mean(((K_mc - K) / se)[mask] ** 2)))


@pytest.mark.parametrize("name", ["relu", "tanh", "abs"])
def test_kurtosis_term_explains_the_sparse_ternary_kernel(name):
    X = _data()
    tau = float(np.sqrt(np.mean(np.sum(X**2, axis=0))))
    act, law = get_activation(name), weight_law("ternary-eps0.9")
    total, squares, rows = np.zeros((6, 6)), np.zeros((6, 6)), 0
    rng = np.random.default_rng(7)
    for _ in range(50):
        F = act.phi(law.sample(rng, (20000, X.shape[0])) @ X)
        total += F.T @ F
        squares += np.einsum("ri,rj->ij", F**2, F**2)
        rows += F.shape[0]
    K_mc = total / rows
    se = np.sqrt((squares / rows - K_mc**2) / rows)
    gaussian = expected_kernel(act, X)
    corrected = gaussian + weight_kurtosis_kernel(act, X, tau=tau, kappa4=law.fourth_moment - 3.0)
    off = ~np.eye(6, dtype=bool)
    before, after = _rms_z(K_mc, gaussian, se, off), _rms_z(K_mc, corrected, se, off)
    print(f"{name}: off-diagonal rms z {before:.1f} (Gaussian-W kernel) -> {after:.1f} (with the term)")
    assert before > 5  # the law's effect is resolved by the Monte Carlo ...
    assert after < 0.5 * before  # ... and the term accounts for most of it (the rest is of higher order in 1/p)
    diagonal_before = _rms_z(K_mc, gaussian, se, ~off)
    if diagonal_before > 5:  # tanh; ReLU's and |t|'s diagonal is exactly law-free (E (wᵀx)² = ‖x‖²)
        assert _rms_z(K_mc, corrected, se, ~off) < 0.5 * diagonal_before


def test_kurtosis_term_shape_and_limits():
    X = _data()
    assert np.all(weight_kurtosis_kernel("relu", X, tau=1.0, kappa4=0.0) == 0.0)
    term = weight_kurtosis_kernel("tanh", X, tau=1.0, kappa4=7.0)
    np.testing.assert_allclose(term, term.T, atol=1e-15)
    cross = weight_kurtosis_kernel("tanh", X[:, :4], X[:, 4:], tau=1.0, kappa4=7.0)
    np.testing.assert_allclose(cross, term[:4, 4:], rtol=1e-12)  # off-diagonal block: the same formula
    with pytest.raises(ValueError, match="finite"):
        weight_kurtosis_kernel("relu", X, tau=1.0, kappa4=float("inf"))


def test_localisation_is_the_expansion_parameter():
    assert localisation(np.eye(5)) == pytest.approx(1.0)  # one-hot columns
    wide = np.random.default_rng(0).standard_normal((3000, 20))
    assert localisation(wide) < 2 * 3 / 3000
