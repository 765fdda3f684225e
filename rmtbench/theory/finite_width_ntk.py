"""First-order finite-width mean and variance of a deep random network's NTK, entry by entry.

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

The variance of every entry follows from the same linearisation. With M = DF + Θ∞_{ℓ−1} DF' (the sensitivity
of E[Θ_ℓ,ij | layer ℓ−1] to the triple (K_ii, K_jj, K_ij)_{ℓ−1}) and the layer's own fluctuation, the mean over
the d_ℓ rows of φ̄_iφ̄_j + Θ∞_{ℓ−1,ij} φ'_iφ'_j, the variance over the weights of Θ_ℓ = K_ℓ + τ_ℓ is::

    V_ℓ = Mᵀ C_{ℓ−1} M + 2 F' Mᵀ X_{ℓ−1} + F'² V_{ℓ−1}
          + (Γ_cc + Θ∞² (E φ'_i²φ'_j² − F'²) + 2 Θ∞ (E φ̄_iφ̄_jφ'_iφ'_j − F F')) / d_ℓ,

exact at the first layer (Θ_0 = XᵀX, C_0 = X_0 = 0). The quadratic form w_mᵀT_{ℓ−1}w_m of τ_ℓ fluctuates
by O(1/d_{ℓ−1}) per row, and P by O(1/d) around its O(1/d) mean: both enter at the next order.

One network's NTK has a drawn read-out v, not the mean over it: NTK = K_L + vᵀA v with A = T_L[·, ·, i, j], and
Var_v vᵀAv = 2 tr A_s² = N_L + R_L with N = ‖A‖²_F and R = tr A², for Gaussian v. Both are O(1/d) and, to
leading order (independent rows m ≠ m', Gaussian integrals E(wᵀBw')² = ‖B‖²_F, E(wᵀBw')(w'ᵀBw) = tr B²)::

    N_ℓ = Θ∞² E φ'_i²φ'_j² / d_ℓ + E φ'_i² E φ'_j² N_{ℓ−1},      R_ℓ = Θ∞² E φ'_i²φ'_j² / d_ℓ + F'² R_{ℓ−1},

from N_0 = R_0 = 0. So Var NTK_ℓ,ij = V_ℓ + N_ℓ + R_ℓ (law of total variance), the NTK's analogue of
:func:`rmtbench.theory.finite_width.propagate_moments`' variance (:func:`finite_width_ntk_variances`).

Nearly collinear pairs are NaN and duplicate samples copy the diagonal, as for the CK. The derivative
kernel must exist (φ' with no Dirac mass, i.e. φ continuous); Θ is the NTK of all weights, the
read-out included. Weights of excess kurtosis κ add first-order terms of their own, as they do for the CK: to
the mean every layer's (:func:`ntk_kurtosis_responses`), to the variance the first layer's, through the data's
localisation (:func:`ntk_variance_kurtosis_responses`; the later layers' laws change it at O(κ/d²)).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from rmtbench.activations import Activation
from rmtbench.theory.deep import DeepKernels
from rmtbench.theory.finite_width import (
    KernelState, LayerSensitivities, copy_diagonal, duplicate_pairs, input_sensitivities, layer_inputs, layer_states,
    map_derivatives,
)

__all__ = [
    "CrossCovariance", "DerivativeSensitivities", "GradientProjection", "NTKState", "derivative_sensitivities",
    "finite_width_ntk_shifts", "finite_width_ntk_variances", "first_layer_slope_change", "network_slopes",
    "ntk_kurtosis_responses", "ntk_shifts", "ntk_states", "ntk_variance_kurtosis_responses",
]

Array = NDArray[np.float64]


@dataclass(frozen=True, eq=False)  # arrays: no elementwise ==
class DerivativeSensitivities:
    """The derivative kernel F' = E[φ'(u_i)φ'(u_j)] of one layer and its derivatives, at K∞ of the layer below,
    named as in :class:`rmtbench.theory.finite_width.LayerSensitivities` (``f0`` the value; diagonal
    E φ'(√a ξ)² in ``d0`` with derivatives ``h1``, ``h2``), and the mixed moments of the NTK's fresh terms:
    ``q_square`` = E[φ̄(u_i)²φ'(u_i)φ'(u_j)], ``q_cross`` = E[(φ̄φ')(u_i)(φ̄φ')(u_j)] (n × n; diagonals unused)
    and ``q_diag`` = E[φ̄(u)²φ'(u)²] (n,); for the variance, ``s_cross`` = E[φ'(u_i)²φ'(u_j)²] (n × n, diagonal
    unused) and ``s_diag`` = E φ'(u)⁴ (n,).
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
    s_cross: Array
    s_diag: Array


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

    def expectation(f: Callable[[Array], Array], var: Array) -> Array:
        return gaussian_expectations(lambda t: np.asarray(f(t), dtype=float), np.sqrt(var), kinks=act.kinks, nodes=40)

    pairs, diag = map_derivatives(kernel_map, lambda var: expectation(lambda t: dphi(t) ** 2, var), K)
    square_slope = lambda t: np.asarray(phi(t), dtype=float) ** 2 * dphi(t)  # noqa: E731
    product = lambda t: np.asarray(phi(t), dtype=float) * dphi(t)  # noqa: E731
    slope_square = lambda t: np.asarray(dphi(t), dtype=float) ** 2  # noqa: E731
    rule = max(96, 2 * nodes)
    return DerivativeSensitivities(
        **pairs, d0=diag[0], h1=diag[1], h2=diag[2],
        q_square=mixed_moment(square_slope, dphi, a, K, kinks=act.kinks, nodes=rule, off_diagonal=True),
        q_cross=mixed_moment(product, product, a, K, kinks=act.kinks, nodes=rule, off_diagonal=True),
        q_diag=expectation(lambda t: product(t) ** 2, a),
        s_cross=mixed_moment(slope_square, slope_square, a, K, kinks=act.kinks, nodes=rule, off_diagonal=True),
        s_diag=expectation(lambda t: slope_square(t) ** 2, a),
    )


@dataclass(frozen=True, eq=False)  # arrays: no elementwise ==
class CrossCovariance:
    """X_ℓ = Cov((K_ii, K_jj, K_ij)_ℓ, Θ_ℓ,ij) per pair: ``ii``, ``jj``, ``ij`` (n × n), and Cov(K_ii, Θ_ii) (``diag``, n)."""

    ii: Array
    jj: Array
    ij: Array
    diag: Array


@dataclass(frozen=True, eq=False)  # arrays: no elementwise ==
class GradientProjection:
    """P_ℓ per pair (i, j): P_ab = Σ_kk' Σ_ℓ,ka Σ_ℓ,k'b T_ℓ[k, k', i, j] for (a, b) in {i, j}², as ``ii``, ``ij``, ``ji``,
    ``jj`` (n × n), and P_ii of the pair (i, i) (``diag``, n)."""

    ii: Array
    ij: Array
    ji: Array
    jj: Array
    diag: Array


@dataclass(frozen=True, eq=False)  # arrays: no elementwise ==
class NTKState:
    """First-order state of Θ_ℓ = K_ℓ + τ_ℓ (the NTK with the read-out on layer ℓ): ``shift`` = E Θ_ℓ − Θ∞_ℓ and,
    when d_ℓ is known (None past the last width), the pair terms that the next layer's mean needs, and the variance
    terms of the module docstring, n × n with the diagonal pairs (i, i) on the diagonal: ``mean_variance`` = V_ℓ,
    over the weights, of the NTK averaged over the read-out; ``gradient_square`` = N_ℓ and ``gradient_trace`` = R_ℓ,
    whose sum is the read-out's own variance."""

    shift: Array
    cross: CrossCovariance | None = None
    projection: GradientProjection | None = None
    mean_variance: Array | None = None
    gradient_square: Array | None = None
    gradient_trace: Array | None = None

    @property
    def variance(self) -> Array | None:
        """Var NTK_ℓ,ij of one network, read-out drawn: V_ℓ + N_ℓ + R_ℓ (None past the last width)."""
        if self.mean_variance is None or self.gradient_square is None or self.gradient_trace is None:
            return None
        return self.mean_variance + self.gradient_square + self.gradient_trace


def ntk_states(layers: Sequence[LayerSensitivities], slopes: Sequence[DerivativeSensitivities],
               ntks: Sequence[Array], gram: Array, widths: Sequence[float], *,
               duplicates: NDArray[np.bool_] | None = None) -> Iterator[NTKState]:
    """:class:`NTKState` of layers 1..L in turn (module docstring); the iteration stops after the first layer
    without a width.

    Parameters
    ----------
    layers, slopes
        Each layer's CK and derivative-kernel sensitivities at K∞ of the layer below.
    ntks
        NTK∞_1, ..., NTK∞_L (the first L − 1 are used).
    gram
        XᵀX (= K_0 = NTK_0).
    widths
        d_1, ..., d_L (at least L − 1 of them).
    duplicates
        Pairs of identical samples (:func:`rmtbench.theory.finite_width.duplicate_pairs`): they copy the diagonal.
    """
    depth = len(layers)
    if len(widths) < depth - 1 or len(ntks) < depth - 1:
        raise ValueError(f"need at least {depth - 1} widths and infinite-width NTKs, got {len(widths)} and {len(ntks)}")
    n = gram.shape[0]
    theta = np.asarray(gram, dtype=float)  # Θ∞_{ℓ−1}
    below = KernelState(np.zeros((n, n)), np.zeros(n), np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n)))
    state = NTKState(np.zeros((n, n)))
    for ell, (ck, slope, above) in enumerate(zip(layers, slopes, layer_states(layers, widths, duplicates=duplicates))):
        first = ell == 0  # τ_1 = K'_1 ∘ XᵀX: its mean is exact, and the pair terms need no stencil (collinear pairs too)
        tau_shift = np.zeros((n, n)) if first else _tau_shift(slope, below, theta, state)
        copy_diagonal(tau_shift, duplicates)
        if above.v_aa is None:  # no width for this layer: nothing after it
            yield NTKState(above.shift + tau_shift)
            return
        inv_d = 1.0 / float(widths[ell])
        variance = _variance_step(ck, slope, below, theta, state, inv_d, first=first)
        square, trace = _readout_step(slope, theta, state, inv_d, first=first)
        for matrix in (variance, square, trace):
            copy_diagonal(matrix, duplicates)
        state = NTKState(above.shift + tau_shift,  # E Θ_ℓ − Θ∞_ℓ = S_ℓ + σ_ℓ
                         _cross_step(ck, slope, below, above, theta, state.cross, inv_d, first=first),
                         _projection_step(ck, slope, theta, state.projection, inv_d, first=first),
                         variance, square, trace)
        yield state
        below, theta = above, (np.asarray(ntks[ell], dtype=float) if ell < depth - 1 else theta)


