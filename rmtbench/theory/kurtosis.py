"""First-order weight-kurtosis correction of the expected random-features kernel (pitfall P8).

The closed forms of :mod:`rmtbench.theory.kernels` are expectations over Gaussian weights. For i.i.d.
weight entries of unit variance and excess kurtosis ``κ4 = E w⁴ − 3`` (sparse ternary of sparsity ε:
``1/(1−ε) − 3``; Rademacher: −2), the fourth-cumulant (Edgeworth) term of ``E_w[φ(wᵀx_i) φ(wᵀx_j)]`` is

    (κ4/24) Σ_k E[(x_ik ∂_u + x_jk ∂_v)⁴ φ(u) φ(v)]
        = (κ4/24) Σ_{m=0}^{4} C(4, m) E[φ^(m)(u) φ^(4−m)(v)] Σ_k x_ik^m x_jk^(4−m).

For weakly correlated pairs (``i ≠ j``) the expectations factor into ``c_m c_{4−m}`` with
``c_m = E φ^(m)(τξ) = E[φ(τξ) He_m(ξ)]/τ^m``. The ``m = 2`` term is the formula sheet's
``(κ4/4)(E φ'')² Σ_k x_ik² x_jk²`` (section 4.4); ``m = 0, 4`` are the terms along ``1_n``; ``m = 1, 3``
matter when the data have large coordinates in common (class means on a few coordinates). On the
diagonal the term is ``(κ4/24) Σ_k x_ik⁴ E[(φ²)''''(τξ)]``.

The expansion is in powers of the data's localisation ``Σ_k x_ik⁴ / ‖x_i‖⁴`` (about ``3/p`` for
delocalised data). Data with a few dominant coordinates (one-hot columns) make the "correction" as large
as the kernel itself; :func:`localisation` measures this and :func:`weight_kurtosis_kernel` is then not
a correction to trust (see ``docs/findings.md``).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rmtbench.activations import Activation, gaussian_moments, get_activation
from rmtbench.quadrature import gaussian_expectation

__all__ = ["localisation", "weight_kurtosis_diag", "weight_kurtosis_kernel"]

Array = NDArray[np.float64]
_BINOMIAL_4 = (1.0, 4.0, 6.0, 4.0, 1.0)


def localisation(X: ArrayLike) -> float:
    """``max_i Σ_k x_ik⁴ / ‖x_i‖⁴`` over the columns of ``X`` (``p x n``): the expansion's small parameter.

    About ``3/p`` for Gaussian-like columns, 1 for a column with a single non-zero entry.
    """
    X = np.asarray(X, dtype=float)
    sq = X * X
    norms = sq.sum(axis=0)
    return float(np.max(np.einsum("ij,ij->j", sq, sq) / np.maximum(norms, np.finfo(float).tiny) ** 2))


def weight_kurtosis_kernel(
    act: str | Mapping[str, Any] | Activation,
    A: ArrayLike,
    B: ArrayLike | None = None,
    *,
    tau: float,
    kappa4: float,
    odd_part: bool = True,
    diagonal: bool = True,
) -> Array:
    """The first-order kurtosis term ``E_W K − E_{Gaussian W} K`` between the columns of ``A`` and ``B``.

    Parameters
    ----------
    act
        Activation or spec.
    A, B
        Data, ``p x n_a`` and ``p x n_b``; ``B=None`` means ``A`` against itself, with the diagonal term.
    tau
        Scale of the moments ``c_m`` (the data's ``sqrt(mean ‖x_i‖²)``).
    kappa4
        Excess kurtosis ``E w⁴ − 3`` of the weight entries.
    odd_part
        Include the ``m = 1, 3`` part ``(κ4/6) c_1 c_3 Σ_k (x_ik x_jk³ + x_ik³ x_jk)``. It helps where samples
        share large coordinates (class means on a few coordinates: in ``tests/test_kurtosis.py`` it is
        all of tanh's correction). On zero-mean, delocalised data it is of the order of the correlation
        corrections the factorisation drops: an exact enumeration of Rademacher weights at p = 16
        (the data of ``tests/test_ck_gmm.py``) gave tanh's rms error 3.5e-3 without it, 6.1e-3 with it.
    diagonal
        With ``B=None``: the diagonal term on the diagonal (``False``: zeros there).

    Returns
    -------
    ndarray
        ``n_a x n_b``; zero when ``kappa4 = 0``.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((64, 5)) / 8.0
    >>> bool(np.all(weight_kurtosis_kernel("relu", X, tau=1.0, kappa4=0.0) == 0.0))
    True
    """
    act = get_activation(act)
    A = np.asarray(A, dtype=float)
    same = B is None
    B = A if same else np.asarray(B, dtype=float)
    if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[0]:
        raise ValueError(f"A and B must be p x n with the same p, got {A.shape} and {B.shape}")
    kappa4 = float(kappa4)
    if not np.isfinite(kappa4):
        raise ValueError(f"kappa4 must be finite (a weight law with a finite fourth moment), got {kappa4!r}")
    if kappa4 == 0.0:
        return np.zeros((A.shape[1], B.shape[1]))
    m = gaussian_moments(act, tau=tau)
    c = (m.mean, m.d1, m.d2, m.d3, m.d4)
    out = np.zeros((A.shape[1], B.shape[1]))
    for power in range(5):
        if power in (1, 3) and not odd_part:
            continue
        coefficient = _BINOMIAL_4[power] * c[power] * c[4 - power]
        if coefficient:
            out += coefficient * ((A**power).T @ (B ** (4 - power)))
    out *= kappa4 / 24.0
    if same:
        np.fill_diagonal(out, weight_kurtosis_diag(act, A, tau=tau, kappa4=kappa4) if diagonal else 0.0)
    return out


def weight_kurtosis_diag(act: str | Mapping[str, Any] | Activation, A: ArrayLike, *, tau: float, kappa4: float) -> Array:
    """The diagonal of :func:`weight_kurtosis_kernel` of ``A`` against itself, without the off-diagonal products.

    ``(κ4/24) Σ_k x_ik⁴ E[(φ²)''''(τξ)]``, with ``E[(φ²)''''(τξ)] = E[φ(τξ)² He_4(ξ)] / τ⁴``.

    Examples
    --------
    >>> A = np.eye(3)
    >>> bool(np.allclose(weight_kurtosis_diag("relu", A, tau=1.0, kappa4=7.0), 0.0, atol=1e-14))  # E (w.x)² = ‖x‖²
    True
    """
    act = get_activation(act)
    A = np.asarray(A, dtype=float)
    if float(kappa4) == 0.0:
        return np.zeros(A.shape[1])
    he4 = gaussian_expectation(lambda t: act.phi(t) ** 2 * ((t / tau) ** 4 - 6 * (t / tau) ** 2 + 3), scale=tau,
                               kinks=act.kinks) / tau**4
    return (float(kappa4) / 24.0) * he4 * np.einsum("ij,ij->j", A * A, A * A)
