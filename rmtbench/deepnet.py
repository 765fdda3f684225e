"""Deep random MLPs (seed eq. 15): per-layer conjugate kernels and the network's NTK, on Dask.

The network, centred by constants as in Gu+22 (formula sheet section 5)::

    Σ_0 = X,   h_ℓ = W_ℓ Σ_{ℓ−1},   Σ_ℓ = (φ_ℓ(h_ℓ) − c_ℓ)/√d_ℓ,   f = vᵀ Σ_L,

with W_ℓ ∈ R^{d_ℓ×d_{ℓ−1}} of i.i.d. zero-mean unit-variance entries (no 1/√fan-in: the scaling sits
after the activation), c_ℓ = E φ_ℓ(τ_{ℓ−1}ξ) at the nominal scales τ_ℓ² = Var φ_ℓ(τ_{ℓ−1}ξ), and a
Gaussian read-out v ∈ R^{d_L}.

Per draw of the weights, this module computes the Gram of every layer (the empirical CK Σ_ℓᵀΣ_ℓ)
and the empirical NTK of the finite network by its closed form for MLPs (no autodiff): with the
backward vectors b_L = v ∘ φ_L'(h_L)/√d_L and b_ℓ = (W_{ℓ+1}ᵀ b_{ℓ+1}) ∘ φ_ℓ'(h_ℓ)/√d_ℓ,

    NTK = Σ_Lᵀ Σ_L + Σ_{ℓ=1..L} (Σ_{ℓ−1}ᵀ Σ_{ℓ−1}) ∘ (b_ℓᵀ b_ℓ)

(the gradient with respect to v, then to each W_ℓ = b_ℓ Σ_{ℓ−1}ᵀ).

Execution: samples are cut into blocks; one task pushes a block through all layers (forward, then
backward) and returns its per-layer features; one task per pair of blocks multiplies them. Weight
rows are generated on the worker in whole panels (:func:`rmtbench.weights.weight_rows`, keys naming
the layer and the draw), ``block_rows`` rows at a time, and never stored whole: a task holds one
block of samples through every layer, i.e. O(L · max_ℓ d_ℓ · block) numbers, and one panel group
of a weight matrix.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rmtbench.activations import Activation, gaussian_moments, get_activation
from rmtbench.rng import PANEL_ROWS
from rmtbench.weights import WeightLaw, weight_law, weight_rows

__all__ = [
    "DeepRandomNet", "EquilibriumNet", "centring_constants", "deep_kernels", "deep_kernels_graph", "draw_kernel_graphs",
    "equilibrium_kernel_graphs", "pair_fluctuation_graphs", "seed_kernel_graphs", "seed_square_graphs", "seed_sum_graphs",
]

Array = NDArray[np.float64]
ActivationSpec = str | Mapping[str, Any] | Activation


def centring_constants(activations: Sequence[ActivationSpec], *, tau0: float) -> tuple[float, ...]:
    """c_ℓ = E φ_ℓ(τ_{ℓ−1}ξ) along the nominal scales τ_ℓ² = Var φ_ℓ(τ_{ℓ−1}ξ) (part of the model).

    Examples
    --------
    >>> [round(c, 6) for c in centring_constants(["relu", "tanh"], tau0=1.0)]  # 1/sqrt(2π), 0
    [0.398942, 0.0]
    """
    tau, out = float(tau0), []
    for spec in activations:
        m = gaussian_moments(spec, tau=tau)
        out.append(m.mean + 0.0)
        tau = math.sqrt(max(m.var, 0.0)) or 1e-300
    return tuple(out)


@dataclass(frozen=True)
class DeepRandomNet:
    """A deep random MLP x -> Σ_L(x) with centred activations and a Gaussian read-out.

    Parameters
    ----------
    activations
        φ_1, ..., φ_L (names or specs of :func:`rmtbench.activations.get_activation`).
    widths
        d_1, ..., d_L.
    laws
        Law of the entries of each W_ℓ (one per layer).
    shifts
        Centring constants c_1, ..., c_L (see :func:`centring_constants`).
    root_seed, key
        Identify the draw: W_ℓ comes from keys ``(*key, "layer", ℓ)`` and v from ``(*key, "readout")``.

    Examples
    --------
    >>> net = DeepRandomNet.centred(["relu", "relu"], [64, 32], "gaussian", tau0=1.0, root_seed=1, key=("doc", 0))
    >>> [s.shape for s in net.forward(np.eye(5)[:, :3])]
    [(64, 3), (32, 3)]
    """

    activations: tuple[ActivationSpec, ...]
    widths: tuple[int, ...]
    laws: tuple[WeightLaw, ...]
    shifts: tuple[float, ...]
    root_seed: int
    key: tuple[int | str, ...]

    def __post_init__(self) -> None:
        depth = len(self.activations)
        if depth == 0:
            raise ValueError("a deep network needs at least one layer")
        if not (len(self.widths) == len(self.laws) == len(self.shifts) == depth):
            raise ValueError(f"need one width, law and shift per layer ({depth}); got {len(self.widths)}, "
                             f"{len(self.laws)}, {len(self.shifts)}")
        if any(int(d) < 1 for d in self.widths):
            raise ValueError(f"widths must be positive, got {self.widths}")

    @classmethod
    def centred(cls, activations: Sequence[ActivationSpec], widths: Sequence[int],
                laws: WeightLaw | str | Mapping[str, Any] | Sequence[WeightLaw | str | Mapping[str, Any]], *,
                tau0: float, root_seed: int, key: tuple[int | str, ...]) -> "DeepRandomNet":
        """The network centred by c_ℓ = E φ_ℓ(τ_{ℓ−1}ξ) from the data scale ``tau0``; ``laws`` may be one law for all."""
        depth = len(activations)
        if isinstance(laws, (WeightLaw, str, Mapping)):
            laws = [laws] * depth
        return cls(activations=tuple(activations), widths=tuple(int(d) for d in widths),
                   laws=tuple(weight_law(w) for w in laws), shifts=centring_constants(activations, tau0=tau0),
                   root_seed=int(root_seed), key=tuple(key))

    @property
    def depth(self) -> int:
        """Number of layers L."""
        return len(self.activations)

    def fan_in(self, layer: int, p: int) -> int:
        """d_{ℓ−1} (p for the first layer); ``layer`` counts from 1."""
        return p if layer == 1 else self.widths[layer - 2]

    def weights(self, layer: int, start: int, stop: int, p: int) -> Array:
        """Rows ``start:stop`` of W_ℓ (``layer`` from 1), drawn from their panels."""
        return weight_rows(self.laws[layer - 1], root_seed=self.root_seed, key=(*self.key, "layer", layer),
                           start=start, stop=stop, columns=self.fan_in(layer, p))

    def readout(self) -> Array:
        """The Gaussian read-out vector v ∈ R^{d_L}."""
        return weight_rows(WeightLaw("gaussian"), root_seed=self.root_seed, key=(*self.key, "readout"), start=0,
                           stop=self.widths[-1], columns=1)[:, 0]

    def _chunks(self, layer: int, block_rows: int) -> list[tuple[int, int]]:
        step = max(PANEL_ROWS, (block_rows // PANEL_ROWS) * PANEL_ROWS)
        d = self.widths[layer - 1]
        return [(s, min(s + step, d)) for s in range(0, d, step)]

    def forward(self, X: Array, *, block_rows: int = 1024, keep_preactivations: bool = False,
                ) -> list[Array] | tuple[list[Array], list[Array]]:
        """Σ_1, ..., Σ_L for the columns of X (and h_1, ..., h_L when ``keep_preactivations``).

        W_ℓ is generated ``block_rows`` rows at a time (whole panels) and discarded.
        """
        X = np.asarray(X, dtype=float)
        p = X.shape[0]
        prev, features, pre = X, [], []
        for layer in range(1, self.depth + 1):
            act = get_activation(self.activations[layer - 1])
            h = np.empty((self.widths[layer - 1], X.shape[1]))
            for start, stop in self._chunks(layer, block_rows):
                h[start:stop] = self.weights(layer, start, stop, p) @ prev
            prev = (act.phi(h) - self.shifts[layer - 1]) / math.sqrt(self.widths[layer - 1])
            features.append(prev)
            if keep_preactivations:
                pre.append(h)
        return (features, pre) if keep_preactivations else features

    def backward(self, preactivations: Sequence[Array], p: int, *, block_rows: int = 1024) -> list[Array]:
        """Backward vectors b_1, ..., b_L (each d_ℓ × block) of f = vᵀΣ_L from the pre-activations."""
        backs: list[Array] = [np.empty(0)] * self.depth
        grad = self.readout()[:, None]  # ∂f/∂Σ_L
        for layer in range(self.depth, 0, -1):
            act = get_activation(self.activations[layer - 1])
            if act.derivative is None:
                raise ValueError(f"{act.name} has no pointwise derivative (a jump): its NTK is not defined")
            b = grad * act.derivative(preactivations[layer - 1]) / math.sqrt(self.widths[layer - 1])
            backs[layer - 1] = b
            if layer > 1:
                grad = np.zeros((self.widths[layer - 2], b.shape[1]))
                for start, stop in self._chunks(layer, block_rows):
                    grad += self.weights(layer, start, stop, p).T @ b[start:stop]
        return backs


# ------------------------------------------------------------------------------------------------
# Dask graphs: sample blocks through all layers, then block-pair products.


def _block_features(net: DeepRandomNet, X: Array, lo: int, hi: int, ntk: bool, block_rows: int,
                    ) -> tuple[list[Array], list[Array] | None]:
    from rmtbench.parallel import single_blas_thread

    with single_blas_thread():
        Xb = np.ascontiguousarray(X[:, lo:hi])
        if not ntk:
            return net.forward(Xb, block_rows=block_rows), None  # type: ignore[return-value]
        features, pre = net.forward(Xb, block_rows=block_rows, keep_preactivations=True)  # type: ignore[misc]
        return features, net.backward(pre, X.shape[0], block_rows=block_rows)


def _pair_products(X: Array, a: tuple[int, int], b: tuple[int, int], fa: Any, fb: Any) -> Array:
    """Blocks (a, b) of Σ_ℓᵀΣ_ℓ for ℓ = 1..L, then (when backward vectors are given) of the NTK."""
    from rmtbench.parallel import single_blas_thread

    feats_a, backs_a = fa
    feats_b, backs_b = fb
    with single_blas_thread():
        grams = [Fa.T @ Fb for Fa, Fb in zip(feats_a, feats_b)]
        if backs_a is None:
            return np.stack(grams)
        prev = X[:, a[0]:a[1]].T @ X[:, b[0]:b[1]]
        ntk = grams[-1].copy()
        for layer, (Ba, Bb) in enumerate(zip(backs_a, backs_b)):
            ntk += prev * (Ba.T @ Bb)
            prev = grams[layer]
        return np.stack([*grams, ntk])


def _assemble(n: int, blocks: list[tuple[int, int]], *pairs: Array) -> Array:
    """The full (layers, n, n) array from its upper block pairs."""
    depth = pairs[0].shape[0]
    out = np.empty((depth, n, n))
    k = 0
    for i, (lo_a, hi_a) in enumerate(blocks):
        for lo_b, hi_b in blocks[i:]:
            out[:, lo_a:hi_a, lo_b:hi_b] = pairs[k]
            out[:, lo_b:hi_b, lo_a:hi_a] = np.swapaxes(pairs[k], 1, 2)
            k += 1
    return out


def deep_kernels_graph(net: DeepRandomNet, X: Any, n: int, *, ntk: bool = True, sample_block: int = 512,
                       block_rows: int = 1024) -> Any:
    """A Dask ``Delayed`` for the stacked kernels of one draw: ``(L [+1], n, n)``.

    Entries 0..L−1 are the Grams Σ_ℓᵀΣ_ℓ of layers 1..L; entry L (when ``ntk``) is the network's NTK.

    Parameters
    ----------
    net
        The network (one draw of the weights).
    X
        Data ``p × n`` (array or ``Delayed``; pass a delayed object to share one copy).
    n
        Number of samples (columns of X).
    ntk
        Also compute the NTK (needs φ_ℓ' for every layer).
    sample_block
        Samples per forward task; it changes only the last bits of a result.
    block_rows
        Weight rows generated at a time (rounded down to whole panels).
    """
    import dask

    blocks = [(lo, min(lo + sample_block, n)) for lo in range(0, n, max(1, sample_block))]
    feature = dask.delayed(_block_features, pure=True)
    pair = dask.delayed(_pair_products, pure=True)
    feats = [feature(net, X, lo, hi, ntk, block_rows) for lo, hi in blocks]
    pairs = [pair(X, blocks[i], blocks[j], feats[i], feats[j]) for i in range(len(blocks)) for j in range(i, len(blocks))]
    return dask.delayed(_assemble, pure=True)(n, blocks, *pairs)


def _add(a: Array, b: Array) -> Array:
    return a + b


def _tree_sum(items: Sequence[Any]) -> Any:
    """Delayed sum of delayed arrays along the fixed tree of :mod:`rmtbench.reduction` (bounded memory)."""
    import dask

    from rmtbench.reduction import tree_tasks

    add = dask.delayed(_add, pure=True)
    return tree_tasks(0, len(items), 1, lambda lo, hi: items[lo], lambda a, b: add(a, b))


def _ones_projection(K: Array) -> Array:
    """1ᵀ K 1 / n for each stacked kernel."""
    return K.sum(axis=(1, 2)) / K.shape[1]


def draw_kernel_graphs(nets: Sequence[DeepRandomNet], X: Any, n: int, *, ntk: bool = True, sample_block: int = 512,
                       block_rows: int = 1024) -> list[Any]:
    """One :func:`deep_kernels_graph` per draw, for :func:`seed_sum_graphs`, :func:`seed_square_graphs` and
    :func:`pair_fluctuation_graphs` (one graph: each draw is computed once)."""
    return [deep_kernels_graph(net, X, n, ntk=ntk, sample_block=sample_block, block_rows=block_rows) for net in nets]


def seed_sum_graphs(per_draw: Sequence[Any]) -> tuple[Any, Any, list[Any]]:
    """Delayed (sum over even draws, sum over odd draws or None, per-draw 1ᵀK1/n) of delayed stacked kernels.

    The two half sums give the seed mean ``(even + odd)/len(per_draw)`` and a Monte-Carlo noise
    estimate from their difference. Draws are summed pairwise along a fixed tree, so no task holds
    more than two draws' matrices and the sums do not depend on the scheduler.
    """
    import dask

    even = _tree_sum(per_draw[0::2])
    odd = _tree_sum(per_draw[1::2]) if len(per_draw) > 1 else None
    ones = [dask.delayed(_ones_projection, pure=True)(k) for k in per_draw]
    return even, odd, ones


def seed_square_graphs(per_draw: Sequence[Any], *, layers: int) -> tuple[Any, Any]:
    """Delayed (sum over even draws, sum over odd draws or None) of K∘K, the first ``layers`` stacked kernels.

    With :func:`seed_sum_graphs` they give the variance of every entry over the draws,
    (Σ K∘K − (Σ K)∘(Σ K)/S)/(S − 1), for all draws and for each half, along the same fixed tree.
    """
    import dask

    squares = [dask.delayed(_squares, pure=True)(k, layers) for k in per_draw]
    return _tree_sum(squares[0::2]), (_tree_sum(squares[1::2]) if len(squares) > 1 else None)


def pair_fluctuation_graphs(per_draw: Sequence[Any], *, layers: int) -> list[Any]:
    """Delayed ‖K_2k − K_2k+1‖²_F/(2n) per pair of draws, for each of the first ``layers`` stacked kernels.

    Draws 2k and 2k + 1 are independent, so these are i.i.d. with mean Σ_ij Var K_ij / n: the mean over
    the pairs and its standard error come without holding the draws. An odd last draw is left out.
    Needs at least two draws.
    """
    import dask

    if len(per_draw) < 2:
        raise ValueError(f"the pair fluctuations need at least 2 draws, got {len(per_draw)}")
    return [dask.delayed(_half_square_norm, pure=True)(per_draw[2 * k], per_draw[2 * k + 1], layers)
            for k in range(len(per_draw) // 2)]


def _squares(K: Array, layers: int) -> Array:
    return K[:layers] ** 2


def _half_square_norm(a: Array, b: Array, layers: int) -> Array:
    """‖a − b‖²_F/(2n) for each of the first ``layers`` stacked matrices."""
    diff = a[:layers] - b[:layers]
    return 0.5 * np.einsum("lij,lij->l", diff, diff) / diff.shape[1]


def seed_kernel_graphs(nets: Sequence[DeepRandomNet], X: Any, n: int, *, ntk: bool = True, sample_block: int = 512,
                       block_rows: int = 1024) -> tuple[Any, Any, list[Any]]:
    """Delayed (sum over even draws, sum over odd draws, per-draw 1ᵀK1/n) of the stacked kernels
    (:func:`seed_sum_graphs` of :func:`draw_kernel_graphs`)."""
    return seed_sum_graphs(draw_kernel_graphs(nets, X, n, ntk=ntk, sample_block=sample_block, block_rows=block_rows))


def deep_kernels(net: DeepRandomNet, X: Array, *, ntk: bool = True, client: Any = None, sample_block: int = 512,
                 block_rows: int = 1024) -> tuple[list[Array], Array | None]:
    """Per-layer Grams Σ_ℓᵀΣ_ℓ and the NTK of one draw, computed now (``client=None``: synchronously).

    Returns
    -------
    (list of ndarray, ndarray or None)
        The L Grams (n × n) and the NTK (n × n) or ``None``.
    """
    from rmtbench.parallel import compute

    X = np.asarray(X, dtype=float)
    stacked = compute(client, deep_kernels_graph(net, X, X.shape[1], ntk=ntk, sample_block=sample_block,
                                                 block_rows=block_rows))[0]
    grams = [stacked[i] for i in range(net.depth)]
    return grams, (stacked[net.depth] if ntk else None)


# ------------------------------------------------------------------------------------------------
# Deep equilibrium model at finite width (Ling+24; formula sheet section 6).


@dataclass(frozen=True)
class EquilibriumNet:
    """A deep equilibrium layer z = (φ(σ_a A z + σ_b B x) − c)/√m at finite width m.

    Parameters
    ----------
    activation
        φ.
    width
        m.
    sigma_a2
        σ_a² (σ_b² = 1 − σ_a²).
    shift
        Centring constant c = E φ(τ*ξ) (see :func:`rmtbench.theory.deep.deq_coefficients`).
    law
        Law of the entries of A (m × m) and B (m × p).
    root_seed, key
        A comes from keys ``(*key, "A")`` and B from ``(*key, "B")``.

    Examples
    --------
    >>> net = EquilibriumNet("tanh", 64, 0.2, 0.0, WeightLaw("gaussian"), 1, ("doc",))
    >>> Z, steps = net.solve(np.eye(6)[:, :2] * 1.0)
    >>> Z.shape, steps < 60
    ((64, 2), True)
    """

    activation: ActivationSpec
    width: int
    sigma_a2: float
    shift: float
    law: WeightLaw
    root_seed: int
    key: tuple[int | str, ...]

    def feedback(self) -> Array:
        """A ∈ R^{m×m} (drawn whole: the fixed-point iteration applies it many times)."""
        return weight_rows(self.law, root_seed=self.root_seed, key=(*self.key, "A"), start=0, stop=self.width,
                           columns=self.width)

    def input_weights(self, p: int) -> Array:
        """B ∈ R^{m×p}."""
        return weight_rows(self.law, root_seed=self.root_seed, key=(*self.key, "B"), start=0, stop=self.width,
                           columns=p)

    def solve(self, X: Array, *, tol: float = 1e-10, max_iter: int = 2000) -> tuple[Array, int]:
        """The equilibrium Z* (m × n) of the columns of X by fixed-point iteration, and the steps taken.

        Stops when max |Z_{k+1} − Z_k| ≤ tol · max |Z_{k+1}|; raises ``RuntimeError`` after ``max_iter``.
        """
        phi = get_activation(self.activation).phi
        X = np.asarray(X, dtype=float)
        scale = 1.0 / math.sqrt(self.width)
        sa, sb = math.sqrt(self.sigma_a2), math.sqrt(1.0 - self.sigma_a2)
        drive = sb * (self.input_weights(X.shape[0]) @ X)
        A = sa * self.feedback()
        z = (phi(drive) - self.shift) * scale
        for step in range(1, max_iter + 1):
            new = (phi(A @ z + drive) - self.shift) * scale
            change = float(np.max(np.abs(new - z)))
            z = new
            if change <= tol * float(np.max(np.abs(z))):
                return z, step
        raise RuntimeError(f"DEQ fixed point not reached in {max_iter} steps (sigma_a2={self.sigma_a2}, width={self.width})")


def _equilibrium_block(net: EquilibriumNet, X: Array, lo: int, hi: int, tol: float) -> tuple[list[Array], None, int]:
    from rmtbench.parallel import single_blas_thread

    with single_blas_thread():
        Z, steps = net.solve(np.ascontiguousarray(X[:, lo:hi]), tol=tol)
    return [Z], None, steps


def _pair_of_blocks(X: Array, a: tuple[int, int], b: tuple[int, int], fa: Any, fb: Any) -> Array:
    return _pair_products(X, a, b, fa[:2], fb[:2])


def _max_steps(*blocks: Any) -> int:
    return max(int(b[2]) for b in blocks)


def equilibrium_kernel_graphs(nets: Sequence[EquilibriumNet], X: Any, n: int, *, sample_block: int = 512,
                              tol: float = 1e-10) -> tuple[Any, Any, list[Any], list[Any]]:
    """Delayed (sum over even draws, sum over odd draws, per-draw 1ᵀG1/n, per-draw steps) of Z*ᵀZ*.

    Each draw's Gram is ``(1, n, n)``; see :func:`seed_kernel_graphs` for the two half sums.
    """
    import dask

    blocks = [(lo, min(lo + sample_block, n)) for lo in range(0, n, max(1, sample_block))]
    solve = dask.delayed(_equilibrium_block, pure=True)
    pair = dask.delayed(_pair_of_blocks, pure=True)
    grams, steps = [], []
    for net in nets:
        solved = [solve(net, X, lo, hi, tol) for lo, hi in blocks]
        pairs = [pair(X, blocks[i], blocks[j], solved[i], solved[j]) for i in range(len(blocks)) for j in range(i, len(blocks))]
        grams.append(dask.delayed(_assemble, pure=True)(n, blocks, *pairs))
        steps.append(dask.delayed(_max_steps, pure=True)(*solved))
    return (*seed_sum_graphs(grams), steps)