def ntk_shifts(layers: Sequence[LayerSensitivities], slopes: Sequence[DerivativeSensitivities],
               ntks: Sequence[Array], gram: Array, widths: Sequence[float], *,
               duplicates: NDArray[np.bool_] | None = None) -> list[Array]:
    """E NTK_ℓ − NTK∞_ℓ, ℓ = 1..L, to first order in 1/d: the shifts of :func:`ntk_states` (same parameters)."""
    return [state.shift for state in ntk_states(layers, slopes, ntks, gram, widths, duplicates=duplicates)]


def _tau_shift(slope: DerivativeSensitivities, below: KernelState, theta: Array, state: NTKState) -> Array:
    """σ_ℓ = E τ_ℓ − τ∞_ℓ from the state of layer ℓ − 1 (``below``: its CK; ``state``: its NTK)."""
    assert below.v_aa is not None and state.cross is not None and state.projection is not None
    S, x, p = below.shift, state.cross, state.projection
    s_diag, v_aa = np.diagonal(S), below.v_aa
    fb = slope.fa.T  # ∂F'/∂a_j
    linear = slope.fa * s_diag[:, None] + fb * s_diag[None, :] + slope.fc * S
    curvature = (0.5 * (slope.faa * v_aa[:, None] + slope.faa.T * v_aa[None, :] + slope.fcc * below.v_cc)
                 + slope.fab * below.v_ab + slope.fac * below.v_ac + slope.fac.T * below.v_ac.T)
    cross = slope.fa * x.ii + fb * x.jj + slope.fc * x.ij
    gradient = 2 * (slope.fa * p.ii + fb * p.jj) + slope.fc * (p.ij + p.ji)  # Σ_ab P_ab E[∂_a∂_b φ'_iφ'_j]
    out = slope.f0 * state.shift + theta * (linear + curvature) + cross + gradient  # state.shift = S_{ℓ−1} + σ_{ℓ−1}
    diag = (slope.d0 * np.diagonal(state.shift) + np.diagonal(theta) * (slope.h1 * s_diag + 0.5 * slope.h2 * v_aa)
            + slope.h1 * x.diag + 2 * slope.h1 * p.diag)
    np.fill_diagonal(out, diag)
    return out


