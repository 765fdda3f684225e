"""The numpy MLP trainer: gradients, masks, determinism, empirical NTK."""
from __future__ import annotations

import numpy as np

from rmtbench.activations import get_activation
from rmtbench.train import MLP, _full_gradients, accuracy, empirical_ntk, train


def _net(seed=0, mask=False):
    rng = np.random.default_rng(seed)
    W1, W2 = rng.standard_normal((12, 6)), rng.standard_normal((8, 12))
    masks = None
    if mask:
        M = (rng.random(W1.shape) > 0.5).astype(float)
        W1 *= M
        masks = [M, None]
    relu, tanh = get_activation("relu"), get_activation("tanh")
    return MLP([W1, W2], [relu, tanh], [0.3, 0.0], rng.standard_normal((3, 8)), np.zeros(3), masks=masks)


def _data(n=60, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((6, n)) / np.sqrt(6)
    return X, rng.integers(0, 3, n)


def test_full_gradients_match_finite_differences():
    net, (X, y) = _net(), _data()
    _, grads = _full_gradients(net, X, y, "cross_entropy")
    params = [net.readout, net.bias, *net.weights]
    rng = np.random.default_rng(3)
    for p, g in zip(params, grads):
        for _ in range(3):
            idx = tuple(rng.integers(0, s) for s in p.shape)
            old = p[idx]
            p[idx] = old + 1e-6
            up = _full_gradients(net, X, y, "cross_entropy")[0]
            p[idx] = old - 1e-6
            down = _full_gradients(net, X, y, "cross_entropy")[0]
            p[idx] = old
            assert abs((up - down) / 2e-6 - g[idx]) < 1e-6 * max(1.0, abs(g[idx])) + 1e-8


def test_readout_training_keeps_hidden_weights_and_is_deterministic():
    X, y = _data(200)
    a, b = _net(), _net()
    W_before = [W.copy() for W in a.weights]
    ra = train(a, X, y, epochs=5, root_seed=7)
    train(b, X, y, epochs=5, root_seed=7)
    assert all(np.array_equal(W, V) for W, V in zip(a.weights, W_before))
    np.testing.assert_array_equal(a.readout, b.readout)
    assert ra.losses[-1] < ra.losses[0]


def test_full_training_respects_masks_and_learns():
    X, y = _data(300)
    y = (X[0] > 0).astype(np.int64)
    net = _net(mask=True)
    zeros = net.masks[0] == 0
    before = accuracy(net, X, y)
    train(net, X, y, trainable="all", epochs=40, lr=0.02, optimizer="adam")
    assert np.all(net.weights[0][zeros] == 0)
    assert accuracy(net, X, y) > max(before, 0.85)


def test_mse_and_sgd_reduce_loss():
    X, y = _data(200)
    net = _net()
    r = train(net, X, y, loss="mse", optimizer="sgd", lr=0.5, epochs=10)
    assert r.losses[-1] < r.losses[0]


def test_empirical_ntk_against_jacobian():
    # NTK averaged over outputs = (1/K) sum_k J_k J_k^T, J_k by finite differences over all parameters
    net, (X, _) = _net(), _data(5)
    K = empirical_ntk(net, X)
    params = [net.readout, net.bias, *net.weights]
    jac = []
    for p in params:
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + 1e-6
            up = net.logits(X)
            p[idx] = old - 1e-6
            down = net.logits(X)
            p[idx] = old
            jac.append((up - down) / 2e-6)
    J = np.array(jac)  # (params, K, n)
    expected = np.einsum("pki,pkj->ij", J, J) / J.shape[1]
    np.testing.assert_allclose(K, expected, rtol=1e-5, atol=1e-7)
