"""Conjugate-kernel equivalents for Gaussian-mixture data (formula sheet section 4; LC18, AZC22).

For K-class GMM data (``sqrt(p) x_i ~ N(mu_a, C_a)``, formula sheet section 4.1) the expected
conjugate kernel ``K = E_w[phi(X^T w) phi(w^T X)]`` of one random layer is, to leading order, a
function of a few Gaussian moments of phi at the data scale ``tau = sqrt(tr C°/p)`` (a standard
deviation, pitfall P1):

centred form (the slides; holds for P K P when phi is not centred, pitfall P11)
    ``K̃ = α1 X^T X + α2 ε ε^T + α3 J T J^T / p + α0 I_n``
full non-centred form (formula sheet section 4.3, compare with ``K - m0² 11^T``)
    ``K̃_full = K̃ + m0² 11^T + (m0 m2/2)(ε 1^T + 1 ε^T) + (m0 m4/8)((ε∘ε) 1^T + 1 (ε∘ε)^T)``

with ``m_k = E phi^(k)(tau xi)`` and ``ε_i = ||x_i||² - tau²`` (``"data"``) or the model's
``ε̃ = J t / sqrt(p) + psi`` (``"model"``). Two corrections can be switched on to see how much of the
finite-size error they explain:

``slope`` (pitfall P13)
    ``α1 X^T X`` becomes ``D_g X^T X D_g`` with ``g_i = E phi'(||x_i|| xi)``: the neglected
    ``(1/2) m3 m1 (ε_i + ε_j) x_i^T x_j`` term, O(p^{-1/2}), large for odd phi.
``kurtosis`` (pitfall P8)
    For i.i.d. weights with excess kurtosis ``κ4 = E w⁴ - 3`` the fourth-cumulant (Edgeworth)
    term of ``E_w[phi(u) phi(v)]``: ``(κ4/4) m2² Σ_k x_ik² x_jk²`` plus the 1_n-direction term
    ``(κ4/24) m0 m4 (q_i + q_j)``, ``q_i = Σ_k x_ik⁴`` (off the diagonal; P K P removes the latter;
    :mod:`rmtbench.theory.kurtosis` has the whole first-order term).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rmtbench.activations import Activation, alpha_coefficients, gaussian_moments, get_activation
from rmtbench.theory.norms import spectral_norm

__all__ = [
    "CKCoefficients",
    "centred_relative_error",
    "ck_coefficients",
    "ck_equivalent",
    "double_centre",
    "full_relative_error",
    "kurtosis_term",
    "slope_term",
    "spectral_norm",
]

Array = NDArray[np.float64]
ActivationSpec = str | Mapping[str, Any] | Activation
Form = Literal["centred", "full"]
EpsSource = Literal["data", "model"]


@dataclass(frozen=True)
class CKCoefficients:
    """Gaussian moments of phi at scale tau that enter the GMM conjugate-kernel equivalent.

    Attributes
    ----------
    tau
        Standard deviation of the argument (formula sheet section 4.1, ``sqrt(tr C°/p)``).
    alpha0, alpha1, alpha2, alpha3
        ``Var phi(τξ) - τ² m1²``, ``m1²``, ``m2²/4``, ``m2²/2`` (formula sheet section 4.2).
    m0, m1, m2, m3, m4
        ``E phi^(k)(τξ)`` (weak derivatives, Stein forms).
    """

    tau: float
    alpha0: float
    alpha1: float
    alpha2: float
    alpha3: float
    m0: float
    m1: float
    m2: float
    m3: float
    m4: float

    @property
    def alphas(self) -> tuple[float, float, float, float]:
        """``(α0, α1, α2, α3)``."""
        return (self.alpha0, self.alpha1, self.alpha2, self.alpha3)


def ck_coefficients(act: ActivationSpec, *, tau: float) -> CKCoefficients:
    """The alpha coefficients and the moments ``m_k`` of ``act`` at the data scale ``tau``.

    Parameters
    ----------
    act
        Activation or spec accepted by :func:`rmtbench.activations.get_activation`.
    tau
        Standard deviation ``sqrt(tr C°/p)`` (for LC18's variance convention pass ``sqrt(τ_v)``).

    Returns
    -------
    CKCoefficients
        The alphas are those of :func:`rmtbench.activations.alpha_coefficients`.

    Examples
    --------
    >>> c = ck_coefficients("relu", tau=1.0)
    >>> print(f"{c.alpha0:.10f} {c.alpha1:.2f} {c.alpha2:.10f} {c.m0:.10f}")  # 1/4 - 1/(2π), 1/4, 1/(8π), 1/sqrt(2π)
    0.0908450569 0.25 0.0397887358 0.3989422804
    """
    m = gaussian_moments(act, tau=tau)
    a0, a1, a2, a3 = alpha_coefficients(act, tau=tau)
    return CKCoefficients(tau=m.tau, alpha0=a0, alpha1=a1, alpha2=a2, alpha3=a3,
                          m0=m.mean, m1=m.d1, m2=m.d2, m3=m.d3, m4=m.d4)


# ------------------------------------------------------------------------------------------------
# Norms (pitfall P19: never judge a non-centred kernel against its own spike).


def double_centre(K: ArrayLike) -> Array:
    """``P K P`` with ``P = I - 11^T/n`` (removes the 1_n spike of a non-centred kernel).

    Examples
    --------
    >>> double_centre(np.ones((3, 3))).round(12) + 0.0
    array([[0., 0., 0.],
           [0., 0., 0.],
           [0., 0., 0.]])
    """
    K = np.asarray(K, dtype=float)
    row = K.mean(axis=1, keepdims=True)
    col = K.mean(axis=0, keepdims=True)
    return K - row - col + K.mean()


def centred_relative_error(K: ArrayLike, K_approx: ArrayLike) -> float:
    """``||P (K - K_approx) P|| / ||P K P||`` in spectral norm (symmetric matrices).

    Examples
    --------
    >>> K = np.eye(4) + 5.0
    >>> centred_relative_error(K, np.eye(4))  # the constant is invisible after centring
    0.0
    """
    return spectral_norm(double_centre(np.asarray(K, float) - np.asarray(K_approx, float))) / spectral_norm(double_centre(K))


def full_relative_error(K: ArrayLike, K_approx: ArrayLike, *, m0: float) -> float:
    """``||K - K_approx|| / ||K - m0² 11^T||`` in spectral norm (formula sheet section 4.3, rows [d]).

    Examples
    --------
    >>> K = np.eye(3) + 4.0
    >>> full_relative_error(K, K, m0=2.0)
    0.0
    """
    K = np.asarray(K, dtype=float)
    return spectral_norm(K - np.asarray(K_approx, float)) / spectral_norm(K - m0 * m0)


# ------------------------------------------------------------------------------------------------
# Terms.


def _check_data(X: ArrayLike) -> Array:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be p x n (columns are samples), got shape {X.shape}")
    return X


def _norm_slopes(act: Activation, norms: Array) -> Array:
    """``g_i = E phi'(s_i xi)`` for the sample norms ``s_i``, by Stein: ``E[(sξ) phi(sξ)] / s²``."""
    from rmtbench.quadrature import gaussian_expectations

    phi = act.phi
    values = gaussian_expectations(lambda t: t * np.asarray(phi(t), dtype=float), norms, kinks=act.kinks)
    return values / norms**2


def slope_term(act: ActivationSpec, X: ArrayLike, *, tau: float) -> Array:
    """The norm-dependent slope correction ``D_g X^T X D_g - α1 X^T X`` (pitfall P13).

    ``g_i = E phi'(||x_i|| xi)`` replaces the common slope ``m1 = E phi'(tau xi)``; the difference
    is the finite-p term ``(1/2) m3 m1 (ε_i + ε_j) x_i^T x_j`` to first order, and it vanishes
    when phi' has a constant Gaussian mean (ReLU).

    Parameters
    ----------
    act
        Activation or spec.
    X
        Data, ``p x n``.
    tau
        The common scale of the uncorrected term.

    Returns
    -------
    ndarray
        ``n x n``.
    """
    act = get_activation(act)
    X = _check_data(X)
    norms = np.sqrt(np.einsum("ij,ij->j", X, X))
    if np.any(norms <= 0):
        raise ValueError("slope correction needs non-zero samples")
    g = _norm_slopes(act, norms)
    m1 = gaussian_moments(act, tau=tau).d1
    gram = X.T @ X
    return (np.outer(g, g) - m1 * m1) * gram


def kurtosis_term(act: ActivationSpec, X: ArrayLike, *, tau: float, kappa4: float) -> Array:
    """``E_W K - E_{Gaussian W} K`` to first order in the weights' excess kurtosis (pitfall P8).

    :func:`rmtbench.theory.kurtosis.weight_kurtosis_kernel` of ``X`` against itself, at leading order
    for delocalised data: the formula sheet's ``(κ4/4) m2² Σ_k x_ik² x_jk²`` (section 4.4) and the part
    along ``1_n``, ``(κ4/24) m0 m4 (q_i + q_j)`` with ``q_i = Σ_k x_ik⁴`` (removed by ``P . P``), for
    ``i != j``; zero on the diagonal, where the term is O(1/p) per entry. The odd ``m1 m3`` part is left
    out (see ``odd_part`` there).

    Parameters
    ----------
    act
        Activation or spec.
    X
        Data, ``p x n``.
    tau
        Scale of the moments ``m_k``.
    kappa4
        Excess kurtosis ``E w⁴ - 3`` of the weight entries (``1/(1-eps) - 3`` for sparse ternary,
        -2 for Rademacher, 0 for Gaussian).

    Returns
    -------
    ndarray
        ``n x n``; zero when ``kappa4 = 0``.
    """
    from rmtbench.theory.kurtosis import weight_kurtosis_kernel

    return weight_kurtosis_kernel(act, _check_data(X), tau=tau, kappa4=kappa4, odd_part=False, diagonal=False)


def ck_equivalent(
    act: ActivationSpec,
    X: ArrayLike,
    labels: ArrayLike,
    *,
    form: Form = "centred",
    spec: Mapping[str, Any] | None = None,
    tau: float | None = None,
    eps: EpsSource = "data",
    slope: bool = False,
    kappa4: float = 0.0,
) -> Array:
    """The GMM conjugate-kernel equivalent ``K̃`` (formula sheet section 4.3), n x n.

    Parameters
    ----------
    act
        Activation or spec.
    X
        Data, ``p x n``, at the theory's scale (``sqrt(p) x_i ~ N(mu_a, C_a)``).
    labels
        Class indices ``0..K-1`` (they give J and the class statistics t, T).
    form
        ``"centred"``: ``α1 X^T X + α2 ε ε^T + α3 J T J^T/p + α0 I`` (compare ``P K P``);
        ``"full"``: adds ``m0² 11^T`` and the 1_n-terms (compare ``K`` itself; errors relative to
        ``K - m0² 11^T``).
    spec
        The ``gmm`` data spec (``Dataset.meta["spec"]``): ``tau``, ``t``, ``T`` exact from the model.
        ``None`` estimates them from ``X`` (:func:`rmtbench.data.gmm_statistics`).
    tau
        Override the scale (default: the statistics' ``sqrt(tr C°/p)``).
    eps
        ``"data"``: ``ε_i = ||x_i||² - tau²``; ``"model"``: ``J t/sqrt(p) + psi`` (the slides' V A V^T).
        Equivalent to leading order in the centred form, where the data version is more accurate at
        finite n (pitfall P13; case A relu, n = 1024: 0.012 against 0.018). The full form needs the
        data version: ``J t/sqrt(p) + psi`` lacks the O(1/p) mean part ``||mu_a||²/p`` of
        ``||x_i||²``, which the 1_n-terms multiply by n (error about 0.2 instead of 0.004).
    slope
        Replace ``α1 X^T X`` by ``D_g X^T X D_g`` (:func:`slope_term`).
    kappa4
        Excess kurtosis of the weights; non-zero adds :func:`kurtosis_term` (the equivalent of
        ``E_W K`` for that law instead of the Gaussian-W kernel).

    Returns
    -------
    ndarray
        ``n x n``, symmetric.

    Examples
    --------
    >>> from rmtbench.data import make_dataset
    >>> ds = make_dataset({"kind": "gmm", "p": 64}, n=128, n_test=0, seed=np.random.SeedSequence(0))
    >>> K = ck_equivalent("relu", ds.X, ds.labels, spec=ds.meta["spec"], form="full")
    >>> K.shape, bool(np.allclose(K, K.T))
    ((128, 128), True)
    """
    from rmtbench.data import gmm_statistics

    if form not in ("centred", "full"):
        raise ValueError(f"form must be 'centred' or 'full', got {form!r}")
    if eps not in ("data", "model"):
        raise ValueError(f"eps must be 'data' or 'model', got {eps!r}")
    X = _check_data(X)
    p, n = X.shape
    stats = gmm_statistics(X, np.asarray(labels), spec=spec)
    tau = stats.tau if tau is None else float(tau)
    c = ck_coefficients(act, tau=tau)
    sq_norms = np.einsum("ij,ij->j", X, X)
    if eps == "data":
        e = sq_norms - tau * tau
    else:
        e = stats.J @ stats.t / np.sqrt(p) + stats.psi
    out = c.alpha1 * (X.T @ X)
    if slope:
        out += slope_term(act, X, tau=tau)
    out += c.alpha2 * np.outer(e, e)
    out += (c.alpha3 / p) * (stats.J @ stats.T @ stats.J.T)
    out[np.diag_indices(n)] += c.alpha0
    if form == "full":
        out += c.m0 * c.m0
        out += 0.5 * c.m0 * c.m2 * np.add.outer(e, e)
        e2 = e * e
        out += 0.125 * c.m0 * c.m4 * np.add.outer(e2, e2)
    if kappa4:
        out += kurtosis_term(act, X, tau=tau, kappa4=kappa4)
    return 0.5 * (out + out.T)