def _variance_step(ck: LayerSensitivities, slope: DerivativeSensitivities, below: KernelState, theta: Array,
                   state: NTKState, inv_d: float, *, first: bool) -> Array:
    """V_ℓ (module docstring) from the CK state of layer ℓ − 1 (``below``) and its NTK ``state``."""
    th = np.diagonal(theta)
    # the layer's own: Var of φ̄_iφ̄_j + Θ∞_{ℓ−1,ij} φ'_iφ'_j over one row, over d_ℓ
    out = (ck.g_cc + theta**2 * (slope.s_cross - slope.f0**2) + 2 * theta * (slope.q_cross - ck.f0 * slope.f0)) * inv_d
    diag = (ck.g_aa + th**2 * (slope.s_diag - slope.d0**2) + 2 * th * (slope.q_diag - ck.h0 * slope.d0)) * inv_d
    if not first:  # C_0 = X_0 = 0 and Θ_0 = XᵀX is fixed: the first layer has its own fluctuation only
        assert below.v_aa is not None and below.v_ab is not None and below.v_ac is not None and below.v_cc is not None
        assert state.cross is not None and state.mean_variance is not None
        x = state.cross
        m_i, m_j, m_c = ck.fa + theta * slope.fa, ck.fa.T + theta * slope.fa.T, ck.fc + theta * slope.fc
        out = out + (m_i**2 * below.v_aa[:, None] + m_j**2 * below.v_aa[None, :] + m_c**2 * below.v_cc
                     + 2 * (m_i * m_j * below.v_ab + m_i * m_c * below.v_ac + m_j * m_c * below.v_ac.T)
                     + 2 * slope.f0 * (m_i * x.ii + m_j * x.jj + m_c * x.ij) + slope.f0**2 * state.mean_variance)
        m = ck.h1 + th * slope.h1
        diag = (diag + m**2 * below.v_aa + 2 * m * slope.d0 * x.diag
                + slope.d0**2 * np.diagonal(state.mean_variance))
    np.fill_diagonal(out, diag)
    return out


