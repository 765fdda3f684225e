"""Matrix-free spectra of random-features Grams: stochastic Lanczos quadrature and Hutchinson traces.

For n where a dense eigendecomposition of ``G = Phi^T Phi / n`` no longer fits (DESIGN.md, "Scale beyond
one node"), the spectral density of G and the normalised resolvent trace ``m(z) = (1/n) tr (G - zI)^{-1}``
are estimated from products ``V -> G V = Phi^T (Phi V) / n`` alone. :class:`GramProducts` computes them
through a chunked Dask graph over the feature units of :mod:`rmtbench.reduction` (each unit's
``F_u^T (F_u V)``, summed along the fixed tree), so neither G nor Phi is ever formed whole; feature
blocks are kept in (distributed) memory between products when they fit, and recomputed from their seed
panels otherwise.

Method (Golub & Meurant, *Matrices, Moments and Quadrature*, 2010; Ubaru, Chen & Saad, SIAM J.
Matrix Anal. Appl. 38 (2017) 1075): for a Rademacher probe v (``||v||^2 = n``), m Lanczos steps from
``v / sqrt(n)`` give a tridiagonal ``T_m = S diag(theta) S^T``; the nodes ``theta_j`` with weights
``S_{1j}^2`` are the m-point Gauss quadrature of the measure ``mu_v = sum_i (u_i^T v)^2 / n
delta_{lambda_i}``, whose mean over probes is the spectral measure of G. Hence

* the density / CDF of G: the nodes and weights pooled over probes (:meth:`SpectralQuadrature.cdf`);
* Hutchinson traces: ``(1/n) tr f(G) ~ mean_v e_1^T f(T_m) e_1`` with its standard error over probes
  (:meth:`SpectralQuadrature.trace`, :meth:`SpectralQuadrature.stieltjes`).

Error budget. The probe term: for the CDF at x, ``Var = (2/n^2)(tr P^2 - sum_i P_ii^2) <= 2 F(1-F)/n``
per probe (P the spectral projector below x), so its standard deviation is at most
``sqrt(1/(2 n k))`` for k probes; for traces it is the standard error printed. The quadrature term: an
m-point Gauss rule resolves the CDF to about the weight of one node (Chebyshev-Markov-Stieltjes
inequalities), O(1/m); smooth f such as ``1/(lambda - z)`` away from the spectrum converge geometrically
in m, and :meth:`SpectralQuadrature.trace` reports the change from ``m/2`` to m steps as an a-posteriori
indicator of it. Lanczos runs with full reorthogonalisation (twice), so ghost eigenvalues do not
distort the weights.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> A = rng.standard_normal((300, 200))
>>> G = A.T @ A / 200
>>> quad = slq(lambda V: G @ V, 200, probes=8, steps=40, root_seed=1)
>>> est = quad.trace(lambda x: x)
>>> bool(abs(est.mean - np.trace(G) / 200) < 4 * est.stderr + 1e-12)
True
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rmtbench.reduction import REDUCTION_ROWS, tree_reduce, tree_tasks

__all__ = [
    "GramProducts",
    "SpectralQuadrature",
    "TraceEstimate",
    "gram_slq",
    "lanczos",
    "rademacher_probes",
    "slq",
]

Array = NDArray[np.float64]
MatMat = Callable[[Array], Array]


# -- the operator: V -> Phi^T (Phi V) / n through Dask ----------------------------------------------------
def _unit_features(fmap: Any, X: Array, unit: int) -> Array:
    """Rows of one reduction unit of ``Phi = phi(W X)`` (C-contiguous, ``rows x n``)."""
    start = unit * REDUCTION_ROWS
    return np.ascontiguousarray(fmap.features(X, start, min(start + REDUCTION_ROWS, fmap.width)))


def _block_features(fmap: Any, X: Array, lo: int, hi: int) -> list[Array]:
    from rmtbench.parallel import single_blas_thread

    with single_blas_thread():
        return [_unit_features(fmap, X, u) for u in range(lo, hi)]


def _block_product(block: Sequence[Array] | None, fmap: Any, X: Array | None, lo: int, hi: int, V: Array) -> Array:
    """``sum_u F_u^T (F_u V)`` over the units ``lo..hi-1`` along the canonical tree (features cached or recomputed)."""
    from rmtbench.parallel import single_blas_thread

    def leaf(u: int) -> Array:
        F = block[u - lo] if block is not None else _unit_features(fmap, X, u)
        return F.T @ (F @ V)

    with single_blas_thread():
        return tree_reduce(lo, hi, leaf, np.add)


def _sum(a: Array, b: Array) -> Array:
    return a + b


def _squared_norms(block: Sequence[Array]) -> Array:
    return sum(np.einsum("ij,ij->j", F, F) for F in block)


@dataclass
class GramProducts:
    """The matrix-free operator ``V -> G V = Phi^T (Phi V) / n`` of a random-features map on data ``X``.

    Parameters
    ----------
    fmap
        The :class:`rmtbench.empirical.RandomFeatureMap` (its weights are generated panel by panel).
    X
        Data, shape ``(p, n)``.
    client
        Dask client, or ``None`` for synchronous execution in this process.
    block_rows
        Feature rows per Dask task (a multiple of :data:`~rmtbench.reduction.REDUCTION_ROWS`); never
        changes a number: each product is summed unit by unit along the canonical tree.
    cache
        Keep the feature blocks in (distributed) memory between products (``8 d n`` bytes in all);
        ``False`` recomputes them for every product (``2 d p n`` flops each, no memory for Phi).
        ``None`` caches when Phi takes at most :attr:`cache_limit` bytes.
    cache_limit
        Bytes of Phi above which ``cache=None`` recomputes.

    Notes
    -----
    Each call sends ``V`` (``n x k``) to every task and sums ``n x k`` partial products; G is never
    formed. Pass several vectors at once (k probes): the features of a block are then produced (or
    read) once per call for all of them.
    """

    fmap: Any
    X: Array
    client: Any = None
    block_rows: int = 1024
    cache: bool | None = None
    cache_limit: float = 4 * 2**30
    n: int = field(default=0, init=False)
    products: int = field(default=0, init=False)
    _blocks: list[tuple[int, int, Any]] = field(default_factory=list, init=False, repr=False)
    _X: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.block_rows % REDUCTION_ROWS or self.block_rows <= 0:
            raise ValueError(f"block_rows must be a positive multiple of {REDUCTION_ROWS}, got {self.block_rows}")
        self.X = np.asarray(self.X, dtype=np.float64)
        self.n = self.X.shape[1]
        if self.cache is None:
            self.cache = 8.0 * self.fmap.width * self.n <= self.cache_limit

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.n)

    def _ranges(self) -> list[tuple[int, int]]:
        per = self.block_rows // REDUCTION_ROWS
        units = self.fmap.units
        # tasks are whole subtrees of the canonical tree, as tree_tasks cuts it
        ranges: list[tuple[int, int]] = []
        tree_tasks(0, units, per, lambda lo, hi: ranges.append((lo, hi)), lambda a, b: None)
        return ranges

    def _prepare(self) -> None:
        import dask

        if self.client is not None and self._X is None:
            self._X = self.client.scatter(self.X, broadcast=True, hash=False)
        if self._blocks or not self.cache:
            return
        if self.client is None:
            self._blocks = [(lo, hi, _block_features(self.fmap, self.X, lo, hi)) for lo, hi in self._ranges()]
            return
        make = dask.delayed(_block_features, pure=True)
        futures = self.client.compute([make(self.fmap, self._X, lo, hi) for lo, hi in self._ranges()])
        # the blocks stay on the workers, as futures, until release()
        self._blocks = [(lo, hi, f) for (lo, hi), f in zip(self._ranges(), futures)]

    def trace(self) -> float:
        """``(1/n) tr G = (1/n^2) sum_i ||phi(W x_i)||^2``, exactly, from the features (a check for estimates)."""
        import dask

        from rmtbench.parallel import compute

        self._prepare()
        if self.cache and self.client is None:
            norms = sum(_squared_norms(b) for _, _, b in self._blocks)
        elif self.cache:
            sq = dask.delayed(_squared_norms, pure=True)
            norms = sum(compute(self.client, *[sq(b) for _, _, b in self._blocks]))
        else:
            block = dask.delayed(_block_features, pure=True)
            sq = dask.delayed(_squared_norms, pure=True)
            X = self._X if self._X is not None else dask.delayed(self.X)
            norms = sum(compute(self.client, *[sq(block(self.fmap, X, lo, hi)) for lo, hi in self._ranges()]))
        return float(np.sum(norms)) / self.n**2

    def __call__(self, V: ArrayLike) -> Array:
        """``G V`` for ``V`` of shape ``(n,)`` or ``(n, k)``."""
        import dask

        from rmtbench.parallel import compute

        V = np.asarray(V, dtype=np.float64)
        vector = V.ndim == 1
        V = np.ascontiguousarray(V.reshape(self.n, -1))
        self._prepare()
        self.products += 1
        if self.client is None and self.cache:
            parts = {(lo, hi): _block_product(b, self.fmap, None, lo, hi, V) for lo, hi, b in self._blocks}
            total = tree_tasks(0, self.fmap.units, self.block_rows // REDUCTION_ROWS, lambda lo, hi: parts[(lo, hi)], _sum)
        else:
            product = dask.delayed(_block_product, pure=True)
            add = dask.delayed(_sum, pure=True)
            Vd = dask.delayed(V) if self.client is None else self.client.scatter(V, broadcast=True, hash=False)
            X = self._X if self._X is not None else dask.delayed(self.X)
            blocks = {(lo, hi): b for lo, hi, b in self._blocks}
            graph = tree_tasks(
                0, self.fmap.units, self.block_rows // REDUCTION_ROWS,
                lambda lo, hi: product(blocks.get((lo, hi)), self.fmap, None if self.cache else X, lo, hi, Vd),
                lambda a, b: add(a, b),
            )
            total = compute(self.client, graph)[0]
        total = total / self.n
        return total[:, 0] if vector else total

    def release(self) -> None:
        """Drop the cached feature blocks."""
        self._blocks = []
        self._X = None


# -- Lanczos and quadrature -------------------------------------------------------------------------------
def rademacher_probes(n: int, count: int, *, root_seed: int, key: tuple[int | str, ...] = ("slq",)) -> Array:
    """``count`` Rademacher probe vectors (columns, ``||v||^2 = n``) drawn under ``(root_seed, *key)``."""
    from rmtbench.rng import generator

    rng = generator(root_seed, *key, "probes")
    return np.where(rng.random((n, count)) < 0.5, -1.0, 1.0)


def lanczos(matmat: MatMat, start: ArrayLike, steps: int) -> tuple[Array, Array]:
    """``steps`` Lanczos steps for each column of ``start``, in lockstep, with full reorthogonalisation.

    Parameters
    ----------
    matmat
        ``V -> A V`` for a symmetric A, on ``(n, k)`` blocks.
    start
        Starting vectors, shape ``(n, k)`` (normalised here).
    steps
        Number of steps m (at most n).

    Returns
    -------
    alpha, beta
        Shapes ``(k, m)`` and ``(k, m - 1)``: diagonals and off-diagonals of each column's ``T_m``.
        A column whose Krylov space is exhausted early (``beta`` below round-off) stops there: its
        remaining entries are NaN.
    """
    V = np.asarray(start, dtype=np.float64)
    n, k = V.shape
    steps = int(min(steps, n))
    Q = np.zeros((k, steps, n))  # each probe's basis, rows contiguous: reorthogonalisation is two batched gemv
    alpha = np.full((k, steps), np.nan)
    beta = np.full((k, max(steps - 1, 0)), np.nan)
    q = (V / np.linalg.norm(V, axis=0)).T.copy()  # (k, n)
    active = np.ones(k, dtype=bool)
    prev = np.zeros_like(q)
    b = np.zeros(k)
    scale = 0.0
    for j in range(steps):
        Q[:, j] = q
        w = np.ascontiguousarray(np.asarray(matmat(np.ascontiguousarray(q.T)), dtype=np.float64).T)
        a = np.einsum("kn,kn->k", q, w)
        alpha[active, j] = a[active]
        w -= a[:, None] * q + b[:, None] * prev
        basis = Q[:, : j + 1]
        for _ in range(2):  # full reorthogonalisation, twice (Kahan-Parlett)
            w -= np.matmul(np.matmul(basis, w[:, :, None]).transpose(0, 2, 1), basis)[:, 0]
        b = np.linalg.norm(w, axis=1)
        scale = max(scale, float(np.max(np.abs(a[active]), initial=0.0)), float(np.max(b[active], initial=0.0)))
        if j == steps - 1:
            break
        done = active & (b <= 1e-12 * max(scale, np.finfo(float).tiny))
        beta[active & ~done, j] = b[active & ~done]
        active &= ~done
        if not active.any():
            break
        prev = q
        q = np.where(active[:, None], w / np.where(b > 0, b, 1.0)[:, None], 0.0)
        b = np.where(active, b, 0.0)
    return alpha, beta


def _gauss_rule(alpha: Array, beta: Array) -> tuple[Array, Array]:
    """Nodes and weights of the Gauss rule of one tridiagonal (NaN-padded inputs are cut)."""
    from scipy.linalg import eigh_tridiagonal

    m = int(np.count_nonzero(np.isfinite(alpha)))
    if m == 1:
        return alpha[:1].copy(), np.ones(1)
    theta, S = eigh_tridiagonal(alpha[:m], beta[: m - 1])
    return theta, S[0] ** 2


@dataclass(frozen=True)
class TraceEstimate:
    """A Hutchinson-type estimate of ``(1/n) tr f(G)``.

    Attributes
    ----------
    mean
        Mean over probes.
    stderr
        Standard error of the mean over probes (the probe part of the error).
    quadrature
        ``|estimate with m//2 Lanczos steps - estimate with m|``: an a-posteriori indicator of the
        quadrature part of the error (0 when it is below round-off).
    per_probe
        The estimate of each probe.
    """

    mean: complex | float
    stderr: float
    quadrature: float
    per_probe: NDArray[Any]

    @property
    def error(self) -> float:
        """A stated error bound: four standard errors plus twice the quadrature indicator."""
        return 4.0 * self.stderr + 2.0 * self.quadrature


@dataclass(frozen=True, eq=False)
class SpectralQuadrature:
    """Gauss rules of the spectral measure of G, one per probe (stochastic Lanczos quadrature).

    Attributes
    ----------
    alpha, beta
        The Lanczos tridiagonals, shapes ``(k, m)`` and ``(k, m - 1)`` (NaN past a breakdown).
    n
        Order of G.
    """

    alpha: Array
    beta: Array
    n: int

    @property
    def probes(self) -> int:
        return self.alpha.shape[0]

    @property
    def steps(self) -> int:
        return self.alpha.shape[1]

    def rules(self, steps: int | None = None) -> list[tuple[Array, Array]]:
        """``(nodes, weights)`` of each probe, from the first ``steps`` Lanczos steps (all by default)."""
        m = self.steps if steps is None else int(steps)
        return [_gauss_rule(a[:m], b[: m - 1]) for a, b in zip(self.alpha, self.beta)]

    def nodes_and_weights(self, *, zero_tol: float = 1e-9) -> tuple[Array, Array]:
        """All probes' nodes and weights pooled (weights sum to 1), nodes below ``zero_tol * max`` set to 0.

        G is positive semi-definite; nodes of its null space come out as round-off (about ``1e-15``
        times the largest) of either sign and are set to exactly 0, as dense eigenvalues should be
        for a comparison (:func:`clip_zero`).
        """
        rules = self.rules()
        nodes = np.concatenate([r[0] for r in rules])
        weights = np.concatenate([r[1] for r in rules]) / len(rules)
        return clip_zero(nodes, zero_tol), weights

    def cdf(self, *, zero_tol: float = 1e-9) -> Callable[[ArrayLike], Array]:
        """The estimated CDF of the eigenvalues of G: an atom at 0 plus a piecewise-linear continuous part.

        The pooled Gauss nodes carry jumps; the Gauss CDF brackets the true one between the values
        just below and at each node (Chebyshev-Markov-Stieltjes), so the continuous part interpolates
        linearly between the midpoints of consecutive jumps. The atom is the weight of nodes at 0.
        """
        nodes, weights = self.nodes_and_weights(zero_tol=zero_tol)
        atom = float(weights[nodes == 0].sum())
        keep = nodes != 0
        order = np.argsort(nodes[keep])
        xs, ws = nodes[keep][order], weights[keep][order]
        upper = np.cumsum(ws)
        mids = atom + upper - ws / 2
        top = atom + (upper[-1] if upper.size else 0.0)

        def cdf(x: ArrayLike) -> Array:
            x = np.asarray(x, dtype=np.float64)
            cont = np.interp(x, xs, mids, left=atom, right=top) if xs.size else np.full(x.shape, atom)
            return np.where(x < 0, 0.0, cont)

        return cdf

    def density(self, x: ArrayLike, *, bandwidth: float) -> Array:
        """The pooled Gauss measure smoothed by a Gaussian of standard deviation ``bandwidth`` (atom included)."""
        nodes, weights = self.nodes_and_weights()
        x = np.asarray(x, dtype=np.float64)
        u = (x[..., None] - nodes) / bandwidth
        return (weights * np.exp(-0.5 * u * u)).sum(axis=-1) / (bandwidth * np.sqrt(2 * np.pi))

    def trace(self, f: Callable[[Array], ArrayLike]) -> TraceEstimate:
        """``(1/n) tr f(G)`` estimated as the mean over probes of ``sum_j w_j f(theta_j)``."""
        def estimates(steps: int | None) -> NDArray[Any]:
            return np.array([np.sum(w * np.asarray(f(t))) for t, w in self.rules(steps)])

        full = estimates(None)
        half = estimates(max(1, self.steps // 2))
        k = full.size
        stderr = float(np.std(full, ddof=1) / np.sqrt(k)) if k > 1 else float("inf")
        return TraceEstimate(mean=full.mean(), stderr=stderr, quadrature=float(abs(full.mean() - half.mean())),
                             per_probe=full)

    def stieltjes(self, z: complex) -> TraceEstimate:
        """``m(z) = (1/n) tr (G - zI)^{-1}`` (Hutchinson with Lanczos quadrature); z off the spectrum."""
        return self.trace(lambda t: 1.0 / (t - z))


def clip_zero(values: ArrayLike, zero_tol: float = 1e-9) -> Array:
    """``values`` with entries of modulus at most ``zero_tol * max|values|`` set to exactly 0.

    Examples
    --------
    >>> clip_zero([1e-17, -2e-16, 0.5, 2.0]).tolist()
    [0.0, 0.0, 0.5, 2.0]
    """
    v = np.asarray(values, dtype=np.float64).copy()
    v[np.abs(v) <= zero_tol * np.max(np.abs(v), initial=0.0)] = 0.0
    return v


def slq(matmat: MatMat, n: int, *, probes: int = 16, steps: int = 100, root_seed: int = 0,
        key: tuple[int | str, ...] = ("slq",)) -> SpectralQuadrature:
    """Stochastic Lanczos quadrature of a symmetric ``n x n`` operator given by ``matmat``.

    Parameters
    ----------
    matmat
        ``V -> A V`` on ``(n, k)`` blocks (e.g. a :class:`GramProducts`).
    n
        Order of A.
    probes
        Rademacher probe vectors k, run in lockstep (one block product per step for all of them).
    steps
        Lanczos steps m per probe (cost: m block products and ``O(k m^2 n)`` for reorthogonalisation).
    root_seed, key
        Name the probe draw (see :mod:`rmtbench.rng`).
    """
    V = rademacher_probes(n, probes, root_seed=root_seed, key=key)
    alpha, beta = lanczos(matmat, V, steps)
    return SpectralQuadrature(alpha=alpha, beta=beta, n=n)


def gram_slq(fmap: Any, X: ArrayLike, *, probes: int = 16, steps: int = 100, client: Any = None,
             block_rows: int = 1024, cache: bool | None = None, root_seed: int = 0,
             key: tuple[int | str, ...] = ("slq",)) -> SpectralQuadrature:
    """:func:`slq` of ``G = Phi^T Phi / n`` for the features ``fmap`` of ``X``, through :class:`GramProducts`."""
    op = GramProducts(fmap, np.asarray(X, dtype=np.float64), client=client, block_rows=block_rows, cache=cache)
    try:
        return slq(op, op.n, probes=probes, steps=steps, root_seed=root_seed, key=key)
    finally:
        op.release()
