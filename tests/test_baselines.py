"""Feature maps of rmtbench.baselines: their kernels, their measured memory, and the feature-ridge solver."""
import numpy as np
import pytest

from rmtbench.baselines import (
    GaussianRandomFeatures, LowPrecisionRFF, NystroemFeatures, TernaryRandomFeatures, feature_ridge, parse_method,
    stochastic_round,
)
from rmtbench.quantize import match_ternary
from rmtbench.theory.kernels import expected_kernel
from rmtbench.weights import weight_law, weight_rows

TERNARY_RELU = dict(match_ternary("relu", tau=1.0).spec)


def _data(p=40, n=120, n_test=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((p, n)) / np.sqrt(p)
    X_test = rng.standard_normal((p, n_test)) / np.sqrt(p)
    w = rng.standard_normal(p)
    return X, np.sign(w @ X), X_test, np.sign(w @ X_test)


def _maps(p, width, X):
    return [
        GaussianRandomFeatures("relu", width=width, p=p, root_seed=3, key=("g",)),
        TernaryRandomFeatures(TERNARY_RELU, eps=0.9, width=width, p=p, root_seed=3, key=("t",)),
        LowPrecisionRFF(width=width, p=p, bandwidth=1.0, bits=None, root_seed=3, key=("r",)),
        LowPrecisionRFF(width=width, p=p, bandwidth=1.0, bits=2, root_seed=3, key=("q",)),
    ]


def test_parse_method():
    assert parse_method("lp_rff-b16") == ("lp_rff", 16)
    assert parse_method("nystroem") == ("nystroem", None)
    for bad in ("lp_rff-b0", "lp_rff-b17", "lp_rff", "relu"):
        with pytest.raises(ValueError, match="unknown footprint method"):
            parse_method(bad)


def test_ternary_memory_at_eps_0_9_is_at_most_a_twentieth_of_float64():
    """Issue 4 acceptance: measured bytes of the stored ternary W (eps = 0.9) vs the float64 Gaussian W."""
    p, width = 103, 2048  # the Adult data's p
    gauss = GaussianRandomFeatures("relu", width=width, p=p, root_seed=1, key=("g",)).memory()
    tern = TernaryRandomFeatures(TERNARY_RELU, eps=0.9, width=width, p=p, root_seed=1, key=("t",)).memory()
    assert gauss.projection_bits == 64 * width * p  # measured nbytes of the float64 array
    ratio = tern.projection_bits / gauss.projection_bits
    print(f"ternary W at eps=0.9: {tern.projection_bits / (width * p):.3f} bits/entry, ratio {ratio:.4f}")
    assert ratio <= 1 / 20
    # at p = 103 two packed bit planes (2 bits/entry) beat the index lists (16 (1 - eps) + 64/p bits/entry)
    assert tern.arrays.keys() == {"W_nonzero", "W_negative", "scalars"}
    # For larger p the index lists win and the footprint falls with eps; eps = 0 (Rademacher) needs 1 bit/entry.
    sizes = {eps: TernaryRandomFeatures(TERNARY_RELU, eps=eps, width=256, p=784, root_seed=1, key=("t",)).memory()
             for eps in (0.0, 0.5, 0.9, 0.95)}
    per_entry = {eps: m.projection_bits / (256 * 784) for eps, m in sizes.items()}
    assert sizes[0.9].arrays.keys() >= {"W_plus_indices", "W_minus_indices"}
    assert per_entry[0.95] < 0.9 < per_entry[0.9] < 1.75  # 16 (1 - eps) bits + the row pointers
    assert per_entry[0.0] <= 1.01 and 1.99 <= per_entry[0.5] <= 2.01  # one and two bit planes


def test_model_memory_table():
    p, width = 30, 256
    X, *_ = _data(p=p, n=300)
    g, t, r, q = _maps(p, width, X)
    ny = NystroemFeatures("relu", width=width, X=X, root_seed=3, key=("n",))
    assert g.memory().model_bits == 64 * width * p + 64 * width
    assert r.memory().model_bits == q.memory().model_bits == 64 * width * p + 128 * width
    assert ny.memory().model_bits == 64 * width * p + 64 * width
    assert t.memory().coefficient_bits == 64 * width
    assert (g.feature_bits_per_entry, t.feature_bits_per_entry, q.feature_bits_per_entry, ny.feature_bits_per_entry) == (64, 2, 2, 64)
    assert q.memory().training_feature_bits(300) == 300 * width * 2


def test_ternary_features_use_the_weight_law_draw():
    """The compact W equals the float64 ternary W of rmtbench.weights under the same key."""
    p, width = 25, 300
    X, *_ = _data(p=p)
    t = TernaryRandomFeatures(TERNARY_RELU, eps=0.9, width=width, p=p, root_seed=5, key=("k",))
    W = weight_rows(weight_law("ternary-eps0.9"), root_seed=5, key=("k",), start=0, stop=width, columns=p)
    expected = t.activation.phi(W @ X) / np.sqrt(width)
    np.testing.assert_allclose(t.features(X, train=True), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("index", range(4))
def test_features_are_nested_in_the_width(index):
    p = 20
    X, *_ = _data(p=p)
    narrow, wide = _maps(p, 256, X)[index], _maps(p, 512, X)[index]
    # rows are normalised by 1/sqrt(N) and LP-RFF's levels by sqrt(2/N): compare unnormalised rows
    a = narrow.features(X, train=True) * np.sqrt(256)
    b = wide.features(X, train=True)[:256] * np.sqrt(512)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_nystroem_through_sklearn_is_the_landmark_projection():
    p, N = 30, 80
    X, *_ = _data(p=p, n=200)
    ny = NystroemFeatures("relu", width=N, X=X, root_seed=2, key=("n",))
    assert len(set(ny.landmark_indices.tolist())) == N and ny.landmark_indices.max() < 200
    np.testing.assert_array_equal(ny.landmarks, X[:, ny.landmark_indices])
    Z = ny.features(X, train=True)
    K_XL = expected_kernel("relu", X, ny.landmarks)
    reference = K_XL @ np.linalg.pinv(expected_kernel("relu", ny.landmarks)) @ K_XL.T
    np.testing.assert_allclose(Z.T @ Z, reference, atol=1e-10 * np.abs(reference).max())
    # landmarks reproduce their own kernel rows exactly
    K = expected_kernel("relu", X)
    idx = ny.landmark_indices
    np.testing.assert_allclose((Z.T @ Z)[np.ix_(idx, idx)], K[np.ix_(idx, idx)], atol=1e-9)
    with pytest.raises(ValueError, match="N <= n"):
        NystroemFeatures("relu", width=201, X=X, root_seed=2, key=("n",))


def test_random_features_approximate_their_kernels():
    """Monte Carlo: Z^T Z -> K with entrywise error O(N^-1/2) (6 standard deviations allowed)."""
    p, N = 10, 8192
    X, *_ = _data(p=p, n=40)
    g = GaussianRandomFeatures("relu", width=N, p=p, root_seed=4, key=("g",)).features(X, train=True)
    K = expected_kernel("relu", X)
    # Var(relu(u) relu(v)) <= E relu(u)^4 = (3/2) ||x||^4: a bound on each entry's variance
    sd = np.sqrt(1.5 / N) * np.max(np.sum(X**2, axis=0))
    assert np.abs(g.T @ g - K).max() <= 6 * sd
    r = LowPrecisionRFF(width=N, p=p, bandwidth=0.7, bits=None, root_seed=4, key=("r",)).features(X, train=True)
    sq = np.sum((X[:, :, None] - X[:, None, :]) ** 2, axis=0)
    K_rbf = np.exp(-sq / (2 * 0.7**2))
    assert np.abs(r.T @ r - K_rbf).max() <= 6 * np.sqrt(1.0 / N)


def test_lp_rff_quantises_training_features_only_and_without_bias():
    p, N, bits = 10, 512, 1
    X, _, X_test, _ = _data(p=p, n=200)
    q = LowPrecisionRFF(width=N, p=p, bandwidth=1.0, bits=bits, root_seed=6, key=("q",))
    full = LowPrecisionRFF(width=N, p=p, bandwidth=1.0, bits=None, root_seed=6, key=("q",))
    Zq, Zf = q.features(X, train=True), full.features(X, train=True)
    bound = np.sqrt(2 / N)
    np.testing.assert_allclose(np.unique(Zq), [-bound, bound])
    np.testing.assert_array_equal(q.features(X_test, train=False), full.features(X_test, train=False))
    # unbiased: the mean error over 102400 entries is within 5 standard errors of 0
    err = (Zq - Zf) / bound
    assert abs(err.mean()) < 5 * err.std() / np.sqrt(err.size)


def test_stochastic_rounding_levels_and_mean():
    rng = np.random.default_rng(0)
    z = np.full(200_000, 0.3)
    for bits in (1, 2, 4):
        q = stochastic_round(z, bits=bits, bound=1.0, uniforms=rng.random(z.size))
        levels = -1.0 + np.arange(2**bits) * 2.0 / (2**bits - 1)
        assert np.all(np.isin(np.round(q, 12), np.round(levels, 12)))
        assert abs(q.mean() - 0.3) < 5 * q.std() / np.sqrt(q.size)
    assert stochastic_round(np.array([5.0, -5.0]), bits=3, bound=1.0, uniforms=np.array([0.99, 0.0])).tolist() == [1.0, -1.0]


@pytest.mark.parametrize("width", [64, 200])  # primal (N <= n) and dual (N > n)
def test_feature_ridge_matches_kernel_ridge_on_the_features(width):
    p = 15
    X, y, X_test, y_test = _data(p=p, n=128, n_test=50)
    for fmap in _maps(p, width, X):
        gammas = [1.0, 0.05]
        res = feature_ridge(fmap, X, y, X_test, y_test, gammas, block_rows=128)
        assert res.side == ("primal" if width <= 128 else "dual")
        Z, Zt = fmap.features(X, train=True), fmap.features(X_test, train=False)
        for k, gamma in enumerate(gammas):
            alpha = np.linalg.solve(Z.T @ Z + gamma * np.eye(128), y)
            np.testing.assert_allclose(res.test_mse[k], np.mean((y_test - Zt.T @ Z @ alpha) ** 2), rtol=1e-8)
            np.testing.assert_allclose(res.train_mse[k], np.mean((y - Z.T @ Z @ alpha) ** 2), rtol=1e-8)
    with pytest.raises(ValueError, match="gammas"):
        feature_ridge(_maps(p, width, X)[0], X, y, X_test, y_test, [0.0])


def test_feature_ridge_does_not_depend_on_block_rows():
    p = 12
    X, y, X_test, y_test = _data(p=p, n=100, n_test=30)
    fmap = LowPrecisionRFF(width=640, p=p, bandwidth=1.0, bits=4, root_seed=1, key=("b",))
    a = feature_ridge(fmap, X, y, X_test, y_test, [0.3], block_rows=128)
    b = feature_ridge(fmap, X, y, X_test, y_test, [0.3], block_rows=1024)
    np.testing.assert_allclose(a.test_mse, b.test_mse, rtol=1e-10)