def _readout_step(slope: DerivativeSensitivities, theta: Array, state: NTKState, inv_d: float, *,
                  first: bool) -> tuple[Array, Array]:
    """N_ℓ and R_ℓ (module docstring; on the diagonal N = R) from those of layer ℓ − 1 in ``state``."""
    th = np.diagonal(theta)
    fresh, fresh_diag = theta**2 * slope.s_cross * inv_d, th**2 * slope.s_diag * inv_d
    square, trace = fresh.copy(), fresh
    if not first:
        assert state.gradient_square is not None and state.gradient_trace is not None
        square = square + np.outer(slope.d0, slope.d0) * state.gradient_square
        trace = trace + slope.f0**2 * state.gradient_trace
    diag = fresh_diag + (0.0 if first else slope.d0**2 * np.diagonal(state.gradient_square))
    np.fill_diagonal(square, diag)
    np.fill_diagonal(trace, diag)
    return square, trace


def _cross_step(ck: LayerSensitivities, slope: DerivativeSensitivities, below: KernelState, above: KernelState,
                theta: Array, cross: CrossCovariance | None, inv_d: float, *, first: bool) -> CrossCovariance:
    """X_ℓ: Cov(K_ℓ triple, K_ℓ,ij) from ``above``, plus Cov(K_ℓ triple, τ_ℓ,ij): propagated through DF from
    layer ℓ − 1 (not at the first layer, where C_0 = X_0 = 0), and the layer's own fluctuation."""
    assert above.v_aa is not None and above.v_ac is not None and above.v_cc is not None
    # the layer's own: Θ∞_{ℓ−1,ij} Cov(φ̄_aφ̄_b, φ'_iφ'_j)/d_ℓ for (a, b) = (i, i), (j, j), (i, j)
    ii = above.v_ac + theta * (slope.q_square - ck.h0[:, None] * slope.f0) * inv_d
    jj = above.v_ac.T + theta * (slope.q_square.T - ck.h0[None, :] * slope.f0) * inv_d
    ij = above.v_cc + theta * (slope.q_cross - ck.f0 * slope.f0) * inv_d
    th = np.diagonal(theta)
    diag = above.v_aa + th * (slope.q_diag - ck.h0 * slope.d0) * inv_d
    if first:
        return CrossCovariance(ii, jj, ij, diag)
    assert cross is not None and below.v_aa is not None
    # u_y = Cov(δK_{ℓ−1,y}, δE[τ_ℓ,ij | ·]) for y = ii, jj, ij, with δE[τ_ℓ,ij | ·] = Θ∞ DF'[δK] + F' δΘ_ij
    fb = slope.fa.T
    a_i, a_j = below.v_aa[:, None], below.v_aa[None, :]
    u_ii = theta * (a_i * slope.fa + below.v_ab * fb + below.v_ac * slope.fc) + slope.f0 * cross.ii
    u_jj = theta * (below.v_ab * slope.fa + a_j * fb + below.v_ac.T * slope.fc) + slope.f0 * cross.jj
    u_ij = theta * (below.v_ac * slope.fa + below.v_ac.T * fb + below.v_cc * slope.fc) + slope.f0 * cross.ij
    u_diag = th * below.v_aa * slope.h1 + slope.d0 * cross.diag
    return CrossCovariance(ii + ck.h1[:, None] * u_ii, jj + ck.h1[None, :] * u_jj,
                           ij + ck.fa * u_ii + ck.fa.T * u_jj + ck.fc * u_ij, diag + ck.h1 * u_diag)


