"""A small numpy MLP and its trainer (minibatch SGD or Adam; softmax cross-entropy or MSE).

The network is the centred deep net of seed eq. 15 (formula sheet section 5) with a trainable
read-out::

    Σ_0 = X,  h_ℓ = (M_ℓ ∘ W_ℓ) Σ_{ℓ−1},  Σ_ℓ = (φ_ℓ(h_ℓ) − c_ℓ)/√d_ℓ,  f(x) = V Σ_L + b,

X ∈ R^{p×n} (samples as columns), M_ℓ an optional fixed 0/1 mask (sparse weights stay sparse).

What is trained (``trainable``):

* ``"readout"`` — V and b only; the hidden weights stay at their (random, possibly sparse ternary)
  draw, as in Gu+22's NTK-LC code (its feature layers have ``requires_grad=False``). The hidden
  features are computed once per data set, so the quantised activations need no gradient at all.
* ``"all"`` — V, b and every W_ℓ on its fixed mask M_ℓ. Step activations have zero derivative
  almost everywhere; back-propagation then uses each layer's **surrogate** derivative
  (straight-through estimator, default: the derivative of the original activation the step was
  matched to). The trained values are float: ternary weights do not stay ternary in this mode.

Every random draw (initial read-out, minibatch order) comes from :func:`rmtbench.rng.generator`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from rmtbench.activations import Activation
from rmtbench.rng import generator

__all__ = ["MLP", "TrainResult", "accuracy", "empirical_ntk", "train"]

Array = NDArray[np.float64]


@dataclass
class MLP:
    """Weights and activations of a centred MLP with a linear read-out (see the module docstring).

    Attributes
    ----------
    weights
        W_1..W_L, each (d_ℓ, d_{ℓ−1}) float (zeros off the mask).
    activations
        φ_1..φ_L.
    shifts
        Centring constants c_1..c_L.
    readout, bias
        V (K, d_L) and b (K,).
    surrogates
        Activations whose ``derivative`` back-propagation uses (defaults to ``activations``).
    masks
        Fixed 0/1 masks of the weights (``None``: dense).
    """

    weights: list[Array]
    activations: list[Activation]
    shifts: list[float]
    readout: Array
    bias: Array
    surrogates: list[Activation] | None = None
    masks: list[Array | None] | None = None

    def __post_init__(self) -> None:
        if not len(self.weights) == len(self.activations) == len(self.shifts):
            raise ValueError("need one weight matrix, activation and shift per layer")
        if self.surrogates is None:
            self.surrogates = list(self.activations)
        if self.masks is None:
            self.masks = [None] * len(self.weights)

    def forward(self, X: Array) -> tuple[list[Array], list[Array]]:
        """(pre-activations h_1..h_L, features Σ_0..Σ_L) for inputs X (p, n)."""
        sigmas, pre = [np.asarray(X, dtype=float)], []
        for W, act, c in zip(self.weights, self.activations, self.shifts):
            h = W @ sigmas[-1]
            pre.append(h)
            sigmas.append((act(h) - c) / math.sqrt(W.shape[0]))
        return pre, sigmas

    def features(self, X: Array) -> Array:
        """Σ_L(X), (d_L, n)."""
        return self.forward(X)[1][-1]

    def logits(self, X: Array) -> Array:
        """f(X) = V Σ_L + b, (K, n)."""
        return self.readout @ self.features(X) + self.bias[:, None]

    def derivative(self, layer: int, h: Array) -> Array:
        """The surrogate φ_ℓ'(h) used in back-propagation (``layer`` from 0)."""
        assert self.surrogates is not None
        deriv = self.surrogates[layer].derivative
        if deriv is None:
            raise ValueError(f"layer {layer + 1}: surrogate {self.surrogates[layer].name} has no pointwise derivative")
        return np.asarray(deriv(h), dtype=float)


def _loss_grad(logits: Array, labels: NDArray[np.int64], loss: str) -> tuple[float, Array]:
    """(mean loss, d loss / d logits) for a batch; logits (K, n)."""
    n = logits.shape[1]
    onehot = np.zeros_like(logits)
    onehot[labels, np.arange(n)] = 1.0
    if loss == "cross_entropy":
        z = logits - logits.max(axis=0, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=0, keepdims=True)
        value = -float(np.mean(np.log(np.maximum(p[labels, np.arange(n)], 1e-300))))
        return value, (p - onehot) / n
    if loss == "mse":
        r = logits - onehot
        return 0.5 * float(np.mean(np.sum(r * r, axis=0))), r / n
    raise ValueError(f"loss must be 'cross_entropy' or 'mse', got {loss!r}")


class _Optimizer:
    def __init__(self, kind: str, lr: float, params: list[Array]) -> None:
        if kind not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {kind!r}")
        self.kind, self.lr, self.t = kind, float(lr), 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, params: list[Array], grads: list[Array]) -> None:
        self.t += 1
        for p, g, m, v in zip(params, grads, self.m, self.v):
            if self.kind == "sgd":
                p -= self.lr * g
                continue
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= self.lr * (m / (1 - 0.9**self.t)) / (np.sqrt(v / (1 - 0.999**self.t)) + 1e-8)


