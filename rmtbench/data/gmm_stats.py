"""Statistics of Gaussian-mixture data used by the theory (formula sheet §4.1).

Model: ``sqrt(p) x_i ~ N(mu_a, C_a)`` for ``x_i`` in class ``a``, i.e.
``x_i = mu_a/sqrt(p) + omega_i`` with ``omega_i ~ N(0, C_a/p)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .synthetic import gmm_parameters

__all__ = ["GMMStatistics", "gmm_statistics"]


@dataclass(frozen=True, eq=False)
class GMMStatistics:
    """The §4.1 statistics of a data matrix with class labels.

    Attributes
    ----------
    n_a : ndarray (K,) int64
        Class sizes.
    J : ndarray (n, K) float64
        Class indicators, ``J[i, a] = 1`` if sample i is in class a.
    tau : float
        ``sqrt(tr C°/p)``, ``C° = sum_a (n_a/n) C_a`` (a standard deviation).
    t : ndarray (K,)
        ``tr C_a° / sqrt(p)`` with ``C_a° = C_a - C°``.
    T : ndarray (K, K)
        ``tr(C_a C_b) / p``.
    psi : ndarray (n,)
        ``||omega_i||^2 - tr C_a / p``.
    eps_data : ndarray (n,)
        ``||x_i||^2 - tau^2`` (data-driven; compare ``J t/sqrt(p) + psi``).
    trC : ndarray (K,)
        ``tr C_a / p``.
    source : {"spec", "estimated"}
        Whether means and covariances came from the spec or from the data.
    """

    n_a: np.ndarray
    J: np.ndarray
    tau: float
    t: np.ndarray
    T: np.ndarray
    psi: np.ndarray
    eps_data: np.ndarray
    trC: np.ndarray
    source: Literal["spec", "estimated"]


def _pair_sums(omega: np.ndarray, labels: np.ndarray, K: int) -> np.ndarray:
    """``S[a, b] = sum_{i in a, j in b, i != j} (omega_i^T omega_j)^2``."""
    p, n = omega.shape
    groups = [omega[:, labels == a] for a in range(K)]
    S = np.empty((K, K))
    if p <= n:  # through the p x p scatter matrices
        scatter = [g @ g.T for g in groups]
        for a in range(K):
            for b in range(a, K):
                S[a, b] = S[b, a] = np.vdot(scatter[a], scatter[b])
    else:  # through the Gram blocks
        for a in range(K):
            for b in range(a, K):
                S[a, b] = S[b, a] = np.sum((groups[a].T @ groups[b]) ** 2)
    for a in range(K):  # remove i == j
        S[a, a] -= np.sum(np.einsum("ij,ij->j", groups[a], groups[a]) ** 2)
    return S


def gmm_statistics(
    X: np.ndarray,
    labels: np.ndarray,
    *,
    spec: Mapping[str, Any] | None = None,
) -> GMMStatistics:
    """The §4.1 statistics of GMM data ``X`` (p, n) with class indices ``labels``.

    Parameters
    ----------
    X : ndarray of shape (p, n)
        Data at the theory's scale (``sqrt(p) x_i ~ N(mu_a, C_a)``).
    labels : ndarray of shape (n,)
        Class indices ``0..K-1``.
    spec : mapping, optional
        A ``gmm`` spec (e.g. ``Dataset.meta["spec"]``). When given, ``mu_a`` and
        ``C_a`` are exact (`rmtbench.data.synthetic.gmm_parameters`) and so are
        ``tau``, ``t``, ``T``, ``trC`` and ``omega_i = x_i - mu_a/sqrt(p)``; only the
        class proportions ``n_a/n`` come from ``labels``.

    Returns
    -------
    GMMStatistics

    Notes
    -----
    Without a spec everything is estimated from ``X`` (``K = max(labels) + 1``,
    at least two samples per class):

    * ``omega_i = x_i - m_a``, ``m_a`` the class mean of the columns;
    * ``tr C_a/p = sum_{i in a} ||omega_i||^2 / (n_a - 1)`` (unbiased);
    * ``tau^2 = mean_i ||x_i||^2``: the data-driven value (formula sheet §9, P1/P13),
      which includes the ``O(1/p)`` mean part ``sum_a (n_a/n) ||mu_a||^2/p``; so the
      estimated ``eps_data`` has mean exactly 0;
    * ``t_a = sqrt(p) (tr C_a/p - sum_b (n_b/n) tr C_b/p)``;
    * ``T_ab = p * mean over pairs i in a, j in b, i != j, of (omega_i^T omega_j)^2``
      (``E (omega_i^T omega_j)^2 = tr(C_a C_b)/p^2``; bias ``O(p/n_a^2)`` from the
      estimated means).
    """
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    if X.ndim != 2 or labels.shape != (X.shape[1],):
        raise ValueError(f"X must be (p, n) and labels (n,), got {X.shape} and {labels.shape}")
    p, n = X.shape
    sq_norms = np.einsum("ij,ij->j", X, X)
    if spec is not None:
        M, C_diag = gmm_parameters(spec, p=p)
        K = M.shape[1]
    else:
        K = int(labels.max()) + 1
    if labels.min() < 0 or labels.max() >= K:
        raise ValueError(f"labels must lie in 0..{K - 1}")
    n_a = np.bincount(labels, minlength=K).astype(np.int64)
    J = np.zeros((n, K))
    J[np.arange(n), labels] = 1.0
    weights = n_a / n

    if spec is not None:
        omega = X - M[:, labels] / math.sqrt(p)
        trC = C_diag.mean(axis=1)
        tau2 = float(weights @ trC)
        T = C_diag @ C_diag.T / p
        source: Literal["spec", "estimated"] = "spec"
    else:
        if np.any(n_a < 2):
            raise ValueError(f"estimating GMM statistics needs >= 2 samples per class, got n_a={n_a.tolist()}")
        means = (X @ J) / n_a
        omega = X - means[:, labels]
        trC = (np.einsum("ij,ij->j", omega, omega) @ J) / (n_a - 1)
        tau2 = float(sq_norms.mean())
        pairs = np.outer(n_a, n_a) - np.diag(n_a)
        T = p * _pair_sums(omega, labels, K) / pairs
        source = "estimated"

    t = math.sqrt(p) * (trC - weights @ trC)
    psi = np.einsum("ij,ij->j", omega, omega) - trC[labels]
    return GMMStatistics(
        n_a=n_a,
        J=J,
        tau=math.sqrt(tau2),
        t=t,
        T=T,
        psi=psi,
        eps_data=sq_norms - tau2,
        trC=trC,
        source=source,
    )