def _projection_step(ck: LayerSensitivities, slope: DerivativeSensitivities, theta: Array,
                     projection: GradientProjection | None, inv_d: float, *, first: bool) -> GradientProjection:
    """P_ℓ = Q Θ∞_{ℓ−1,ij}/d_ℓ + G^(i) P_{ℓ−1} G^(j)ᵀ per pair (module docstring; P_0 = 0)."""
    fresh = theta * inv_d
    ii, ij, jj = slope.q_square * fresh, slope.q_cross * fresh, slope.q_square.T * fresh
    ji, diag = ij.copy(), slope.q_diag * np.diagonal(fresh)
    if first:
        return GradientProjection(ii, ij, ji, jj, diag)
    assert projection is not None
    # G^(i) = [[h'_i, 0], [A_i, F'_ij]] (rows a, columns c), G^(j) = [[F'_ij, A_j], [0, h'_j]] (rows b, columns e),
    # with A_i = 2∂F/∂a_i = E[φ''(u_i)φ̄(u_j)] and h' the CK map's diagonal derivative
    p, slope_ij = projection, slope.f0
    h_i, h_j, A_i, A_j = ck.h1[:, None], ck.h1[None, :], 2 * ck.fa, 2 * ck.fa.T
    row_i = slope_ij * p.ii + A_j * p.ij  # Σ_e P_ie G^(j)_ie
    return GradientProjection(
        ii=ii + h_i * row_i,
        ij=ij + h_i * h_j * p.ij,
        ji=ji + A_i * row_i + slope_ij * (slope_ij * p.ji + A_j * p.jj),
        jj=jj + h_j * (A_i * p.ij + slope_ij * p.jj),
        diag=diag + ck.h1**2 * p.diag,
    )


def ntk_kurtosis_responses(layers: Sequence[LayerSensitivities], slopes: Sequence[DerivativeSensitivities],
                           ntks: Sequence[Array], gram: Array, X: Array, ck_responses: Sequence[Sequence[Array]], *,
                           duplicates: NDArray[np.bool_] | None = None) -> list[list[Array]]:
    """V_{k→ℓ}: the first-order change of E NTK_ℓ per unit of the k-th weight of
    :func:`rmtbench.theory.finite_width.kurtosis_weights` (κ_1, then κ_k/d_{k−1}), ``out[k][ℓ − k]``; width-free.

    Non-Gaussian W_k (excess kurtosis κ_k) moves E τ_k in two ways (module docstring of
    :mod:`rmtbench.theory.finite_width` for the first): the Edgeworth term of the derivative kernel,
    κ_k A'_k ∘ Θ∞_{k−1}, with A'_k built like the CK's from F' and the fourth moments of the layer's input; and,
    from layer 2 on, E[w_m² g] = E g + (1 + κ/2) E[∂²g]: the diagonal k = k' of the gradient term gains κ_k/2
    Σ_ab P'_ab E[∂_a∂_b φ'_iφ'_j] with P' = Q_{k−1} Θ∞_{k−2}/d_{k−1}, the diagonal of P_{k−1}. Both are carried to
    the later layers with the CK's responses ``ck_responses`` (:func:`rmtbench.theory.finite_width.kurtosis_responses`):
    V_{k→ℓ+1} = U_{k→ℓ+1} + F'_{ℓ+1} ∘ V_{k→ℓ} + Θ∞_ℓ ∘ DF'_{ℓ+1}[U_{k→ℓ}].
    """
    from rmtbench.theory.finite_width import kurtosis_terms, linear_change

    thetas = [np.asarray(gram, dtype=float), *(np.asarray(K, dtype=float) for K in ntks)]  # Θ∞_0, ..., Θ∞_L
    own = kurtosis_terms(layers, X, maps=slopes)
    out = []
    for k, chain in enumerate(ck_responses):
        slope = slopes[k]
        V = chain[0] + own[k] * thetas[k]  # A'_k ∘ Θ∞_{k−1} (diagonals included)
        if k > 0:  # the diagonal of the gradient term, P' = Q_{k−1} Θ∞_{k−2} per unit κ_k/d_{k−1}
            q, theta = slopes[k - 1], thetas[k - 1]
            gradient = (slope.fa * q.q_square + slope.fa.T * q.q_square.T + slope.fc * q.q_cross) * theta
            np.fill_diagonal(gradient, slope.h1 * q.q_diag * np.diagonal(theta))
            V = V + gradient
        copy_diagonal(V, duplicates)
        responses = [V]
        for ell in range(k + 1, len(layers)):
            slope = slopes[ell]
            carried = slope.f0 * V
            np.fill_diagonal(carried, slope.d0 * np.diagonal(V))
            V = chain[ell - k] + carried + thetas[ell] * linear_change(slope, chain[ell - k - 1])
            copy_diagonal(V, duplicates)
            responses.append(V)
        out.append(responses)
    return out


