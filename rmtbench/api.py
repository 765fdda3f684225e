"""The library surface for notebooks and scripts: results, theory on plain numpy arrays.

Data arguments follow scikit-learn's layout, **rows are samples** (``X`` of shape
``(n_samples, n_features)``), and kernels are ``K[i, j] = k(x_i, x'_j)``; the internal modules use
columns as samples. The weights have unit-variance entries (no ``1/sqrt(p)``), so inputs should have
norm about 1. Everything here is a thin wrapper: the formulas live in :mod:`rmtbench.theory` and
:mod:`rmtbench.activations`, the estimators in :mod:`rmtbench.estimators`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "RidgeTheory",
    "alpha_coefficients",
    "deep_conjugate_kernel_variances",
    "deep_conjugate_kernels",
    "deep_neural_tangent_kernel_variances",
    "deep_neural_tangent_kernels",
    "expected_kernel",
    "expected_kernel_diag",
    "gmm_linear_equivalent",
    "hermite_coefficients",
    "open_results",
    "results_provenance",
    "ridge_mse_theory",
    "sphere_linear_equivalent",
    "weight_kurtosis_kernel",
]

ActivationSpec = Any  # str, mapping or rmtbench.activations.Activation


# -- results ---------------------------------------------------------------------------------------
def _is_store(path: Path) -> bool:
    return path.is_dir() and any((path / marker).exists() for marker in (".zgroup", ".zattrs", "zarr.json"))


def open_results(path: str | os.PathLike[str], experiment: str | None = None) -> Any:
    """The gathered dataset of an experiment, as an ``xarray.Dataset`` (loaded into memory).

    Parameters
    ----------
    path
        A gathered store (``results/<sweep>/<experiment>.zarr``), or a sweep's results folder
        (``results/<sweep>``) together with ``experiment`` (optional when the folder holds one store).
    experiment
        Name of the experiment block when ``path`` is a results folder.

    Returns
    -------
    xarray.Dataset
        One dimension per grid axis, plus ``seed``, ``gamma``, ... Attributes hold provenance as JSON
        text; :func:`results_provenance` decodes them.

    Raises
    ------
    FileNotFoundError
        When no (unambiguous) gathered store is found; the message lists what is there.
    """
    from rmtbench.store import open_dataset

    path = Path(path)
    if _is_store(path) and experiment is None:
        return open_dataset(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no results at {path}: give a gathered store (<results>/<sweep>/<experiment>.zarr) or a sweep folder")
    stores = sorted(p for p in path.glob("*.zarr") if _is_store(p))
    if experiment is not None:
        store = path / f"{experiment}.zarr"
        if not _is_store(store):
            names = ", ".join(p.stem for p in stores) or "none"
            raise FileNotFoundError(f"no gathered store for experiment {experiment!r} in {path} (gathered: {names})")
        return open_dataset(store)
    if len(stores) != 1:
        names = ", ".join(p.stem for p in stores) or "none"
        raise FileNotFoundError(f"{path} holds {len(stores)} gathered stores ({names}); pass experiment=")
    return open_dataset(stores[0])


def results_provenance(dataset: Any) -> dict[str, Any]:
    """The dataset's attributes with JSON text decoded (config, package versions, missing cells, ...).

    Examples
    --------
    >>> import xarray as xr
    >>> results_provenance(xr.Dataset(attrs={"config": '{"seed": 1}', "git_revision": "abc"}))
    {'config': {'seed': 1}, 'git_revision': 'abc'}
    """
    decoded: dict[str, Any] = {}
    for key, value in dataset.attrs.items():
        if isinstance(value, str):
            try:
                decoded[key] = json.loads(value)
                continue
            except json.JSONDecodeError:
                pass
        decoded[key] = value
    return decoded


# -- kernels and coefficients ----------------------------------------------------------------------
def _samples(name: str, X: ArrayLike) -> NDArray[np.float64]:
    A = np.asarray(X, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {A.shape}")
    return A


def _rms_norm(A: NDArray[np.float64]) -> float:
    """sqrt of the mean squared norm of the samples (rows of ``A``): the data scale τ_0 (formula sheet P1)."""
    return float(np.sqrt(np.mean(np.sum(A * A, axis=1))))


def _deep_inputs(X: ArrayLike, activations: Sequence[ActivationSpec],
                 tau0: float | None) -> tuple[NDArray[np.float64], list[ActivationSpec], float]:
    """The deep-kernel functions' inputs: samples as columns, the activation list, τ_0 (default: the data scale)."""
    rows = _samples("X", X)
    return rows.T, list(activations), _rms_norm(rows) if tau0 is None else float(tau0)


