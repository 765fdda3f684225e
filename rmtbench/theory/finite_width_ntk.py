"""First-order finite-width mean of a deep random network's NTK, entry by entry.

The network and notation of :mod:`rmtbench.theory.finite_width` (Gaussian weights, no 1/√fan-in: the
scale sits in Σ_ℓ = φ̄(W_ℓΣ_{ℓ−1})/√d_ℓ). Write T_ℓ[m, m', i, j] = Σ_θ ∂Σ_ℓ,mi/∂θ ∂Σ_ℓ,m'j/∂θ over the
weights of layers 1..ℓ. With a read-out v of unit variance, E_v NTK = K_L + τ_L with τ_ℓ = Σ_m T_ℓ[m, m],
and the chain rule gives, exactly, with w_m the m-th row of W_ℓ and φ'_mi = φ'(w_mᵀΣ_{ℓ−1,i})::

    τ_ℓ,ij = (1/d_ℓ) Σ_m φ'_mi φ'_mj (K_{ℓ−1,ij} + w_mᵀ T_{ℓ−1}[·, ·, i, j] w_m).

Gaussian integration by parts twice over w_m (Stein) turns the mean over layer ℓ's weights into::

    E[τ_ℓ,ij | layer ℓ−1] = F'(K_{ℓ−1})_ij Θ_{ℓ−1,ij} + Σ_{a,b∈{i,j}} P_{ℓ−1,ab} E[∂_a∂_b φ'(u_i)φ'(u_j)],

with F' the derivative kernel E[φ'(u_i)φ'(u_j)], Θ_ℓ = K_ℓ + τ_ℓ (so the infinite-width limit is the
recursion Θ_ℓ = K_ℓ + Θ_{ℓ−1} ∘ K'_ℓ of seed eq. 22), and P_{ℓ,ab} = Σ_{k,k'} Σ_ℓ,ka Σ_ℓ,k'b T_ℓ[k, k', i, j]:
how much of the lower layers' gradient lies along the features themselves. It is the term that the
"gradient independence" of the infinite-width limit drops: W_ℓ enters both h_ℓ and the backward pass.
P is of order 1/d and, by the same two steps, follows a closed 2 × 2 recursion per pair::

    P_ℓ = Q_ℓ Θ_{ℓ−1,ij} / d_ℓ + G^(i) P_{ℓ−1} G^(j)ᵀ,      P_0 = 0,

with Q_ℓ,ab = E[φ̄_aφ̄_bφ'_iφ'_j] (the diagonal m = m' of the double sum) and G^(i)_ac = E[∂_c(φ̄(u_a)φ'(u_i))]
(the products over m ≠ m'). By the heat equation every expectation of a derivative here is a derivative
of a Gaussian map: E[φ''(u_i)φ̄(u_j)] = 2∂F/∂a_i, E[φ'''(u_i)φ'(u_j)] = 2∂F'/∂a_i, E[φ''(u_i)φ''(u_j)] = ∂F'/∂c,
E[(φ̄φ')'(u_i)] = h'(a_i) with h the CK map's diagonal.

Expanding F'(K_{ℓ−1}) around K∞_{ℓ−1} to second order then gives the shift σ_ℓ = E τ_ℓ − τ∞_ℓ::

    σ_ℓ = F'∞ (S_{ℓ−1} + σ_{ℓ−1}) + Θ∞_{ℓ−1} (DF'[S_{ℓ−1}] + ½ D²F'[C_{ℓ−1}]) + DF' · X_{ℓ−1} + Σ_ab P_{ℓ−1,ab} H_ab,

where S, C are the CK's mean shift and pair covariance (:func:`rmtbench.theory.finite_width.layer_states`),
and X_ℓ = Cov((K_ii, K_jj, K_ij)_ℓ, Θ_ℓ,ij) is carried per pair by the law of total covariance: the
propagated part through DF and the linearised E[τ_ℓ | ·], plus the layer's own Θ∞_{ℓ−1} Cov(φ̄_aφ̄_b, φ'_iφ'_j)/d_ℓ.
E NTK_ℓ − NTK∞_ℓ = S_ℓ + σ_ℓ. At the first layer it is 0 (τ_1 = K'_1 ∘ XᵀX: its mean is exact); the
correction starts at layer 2, at order 1/d_1. These are the NTK analogues of the "D" and "A" tensors of
Roberts, Yaida & Hanin (2022, ch. 8–9), written here for a fixed data set.

Nearly collinear pairs are NaN and duplicate samples copy the diagonal, as for the CK. The derivative
kernel must exist (φ' with no Dirac mass, i.e. φ continuous); Θ is the NTK of all weights, the
read-out included.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rmtbench.activations import Activation
from rmtbench.theory.deep import DeepKernels
from rmtbench.theory.finite_width import (
    KernelState, LayerSensitivities, _copy_diagonal, duplicate_pairs, layer_states, map_derivatives,
    network_sensitivities,
)

__all__ = ["DerivativeSensitivities", "derivative_sensitivities", "finite_width_ntk_shifts", "ntk_shifts"]

Array = NDArray[np.float64]


@dataclass(frozen=True, eq=False)  # arrays: no elementwise ==
class DerivativeSensitivities:
    """The derivative kernel F' = E[φ'(u_i)φ'(u_j)] of one layer and its derivatives, at K∞ of the layer below,
    named as in :class:`rmtbench.theory.finite_width.LayerSensitivities` (``f0`` the value; diagonal
    E φ'(√a ξ)² in ``d0`` with derivatives ``h1``, ``h2``), and the mixed moments of the NTK's fresh terms:
    ``q_square`` = E[φ̄(u_i)²φ'(u_i)φ'(u_j)], ``q_cross`` = E[(φ̄φ')(u_i)(φ̄φ')(u_j)] (n × n; diagonals unused)
    and ``q_diag`` = E[φ̄(u)²φ'(u)²] (n,).
    """

    f0: Array
    fa: Array
    fc: Array
    faa: Array
    fab: Array
    fac: Array
    fcc: Array
    d0: Array
    h1: Array
    h2: Array
    q_square: Array
    q_cross: Array
    q_diag: Array


def derivative_sensitivities(act: Activation, K: Array, *, nodes: int = 48) -> DerivativeSensitivities:
    """:class:`DerivativeSensitivities` of ``act`` (centred φ̄, its weak derivative φ') at the input kernel ``K``.

    ``nodes`` as in :func:`rmtbench.theory.finite_width.layer_sensitivities`.
    """
    from rmtbench.quadrature import gaussian_expectations
    from rmtbench.theory.kernels import derivative_kernel_from_covariance, mixed_moment

    if act.derivative is None:
        raise ValueError(f"{act.name} has no pointwise derivative (a jump): its NTK is not defined")
    phi, dphi = act.phi, act.derivative
    K = np.asarray(K, dtype=float)
    a = np.clip(np.diagonal(K).copy(), 0.0, None)

    def kernel_map(var_a: Array, var_b: Array, cov: Array, symmetric: bool) -> Array:
        return derivative_kernel_from_covariance(act, var_a, var_b, cov, nodes=nodes, symmetric=symmetric)

    def expectation(f, var: Array) -> Array:  # type: ignore[no-untyped-def]
        return gaussian_expectations(lambda t: np.asarray(f(t), dtype=float), np.sqrt(var), kinks=act.kinks, nodes=40)

    pairs, diag = map_derivatives(kernel_map, lambda var: expectation(lambda t: dphi(t) ** 2, var), K)
    square_slope = lambda t: np.asarray(phi(t), dtype=float) ** 2 * dphi(t)  # noqa: E731
    product = lambda t: np.asarray(phi(t), dtype=float) * dphi(t)  # noqa: E731
    rule = max(96, 2 * nodes)
    return DerivativeSensitivities(
        **pairs, d0=diag[0], h1=diag[1], h2=diag[2],
        q_square=mixed_moment(square_slope, dphi, a, K, kinks=act.kinks, nodes=rule, off_diagonal=True),
        q_cross=mixed_moment(product, product, a, K, kinks=act.kinks, nodes=rule, off_diagonal=True),
        q_diag=expectation(lambda t: product(t) ** 2, a),
    )


def ntk_shifts(layers: Sequence[LayerSensitivities], slopes: Sequence[DerivativeSensitivities],
               ntks: Sequence[Array], gram: Array, widths: Sequence[float], *,
               duplicates: NDArray[np.bool_] | None = None) -> list[Array]:
    """E NTK_ℓ − NTK∞_ℓ, ℓ = 1..L, to first order in 1/d (module docstring).

    Parameters
    ----------
    layers, slopes
        Each layer's CK and derivative-kernel sensitivities at K∞ of the layer below.
    ntks
        NTK∞_1, ..., NTK∞_L (only the first L − 1 are used).
    gram
        XᵀX (= K_0 = NTK_0).
    widths
        d_1, ..., d_L (at least L − 1 of them).
    duplicates
        Pairs of identical samples (:func:`rmtbench.theory.finite_width.duplicate_pairs`): they copy the diagonal.
    """
    depth = len(layers)
    if len(widths) < depth - 1:
        raise ValueError(f"need at least {depth - 1} widths, got {len(widths)}")
    states = list(layer_states(layers, widths[: depth - 1], duplicates=duplicates))
    n = gram.shape[0]
    zero = KernelState(np.zeros((n, n)), np.zeros(n), np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n)))
    below = [zero, *states]  # the state of K_{ℓ−1} entering layer ℓ
    theta = np.asarray(gram, dtype=float)  # Θ∞_{ℓ−1}
    sigma = np.zeros((n, n))
    x, p = _Cross.zero(n), _Projection.zero(n)
    out = []
    for ell, (s, t) in enumerate(zip(layers, slopes)):
        sigma = _mean_step(t, below[ell], theta, sigma, x, p)
        _copy_diagonal(sigma, duplicates)
        out.append(states[ell].shift + sigma)  # E NTK_ℓ − NTK∞_ℓ = S_ℓ + σ_ℓ
        if ell < depth - 1:
            inv_d = 1.0 / float(widths[ell])
            x = _cross_step(s, t, below[ell], theta, x, states[ell], inv_d)
            p = _projection_step(s, t, theta, p, inv_d)
            theta = np.asarray(ntks[ell], dtype=float)
    return out


@dataclass(frozen=True, eq=False)
class _Cross:
    """X = Cov((K_ii, K_jj, K_ij), Θ_ij) per pair (``ii``, ``jj``, ``ij``: n × n) and Cov(K_ii, Θ_ii) (``diag``, n)."""

    ii: Array
    jj: Array
    ij: Array
    diag: Array

    @classmethod
    def zero(cls, n: int) -> "_Cross":
        return cls(np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n)), np.zeros(n))


@dataclass(frozen=True, eq=False)
class _Projection:
    """P per pair: the 2 × 2 entries ``ii, ij, ji, jj`` (n × n) and the diagonal pair's scalar (``diag``, n)."""

    ii: Array
    ij: Array
    ji: Array
    jj: Array
    diag: Array

    @classmethod
    def zero(cls, n: int) -> "_Projection":
        z = np.zeros((n, n))
        return cls(z, z.copy(), z.copy(), z.copy(), np.zeros(n))


def _mean_step(t: DerivativeSensitivities, k: KernelState, theta: Array, sigma: Array, x: _Cross,
               p: _Projection) -> Array:
    """σ_ℓ from the state entering layer ℓ (module docstring)."""
    S = k.shift
    s_diag, v_aa = np.diagonal(S), k.v_aa
    fb, fbb, fbc = t.fa.T, t.faa.T, t.fac.T
    linear = t.fa * s_diag[:, None] + fb * s_diag[None, :] + t.fc * S
    curvature = (0.5 * (t.faa * v_aa[:, None] + fbb * v_aa[None, :] + t.fcc * k.v_cc)
                 + t.fab * k.v_ab + t.fac * k.v_ac + fbc * k.v_ac.T)
    cross = t.fa * x.ii + fb * x.jj + t.fc * x.ij
    projection = 2 * (t.fa * p.ii + fb * p.jj) + t.fc * (p.ij + p.ji)
    out = t.f0 * (S + sigma) + theta * (linear + curvature) + cross + projection
    diag = (t.d0 * (s_diag + np.diagonal(sigma)) + np.diagonal(theta) * (t.h1 * s_diag + 0.5 * t.h2 * v_aa)
            + t.h1 * x.diag + 2 * t.h1 * p.diag)
    np.fill_diagonal(out, diag)
    return out


def _cross_step(s: LayerSensitivities, t: DerivativeSensitivities, k: KernelState, theta: Array, x: _Cross,
                new: KernelState, inv_d: float) -> _Cross:
    """X_ℓ from X_{ℓ−1}, the covariance entering layer ℓ and the layer's own fluctuation."""
    fb, tb = s.fa.T, t.fa.T
    a_i, a_j = k.v_aa[:, None], k.v_aa[None, :]
    # u_y = Cov(δK_{ℓ−1,y}, δE[τ_ℓ,ij | ·]) for y = ii, jj, ij
    u_ii = theta * (a_i * t.fa + k.v_ab * tb + k.v_ac * t.fc) + t.f0 * x.ii
    u_jj = theta * (k.v_ab * t.fa + a_j * tb + k.v_ac.T * t.fc) + t.f0 * x.jj
    u_ij = theta * (k.v_ac * t.fa + k.v_ac.T * tb + k.v_cc * t.fc) + t.f0 * x.ij
    # the layer's own: Θ∞_{ℓ−1,ij} Cov(φ̄_aφ̄_b, φ'_iφ'_j)/d_ℓ for (a, b) = (i, i), (j, j), (i, j)
    fresh_ii = theta * (t.q_square - s.h0[:, None] * t.f0) * inv_d
    fresh_jj = theta * (t.q_square.T - s.h0[None, :] * t.f0) * inv_d
    fresh_ij = theta * (t.q_cross - s.f0 * t.f0) * inv_d
    h1 = s.h1
    ii = new.v_ac + h1[:, None] * u_ii + fresh_ii
    jj = new.v_ac.T + h1[None, :] * u_jj + fresh_jj
    ij = new.v_cc + s.fa * u_ii + fb * u_jj + s.fc * u_ij + fresh_ij
    th = np.diagonal(theta)
    u_d = th * k.v_aa * t.h1 + t.d0 * x.diag
    diag = new.v_aa + h1 * u_d + th * (t.q_diag - s.h0 * t.d0) * inv_d
    return _Cross(ii, jj, ij, diag)


def _projection_step(s: LayerSensitivities, t: DerivativeSensitivities, theta: Array, p: _Projection,
                     inv_d: float) -> _Projection:
    """P_ℓ = Q Θ/d_ℓ + G^(i) P_{ℓ−1} G^(j)ᵀ per pair (module docstring)."""
    h1_i, h1_j = s.h1[:, None], s.h1[None, :]
    two_fa, two_fb, slope = 2 * s.fa, 2 * s.fa.T, t.f0
    # G^(i) = [[h'_i, 0], [2∂F/∂a_i, F'_ij]] (rows a, columns c); G^(j) = [[F'_ij, 2∂F/∂a_j], [0, h'_j]] (rows b, columns e)
    gi = ((h1_i, 0.0), (two_fa, slope))
    gj = ((slope, two_fb), (0.0, h1_j))
    old = ((p.ii, p.ij), (p.ji, p.jj))
    new = [[sum(gi[a][c] * old[c][e] * gj[b][e] for c in range(2) for e in range(2)) for b in range(2)]
           for a in range(2)]
    q = ((t.q_square, t.q_cross), (t.q_cross, t.q_square.T))
    fresh = [[q[a][b] * theta * inv_d for b in range(2)] for a in range(2)]
    th = np.diagonal(theta)
    return _Projection(ii=new[0][0] + fresh[0][0], ij=new[0][1] + fresh[0][1], ji=new[1][0] + fresh[1][0],
                      jj=new[1][1] + fresh[1][1], diag=s.h1**2 * p.diag + t.q_diag * th * inv_d)


def finite_width_ntk_shifts(X: Array, activations: Sequence[object], widths: Sequence[float], *, tau0: float,
                            nodes: int = 48, kernels: DeepKernels | None = None) -> list[Array]:
    """E NTK_ℓ − NTK∞_ℓ for ℓ = 1..L, entry by entry, to first order in 1/d (module docstring).

    Parameters as in :func:`rmtbench.theory.finite_width.finite_width_shifts` (Gaussian weights), except that
    ``kernels``, if given, is :func:`rmtbench.theory.deep.exact_kernels` with the NTK.

    Examples
    --------
    >>> X = np.linalg.qr(np.random.default_rng(0).standard_normal((8, 4)))[0]
    >>> S = finite_width_ntk_shifts(X, ["linear", "quadratic"], [50, 50], tau0=1.0)  # tests/: exact here
    >>> float(np.abs(S[0]).max()), round(float(S[1][0, 0]), 6)  # layer 1 exact; 6/50 (CK) + 16/50 (gradients)
    (0.0, 0.44)
    """
    from rmtbench.activations import get_activation
    from rmtbench.theory.deep import centred_activation, exact_kernels, layer_coefficients

    X = np.asarray(X, dtype=float)
    if kernels is None or kernels.ntk is None:
        kernels = exact_kernels(X, list(activations), tau0=tau0, ntk=True, nodes=nodes)
    layers = network_sensitivities(X, activations, tau0=tau0, nodes=nodes, kernels=kernels.ck)
    coefficients = layer_coefficients(list(activations), tau0=tau0)
    gram = X.T @ X
    inputs = [gram, *kernels.ck[: len(activations) - 1]]
    slopes = [derivative_sensitivities(centred_activation(get_activation(spec), c.shift), K, nodes=nodes)
              for spec, c, K in zip(activations, coefficients, inputs)]
    assert kernels.ntk is not None
    return ntk_shifts(layers, slopes, kernels.ntk, gram, widths, duplicates=duplicate_pairs(X))