def first_layer_slope_change(act: Activation, X: Array, slope: DerivativeSensitivities, *, nodes: int = 48
                             ) -> dict[str, Array]:
    """Change of the first layer's derivative kernel and NTK moments per unit κ_1: the fields ``f0``, ``d0``, ``q_square``,
    ``q_cross``, ``q_diag``, ``s_cross`` and ``s_diag`` of ``slope`` (:func:`derivative_sensitivities` of ``act`` at XᵀX
    with the same ``nodes``).

    Each is a Gaussian expectation E f(u_i)g(u_j) (or E (fg)(u_i) on the diagonal) and gains the first Edgeworth term of
    the data's localisation (:func:`rmtbench.theory.finite_width.edgeworth_term`), from the second derivatives of its
    map: the derivative kernel's in ``slope``, the others' from
    :func:`rmtbench.theory.finite_width.first_layer_moment_change`, as in the CK's
    :func:`rmtbench.theory.finite_width.first_layer_gamma_change`. Nearly collinear pairs are NaN.
    """
    from rmtbench.quadrature import gaussian_expectations
    from rmtbench.theory.finite_width import first_layer_moment_change, kurtosis_terms

    assert act.derivative is not None
    phi, dphi = act.phi, act.derivative

    def slope_of(u: Array) -> Array:
        return np.asarray(dphi(u), dtype=float)

    def product(u: Array) -> Array:  # φ̄φ'
        return np.asarray(phi(u), dtype=float) * slope_of(u)

    def slope_square(u: Array) -> Array:  # φ'²
        return slope_of(u) ** 2

    def square_slope(u: Array) -> Array:  # φ̄²φ'
        return np.asarray(phi(u), dtype=float) ** 2 * slope_of(u)

    def on_diagonal(f: Callable[[Array], Array]) -> Callable[[Array], Array]:
        return lambda var: gaussian_expectations(lambda u: f(u) ** 2, np.sqrt(var), kinks=act.kinks, nodes=40)

    def change(f: Callable[[Array], Array], g: Callable[[Array], Array],
               diagonal: Callable[[Array], Array] | None = None) -> Array:
        return first_layer_moment_change(act, f, g, X, nodes=nodes, diagonal=diagonal)

    square = change(slope_square, slope_square, on_diagonal(slope_square))  # δE φ'_i²φ'_j², δE φ'⁴ on the diagonal
    cross = change(product, product, on_diagonal(product))  # δE (φ̄φ')_i(φ̄φ')_j, δE φ̄²φ'² on the diagonal
    slopes = kurtosis_terms([slope], np.asarray(X, dtype=float), maps=[slope])[0]  # δF', δE φ'² on the diagonal
    return {"f0": slopes, "d0": np.diagonal(slopes).copy(),
            "q_square": change(square_slope, slope_of),  # its diagonal is not used
            "q_cross": cross, "q_diag": np.diagonal(cross).copy(),
            "s_cross": square, "s_diag": np.diagonal(square).copy()}