def _ntk_inputs(X: ArrayLike, activations: Sequence[ActivationSpec],
                tau0: float | None) -> tuple[NDArray[np.float64], list[ActivationSpec], float]:
    """:func:`_deep_inputs`, after checking that every activation has the pointwise derivative an NTK needs."""
    from rmtbench.activations import get_activation

    for spec in activations:
        act = get_activation(spec)
        if act.derivative is None:
            raise ValueError(f"{act.name} has no pointwise derivative (a jump): its NTK is not defined")
    return _deep_inputs(X, activations, tau0)


def expected_kernel(activation: ActivationSpec, X: ArrayLike, Y: ArrayLike | None = None, *, nodes: int = 48) -> NDArray[np.float64]:
    """K[i, j] = E_w[phi(w.x_i) phi(w.y_j)] for w ~ N(0, I_p): the limit of ``Phi^T Phi' / d``.

    Parameters
    ----------
    activation
        Name or spec (see :func:`rmtbench.activations.get_activation`).
    X, Y
        Samples as rows, shapes (n, p) and (m, p); ``Y = X`` when omitted (K exactly symmetric).
    nodes
        Gauss-Hermite nodes per dimension where no closed form or exact path exists.

    Returns
    -------
    ndarray of shape (n, m)

    Examples
    --------
    ReLU on unit vectors at right angles: E relu(u)^2 = 1/2 and E relu(u) relu(v) = 1/(2 pi):

    >>> K = expected_kernel("relu", np.eye(2))
    >>> print(np.round(K * 2 * np.pi, 10))
    [[3.14159265 1.        ]
     [1.         3.14159265]]
    """
    from rmtbench.theory.kernels import expected_kernel as kernel_columns

    A = _samples("X", X)
    B = None if Y is None else _samples("Y", Y)
    return kernel_columns(activation, A.T, None if B is None else B.T, nodes=nodes)


def expected_kernel_diag(activation: ActivationSpec, X: ArrayLike) -> NDArray[np.float64]:
    """diag K = E phi(||x_i|| xi)^2 per sample (row) of X.

    Examples
    --------
    >>> print(expected_kernel_diag("relu", [[1.0, 0.0], [2.0, 0.0]]))
    [0.5 2. ]
    """
    from rmtbench.theory.kernels import expected_kernel_diag as diag_columns

    return diag_columns(activation, _samples("X", X).T)


def weight_kurtosis_kernel(activation: ActivationSpec, X: ArrayLike, Y: ArrayLike | None = None, *, weights: Any,
                           tau: float | None = None) -> NDArray[np.float64]:
    """How much the expected kernel of a non-Gaussian weight law differs from :func:`expected_kernel`.

    The first-order (Edgeworth) term in the law's excess kurtosis ``E w^4 - 3`` (pitfall P8;
    :func:`rmtbench.theory.kurtosis.weight_kurtosis_kernel`). It is a correction only for delocalised
    data (``max_i sum_k x_ik^4 / ||x_i||^4`` small; about 3/p for Gaussian-like rows); for one-hot
    columns it is as large as the kernel.

    Parameters
    ----------
    activation
        Name or spec.
    X, Y
        Samples as rows, shapes (n, p) and (m, p); ``Y = X`` when omitted (with the diagonal term).
    weights
        The weight law: ``"rademacher"``, ``"ternary-eps0.9"``, ... (see :func:`rmtbench.weights.weight_law`).
    tau
        Scale of the activation's Gaussian moments; default ``sqrt(mean ||x_i||^2)`` over the rows of X.

    Returns
    -------
    ndarray of shape (n, m)

    Examples
    --------
    Gaussian weights have no such term; ReLU's diagonal has none for any law (E (w.x)^2 = ||x||^2):

    >>> X = np.random.default_rng(0).standard_normal((5, 400)) / 20
    >>> bool(np.all(weight_kurtosis_kernel("relu", X, weights="gaussian") == 0))
    True
    >>> term = weight_kurtosis_kernel("relu", X, weights="ternary-eps0.9")
    >>> bool(np.allclose(np.diag(term), 0.0, atol=1e-15) and np.any(term != 0))
    True
    """
    from rmtbench.theory.kurtosis import weight_kurtosis_kernel as kurtosis_columns
    from rmtbench.weights import weight_law

    A = _samples("X", X)
    B = None if Y is None else _samples("Y", Y)
    scale = _rms_norm(A) if tau is None else float(tau)
    kappa4 = weight_law(weights).fourth_moment - 3.0
    return kurtosis_columns(activation, A.T, None if B is None else B.T, tau=scale, kappa4=kappa4)


