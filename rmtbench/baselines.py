"""Explicit feature maps for memory-constrained kernel ridge regression, and their memory in bits.

Four ways to approximate a kernel ``K`` by ``Z^T Z`` with ``N`` explicit features (``Z`` is
``N x n``, one column per sample), all normalised so that ``Z^T Z -> K`` as ``N`` grows and the
ridge ``gamma`` is on the kernel's scale (:func:`feature_ridge`):

``gaussian_rf`` (:class:`GaussianRandomFeatures`)
    ``Z = phi(W X) / sqrt(N)``, ``W`` with i.i.d. N(0, 1) entries (float64): ``K = E phi phi``, the
    expected kernel of :mod:`rmtbench.theory.kernels` (for ReLU the arc-cosine kernel of order 1).
``ternary_rf`` (:class:`TernaryRandomFeatures`; AZC22, seed slides "Practical consequence")
    ``Z = sigma(W X) / sqrt(N)`` with sparse ternary ``W`` (seed eq. 13: 0 with probability eps,
    ``+-(1 - eps)^(-1/2)`` otherwise), stored by :class:`rmtbench.compact.TernaryMatrix`, and the
    ternary activation ``sigma`` matched to the target's alpha1, alpha2 at the data's tau
    (:func:`rmtbench.quantize.match_ternary`).
``nystroem`` (:class:`NystroemFeatures`; Williams and Seeger 2001)
    scikit-learn's :class:`sklearn.kernel_approximation.Nystroem` on ``N`` landmarks drawn uniformly
    without replacement from the training columns, with the target activation's expected kernel,
    so ``Z^T Z = K_XL K_LL^+ K_LX`` approximates the same ``K`` as ``gaussian_rf``.
``rff``, ``lp_rff-b<bits>`` (:class:`LowPrecisionRFF`; Rahimi and Recht 2007; Zhang, May, Dao and
Ré, "Low-precision random Fourier features for memory-constrained kernel approximation", AISTATS 2019)
    ``Z = sqrt(2/N) cos(Omega X + b)``, ``Omega`` with i.i.d. N(0, 1/bandwidth^2) entries and ``b``
    uniform on [0, 2 pi): the Gaussian kernel ``exp(-||x - x'||^2 / (2 bandwidth^2))``. LP-RFF
    stores the *training* features in ``bits`` bits each by unbiased stochastic rounding onto
    ``2^bits`` evenly spaced levels of ``[-sqrt(2/N), sqrt(2/N)]`` (their Quantizer). RFF cannot
    approximate the ReLU kernel (it is not shift-invariant), so this baseline targets another kernel.

Memory accounting (what :meth:`FeatureMap.memory` returns)
---------------------------------------------------------
*Model memory* is what a trained model must keep to predict: the projection (weights, landmarks,
frequencies), the few scalars of the map, and the ridge coefficients. The projection arrays are
**measured** (``8 * nbytes`` of the arrays actually held); the coefficients are ``N`` float64
(``64 N`` bits) for every method, so they are counted, not measured. No method is credited for
regenerating its random projection from a seed. *Training-feature memory* is what the training
features take in the representation each method stores them in (the quantity LP-RFF reduces):
``n N`` entries times the bits per entry below (computed, not measured).

==============  =========================================================  ==================  ==========
method          stored for prediction                                      model bits          bits/entry
                                                                                               of training
                                                                                               features
==============  =========================================================  ==================  ==========
gaussian_rf     W (N x p float64), coefficients                            64 N p + 64 N       64
ternary_rf      W compact (:mod:`rmtbench.compact`, ``layout="auto"``:     ~16 (1 - eps) N p   2 (values
                uint16 column indices of the non-zeros + two uint32 row    + 64 (N + 1)        in {-c, 0, c})
                pointer arrays, or 2 bit planes), 4 float64 (W scale,      + 4 * 64 + 64 N
                s_minus, s_plus, c), coefficients
nystroem        landmarks X_L (N x p float64), coefficients with           64 N p + 64 N       64
                sklearn's ``normalization_`` folded in (``M^T beta``, so
                f(x) = k(x, X_L) M^T beta; the N x N matrix is not kept)
rff             Omega (N x p float64), phases b (N float64), coefficients  64 N p + 128 N      64
lp_rff-b<k>     same as rff (test features are computed in full            64 N p + 128 N      k
                precision; only the stored training features are
                quantised)
==============  =========================================================  ==================  ==========

Every random draw comes from :mod:`rmtbench.rng` under ``(root_seed, *key, ...)``: weights in
panels of :data:`rmtbench.rng.PANEL_ROWS` rows (so the first ``N`` features of a wider map are the
map with ``N`` features), landmarks, phases and rounding noise each under their own key.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from numpy.typing import NDArray

from rmtbench.rng import PANEL_ROWS, generator

__all__ = [
    "METHOD_PATTERN",
    "FeatureMap",
    "FeatureRidgeResult",
    "GaussianRandomFeatures",
    "LowPrecisionRFF",
    "MemoryReport",
    "NystroemFeatures",
    "TernaryRandomFeatures",
    "feature_ridge",
    "parse_method",
    "stochastic_round",
]

Array = NDArray[np.float64]
METHOD_PATTERN = r"^(gaussian_rf|ternary_rf|nystroem|rff|lp_rff-b([1-9]|1[0-6]))$"
"""Method names accepted by :func:`parse_method` (``lp_rff-b1`` ... ``lp_rff-b16``)."""
COEFFICIENT_BITS = 64
"""Bits per ridge coefficient (float64), the same for every method."""


def parse_method(name: str) -> tuple[str, int | None]:
    """``(family, bits)`` of a method name: ``"lp_rff-b4"`` -> ``("lp_rff", 4)``, others ``(name, None)``.

    Examples
    --------
    >>> parse_method("lp_rff-b8"), parse_method("ternary_rf")
    (('lp_rff', 8), ('ternary_rf', None))
    """
    if not re.match(METHOD_PATTERN, name):
        raise ValueError(f"unknown footprint method {name!r}; expected gaussian_rf, ternary_rf, nystroem, rff "
                         "or lp_rff-b<bits> with 1 <= bits <= 16")
    if name.startswith("lp_rff-b"):
        return "lp_rff", int(name[len("lp_rff-b"):])
    return name, None


@dataclass(frozen=True)
class MemoryReport:
    """Memory of one fitted feature map (see the module docstring's table).

    Attributes
    ----------
    method
        Method name.
    width
        Number of features N.
    projection_bits
        ``8 * nbytes`` of the arrays the map keeps for prediction (measured).
    coefficient_bits
        ``64 N`` (the ridge coefficients, float64).
    feature_bits_per_entry
        Bits per stored training-feature entry.
    arrays
        ``{name: nbytes}`` of the measured arrays.
    """

    method: str
    width: int
    projection_bits: int
    coefficient_bits: int
    feature_bits_per_entry: float
    arrays: Mapping[str, int]

    @property
    def model_bits(self) -> int:
        """Projection plus coefficients: the prediction-time footprint in bits."""
        return self.projection_bits + self.coefficient_bits

    def training_feature_bits(self, n: int) -> float:
        """Bits of the ``n x N`` stored training features."""
        return float(n) * self.width * self.feature_bits_per_entry


class FeatureMap:
    """Common interface: rows of ``Z`` for any data, the arrays kept for prediction, memory.

    Subclasses set ``method``, ``width`` and ``feature_bits_per_entry`` and implement
    :meth:`rows` and :meth:`stored_arrays`.
    """

    method: str = ""
    width: int = 0
    feature_bits_per_entry: float = 64.0

    def rows(self, X: Array, start: int, stop: int, *, train: bool) -> Array:
        """Rows ``start:stop`` of ``Z`` for the columns of ``X`` (``start`` a multiple of ``PANEL_ROWS``).

        ``train`` says whether ``X`` is the stored training set (LP-RFF quantises only those).
        """
        raise NotImplementedError

    def features(self, X: Array, *, train: bool, block_rows: int = 1024) -> Array:
        """All of ``Z`` (``N x m``), assembled from panel-aligned row blocks."""
        step = max(PANEL_ROWS, (block_rows // PANEL_ROWS) * PANEL_ROWS)
        return np.concatenate([self.rows(X, s, min(s + step, self.width), train=train)
                               for s in range(0, self.width, step)], axis=0)

    def stored_arrays(self) -> dict[str, np.ndarray]:
        """The arrays kept for prediction besides the ridge coefficients."""
        raise NotImplementedError

    def memory(self) -> MemoryReport:
        """The measured model memory and the training-feature bits per entry."""
        arrays = {name: int(np.asarray(a).nbytes) for name, a in self.stored_arrays().items()}
        return MemoryReport(method=self.method, width=self.width, projection_bits=8 * sum(arrays.values()),
                            coefficient_bits=COEFFICIENT_BITS * self.width,
                            feature_bits_per_entry=float(self.feature_bits_per_entry), arrays=arrays)


def _check_rows(fmap: FeatureMap, start: int, stop: int) -> None:
    if start % PANEL_ROWS or not 0 <= start < stop <= fmap.width:
        raise ValueError(f"rows {start}:{stop} of a {fmap.width}-feature map: start must be a multiple of "
                         f"{PANEL_ROWS} and 0 <= start < stop <= width")


class GaussianRandomFeatures(FeatureMap):
    """``Z = phi(W X) / sqrt(N)``, Gaussian ``W`` (N x p) kept as float64.

    Parameters
    ----------
    activation
        Activation or spec (e.g. ``"relu"``).
    width, p
        N features of inputs in R^p.
    root_seed, key
        Name the draw of ``W`` (:func:`rmtbench.weights.weight_rows`).

    Examples
    --------
    >>> f = GaussianRandomFeatures("relu", width=256, p=3, root_seed=0, key=("doc",))
    >>> f.memory().model_bits == 64 * 256 * 3 + 64 * 256
    True
    """

    method = "gaussian_rf"

    def __init__(self, activation: Any, *, width: int, p: int, root_seed: int, key: tuple[int | str, ...]) -> None:
        from rmtbench.activations import get_activation
        from rmtbench.weights import WeightLaw, weight_rows

        self.activation = get_activation(activation)
        self.width = int(width)
        self.W = weight_rows(WeightLaw("gaussian"), root_seed=root_seed, key=tuple(key), start=0, stop=self.width, columns=int(p))

    def rows(self, X: Array, start: int, stop: int, *, train: bool) -> Array:
        _check_rows(self, start, stop)
        return np.asarray(self.activation.phi(self.W[start:stop] @ X), dtype=float) / math.sqrt(self.width)

    def stored_arrays(self) -> dict[str, np.ndarray]:
        return {"W": self.W}


class TernaryRandomFeatures(FeatureMap):
    """``Z = sigma(W X) / sqrt(N)``: sparse ternary ``W`` in compact storage, ternary ``sigma``.

    Parameters
    ----------
    activation
        The quantised activation spec, ``{"family": "ternary", "s_minus", "s_plus", "scale"}``
        (from :func:`rmtbench.quantize.match_ternary`).
    eps
        Sparsity of ``W`` (seed eq. 13).
    width, p, root_seed, key
        As in :class:`GaussianRandomFeatures`; ``W.to_dense()`` equals the float64 matrix that
        :func:`rmtbench.weights.weight_rows` draws for the law ``ternary-eps<eps>`` under the same key.
    layout
        Storage layout of :class:`rmtbench.compact.TernaryMatrix` (``"auto"``: the smallest).

    Notes
    -----
    Products use the sparse non-zeros of each row block (cost proportional to ``(1 - eps) N p``); the
    float64 ``W`` is never formed.
    """

    method = "ternary_rf"
    feature_bits_per_entry = 2.0

    def __init__(self, activation: Mapping[str, Any], *, eps: float, width: int, p: int, root_seed: int,
                 key: tuple[int | str, ...], layout: str = "auto") -> None:
        from rmtbench.activations import get_activation
        from rmtbench.compact import TernaryMatrix

        spec = dict(activation)
        if spec.get("family") != "ternary":
            raise ValueError(f"ternary_rf needs a ternary activation spec, got {activation!r}")
        self.spec = spec
        self.activation = get_activation(spec)
        self.eps = float(eps)
        self.width = int(width)
        self.W = TernaryMatrix.from_law({"law": "ternary", "eps": self.eps}, rows=self.width, columns=int(p),
                                        root_seed=root_seed, key=tuple(key), layout=layout)  # type: ignore[arg-type]

    def rows(self, X: Array, start: int, stop: int, *, train: bool) -> Array:
        from scipy import sparse

        _check_rows(self, start, stop)
        signs = sparse.csr_matrix(self.W.signs(start, stop).astype(np.float64))
        pre = np.asarray(signs @ X) * self.W.scale
        return np.asarray(self.activation.phi(pre), dtype=float) / math.sqrt(self.width)

    def stored_arrays(self) -> dict[str, np.ndarray]:
        scalars = np.array([self.W.scale, self.spec["s_minus"], self.spec["s_plus"], self.spec["scale"]], dtype=np.float64)
        return {**{f"W_{k}": v for k, v in self.W.arrays.items()}, "scalars": scalars}


class NystroemFeatures(FeatureMap):
    """Nyström features of the target activation's expected kernel, through scikit-learn's ``Nystroem``.

    Parameters
    ----------
    activation
        Target activation: the kernel is ``K(x, x') = E_w phi(w^T x) phi(w^T x')`` (w ~ N(0, I_p)),
        evaluated by :func:`rmtbench.theory.kernels.expected_kernel` (closed form for ReLU: the
        arc-cosine kernel of order 1).
    width
        Number of landmarks N (at most the number of training columns).
    X
        Training data ``p x n``; the landmarks are N of its columns, drawn uniformly without
        replacement under ``(root_seed, *key, "landmarks")``.
    root_seed, key
        Name the draws.
    nodes
        Quadrature nodes for kernels without a closed form.

    Notes
    -----
    scikit-learn evaluates a *callable* kernel one pair of samples at a time in Python (``n N``
    calls), far too slow here, so ``Nystroem(kernel="precomputed")`` is fitted on the landmark
    kernel ``K_LL`` (``n_components = N``: scikit-learn only permutes its rows, which leaves
    ``normalization_^T normalization_ = K_LL^+`` unchanged) and transforms ``K_XL``; the kernel blocks
    come from :func:`~rmtbench.theory.kernels.expected_kernel`. scikit-learn's SVD and its clipping of
    singular values at 1e-12 are used as they are.
    """

    method = "nystroem"

    def __init__(self, activation: Any, *, width: int, X: Array, root_seed: int, key: tuple[int | str, ...],
                 nodes: int = 48) -> None:
        from sklearn.kernel_approximation import Nystroem

        from rmtbench.activations import get_activation
        from rmtbench.theory.kernels import expected_kernel

        n = X.shape[1]
        self.width = int(width)
        if not 1 <= self.width <= n:
            raise ValueError(f"Nystroem needs 1 <= N <= n landmarks from the training set; got N = {width}, n = {n}")
        self.activation = get_activation(activation)
        self.nodes = int(nodes)
        rng = generator(root_seed, *key, "landmarks")
        self.landmark_indices = rng.permutation(n)[: self.width]
        self.landmarks = np.ascontiguousarray(X[:, self.landmark_indices])
        K_LL = expected_kernel(self.activation, self.landmarks, nodes=self.nodes)
        self.sklearn = Nystroem(kernel="precomputed", n_components=self.width,
                                random_state=int(rng.integers(2**31 - 1))).fit(K_LL)
        self._cache: tuple[Array, Array] | None = None

    def features(self, X: Array, *, train: bool, block_rows: int = 1024) -> Array:
        from rmtbench.theory.kernels import expected_kernel

        if self._cache is not None and self._cache[0] is X:  # the primal solve asks for all rows at once
            return self._cache[1]
        K_XL = expected_kernel(self.activation, X, self.landmarks, nodes=self.nodes)
        Z = np.ascontiguousarray(self.sklearn.transform(K_XL).T)
        self._cache = (X, Z)
        return Z

    def rows(self, X: Array, start: int, stop: int, *, train: bool) -> Array:
        _check_rows(self, start, stop)
        return self.features(X, train=train)[start:stop]

    def stored_arrays(self) -> dict[str, np.ndarray]:
        # f(x) = Z(x)^T beta = k(x, X_L) (normalization_^T beta): keep X_L; the folded coefficients
        # replace beta and are counted as the coefficients.
        return {"landmarks": self.landmarks}


def stochastic_round(Z: Array, *, bits: int, bound: float, uniforms: Array) -> Array:
    """Unbiased stochastic rounding of ``Z`` (clipped to ``[-bound, bound]``) onto ``2^bits`` levels.

    The levels are ``-bound + k * step``, ``step = 2 bound / (2^bits - 1)``, ``k = 0 .. 2^bits - 1``;
    a value between two levels goes up with probability equal to its distance from the lower level
    over ``step``, so ``E[Q(z)] = z`` (Zhang et al. 2019, Quantizer).

    Examples
    --------
    >>> stochastic_round(np.array([0.25]), bits=1, bound=1.0, uniforms=np.array([0.6]))  # P(up) = 0.625
    array([1.])
    """
    levels = 2**int(bits) - 1
    step = 2.0 * bound / levels
    k = np.floor((np.clip(Z, -bound, bound) + bound) / step + uniforms)
    return np.clip(k, 0, levels) * step - bound


class LowPrecisionRFF(FeatureMap):
    """Random Fourier features ``sqrt(2/N) cos(Omega X + b)``, training features optionally quantised.

    Parameters
    ----------
    width, p
        N features of inputs in R^p.
    bandwidth
        sigma of the Gaussian kernel ``exp(-||x - x'||^2 / (2 sigma^2))``.
    bits
        Bits per stored training feature (LP-RFF, Zhang et al. 2019), or ``None`` for full-precision RFF.
    root_seed, key
        Name the draws of Omega (panels of ``PANEL_ROWS`` rows), the phases and the rounding noise
        (per panel of rows, for all training columns at once).
    """

    def __init__(self, *, width: int, p: int, bandwidth: float, bits: int | None, root_seed: int,
                 key: tuple[int | str, ...]) -> None:
        from rmtbench.weights import WeightLaw, weight_rows

        if not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
        if bits is not None and not 1 <= int(bits) <= 16:
            raise ValueError(f"bits must be in 1..16, got {bits}")
        self.width, self.bits, self.bandwidth = int(width), None if bits is None else int(bits), float(bandwidth)
        self.method = "rff" if bits is None else f"lp_rff-b{self.bits}"
        self.feature_bits_per_entry = 64.0 if bits is None else float(self.bits)
        self.root_seed, self.key = root_seed, tuple(key)
        self.Omega = weight_rows(WeightLaw("gaussian"), root_seed=root_seed, key=(*self.key, "omega"), start=0,
                                 stop=self.width, columns=int(p)) / self.bandwidth
        panels = -(-self.width // PANEL_ROWS)
        self.phase = np.concatenate([generator(root_seed, *self.key, "phase", i).uniform(0.0, 2.0 * math.pi, PANEL_ROWS)
                                     for i in range(panels)])[: self.width]

    def rows(self, X: Array, start: int, stop: int, *, train: bool) -> Array:
        _check_rows(self, start, stop)
        bound = math.sqrt(2.0 / self.width)
        Z = bound * np.cos(self.Omega[start:stop] @ X + self.phase[start:stop, None])
        if self.bits is None or not train:
            return Z
        uniforms = np.concatenate([generator(self.root_seed, *self.key, "round", panel).random((PANEL_ROWS, X.shape[1]))
                                   for panel in range(start // PANEL_ROWS, -(-stop // PANEL_ROWS))])
        return stochastic_round(Z, bits=self.bits, bound=bound, uniforms=uniforms[: stop - start])

    def stored_arrays(self) -> dict[str, np.ndarray]:
        return {"Omega": self.Omega, "phase": self.phase}


# -- ridge regression on explicit features ------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class FeatureRidgeResult:
    """Training and test MSE of ridge regression on ``Z``, one entry per ridge (NaN where singular)."""

    gammas: Array
    train_mse: Array
    test_mse: Array
    side: str
    """``"primal"`` (N x N system, N <= n) or ``"dual"`` (n x n system)."""


def feature_ridge(fmap: FeatureMap, X: Array, y: Array, X_test: Array, y_test: Array, gammas: Any, *,
                  block_rows: int = 1024) -> FeatureRidgeResult:
    """Kernel-scale ridge regression on the features of ``fmap``, for many ridges.

    Predictions ``yhat(X_test) = Khat(X_test, X) (Khat + gamma I_n)^{-1} y`` with ``Khat = Z^T Z``,
    i.e. ``beta = (Z Z^T + gamma I_N)^{-1} Z y``: the smaller of the two systems is solved, by one
    Cholesky factorisation per ridge. With ``N <= n`` the features are formed (``N x n``, at most
    ``n^2`` numbers); with ``N > n`` only ``Z^T Z`` and ``Z^T Z_test`` are accumulated over row blocks.

    In LLC18's convention (``G = Phi^T Phi / n``, ridge ``gamma_LLC``, ``Phi = sqrt(N) Z``) this is
    ``gamma_LLC = N gamma / n``.

    Parameters
    ----------
    fmap
        A fitted feature map.
    X, y, X_test, y_test
        Data ``p x n``, targets ``(n,)`` and their test counterparts.
    gammas
        Ridges ``gamma > 0`` on the kernel scale.
    block_rows
        Rows per block in the dual accumulation (rounded to whole panels; never changes the result
        beyond the order of floating-point sums).

    Returns
    -------
    FeatureRidgeResult
        ``train_mse = (1/n)||y - yhat(X)||^2``, ``test_mse = (1/n_test)||y_test - yhat(X_test)||^2``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, Xt = rng.standard_normal((5, 40)) / 2, rng.standard_normal((5, 10)) / 2
    >>> f = GaussianRandomFeatures("relu", width=128, p=5, root_seed=1, key=("doc",))
    >>> res = feature_ridge(f, X, np.sign(X[0]), Xt, np.sign(Xt[0]), [0.1])
    >>> res.side, bool(res.train_mse[0] < res.test_mse[0])
    ('dual', True)
    """
    from scipy import linalg

    g = np.atleast_1d(np.asarray(gammas, dtype=float))
    if g.ndim != 1 or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError(f"gammas must be finite and > 0, got {g}")
    y, y_test = np.asarray(y, dtype=float), np.asarray(y_test, dtype=float)
    n, N = X.shape[1], fmap.width
    train, test = np.full(g.size, np.nan), np.full(g.size, np.nan)
    if N <= n:
        Z, Zt = fmap.features(X, train=True, block_rows=block_rows), fmap.features(X_test, train=False, block_rows=block_rows)
        A = linalg.blas.dsyrk(1.0, Z.T, trans=1)  # upper triangle of Z Z^T (Z.T is Fortran-ordered: no copy)
        b = Z @ y
        side = "primal"
    else:
        A = np.zeros((n, n))
        C = np.zeros((n, X_test.shape[1]))
        step = max(PANEL_ROWS, (block_rows // PANEL_ROWS) * PANEL_ROWS)
        for start in range(0, N, step):
            stop = min(N, start + step)
            F = fmap.rows(X, start, stop, train=True)
            A += linalg.blas.dsyrk(1.0, F.T)  # upper triangle of F^T F
            C += F.T @ fmap.rows(X_test, start, stop, train=False)
        b = y
        side = "dual"
    diagonal = np.diag_indices_from(A)
    for i, gamma in enumerate(g):
        M = A.copy()  # only the upper triangle is filled and read
        M[diagonal] += gamma
        try:
            factor = linalg.cho_factor(M, lower=False, overwrite_a=True, check_finite=False)
        except linalg.LinAlgError:
            continue
        sol = linalg.cho_solve(factor, b, check_finite=False)
        if side == "primal":
            fit, pred = Z.T @ sol, Zt.T @ sol
        else:
            fit, pred = y - gamma * sol, C.T @ sol  # (Khat + gamma I) alpha = y gives Khat alpha = y - gamma alpha
        train[i] = float(np.mean((y - fit) ** 2))
        test[i] = float(np.mean((y_test - pred) ** 2))
    return FeatureRidgeResult(gammas=g, train_mse=train, test_mse=test, side=side)