@dataclass
class TrainResult:
    """Per-epoch mean training loss and what was trained."""

    losses: list[float] = field(default_factory=list)
    trainable: str = "readout"
    steps: int = 0


def train(net: MLP, X: Array, labels: NDArray[np.int64], *, trainable: Literal["readout", "all"] = "readout",
          loss: Literal["cross_entropy", "mse"] = "cross_entropy", optimizer: Literal["sgd", "adam"] = "adam",
          lr: float = 1e-2, epochs: int = 10, batch_size: int = 128, root_seed: int = 0,
          key: tuple[int | str, ...] = ("train",)) -> TrainResult:
    """Train ``net`` in place for a fixed budget of ``epochs`` passes over the n samples.

    Minibatches are a fresh permutation per epoch from ``generator(root_seed, *key, "epoch", e)``.

    Examples
    --------
    >>> from rmtbench.activations import get_activation
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((5, 200)); y = (X[0] > 0).astype(np.int64)
    >>> net = MLP([rng.standard_normal((16, 5)) / np.sqrt(5)], [get_activation("relu")], [0.0],
    ...           np.zeros((2, 16)), np.zeros(2))
    >>> _ = train(net, X, y, epochs=30, lr=0.05)
    >>> accuracy(net, X, y) > 0.9
    True
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = X.shape[1]
    result = TrainResult(trainable=trainable)
    if trainable == "readout":
        F = net.features(X)
        params = [net.readout, net.bias]
    elif trainable == "all":
        params = [net.readout, net.bias, *net.weights]
    else:
        raise ValueError(f"trainable must be 'readout' or 'all', got {trainable!r}")
    opt = _Optimizer(optimizer, lr, params)
    for epoch in range(int(epochs)):
        order = generator(root_seed, *key, "epoch", epoch).permutation(n)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if trainable == "readout":
                feats = F[:, idx]
                value, g = _loss_grad(net.readout @ feats + net.bias[:, None], labels[idx], loss)
                grads = [g @ feats.T, g.sum(axis=1)]
            else:
                value, grads = _full_gradients(net, X[:, idx], labels[idx], loss)
            opt.step(params, grads)
            if trainable == "all":
                for W, M in zip(net.weights, net.masks or []):
                    if M is not None:
                        W *= M
            total += value * idx.size
            result.steps += 1
        result.losses.append(total / n)
    return result


def _full_gradients(net: MLP, X: Array, labels: NDArray[np.int64], loss: str) -> tuple[float, list[Array]]:
    pre, sigmas = net.forward(X)
    value, g = _loss_grad(net.readout @ sigmas[-1] + net.bias[:, None], labels, loss)
    grads_w: list[Array] = []
    back = net.readout.T @ g  # d loss / d Σ_L
    for layer in range(len(net.weights) - 1, -1, -1):
        W = net.weights[layer]
        delta = back * net.derivative(layer, pre[layer]) / math.sqrt(W.shape[0])
        gw = delta @ sigmas[layer].T
        M = (net.masks or [None])[layer]
        grads_w.append(gw if M is None else gw * M)
        back = W.T @ delta
    return value, [g @ sigmas[-1].T, g.sum(axis=1), *reversed(grads_w)]


def accuracy(net: MLP, X: Array, labels: NDArray[np.int64]) -> float:
    """Fraction of columns of X whose largest logit is the label."""
    return float(np.mean(np.argmax(net.logits(X), axis=0) == np.asarray(labels)))


def empirical_ntk(net: MLP, X: Array) -> Array:
    """The empirical NTK of all parameters (V, b, W_1..W_L), averaged over the K outputs, (n, n).

    Closed form for MLPs: for output k, b_L = V_k ∘ g_L(h_L)/√d_L, b_ℓ = (W_{ℓ+1}ᵀ b_{ℓ+1}) ∘ g_ℓ(h_ℓ)/√d_ℓ
    and NTK_k = Σ_LᵀΣ_L + 11ᵀ + Σ_ℓ (Σ_{ℓ−1}ᵀΣ_{ℓ−1}) ∘ (b_ℓᵀ b_ℓ), with g_ℓ the surrogate
    derivatives (the kernel of the gradients training actually follows).
    """
    pre, sigmas = net.forward(X)
    n, K = X.shape[1], net.readout.shape[0]
    grams = [s.T @ s for s in sigmas]
    derivs = [net.derivative(l, h) / math.sqrt(h.shape[0]) for l, h in enumerate(pre)]
    total = K * (grams[-1] + 1.0)
    for k in range(K):
        b = net.readout[k][:, None] * derivs[-1]
        for layer in range(len(net.weights) - 1, -1, -1):
            total += grams[layer] * (b.T @ b)
            if layer:
                b = (net.weights[layer].T @ b) * derivs[layer - 1]
    return total / K