def hermite_coefficients(activation: ActivationSpec, *, tau: float = 1.0, order: int = 3) -> NDArray[np.float64]:
    """Normalised Hermite coefficients a_0..a_order of t -> phi(tau t) (formula sheet sec. 1).

    Examples
    --------
    >>> print(np.round(hermite_coefficients("relu"), 6) + 0.0)
    [0.398942 0.5      0.282095 0.      ]
    """
    from rmtbench.activations import hermite_coefficients as coefficients

    return coefficients(activation, tau=tau, order=order)


def alpha_coefficients(activation: ActivationSpec, *, tau: float = 1.0) -> tuple[float, float, float, float]:
    """(alpha0, alpha1, alpha2, alpha3) of the conjugate-kernel equivalent (formula sheet sec. 4.2).

    Examples
    --------
    >>> print(" ".join(f"{a:.6f}" for a in alpha_coefficients("relu")))
    0.090845 0.250000 0.039789 0.079577
    """
    from rmtbench.activations import alpha_coefficients as coefficients

    return coefficients(activation, tau=tau)


def deep_conjugate_kernels(activations: Sequence[ActivationSpec], X: ArrayLike, *, widths: Sequence[float] | None = None,
                           tau0: float | None = None, nodes: int = 48, weights: Any = "gaussian") -> NDArray[np.float64]:
    """Expected conjugate kernel Σ_lᵀΣ_l of every layer of a deep random MLP, at infinite or finite width.

    The network is rmtbench's (:mod:`rmtbench.deepnet`): Σ_l = (φ_l(W_l Σ_{l−1}) − c_l)/sqrt(d_l) with
    unit-variance weights and centring constants c_l = E φ_l(τ_{l−1}ξ) taken along the nominal scales
    from τ_0.

    Parameters
    ----------
    activations
        φ_1, ..., φ_L.
    X
        Samples as rows, shape (n, p).
    widths
        ``None``: the infinite-width kernels (Gaussian recursion). Widths d_1, ..., d_L (at least
        L − 1): plus the first-order finite-width mean, entry by entry
        (:mod:`rmtbench.theory.finite_width`); entries of nearly collinear samples are NaN there.
    tau0
        τ_0 of the centring constants; by default sqrt of the mean squared norm of the samples.
    nodes
        Gauss-Hermite nodes per dimension where no closed form or exact path exists.
    weights
        Law of the weight entries (:func:`rmtbench.weights.weight_law`: ``"gaussian"``, ``"rademacher"``,
        ``"ternary-eps0.9"``, ...), or one per layer. A law of excess kurtosis κ adds its first-order
        term (:mod:`rmtbench.theory.finite_width`): at the first layer through the data's localisation,
        at any width (also ``widths=None``, propagated through the later layers), and κ/d_{l−1} at layer l.

    Returns
    -------
    ndarray of shape (L, n, n)

    Examples
    --------
    A linear network keeps the Gram of orthonormal samples at every width (E WᵀW/d = I):

    >>> K = deep_conjugate_kernels(["linear", "linear"], np.eye(3), widths=[8, 8])
    >>> bool(np.allclose(K, np.eye(3)))
    True
    """
    from rmtbench.theory.deep import exact_ck
    from rmtbench.theory.finite_width import finite_width_shifts
    from rmtbench.weights import layer_kurtosis

    A, acts, tau0 = _deep_inputs(X, activations, tau0)
    kurtosis = layer_kurtosis(weights, len(acts))
    kernels = exact_ck(A, acts, tau0=tau0, nodes=nodes)
    if widths is not None or any(kurtosis):  # infinite widths: only the first layer's kurtosis term is left
        shifts = finite_width_shifts(A, acts, [math.inf] * len(acts) if widths is None else widths, tau0=tau0,
                                     nodes=nodes, kernels=kernels, kurtosis=kurtosis)
        kernels = [K + S for K, S in zip(kernels, shifts)]
    return np.stack(kernels)