def ntk_variance_kurtosis_responses(inputs: Sequence[tuple[Activation, Array]], layers: Sequence[LayerSensitivities],
                                    slopes: Sequence[DerivativeSensitivities], ntks: Sequence[Array], X: Array,
                                    width_sets: Sequence[Sequence[float]], *, nodes: int = 48,
                                    duplicates: NDArray[np.bool_] | None = None) -> list[list[Array]]:
    """d Var NTK_ℓ,ij / dκ_1 for ℓ = 1..L, per set of widths: the first layer's weight kurtosis in the NTK's variance.

    As for the CK (:func:`rmtbench.theory.finite_width.variance_kurtosis_responses`), the data's localisation moves the
    variance at first order, by a relative O(κ_1·T) that does not fall with d, in two ways: the first layer's own
    moments (its Γ_1, and E φ'_iφ'_j, E φ'_i²φ'_j², E φ̄_iφ̄_jφ'_iφ'_j, E φ̄_i²φ'_iφ'_j of :func:`first_layer_slope_change`,
    each with its Edgeworth term), and every later layer's sensitivities and Θ∞, taken at the kernels the first
    layer's kurtosis term moved (K∞_1 + κ_1 U_1, Θ∞_1 + κ_1 (U_1 + A'_1 ∘ XᵀX), then the infinite-width recursion).
    The whole of :func:`ntk_states` is differenced centrally in κ_1, with the step of
    :func:`rmtbench.theory.finite_width.kurtosis_step`. The later layers' own laws change the variance at O(κ/d²).

    Parameters
    ----------
    inputs
        Each layer's centred activation and input kernel (:func:`rmtbench.theory.finite_width.layer_inputs`).
    layers, slopes
        Their CK and derivative-kernel sensitivities (same ``nodes``).
    ntks
        NTK∞_1, ..., NTK∞_L.
    X
        Data, ``p × n``.
    width_sets
        Each a list d_1, ..., d_L (all L widths).
    nodes, duplicates
        As for :func:`derivative_sensitivities` and :func:`ntk_states`.

    Returns
    -------
    list of lists of ndarray
        ``out[w][ℓ − 1]``, n × n (the diagonal holds d Var NTK_ii/dκ_1); NaN where the variance is, and at the
        first layer's nearly collinear pairs (the Edgeworth terms need the stencils there).
    """
    from rmtbench.theory.finite_width import (
        first_layer_gamma_change, kurtosis_step, kurtosis_terms, layer_sensitivities,
    )

    X = np.asarray(X, dtype=float)
    gram = X.T @ X
    act = inputs[0][0]
    U = kurtosis_terms(layers[:1], X)[0]
    # per unit κ_1: the first layer's Γ_1 and E φ̄_iφ̄_j (which the NTK's covariances use), and its NTK moments
    ck_change = dict(zip(("g_aa", "g_ab", "g_ac", "g_cc"), first_layer_gamma_change(act, X, layers[0], nodes=nodes)),
                     f0=U, h0=np.diagonal(U).copy())
    slope_change = first_layer_slope_change(act, X, slopes[0], nodes=nodes)
    theta_change = np.nan_to_num(U + slope_change["f0"] * gram)  # Θ_1 = K_1 + F'_1 ∘ XᵀX (diagonals included)
    h = kurtosis_step(inputs, U)

    def moved(sign: float) -> tuple[list[LayerSensitivities], list[DerivativeSensitivities], list[Array]]:
        step = sign * h
        cks = [replace(layers[0], **{name: getattr(layers[0], name) + step * d for name, d in ck_change.items()})]
        derivs = [replace(slopes[0], **{name: getattr(slopes[0], name) + step * d for name, d in slope_change.items()})]
        theta = np.asarray(ntks[0], dtype=float) + step * theta_change
        thetas = [theta]
        if len(layers) > 1:
            K = inputs[1][1] + step * np.nan_to_num(U)  # nearly collinear pairs stay NaN in the first layer's change
            for act_above, _ in inputs[1:]:
                ck, slope = layer_sensitivities(act_above, K, nodes=nodes), derivative_sensitivities(act_above, K, nodes=nodes)
                cks.append(ck)
                derivs.append(slope)
                K = ck.f0.copy()
                np.fill_diagonal(K, ck.h0)
                carried = theta * slope.f0
                np.fill_diagonal(carried, np.diagonal(theta) * slope.d0)
                theta = K + carried  # Θ∞_ℓ = K∞_ℓ + Θ∞_{ℓ−1} ∘ K'_ℓ at the moved kernels
                thetas.append(theta)
        return cks, derivs, thetas

    plus, minus = moved(1.0), moved(-1.0)
    responses = []
    for widths in width_sets:
        up, down = ([state.variance for state in ntk_states(*m[:2], m[2], gram, widths, duplicates=duplicates)
                     if state.variance is not None] for m in (plus, minus))
        responses.append([(vp - vm) / (2.0 * h) for vp, vm in zip(up, down)])
    return responses


def network_slopes(X: Array, activations: Sequence[object], *, tau0: float, nodes: int = 48,
                   kernels: Sequence[Array] | None = None) -> list[DerivativeSensitivities]:
    """:class:`DerivativeSensitivities` of every layer at the infinite-width CKs (they do not depend on d).

    Parameters as in :func:`rmtbench.theory.finite_width.network_sensitivities`; feed the result, with that
    function's, to :func:`ntk_states`.
    """
    return [derivative_sensitivities(act, K, nodes=nodes)
            for act, K in layer_inputs(X, activations, tau0=tau0, nodes=nodes, kernels=kernels)]