def deep_conjugate_kernel_variances(activations: Sequence[ActivationSpec], X: ArrayLike, *, widths: Sequence[float],
                                    tau0: float | None = None, nodes: int = 48, weights: Any = "gaussian"
                                    ) -> NDArray[np.float64]:
    """Variance over the weights of every entry of every layer's conjugate kernel, to first order in 1/d.

    The network and the parameters are those of :func:`deep_conjugate_kernels`, with all L widths. For
    Gaussian weights the first layer's variance is exact; deeper ones have a relative error c/d, with c
    depending on the network and the data (measured for three relu layers on two Gaussian mixtures: c from
    2.6 to 3.8 at layer 2 and 6 to 10 at layer 3; docs/findings.md). Summed over the entries it is
    E‖K_l − E K_l‖²_F, one draw's distance from the mean. Entries of nearly collinear samples are NaN.
    ``weights`` (as in :func:`deep_conjugate_kernels`): the first layer's law of excess kurtosis κ_1 moves
    every layer's variance by a relative O(κ_1 Σ_k x_ik⁴/‖x_i‖⁴), which does not fall with d; its first-order
    term is added (:func:`rmtbench.theory.finite_width.variance_kurtosis_responses`). The later layers' laws
    change the variance at O(κ/d²) only.

    Returns
    -------
    ndarray of shape (L, n, n)
        Var K_l,ij; the diagonals hold Var K_l,ii.

    Examples
    --------
    One linear layer on orthonormal samples: K = XᵀWᵀWX/d is Wishart, Var K_ij = (1 + δ_ij)/d.

    >>> V = deep_conjugate_kernel_variances(["linear"], np.eye(3), widths=[8])
    >>> bool(np.allclose(V[0], (1 + np.eye(3)) / 8))
    True
    """
    from rmtbench.theory.finite_width import finite_width_moments
    from rmtbench.weights import layer_kurtosis

    A, acts, tau0 = _deep_inputs(X, activations, tau0)
    kurtosis = layer_kurtosis(weights, len(acts))
    return np.stack(finite_width_moments(A, acts, widths, tau0=tau0, nodes=nodes, kurtosis=kurtosis).variances)


def deep_neural_tangent_kernels(activations: Sequence[ActivationSpec], X: ArrayLike, *, widths: Sequence[float] | None = None,
                                tau0: float | None = None, nodes: int = 48, weights: Any = "gaussian") -> NDArray[np.float64]:
    """Expected NTK of the network truncated after each layer of a deep random MLP, at infinite or finite width.

    The network of :func:`deep_conjugate_kernels` with a Gaussian read-out v of the last hidden layer; the NTK
    sums over all weights, the read-out included (:mod:`rmtbench.deepnet`).

    Parameters
    ----------
    activations
        φ_1, ..., φ_L; each needs a pointwise derivative (no jump).
    X
        Samples as rows, shape (n, p).
    widths
        ``None``: the infinite-width NTKs (seed eq. 22). Widths d_1, ..., d_L (at least L − 1): plus the
        first-order finite-width mean, entry by entry (:mod:`rmtbench.theory.finite_width_ntk`), which
        keeps the correlation of each W_l with the backward pass that the infinite-width limit drops;
        entries of nearly collinear samples are NaN there.
    tau0, nodes
        As in :func:`deep_conjugate_kernels`.
    weights
        Law of the weight entries, or one per layer, as in :func:`deep_conjugate_kernels`: a law of excess
        kurtosis κ adds its first-order terms (:func:`rmtbench.theory.finite_width_ntk.ntk_kurtosis_responses`;
        the first layer's also at infinite width).

    Returns
    -------
    ndarray of shape (L, n, n)
        Entry l − 1: E NTK of the network whose read-out sits on layer l.

    Examples
    --------
    A linear network on orthonormal samples: the NTK is (l + 1) I at every width (each layer adds XᵀX).

    >>> K = deep_neural_tangent_kernels(["linear", "linear"], np.eye(3), widths=[8, 8])
    >>> bool(np.allclose(K[1], 3 * np.eye(3)))
    True
    """
    from rmtbench.theory.deep import exact_kernels
    from rmtbench.theory.finite_width_ntk import finite_width_ntk_shifts
    from rmtbench.weights import layer_kurtosis

    A, acts, tau0 = _ntk_inputs(X, activations, tau0)
    kurtosis = layer_kurtosis(weights, len(acts))
    kernels = exact_kernels(A, acts, tau0=tau0, ntk=True, nodes=nodes)
    assert kernels.ntk is not None
    ntks = list(kernels.ntk)
    if widths is not None or any(kurtosis):  # infinite widths: only the first layer's kurtosis term is left
        shifts = finite_width_ntk_shifts(A, acts, [math.inf] * len(acts) if widths is None else widths, tau0=tau0,
                                         nodes=nodes, kernels=kernels, kurtosis=kurtosis)
        ntks = [K + S for K, S in zip(ntks, shifts)]
    return np.stack(ntks)