def finite_width_ntk_shifts(X: Array, activations: Sequence[object], widths: Sequence[float], *, tau0: float,
                            nodes: int = 48, kernels: DeepKernels | None = None,
                            kurtosis: float | Sequence[float] = 0.0) -> list[Array]:
    """E NTK_ℓ − NTK∞_ℓ for ℓ = 1..L, entry by entry, to first order in 1/d (module docstring).

    Parameters as in :func:`rmtbench.theory.finite_width.finite_width_shifts`, except that ``kernels``, if given,
    is :func:`rmtbench.theory.deep.exact_kernels` with the NTK. ``kurtosis`` (one κ = E w⁴ − 3, or one per layer)
    adds Σ_k w_k V_{k→ℓ} of :func:`ntk_kurtosis_responses`.

    Examples
    --------
    >>> X = np.linalg.qr(np.random.default_rng(0).standard_normal((8, 4)))[0]
    >>> S = finite_width_ntk_shifts(X, ["linear", "quadratic"], [50, 50], tau0=1.0)  # tests/: exact here
    >>> float(np.abs(S[0]).max()), round(float(S[1][0, 0]), 6)  # layer 1 exact; 6/50 (CK) + 16/50 (gradients)
    (0.0, 0.44)
    """
    from rmtbench.theory.finite_width import kurtosis_responses, kurtosis_terms, kurtosis_weights, layer_values

    X = np.asarray(X, dtype=float)
    values = layer_values(kurtosis, len(activations))
    _, ntks, layers, slopes = _network(X, activations, tau0=tau0, nodes=nodes, kernels=kernels)
    gram, duplicates = X.T @ X, duplicate_pairs(X)
    shifts = ntk_shifts(layers, slopes, ntks, gram, widths, duplicates=duplicates)
    if any(values):
        ck = kurtosis_responses(layers, kurtosis_terms(layers, X), duplicates=duplicates)
        responses = ntk_kurtosis_responses(layers, slopes, ntks, gram, X, ck, duplicates=duplicates)
        for k, (weight, chain) in enumerate(zip(kurtosis_weights(values, widths), responses)):
            for ell, V in enumerate(chain, start=k):
                shifts[ell] = shifts[ell] + weight * V
    return shifts


def finite_width_ntk_variances(X: Array, activations: Sequence[object], widths: Sequence[float], *, tau0: float,
                               nodes: int = 48, kernels: DeepKernels | None = None,
                               kurtosis: float | Sequence[float] = 0.0) -> list[Array]:
    """Var NTK_ℓ,ij for ℓ = 1..L, entry by entry (the diagonals hold Var NTK_ℓ,ii), to first order in 1/d.

    The variance over the weights and a Gaussian read-out of the NTK of the network truncated after layer ℓ,
    read-out included (module docstring: V_ℓ + N_ℓ + R_ℓ); exact at the first layer for Gaussian weights. Parameters
    as in :func:`finite_width_ntk_shifts`, with all L widths; ``kurtosis`` adds the first layer's term, κ_1 times
    :func:`ntk_variance_kurtosis_responses` (the later layers' laws change the variance at O(κ/d²) only). Nearly
    collinear pairs are NaN after the first layer (with a non-Gaussian first layer, at it too); duplicates copy
    the diagonal.

    Examples
    --------
    One linear layer on orthonormal samples: NTK_1 = K_1 + XᵀX (Σ_m v_m²/d) with K_1 Wishart, so Var NTK_1,ij =
    (1 + δ_ij)/d + 2δ_ij/d.

    >>> V = finite_width_ntk_variances(np.eye(3), ["linear"], [8], tau0=1.0)
    >>> bool(np.allclose(V[0], (1 + 3 * np.eye(3)) / 8))
    True
    """
    from rmtbench.theory.finite_width import layer_values

    X = np.asarray(X, dtype=float)
    if len(widths) < len(activations):
        raise ValueError(f"the variance of every layer needs {len(activations)} widths, got {len(widths)}")
    kappa_1 = layer_values(kurtosis, len(activations))[0]
    inputs, ntks, layers, slopes = _network(X, activations, tau0=tau0, nodes=nodes, kernels=kernels)
    duplicates = duplicate_pairs(X)
    states = ntk_states(layers, slopes, ntks, X.T @ X, widths, duplicates=duplicates)
    variances = [state.variance for state in states if state.variance is not None]
    if kappa_1:
        responses = ntk_variance_kurtosis_responses(inputs, layers, slopes, ntks, X, [widths], nodes=nodes,
                                                    duplicates=duplicates)[0]
        variances = [V + kappa_1 * R for V, R in zip(variances, responses)]
    return variances


def _network(X: Array, activations: Sequence[object], *, tau0: float, nodes: int, kernels: DeepKernels | None
             ) -> tuple[list[tuple[Activation, Array]], list[Array], list[LayerSensitivities], list[DerivativeSensitivities]]:
    """Each layer's centred activation and input kernel, NTK∞ of every layer (``kernels``' when given with the NTK),
    and every layer's CK and derivative-kernel sensitivities at the infinite-width CKs: what :func:`ntk_states` takes
    besides the Gram and the widths."""
    from rmtbench.theory.deep import exact_kernels

    if kernels is None or kernels.ntk is None:
        kernels = exact_kernels(X, list(activations), tau0=tau0, ntk=True, nodes=nodes)
    assert kernels.ntk is not None
    inputs = layer_inputs(X, activations, tau0=tau0, nodes=nodes, kernels=kernels.ck)
    return (inputs, list(kernels.ntk), input_sensitivities(inputs, nodes=nodes),
            [derivative_sensitivities(act, K, nodes=nodes) for act, K in inputs])