def deep_neural_tangent_kernel_variances(activations: Sequence[ActivationSpec], X: ArrayLike, *, widths: Sequence[float],
                                         tau0: float | None = None, nodes: int = 48, weights: Any = "gaussian"
                                         ) -> NDArray[np.float64]:
    """Variance over the weights and the read-out of every entry of the NTK of :func:`deep_neural_tangent_kernels`, to
    first order in 1/d.

    One network's NTK has one drawn read-out v, so its variance is that of the NTK averaged over v (through the
    weights) plus the read-out's own, of the same order (:mod:`rmtbench.theory.finite_width_ntk`). Exact at the
    first layer for Gaussian weights; after it the relative error is c/d (c about 3.5 for two relu layers, 5-13 for
    three, 11-52 for relu-erf-abs on Gaussian mixtures; docs/findings.md). Entries of nearly collinear samples
    are NaN. The parameters are those of :func:`deep_neural_tangent_kernels`, with all L widths. ``weights``: as for
    :func:`deep_conjugate_kernel_variances`, the first layer's law adds its first-order term
    (:func:`rmtbench.theory.finite_width_ntk.ntk_variance_kurtosis_responses`); the later layers' laws change the
    variance at O(κ/d²) only.

    Returns
    -------
    ndarray of shape (L, n, n)
        Entry l − 1: Var NTK_ij of the network whose read-out sits on layer l; the diagonals hold Var NTK_ii.

    Examples
    --------
    One linear layer on orthonormal samples: NTK = K_1 + XᵀX Σ_m v_m²/d, Var NTK_ij = (1 + δ_ij)/d + 2δ_ij/d.

    >>> V = deep_neural_tangent_kernel_variances(["linear"], np.eye(3), widths=[8])
    >>> bool(np.allclose(V[0], (1 + 3 * np.eye(3)) / 8))
    True
    """
    from rmtbench.theory.finite_width_ntk import finite_width_ntk_variances
    from rmtbench.weights import layer_kurtosis

    A, acts, tau0 = _ntk_inputs(X, activations, tau0)
    kurtosis = layer_kurtosis(weights, len(acts))
    return np.stack(finite_width_ntk_variances(A, acts, widths, tau0=tau0, nodes=nodes, kurtosis=kurtosis))


# -- linear equivalents of the kernel --------------------------------------------------------------
def sphere_linear_equivalent(activation: ActivationSpec, X: ArrayLike, *, tau: float = 1.0) -> NDArray[np.float64]:
    """K~ = a0^2 11^T + a1^2 XX^T/tau^2 + (a2^2/p) 11^T + (nu - a0^2 - a1^2) I for samples on a sphere.

    The linear equivalent of the expected kernel for data uniform on the sphere of radius ``tau``
    (seed eq. 10; formula sheet sec. 3), ``||K - K~|| = O(n^{-1/2})``; see
    :class:`rmtbench.theory.sphere.SphereLinearization` for its predicted spectrum.

    Parameters
    ----------
    activation
        Name or spec.
    X
        Samples as rows, shape (n, p), each of norm ``tau``.
    tau
        Radius of the sphere.

    Examples
    --------
    >>> print(np.round(sphere_linear_equivalent("relu", np.eye(3)), 4))
    [[0.5265 0.1857 0.1857]
     [0.1857 0.5265 0.1857]
     [0.1857 0.1857 0.5265]]
    """
    from rmtbench.theory.sphere import SphereLinearization

    A = _samples("X", X)
    n, p = A.shape
    return SphereLinearization.for_activation(activation, n=n, p=p, tau=tau).linear_equivalent(A.T)


def gmm_linear_equivalent(activation: ActivationSpec, X: ArrayLike, labels: ArrayLike, *, form: Literal["centred", "full"] = "centred",
                          spec: Mapping[str, Any] | None = None, **options: Any) -> NDArray[np.float64]:
    """The conjugate-kernel equivalent K~ for Gaussian-mixture data (formula sheet sec. 4.3; LC18).

    ``form="centred"`` gives ``alpha1 XX^T + alpha2 eps eps^T + alpha3 J T J^T/p + alpha0 I`` (compare
    with the double-centred kernel), ``"full"`` adds the non-centred terms (compare with K itself).
    Further keywords (``tau``, ``eps``, ``slope``, ``kappa4``) are those of
    :func:`rmtbench.theory.ck_gmm.ck_equivalent`.

    Parameters
    ----------
    activation
        Name or spec.
    X
        Samples as rows, shape (n, p), at the theory's scale (``sqrt(p) x_i ~ N(mu_a, C_a)``).
    labels
        Class index of each sample, shape (n,).
    spec
        The ``gmm`` data spec for exact class statistics; None estimates them from X.

    Examples
    --------
    >>> from rmtbench.data import make_dataset
    >>> ds = make_dataset({"kind": "gmm", "p": 32}, n=64, n_test=0, seed=np.random.SeedSequence(0))
    >>> K = gmm_linear_equivalent("relu", ds.X.T, ds.labels, spec=ds.meta["spec"])
    >>> K.shape
    (64, 64)
    """
    from rmtbench.theory.ck_gmm import ck_equivalent

    return ck_equivalent(activation, _samples("X", X).T, labels, form=form, spec=spec, **options)


# -- ridge regression ------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class RidgeTheory:
    """Deterministic-equivalent MSEs of random-features ridge regression (LLC18).

    Attributes
    ----------
    d
        Widths, shape (w,) (a scalar ``d`` gives w = 1 and squeezed results).
    gammas
        Ridges, shape (g,).
    train_mse, test_mse
        Shape (w, g), or (g,) for a scalar ``d``; ``test_mse`` is None without a test set.
    delta
        delta(-gamma), same shape.
    """

    d: NDArray[np.float64]
    gammas: NDArray[np.float64]
    train_mse: NDArray[np.float64]
    test_mse: NDArray[np.float64] | None
    delta: NDArray[np.float64]


def ridge_mse_theory(
    K: ArrayLike,
    y: ArrayLike,
    *,
    d: float | Sequence[float],
    gammas: float | Sequence[float],
    K_cross: ArrayLike | None = None,
    K_test_diag: ArrayLike | None = None,
    y_test: ArrayLike | None = None,
) -> RidgeTheory:
    """Deterministic-equivalent training (and test) MSE of ridge regression on d random features.

    The LLC18 formulas of :func:`rmtbench.theory.equivalent.ridge_mse_from_spectrum` from one
    eigendecomposition of K for every width and ridge. The loss is
    ``(1/2n)||y - Phi^T beta||^2 + (gamma/2)||beta||^2`` (the convention of
    :class:`rmtbench.estimators.RandomFeaturesRidge`).

    Parameters
    ----------
    K
        Expected kernel of the training samples, (n, n), e.g. :func:`expected_kernel`.
    y
        Training targets (n,).
    d
        Number of random features, scalar or 1-D.
    gammas
        Ridges gamma > 0, scalar or 1-D.
    K_cross, K_test_diag, y_test
        For the test error: K between training and test samples (n, n_test), the diagonal of the
        test kernel (n_test,) and the test targets (n_test,). All or none.

    Returns
    -------
    RidgeTheory

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 20)) / np.sqrt(20)
    >>> y = np.sign(X[:, 0])
    >>> K = expected_kernel("erf", X)
    >>> theory = ridge_mse_theory(K, y, d=[20, 80], gammas=[0.1, 1.0])
    >>> theory.train_mse.shape
    (2, 2)
    >>> bool(np.all(np.diff(theory.train_mse, axis=1) > 0))  # more ridge, more training error
    True
    """
    from rmtbench.theory.equivalent import KernelSpectrum, ridge_mse_over_widths

    parts = (K_cross, K_test_diag, y_test)
    if any(p is None for p in parts) and not all(p is None for p in parts):
        raise ValueError("give all of K_cross, K_test_diag and y_test, or none of them")
    spectrum = KernelSpectrum.from_kernel(K, y, K_cross, K_test_diag, y_test)
    widths = np.atleast_1d(np.asarray(d, dtype=np.float64))
    if widths.ndim != 1:
        raise ValueError(f"d must be a scalar or 1-D, got shape {widths.shape}")
    g = np.atleast_1d(np.asarray(gammas, dtype=np.float64))
    if g.ndim != 1:
        raise ValueError(f"gammas must be a scalar or 1-D, got shape {g.shape}")
    delta, train, test = ridge_mse_over_widths(spectrum, widths=widths, gammas=g)
    if np.ndim(d) == 0:
        train, delta = train[0], delta[0]
        test = None if test is None else test[0]
    return RidgeTheory(d=widths, gammas=g, train_mse=train, test_mse=test, delta=delta)
